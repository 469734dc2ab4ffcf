#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The rendezvous server keeps no privilege while it parses input from the network (issue 14): right
# after the listening socket is open it calls rp_privs_enter(--user, 0). Read from /proc/PID/status of
# the running server (Uid, CapPrm, CapEff, CapBnd, NoNewPrivs):
#   - started as root: runs as nobody (65534), as SUDO_UID when set, as --user when named; no
#     capability in any set; no_new_privs;
#   - started as a plain user (setpriv) on port 7778: binds (no capability is needed for a port >=
#     1024) and serves; also from a copy of the binary with file capabilities (setcap), which it drops;
#   - in every case the server still works: a join pairs, and a filter probe (a plain non-blocking
#     connect and SO_ERROR: no privilege) reports a's rst filter;
#   - --user nosuchuser: exit 2 before anything is bound.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
B=${BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
RP=${RAWPUNCH:-$B/rawpunch}
[ -x "$RP" ] || fail "$RP not built (make)"
command -v setcap >/dev/null || fail "setcap missing (make deps: libcap2-bin)"
command -v setpriv >/dev/null || fail "setpriv missing (make deps: util-linux)"
L=$(unique_lab rvp)
lab_up "$L" --filter-a rst
T=$(mktemp -d /tmp/rv-privs.XXXXXX)
chmod 755 "$T"                               # the plain-user servers run a copy from here
trap '_natlab_cleanup; rm -rf "$T"' EXIT     # after lab_up, which sets its own trap
X() { local lab=$1 h=$2; shift 2; tools/natlab exec "$lab" "$h" -- "$@"; }

"$RP" rendezvous --help | grep -q "needs no privilege at all" || fail "--help does not say it needs no privilege"
rc=0; ip netns exec "rp$L-s" "$RP" rendezvous --listen 198.18.3.2:7777 --user nosuchuser 2>"$T/nouser" || rc=$?
[ "$rc" = 2 ] && grep -q "no such user" "$T/nouser" || fail "--user nosuchuser: exit $rc, $(cat "$T/nouser")"

PID=
XARGS=()
start() {   # start NAME PORT [ENV=... ] -- CMD...: the server in s (with XARGS); PID of the running server
	local name=$1 port=$2; shift 2
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	ip netns exec "rp$L-s" env "${envs[@]}" "$@" rendezvous --listen "198.18.3.2:$port" -v "${XARGS[@]}" \
		>"$T/$name.out" 2>"$T/$name.err" &
	PID=$!
	wait_line "$T/$name.out" "listening on" || fail "$name: server did not start: $(cat "$T/$name.err")"
}
field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
check() {   # check NAME UID: the running server's ids and capabilities
	local name=$1 uid=$2 u
	u=$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$PID/status")
	[ "$u" = "$uid $uid $uid $uid" ] || fail "$name: uids $u, want $uid"
	for f in CapInh CapPrm CapEff CapAmb; do
		[ "$(field "$PID" $f)" = 0000000000000000 ] || fail "$name: $f $(field "$PID" $f)"
	done
	[ "$(field "$PID" NoNewPrivs)" = 1 ] || fail "$name: NoNewPrivs $(field "$PID" NoNewPrivs)"
	echo "  $name: Uid $uid, CapPrm $(field "$PID" CapPrm), CapEff $(field "$PID" CapEff), CapBnd $(field "$PID" CapBnd), NoNewPrivs 1"
}
works() {   # works NAME PORT: a join pairs and a's filter probe reports rst
	local name=$1 port=$2 pa
	head -c 32 /dev/urandom | base64 >"$T/secret"
	X "$L" a "$RP" rendezvous --join "198.18.3.2:$port" --session "p-$name" --secret-file "$T/secret" --timeout 5 \
		>"$T/$name-a.json" 2>"$T/$name-a.err" &
	pa=$!
	X "$L" b "$RP" rendezvous --join "198.18.3.2:$port" --session "p-$name" --secret-file "$T/secret" --timeout 5 \
		>"$T/$name-b.json" 2>"$T/$name-b.err" || fail "$name: join: $(cat "$T/$name-b.err")"
	wait $pa || fail "$name: join: $(cat "$T/$name-a.err")"
	r=$(X "$L" a "$RP" rendezvous --filter-probe "198.18.3.2:$port" --port 5555) || fail "$name: filter probe"
	[ "$r" = rst ] || fail "$name: filter probe from a got '$r', want rst"
}
stop() { kill -TERM "$PID"; wait "$PID" || fail "server exit status $? after SIGTERM"; }

start root 7777 -- "$RP"
check "as root" 65534
works root 7777
stop
start sudo 7777 SUDO_UID=4321 SUDO_GID=4321 -- "$RP"
check "as root under sudo (SUDO_UID 4321)" 4321
stop
duid=$(id -u daemon)
XARGS=(--user daemon)
start named 7777 -- "$RP"
check "as root, --user daemon" "$duid"
stop
XARGS=()
ok "started as root: no capability, no root, no_new_privs; joins and filter probes work"

cp "$RP" "$T/rp"
start plain 7778 -- setpriv --reuid=65534 --regid=65534 --clear-groups "$T/rp"
check "as a plain user (port 7778, no capability)" 65534
works plain 7778
stop
cp "$RP" "$T/rp-cap"
setcap cap_net_raw,cap_net_admin+ep "$T/rp-cap"
getcap "$T/rp-cap" | grep -q cap_net_admin || fail "setcap did not take"
start setcap 7778 -- setpriv --reuid=65534 --regid=65534 --clear-groups "$T/rp-cap"
check "as a plain user from a binary with file capabilities" 65534
works setcap 7778
stop
ok "as a plain user, with and without file capabilities: binds, serves, keeps nothing"
echo "PASS"
