#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# TURN relay (RFC 8656 over TCP, RFC 6062 TCP allocations) through the lab's coturn on s, with a and b
# each behind its own NAT (a random one in front of a, where no direct punch to a sequential b exists):
#   - with TURN on, coturn still listens on s's two addresses only;
#   - a (--connect) and b (--listen) allocate, exchange relayed addresses through files, install
#     permissions; an intruder (another allocation on the same server, from nb) connects to b's relayed
#     address first and b ignores it; then a connects, b accepts, both bind data connections;
#   - while they hold the connection, s has both relayed ports listening and the four client
#     connections up, and the keeper refreshes each allocation (--refresh 1) at least twice;
#   - 16 MiB each way (a to b, then b to a), SHA-256 equal at both ends, an explicit end-of-exchange (a
#     half-close is a close through coturn), both exit 0 and release their allocation; the throughput
#     is printed;
#   - Refresh with LIFETIME 0 (tools/rp-turnctl) removes the allocation while the client still holds
#     its control connection; the released handle refuses a Refresh;
#   - a wrong secret: exit 1 with the server's 401; a peer outside the lab: 403 from the permission
#     step; bad usage: exit 2;
#   - nothing is left: no relayed port, no connection on s, no process in a, b, na or nb.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
B=${BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
RP=${RAWPUNCH:-$B/rawpunch}
CTL=$B/rp-turnctl
[ -x "$RP" ] || fail "$RP not built (make)"
[ -x "$CTL" ] || fail "$CTL not built (make)"
L=$(unique_lab rt)
lab_up "$L" --nat-a random --nat-b sequential
T=$(mktemp -d /tmp/relay-turn.XXXXXX)
chown nobody "$T"   # the relays and their --exec run as nobody (the default as root without SUDO_UID)
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; _natlab_cleanup; rm -rf "$T"; }
trap cleanup EXIT     # after lab_up, which sets its own trap
SECRET=$(tools/natlab turn-secret "$L")
[ "$(stat -c %a "$SECRET")" = 600 ] || fail "the TURN secret file is not mode 0600"
SRV=198.18.3.2
N=$((16 * 1024 * 1024))
X() { local h=$1; shift; tools/natlab exec "$L" "$h" -- "$@"; }
wait_for() {   # wait_for SECONDS DESC CMD...
	local t=$1 d=$2 i; shift 2
	for ((i = 0; i < t * 20; i++)); do "$@" && return 0; sleep 0.05; done
	fail "timed out waiting for $d"
}
# sockets on s besides the lab's own services (LISTEN on 3478/3479/7000)
s_extra() { X s ss -Htan | awk '$1 != "TIME-WAIT" && !($1 == "LISTEN" && $4 ~ /:(3478|3479|7000)$/)'; }
port_listening() { X s ss -Hltn "sport = :$1" | grep -q .; }

# ---- coturn with TURN on still listens on s's two addresses only
bad=$(X s ss -Hlntu | awk '$5 !~ /^198\.18\.3\.[23]:/ {print $1, $5}')
[ -z "$bad" ] || fail "something on s listens elsewhere: $bad"
ok "s listens on 198.18.3.2 and 198.18.3.3 only"

# ---- bad usage: exit 2, nothing asked of the server
for args in "--secret-file $SECRET --connect --peer $SRV:1" "--server $SRV --connect --peer $SRV:1" \
	"--server $SRV --secret-file $SECRET --peer $SRV:1" "--server $SRV --secret-file $SECRET --connect" \
	"--server $SRV --secret-file $SECRET --listen --connect --peer $SRV:1" \
	"--server $SRV --secret-file $T/none --connect --peer $SRV:1" \
	"--server $SRV --secret-file $SECRET --connect --peer 198.18.3.2"; do
	rc=0; X a "$RP" relay $args 2>"$T/usage.err" || rc=$?
	[ $rc = 2 ] || { cat "$T/usage.err" >&2; fail "relay $args: exit $rc, want 2"; }
done
[ -z "$(s_extra)" ] || fail "bad usage reached the server: $(s_extra)"
ok "bad usage: exit 2, nothing reached the server"

# ---- the data both ways
head -c $N /dev/urandom >"$T/a.data"
head -c $N /dev/urandom >"$T/b.data"
# One direction at a time: a sends 16 MiB (after "go"), b reads them all and sends its 16 MiB back,
# a reads them all and says F, b closes on the F, a reads until the relay closes (coturn may end that
# with a RST: the exchange is over by then, so only extra bytes would count). Not both ways at once:
# coturn's flow control can stall a TCP relay loaded both ways (README, "Relay").
A_CMD="while [ ! -e $T/go ]; do sleep 0.05; done; date +%s%N >$T/a.t0; cat $T/a.data; head -c $N >$T/a.recv; date +%s%N >$T/a.t1; printf F; cat >$T/a.rest 2>/dev/null; exit 0"
B_CMD="head -c $N >$T/b.recv; date +%s%N >$T/b.t1; cat $T/b.data; head -c 1 >$T/b.fin"
COMMON=(--server "$SRV" --secret-file "$SECRET" --timeout 30 --refresh 1)
ip netns exec "rp$L-b" "$RP" relay "${COMMON[@]}" --name b --listen --peer-file "$T/a.addr" \
	--addr-file "$T/b.addr" --exec "$B_CMD" 2>"$T/b.err" & PB=$!; PIDS+=("$PB")
ip netns exec "rp$L-a" "$RP" relay "${COMMON[@]}" --name a --connect --peer-file "$T/b.addr.for-a" \
	--addr-file "$T/a.addr" --exec "$A_CMD" 2>"$T/a.err" & PA=$!; PIDS+=("$PA")
wait_for 10 "b's relayed address" test -s "$T/b.addr"
A_ADDR=$(cat "$T/a.addr"); B_ADDR=$(cat "$T/b.addr")
[[ $A_ADDR =~ ^198\.18\.3\.2:[0-9]+$ && $B_ADDR =~ ^198\.18\.3\.2:[0-9]+$ ]] || fail "relayed addresses '$A_ADDR' '$B_ADDR'"
grep -q "allocated $A_ADDR (TCP), lifetime 600 s; the server sees this side as 198.18.1.2:" "$T/a.err" || fail "a: $(cat "$T/a.err")"
grep -q "allocated $B_ADDR (TCP), lifetime 600 s; the server sees this side as 198.18.2.2:" "$T/b.err" || fail "b: $(cat "$T/b.err")"
ok "a allocated $A_ADDR, b $B_ADDR (through their NATs)"

# an intruder: another allocation on the same server (same relay IP, so b's permission lets it in);
# in its own session, so that it and its command go with one kill
setsid ip netns exec "rp$L-nb" "$RP" relay --server "$SRV" --secret-file "$SECRET" --name x --connect \
	--peer "$B_ADDR" --addr-file "$T/x.addr" --exec "cat >/dev/null" 2>"$T/x.err" & PX=$!; PIDS+=("$PX")
wait_for 10 "the intruder's allocation" test -s "$T/x.addr"
X_ADDR=$(cat "$T/x.addr")
wait_for 10 "b to ignore the intruder" grep -q "ignored a connection from $X_ADDR: not the peer" "$T/b.err"
kill -- "-$PX" 2>/dev/null || true
wait "$PX" 2>/dev/null || true
ok "b ignored a connection from $X_ADDR (another allocation, not its peer)"
cp "$T/b.addr" "$T/b.addr.tmp" && mv "$T/b.addr.tmp" "$T/b.addr.for-a"
wait_for 10 "a to connect" grep -q "the server connected $A_ADDR -> $B_ADDR" "$T/a.err"
wait_for 10 "b to accept" grep -q "$A_ADDR connected" "$T/b.err"
port_listening "${A_ADDR#*:}" || fail "a's relayed port is not listening on s"
port_listening "${B_ADDR#*:}" || fail "b's relayed port is not listening on s"
conns() { X s ss -Htn state established "sport = :3478" | awk -v w="$1" 'index($4, w ":") == 1' | wc -l; }
# a and b: a control and a data connection each (the intruder's are gone with it)
wait_for 5 "two connections from each NAT to the server" eval '[ "$(conns 198.18.1.2)" = 2 ] && [ "$(conns 198.18.2.2)" = 2 ]'
ok "held: both relayed ports listening on s, a control and a data connection from each side"
sleep 2.5     # the keepers refresh meanwhile (--refresh 1)
touch "$T/go"
rc=0; timeout 60 tail --pid="$PA" -f /dev/null || rc=$?
[ $rc = 0 ] || { ls -l "$T" >&2; cat "$T/a.err" "$T/b.err" >&2; fail "a did not finish"; }
rc=0; wait "$PA" || rc=$?
[ $rc = 0 ] || { cat "$T/a.err" >&2; fail "a exited $rc"; }
timeout 20 tail --pid="$PB" -f /dev/null || fail "b did not finish"
rc=0; wait "$PB" || rc=$?
[ $rc = 0 ] || { cat "$T/b.err" >&2; fail "b exited $rc"; }
sa=$(sha256sum <"$T/a.data" | cut -d' ' -f1); sb=$(sha256sum <"$T/b.data" | cut -d' ' -f1)
[ "$(sha256sum <"$T/b.recv" | cut -d' ' -f1)" = "$sa" ] || fail "b received something else than a sent"
[ "$(sha256sum <"$T/a.recv" | cut -d' ' -f1)" = "$sb" ] || fail "a received something else than b sent"
[ "$(cat "$T/b.fin")" = F ] || fail "the end-of-exchange byte"
[ ! -s "$T/a.rest" ] || fail "a got bytes after the end of the exchange"
for s in a b; do
	grep -q "released the allocation" "$T/$s.err" || fail "$s did not release: $(cat "$T/$s.err")"
	n=$(sed -n 's/.*refreshed \([0-9]*\) times.*/\1/p' "$T/$s.err")
	[ -n "$n" ] && [ "$n" -ge 2 ] || fail "$s: the keeper refreshed ${n:-0} times in 2.5 s with --refresh 1"
done
ab=$(( ($(cat "$T/b.t1") - $(cat "$T/a.t0")) / 1000000 )); ba=$(( ($(cat "$T/a.t1") - $(cat "$T/b.t1")) / 1000000 ))
rate() { awk -v n=$N -v ms="$1" 'BEGIN{printf "%.0f", n / 1048576 / (ms > 0 ? ms : 1) * 1000}'; }
ok "16 MiB each way through coturn, SHA-256 equal at both ends ($sa, $sb); both released"
echo "throughput: a->b 16 MiB in $ab ms ($(rate "$ab") MiB/s), b->a 16 MiB in $ba ms ($(rate "$ba") MiB/s)"

# ---- Refresh with LIFETIME 0 removes the allocation (the client still holds its control connection)
coproc TC { ip netns exec "rp$L-a" "$CTL" "$SRV" "$SECRET"; }
echo alloc >&"${TC[1]}"; read -r -t 10 l <&"${TC[0]}" || fail "rp-turnctl alloc: no answer"
[[ $l =~ ^allocated\ 198\.18\.3\.2:([0-9]+)\ 600$ ]] || fail "rp-turnctl alloc: $l"
port=${BASH_REMATCH[1]}
port_listening "$port" || fail "the new allocation's port $port is not listening"
echo release >&"${TC[1]}"; read -r -t 10 l <&"${TC[0]}" || fail "rp-turnctl release: no answer"
[ "$l" = released ] || fail "rp-turnctl release: $l"
wait_for 5 "the released relay port to close" eval "! port_listening $port"
kill -0 "$TC_PID" 2>/dev/null || fail "rp-turnctl is gone: its connection did not survive to show the release"
echo "refresh 600" >&"${TC[1]}"; read -r -t 10 l <&"${TC[0]}" || fail "rp-turnctl refresh: no answer"
[[ $l == error\ * ]] || fail "a refresh after the release: $l"
echo close >&"${TC[1]}"; wait "$TC_PID" || true
ok "Refresh with LIFETIME 0: relayed port $port closed at once, before the client closed its control connection"

# ---- a wrong secret: the server's 401, exit 1
printf 'not-the-secret' >"$T/bad"
rc=0; X a "$RP" relay --server "$SRV" --secret-file "$T/bad" --connect --peer "$B_ADDR" 2>"$T/bad.err" || rc=$?
[ $rc = 1 ] || fail "wrong secret: exit $rc"
grep -q "the server answered Allocate with 401 Unauthorized" "$T/bad.err" || fail "wrong secret: $(cat "$T/bad.err")"
grep -q "^hint: .*refused the credentials" "$T/bad.err" || fail "wrong secret: no hint"
ok "wrong secret: 401 Unauthorized, exit 1"

# ---- a peer outside the lab: refused by the server (coturn --denied-peer-ip), nothing leaves s
rc=0; X a "$RP" relay "${COMMON[@]}" --connect --peer 192.0.2.1:5000 2>"$T/out.err" || rc=$?
[ $rc = 1 ] && grep -q "CreatePermission with 403" "$T/out.err" || fail "peer 192.0.2.1: exit $rc: $(cat "$T/out.err")"
ok "a peer outside the lab: 403 Forbidden, exit 1"

# ---- nothing left behind
wait_for 5 "s to have no relayed port or connection left" eval '[ -z "$(s_extra)" ]'
for h in a b na nb; do
	[ -z "$(ip netns pids "rp$L-$h")" ] || fail "processes left in $h: $(ip netns pids "rp$L-$h")"
done
ok "nothing left: no relayed port or connection on s, no process in a, b, na, nb"
