#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch --relay-first: the data mode starts over the TURN relay right after the meeting while
# the punch runs behind it (--lead 1000 keeps the punch a second away); when the direct connection
# is up both streams move to it (SWITCH markers with the relay byte counts) and the allocation is
# released. 320 MiB each way over --stdio moved while it flows: SHA-256 equal at both ends, the report
# says route relay->direct with bytes on both paths, and the first byte came before the punch
# connected. The throughput after the move is measured against a plain punched connection (no relay)
# in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab prf --nat-a preserve --nat-b preserve
TS=$(tools/natlab turn-secret "$LAB")
# 320 MiB: the lab relay moves ~35-60 MiB/s each way, so the stream still flows when the direct path comes
# up even after a missed first round (~3.4 s); 64 MiB had ended over the relay by then, and 160 MiB
# once in punch_relayfirst_fwd
PUNCH_MIB=${RELAYFIRST_MIB:-320}

punch_pair rf --relay 198.18.3.2 --relay-secret-file "$TS" --relay-first --lead 1000 ${RELAYFIRST_ARGS:-}
expect_relayfirst rf
ok "relay first: $PUNCH_MIB MiB each way moved from relay to direct while flowing, SHA-256 equal, first byte before the punch, allocation released"

# throughput after the move vs a plain punched connection (the same data mode, no relay)
punch_pair plain
expect_pair_ok plain
rate() {   # MiB/s of TAG SIDE over what came after START-KEY
	report_get "$1" "$2" "'%.1f' % ((r['result']['bytes_in'] - r['result'].get('bytes_in_relay', 0)) / 1048576 / ((r['result']['total_ms'] - r['result']['$3']) / 1000))"
}
ra=$(rate rf a time_to_switch_ms); pa=$(rate plain a time_to_connect_ms)
ratio=$(awk -v a="$ra" -v b="$pa" 'BEGIN{printf "%.2f", a / b}')
echo "throughput after the switch: $ra MiB/s (a's receive), plain punched connection: $pa MiB/s; ratio $ratio"
awk -v r="$ratio" -v m="${RELAYFIRST_MIN_RATIO:-0.5}" 'BEGIN{exit !(r >= m)}' ||
	fail "throughput after the switch is $ratio of a plain connection"
