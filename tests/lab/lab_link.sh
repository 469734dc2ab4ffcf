#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test, link emulation: --delay/--jitter give the promised RTT between internet-side paths,
# a 64 MiB TCP transfer through the emulated links completes at a sane rate, and --loss drops about the
# asked share per direction (nft path for loss alone, rp-wire path with delay).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh

# ping_stats LAB HOST DST COUNT INTERVAL -> "loss_pct min avg max" (first a warm-up ping for ARP)
ping_stats() {
	local out
	tools/natlab exec "$1" "$2" -- ping -n -q -c 2 -i 0.2 "$3" >/dev/null 2>&1 || true
	out=$(tools/natlab exec "$1" "$2" -- ping -n -q -c "$4" -i "$5" -W 2 "$3" 2>&1) || true
	awk '/packet loss/ {for (i = 1; i <= NF; i++) if ($i ~ /%$/) loss = $i}
	     /^rtt|^round-trip/ {split($4, r, "/"); mn = r[1]; av = r[2]; mx = r[3]}
	     END {sub("%", "", loss); printf "%s %s %s %s\n", loss, mn, av, mx}' <<<"$out"
}
between() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN{exit !(v >= lo && v <= hi)}'; }

L1=$(unique_lab ltl)
lab_up "$L1" --delay 20 --jitter 2
for dst in 198.18.3.2 198.18.2.2; do
	read -r loss mn av mx <<<"$(ping_stats "$L1" a $dst 20 0.05)"
	echo "  delay 20 jitter 2: a -> $dst rtt min/avg/max $mn/$av/$mx ms, loss $loss%"
	between "$av" 38 46 || fail "delay: average RTT a -> $dst $av ms, want ~40"
	# the maximum also carries the scheduling of a userspace delay queue on a busy 2-core machine
	between "$mn" 35.5 44 && between "$mx" 36 64 || fail "delay: RTT range $mn..$mx ms outside 40 +-4 (+scheduling)"
	awk -v a="$mn" -v b="$mx" 'BEGIN{exit !(b - a >= 0.5)}' || fail "jitter: RTT spread $mn..$mx too small"
done
read -r loss mn av mx <<<"$(ping_stats "$L1" inet 198.18.1.2 10 0.05)"
echo "  one link (inet -> ra): rtt avg $av ms"
between "$av" 18 24 || fail "delay: one link should add half the delay each way (RTT ~20 ms), got $av"
ok "delay/jitter: RTT ~2 x delay between any two internet-side hosts, jitter visible"

# Jitter never reorders: 500 numbered datagrams sent back to back arrive in order (and all of them).
tools/natlab exec "$L1" s -- timeout 3 socat -u UDP4-RECV:9001,bind=198.18.3.2,rcvbuf=1048576 - >"/tmp/$L1.udp" &
rp=$!
sleep 0.3
seq -f '%06g' 1 500 | tools/natlab exec "$L1" a -- socat -u -b 7 - UDP4:198.18.3.2:9001
wait "$rp" || true
n=$(wc -l <"/tmp/$L1.udp")
sort -c "/tmp/$L1.udp" 2>/dev/null || { rm -f "/tmp/$L1.udp"; fail "jitter reordered datagrams"; }
rm -f "/tmp/$L1.udp"
[ "$n" -eq 500 ] || fail "jitter: $n of 500 datagrams arrived (no loss configured)"
ok "jitter: 500 back-to-back datagrams arrive complete and in order"

# 64 MiB through two emulated links (a -> s), 40 ms RTT.
tools/natlab exec "$L1" s -- timeout 30 sh -c 'socat -u TCP4-LISTEN:9000,reuseaddr - | wc -c' >"/tmp/$L1.bytes" &
rp=$!
sleep 0.3
t0=$(date +%s%N)
head -c 64M /dev/zero | tools/natlab exec "$L1" a -- timeout 30 socat -u - TCP4:198.18.3.2:9000 || fail "transfer"
wait "$rp" || fail "receiver"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
got=$(cat "/tmp/$L1.bytes"); rm -f "/tmp/$L1.bytes"
[ "$got" -eq 67108864 ] || fail "transfer: received $got of 67108864 bytes"
echo "  64 MiB a -> s at 40 ms RTT: $ms ms ($(( 67108864 * 8 / ms / 1000 )) Mbit/s)"
[ "$ms" -le 20000 ] || fail "transfer through rp-wire too slow: $ms ms"
ok "64 MiB TCP through rp-wire in $ms ms"

# Loss alone (nft on inet): 10% per direction -> ping (both directions) loses 1 - 0.9^2 = 19%.
L2=$(unique_lab ltm)
lab_up "$L2" --loss 10
read -r loss _ <<<"$(ping_stats "$L2" a 198.18.3.2 500 0.005)"
echo "  loss 10 (nft): ping loss $loss% (expect 19%)"
between "$loss" 12 27 || fail "loss 10%: ping loss $loss%, expected ~19%"
# Loss with delay (rp-wire on each link, q = 1 - sqrt(0.9) per link): the same end-to-end figure.
L3=$(unique_lab ltk)
lab_up "$L3" --delay 2 --loss 10
read -r loss _ <<<"$(ping_stats "$L3" a 198.18.2.2 500 0.005)"
echo "  loss 10 + delay 2 (rp-wire): ping loss $loss% (expect 19%)"
between "$loss" 12 27 || fail "loss 10% with delay: ping loss $loss%, expected ~19%"
ok "loss: ~PCT per direction on any internet-side path, with and without delay"
