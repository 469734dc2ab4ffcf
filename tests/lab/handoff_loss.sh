#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# handoff_repair.sh over a path losing 1% of the packets each way (tools/natlab up --loss 1): the
# handed-off socket is an ordinary kernel socket, so the kernel retransmits; the same assertions hold
# (64 MiB each way, SHA-256 both ways, one SYN, FIN both ways, no RST) plus: the lab really dropped
# packets and a's kernel really retransmitted.
set -euo pipefail
LOSS=1 LABPFX=hol exec bash "$(dirname "$0")/handoff_repair.sh"
