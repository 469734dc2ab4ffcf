#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch --relay-first with -L: side a forwards one local client (socat in a's namespace) over
# the stream, side b runs --stdio. The stream starts on the TURN relay and moves to the direct
# connection while it flows; then the switch hands the direct socket to -L's relay in the data mode's
# child (the report's handed_back), which copies between the client and the direct socket itself.
# 320 MiB each way at once: SHA-256 equal at both ends (the client's and b's), both reports say route
# relay->direct with bytes on both paths and the hand-back, the allocation is released. 320 MiB: the
# lab's relay carries ~70 MiB/s each way, and a missed first round (the punch connects at ~3.3 s then;
# it happens in the lab) let 160 MiB end over the relay before the move.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab prff --nat-a preserve --nat-b preserve
TS=$(tools/natlab turn-secret "$LAB")
PUNCH_MIB=${RELAYFIRST_MIB:-320}
tag=rff
for side in a b; do head -c $((PUNCH_MIB << 20)) /dev/urandom >"$T/$tag-$side.in"; done
common=(--rendezvous 198.18.3.2 --session "$tag" --secret-file "$T/secret" --timeout 20
	--relay 198.18.3.2 --relay-secret-file "$TS" --relay-first --lead 1000)
tools/natlab exec "$LAB" a -- "$RP" punch "${common[@]}" -L 127.0.0.1:6200 --report "$T/$tag-a.json" \
	</dev/null >/dev/null 2>"$T/$tag-a.err" & pa=$!
tools/natlab exec "$LAB" b -- "$RP" punch "${common[@]}" --stdio --report "$T/$tag-b.json" \
	<"$T/$tag-b.in" >"$T/$tag-b.out" 2>"$T/$tag-b.err" & pb=$!
for _ in $(seq 50); do
	tools/natlab exec "$LAB" a -- ss -ltn 2>/dev/null | grep -q '127.0.0.1:6200 ' && break
	sleep 0.1
done
# the client: its input, then a half-close; it waits for b's whole stream (-t: after its own EOF)
tools/natlab exec "$LAB" a -- socat -t 60 - TCP4:127.0.0.1:6200 <"$T/$tag-a.in" >"$T/$tag-a.out" 2>"$T/client.err" ||
	fail "the -L client: $(cat "$T/client.err")"
PAIR_RC=()
for p in $pa $pb; do rc=0; wait "$p" || rc=$?; PAIR_RC+=("$rc"); done
expect_relayfirst "$tag"
ok "relay first with -L: $PUNCH_MIB MiB each way between a local client and b's stdio moved from relay to direct while flowing, handed back to -L's relay, SHA-256 equal, allocation released"
