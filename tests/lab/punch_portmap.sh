#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Punch through a port mapping the NAT granted (the PORTMAP stage, strategy "mapped"): random x random
# NATs, refused without port mapping, connect directly when a's router (miniupnpd: natlab --portmap-a)
# maps a's punch port, with each of PCP, NAT-PMP and UPnP-IGD (twice each; 1 MiB each way, SHA-256;
# the report names the protocol that opened the way); no mapping or DNAT rule is left on the router
# after the run, after SIGTERM, and after kill -9 plus the next run (its sweep). Also: `rawpunch
# probe` reports the mapping, and on a router without port mapping asking costs the probe <= 0.3 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
PUNCH_MIB=${PUNCH_MIB:-1}
source tests/lab/punch_common.bash
RUNS=${PORTMAP_RUNS:-2}

punch_lab ppm --nat-a random --nat-b random --portmap-a pcp,natpmp,upnp
X() { tools/natlab exec "$LAB" "$@"; }
rules() { X ra -- nft list chain inet natlab_portmap prerouting_miniupnpd 2>/dev/null | grep -c dnat || true; }
# no_mapping WHAT: nothing left on ra (rules, upnpc -l), given up to 1 s to settle
no_mapping() {
	local i
	for i in $(seq 20); do [ "$(rules)" = 0 ] && break; sleep 0.05; done
	[ "$(rules)" = 0 ] || fail "$1: DNAT rules left on ra: $(X ra -- nft list chain inet natlab_portmap prerouting_miniupnpd)"
	X a -- upnpc -i -l 2>/dev/null | grep -qE '^ *[0-9]+ TCP' && fail "$1: upnpc -l still lists a mapping"
	return 0
}

# ------------------------------------------------------------ the probe reports it, quickly either way
j=$(X a -- "$RP" probe --stun 198.18.3.2 --samples 4 --ttl-max 0 --json 2>"$T/probe-a.err") || fail "probe a: $(cat "$T/probe-a.err")"
[ "$(jq -r .portmap.protocol <<<"$j")" = pcp ] || fail "probe a: portmap $(jq -c .portmap <<<"$j")"
# (asking stops listening once the most preferred protocol answered: pcp, maybe natpmp too)
jq -e '.portmap.found | index("pcp") != null' <<<"$j" >/dev/null || fail "probe a: found $(jq -c .portmap.found <<<"$j")"
[ "$(jq -r .portmap.external <<<"$j")" = "198.18.1.2:$(jq -r '.local | split(":")[1]' <<<"$j")" ] || fail "probe a: $(jq -c .portmap <<<"$j")"
no_mapping "probe a"
ok "probe a: $(jq -c .portmap <<<"$j"), deleted at the end"
j=$(X a -- "$RP" probe --stun 198.18.3.2 --samples 4 --ttl-max 0 --json --no-portmap 2>/dev/null) || fail "probe --no-portmap"
[ "$(jq -r .portmap <<<"$j")" = null ] || fail "probe --no-portmap: $(jq -c .portmap <<<"$j")"
# b's router has no port mapping: asking runs beside the probe and costs little
wall() { local t0 t1; t0=$(date +%s%N); X b -- "$RP" probe --stun 198.18.3.2 --samples 4 --ttl-max 0 --json "$@" >"$T/pb.json" 2>/dev/null || fail "probe b $*"; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
w_with=0; w_without=0
for i in 1 2 3; do w_with=$((w_with + $(wall))); w_without=$((w_without + $(wall --no-portmap))); done
w_with=$((w_with / 3)); w_without=$((w_without / 3))
wall >/dev/null
jq -e '.portmap.protocol == null and (.portmap.found | length) == 0 and (.portmap.error | test("pcp: (port unreachable|no answer)"))' "$T/pb.json" >/dev/null ||
	fail "probe b: $(jq -c .portmap "$T/pb.json")"
[ $((w_with - w_without)) -le 300 ] || fail "probe b: asking for a port mapping made the probe $((w_with - w_without)) ms slower"
ok "probe b (no port mapping): $w_with ms with asking, $w_without ms without (mean of 3), the reasons in portmap.error"

# ------------------------------------------------------------ without a mapping: refused as today
punch_pair none --no-portmap
if [ "${PAIR_RC[0]}" != 1 ] || [ "${PAIR_RC[1]}" != 1 ]; then fail "--no-portmap: exit a=${PAIR_RC[0]} b=${PAIR_RC[1]} (want 1 1)"; fi
[ "$(report_get none a "r['plan']['method']")" = impossible ] || fail "--no-portmap: plan $(report_get none a "r['plan']['method']")"
ok "random x random without port mapping: refused (impossible), as before"

# ------------------------------------------------------------ each protocol opens the way
for proto in pcp natpmp upnp; do
	for run in $(seq "$RUNS"); do
		tag=$proto$run
		punch_pair "$tag" --portmap "$proto"
		expect_pair_ok "$tag"
		for side in a b; do
			[ "$(report_get "$tag" $side "r['plan']['method']")" = mapped ] || fail "$tag: $side planned $(report_get "$tag" $side "r['plan']['method']")"
			[ "$(report_get "$tag" $side "r['portmap']['opened_by']")" = "$proto" ] || fail "$tag: $side's report: opened_by $(report_get "$tag" $side "r['portmap']")"
		done
		[ "$(report_get "$tag" a "r['self']['portmap']['external'].split(':')[0]")" = 198.18.1.2 ] || fail "$tag: a's mapping $(report_get "$tag" a "r['self']['portmap']")"
		[ "$(report_get "$tag" b "r['peer']['filtering']")" = open ] || fail "$tag: b sees a's filtering as $(report_get "$tag" b "r['peer']['filtering']")"
		# b's router has nothing: the refusal is a line in b's report, and b punched anyway
		[ "$(report_get "$tag" b "r['portmap']['protocol'] is None and '$proto: ' in r['portmap']['error']")" = True ] ||
			fail "$tag: b's report: $(report_get "$tag" b "r['portmap']")"
		grep -q "portmap: $proto maps 198.18.1.2:" "$T/$tag-a.err" || fail "$tag: no portmap status line on a"
		no_mapping "$tag"
	done
	no_leftovers
	ok "random x random, $proto on a's router: connected directly $RUNS times (mapped), $PUNCH_MIB MiB each way intact, nothing left on ra"
	summary "${proto}1"
done

# ------------------------------------------------------------ SIGTERM and kill -9 while the mapping is held
# a alone: it probes, is granted the mapping, and waits at the rendezvous for a peer that never comes
hold_a() {   # hold_a TAG: start it, wait for the mapping; HOLDER = its pid
	# (natlab exec itself, not the X function: $! must be the process to signal)
	tools/natlab exec "$LAB" a -- "$RP" punch --rendezvous 198.18.3.2 --session "lonely-$1" --secret-file "$T/secret" --stdio \
		--timeout 30 </dev/null >/dev/null 2>"$T/$1-hold.err" &
	HOLDER=$!
	local i
	# (the status line comes once the mapping is granted and recorded)
	for i in $(seq 100); do grep -q "portmap: pcp maps" "$T/$1-hold.err" && [ "$(rules)" != 0 ] && return 0; sleep 0.05; done
	fail "$1: no mapping on ra while a waits: $(cat "$T/$1-hold.err")"
}
hold_a term
kill -TERM "$HOLDER"; rc=0; wait "$HOLDER" || rc=$?
[ "$rc" = 143 ] || fail "SIGTERM: the waiting side exited $rc (want 143)"
no_mapping "SIGTERM"
ok "SIGTERM while waiting for the peer: exit 143, the mapping deleted on the way out"
hold_a kill
kill -9 "$HOLDER"; wait "$HOLDER" 2>/dev/null || true
[ "$(rules)" != 0 ] || fail "kill -9: the mapping should outlive its holder"
ls /run/rawpunch/u*/pm-*.map >/dev/null 2>&1 || fail "kill -9: no record of the mapping in /run/rawpunch/u<uid>"
punch_pair after --portmap pcp
expect_pair_ok after
[ "$(report_get after a "r['plan']['method']")" = mapped ] || fail "after kill -9: plan $(report_get after a "r['plan']['method']")"
no_mapping "the run after kill -9"
no_leftovers
ok "kill -9 while holding: the mapping outlives it, the next run deletes it first and connects (nothing left)"
