#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch through the NATs of issue 11 (a few attempts each, PUNCH_BLOCK_TRIES, default 3;
# each must connect, 1 MiB each way intact):
#   block x block        both sides random inside their own 256-port block (RFC 7422): the probe finds
#                        each block (range), the plan is block-pairs (550 low-TTL pairs per side to
#                        random ports of the other's block, then the same tuples at full TTL, P 0.99)
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
