#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch probe against the NATs of issue 11, PROFILE_RUNS runs per profile (default 3; the README's
# figures come from PROFILE_RUNS=20). Four labs with a profile on each side, and a lab of its own for
# every block-seq run; a rawpunch rendezvous server on s for the filter probe and nat_ttl's
# confirmation (restarted before every round of runs: its per-address rate limit is for the
# internet, not for a test that probes twenty times a minute).
# Every run must name its NAT right (and the filtering: rst, drop for the double preserving NAT):
#   block               random, range = the lab's block for a, nat_ttl 2 from the hops
#   block-seq:256       sequential, delta 1, range = a's block (the counter is first moved near the
#                       block's end so that the samples see it wrap), the next real flow in the
#                       predicted window, which stays in the block. A fresh lab each time: going
#                       round the block again within seconds would meet the last run's flows to the
#                       same STUN endpoint still in conntrack, and the lab's NAT drops such SYNs
#   sequential:2 / :-1 / :3   the delta, the next real flow in the predicted window
#   address-dependent   mapping address-dependent, nat_ttl 2 confirmed by the server's connect-back
#   preserve behind a preserving carrier NAT (double preserving NAT): endpoint-independent,
#                       preserving, nat_ttl 3 confirmed, the server 5 hops away
#   preserve            endpoint-independent, preserving, nat_ttl 2 confirmed
#   preserve behind a block carrier NAT with private hops (100.64/10, the carrier's router in 10/8):
#                       random with the carrier's block as range, nat_ttl 3 from Record Route; and,
#                       once the carrier NAT drops IP options, nat_ttl 4 as a fallback (still past
#                       both NATs)
# Runs on one side are at least a second apart (routers send 6 ICMP errors, then 1/s per destination).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
RP=$(realpath -m "${RAWPUNCH:-${BUILD:-build}/rawpunch}")
[ -x "$RP" ] || fail "$RP not built"
for t in jq socat; do command -v "$t" >/dev/null || fail "$t missing (make deps)"; done
RUNS=${PROFILE_RUNS:-3}
TMP=$(mktemp -d /tmp/rp-pprof.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$TMP"; _natlab_cleanup' EXIT
declare -A named last_run
RV_PID=""

start_rv() {   # start_rv LAB: (re)start the rendezvous server on s
	local lab=$1
	[ -n "$RV_PID" ] && { kill "$RV_PID" 2>/dev/null || true; wait "$RV_PID" 2>/dev/null || true; }
	setsid ip netns exec "rp$lab-s" "$RP" rendezvous --listen 198.18.3.2:7777 </dev/null >>"$TMP/rv-$lab.log" 2>&1 &
	RV_PID=$!
	for _ in $(seq 50); do
		tools/natlab exec "$lab" s -- ss -Hlnt 'src 198.18.3.2:7777' | grep -q . && return 0; sleep 0.05
	done
	fail "rendezvous server on $lab did not start: $(cat "$TMP/rv-$lab.log")"
}

space() {   # space KEY: at least 1.1 s since the last run of KEY
	local now dt
	now=$(date +%s%N)
	dt=$(( (now - ${last_run[$1]:-0}) / 1000000 ))
	[ "$dt" -lt 1100 ] && sleep "$(printf '%d.%03d' $(( (1100 - dt) / 1000 )) $(( (1100 - dt) % 1000 )))"
	last_run[$1]=$(date +%s%N)
}

# (--no-portmap: asking a router without PCP/NAT-PMP draws its ICMP port-unreachables, which spend the
# same per-destination ICMP budget as the TTL search's time-exceeded: runs back to back then lose hop 1)
# probe LAB HOST: one probe from a fresh punch port, then a real flow from that port to whoami
# -> $TMP/run.json, $NEXT (the port whoami saw), $PORT
probe() {
	local lab=$1 h=$2
	PORT=$((20000 + RANDOM % 20000))
	tools/natlab exec "$lab" "$h" -- bash -c '
		"$1" probe --stun 198.18.3.2 --rendezvous 198.18.3.2:7777 --filter-timeout 500 --no-portmap \
			--local-port "$2" --samples 12 --json >"$3/run.json" 2>"$3/run.err" || exit 1
		socat -T2 - "TCP4:198.18.3.2:7000,sourceport=$2,reuseaddr" </dev/null 2>/dev/null' \
		_ "$RP" "$PORT" "$TMP" >"$TMP/next" || fail "$lab $h: probe failed: $(cat "$TMP/run.err")"
	NEXT=$(cat "$TMP/next")
	NEXT=${NEXT##*:}
}

WHAT=""   # the profile being checked, for messages
chk() {   # chk JQ WANT
	local got
	got=$(jq -r "$1" "$TMP/run.json")
	[ "$got" = "$2" ] || fail "$WHAT: $1 = $got, want $2: $(jq -c 'del(.samples)' "$TMP/run.json")"
}
chk_true() { jq -e "$1" "$TMP/run.json" >/dev/null || fail "$WHAT: not $1: $(jq -c 'del(.samples)' "$TMP/run.json")"; }
next_predicted() {
	jq -e --argjson p "$NEXT" '.predicted | index($p) != null' "$TMP/run.json" >/dev/null ||
		fail "$WHAT: the next flow's port $NEXT is outside the predicted window $(jq -c .predicted "$TMP/run.json")"
}
passed() { named[$1]=$(( ${named[$1]:-0} + 1 )); cp "$TMP/run.json" "$TMP/last-$1.json"; }
block_of() { local b; b=$(lab_state "$1" "$2"); b=${b%% *}; echo "${b#*:}"; }

# --- profile checks, one run each --------------------------------------------------------------
common() {   # common MAPPING ALLOC NAT_TTL METHOD SERVER_HOPS [FILTERING]
	chk '.mapped | split(":")[0]' "$PUB"
	chk .filtering "${6:-rst}"
	chk .behind_nat true
	chk .mapping "$1"
	chk .allocation "$2"
	chk .nat_ttl "$3"
	chk .nat_ttl_method "$4"
	chk .server_hops "$5"
	# (address-dependent can hash two flows onto one port, and the lab's NAT drops the second)
	chk_true '.samples | map(select(.kind == "alloc" and .mapped != null)) | length >= 11'
}

run_block() {   # a behind block
	WHAT="block run $1" PUB=198.18.1.2
	space a; probe "$L1" a
	local b; b=$(block_of "$L1" nat_a_blocks)
	common address-and-port-dependent random 2 hops 3
	chk .delta null
	chk '.range | "\(.lo)-\(.hi)"' "$b"
	chk_true '.range.confidence >= 0.9'
	chk '.hops_say.evidence' record-route
	in_block "$NEXT" "$b" || fail "$WHAT: the next flow got port $NEXT, outside $b"
	passed block
}

run_blockseq() {   # a behind block-seq:256, in a lab of its own; first move a's counter near its end
	WHAT="block-seq:256 run $1" PUB=198.18.1.2
	local L b lo hi c n
	L=$(unique_lab pq)
	lab_up "$L" --nat-a block-seq:256
	start_rv "$L"
	b=$(block_of "$L" nat_a_blocks) lo=${b%-*} hi=${b#*-}
	c=$(whoami "$L" a) || fail "$WHAT: whoami from a"
	c=${c##*:}
	# before test 1 the probe's own flows take about 9 more ports (the pre-flight's connections to
	# the STUN and rendezvous servers, the rendezvous connection, the TTL search's flows); put test 1
	# about 10 ports before the end, so its 16 samples wrap whatever that count does within +-5
	n=$(( ((hi - 20 - c) % 256 + 256) % 256 ))
	if [ "$n" -gt 0 ]; then
		tools/natlab exec "$L" a -- "$RP" syn 198.18.3.2 -p 9 --sport "30000-$((30000 + n - 1))" --rate 20000 \
			>/dev/null 2>&1 || fail "$WHAT: moving the counter"
	fi
	probe "$L" a
	common address-and-port-dependent sequential 2 hops 3
	chk .delta 1
	chk '.range | "\(.lo)-\(.hi)"' "$b"
	chk .fit.range_from wrap
	chk_true ".predicted | all(. >= $lo and . <= $hi)"
	next_predicted
	passed block-seq:256
	"$NATLAB" down "$L" >/dev/null
	RV_PID=""
}

run_seq() {   # run_seq LAB SIDE DELTA N
	local side=$2 d=$3
	WHAT="sequential:$d run $4"
	PUB=198.18.1.2; [ "$side" = b ] && PUB=198.18.2.2
	space "$1$side"; probe "$1" "$side"
	common address-and-port-dependent sequential 2 hops 3
	chk .delta "$d"
	next_predicted
	passed "sequential:$d"
}

run_addrdep() {   # a behind address-dependent
	WHAT="address-dependent run $1" PUB=198.18.1.2
	space a; probe "$L3" a
	common address-dependent random 2 confirmed 3
	# Record Route showed ra at hop 1: one test at TTL 2 settles it
	chk '.confirm | map("\(.ttl):\(.passed)") | join(" ")' "2:true"
	passed address-dependent
}

run_preserve() {   # b behind a plain preserving NAT
	WHAT="preserve run $1" PUB=198.18.2.2
	space b; probe "$L4" b
	common endpoint-independent preserving 2 confirmed 3
	[ "$NEXT" = "$PORT" ] || fail "$WHAT: the next flow got port $NEXT, not the punch port $PORT"
	passed preserve
}

run_double() {   # b behind preserve behind a preserving carrier NAT
	WHAT="double preserving NAT run $1" PUB=198.18.2.2
	space b; probe "$L3" b
	common endpoint-independent preserving 3 confirmed 5 drop
	chk '.predicted | tostring' "[$PORT]"
	[ "$NEXT" = "$PORT" ] || fail "$WHAT: the next flow got port $NEXT, not the punch port $PORT"
	chk '.confirm | map("\(.ttl):\(.passed)") | join(" ")' "3:true"
	passed double-preserve
}

run_cgn() {   # a behind preserve behind a block carrier NAT, private hops past it
	WHAT="carrier NAT (block) run $1" PUB=198.18.1.2
	local b; b=$(block_of "$L4" cgn_a_blocks)
	space a; probe "$L4" a
	common address-and-port-dependent random 3 hops 5
	chk '.range | "\(.lo)-\(.hi)"' "$b"
	chk '.hops_say.evidence' record-route
	chk '[.hops[] | .from // "server"] | join(" ")' "10.0.1.1 100.64.1.1 10.255.1.1 198.18.1.1 server"
	passed cgn-private-hops
}

start=$(date +%s)

for n in $(seq "$RUNS"); do run_blockseq "$n"; done
ok "block-seq:256: $RUNS runs ($(jq -c '{allocation, delta, range, predicted: (.predicted | "\(first)..\(last)")}' "$TMP/last-block-seq:256.json"))"

L1=$(unique_lab pp)
lab_up "$L1" --nat-a block --nat-b sequential:3
for n in $(seq "$RUNS"); do start_rv "$L1"; run_block "$n"; run_seq "$L1" b 3 "$n"; done
ok "block and sequential:3: $RUNS runs each ($(jq -c '{allocation, range, nat_ttl, nat_ttl_method}' "$TMP/last-block.json"))"
"$NATLAB" down "$L1" >/dev/null

L2=$(unique_lab pp)
lab_up "$L2" --nat-a sequential:2 --nat-b sequential:-1
for n in $(seq "$RUNS"); do start_rv "$L2"; run_seq "$L2" a 2 "$n"; run_seq "$L2" b -1 "$n"; done
ok "sequential:2 and sequential:-1: $RUNS runs each"
"$NATLAB" down "$L2" >/dev/null

L3=$(unique_lab pp)
lab_up "$L3" --nat-a address-dependent --nat-b preserve --cgn-b preserve --filter-b drop
for n in $(seq "$RUNS"); do start_rv "$L3"; run_addrdep "$n"; run_double "$n"; done
ok "address-dependent and a double preserving NAT: $RUNS runs each, nat_ttl confirmed ($(jq -c '{nat_ttl, confirm}' "$TMP/last-double-preserve.json"))"
# The carrier NAT drops packets with IP options: the hops alone say 4 (the first public hop, a
# fallback), and the connect-backs correct it: TTL 3 gets the server back in, TTL 2 does not.
ip netns exec "rp$L3-cb" nft add table ip rp_noopts
ip netns exec "rp$L3-cb" nft add chain ip rp_noopts fw '{ type filter hook forward priority 0 ; }'
ip netns exec "rp$L3-cb" nft add rule ip rp_noopts fw ip option rr exists drop
WHAT="double preserving NAT dropping IP options" PUB=198.18.2.2
start_rv "$L3"; space b; probe "$L3" b
common endpoint-independent preserving 3 confirmed 5 drop
chk '.hops_say.evidence' first-public-hop
chk '.confirm | map("\(.ttl):\(.passed)") | join(" ")' "3:true 2:false"
ok "options dropped at the carrier NAT: the hops' fallback (4) confirmed down to nat_ttl 3"
"$NATLAB" down "$L3" >/dev/null

L4=$(unique_lab pp)
lab_up "$L4" --nat-a preserve --cgn-a block --nat-b preserve
for n in $(seq "$RUNS"); do start_rv "$L4"; run_cgn "$n"; run_preserve "$n"; done
ok "a carrier NAT with private hops: $RUNS runs ($(jq -c '{nat_ttl, nat_ttl_method, hops_say}' "$TMP/last-cgn-private-hops.json")); preserve"
# The carrier NAT drops packets with IP options: no Record Route past it, and the hops alone (all
# private but inet) cannot show it. nat_ttl falls back to the first public hop, which is past both.
ip netns exec "rp$L4-ca" nft add table ip rp_noopts
ip netns exec "rp$L4-ca" nft add chain ip rp_noopts fw '{ type filter hook forward priority 0 ; }'
ip netns exec "rp$L4-ca" nft add rule ip rp_noopts fw ip option rr exists drop
WHAT="carrier NAT dropping IP options" PUB=198.18.1.2
start_rv "$L4"; space a; probe "$L4" a
common address-and-port-dependent random 4 fallback 5
chk '.hops_say.record_route_dropped' true
chk '.hops_say.evidence' first-public-hop
ok "options dropped at the carrier NAT: nat_ttl 4 (fallback, the first public hop), hops still listed"
"$NATLAB" down "$L4" >/dev/null

for p in block block-seq:256 sequential:2 sequential:-1 sequential:3 address-dependent preserve double-preserve \
	cgn-private-hops; do
	echo "named right: $p ${named[$p]:-0}/$RUNS"
	[ "${named[$p]:-0}" -eq "$RUNS" ] || fail "$p: ${named[$p]:-0} of $RUNS"
done
ok "every profile named right in all $RUNS runs, $(( $(date +%s) - start )) s"
