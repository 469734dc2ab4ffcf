#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch through a random (fully-random, symmetric) NAT: birthday. The hard side opens 256
# mappings with TTL-2 SYNs from 256 local ports, the easy side (port preserving) probes random ports of
# the hard NAT meanwhile; the first probe that meets a mapping reaches the hard host (conntrack:
# simultaneous open) and its SYN-ACK completes the handshake (and stops the opening: a hit while it
# runs leaves the rest of the 256 unsent). 4 MiB each way over the kernel socket (SHA-256), path=repair.
# Then random x random: both sides learn at once that no plan exists (exit 1, the reason, no packet).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab pb --nat-a random --nat-b preserve
PUNCH_PCAP=1 punch_pair bd
expect_pair_ok bd
[ "$(report_get bd a "r['plan']['method']")" = birthday ] || fail "bd: method is not birthday"
[ "$(report_get bd a "r['self']['allocation']")" = random ] || fail "bd: a not probed as random"
[ "$(report_get bd a "r['rounds'][-1]['local_ports']['n']")" = 256 ] || fail "bd: a did not open 256 mappings"
[ "$(report_get bd a "r['rounds'][-1]['low_ttl']")" = 2 ] || fail "bd: a's mappings were not opened with TTL 2"
# every SYN a sent was a TTL-2 mapping (none reached b's NAT: b saw nothing but the probes' answers)
n_low=$(tshark -n -r "$T/bd-a.pcap" -Y "!icmp && ip.src==10.0.1.2 && tcp.flags.syn==1 && tcp.flags.ack==0 && ip.ttl==2" 2>/dev/null | wc -l)
n_sent=$(report_get bd a "sum(x['sent']['syns'] for x in r['rounds'])")     # every round's (a miss: P 0.01 each)
[ "$n_low" -ge 1 ] && [ "$n_low" = "$n_sent" ] || fail "bd: the pcap shows $n_low TTL-2 SYNs from a, its report $n_sent SYNs"
n_full=$(tshark -n -r "$T/bd-a.pcap" -Y "!icmp && ip.src==10.0.1.2 && ip.dst==198.18.2.2 && tcp.flags.syn==1 && tcp.flags.ack==0 && ip.ttl>2" 2>/dev/null | wc -l)
[ "$n_full" = 0 ] || fail "bd: a sent $n_full SYNs to b past its NAT"
# b probed while a opened: its first probe left before a's last mapping (the plan's sides are by role)
[ "$(report_get bd b "(lambda s, h: s[1 - h]['start_ms'] < s[h]['n_local'] * 1000 // s[h]['rate_pps'])(r['plan']['sides'], 'ab'.index(r['plan']['hard_side']))")" = True ] ||
	fail "bd: b's probes were planned after a's mappings"
[ "$(report_get bd b "r['rounds'][-1]['action']")" = probe-random ] || fail "bd: b did not probe random ports"
no_leftovers
ok "random x preserve: birthday, 4 MiB each way intact, repair"
summary bd

"$NATLAB" down "$LAB" >/dev/null
punch_lab pi --nat-a random --nat-b random
start=$(date +%s)
punch_pair imp --timeout 10
if [ "${PAIR_RC[0]}" != 1 ] || [ "${PAIR_RC[1]}" != 1 ]; then fail "imp: exit codes a=${PAIR_RC[0]} b=${PAIR_RC[1]} (want 1 1)"; fi
for side in a b; do
	[ "$(report_get imp "$side" "r['plan']['method']")" = impossible ] || fail "imp: $side's plan is not impossible"
	[ "$(report_get imp "$side" "len(r['rounds'])")" = 0 ] || fail "imp: $side punched anyway"
	grep -q "relay" "$T/imp-$side.err" || fail "imp: $side did not say why (relay)"
done
[ $(( $(date +%s) - start )) -le 8 ] || fail "imp: took too long to give up"
no_leftovers
ok "random x random: both sides refuse at once with the reason"
