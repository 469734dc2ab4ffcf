#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Port mapping in the lab (natlab --portmap-a/-b: miniupnpd on the NAT router) and `rawpunch portmap`:
#   - the lab: miniupnpd listens on ra's inside only, nothing of it in the root namespace; a mapping made
#     by tools outside this project (upnpc, natpmpc) lets an inbound SYN from s reach a through a NAT
#     that otherwise drops it; `down` removes miniupnpd, also after a killed `up`;
#   - rawpunch portmap with each protocol (pcp, natpmp, upnp): mapped, reachable from s, deleted on
#     SIGTERM (gone from the router's rules and from `upnpc -l`); a kill -9'd holder's mapping is
#     deleted by `--delete` and by the next run; PCP PEER reveals the external port of a live flow
#     through a sequential NAT; a NAT-PMP-only router; and a lab without port mapping fails in <= 0.3 s
#     with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
BUILD=${BUILD:-build}; [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
RP=${RAWPUNCH:-$BUILD/rawpunch}
[ -x "$RP" ] || fail "no $RP (make first)"
TMP=$(mktemp -d /tmp/rp-lab-portmap.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

LAB=$(unique_lab lpm)
# a: sequential NAT that drops unsolicited inbound (only a mapping lets a SYN from s in); all three
# protocols. b: NAT-PMP only.
lab_up "$LAB" --nat-a sequential --filter-a drop --portmap-a pcp,natpmp,upnp --portmap-b natpmp
X() { tools/natlab exec "$LAB" "$@"; }   # (not for '&': $! must be the process itself, so it can be signalled)
rules() { X ra nft list chain inet natlab_portmap prerouting_miniupnpd; }
has_rule() { rules | grep -q "dport $1 dnat ip to 10.0.1.2:$2"; }   # has_rule EXT INT
# rule_is EXT INT present|absent: what the router's rules show, given up to 1 s to settle
rule_is() {
	local i
	for i in $(seq 20); do
		if has_rule "$1" "$2"; then [ "$3" = present ] && return 0; else [ "$3" = absent ] && return 0; fi
		sleep 0.05
	done
	return 1
}

# reach INT EXT: a listens on INT; s connects to a's public address at EXT and must read a's token.
reach() {
	local tok="hello-$1-$RANDOM" got i
	tools/natlab exec "$LAB" a timeout 5 socat -T3 "TCP4-LISTEN:$1,bind=10.0.1.2,reuseaddr" SYSTEM:"echo $tok" >/dev/null 2>&1 &
	local lp=$!
	for i in $(seq 50); do X a ss -Hlnt "sport = :$1" | grep -q . && break; sleep 0.05; done
	got=$(X s timeout 3 socat -T2 - "TCP4:198.18.1.2:$2,connect-timeout=1" </dev/null 2>/dev/null || true)
	kill "$lp" 2>/dev/null || true; wait "$lp" 2>/dev/null || true
	[ "$got" = "$tok" ]
}
# wait_json FILE: the holder's JSON line
wait_json() {
	local i
	for i in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.05; done
	fail "no output from rawpunch portmap in $1"
}

# ------------------------------------------------------------ the lab itself
ss_out=$(X ra ss -Hlnup; X ra ss -Hlntp)
n=0
while read -r line; do
	case $line in *miniupnpd*) ;; *) continue ;; esac
	n=$((n + 1))
	local_addr=$(awk '{print $4}' <<<"$line")
	case $local_addr in 10.0.1.1:*|*%eth0:*) ;; *) fail "miniupnpd listens on $local_addr (want ra's inside only): $line" ;; esac
done <<<"$ss_out"
[ "$n" -ge 3 ] || fail "miniupnpd on ra: expected its PCP/NAT-PMP, SSDP and HTTP sockets, found $n: $ss_out"
ok "miniupnpd on ra listens only on the inside ($n sockets on 10.0.1.1 / %eth0)"
rundir=${NATLAB_RUNDIR:-/run/natlab}/$LAB
for r in ra rb; do
	pid=$(cat "$rundir/miniupnpd-$r.pid")
	[ "$(ip netns identify "$pid")" = "rp$LAB-$r" ] || fail "miniupnpd of $r (pid $pid) is not in namespace rp$LAB-$r"
	for f in conf log daemon-pid; do
		[ -e "$rundir/miniupnpd-$r.$f" ] || fail "no $rundir/miniupnpd-$r.$f"
	done
done
if nft list tables 2>/dev/null | grep -q natlab_portmap; then fail "a natlab_portmap table in the root namespace"; fi
ok "miniupnpd runs in ra's and rb's namespaces, its files under $rundir, no rules in the root namespace"

reach 5001 5001 && fail "s reached a:5001 with no mapping (the drop filter should stop it)"
out=$(X a upnpc -i -e rp-lab -a 10.0.1.2 5001 5001 TCP 60 2>&1) || fail "upnpc -a: $out"
grep -q 'external 198.18.1.2:5001 TCP is redirected to internal 10.0.1.2:5001' <<<"$out" || fail "upnpc -a: $out"
reach 5001 5001 || fail "upnpc's mapping: s cannot reach a:5001 at 198.18.1.2:5001"
X a upnpc -i -d 5001 TCP >/dev/null 2>&1 || fail "upnpc -d"
rule_is 5001 5001 absent || fail "upnpc -d left the rule: $(rules)"
ok "upnpc maps 198.18.1.2:5001 -> a:5001, s reaches a through it, upnpc -d removes it"

out=$(X a natpmpc -g 10.0.1.1 -a 5002 5002 tcp 60 2>&1) || fail "natpmpc -a: $out"
grep -q 'Mapped public port 5002 protocol TCP to local port 5002' <<<"$out" || fail "natpmpc -a: $out"
reach 5002 5002 || fail "natpmpc's mapping: s cannot reach a:5002"
X a natpmpc -g 10.0.1.1 -a 5002 0 tcp 0 >/dev/null 2>&1 || fail "natpmpc delete"
rule_is 5002 5002 absent || fail "natpmpc delete left the rule"
ok "natpmpc maps 198.18.1.2:5002 -> a:5002, s reaches a through it, lifetime 0 removes it"

# ------------------------------------------------------------ rawpunch portmap, each protocol
port=5100
for proto in pcp natpmp upnp; do
	port=$((port + 1))
	tools/natlab exec "$LAB" a "$RP" portmap --port $port --protocols $proto --lifetime 30 --json >"$TMP/$proto.json" 2>"$TMP/$proto.err" &
	holder=$!
	wait_json "$TMP/$proto.json"
	j=$(cat "$TMP/$proto.json")
	[ "$(jq -r .protocol <<<"$j")" = "$proto" ] || fail "$proto: mapped by $(jq -r .protocol <<<"$j"): $j"
	ext=$(jq -r .external <<<"$j")
	[ "${ext%:*}" = 198.18.1.2 ] || fail "$proto: external address $ext"
	eport=${ext##*:}
	jq -e ".attempts.$proto.mapped and .lifetime > 0" <<<"$j" >/dev/null || fail "$proto: $j"
	rule_is "$eport" $port present || fail "$proto: no DNAT rule for $eport on ra: $(rules); miniupnpd: $(grep -v "^[A-Z0-9-]*:" "$rundir/miniupnpd-ra.log" | tail -n 15)"
	reach $port "$eport" || fail "$proto: s cannot reach a:$port through 198.18.1.2:$eport"
	listed=$(X a upnpc -i -l 2>/dev/null | grep -E "TCP +$eport->10.0.1.2:$port " || true)
	[ -n "$listed" ] || fail "$proto: upnpc -l does not list $eport->10.0.1.2:$port"
	kill -TERM "$holder"
	rc=0; wait "$holder" || rc=$?
	[ "$rc" = 143 ] || fail "$proto: the holder exited $rc after SIGTERM (want 143): $(cat "$TMP/$proto.err")"
	grep -q "deleted $proto 198.18.1.2:$eport (on a signal)" "$TMP/$proto.err" || fail "$proto: $(cat "$TMP/$proto.err")"
	rule_is "$eport" $port absent || fail "$proto: the rule survived SIGTERM: $(rules)"
	X a upnpc -i -l 2>/dev/null | grep -qE "TCP +$eport->" && fail "$proto: upnpc -l still lists $eport"
	reach $port "$eport" && fail "$proto: s still reaches a:$port after the delete"
	ok "rawpunch portmap --protocols $proto: 198.18.1.2:$eport -> a:$port, s reaches a; SIGTERM deletes it (rule and upnpc -l)"
done

# ------------------------------------------------------------ refresh: a 2 s mapping is renewed while held
# miniupnpd's lease file has each mapping's expiry time; every refresh moves it on.
lease_t() { awk -F: -v p=5150 '$1 == "TCP" && $2 == p {print $5}' "$rundir/miniupnpd-ra.leases" 2>/dev/null; }
tools/natlab exec "$LAB" a "$RP" portmap --port 5150 --protocols pcp --lifetime 2 --json >"$TMP/r.json" 2>"$TMP/r.err" &
holder=$!
wait_json "$TMP/r.json"
[ "$(jq -r .lifetime "$TMP/r.json")" = 2 ] || fail "refresh: granted $(jq -r .lifetime "$TMP/r.json") s, asked 2"
t1=$(lease_t); sleep 3; t2=$(lease_t)
[ -n "$t1" ] && [ -n "$t2" ] && [ "$t2" -gt "$t1" ] || fail "refresh: lease expiry $t1 -> $t2 in 3 s while held"
kill -STOP "$holder"
sleep 0.5; t3=$(lease_t); sleep 2.5; t4=$(lease_t)
# not renewed: the same expiry, or gone (miniupnpd dropped the expired lease)
[ -z "$t4" ] || [ "$t3" = "$t4" ] || fail "refresh: the lease moved ($t3 -> $t4) while the holder was stopped"
kill -CONT "$holder"
sleep 1.5; t5=$(lease_t)
[ -n "$t5" ] && [ "$t5" -gt "$t3" ] || fail "refresh: no refresh after SIGCONT ($t3 -> ${t5:-none}): $(cat "$TMP/r.err")"
kill -TERM "$holder"; rc=0; wait "$holder" || rc=$?
[ "$rc" = 143 ] || fail "refresh: holder exit $rc (want 143): $(cat "$TMP/r.err")"
rule_is 5150 5150 absent || fail "refresh: SIGTERM left the rule"
ok "refresh: a 2 s PCP mapping's lease moves on while held ($t1 -> $t2), not while the holder is stopped (${t4:-dropped}), again after SIGCONT ($t5)"

# ------------------------------------------------------------ kill -9: --delete, then the next run
tools/natlab exec "$LAB" a "$RP" portmap --port 5201 --protocols pcp --json >"$TMP/k1.json" 2>/dev/null &
holder=$!; wait_json "$TMP/k1.json"
kill -9 "$holder"; wait "$holder" 2>/dev/null || true
rule_is 5201 5201 present || fail "kill -9: the mapping should outlive its holder"
out=$(X a "$RP" portmap --delete --port 5201 2>&1) || fail "--delete: $out"
grep -q 'deleted 1 mapping(s) of port 5201' <<<"$out" || fail "--delete: $out"
rule_is 5201 5201 absent || fail "--delete left the rule"
ok "a kill -9'd PCP holder's mapping: --delete --port removes it (nonce from its record)"

tools/natlab exec "$LAB" a "$RP" portmap --port 5202 --protocols natpmp --json >"$TMP/k2.json" 2>/dev/null &
holder=$!; wait_json "$TMP/k2.json"
kill -9 "$holder"; wait "$holder" 2>/dev/null || true
rule_is 5202 5202 present || fail "kill -9: the mapping should outlive its holder"
out=$(X a "$RP" portmap --port 5203 --hold 0 2>&1) || fail "the next run: $out"
grep -q 'deleted 1 mapping(s) left by killed runs first' <<<"$out" || fail "the next run did not sweep: $out"
rule_is 5202 5202 absent || fail "the next run left the killed holder's rule"
ok "a kill -9'd NAT-PMP holder's mapping: the next run deletes it first"

# ------------------------------------------------------------ PCP PEER reveals a live flow's external port
tools/natlab exec "$LAB" s timeout 8 socat -T6 TCP4-LISTEN:9100,bind=198.18.3.2,reuseaddr SYSTEM:'echo $SOCAT_PEERPORT; sleep 5' >"$TMP/s.out" 2>/dev/null &
sp=$!
for i in $(seq 50); do X s ss -Hlnt "sport = :9100" | grep -q . && break; sleep 0.05; done
tools/natlab exec "$LAB" a timeout 7 socat -T6 - TCP4:198.18.3.2:9100,sourceport=5300,reuseaddr </dev/null >"$TMP/a.out" 2>/dev/null &
ap=$!
for i in $(seq 50); do [ -s "$TMP/a.out" ] && break; sleep 0.05; done
seen=$(head -n1 "$TMP/a.out")
[[ $seen =~ ^[0-9]+$ ]] || fail "PEER: s did not report the flow's port ('$seen')"
[ "$seen" != 5300 ] || fail "PEER: the sequential NAT kept port 5300: nothing to reveal"
j=$(X a "$RP" portmap --port 5300 --peer 198.18.3.2:9100 --protocols pcp --lifetime 3 --hold 0 --json 2>"$TMP/peer.err" || true)
[ "$(jq -r .external_port <<<"$j")" = "$seen" ] ||
	fail "PEER: PCP said $(jq -r .external <<<"$j"), s saw port $seen: $j $(cat "$TMP/peer.err")"
kill "$ap" "$sp" 2>/dev/null || true; wait "$ap" "$sp" 2>/dev/null || true
ok "PCP PEER for a:5300 -> s:9100 reveals the sequential NAT's port $seen, the one s saw"
# miniupnpd 2.3.1 cannot find its own PEER rules to delete them (NO_RESOURCES), so the record stays
# until the lifetime ends; a sweep then drops it as expired.
sleep 3.2
out=$(X a "$RP" portmap --delete --port 5300 2>&1 || true)
grep -q 'deleted 1 mapping(s) of port 5300 left by killed runs (1 had expired already)' <<<"$out" ||
	grep -q 'nothing recorded for port 5300' <<<"$out" || fail "PEER record: $out"
echo "  PEER record after its lifetime: $out"

# ------------------------------------------------------------ a NAT-PMP-only router (b)
j=$(X b "$RP" portmap --port 5400 --hold 0 --json 2>"$TMP/b.err") || fail "b: $(cat "$TMP/b.err")"
[ "$(jq -r .protocol <<<"$j")" = natpmp ] || fail "b: $j"
grep -q 'pcp    port unreachable: nothing serves PCP at 10.0.2.1:5351' "$TMP/b.err" || fail "b: $(cat "$TMP/b.err")"
ok "b (NAT-PMP only): natpmp maps $(jq -r .external <<<"$j"); pcp: port unreachable"

# ------------------------------------------------------------ a lab without port mapping
LAB2=$(unique_lab lpn)
lab_up "$LAB2"
t0=$(date +%s%N)
if j=$(tools/natlab exec "$LAB2" a "$RP" portmap --port 5500 --json 2>"$TMP/none.err"); then
	fail "no portmap lab: rawpunch portmap succeeded: $j"
fi
t1=$(date +%s%N)
el=$(jq -r .elapsed_ms <<<"$j")
awk -v e="$el" 'BEGIN{exit !(e <= 300)}' || fail "no portmap lab: took $el ms (want <= 300)"
wall=$(( (t1 - t0) / 1000000 ))
grep -q 'no port mapping service at 10.0.1.1 answered' "$TMP/none.err" || fail "no portmap lab: $(cat "$TMP/none.err")"
grep -q 'pcp    port unreachable' "$TMP/none.err" && grep -q 'natpmp port unreachable' "$TMP/none.err" &&
	grep -q 'upnp   port unreachable: no SSDP' "$TMP/none.err" || fail "no portmap lab: reasons: $(cat "$TMP/none.err")"
ok "a lab without port mapping: fails in $el ms ($wall ms with natlab exec), each protocol says why"
# a gateway that says nothing at all (drops 5351 and 1900 on its inside) costs no more
tools/natlab exec "$LAB2" ra nft add table inet silent
tools/natlab exec "$LAB2" ra nft add chain inet silent in '{ type filter hook input priority filter; policy accept; }'
tools/natlab exec "$LAB2" ra nft add rule inet silent in iifname eth0 udp dport '{ 1900, 5351 }' drop
j=$(tools/natlab exec "$LAB2" a "$RP" portmap --port 5501 --json 2>"$TMP/silent.err") && fail "silent gateway: mapped? $j"
el=$(jq -r .elapsed_ms <<<"$j")
awk -v e="$el" 'BEGIN{exit !(e <= 300)}' || fail "silent gateway: took $el ms (want <= 300)"
grep -q 'pcp    no answer from 10.0.1.1:5351 within 250 ms' "$TMP/silent.err" || fail "silent gateway: $(cat "$TMP/silent.err")"
ok "a gateway that drops PCP, NAT-PMP and SSDP: fails in $el ms, 'no answer' for each"

# ------------------------------------------------------------ down after a killed up
LAB3=$(unique_lab lpk)
_NATLAB_LABS+=("$LAB3")     # removed on exit whatever happens below
tools/natlab up "$LAB3" --portmap-a pcp >/dev/null 2>&1 &
up=$!
r3=${NATLAB_RUNDIR:-/run/natlab}/$LAB3
mpid=
for i in $(seq 200); do   # until miniupnpd runs in ra's namespace
	[ -s "$r3/miniupnpd-ra.start" ] && mpid=$(cat "$r3/miniupnpd-ra.pid") &&
		[ "$(ip netns identify "$mpid" 2>/dev/null)" = "rp$LAB3-ra" ] && break
	mpid=; sleep 0.05
done
[ -n "$mpid" ] || fail "natlab up $LAB3 did not start miniupnpd"
kill -9 "$up"; wait "$up" 2>/dev/null || true
tools/natlab down "$LAB3" || fail "natlab down $LAB3 after a killed up"
sleep 0.2
if [ -e "/proc/$mpid" ] && ! grep -q '^State:.*Z' "/proc/$mpid/status" 2>/dev/null; then
	fail "miniupnpd (pid $mpid) survived natlab down after a killed up"
fi
[ ! -e "/run/netns/rp$LAB3-ra" ] && [ ! -e "$r3" ] || fail "$LAB3 left namespaces or $r3"
ok "natlab down after a killed up: miniupnpd gone, namespaces and state dir gone"
