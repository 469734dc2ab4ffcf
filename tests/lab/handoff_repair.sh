#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Handoff with TCP_REPAIR across the NAT lab (a behind ra -> inet -> s): a kernel connection exchanges
# its first bytes (the server's stay unread in a's receive queue), is frozen with TCP_REPAIR, closed
# silently, and rebuilt by rp_handoff() from the plain-field state; then 64 MiB go each way at once.
# Asserts: the repair path was taken, the 3001 unread bytes came back through the rebuilt receive
# queue, SHA-256 of each direction matches at both ends and the content is the expected stream, and
# on the wire (captured between ra and inet): exactly one SYN from a, a FIN each way, no RST at all.
# LOSS=PCT in the environment runs the same over a lossy path (handoff_loss.sh does); HANDOFF=raw does
# the handshake with raw packets instead (rawpunch/punch/session.h, RST guard) and hands the userstack tcb
# over (handoff_raw.sh does): then nothing is unread, the server waits for the client's first byte,
# and the kernel RST to the SYN-ACK must have been dropped by the guard, never seen on the wire.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/handoff_common.bash
BYTES=$((64 << 20)) PRE=3001 PORT=5101 LPORT=40101 HANDOFF=${HANDOFF:-freeze}
case $HANDOFF in
freeze) srvargs=(--pre $PRE); cliargs=(--pre $PRE) ;;
raw)    srvargs=(--wait-first); cliargs=() ;;
*)      fail "HANDOFF=$HANDOFF: freeze or raw" ;;
esac
args=()
[ -n "${LOSS:-}" ] && args+=(--loss "$LOSS")
ho_lab "${LABPFX:-hor}" "${args[@]}"

# Capture SYN/FIN/RST of the flow on inet's link to ra (after NAT: a is 198.18.1.2 there).
ip netns exec "rp$LAB-inet" dumpcap -q -i to-ra -f "tcp port $PORT and tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0" \
	-w "$tmp/flags.pcapng" 2>"$tmp/dumpcap.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "Capturing on" "$tmp/dumpcap.err" 2>/dev/null && break; sleep 0.05; done
grep -q "Capturing on" "$tmp/dumpcap.err" || fail "dumpcap did not start: $(cat "$tmp/dumpcap.err")"

tools/natlab exec "$LAB" s -- "$HOXFER" serve --port $PORT --bytes $BYTES "${srvargs[@]}" >"$tmp/srv.out" 2>"$tmp/srv.err" &
srv=$!
pids+=($srv)
for _ in $(seq 100); do grep -q listening "$tmp/srv.out" 2>/dev/null && break; sleep 0.05; done
start=$(date +%s%N)
tools/natlab exec "$LAB" a -- "$HOXFER" client --to 198.18.3.2:$PORT --lport $LPORT --handoff $HANDOFF \
	--no-fallback --bytes $BYTES "${cliargs[@]}" >"$tmp/cli.out" 2>"$tmp/cli.err" || fail "client failed: $(cat "$tmp/cli.err" "$tmp/cli.out")"
wait "$srv" || fail "server failed: $(cat "$tmp/srv.err" "$tmp/srv.out")"
secs=$(awk -v s="$start" -v e="$(date +%s%N)" 'BEGIN{printf "%.2f", (e-s)/1e9}')
cat "$tmp/cli.out" "$tmp/srv.out"

[ "$(kv "$tmp/cli.out" path)" = repair ] || fail "handoff path is not repair"
if [ "$HANDOFF" = freeze ]; then
	[ "$(kv "$tmp/cli.out" unread)" = $PRE ] || fail "the $PRE unread bytes were not carried over"
	[ "$(kv "$tmp/cli.out" snd_mss_after)" = "$(kv "$tmp/cli.out" snd_mss_before)" ] ||
		fail "send MSS $(kv "$tmp/cli.out" snd_mss_after) after the handoff, $(kv "$tmp/cli.out" snd_mss_before) before"
else
	# MTU 1500, MSS 1460 both ways, timestamps on: 1448 bytes per segment, as a kernel handshake gives
	[ "$(kv "$tmp/cli.out" snd_mss_after)" = 1448 ] || fail "send MSS $(kv "$tmp/cli.out" snd_mss_after), want 1448"
	[ "$(kv "$tmp/cli.out" guard_dropped)" -ge 1 ] || fail "the guard dropped no kernel RST (the SYN-ACK had no socket)"
fi
[ "$(kv "$tmp/cli.out" sack)" = 1 ] && [ "$(kv "$tmp/cli.out" ts)" = 1 ] || fail "SACK/timestamps not negotiated"
for f in cli srv; do
	[ "$(kv "$tmp/$f.out" recv)" = $BYTES ] || fail "$f received $(kv "$tmp/$f.out" recv) bytes, want $BYTES"
	[ "$(kv "$tmp/$f.out" content_ok)" = 1 ] || fail "$f: received content differs from the stream"
done
[ "$(kv "$tmp/cli.out" sent_sha)" = "$(kv "$tmp/srv.out" recv_sha)" ] || fail "a->s SHA-256 mismatch"
[ "$(kv "$tmp/srv.out" sent_sha)" = "$(kv "$tmp/cli.out" recv_sha)" ] || fail "s->a SHA-256 mismatch"
[ "$(kv "$tmp/srv.out" peer)" = "198.18.1.2:$LPORT" ] || fail "server saw $(kv "$tmp/srv.out" peer), not a-public:$LPORT"
ok "64 MiB each way after a TCP_REPAIR handoff ($HANDOFF), SHA-256 matches both ways (${secs}s)"

sleep 0.3
kill -INT "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
tshark -r "$tmp/flags.pcapng" -T fields -e ip.src -e tcp.flags.syn -e tcp.flags.ack -e tcp.flags.fin \
	-e tcp.flags.reset -e tcp.seq_raw >"$tmp/flags.txt" 2>/dev/null || fail "tshark could not read the capture"
cnt() { awk -v s="$1" -v c="$2" '$1==s && $c==1 {n++} END{print n+0}' "$tmp/flags.txt"; }
# SYNs from a: retransmissions (lossy path) carry the same ISN; a new connection would not
syn_a=$(awk '$1=="198.18.1.2" && $2==1 && $3==0 {print $6}' "$tmp/flags.txt" | sort -u | wc -l)
fin_a=$(cnt 198.18.1.2 4) fin_s=$(cnt 198.18.3.2 4)
rst=$(awk '$5==1 {n++} END{print n+0}' "$tmp/flags.txt")
echo "wire: SYN (distinct ISNs) from a $syn_a, FIN a->s $fin_a, FIN s->a $fin_s, RST $rst"
[ "$syn_a" -eq 1 ] || fail "$syn_a different SYNs from a: the handoff must not open a new connection"
[ "$fin_a" -ge 1 ] && [ "$fin_s" -ge 1 ] || fail "no FIN in both directions"
[ "$rst" -eq 0 ] || fail "$rst RST segments on the wire"
if [ -n "${LOSS:-}" ]; then
	dropped=$(ip netns exec "rp$LAB-inet" nft list table ip natlab | grep -o 'counter packets [0-9]*' | awk '{s+=$3} END{print s+0}')
	rtx=$(tools/natlab exec "$LAB" a -- nstat -az TcpRetransSegs | awk '$1=="TcpRetransSegs"{print $2}')
	rtx_s=$(tools/natlab exec "$LAB" s -- nstat -az TcpRetransSegs | awk '$1=="TcpRetransSegs"{print $2}')
	echo "loss: $dropped packets dropped by the lab, retransmitted segments: a $rtx, s $rtx_s"
	[ "$dropped" -gt 0 ] || fail "the lab dropped nothing: --loss $LOSS not in effect"
	[ "$rtx" -gt 0 ] || fail "a's kernel retransmitted nothing"
	ok "survives ${LOSS}% loss: the kernel retransmitted $rtx segments of the handed-off connection"
fi
ok "one SYN, FIN both ways, no RST"
