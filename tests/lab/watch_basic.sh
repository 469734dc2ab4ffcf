#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch watch, end to end in three namespaces of its own: x --- r (router) --- y.
# tests/lab/craftpkt.py in x sends SYNs that draw every kind of reply: SYN-ACK (open port), RST-ACK (closed port),
# ICMP port-unreachable (nft reject in y, full quote) and ICMP time-exceeded (TTL 1, from r).
# Asserts that 'rawpunch watch --json' in x reports each with the right fields, that the text
# output has the same events, that --write gives a pcap tshark reads with the same packet count,
# that SIGINT ends it cleanly with stats on stderr, and that bad input exits 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
RP=${RAWPUNCH:-${BUILD:-build}/rawpunch}
[ -x "$RP" ] || { echo "FAIL: $RP not built" >&2; exit 1; }
for t in python3 tshark jq socat nft; do
	command -v "$t" >/dev/null || { echo "FAIL: $t missing (make deps)" >&2; exit 1; }
done

NS=rpcap$$
X=$NS-x R=$NS-r Y=$NS-y
TMP=$(mktemp -d /tmp/rp-watch.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for n in "$X" "$R" "$Y"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
inx() { ip netns exec "$X" "$@"; }

# --- topology: x 10.77.1.2 -- 10.77.1.1 r 10.77.2.1 -- 10.77.2.2 y
for n in "$X" "$R" "$Y"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add "${NS}xr" type veth peer name "${NS}rx"
ip link add "${NS}ry" type veth peer name "${NS}yr"
ip link set "${NS}xr" netns "$X" name eth0
ip link set "${NS}rx" netns "$R" name ethx
ip link set "${NS}ry" netns "$R" name ethy
ip link set "${NS}yr" netns "$Y" name eth0
ip -n "$X" addr add 10.77.1.2/24 dev eth0; ip -n "$X" link set eth0 up
ip -n "$R" addr add 10.77.1.1/24 dev ethx; ip -n "$R" link set ethx up
ip -n "$R" addr add 10.77.2.1/24 dev ethy; ip -n "$R" link set ethy up
ip -n "$Y" addr add 10.77.2.2/24 dev eth0; ip -n "$Y" link set eth0 up
ip -n "$X" route add default via 10.77.1.1
ip -n "$Y" route add default via 10.77.2.1
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
# y: port 5000 open, 5001 closed (RST), 7001 rejected with ICMP port-unreachable.
ip netns exec "$Y" socat TCP4-LISTEN:5000,fork,reuseaddr SYSTEM:true &
pids+=($!)
ip netns exec "$Y" nft -f - <<'EOF'
table inet rpcapwatch {
	chain input {
		type filter hook input priority 0;
		tcp dport 7001 reject with icmp type port-unreachable
	}
}
EOF
inx ping -c1 -W2 10.77.2.2 >/dev/null || fail "no route x -> y"
for _ in $(seq 50); do ip netns exec "$Y" ss -Hltn 'sport = :5000' | grep -q . && break; sleep 0.1; done

# Start watch in x and wait until the capture is open.
start_watch() { # out err args...
	local out=$1 err=$2; shift 2
	# exec'd straight from here (not through a function) so $! is watch itself, which gets our SIGINT
	ip netns exec "$X" "$RP" watch "$@" >"$out" 2>"$err" &
	WPID=$!
	pids+=("$WPID")
	for _ in $(seq 100); do grep -qs '^watch: listening' "$err" && return 0; sleep 0.05; done
	cat "$err" >&2
	fail "watch did not start"
}
# one SYN from sport with seq, to dport, optional TTL, made outside rawpunch (tests/lab/craftpkt.py)
syn() { # sport dport seq [ttl]
	inx python3 tests/lab/craftpkt.py 10.77.2.2 --sport "$1" --dport "$2" --seq "$3" ${4:+--ttl "$4"} ||
		fail "craftpkt failed"
	sleep 0.1
}

# --- 1. JSON, with --write, --host selector, --count
start_watch "$TMP/j.out" "$TMP/j.err" --json --host 10.77.2.2 --count 4 --timeout 20 --write "$TMP/w.pcap"
syn 40000 5000 1000
syn 40001 5001 2000
syn 40002 7001 3000
syn 40003 5000 4000 1
wait "$WPID" || fail "watch --json exited $? ($(cat "$TMP/j.err"))"
cat "$TMP/j.out"
grep -q 'listening on any (linktype 276)' "$TMP/j.err" || fail "'any' is not captured as SLL2: $(head -1 "$TMP/j.err")"
[ "$(wc -l <"$TMP/j.out")" -eq 4 ] || fail "want 4 JSON lines, got $(wc -l <"$TMP/j.out")"
jq -e . "$TMP/j.out" >/dev/null || fail "output is not JSON lines"
sel() { jq -c "select($1)" "$TMP/j.out"; }

e=$(sel '.kind == "syn-ack"')
[ -n "$e" ] || fail "no syn-ack event"
jq -e '.src == "10.77.2.2" and .dst == "10.77.1.2" and .sport == 5000 and .dport == 40000
	and .ack == 1001 and .flags == "S." and .ttl == 63 and .win > 0 and .paylen == 0
	and .options.mss == 1460 and .options.sack_perm == false and .options.wscale == null
	and (.ts_ns | type) == "number" and .ts > 1.5e9' <<<"$e" >/dev/null || fail "syn-ack fields: $e"
ok "syn-ack: ports, ack = seq + 1, flags, ttl after one hop, MSS (the SYN carried no option)"

e=$(sel '.kind == "rst-ack"')
jq -e '.src == "10.77.2.2" and .sport == 5001 and .dport == 40001 and .ack == 2001 and .flags == "R." and .ttl == 63
	and .win == 0' <<<"$e" >/dev/null || fail "rst-ack fields: $e"
ok "rst-ack from the closed port"

e=$(sel '.kind == "icmp" and .type == 3')
jq -e '.code == 3 and .router == "10.77.2.2" and .ttl == 63 and .dst == "10.77.1.2" and .icmp == "port-unreachable"
	and .inner.src == "10.77.1.2" and .inner.dst == "10.77.2.2" and .inner.sport == 40002
	and .inner.dport == 7001 and .inner.seq == 3000 and .inner.flags == "S"' <<<"$e" >/dev/null ||
	fail "port-unreachable fields: $e"
ok "icmp port-unreachable: inner tuple as sent, full quote"

e=$(sel '.kind == "icmp" and .type == 11')
jq -e '.code == 0 and .router == "10.77.1.1" and .ttl == 64 and .inner.ttl == 1 and .inner.sport == 40003
	and .inner.dport == 5000 and .inner.seq == 4000 and .inner.dst == "10.77.2.2"' <<<"$e" >/dev/null ||
	fail "time-exceeded fields: $e"
ok "icmp time-exceeded from the router, inner TTL 1"

# --write: tshark reads the file and counts the same packets, and decodes them the same way.
grep -q '4 written to' "$TMP/j.err" || fail "stats do not say 4 written: $(cat "$TMP/j.err")"
n=$(tshark -r "$TMP/w.pcap" 2>/dev/null | wc -l)
[ "$n" -eq 4 ] || fail "tshark reads $n packets from --write, want 4"
n=$(tshark -r "$TMP/w.pcap" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.srcport == 5000' 2>/dev/null | wc -l)
[ "$n" -eq 1 ] || fail "tshark sees $n SYN-ACKs"
n=$(tshark -r "$TMP/w.pcap" -Y 'icmp.type == 11 && tcp.srcport == 40003' 2>/dev/null | wc -l)
[ "$n" -eq 1 ] || fail "tshark sees $n time-exceeded quoting port 40003"
ok "--write: tshark reads 4 packets, same SYN-ACK and time-exceeded"

# --read: the file decodes to exactly the live events (timestamps included), needs no privilege, ends
# by itself at the end of the file; --host still filters
chmod 755 "$TMP"; chmod 644 "$TMP/w.pcap"
inx setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
	"$RP" watch --read "$TMP/w.pcap" --json --host 10.77.2.2 >"$TMP/r.out" 2>"$TMP/r.err" ||
	fail "watch --read as nobody without capabilities: exit $? ($(cat "$TMP/r.err"))"
cmp -s <(jq -cS . "$TMP/j.out") <(jq -cS . "$TMP/r.out") || fail "--read events differ from the live ones:
$(diff <(jq -cS . "$TMP/j.out") <(jq -cS . "$TMP/r.out"))"
grep -q "^watch: reading $TMP/w.pcap" "$TMP/r.err" && grep -q '^watch: 4 events' "$TMP/r.err" ||
	fail "--read stderr: $(cat "$TMP/r.err")"
n=$("$RP" watch -r "$TMP/w.pcap" --json --port 40001 2>/dev/null | wc -l)
[ "$n" = 1 ] || fail "--read with --port 40001: $n events, want 1"
ok "--read: the pcap decodes to the same 4 events as live, as nobody, filters apply"

# files: --write never follows a symlink nor writes a FIFO; --read of a missing or non-pcap file exits 2
echo precious >"$TMP/precious"
ln -s "$TMP/precious" "$TMP/link.pcap"
mkfifo "$TMP/fifo.pcap"
for bad in "--write $TMP/link.pcap" "--write $TMP/fifo.pcap" "--read $TMP/nosuch.pcap" "--read $TMP/precious" \
	   "--user no-such-user-rp"; do
	set +e
	timeout 5 "$RP" watch $bad --count 1 --timeout 1 >/dev/null 2>"$TMP/bad.err"
	rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "watch $bad: exit $rc, want 2 ($(cat "$TMP/bad.err"))"
	grep -q 'rawpunch watch: ' "$TMP/bad.err" || fail "watch $bad: no message"
done
grep -q "no such user 'no-such-user-rp'" "$TMP/bad.err" || fail "--user: $(cat "$TMP/bad.err")"
[ "$(cat "$TMP/precious")" = precious ] || fail "--write through a symlink changed its target"
ok "--write refuses a symlink and a FIFO, --read a missing or non-pcap file, --user an unknown user: exit 2"

# A kernel connect() offers MSS, SACK, timestamps and window scale: the SYN-ACK carries them all.
start_watch "$TMP/o.out" "$TMP/o.err" --json --port 40020 --count 1 --timeout 10
inx socat -u TCP4:10.77.2.2:5000,sourceport=40020,reuseaddr - >/dev/null 2>&1 || true
wait "$WPID" || fail "watch --port 40020 exited $?"
cat "$TMP/o.out"
jq -e '.kind == "syn-ack" and .dport == 40020 and .options.mss == 1460 and .options.sack_perm == true
	and (.options.wscale | type) == "number" and (.options.ts | length) == 2 and .options.ts[1] > 0' \
	"$TMP/o.out" >/dev/null || fail "syn-ack options: $(cat "$TMP/o.out")"
ok "syn-ack to a kernel SYN: MSS, SACK-permitted, timestamps (echoing ours), window scale"

# --- 2. text output, --port selector, and SIGINT
start_watch "$TMP/t.out" "$TMP/t.err" --port 5001 --iface eth0 --timeout 30
syn 40010 5001 5000
syn 40011 5000 6000          # other port: filtered out
syn 40012 5001 7000 1        # time-exceeded about port 5001: let through
for _ in $(seq 50); do grep -q rst-ack "$TMP/t.out" && grep -q icmp "$TMP/t.out" && break; sleep 0.1; done
t0=$(date +%s)
kill -INT "$WPID"
rc=0; wait "$WPID" || rc=$?
[ "$rc" = 130 ] || fail "watch exited $rc on SIGINT, want 130"
[ $(( $(date +%s) - t0 )) -lt 5 ] || fail "watch ignored SIGINT (ran into --timeout)"
cat "$TMP/t.out"
[ "$(wc -l <"$TMP/t.out")" -eq 2 ] || fail "--port 5001 let through: $(cat "$TMP/t.out")"
grep -Eq '^[0-9:.]+ icmp +ttl-exceeded from 10\.77\.1\.1 ttl 64 about 10\.77\.1\.2:40012 > 10\.77\.2\.2:5001 seq 7000 inner-ttl 1 \[S\]$' "$TMP/t.out" ||
	fail "icmp text line: $(cat "$TMP/t.out")"
grep -Eq '^[0-9:.]+ rst-ack +10\.77\.2\.2:5001 > 10\.77\.1\.2:40010 \[R\.\] seq 0 ack 5001 win 0 ttl 63 ' "$TMP/t.out" ||
	fail "text line: $(cat "$TMP/t.out")"
grep -q '^watch: 2 events; .* dropped' "$TMP/t.err" || fail "no stats after SIGINT: $(cat "$TMP/t.err")"
ok "text output, --port filter, SIGINT prints stats and exits 130"

# --- 3. bad input: exit 2, clear message
for args in "--port 0" "--host 10.1" "--count -1" "--timeout x" "--filter 'tcp and'" "--direction up" \
	    "--port 80 --filter tcp" "--nosuch" "extra"; do
	set +e
	eval inx "$RP" watch "$args" >/dev/null 2>"$TMP/bad.err"
	rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "watch $args: exit $rc, want 2"
	grep -q 'rawpunch watch: ' "$TMP/bad.err" || fail "watch $args: no message"
done
ok "bad input exits 2 with a message"
echo "PASS watch_basic"
