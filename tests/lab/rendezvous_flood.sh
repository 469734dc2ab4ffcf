#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Rendezvous server under a flood (issue 14): one client pipelines "time" frames as fast as its socket
# takes them (tools/rv-load flood, from a) while five pairs of normal clients (from b) join again and
# again (connect, 16 clock samples at once, join, hello, info: tools/rv-load joins). Every join must
# succeed and the p99 join latency stay under 200 ms: the server handles at most a round's budget of
# each connection's frames per wakeup and holds each to its message rate, so the flooder gets its
# share, not the server. The same joins without the flood give the baseline. Prints both.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/rendezvous_common.bash
rv_lab rvf rv-flood

ip netns exec "rp$L-s" "$RP" rendezvous --listen "$SRV" -v >"$T/srv.out" 2>"$T/srv.err" &
spid=$!
wait_line "$T/srv.out" "listening on $SRV" || fail "server did not start: $(cat "$T/srv.err")"
p99() { sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' "$1"; }

# baseline: the same joins on an idle server
X "$L" b "$LOAD" "$SRV" joins 5 20 >"$T/base" 2>&1 || fail "joins without a flood: $(cat "$T/base")"
echo "idle:  $(cat "$T/base")"

# the flood, with the joins in its middle
X "$L" a "$LOAD" "$SRV" flood 12 >"$T/flood" 2>&1 &
fpid=$!
sleep 2
rc=0
X "$L" b "$LOAD" "$SRV" joins 5 20 >"$T/joins" 2>&1 || rc=$?
wait $fpid || fail "flooder: $(cat "$T/flood")"
echo "flood: $(cat "$T/joins")"
echo "       $(cat "$T/flood")"
kill -0 $spid 2>/dev/null || fail "server died under the flood"
[ "$rc" = 0 ] || fail "joins failed under the flood: $(cat "$T/joins")"
p=$(p99 "$T/joins")
[ -n "$p" ] || fail "no p99 in: $(cat "$T/joins")"
awk -v p="$p" 'BEGIN { exit !(p < 200) }' || fail "p99 join latency $p ms under the flood (want < 200 ms)"
grep -q "time frames sent" "$T/flood" || fail "flooder: $(cat "$T/flood")"
ok "200 joins beside a flooding client: p99 $p ms (idle: $(p99 "$T/base") ms)"
kill -TERM $spid
wait $spid || fail "server exit status $? after SIGTERM"
grep -q "rendezvous: .* connections" "$T/srv.err" || fail "no final stats"
echo "PASS"
