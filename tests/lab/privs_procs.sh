#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What each long-lived command keeps, read from /proc/PID/task/*/status (every thread) while it runs,
# as root without SUDO_UID (so the default user is nobody), a and b behind port-preserving NATs:
#   - punch --exec on a / --stdio on b: after the handoff both rawpunch processes and the exec'd
#     command run as uid 65534 with CapEff = CapPrm = 0 and NoNewPrivs 1; the command (sh -c) can
#     neither append to nor chmod a root-owned 0400 file;
#   - connect -L and connect --raw (raw packets to the end): uid 65534, CapEff = CapPrm = 0x3000
#     (CAP_NET_ADMIN|CAP_NET_RAW) and nothing else, bounding set included, NoNewPrivs 1;
#   - watch: uid 65534, no capability; probe (while measuring): uid 65534, at most 0x3000;
#     the rendezvous server: uid not 0, at most 0x3000, once it has a --user (its own branch);
#   - connect --exec --user root: uid 0 kept by name, but no capability in rawpunch or the command,
#     NoNewPrivs 1, and the command cannot append to the 0400 file either;
#   - refused with exit 2 and not one packet from a: probe --plot '|cmd' (the command never runs), a
#     --plot FIFO, punch --report / --pcap through a symlink (the target untouched), connect --pcap FIFO.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab pv --nat-a preserve --nat-b preserve
A() { ip netns exec "rp$LAB-a" "$@"; }
S() { ip netns exec "rp$LAB-s" "$@"; }
BG=()
# (only our own: the rendezvous server punch_lab started is natlab's to stop)
_privs_cleanup() {
	local p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${BG[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap '_privs_cleanup; _punch_cleanup' EXIT

# every IPv4 packet leaving a (not on lo), counted in a's namespace
A nft -f - <<'EON'
table ip privtx {
	chain out {
		type filter hook output priority filter; policy accept;
		oifname != "lo" counter
	}
}
EON
a_tx() { A nft list chain ip privtx out | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }

# the root-owned 0400 file nobody may touch, in a directory everyone can enter
D=$(mktemp -d /tmp/rp-privs-ro.XXXXXX)
chmod 755 "$D"
echo original >"$D/ro"
chmod 400 "$D/ro"
trap '_privs_cleanup; rm -rf "$D"; _punch_cleanup' EXIT

# check PID WHAT MAXCAP UID: every thread of PID runs as UID (real, effective, saved, fs), holds no
# capability outside MAXCAP (effective, permitted; none inheritable or ambient), with NoNewPrivs 1
check() {
	local pid=$1 what=$2 max=$3 want_uid=$4 t st u e p i a n
	[ -d "/proc/$pid" ] || fail "$what: pid $pid is gone"
	for t in /proc/"$pid"/task/*; do
		st=$(cat "$t/status" 2>/dev/null) || continue
		u=$(awk '$1 == "Uid:" {print $2, $3, $4, $5}' <<<"$st")
		e=$(awk '$1 == "CapEff:" {print $2}' <<<"$st"); p=$(awk '$1 == "CapPrm:" {print $2}' <<<"$st")
		i=$(awk '$1 == "CapInh:" {print $2}' <<<"$st"); a=$(awk '$1 == "CapAmb:" {print $2}' <<<"$st")
		n=$(awk '$1 == "NoNewPrivs:" {print $2}' <<<"$st")
		[ "$u" = "$want_uid $want_uid $want_uid $want_uid" ] || fail "$what: thread ${t##*/} runs as uid $u, want $want_uid"
		(( (0x$e & ~max) == 0 && (0x$p & ~max) == 0 )) || fail "$what: thread ${t##*/} CapEff $e CapPrm $p (at most $(printf %x "$max"))"
		(( 0x$i == 0 && 0x$a == 0 )) || fail "$what: thread ${t##*/} CapInh $i CapAmb $a"
		[ "$n" = 1 ] || fail "$what: thread ${t##*/} without no_new_privs"
	done
}
capf() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
wait_grep() { local i; for i in $(seq 200); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done; fail "no '$1' in $2: $(cat "$2")"; }
child_of() { local i c; for i in $(seq 100); do c=$(pgrep -P "$1" | head -1) && [ -n "$c" ] && { echo "$c"; return 0; }; sleep 0.05; done; return 1; }
NOBODY=$(id -u nobody)

# ---- punch: --exec on a, --stdio on b ------------------------------------------------------------
CMD="if echo pwned >>$D/ro 2>/dev/null; then echo APPENDED; else echo REFUSED; fi; \
if chmod 600 $D/ro 2>/dev/null; then echo CHMODDED; else echo NOCHMOD; fi; sleep 3"
ip netns exec "rp$LAB-a" "$RP" punch --rendezvous 198.18.3.2 --session pv --secret-file "$T/secret" \
	--timeout 20 --exec "$CMD" </dev/null >/dev/null 2>"$T/pa.err" & PA=$!; BG+=("$PA")
ip netns exec "rp$LAB-b" "$RP" punch --rendezvous 198.18.3.2 --session pv --secret-file "$T/secret" \
	--timeout 20 --stdio </dev/null >"$T/pb.out" 2>"$T/pb.err" & PB=$!; BG+=("$PB")
CH=$(child_of "$PA") || fail "punch --exec: no command started: $(cat "$T/pa.err")"
wait_grep '^punch: connected' "$T/pb.err"
sleep 0.3
check "$PA" "punch --exec (rawpunch)" 0 "$NOBODY"
check "$CH" "punch --exec (the command)" 0 "$NOBODY"
check "$PB" "punch --stdio (rawpunch)" 0 "$NOBODY"
rc=0; wait "$PA" || rc=$?; [ "$rc" = 0 ] || fail "punch --exec: exit $rc: $(cat "$T/pa.err")"
rc=0; wait "$PB" || rc=$?; [ "$rc" = 0 ] || fail "punch --stdio: exit $rc: $(cat "$T/pb.err")"
[ "$(cat "$T/pb.out")" = "$(printf 'REFUSED\nNOCHMOD')" ] || fail "punch --exec: the command said '$(cat "$T/pb.out")'"
[ "$(cat "$D/ro")" = original ] && [ "$(stat -c %a "$D/ro")" = 400 ] || fail "the 0400 file was changed"
no_leftovers
ok "punch: after the handoff rawpunch (both sides) and the exec'd sh run as nobody, no capability, no_new_privs; sh cannot append to or chmod a root 0400 file"

# ---- connect -L and --raw: NET_RAW|NET_ADMIN to the end, nothing else --------------------------------
S socat TCP4-LISTEN:7300,bind=198.18.3.2,reuseaddr,fork EXEC:cat 2>/dev/null & BG+=($!)
for _ in $(seq 100); do S ss -Hltn "sport = :7300" | grep -q . && break; sleep 0.05; done
ip netns exec "rp$LAB-a" "$RP" connect -L 127.0.0.1:6100 198.18.3.2:7300 2>"$T/fwd.err" & PL=$!; BG+=("$PL")
wait_grep '^forward: listening' "$T/fwd.err"
[ "$(echo hello | A socat -t 5 - TCP4:127.0.0.1:6100)" = hello ] || fail "connect -L: no echo: $(cat "$T/fwd.err")"
check "$PL" "connect -L" $((0x3000)) "$NOBODY"
[ "$(capf "$PL" CapEff)" = 0000000000003000 ] || fail "connect -L: CapEff $(capf "$PL" CapEff), want exactly 0x3000"
(( (0x$(capf "$PL" CapBnd) & ~0x3000) == 0 )) || fail "connect -L: bounding set $(capf "$PL" CapBnd)"
kill -INT "$PL"; wait "$PL" 2>/dev/null || true
mkfifo "$T/raw.in"
ip netns exec "rp$LAB-a" "$RP" connect --raw 198.18.3.2:7300 <"$T/raw.in" >"$T/raw.out" 2>"$T/raw.err" & PR=$!; BG+=("$PR")
exec 7>"$T/raw.in"
printf 'ping\n' >&7
wait_grep '^ping$' "$T/raw.out"
check "$PR" "connect --raw" $((0x3000)) "$NOBODY"
[ "$(capf "$PR" CapEff)" = 0000000000003000 ] || fail "connect --raw: CapEff $(capf "$PR" CapEff), want 0x3000"
exec 7>&-
rc=0; wait "$PR" || rc=$?; [ "$rc" = 0 ] || fail "connect --raw: exit $rc: $(cat "$T/raw.err")"
no_leftovers
ok "connect -L and --raw: nobody, exactly CAP_NET_ADMIN|CAP_NET_RAW (bounding set too), no_new_privs"

# ---- watch, probe, the rendezvous server ----------------------------------------------------------
ip netns exec "rp$LAB-a" "$RP" watch -t 20 >/dev/null 2>"$T/watch.err" & PW=$!; BG+=("$PW")
wait_grep '^watch: listening' "$T/watch.err"
check "$PW" "watch" 0 "$NOBODY"
kill -INT "$PW"; wait "$PW" 2>/dev/null || true
ip netns exec "rp$LAB-a" "$RP" probe --stun 198.18.3.2 --samples 6 --interval 400 >/dev/null 2>"$T/probe.err" & PP=$!
BG+=("$PP")
sleep 0.5
check "$PP" "probe" $((0x3000)) "$NOBODY"
rc=0; wait "$PP" || rc=$?; [ "$rc" = 0 ] || fail "probe: exit $rc: $(cat "$T/probe.err")"
RV=
for p in $(ip netns pids "rp$LAB-s"); do
	if [ -z "$RV" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = rawpunch ]; then RV=$p; fi
done
[ -n "$RV" ] || fail "no rendezvous server in s"
if "$RP" rendezvous --help 2>&1 | grep -q -- '--user'; then
	check "$RV" "rendezvous server" $((0x3000)) "$NOBODY"
	ok "watch: nobody, no capability; probe: nobody, at most NET_RAW|NET_ADMIN; rendezvous server: nobody"
else
	ok "watch: nobody, no capability; probe: nobody, at most NET_RAW|NET_ADMIN"
	echo "NOT CHECKED: the rendezvous server has no --user yet (uid $(capf "$RV" Uid), CapEff $(capf "$RV" CapEff))"
fi

# ---- --user root: uid 0 by name, still no capability --------------------------------------------
S socat -u TCP4-LISTEN:7301,bind=198.18.3.2,reuseaddr OPEN:"$T/root.out",creat 2>/dev/null & BG+=($!)
for _ in $(seq 100); do S ss -Hltn "sport = :7301" | grep -q . && break; sleep 0.05; done
A timeout 20 "$RP" connect --user root --exec "grep -E '^(Uid|CapEff|CapPrm|CapAmb|NoNewPrivs):' \
/proc/\$PPID/status /proc/self/status; if echo pwned >>$D/ro 2>/dev/null; then echo APPENDED; else echo REFUSED; fi" \
	198.18.3.2:7301 2>"$T/root.err" || fail "connect --user root: $(cat "$T/root.err")"
for _ in $(seq 100); do grep -q 'REFUSED\|APPENDED' "$T/root.out" 2>/dev/null && break; sleep 0.05; done
[ "$(awk -F'\t' '/Uid:/ {print $2}' "$T/root.out" | sort -u)" = 0 ] || fail "--user root: not uid 0: $(cat "$T/root.out")"
[ "$(awk '/CapEff:|CapPrm:|CapAmb:/ {print $2}' "$T/root.out" | sort -u)" = 0000000000000000 ] || fail "--user root: capabilities: $(cat "$T/root.out")"
[ "$(awk '/NoNewPrivs:/ {print $2}' "$T/root.out" | sort -u)" = 1 ] || fail "--user root: no no_new_privs: $(cat "$T/root.out")"
[ "$(awk '/:Uid:/' "$T/root.out" | wc -l)" = 2 ] || fail "--user root: want rawpunch's and the command's status: $(cat "$T/root.out")"
grep -qx REFUSED "$T/root.out" || fail "--user root: the command appended to the 0400 file"
[ "$(cat "$D/ro")" = original ] || fail "the 0400 file was changed"
ok "--user root: uid 0 kept by name, no capability in rawpunch or the command, no_new_privs, the 0400 file safe"

# ---- refusals: exit 2, nothing sent ---------------------------------------------------------------
tx0=$(a_tx)
ln -s "$D/ro" "$T/link.json"
ln -s "$D/ro" "$T/link.pcap"
mkfifo "$T/fifo.pcap" "$T/fifo.png"
refuse() {
	local what=$1 rc=0; shift
	A timeout 20 "$@" </dev/null >/dev/null 2>"$T/refuse.err" || rc=$?
	[ "$rc" = 2 ] || fail "$what: exit $rc, want 2: $(cat "$T/refuse.err")"
	grep -qF -- "$what" "$T/refuse.err" || fail "$what: no reason: $(cat "$T/refuse.err")"
}
refuse "--plot |touch" "$RP" probe --stun 198.18.3.2 --plot "|touch $T/ran.png"
refuse "--plot $T/fifo.png" "$RP" probe --stun 198.18.3.2 --plot "$T/fifo.png"
refuse "--report $T/link.json" "$RP" punch --rendezvous 198.18.3.2 --session px --secret-file "$T/secret" --report "$T/link.json"
refuse "--pcap $T/link.pcap" "$RP" punch --rendezvous 198.18.3.2 --session px --secret-file "$T/secret" --pcap "$T/link.pcap"
refuse "--pcap $T/fifo.pcap" "$RP" connect --pcap "$T/fifo.pcap" 198.18.3.2:7300
[ ! -e "$T/ran.png" ] || fail "--plot '|cmd' ran the command"
[ "$(cat "$D/ro")" = original ] || fail "a symlinked --report/--pcap wrote through to its target"
[ "$(a_tx)" = "$tx0" ] || fail "the refusals sent $(( $(a_tx) - tx0 )) packets"
ok "--plot '|cmd' and a FIFO, --report/--pcap through a symlink, --pcap FIFO: exit 2, nothing run or written, no packet"
