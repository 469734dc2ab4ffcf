#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# handoff_repair.sh over a path losing 1% of the packets each way (tools/natlab up --loss 1), once for
# each way of getting the connection: frozen kernel socket rebuilt (freeze) and raw handshake handed
# off (raw). The handed-off socket is an ordinary kernel socket, so the kernel retransmits; the same
# assertions hold (64 MiB each way, SHA-256 both ways, one ISN from a, FIN both ways, no RST) plus:
# the lab really dropped packets and a's kernel really retransmitted.
set -euo pipefail
here=$(dirname "$0")
LOSS=1 LABPFX=hol HANDOFF=freeze bash "$here/handoff_repair.sh"
LOSS=1 LABPFX=hol HANDOFF=raw bash "$here/handoff_repair.sh"
