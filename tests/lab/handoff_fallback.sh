#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The handoff's fallback path, with TCP_REPAIR really refused by the kernel: hoxfer runs in a's
# namespace without CAP_NET_ADMIN (setpriv drops it from the bounding and inheritable sets, so root's
# exec does not get it back; CAP_NET_RAW stays). rp_handoff() must see EPERM from TCP_REPAIR and make
# a kernel connect() from the same local port instead. Asserts:
#  1. with --no-fallback the handoff fails, reports repair_errno=1 (EPERM), and sends no SYN;
#  2. by default the result says path=connect, repair_errno=1, the server on s sees a-public with
#     the very port handed in (preserving NAT), and 8 MiB go each way with matching SHA-256;
#  3. the same binary with CAP_NET_ADMIN takes the repair path (the refusal is what made 2 differ).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/handoff_common.bash
command -v setpriv >/dev/null || fail "setpriv not found (util-linux)"
BYTES=$((8 << 20)) PORT=5201 LPORT=40201
ho_lab hof

# The refusal is real: inside setpriv, CAP_NET_ADMIN is gone and CAP_NET_RAW is still there.
caps=$(tools/natlab exec "$LAB" a -- "${nocap[@]}" grep CapEff /proc/self/status | awk '{print $2}')
(( (0x$caps >> 12) & 1 )) && fail "CAP_NET_ADMIN still effective under setpriv ($caps)"
(( (0x$caps >> 13) & 1 )) || fail "CAP_NET_RAW lost under setpriv ($caps)"

# 1. --no-fallback: EPERM, and not a single SYN leaves a.
ip netns exec "rp$LAB-a" dumpcap -q -i eth0 -f "tcp port $PORT" -w "$tmp/nofb.pcapng" 2>"$tmp/dumpcap.err" &
dc=$!; pids+=($dc)
for _ in $(seq 100); do grep -q "Capturing on" "$tmp/dumpcap.err" 2>/dev/null && break; sleep 0.05; done
grep -q "Capturing on" "$tmp/dumpcap.err" || fail "dumpcap did not start"
if tools/natlab exec "$LAB" a -- "${nocap[@]}" "$HOXFER" client --to 198.18.3.2:$PORT --lport $LPORT \
	--handoff fresh --no-fallback --bytes $BYTES >"$tmp/nofb.out" 2>"$tmp/nofb.err"; then
	fail "--no-fallback succeeded without CAP_NET_ADMIN"
fi
[ "$(kv "$tmp/nofb.out" repair_errno)" = 1 ] || fail "--no-fallback: repair_errno is not EPERM: $(cat "$tmp/nofb.out")"
grep -q "handoff: Operation not permitted" "$tmp/nofb.err" || fail "no clear EPERM error: $(cat "$tmp/nofb.err")"
sleep 0.3; kill -INT $dc; wait $dc 2>/dev/null || true
n=$(tshark -r "$tmp/nofb.pcapng" 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || fail "--no-fallback: $n packets left a"
ok "TCP_REPAIR refused without CAP_NET_ADMIN (EPERM); --no-fallback fails cleanly, nothing sent"

# 2. fallback: kernel connect() from the same port, data both ways.
tools/natlab exec "$LAB" s -- "$HOXFER" serve --port $PORT --bytes $BYTES >"$tmp/srv.out" 2>"$tmp/srv.err" &
srv=$!; pids+=($srv)
for _ in $(seq 100); do grep -q listening "$tmp/srv.out" 2>/dev/null && break; sleep 0.05; done
tools/natlab exec "$LAB" a -- "${nocap[@]}" "$HOXFER" client --to 198.18.3.2:$PORT --lport $LPORT \
	--handoff fresh --bytes $BYTES >"$tmp/cli.out" 2>"$tmp/cli.err" || fail "fallback client failed: $(cat "$tmp/cli.err" "$tmp/cli.out")"
wait $srv || fail "server failed: $(cat "$tmp/srv.err" "$tmp/srv.out")"
cat "$tmp/cli.out" "$tmp/srv.out"
[ "$(kv "$tmp/cli.out" path)" = connect ] || fail "result does not report the fallback path"
[ "$(kv "$tmp/cli.out" repair_errno)" = 1 ] || fail "result does not report EPERM from TCP_REPAIR"
[ "$(kv "$tmp/cli.out" lport)" = $LPORT ] || fail "fallback socket not on the punch port $LPORT"
[ "$(kv "$tmp/srv.out" peer)" = "198.18.1.2:$LPORT" ] || fail "server saw $(kv "$tmp/srv.out" peer), want 198.18.1.2:$LPORT"
[ "$(kv "$tmp/cli.out" sent_sha)" = "$(kv "$tmp/srv.out" recv_sha)" ] || fail "a->s SHA-256 mismatch"
[ "$(kv "$tmp/srv.out" sent_sha)" = "$(kv "$tmp/cli.out" recv_sha)" ] || fail "s->a SHA-256 mismatch"
[ "$(kv "$tmp/cli.out" content_ok)" = 1 ] && [ "$(kv "$tmp/srv.out" content_ok)" = 1 ] || fail "content mismatch"
ok "fallback: path=connect from port $LPORT (seen as 198.18.1.2:$LPORT), 8 MiB each way, SHA-256 matches"

# 3. with CAP_NET_ADMIN the same call takes the repair path (made-up state, so no data is exchanged:
#    --bytes 1 is sent into a connection the server never saw; only the path is checked here).
out=$(tools/natlab exec "$LAB" a -- timeout 5 "$HOXFER" client --to 198.18.3.2:$PORT --lport $((LPORT + 1)) \
	--handoff fresh --no-fallback --bytes 1 --mode rtt --count 1 2>/dev/null || true)
[ "$(echo "$out" | grep -oE 'path=[a-z]+' | head -1)" = path=repair ] || fail "with CAP_NET_ADMIN: not the repair path: $out"
ok "with CAP_NET_ADMIN the same handoff takes the repair path"
