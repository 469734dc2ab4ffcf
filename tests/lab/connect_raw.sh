#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# connect --raw in the NAT lab: (1) handshake + data + FIN both ways with a real Linux listener (socat)
# through NAT ra; (2) simultaneous open with a real Linux peer whose kernel connect()s towards us at
# the same time, across two preserving NATs; (3) forged SYN-ACKs/RSTs with a wrong cookie are counted
# and ignored; (4) a capture on a shows no RST from a's kernel for the attempt's flows while the
# guard's counter shows it did try; (6) a blind spray of 100 000 spoofed SYN/SYN-ACK/RST over the
# ephemeral range (and 10 000 at the very port) is refused segment by segment and the real handshake
# completes; (5) no rawpunch nft table remains afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}; [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
RP=${RAWPUNCH:-$BUILD/rawpunch}
[ -x "$RP" ] || { echo "FAIL: $RP not built (make)"; exit 1; }
LAB=rwcr$(( $$ % 10000 ))
T=$(mktemp -d /tmp/rw-connect-raw.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tools/natlab down "$LAB" >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$T"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done; exit 1; }
A() { ip netns exec "rp$LAB-a" "$@"; }
B() { ip netns exec "rp$LAB-b" "$@"; }
S() { ip netns exec "rp$LAB-s" "$@"; }
NA() { ip netns exec "rp$LAB-na" "$@"; }
no_tables() {
  if A nft list tables | grep -q 'rawpunch_'; then A nft list tables; fail "$1: an nft rawpunch table remains"; fi
}

# Drop filtering on both NATs: with RST filtering the NATs' own RSTs tear the conntrack entries
# down and simultaneous open becomes a matter of luck (see notes/facts.md).
tools/natlab up "$LAB" --nat-a preserve --nat-b preserve --filter-a drop --filter-b drop >/dev/null
S_IP=$(tools/natlab addr "$LAB" s); A_PUB=$(tools/natlab addr "$LAB" a-public); B_PUB=$(tools/natlab addr "$LAB" b-public)

# Everything a sends and receives, captured independently of rawpunch.
A tshark -n -i eth0 -w "$T/a.pcap" -q >"$T/tshark.out" 2>"$T/tshark.log" & pids+=($!)
for _ in $(seq 50); do grep -q "Capturing on" "$T/tshark.log" 2>/dev/null && break; sleep 0.1; done

# ---- (1) a -> socat on s, through NAT ra ------------------------------------------------------
S socat TCP-LISTEN:7100,reuseaddr,fork EXEC:cat >/dev/null 2>&1 & pids+=($!)
sleep 0.3
head -c 3000 /dev/urandom | base64 -w 76 >"$T/in1"
A "$RP" connect --raw -v --local-port 40001 --timeout 10 --pcap "$T/1.pcap" "$S_IP:7100" <"$T/in1" >"$T/out1" 2>"$T/1.err" \
  || fail "(1) connect --raw to socat exited $?"
cmp -s "$T/in1" "$T/out1" || fail "(1) echo mismatch ($(wc -c <"$T/out1") of $(wc -c <"$T/in1") bytes back)"
grep -q 'ESTABLISHED' "$T/1.err" || fail "(1) no ESTABLISHED in the trace"
grep -q 'rx FA\|rx F ' "$T/1.err" || fail "(1) no FIN from the peer"
grep -q 'tx FA\|tx F ' "$T/1.err" || fail "(1) we sent no FIN"
drop1=$(sed -n 's/.*kernel_rsts_dropped=\([0-9-]*\).*/\1/p' "$T/1.err")
[ "${drop1:-0}" -gt 0 ] || fail "(1) the guard dropped no kernel RST (counter '$drop1'): it was not exercised"
# --pcap holds both directions of the attempt
n_syn=$(tshark -n -r "$T/1.pcap" -Y "ip.src==10.0.1.2 && tcp.flags.syn==1 && tcp.flags.ack==0" 2>/dev/null | wc -l)
n_sa=$(tshark -n -r "$T/1.pcap" -Y "ip.src==$S_IP && tcp.flags.syn==1 && tcp.flags.ack==1" 2>/dev/null | wc -l)
n_fin=$(tshark -n -r "$T/1.pcap" -Y "tcp.flags.fin==1" 2>/dev/null | wc -l)
[ "$n_syn" -ge 1 ] && [ "$n_sa" -ge 1 ] && [ "$n_fin" -ge 2 ] || fail "(1) --pcap: syn=$n_syn syn-ack=$n_sa fin=$n_fin"
no_tables "(1)"
echo "ok (1) socat through NAT: $(wc -c <"$T/in1") bytes each way, FIN both ways, kernel RSTs dropped: $drop1"

# ---- (2) simultaneous open with b's kernel ----------------------------------------------------
cat >"$T/b.sh" <<EOB
for i in \$(seq 200); do
  socat -t 3 TCP:$A_PUB:40010,bind=10.0.2.2:40020,reuseaddr,connect-timeout=1 SYSTEM:"cat $T/b.in; cat >$T/b.out" 2>/dev/null && exit 0
  sleep 0.05
done
exit 1
EOB
echo "hello from b's kernel" >"$T/b.in"
echo "hello from a's userspace" >"$T/a.in"
B bash "$T/b.sh" & bpid=$!; pids+=($bpid)
sleep 0.2
A "$RP" connect --raw -v --local-port 40010 --syn-interval 200 --timeout 15 "$B_PUB:40020" <"$T/a.in" >"$T/a.out" 2>"$T/2.err" \
  || fail "(2) simultaneous open: connect --raw exited $?"
wait "$bpid" || fail "(2) b's kernel connect() never completed"
cmp -s "$T/b.in" "$T/a.out" || fail "(2) a got '$(cat "$T/a.out")'"
cmp -s "$T/a.in" "$T/b.out" || fail "(2) b got '$(cat "$T/b.out" 2>/dev/null)'"
no_tables "(2)"
echo "ok (2) simultaneous open with a kernel connect() across two NATs, data both ways"

# ---- (3) forged SYN-ACK / RST with a wrong cookie ----------------------------------------------
# s drops the first SYNs (silence) while forged replies spoofed as s:7200 arrive from na, an
# off-path host on a's own LAN; then s starts answering and the real handshake must still complete.
# Not forged from s through NAT ra: ra's conntrack sometimes drops such packets (INVALID) and
# sometimes takes the forged SYN-ACK into its TCP window tracking, after which it marks the REAL
# connection's ACKs INVALID and lets them leave un-NATed -- a test of the NAT, not of rawpunch.
S nft -f - <<'EON'
table inet rwtest {
  chain in {
    type filter hook input priority filter; policy accept;
    tcp dport 7200 drop
  }
}
EON
S socat TCP-LISTEN:7200,reuseaddr EXEC:cat >/dev/null 2>&1 & pids+=($!)
echo "after the forgeries" >"$T/in3"
( sleep 5; cat "$T/in3" ) | A "$RP" connect --raw -v --local-port 40030 --syn-interval 300 --timeout 20 "$S_IP:7200" \
  >"$T/out3" 2>"$T/3.err" & cpid=$!; pids+=($cpid)
sleep 1
# SYN-ACKs acking a wrong ISN, RST-ACKs with a wrong ack, bare RSTs
NA python3 tests/lab/craftpkt.py 10.0.1.2 --src "$S_IP" --sport 7200 --dport 40030 --flags SA --seq 1000 --ack 12345 --count 4
NA python3 tests/lab/craftpkt.py 10.0.1.2 --src "$S_IP" --sport 7200 --dport 40030 --flags RA --seq 0 --ack 777 --count 4
NA python3 tests/lab/craftpkt.py 10.0.1.2 --src "$S_IP" --sport 7200 --dport 40030 --flags R --seq 99 --count 2
sleep 0.5
grep -q ESTABLISHED "$T/3.err" && fail "(3) a forged segment established the connection"
kill -0 "$cpid" 2>/dev/null || fail "(3) a forged RST ended the attempt"
S nft delete table inet rwtest
wait "$cpid" || fail "(3) the real handshake after the forgeries failed ($?)"
cmp -s "$T/in3" "$T/out3" || fail "(3) echo mismatch after the forgeries"
forged=$(sed -n 's/.*forged=\([0-9]*\).*/\1/p' "$T/3.err")
[ "${forged:-0}" -ge 10 ] || fail "(3) expected >= 10 forged segments counted, got '${forged}'"
[ "$(grep -c '^.*ignored ' "$T/3.err")" -ge 10 ] || fail "(3) forged segments not reported as ignored"
no_tables "(3)"
echo "ok (3) $forged forged SYN-ACK/RST ignored, real handshake completed afterwards"

# ---- (3b) a port list: the one port that answers with our cookie becomes the connection -------
S socat TCP-LISTEN:7505,reuseaddr EXEC:cat >/dev/null 2>&1 & pids+=($!)
sleep 0.3
echo "to whichever port answers" >"$T/in6"
A "$RP" connect --raw -v --local-port 40060 --timeout 10 "$S_IP:7500-7504,7505,7506-7509" <"$T/in6" >"$T/out6" 2>"$T/6.err" \
  || fail "(3b) connect to a port list exited $?"
cmp -s "$T/in6" "$T/out6" || fail "(3b) echo mismatch"
grep -q 'ESTABLISHED with :7505' "$T/6.err" || fail "(3b) not established with :7505"
[ "$(grep -c 'tx S ' "$T/6.err")" -ge 10 ] || fail "(3b) not one SYN per listed port"
no_tables "(3b)"
echo "ok (3b) port list: SYNs to 10 ports, the listener on :7505 became the connection"

# ---- (3c) default path: handshake in userspace, then TCP_REPAIR handoff to a kernel socket ------
head -c 200000 /dev/urandom >"$T/in7"
A "$RP" connect --local-port 40070 --timeout 10 "$S_IP:7100" <"$T/in7" >"$T/out7" 2>"$T/7.err" \
  || fail "(3c) connect with handoff exited $?"
cmp -s "$T/in7" "$T/out7" || fail "(3c) 200 kB echo through the handed-off socket differs"
no_tables "(3c)"
echo "ok (3c) handoff: 200 kB echoed through the kernel socket"

# ---- (4) no kernel RST on the wire -------------------------------------------------------------
sleep 0.5
kill "${pids[0]}" 2>/dev/null || true; wait "${pids[0]}" 2>/dev/null || true
n_out=$(tshark -n -r "$T/a.pcap" -Y "ip.src==10.0.1.2 && tcp" 2>/dev/null | wc -l)
[ "$n_out" -gt 10 ] || fail "(4) the capture on a saw only $n_out segments from a: capture broken"
rsts=$(tshark -n -r "$T/a.pcap" -Y "ip.src==10.0.1.2 && tcp.flags.reset==1" 2>/dev/null | wc -l)
[ "$rsts" -eq 0 ] || { tshark -n -r "$T/a.pcap" -Y "ip.src==10.0.1.2 && tcp.flags.reset==1"; fail "(4) $rsts RSTs left a"; }
echo "ok (4) capture on a: $n_out segments from a, 0 RSTs"

# ---- (6) a blind spray (after (4): a's kernel answers it on ports nobody uses) --------------------
# While connect --raw waits for its SYN-ACK: 100 000 spoofed SYNs, SYN-ACKs and
# RSTs "from the server" over a's whole ephemeral range, plus the worst case of a spray aimed at the
# very local port. None may establish, end or take over the attempt: the real handshake completes.
S nft -f - <<'EON'
table inet rwtest {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 7200 drop
  }
}
EON
S socat TCP-LISTEN:7200,reuseaddr EXEC:cat >/dev/null 2>&1 & pids+=($!)
echo "after the spray" >"$T/in9"
( sleep 8; cat "$T/in9" ) | A "$RP" connect --raw -v --syn-interval 300 --timeout 30 "$S_IP:7200" \
  >"$T/out9" 2>"$T/9.err" & cpid=$!; pids+=($cpid)
for _ in $(seq 50); do grep -q '^.*local 10\.0\.1\.2:' "$T/9.err" && break; sleep 0.1; done
lport=$(sed -n 's/.*local 10\.0\.1\.2:\([0-9]*\).*/\1/p' "$T/9.err" | head -1)
[ -n "$lport" ] || fail "(6) connect -v did not name its local port: $(head -5 "$T/9.err")"
t0=$(date +%s.%N)
sprays=()
for fl in S SA R; do
	NA python3 tests/lab/craftpkt.py 10.0.1.2 --src "$S_IP" --sport 7200 --dport-range 32768-60999 --flags $fl \
		--spray 30000 & sprays+=($!)
done
wait "${sprays[@]}" || fail "(6) a spray failed"
for fl in S SA R RA; do
	NA python3 tests/lab/craftpkt.py 10.0.1.2 --src "$S_IP" --sport 7200 --dport-range "$lport-$lport" --flags $fl \
		--spray 2500
done
t1=$(date +%s.%N)
sleep 0.5
grep -q ESTABLISHED "$T/9.err" && fail "(6) a spoofed segment established the connection"
kill -0 "$cpid" 2>/dev/null || fail "(6) the spray ended the attempt: $(tail -3 "$T/9.err")"
S nft delete table inet rwtest
wait "$cpid" || fail "(6) the real handshake after the spray failed ($?): $(tail -5 "$T/9.err")"
cmp -s "$T/in9" "$T/out9" || fail "(6) echo mismatch after the spray"
grep -q "ESTABLISHED with :7200" "$T/9.err" || fail "(6) not established with the server"
forged=$(sed -n 's/.*forged=\([0-9]*\).*/\1/p' "$T/9.err")
no_tables "(6)"
echo "ok (6) 100 000 spoofed segments in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s (10 000 at port $lport): none accepted ($forged counted forged), the real handshake completed"

# ---- (5) ---------------------------------------------------------------------------------------
no_tables "(5)"
echo "ok (5) no rawpunch nft table left in a"
echo PASS
