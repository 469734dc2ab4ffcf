#!/usr/bin/env bash
# syn_rate: 'rawpunch syn' in a two-namespace veth lab. Asserts, counting at the RECEIVER (nft
# counter at ingress; SYNs to .2 are counted and dropped, .3 answers normally):
#   - a --burst of 60000 SYNs (two threads, random order) arrives as exactly 60000, as reported sent;
#   - paced --rate 2000 for 3 s holds the rate within 2% (timed at the receiver by rxwatch);
#   - --engine libnet sends exactly what it is asked to;
#   - --watch counts replies validated by the ISN cookie: 1 SYN-ACK (a listener) and 9 RSTs, and shows
#     each reply (text: port, flags, kind, ttl; --json: one object each, then the summary);
#   - -v shows one line (--json: one object) per packet sent, as many as arrived;
#   - --dry-run prints one hex packet per SYN (--json: one object each; -w: a pcap tshark reads with the
#     same packets), sends nothing, and works without privileges;
#   - bad input exits 2 and sends nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
RP=$BUILD/rawpunch RXW=$BUILD/bench/rxwatch
[ -x "$RP" ] && [ -x "$RXW" ] || { echo "syn_rate: build first ($RP, $RXW)" >&2; exit 1; }

LAB=rpbu$$l S=rpbu$$ls R=rpbu$$lr
TMP=$(mktemp -d /tmp/rpbu-lab.XXXXXX)
cleanup() {
  local pids; pids=$(ip netns pids "$S" 2>/dev/null; ip netns pids "$R" 2>/dev/null) || true
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  ip netns del "$R" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

ip netns add "$S"; ip netns add "$R"
ip link add "${LAB}a" netns "$S" type veth peer name "${LAB}b" netns "$R"
ip -n "$S" link set "${LAB}a" name eth0
ip -n "$R" link set "${LAB}b" name eth0
ip -n "$S" addr add 10.202.0.1/24 dev eth0
ip -n "$R" addr add 10.202.0.2/24 dev eth0
ip -n "$R" addr add 10.202.0.3/24 dev eth0
for ns in "$S" "$R"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
ip netns exec "$R" nft -f - <<'NFT'
table netdev rpbu {
  counter syns { }
  counter syns3 { }
  chain in {
    type filter hook ingress device eth0 priority -500; policy accept;
    ip daddr 10.202.0.2 tcp flags & (syn|ack) == syn counter name syns drop
    ip daddr 10.202.0.3 tcp flags & (syn|ack) == syn counter name syns3
  }
}
NFT
count() { ip netns exec "$R" nft list counter netdev rpbu "${1:-syns}" | awk '{for (i=1;i<NF;i++) if ($i=="packets") print $(i+1)}'; }
reset() { ip netns exec "$R" nft reset counters table netdev rpbu >/dev/null; }
jget() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

# 1. burst: every SYN arrives
reset
out=$(ip netns exec "$S" "$RP" syn 10.202.0.2 -p 1-30000 --sport 40000,40001 --burst --threads 2 --random-order --json -q)
echo "burst: $out"
sent=$(echo "$out" | jget sent)
[ "$sent" = 60000 ] || fail "burst reported $sent sent, want 60000"
[ "$(echo "$out" | jget errors)" = 0 ] || fail "burst had send errors"
got=$(count); [ "$got" = 60000 ] || fail "burst: $got SYNs arrived, want 60000"

# 2. paced: 2000 pps for 3 s, timed at the receiver
reset
ip netns exec "$R" "$RXW" eth0 6000 1000 20000 "$TMP/ready" >"$TMP/rx" &
wp=$!
while [ ! -e "$TMP/ready" ]; do sleep 0.01; done
out=$(ip netns exec "$S" "$RP" syn 10.202.0.2 -p 1-6000 --sport 40002 --rate 2000 --json -q)
wait $wp
echo "paced: $out"; echo "paced at receiver: $(cat "$TMP/rx")"
got=$(count); [ "$got" = 6000 ] || fail "paced: $got SYNs arrived, want 6000"
pps=$(awk '{print $8}' "$TMP/rx")
awk -v p="$pps" 'BEGIN {exit !(p >= 1960 && p <= 2040)}' || fail "paced: $pps pps at the receiver, want 2000 +- 2%"
sp=$(echo "$out" | jget rate_pps)
awk -v p="$sp" 'BEGIN {exit !(p >= 1960 && p <= 2040)}' || fail "paced: sender reports $sp pps"

# 3. libnet engine
reset
out=$(ip netns exec "$S" "$RP" syn 10.202.0.2 -p 1000-1999 --engine libnet --json -q)
echo "libnet: $out"
[ "$(echo "$out" | jget sent)" = 1000 ] || fail "libnet engine reported $(echo "$out" | jget sent) sent"
got=$(count); [ "$got" = 1000 ] || fail "libnet engine: $got SYNs arrived, want 1000"

# 4. --watch: replies validated by the cookie (one listener on .3:7777, the rest answer RST)
ip netns exec "$R" socat TCP-LISTEN:7777,bind=10.202.0.3,fork,reuseaddr SYSTEM:true &
disown
for _ in $(seq 50); do ip netns exec "$R" ss -ltn | grep -q 10.202.0.3:7777 && break; sleep 0.05; done
reset
out=$(ip netns exec "$S" "$RP" syn 10.202.0.3 -p 7770-7779 --watch --wait 700 --json -q)
echo "watch: $out"
echo "$out" | grep -q '"replies":{"total":10,"syn_ack":1,"rst":9,"other":0' || fail "watch: replies not 1 SYN-ACK + 9 RST"
[ "$(count syns3)" = 10 ] || fail "watch: $(count syns3) SYNs arrived at .3, want 10"
[ "$(echo "$out" | grep -c '^{"type":"reply","time":1[0-9]*\.[0-9]\{6\},"from":"10.202.0.3","port":777[0-9],')" = 10 ] ||
  fail "watch --json: want 10 reply objects from 10.202.0.3:7770-7779"
echo "$out" | grep -q '"port":7777,"to_port":[0-9]*,"flags":"SA","kind":"syn-ack","ttl":64,' || fail "watch --json: no syn-ack object for 7777"
[ "$(echo "$out" | tail -n 1 | grep -c '^{"type":"summary",')" = 1 ] || fail "watch --json: the summary is not the last line"
# text, and -v: a line per reply, a line per packet sent
reset
ip netns exec "$S" "$RP" syn 10.202.0.3 -p 7770-7779 --sport 41000 --watch --wait 700 -v -q >"$TMP/watch" 2>"$TMP/watch.err"
cat "$TMP/watch"
[ "$(grep -c '^# [0-9]* 10.202.0.1:41000 > 10.202.0.3:777[0-9] seq [0-9]* ip_id [0-9]* ttl 64 len ' "$TMP/watch")" = 10 ] ||
  fail "-v: want 10 packet lines"
[ "$(count syns3)" = 10 ] || fail "-v: $(count syns3) SYNs arrived at .3, want 10"
grep -q '^1[0-9]*\.[0-9]\{6\} reply 10.202.0.3:7777 > :41000 SA (syn-ack) ttl 64 ' "$TMP/watch" || fail "watch: no syn-ack line for 7777"
[ "$(grep -c ' reply 10.202.0.3:777[0-9] > :41000 RA (rst) ttl 64 ' "$TMP/watch")" = 9 ] || fail "watch: want 9 rst lines"

# 5. dry-run: hex per packet, nothing on the wire, no privileges needed
reset
ip netns exec "$S" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
  "$RP" syn 10.202.0.2 -p 80-89 --sport 5000 -c 2 --isn 7 --dry-run >"$TMP/dry"
[ "$(grep -c '^# ' "$TMP/dry")" = 20 ] || fail "dry-run: want 20 packets listed"
[ "$(grep -c '^45' "$TMP/dry")" = 20 ] || fail "dry-run: want 20 hex lines starting with an IPv4 header"
grep -q '^# 1 10.202.0.1:5000 > 10.202.0.2:80 seq 7 ' "$TMP/dry" || fail "dry-run: first packet line"
ip netns exec "$S" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
  "$RP" syn 10.202.0.2 -p 80-89 --sport 5000 -c 2 --isn 7 --seed 3 --dry-run --json >"$TMP/dry.json"
[ "$(grep -c '^{"type":"packet","no":[0-9]*,"src":"10.202.0.1","sport":5000,"dst":"10.202.0.2","dport":8[0-9],"flags":"S","seq":7,.*"hex":"45' "$TMP/dry.json")" = 20 ] ||
  fail "dry-run --json: want 20 packet objects"
chmod 777 "$TMP"
ip netns exec "$S" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
  "$RP" syn 10.202.0.2 -p 80-89 --sport 5000 -c 2 --isn 7 --seed 3 --dry-run -w "$TMP/dry.pcap" 2>"$TMP/dry.err" ||
  fail "dry-run -w: $(cat "$TMP/dry.err")"
tshark -n -r "$TMP/dry.pcap" -T fields -e tcp.srcport -e tcp.dstport -e ip.id -e tcp.seq_raw -e tcp.flags.str 2>/dev/null >"$TMP/dry.tsv"
[ "$(wc -l <"$TMP/dry.tsv")" = 20 ] || fail "dry-run -w: tshark reads $(wc -l <"$TMP/dry.tsv") packets, want 20"
# the pcap holds the very packets --json listed (ports, IP ID, ISN)
diff <(sed 's/.*"sport":\([0-9]*\),.*"dport":\([0-9]*\),.*"seq":\([0-9]*\),"ip_id":\([0-9]*\),.*/\1 \2 \4 \3/' "$TMP/dry.json" |
       awk '{printf "%s %s %d %s\n", $1, $2, strtonum($3), $4}') \
     <(awk -F'\t' '{printf "%s %s %d %s\n", $1, $2, strtonum($3), $4}' "$TMP/dry.tsv") || fail "dry-run -w: pcap differs from --json"
sleep 0.2
[ "$(count)" = 0 ] || fail "dry-run sent $(count) packets"

# 6. bad input: exit 2, nothing sent
for args in "-p 0" "-p 80 --rate abc" "-p 80 --ttl 0" "-p 70000" "-p 80 --engine foo" "-p 80 --no-opts --mss 1400" \
            "-p 80 --threads 2 --rate 1" "" "-p 80 --sport 1-2-3" "-p 80 -w $TMP/nodry.pcap" \
            "-p 80 --dry-run -w $TMP/x.pcap --json" "-p 80 --dry-run -w /dev/null"; do
  set +e
  ip netns exec "$S" "$RP" syn 10.202.0.2 $args >/dev/null 2>"$TMP/err"; rc=$?
  set -e
  [ "$rc" = 2 ] || fail "'syn $args' exited $rc, want 2"
  [ -s "$TMP/err" ] || fail "'syn $args' printed no error"
done
set +e; ip netns exec "$S" "$RP" syn -p 80 >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 2 ] || fail "missing HOST exited $rc"
sleep 0.2
[ "$(count)" = 0 ] || fail "bad input sent $(count) packets"
echo "syn_rate: ok"
