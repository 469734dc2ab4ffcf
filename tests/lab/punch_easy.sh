#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch between two port-preserving NATs: simultaneous open with RST filtering (low-TTL primes
# first) and with DROP filtering; 4 MiB each way over the handed-off kernel socket (SHA-256), report
# path=repair, --pcap holds the attempt; a wrong secret on one side fails cleanly on both (exit 1, a
# reason, no punch packet); no nft table is left.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab pe --nat-a preserve --nat-b preserve
PUNCH_PCAP=1 punch_pair rst
expect_pair_ok rst
[ "$(report_get rst a "r['plan']['method']")" = simultaneous-open ] || fail "rst: method is not simultaneous-open"
[ "$(report_get rst a "r['rounds'][0]['primed']")" = True ] || fail "rst: an RST-filtering NAT must be primed"
[ "$(report_get rst a "r['self']['allocation']")" = preserving ] || fail "rst: a's NAT not probed as preserving"
# the pcap shows a's SYNs (the low-TTL prime among them) and what came back
n_prime=$(tshark -n -r "$T/rst-a.pcap" -Y "ip.src==10.0.1.2 && tcp.flags.syn==1 && tcp.flags.ack==0 && ip.ttl<=2" 2>/dev/null | wc -l)
n_in=$(tshark -n -r "$T/rst-a.pcap" -Y "ip.dst==10.0.1.2 && tcp.flags.syn==1" 2>/dev/null | wc -l)
if [ "$n_prime" -lt 1 ] || [ "$n_in" -lt 1 ]; then fail "rst: --pcap has $n_prime low-TTL SYNs out and $n_in SYNs in"; fi
no_leftovers
ok "preserve x preserve, rst filtering: 4 MiB each way intact, repair, prime seen in the pcap"
summary rst

# wrong secret on b: the rendezvous never pairs them (the id depends on the secret)
head -c 32 /dev/urandom | base64 >"$T/other"
SECRET_FILE_OF[b]=$T/other
start=$(date +%s)
punch_pair wrong --timeout 3
SECRET_FILE_OF[b]=
if [ "${PAIR_RC[0]}" != 1 ] || [ "${PAIR_RC[1]}" != 1 ]; then fail "wrong secret: exit codes a=${PAIR_RC[0]} b=${PAIR_RC[1]} (want 1 1)"; fi
[ $(( $(date +%s) - start )) -le 10 ] || fail "wrong secret: took longer than 10 s"
for side in a b; do
	grep -q "rawpunch: rendezvous" "$T/wrong-$side.err" || fail "wrong secret: $side gave no rendezvous reason"
	grep -q "^hint:" "$T/wrong-$side.err" || fail "wrong secret: $side gave no hint"
	[ "$(report_get wrong "$side" "r['result']['ok']")" = False ] || fail "wrong secret: $side's report is not a failure"
	[ "$(report_get wrong "$side" "len(r['rounds'])")" = 0 ] || fail "wrong secret: $side punched anyway"
	[ -s "$T/wrong-$side.out" ] && fail "wrong secret: $side wrote data"
done
no_leftovers
ok "wrong secret on one side: both exit 1 with the reason, nothing punched"

"$NATLAB" down "$LAB" >/dev/null
punch_lab pd --nat-a preserve --nat-b preserve --filter-a drop --filter-b drop
punch_pair drop
expect_pair_ok drop
[ "$(report_get drop a "r['self']['filtering']")" = drop ] || fail "drop: filtering not probed as drop"
[ "$(report_get drop b "r['rounds'][0]['primed']")" = False ] || fail "drop: a dropping NAT needs no prime"
no_leftovers
ok "preserve x preserve, drop filtering: 4 MiB each way intact, repair, no primes"
summary drop
