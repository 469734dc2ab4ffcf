# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shared by the rendezvous server abuse tests (rendezvous_flood, _fdlimit, _squat; sourced from the
# repository root, not a test itself). Sets RP (rawpunch), LOAD (tools/rv-load), SRV (the server's address
# on s) and X LAB HOST CMD... (run CMD in a lab host).
#
#   rv_lab PREFIX TMPNAME   up a lab L (unique name from PREFIX) and a temp dir T (/tmp/TMPNAME.XXXXXX);
#                           both are removed on exit, also on failure
# shellcheck source=tools/natlab-lib.sh
source tools/natlab-lib.sh
B=${BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
RP=${RAWPUNCH:-$B/rawpunch}
LOAD=$B/rv-load
[ -x "$RP" ] || fail "$RP not built (make)"
[ -x "$LOAD" ] || fail "$LOAD not built (make)"
# shellcheck disable=SC2034  # used by the sourcing tests
SRV=198.18.3.2:7777
X() { local lab=$1 h=$2; shift 2; tools/natlab exec "$lab" "$h" -- "$@"; }

rv_lab() {
	L=$(unique_lab "$1")
	lab_up "$L"
	T=$(mktemp -d "/tmp/$2.XXXXXX")
	trap '_natlab_cleanup; rm -rf "$T"' EXIT     # after lab_up, which sets its own trap
}
