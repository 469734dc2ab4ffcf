#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch --rendezvous A,B: two rendezvous servers on s (198.18.3.2 and 198.18.3.3); both peers
# order them alike for the session and meet at the first both reach.
#   - both up: they meet and connect (4 MiB each way);
#   - each server in turn killed before the join: the punch still connects (so also when the first in
#     the session's order is dead), within a few seconds;
#   - killed during a join: a waits for b at its server, that server dies, a moves on; b (started
#     after) finds it dead and meets a at the other one; the punch connects.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab prf --nat-a preserve --nat-b preserve   # its server on 198.18.3.2 is stopped below
PUNCH_MIB=1
SPIDS=()
stop_servers() { local p; for p in "${SPIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; SPIDS=(); }
trap 'stop_servers; _natlab_cleanup; rm -rf "$T"' EXIT
# the lab's server on .2 (punch_lab's): ours replace it, with pids we own
for p in $(ip netns pids "rp$LAB-s"); do
	[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$RP")" ] && kill "$p"
done
declare -A SRV=()
start_server() {   # start_server IP
	ip netns exec "rp$LAB-s" "$RP" rendezvous --listen "$1" >/dev/null 2>>"$T/rv-$1.log" &
	SRV[$1]=$!; SPIDS+=($!)
	local i
	for i in $(seq 50); do tools/natlab exec "$LAB" s -- ss -Hltn "src $1 and sport = :7777" | grep -q . && return 0; sleep 0.1; done
	fail "rendezvous server on $1 did not start"
}
kill_server() { kill "${SRV[$1]}"; wait "${SRV[$1]}" 2>/dev/null || true; }
LIST=198.18.3.2,198.18.3.3
sleep 0.3
start_server 198.18.3.2; start_server 198.18.3.3

punch_pair both --rendezvous $LIST
expect_pair_ok both
ok "two servers up: met and connected"

for dead in 198.18.3.2 198.18.3.3; do
	kill_server $dead
	t0=$(date +%s%N)
	punch_pair "down${dead##*.}" --rendezvous $LIST
	expect_pair_ok "down${dead##*.}"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	ok "$dead dead before the join: connected via the other in $ms ms"
	start_server $dead
done

# during a join: a waits at its server, which dies; b comes later
head -c $((PUNCH_MIB << 20)) /dev/urandom >"$T/mid-a.in"; head -c $((PUNCH_MIB << 20)) /dev/urandom >"$T/mid-b.in"
run_side() {
	tools/natlab exec "$LAB" "$1" -- "$RP" punch --rendezvous $LIST --session mid --secret-file "$T/secret" --stdio \
		--report "$T/mid-$1.json" --timeout 20 <"$T/mid-$1.in" >"$T/mid-$1.out" 2>"$T/mid-$1.err"
}
run_side a & PA=$!
at=
for i in $(seq 100); do
	for ip in 198.18.3.2 198.18.3.3; do
		tools/natlab exec "$LAB" s -- ss -Htn state established "src $ip and sport = :7777" | grep -q 198.18.1.2 && at=$ip
	done
	[ -n "$at" ] && break; sleep 0.05
done
[ -n "$at" ] || fail "mid: a never waited at a server"
sleep 0.5
kill_server "$at"
sleep 0.3
run_side b & PB=$!
PAIR_RC=(0 0); wait $PA || PAIR_RC[0]=$?; wait $PB || PAIR_RC[1]=$?
expect_pair_ok mid
ok "$at died while a waited there: both met at the other server and connected"
no_leftovers
