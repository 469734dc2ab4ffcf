#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test, carrier-grade NAT (--cgn-a/--cgn-b): each home NAT sits behind a carrier NAT, with
# shared address space (100.64/10) between them and the carrier's router numbered in 10/8. Seen from the
# outside and hop by hop:
# - TCP traceroute (TTL-limited SYNs) from a and b: time-exceeded from 10.0.n.1 (home), 100.64.n.1
#   (carrier NAT), 10.255.n.1 (carrier router), 198.18.n.1 (inet), then s answers;
# - one flow followed through both NATs' conntrack tables to the port whoami on s sees: a behind
#   preserve + block (the port lands in the carrier's block for 100.64.1.2), b behind sequential-noise +
#   sequential:2 (the carrier's steps of 2, with the noise host's flows in between);
# - the existing options still work behind a carrier NAT: --delay (rp-wire on the ispX-inet links),
#   filters (icmp, drop), the noise host, status, addr and exec.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
for t in conntrack traceroute; do command -v $t >/dev/null || fail "$t missing (make deps)"; done
LAB=$(unique_lab ltc)
NATLAB_NOISE_RATE=10 lab_up "$LAB" --nat-a preserve --cgn-a block --nat-b sequential-noise --cgn-b sequential:2 \
	--filter-a icmp --filter-b drop --delay 10

# --- status, addr
st=$(tools/natlab status "$LAB")
for w in "cgn_a: block" "cgn_b: sequential:2" "ca [100.64.1.1 | 198.18.1.2 = a-public] -- ispa [10.255.1.1 | 198.18.1.254]" \
	"rb [10.0.2.1 | 100.64.2.2] -- cb [100.64.2.1 | 198.18.2.2 = b-public]" "rp$LAB-ca" "rp$LAB-ispa" "rp$LAB-cb" "rp$LAB-ispb" \
	"wire-ispa: running" "wire-ispb: running" "wire-s: running" "noise-b: running"; do
	grep -qF -- "$w" <<<"$st" || fail "status lacks '$w': $st"
done
! grep -q missing <<<"$st" || fail "status: $st"
for h in a-public:198.18.1.2 b-public:198.18.2.2 ra:100.64.1.2 rb:100.64.2.2 ca:198.18.1.2 ispa:10.255.1.1 ispb:10.255.2.1; do
	[ "$(tools/natlab addr "$LAB" "${h%%:*}")" = "${h#*:}" ] || fail "addr ${h%%:*}: $(tools/natlab addr "$LAB" "${h%%:*}"), want ${h#*:}"
done
ok "status shows the carrier hosts, blocks, wires and noise; addr knows ra/rb behind a carrier NAT"

# --- hop by hop: a TCP traceroute (SYNs to whoami, TTL 1..8, one probe per hop).
hops() {   # hops HOST: the hop addresses, "*" for a silent hop
	tools/natlab exec "$LAB" "$1" -- traceroute -n -T -p 7000 -q 1 -w 2 -m 8 198.18.3.2 2>/dev/null |
		awk 'NR > 1 { printf "%s%s", (NR > 2 ? " " : ""), $2 }'
}
for side in a b; do
	n=1; [ $side = a ] || n=2
	want="10.0.$n.1 100.64.$n.1 10.255.$n.1 198.18.$n.1 198.18.3.2"
	got=$(hops $side)
	# routers send time-exceeded to one destination at most 6 at once, then 1/s: one retry after 1 s
	[ "$got" = "$want" ] || { sleep 1.1; got=$(hops $side); }
	echo "  TCP traceroute from $side to 198.18.3.2:7000: $got"
	[ "$got" = "$want" ] || fail "hops from $side: '$got', want '$want'"
done
ok "a TTL-limited SYN dies at the home NAT, the carrier NAT (100.64/10), the carrier's 10/8 router, inet"

# ct_reply_port HOST SRC SPORT: the external port of the flow from SRC:SPORT to whoami, in HOST's conntrack
ct_reply_port() {
	local line
	line=$(tools/natlab exec "$LAB" "$1" -- conntrack -L -p tcp -s "$2" --sport "$3" -d 198.18.3.2 --dport 7000 2>/dev/null)
	[ "$(wc -l <<<"$line")" -eq 1 ] && [ -n "$line" ] || { echo "conntrack on $1: no single flow from $2:$3: $line" >&2; return 1; }
	echo "    conntrack on $1: $line" >&2
	line=${line##*dport=}; echo "${line%% *}"
}

# --- a: preserve at home, block at the carrier.
blk=$(lab_state "$LAB" cgn_a_blocks)
[[ $blk =~ ^100\.64\.1\.2:[0-9]+-[0-9]+$ ]] || fail "carrier blocks: '$blk', want one block for 100.64.1.2"
m=$(whoami "$LAB" a 41234); p=$(port_of "$m")
echo "  a:41234 -> whoami saw $m (carrier block $blk)"
[ "${m%:*}" = 198.18.1.2 ] || fail "whoami saw $m, want a-public"
home=$(ct_reply_port ra 10.0.1.2 41234) || fail "conntrack on ra"
[ "$home" = 41234 ] || fail "home NAT (preserve) mapped 41234 to $home"
carrier=$(ct_reply_port ca 100.64.1.2 41234) || fail "conntrack on ca"
[ "$carrier" = "$p" ] || fail "carrier NAT mapped to $carrier, whoami saw $p"
in_block "$p" "$blk" || fail "port $p outside the carrier's block $blk"
out=$(flow_ports "$LAB" a 6) || fail "flows from a"
echo "  a, 6 more flows: $(echo $out)"
for p in $out; do in_block "$p" "$blk" || fail "port $p outside the carrier's block $blk"; done
ok "a: 10.0.1.2:41234 -> ra (preserve) 100.64.1.2:41234 -> ca (block) 198.18.1.2:$carrier, all flows in $blk"

# --- b: sequential-noise at home, sequential:2 at the carrier: steps of 2 from outside, gaps = noise.
m=$(whoami "$LAB" b 41234); p=$(port_of "$m")
echo "  b:41234 -> whoami saw $m"
home=$(ct_reply_port rb 10.0.2.2 41234) || fail "conntrack on rb"
[ "$home" -ge 20000 ] && [ "$home" -le 29999 ] || fail "home NAT (sequential) mapped 41234 to $home"
carrier=$(ct_reply_port cb 100.64.2.2 "$home") || fail "conntrack on cb"
[ "$carrier" = "$p" ] || fail "carrier NAT mapped to $carrier, whoami saw $p"
prev=$p gaps=()
for i in $(seq 5); do
	sleep 0.3
	p=$(port_of "$(whoami "$LAB" b)")
	gaps+=($((p - prev))) prev=$p
done
echo "  b, gaps between 5 more flows 0.3 s apart (noise host at 10 flows/s): ${gaps[*]}"
noise=0
for g in "${gaps[@]}"; do
	[ "$g" -ge 2 ] && [ $((g % 2)) -eq 0 ] || fail "carrier sequential:2: gap $g (gaps ${gaps[*]})"
	noise=$((noise + g / 2 - 1))
done
[ "$noise" -ge 3 ] || fail "only $noise noise flows seen between b's flows at 10/s"
ok "b: 10.0.2.2:41234 -> rb (sequential) 100.64.2.2:$home -> cb (sequential:2) 198.18.2.2:$carrier; steps of 2, $noise noise flows between"

# --- delay and filters still apply.
for side in a b; do
	rtt=$(tools/natlab exec "$LAB" $side -- ping -c3 -i 0.2 -n -q 198.18.3.2 | awk '/^rtt/ {split($4, v, "/"); print v[1]}')
	echo "  ping $side -> s: min RTT $rtt ms (--delay 10: 20 ms)"
	awk -v r="$rtt" 'BEGIN{exit !(r >= 19 && r < 60)}' || fail "ping from $side: min RTT '$rtt' ms"
done
err=$(tools/natlab exec "$LAB" s -- socat -T1 /dev/null TCP4:198.18.1.2:33333,connect-timeout=3 2>&1) && fail "unsolicited SYN to a-public connected"
echo "  unsolicited SYN to a-public (filter icmp): ${err##*: }"
[[ $err == *refused* || $err == *nreachable* ]] || fail "icmp filter behind a carrier NAT: $err"
err=$(tools/natlab exec "$LAB" s -- socat -T1 /dev/null TCP4:198.18.2.2:33333,connect-timeout=1.5 2>&1) && fail "unsolicited SYN to b-public connected"
echo "  unsolicited SYN to b-public (filter drop): ${err##*: }"
[[ $err == *timed* ]] || fail "drop filter behind a carrier NAT: $err"
ok "--delay, --filter-a icmp and --filter-b drop work behind a carrier NAT"
