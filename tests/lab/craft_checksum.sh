#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every kind of segment rawpunch crafts -- SYN, SYN-ACK, ACK, RST, FIN and data -- leaves a with IPv4
# and TCP checksums that tshark verifies (tcp.check_checksum / ip.check_checksum on), captured on a's
# interface by tshark itself, not by rawpunch:
#   SYN, ACK, data, FIN: connect --raw to a socat echo on s through NAT ra;
#   SYN-ACK: a's SYNs have TTL 2 (they open ra's mapping and die at inet), b's kernel connect()s to
#            a-public, its SYN reaches a and a answers SYN-ACK (simultaneous open);
#   RST: an established --raw connection interrupted with SIGINT aborts with a crafted RST (which
#        carries the craft mark, so the kernel-RST guard lets it out).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}; [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
RP=${RAWPUNCH:-$BUILD/rawpunch}
[ -x "$RP" ] || { echo "FAIL: $RP not built (make)"; exit 1; }
LAB=rwck$(( $$ % 10000 ))
T=$(mktemp -d /tmp/rw-craft-csum.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tools/natlab down "$LAB" >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$T"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done; exit 1; }
A() { ip netns exec "rp$LAB-a" "$@"; }
B() { ip netns exec "rp$LAB-b" "$@"; }
S() { ip netns exec "rp$LAB-s" "$@"; }

tools/natlab up "$LAB" --filter-a drop --filter-b drop >/dev/null
S_IP=$(tools/natlab addr "$LAB" s); A_PUB=$(tools/natlab addr "$LAB" a-public); B_PUB=$(tools/natlab addr "$LAB" b-public)

A tshark -n -i eth0 -w "$T/a.pcap" -q >/dev/null 2>"$T/tshark.log" & tpid=$!; pids+=($tpid)
for _ in $(seq 50); do grep -q "Capturing on" "$T/tshark.log" 2>/dev/null && break; sleep 0.1; done

# SYN, ACK, data, FIN
S socat TCP-LISTEN:7100,reuseaddr EXEC:cat >/dev/null 2>&1 & pids+=($!)
sleep 0.3
printf 'odd-length payload: 12345\n' | A "$RP" connect --raw --local-port 40001 "$S_IP:7100" >"$T/out1" 2>"$T/1.err" \
  || fail "connect to socat exited $?"
grep -q 'odd-length payload' "$T/out1" || fail "no echo from socat"

# SYN-ACK (simultaneous open; a's SYNs die at inet)
cat >"$T/b.sh" <<EOB
for i in \$(seq 200); do
  socat -t 2 TCP:$A_PUB:40010,bind=10.0.2.2:40020,reuseaddr,connect-timeout=1 SYSTEM:"echo from-b; cat >/dev/null" 2>/dev/null && exit 0
  sleep 0.05
done
exit 1
EOB
A "$RP" connect --raw -v --ttl 2 --local-port 40010 --syn-interval 200 --timeout 10 "$B_PUB:40020" \
  < <(sleep 1.5; echo from-a) >"$T/out2" 2>"$T/2.err" & apid=$!; pids+=($apid)
sleep 0.5
B bash "$T/b.sh" || fail "b's kernel connect() did not complete"
wait "$apid" || fail "a's side of the simultaneous open exited $?"
grep -q 'tx SA' "$T/2.err" || fail "a sent no SYN-ACK (the simultaneous open went another way)"
grep -q from-b "$T/out2" || fail "no data from b"

# RST: abort an established connection with SIGINT
S socat TCP-LISTEN:7400,reuseaddr SYSTEM:"sleep 20" >/dev/null 2>&1 & pids+=($!)
sleep 0.3
mkfifo "$T/fifo"
ip netns exec "rp$LAB-a" "$RP" connect --raw -v --local-port 40004 "$S_IP:7400" <"$T/fifo" >/dev/null 2>"$T/3.err" & cpid=$!; pids+=($cpid)
exec 9>"$T/fifo"
for _ in $(seq 50); do grep -q ESTABLISHED "$T/3.err" && break; sleep 0.1; done
grep -q ESTABLISHED "$T/3.err" || fail "RST case: no connection"
kill -INT "$cpid"
set +e; wait "$cpid"; rc=$?; set -e
exec 9>&-
[ "$rc" -eq 130 ] || fail "SIGINT: exit status $rc, want 130"
grep -q 'tx R' "$T/3.err" || fail "no RST crafted on SIGINT"

sleep 0.5
kill "$tpid"; wait "$tpid" 2>/dev/null || true
tshark -n -r "$T/a.pcap" -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE -Y "ip.src==10.0.1.2 && tcp && !icmp" \
  -T fields -e tcp.flags.str -e tcp.len -e ip.checksum.status -e tcp.checksum.status -e ip.ttl >"$T/fields" 2>/dev/null
[ -s "$T/fields" ] || fail "nothing from a in the capture"
# flags.str is like "·······A··S·" (one letter per set flag); classify each segment
awk -F'\t' '
  { f=$1; syn=(f ~ /S/); ack=(f ~ /A/); rst=(f ~ /R/); fin=(f ~ /F/);
    c = rst ? "rst" : (syn && ack) ? "syn-ack" : syn ? "syn" : fin ? "fin" : ($2 > 0) ? "data" : ack ? "ack" : "other";
    seen[c]++; if ($3 != 1 || $4 != 1) { bad++; print "bad checksum:", c, $0 } }
  END { for (c in seen) printf "%s=%d ", c, seen[c]; print ""; exit bad ? 1 : 0 }' "$T/fields" >"$T/summary" \
  || { cat "$T/summary"; fail "tshark reports a bad checksum"; }
for c in syn syn-ack ack rst fin data; do
  grep -q "\b$c=" "$T/summary" || { cat "$T/summary"; fail "no $c segment from a in the capture"; }
done
awk -F'\t' '$5 == 2' "$T/fields" | grep -q . || fail "no TTL-2 SYN seen"
echo "ok checksums verified by tshark: $(cat "$T/summary")"
! A nft list tables | grep -q rawpunch_ || fail "a rawpunch table remains"
echo PASS
