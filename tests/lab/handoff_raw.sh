#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# handoff_repair.sh after a REAL raw handshake: a's SYN and ACK are crafted packets (rawpunch/punch/session.h,
# userstack tcb, nft RST guard), the completed tcb goes through rp_handoff_from_tcb() and rp_handoff(),
# and only then is the guard removed. Same assertions: 64 MiB each way with SHA-256, one SYN from a,
# FIN both ways, no RST on the wire; plus the send MSS is the full 1448 and the guard did drop the
# kernel's RST to the SYN-ACK.
set -euo pipefail
HANDOFF=raw LABPFX=how exec bash "$(dirname "$0")/handoff_repair.sh"
