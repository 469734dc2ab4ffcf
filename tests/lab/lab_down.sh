#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# natlab life cycle: argument checking (exit 2), a second `up` of a live lab is refused, `status` shows
# the services, and `down` -- also after an `up` killed at various points -- leaves no namespace, no veth
# in the root namespace, no nft table and no process behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh

expect_rc() {   # expect_rc RC WHAT CMD...
	local want=$1 what=$2 rc=0 err; shift 2
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" -eq "$want" ] || fail "$what: exit $rc, want $want ($err)"
	[ -n "$err" ] || fail "$what: no message on stderr"
	echo "  $what -> exit $rc: $(head -1 <<<"$err")"
}
expect_rc 2 "bad LAB name"      tools/natlab up 'Bad-Name'
expect_rc 2 "LAB too long"      tools/natlab up abcdefghi
expect_rc 2 "unknown profile"   tools/natlab up ltzz --nat-a symmetric
expect_rc 2 "bad block size"    tools/natlab up ltzz --nat-b block:0
expect_rc 2 "bad step"          tools/natlab up ltzz --nat-a sequential:0
expect_rc 2 "bad carrier NAT"   tools/natlab up ltzz --cgn-a cgn
expect_rc 2 "unknown filter"    tools/natlab up ltzz --filter-b reject
expect_rc 2 "loss > 100"        tools/natlab up ltzz --loss 101
expect_rc 2 "jitter > delay"    tools/natlab up ltzz --delay 1 --jitter 5
expect_rc 2 "missing value"     tools/natlab up ltzz --delay
expect_rc 2 "unknown option"    tools/natlab up ltzz --fast
expect_rc 2 "unknown host"      tools/natlab addr ltzz c
expect_rc 2 "unknown command"   tools/natlab start ltzz
expect_rc 1 "not root"          setpriv --reuid=65534 --regid=65534 --clear-groups tools/natlab up ltzz
[ ! -e /run/netns/rpltzz-a ] || fail "a rejected up created namespaces"
ok "bad arguments: clear message, exit 2, nothing created"

root_veths() { ip -o link show type veth | awk -F': ' '{print $2}' | sort; }
root_tables() { nft list tables 2>/dev/null | sort; }
veths0=$(root_veths); tables0=$(root_tables)

# assert_gone LAB PIDS...: nothing of LAB is left.
assert_gone() {
	local lab=$1 pid st; shift
	compgen -G "/run/netns/rp$lab-*" >/dev/null && fail "$lab: namespaces left: $(compgen -G "/run/netns/rp$lab-*" | tr '\n' ' ')"
	[ ! -e "/run/natlab/$lab" ] || fail "$lab: state dir left"
	for pid in "$@"; do
		st=$(cut -d')' -f2 "/proc/$pid/stat" 2>/dev/null | cut -c2) || continue
		[ "$st" = Z ] || [ -z "$st" ] || fail "$lab: process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) left"
	done
	# anything that still mentions the lab on its command line (rp-wire's --ns paths, turnserver's log path)
	pgrep -f -- "(rp$lab-|/run/natlab/$lab/)" >/dev/null && fail "$lab: processes left: $(pgrep -af -- "(rp$lab-|/run/natlab/$lab/)")"
	[ "$(root_veths)" = "$veths0" ] || fail "$lab: root namespace veths changed: $(comm -13 <(echo "$veths0") <(root_veths) | tr '\n' ' ')"
	[ "$(root_tables)" = "$tables0" ] || fail "$lab: root namespace nft tables changed"
	return 0
}
lab_pids() {   # every process in the lab's namespaces and every recorded pid
	local h
	for h in a na ra b nb rb inet s ca ispa cb ispb; do ip netns pids "rp$1-$h" 2>/dev/null || true; done
	cat /run/natlab/"$1"/*.pid 2>/dev/null || true
}

# A full lab: both noise hosts, rp-wire on three links, coturn, whoami.
L=$(unique_lab ltd)
lab_up "$L" --nat-a sequential-noise --nat-b sequential-noise --delay 4 --jitter 1 --loss 1
expect_rc 1 "up of a live lab" tools/natlab up "$L"
st=$(tools/natlab status "$L")
for s in turnserver whoami noise-a noise-b wire-ra wire-rb wire-s; do
	grep -q "$s: running" <<<"$st" || fail "status does not show $s running: $st"
done
pids=$(lab_pids "$L" | sort -u)
[ "$(wc -w <<<"$pids")" -ge 7 ] || fail "expected at least 7 lab processes, found: $pids"
# a healthy lab goes down without a word (coturn's own pid file once drew "no longer the lab's process")
L2=$(unique_lab ltq)
lab_up "$L2" --nat-a random
expect_rc 1 "exec on a carrier host of a lab without one" tools/natlab exec "$L2" ca -- true
err=$(tools/natlab down "$L2" 2>&1 >/dev/null) || fail "down of a healthy lab failed: $err"
[ -z "$err" ] || fail "down of a healthy lab printed: $err"
ok "down of a healthy lab prints nothing"
# stale pid files whose pids now belong to an unrelated process (group) outside the lab: one without a
# recorded start time (not in a lab namespace), one with a start time that does not match
setsid sleep 60 </dev/null >/dev/null 2>&1 &
stranger=$!
sleep 0.1
echo "$stranger" >"/run/natlab/$L/stale1.pid"
echo "$stranger" >"/run/natlab/$L/stale2.pid"
echo 1 >"/run/natlab/$L/stale2.start"
tools/natlab down "$L" 2>"/tmp/natlab-down-$L.err" || fail "down"
kill -0 "$stranger" 2>/dev/null || fail "down killed an unrelated process group from a stale pid file"
kill -KILL -- "-$stranger" 2>/dev/null || true
wait "$stranger" 2>/dev/null || true
grep -q "stale1.pid is no longer the lab's process" "/tmp/natlab-down-$L.err" || fail "no word on the stale pid file"
rm -f "/tmp/natlab-down-$L.err"
# shellcheck disable=SC2086
assert_gone "$L" $pids
tools/natlab down "$L" || fail "down of a removed lab should succeed"
ok "down removes namespaces, veths, nft tables, state and all $(wc -w <<<"$pids") processes (and leaves a stale pid file's stranger alone); down is idempotent"

# up killed (SIGKILL) at different points, then down; the last two with carrier NATs on both sides.
for t in 0.05 0.15 0.3 0.45 0.3c 0.9c; do
	K=$(unique_lab ltx)
	_NATLAB_LABS+=("$K")
	cgn=(); [ "${t%c}" = "$t" ] || { t=${t%c}; cgn=(--cgn-a block-seq --cgn-b address-dependent); }
	setsid tools/natlab up "$K" --nat-a sequential-noise --nat-b random --delay 3 "${cgn[@]}" >/dev/null 2>&1 &
	up=$!
	sleep "$t"
	kill -KILL -- -"$up" 2>/dev/null || true
	wait "$up" 2>/dev/null || true
	sleep 0.2   # let already-forked services start, so down has something to find
	pids=$(lab_pids "$K" | sort -u)
	n=$(compgen -G "/run/netns/rp$K-*" | wc -l || true)
	tools/natlab down "$K" || fail "down after up killed at $t s"
	# shellcheck disable=SC2086
	assert_gone "$K" $pids
	echo "  up ${cgn[*]:+(${cgn[*]}) }killed after $t s ($n namespaces, $(wc -w <<<"$pids") processes): down cleaned up"
done
ok "down cleans up after an up killed part-way"
