#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ssh -L style forwarding over handed-off connections (rawpunch/handoff/fdmode.h rp_forward): in a's namespace
# a listener on 127.0.0.1:6000 takes 4 clients AT ONCE; each is carried over its OWN new connection to
# an echo service on s (raw handshake from a fresh port with the RST guard, rp_handoff_from_tcb(),
# rp_handoff() via TCP_REPAIR, guard removed). Asserts: every client gets its 4 MiB back intact
# (cmp), the forwarder reports 4 clients completed over 4 repair handoffs, on the wire there are 4
# SYNs from 4 different public ports, FINs, and no RST.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/handoff_common.bash
N=4 PORT=7100
ho_lab hox

ip netns exec "rp$LAB-inet" dumpcap -q -i to-ra -f "tcp port $PORT and tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0" \
	-w "$tmp/flags.pcapng" 2>"$tmp/dumpcap.err" &
dc=$!; pids+=($dc)
for _ in $(seq 100); do grep -q "Capturing on" "$tmp/dumpcap.err" 2>/dev/null && break; sleep 0.05; done
grep -q "Capturing on" "$tmp/dumpcap.err" || fail "dumpcap did not start"

ip netns exec "rp$LAB-s" socat -t 30 TCP4-LISTEN:$PORT,bind=198.18.3.2,reuseaddr,fork EXEC:cat 2>"$tmp/echo.err" &
pids+=($!)
for _ in $(seq 100); do ip netns exec "rp$LAB-s" ss -Hltn "sport = :$PORT" | grep -q . && break; sleep 0.05; done
tools/natlab exec "$LAB" a -- "$HOXFER" forward --listen 127.0.0.1:6000 --to 198.18.3.2:$PORT --handoff raw \
	--clients $N >"$tmp/fwd.out" 2>"$tmp/fwd.err" &
fwd=$!; pids+=($fwd)
for _ in $(seq 100); do grep -q listening "$tmp/fwd.out" 2>/dev/null && break; sleep 0.05; done
grep -q listening "$tmp/fwd.out" || fail "forwarder did not start: $(cat "$tmp/fwd.err")"

cl=()
for i in $(seq $N); do
	head -c $((4 << 20)) /dev/urandom >"$tmp/in.$i"
	tools/natlab exec "$LAB" a -- socat -t 30 - TCP4:127.0.0.1:6000 <"$tmp/in.$i" >"$tmp/out.$i" 2>"$tmp/cl.$i.err" &
	cl+=($!)
done
for i in $(seq $N); do
	wait "${cl[$((i - 1))]}" || fail "client $i failed: $(cat "$tmp/cl.$i.err")"
	cmp -s "$tmp/in.$i" "$tmp/out.$i" || fail "client $i: echo differs ($(stat -c %s "$tmp/out.$i") bytes back): $(cat "$tmp/cl.$i.err"); forwarder: $(kill $fwd; sleep 0.5; cat "$tmp/fwd.out" "$tmp/fwd.err")"
done
ok "$N clients at once, 4 MiB each echoed intact through the forward"
wait $fwd || fail "forwarder failed: $(cat "$tmp/fwd.err" "$tmp/fwd.out")"
cat "$tmp/fwd.out"
[ "$(kv "$tmp/fwd.out" completed)" = $N ] || fail "forwarder: $(kv "$tmp/fwd.out" completed) of $N completed"
[ "$(kv "$tmp/fwd.out" repair)" = $N ] || fail "forwarder: $(kv "$tmp/fwd.out" repair) of $N via TCP_REPAIR"
[ "$(kv "$tmp/fwd.out" up)" = $((N * 4 << 20)) ] || fail "forwarder carried $(kv "$tmp/fwd.out" up) bytes up"

sleep 0.3
kill -INT $dc; wait $dc 2>/dev/null || true
tshark -r "$tmp/flags.pcapng" -T fields -e ip.src -e tcp.srcport -e tcp.flags.syn -e tcp.flags.ack -e tcp.flags.fin \
	-e tcp.flags.reset >"$tmp/flags.txt" 2>/dev/null || fail "tshark could not read the capture"
syns=$(awk '$1=="198.18.1.2" && $3==1 && $4==0 {print $2}' "$tmp/flags.txt" | sort -u | wc -l)
synt=$(awk '$1=="198.18.1.2" && $3==1 && $4==0' "$tmp/flags.txt" | wc -l)
fin=$(awk '$5==1' "$tmp/flags.txt" | wc -l)
rst=$(awk '$6==1' "$tmp/flags.txt" | wc -l)
echo "wire: $synt SYNs from a from $syns ports, $fin FINs, $rst RSTs"
[ "$syns" -eq $N ] && [ "$synt" -ge $N ] || fail "want SYNs from $N different ports"
[ "$fin" -ge $((2 * N)) ] || fail "missing FINs"
[ "$rst" -eq 0 ] || fail "$rst RSTs on the wire"
ok "one new punched connection per client (4 ports), FIN both ways, no RST"
