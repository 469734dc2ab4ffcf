# SPDX-License-Identifier: MIT
# Shared set-up of the handoff lab tests (sourced from the repository root; not a test itself):
# the hoxfer endpoint, a lab with a temp dir and background pids that are all removed on exit.
source tools/natlab-lib.sh
HOXFER=${HOXFER:-${BUILD:-build}/bench/hoxfer}
[ -x "$HOXFER" ] || fail "$HOXFER not built (run make)"
# run a command without CAP_NET_ADMIN (keeping CAP_NET_RAW): TCP_REPAIR is then really refused
nocap=(setpriv --inh-caps=-net_admin --bounding-set=-net_admin)
# kv FILE KEY: the value of KEY=VALUE in hoxfer's summary line
kv() { grep -oE "(^| )$2=[^ ]*" "$1" | head -1 | sed "s/.*=//"; }

ho_cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
	_natlab_cleanup
}

# ho_lab PREFIX [natlab up options]: $LAB up, $tmp made, $pids empty; everything removed on EXIT.
ho_lab() {
	local pfx=$1
	shift
	LAB=$(unique_lab "$pfx")
	lab_up "$LAB" "$@"
	tmp=$(mktemp -d /tmp/rp-ho.XXXXXX)
	pids=()
	trap ho_cleanup EXIT
}
