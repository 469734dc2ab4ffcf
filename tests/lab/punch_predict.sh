#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch with sequential NATs: preserve x sequential (the sequential side primes its predicted
# port, the other bursts to the prediction window) and sequential x sequential (lockstep: every target
# primed with a low TTL, then the full-TTL pass pairing the i-th predictions). 4 MiB each way over the
# handed-off kernel socket (SHA-256), report path=repair, no nft table left.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab pq --nat-a sequential --nat-b preserve
punch_pair ps
expect_pair_ok ps
[ "$(report_get ps a "r['plan']['method']")" = predicted-burst ] || fail "ps: method is not predicted-burst"
[ "$(report_get ps a "r['self']['allocation']")" = sequential ] || fail "ps: a not probed as sequential"
# a's public port of the flow is one of its predictions
pa=$(report_get ps b "r['result']['remote'].split(':')[1]")
[ "$(report_get ps a "$pa in r['self']['predicted']")" = True ] || fail "ps: a's port $pa was not predicted"
no_leftovers
ok "sequential x preserve: 4 MiB each way intact, repair, a's port $pa was predicted"
summary ps

"$NATLAB" down "$LAB" >/dev/null
punch_lab pr --nat-a sequential --nat-b sequential
punch_pair ss
expect_pair_ok ss
[ "$(report_get ss a "r['plan']['method']")" = predicted-burst ] || fail "ss: method is not predicted-burst"
grep -q lockstep <<<"$(report_get ss a "r['plan']['reason']")" || fail "ss: not the lockstep plan"
for side in a b; do
	n=$(report_get ss "$side" "r['rounds'][-1]['sent']['primes']")
	[ "$n" -ge 8 ] || fail "ss: $side primed only $n targets"
done
no_leftovers
ok "sequential x sequential: lockstep, 4 MiB each way intact, repair"
summary ss
