#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch through the NATs of issue 11 (a few attempts each, PUNCH_BLOCK_TRIES, default 3, and
# PUNCH_BLOCK_STALE_TRIES, default 10; each must connect, 1 MiB each way intact):
#   block x block        both sides random inside their own 256-port block (RFC 7422): the probe finds
#                        each block (range), the plan is block-pairs (550 low-TTL pairs per side to
#                        random ports of the other's block, then the same tuples at full TTL, P 0.99)
#   block x block, stale mappings
#                        the same after each host has left mappings at its router that an earlier
#                        attempt would leave (SYNs with other sequence numbers from its local ports to
#                        ports of the peer's block, SYN-SENT there for two minutes), with the hosts'
#                        local ports narrowed so a round reuses them: the full-TTL SYNs meet those
#                        mappings, and a flow through one dies after the handoff (the router's
#                        conntrack holds the segments of the side behind it out of window and lets them
#                        out untranslated; the other router answers them with a reset). Each must
#                        connect all the same, the strays ignored (seen.stray in the report), but for
#                        at most one reset after the handoff (a residual, cause open; see below)
#   preserve x (preserve behind a random carrier NAT)
#                        a home NAT behind a carrier NAT: b is hard (the carrier's random ports), a
#                        easy: birthday, b's mappings opened with b's own nat_ttl (3: past both NATs),
#                        not the default 2 (which would die at the carrier NAT and open nothing)
set -euo pipefail
cd "$(dirname "$0")/../.."
PUNCH_MIB=${PUNCH_MIB:-1}
source tests/lab/punch_common.bash
TRIES=${PUNCH_BLOCK_TRIES:-3}

punch_lab pk --nat-a block --nat-b block
for n in $(seq "$TRIES"); do
	punch_pair "bb$n"
	expect_pair_ok "bb$n"
	[ "$(report_get "bb$n" a "r['plan']['method']")" = block-pairs ] || fail "bb$n: method is not block-pairs"
	for side in a b; do
		[ "$(report_get "bb$n" "$side" "r['self']['range'] is not None")" = True ] || fail "bb$n: $side's block not found"
		[ "$(report_get "bb$n" "$side" "r['rounds'][-1]['action']")" = open-pairs ] || fail "bb$n: $side did not open pairs"
	done
	summary "bb$n"
done
no_leftovers
ok "block x block: $TRIES/$TRIES connected with block-pairs"

# Stale mappings, on both sides (either may be plan side b, the one a's SYNs reach): the host's
# ephemeral ports narrowed to 40000-41099, where the round's 550 fresh ports come from; from every
# other one of them a SYN with TTL 2 (it opens the mapping at the host's router and dies at inet) to
# each of 4 random ports of the peer's block (a chunk of 50 local ports at a time, 4 ports of its
# own each; the router has its 256 block ports for each port of the peer's): 2200 mappings per
# router, some of them met by the plan side a's SYNs in every round.
plant_stale() {   # plant_stale HOST ROUTER HOST_ADDR PEER_PUBLIC PEER_BLOCKS_KEY
	local h=$1 r=$2 addr=$3 peer=$4 blk l qs n
	blk=$(lab_state "$LAB" "$5")
	blk=${blk%% *} blk=${blk#*:}
	[[ $blk =~ ^[0-9]+-[0-9]+$ ]] || fail "$5 not in the lab state: '$blk'"
	tools/natlab exec "$LAB" "$h" -- sysctl -qw net.ipv4.ip_local_port_range="40000 41099" || fail "sysctl in $h"
	for l in $(seq 40000 100 41099); do
		qs=$(python3 -c "import random,sys; lo,hi=map(int,sys.argv[1].split('-')); print(','.join(map(str,random.sample(range(lo,hi+1),4))))" "$blk")
		tools/natlab exec "$LAB" "$h" -- "$RP" syn "$peer" -p "$qs" --sport "$(seq -s, "$l" 2 $((l + 98)))" --ttl 2 \
			--rate 20000 >/dev/null 2>&1 || fail "rawpunch syn: the stale mappings of $h"
	done
	n=$(tools/natlab exec "$LAB" "$r" -- conntrack -L -p tcp --src "$addr" --dst "$peer" 2>/dev/null |
		grep -c 'SYN_SENT.*sport=4[01][0-9][0-9][0-9] ' || true)
	[ "$n" -ge 2100 ] || fail "only $n stale mappings at $r (2200 SYNs sent)"
}
plant_stale a ra 10.0.1.2 198.18.2.2 nat_b_blocks
plant_stale b rb 10.0.2.2 198.18.1.2 nat_a_blocks
STALE_TRIES=${PUNCH_BLOCK_STALE_TRIES:-10}
stray=0 resid=0
for n in $(seq "$STALE_TRIES"); do
	punch_pair "bs$n"
	# What remains (docs/limits.md, "A NAT's memory of an earlier attempt"): with these plantings
	# about 1 attempt in 50 still ends in a reset after the handoff, cause open (none in 200 matrix
	# attempts without them): one such attempt of the ten is let pass, a second fails the test.
	if [ "${PAIR_RC[0]}${PAIR_RC[1]}" != 00 ] && [ "$resid" = 0 ] &&
		grep -q 'the peer reset the connection' "$T/bs$n-a.err" "$T/bs$n-b.err"; then
		resid=1
		echo "   bs$n: reset after the handoff (the open residual; one is let pass)"
		continue
	fi
	expect_pair_ok "bs$n"
	[ "$(report_get "bs$n" a "r['plan']['method']")" = block-pairs ] || fail "bs$n: method is not block-pairs"
	for side in a b; do
		stray=$((stray + $(report_get "bs$n" "$side" "sum(x['seen']['stray'] for x in r['rounds'])")))
	done
	summary "bs$n"
done
# the strays were there to ignore (else this part tested nothing)
[ "$stray" -ge 1 ] || fail "block x block with stale mappings: no stray SYN seen in $STALE_TRIES attempts"
no_leftovers
ok "block x block with 2 x 2200 stale mappings: $((STALE_TRIES - resid))/$STALE_TRIES connected, $stray stray SYNs ignored"
"$NATLAB" down "$LAB" >/dev/null

punch_lab pc --nat-a preserve --nat-b preserve --cgn-b random
for n in $(seq "$TRIES"); do
	punch_pair "cg$n"
	expect_pair_ok "cg$n"
	[ "$(report_get "cg$n" a "r['plan']['method']")" = birthday ] || fail "cg$n: method is not birthday"
	[ "$(report_get "cg$n" b "r['self']['nat_ttl']")" = 3 ] || fail "cg$n: b's nat_ttl is not 3"
	[ "$(report_get "cg$n" b "r['rounds'][-1]['low_ttl']")" = 3 ] || fail "cg$n: b's mappings were not opened with TTL 3"
	summary "cg$n"
done
no_leftovers
ok "preserve x (preserve behind a random carrier NAT): $TRIES/$TRIES connected, birthday with b's nat_ttl 3"
