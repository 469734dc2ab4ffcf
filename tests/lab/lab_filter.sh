#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test, filtering side: a prober on the internet (s) sends SYNs to a NAT's public address
# where no mapping exists and counts what comes back: rst -> a TCP RST, drop -> nothing, icmp -> ICMP
# port unreachable. And a SYN that matches a mapping opened by a low-TTL SYN from inside (the
# simultaneous-open case, conntrack SYN_SENT2) still gets through drop and icmp filters.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
L1=$(unique_lab ltf)
L2=$(unique_lab ltg)
lab_up "$L1" --filter-a icmp --filter-b drop
lab_up "$L2" --filter-a rst --nat-b random --filter-b drop

# Counters at the prober (s's input hook, before anything else): RST and ICMP port unreachable by source.
for L in "$L1" "$L2"; do
	tools/natlab exec "$L" s -- nft -f - <<-'NFT'
	table ip probe {
	  counter rst_a {}
	  counter icmp_a {}
	  counter rst_b {}
	  counter icmp_b {}
	  chain in { type filter hook input priority -300; policy accept;
	    ip saddr 198.18.1.2 tcp flags rst counter name "rst_a"
	    ip saddr 198.18.1.2 icmp type destination-unreachable icmp code port-unreachable counter name "icmp_a"
	    ip saddr 198.18.2.2 tcp flags rst counter name "rst_b"
	    ip saddr 198.18.2.2 icmp type destination-unreachable icmp code port-unreachable counter name "icmp_b"
	  }
	}
	NFT
done
count() { tools/natlab exec "$1" s -- nft list counter ip probe "$2" | awk '/packets/ {print $2}'; }

# probe LAB SIDE EXPECT: SYN from s to the NAT's public address, port with no mapping.
probe() {
	local L=$1 side=$2 want=$3 pub err rst0 icmp0 rst icmp t0 t
	pub=$(tools/natlab addr "$L" "$side-public")
	rst0=$(count "$L" "rst_$side"); icmp0=$(count "$L" "icmp_$side")
	t0=$(date +%s%N)
	err=$(tools/natlab exec "$L" s -- socat -T1 /dev/null "TCP4:$pub:33333,connect-timeout=1.5" 2>&1) &&
		fail "$want: connect to $pub:33333 succeeded"
	t=$(( ($(date +%s%N) - t0) / 1000000 ))
	rst=$(( $(count "$L" "rst_$side") - rst0 )); icmp=$(( $(count "$L" "icmp_$side") - icmp0 ))
	echo "  $want ($side-public $pub): ${t} ms, RST $rst, ICMP port-unreachable $icmp: ${err##*: }"
	case $want in
	rst)  [ "$rst" -ge 1 ] && [ "$icmp" -eq 0 ] && [[ $err == *refused* ]] || fail "rst filter: want a RST" ;;
	icmp) [ "$icmp" -ge 1 ] && [ "$rst" -eq 0 ] && [[ $err == *refused* || $err == *nreachable* ]] || fail "icmp filter: want ICMP port unreachable" ;;
	drop) [ "$rst" -eq 0 ] && [ "$icmp" -eq 0 ] && [[ $err == *timed* ]] || fail "drop filter: want silence and a timeout" ;;
	esac
}
probe "$L1" a icmp
probe "$L1" b drop
probe "$L2" a rst
probe "$L2" b drop
ok "rst, drop and icmp filters answer unsolicited SYNs as named"

# A SYN from outside that matches a mapping must pass, whatever the filter. The inside host connect()s from
# 45000 to s:46000 with its SYNs at TTL 2 (an nft rule in its own namespace: only segments with SYN and
# no ACK), so each SYN opens/refreshes the mapping at its NAT and dies at inet; then s connect()s from
# 46000 to the mapped port: a TCP simultaneous open through the NAT (conntrack SYN_SENT -> SYN_SENT2).
punch() {
	local L=$1 side=$2 pub out ap
	pub=$(tools/natlab addr "$L" "$side-public")
	tools/natlab exec "$L" "$side" -- nft -f - <<-'NFT'
	table ip lowttl {
	  chain out { type filter hook output priority -150; policy accept;
	    tcp dport 46000 tcp flags & (syn | ack) == syn ip ttl set 2
	  }
	}
	NFT
	tools/natlab exec "$L" "$side" -- timeout 5 socat -T3 TCP4:198.18.3.2:46000,sourceport=45000,reuseaddr \
		SYSTEM:'echo hello-from-inside' 2>/dev/null &
	ap=$!
	sleep 0.3
	out=$(tools/natlab exec "$L" s -- socat -T2 - "TCP4:$pub:45000,sourceport=46000,reuseaddr,connect-timeout=2" </dev/null 2>&1) || true
	wait "$ap" 2>/dev/null || true
	[ "$out" = hello-from-inside ] || fail "SYN matching a mapping did not reach $side through its filter: $out"
	echo "  simultaneous open from s to $pub:45000 through the $3 filter: '$out'"
}
punch "$L1" a icmp
punch "$L1" b drop
ok "a SYN matching a low-TTL mapping passes drop and icmp filters (simultaneous open through the NAT)"
