#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch --relay-first on a bad link: 50 ms RTT between a and b with 1 % loss each way (natlab
# --delay 25 --loss 1, through rp-wire; the relay path a -> s -> b is lossy too, and twice as long).
# 64 MiB each way over --stdio start on the TURN relay right after the meeting and move to the direct
# connection while they flow: SHA-256 equal at both ends, both reports say route relay->direct with
# bytes on both paths, the first byte came before the punch connected (time_to_first_byte_ms <
# time_to_connect_ms), the allocation is released and nothing is left on s. --lead 1000 keeps the punch
# a second away: with the automatic lead (~100 ms here) the relay (Connect, ConnectionBind, then one
# way through s) and the punch finish within ~100 ms of each other at this RTT, and a lost packet on
# either decides which first byte comes first (the relay's came first in 9 of 10 runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab prl --nat-a preserve --nat-b preserve --delay 25 --loss 1
TS=$(tools/natlab turn-secret "$LAB")
PUNCH_MIB=${RELAYFIRST_MIB:-64}
# a lost FIN to coturn is sent again after the RTO (backed off): give the release a little longer
WAIT=15
punch_pair rfl --relay 198.18.3.2 --relay-secret-file "$TS" --relay-first --lead 1000 ${RELAYFIRST_ARGS:-}
expect_relayfirst rfl
ok "relay first at 50 ms RTT, 1 % loss: $PUNCH_MIB MiB each way moved from relay to direct while flowing, SHA-256 equal, first byte before the punch, allocation released"
