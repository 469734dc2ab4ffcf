#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fallback as it is meant to be used: BOTH peers behind NATs (preserving, dropping unsolicited
# inbound), neither with CAP_NET_ADMIN, so TCP_REPAIR is refused on both sides and each rp_handoff()
# makes a kernel connect() from its punch port to the other's public address and port at the same
# time: a TCP simultaneous open through two NATs (RFC 5382 REQ-2a; conntrack's SYN_SENT2).
# Asserts: both results report path=connect with repair_errno=EPERM, each side's socket is on its own
# punch port, 8 MiB cross each way with matching SHA-256, and no RST on the wire between the NATs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/handoff_common.bash
BYTES=$((8 << 20)) PA=40501 PB=40502
ho_lab hos --nat-a preserve --nat-b preserve --filter-a drop --filter-b drop

ip netns exec "rp$LAB-inet" dumpcap -q -i to-ra -f "tcp port $PA and tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0" \
	-w "$tmp/flags.pcapng" 2>"$tmp/dumpcap.err" &
dc=$!; pids+=($dc)
for _ in $(seq 100); do grep -q "Capturing on" "$tmp/dumpcap.err" 2>/dev/null && break; sleep 0.05; done
grep -q "Capturing on" "$tmp/dumpcap.err" || fail "dumpcap did not start"

tools/natlab exec "$LAB" b -- "${nocap[@]}" "$HOXFER" client --to 198.18.1.2:$PA --lport $PB --handoff fresh \
	--role server --bytes $BYTES >"$tmp/b.out" 2>"$tmp/b.err" &
bpid=$!; pids+=($bpid)
tools/natlab exec "$LAB" a -- "${nocap[@]}" "$HOXFER" client --to 198.18.2.2:$PB --lport $PA --handoff fresh \
	--bytes $BYTES >"$tmp/a.out" 2>"$tmp/a.err" || fail "a failed: $(cat "$tmp/a.err" "$tmp/a.out")"
wait $bpid || fail "b failed: $(cat "$tmp/b.err" "$tmp/b.out")"
cat "$tmp/a.out" "$tmp/b.out"
for h in a b; do
	[ "$(kv "$tmp/$h.out" path)" = connect ] || fail "$h: not the connect() fallback"
	[ "$(kv "$tmp/$h.out" repair_errno)" = 1 ] || fail "$h: TCP_REPAIR was not refused with EPERM"
	[ "$(kv "$tmp/$h.out" content_ok)" = 1 ] || fail "$h: content mismatch"
	[ "$(kv "$tmp/$h.out" recv)" = $BYTES ] || fail "$h: short transfer"
done
[ "$(kv "$tmp/a.out" lport)" = $PA ] && [ "$(kv "$tmp/b.out" lport)" = $PB ] || fail "not on the punch ports"
[ "$(kv "$tmp/a.out" sent_sha)" = "$(kv "$tmp/b.out" recv_sha)" ] || fail "a->b SHA-256 mismatch"
[ "$(kv "$tmp/b.out" sent_sha)" = "$(kv "$tmp/a.out" recv_sha)" ] || fail "b->a SHA-256 mismatch"
ok "simultaneous open through two NATs without CAP_NET_ADMIN: 8 MiB each way, SHA-256 matches"
sleep 0.3
kill -INT $dc; wait $dc 2>/dev/null || true
tshark -r "$tmp/flags.pcapng" -T fields -e ip.src -e tcp.flags.syn -e tcp.flags.fin -e tcp.flags.reset \
	>"$tmp/flags.txt" 2>/dev/null || fail "tshark could not read the capture"
syn=$(awk '$2==1 {n++} END{print n+0}' "$tmp/flags.txt")
fin=$(awk '$3==1 {n++} END{print n+0}' "$tmp/flags.txt")
rst=$(awk '$4==1 {n++} END{print n+0}' "$tmp/flags.txt")
echo "wire (inet<->ra): SYN/SYN-ACK $syn, FIN $fin, RST $rst"
[ "$syn" -ge 2 ] && [ "$fin" -ge 2 ] || fail "capture missed the handshake or the close"
[ "$rst" -eq 0 ] || fail "$rst RSTs on the wire"
ok "no RST on the wire"
