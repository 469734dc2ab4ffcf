#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch --relay: between two random NATs no strategy applies (the plan refuses); with a TURN
# server (the lab's coturn) the same session goes on through the relay: both allocate before the
# meeting, the relayed addresses cross in the sealed exchange, side a Connects, side b accepts. 4 MiB
# each way at once over --stdio (framed, flow-controlled: coturn neither sees a half-close nor a large
# load both ways), SHA-256 equal, the status line and the report say path relay and why; the
# allocations are released, nothing is left on s.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab prl --nat-a random --nat-b random
TS=$(tools/natlab turn-secret "$LAB")

# bad usage: exit 2 before anything is sent
for args in "--relay 198.18.3.2" "--relay-secret-file $TS" "--relay-first" "--relay 198.18.3.2,,x:y --relay-secret-file $TS"; do
	rc=0
	# shellcheck disable=SC2086
	tools/natlab exec "$LAB" a -- "$RP" punch --rendezvous 198.18.3.2 --session u --secret-file "$T/secret" $args \
		</dev/null >/dev/null 2>"$T/usage.txt" || rc=$?
	[ $rc = 2 ] || fail "punch $args: exit $rc, want 2 ($(cat "$T/usage.txt"))"
done
ok "bad --relay usage: exit 2"

punch_pair rr --relay 198.18.3.2 --relay-secret-file "$TS"
if [ "${PAIR_RC[0]}" != 0 ] || [ "${PAIR_RC[1]}" != 0 ]; then fail "rr: punch exited a=${PAIR_RC[0]} b=${PAIR_RC[1]}"; fi
ha=$(sha256sum <"$T/rr-a.in" | cut -c1-64); hb=$(sha256sum <"$T/rr-b.in" | cut -c1-64)
[ "$(sha256sum <"$T/rr-b.out" | cut -c1-64)" = "$ha" ] || fail "rr: b received $(wc -c <"$T/rr-b.out") bytes, not a's"
[ "$(sha256sum <"$T/rr-a.out" | cut -c1-64)" = "$hb" ] || fail "rr: a received $(wc -c <"$T/rr-a.out") bytes, not b's"
for side in a b; do
	[ "$(report_get rr $side "r['result']['ok']")" = True ] || fail "rr: $side's report: not ok"
	[ "$(report_get rr $side "r['result']['path']")" = relay ] || fail "rr: $side's report: path is not relay"
	[ "$(report_get rr $side "r['result']['route']")" = relay ] || fail "rr: $side's report: route is not relay"
	report_get rr $side "r['result']['relay_why']" | grep -q "^plan: " || fail "rr: $side's report: relay_why $(report_get rr $side "r['result'].get('relay_why')")"
	[ "$(report_get rr $side "r['result']['bytes_in']")" = $((PUNCH_MIB << 20)) ] || fail "rr: $side's report: bytes_in"
	[ "$(report_get rr $side "len(r['rounds'])")" = 0 ] || fail "rr: $side punched although the plan refused"
	grep -q "punch: connected through the relay 198.18.3.2:3478 .* path: relay, because plan: " "$T/rr-$side.err" ||
		fail "rr: $side's status line: $(grep connected "$T/rr-$side.err")"
done
[ "$(report_get rr a "r['result']['relayed']")" = "$(report_get rr b "r['result']['peer_relayed']")" ] ||
	fail "rr: a's relayed address is not what b learned"
no_leftovers
expect_relay_released
ok "random x random: no strategy, 4 MiB each way at once through the relay, SHA-256 equal, path relay"
echo "   rr/a: $(report_get rr a "'relay %s in %.0f ms, why: %s' % (r['result']['relayed'], r['result']['time_to_relay_ms'], r['result']['relay_why'])")"
