#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Rendezvous server at its descriptor limit (issue 14): run with `ulimit -n 64`, then open 75
# connections from three source addresses (a, b and inet; tools/rv-load hold). The server caps its
# connections to what the limit leaves (64 - 16 reserved - 6 for filter probes = 42: the startup line
# says so), answers exactly that many and refuses the rest; while they are held, its CPU use (utime +
# stime from /proc/PID/stat over 3 s) stays under 10 % (a level-triggered listener whose accept fails
# with EMFILE would spin at 100 %); once a's connections close, a new client is served.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/rendezvous_common.bash
rv_lab rvd rv-fd

# exec keeps the PID: $! is the server
ip netns exec "rp$L-s" bash -c "ulimit -n 64 && exec \"\$0\" rendezvous --listen $SRV -v" "$RP" \
	>"$T/srv.out" 2>"$T/srv.err" &
spid=$!
wait_line "$T/srv.out" "listening on $SRV" || fail "server did not start: $(cat "$T/srv.err")"
[ "$(awk '/Max open files/ { print $4 }' "/proc/$spid/limits")" = 64 ] || fail "server's fd limit is not 64"
echo "$(cat "$T/srv.out")"

X "$L" a "$LOAD" "$SRV" hold 25 6 >"$T/hold-a" 2>&1 &
pa=$!
X "$L" b "$LOAD" "$SRV" hold 25 12 >"$T/hold-b" 2>&1 &
pb=$!
X "$L" inet "$LOAD" "$SRV" hold 25 12 >"$T/hold-i" 2>&1 &
pi=$!
for _ in $(seq 60); do
	[ -s "$T/hold-a" ] && [ -s "$T/hold-b" ] && [ -s "$T/hold-i" ] && break
	sleep 0.1
done
cat "$T/hold-a" "$T/hold-b" "$T/hold-i"
answered=$(cat "$T/hold-a" "$T/hold-b" "$T/hold-i" | sed -n 's/.*connected, \([0-9]*\) answered.*/\1/p' |
	   awk '{ s += $1 } END { print s + 0 }')

# CPU over 3 s while 75 connections press on a server at its limit
tck=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$spid/stat"; }
c0=$(cpu); t0=$(date +%s%N)
sleep 3
c1=$(cpu); t1=$(date +%s%N)
pct=$(awk -v c="$((c1 - c0))" -v k="$tck" -v ns="$((t1 - t0))" 'BEGIN { printf "%.1f", 100 * c / k / (ns / 1e9) }')
echo "server CPU at the fd limit: $pct % over 3 s ($answered of 75 connections answered)"
kill -0 $spid 2>/dev/null || fail "server died at its fd limit"
awk -v p="$pct" 'BEGIN { exit !(p < 10) }' || fail "server CPU $pct % at its fd limit (want < 10 %)"
grep -q "(max 4096 sessions, 42 connections)" "$T/srv.out" || fail "max connections not clamped to the fd limit"
[ "$answered" = 42 ] || fail "$answered connections answered, want the 42 the limit leaves"
grep -q "refused .* connection limit" "$T/srv.err" || fail "no refusal logged"
ok "at ulimit -n 64: 42 connections served, the rest refused, CPU $pct %"

# a's 25 go away: a newcomer is served
# (the server sees the closes when it next runs: on a loaded machine that can take a while, so the
# newcomer asks again for up to 15 s; a server that never frees the slots fails all thirty. About one
# run in three is served only at the 12th try, ~6 s on, also on the server of 1a271c6: not looked into)
wait $pa
for try in $(seq 30); do
	sleep 0.5
	X "$L" na "$LOAD" "$SRV" hold 1 0 >"$T/new" 2>&1 || fail "newcomer: $(cat "$T/new")"
	grep -q "1/1 connected, 1 answered" "$T/new" && break
done
grep -q "1/1 connected, 1 answered" "$T/new" || fail "newcomer after a left, 30 tries in 15 s: $(cat "$T/new")"
ok "a newcomer is served once others left (try $try)"
wait $pb $pi
kill -TERM $spid
wait $spid || fail "server exit status $? after SIGTERM"
echo "PASS"
