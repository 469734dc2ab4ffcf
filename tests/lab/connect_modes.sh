#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch connect's data modes, fallback and privilege drop, in the NAT lab (a behind ra -> s):
#  1. --exec: 'sha256sum' on a gets 2 MiB that s sends through NAT ra and answers with its hash,
#     connect exits with the command's status (42); while it runs, the connect process itself runs
#     as nobody (the default as root without SUDO_UID) with CapEff 0 and NoNewPrivs 1, and so does
#     the command; the status line says 'handoff: repair'.
#  2. -L: two clients AT ONCE through a's 127.0.0.1:6000, each echoed 2 MiB intact by s; s logs
#     two different source ports from a-public (each over its own punched connection); the
#     forwarder reports 2 repair handoffs and exits after --max-clients 2; while it listens it
#     holds exactly CAP_NET_RAW+CAP_NET_ADMIN (0x3000); a second -L run ends cleanly on SIGINT.
#  3. fallback, with a REAL refusal: connect runs under setpriv without CAP_NET_ADMIN (bounding
#     and inheritable sets; CAP_NET_RAW stays), so the kernel refuses TCP_REPAIR with EPERM. The
#     raw handshake is skipped (its nftables guard needs CAP_NET_ADMIN as well: there is nothing a
#     userspace handshake could be handed to), and a kernel connect() from --local-port carries
#     the data: stderr says 'handoff: connect (TCP_REPAIR refused: Operation not permitted)', s sees
#     a-public:that port, the echo is intact. With --no-fallback: exit 1 and not one packet leaves a
#     (nor for the usage errors, exit 2).
#  4. --stdio --user nobody: while relaying, the connect process runs as uid 65534 with CapEff 0.
#  After every run no rawpunch_* nft table is left in a.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
BUILD=${BUILD:-build}; [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
RP=${RAWPUNCH:-$BUILD/rawpunch}
[ -x "$RP" ] || fail "$RP not built (make)"
command -v setpriv >/dev/null || fail "setpriv not found (util-linux)"
LAB=$(unique_lab cm)
lab_up "$LAB"
tmp=$(mktemp -d /tmp/rp-cm.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
	_natlab_cleanup
}
trap cleanup EXIT
# (background runs use ip netns exec directly: $! is then the rawpunch process itself)
A() { ip netns exec "rp$LAB-a" "$@"; }
S() { ip netns exec "rp$LAB-s" "$@"; }
no_tables() { ! A nft list tables | grep -q rawpunch || fail "$1: a rawpunch nft table is left: $(A nft list tables)"; }
status_field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
wait_listen() { for _ in $(seq 100); do S ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done; fail "nothing listens on s:$1"; }
# wait_for PID SECS: PID's exit status, or fail (and kill it) if it is still running after SECS
wait_for() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$1" 2>/dev/null && { kill "$1"; fail "pid $1 still running after $2 s"; }
	local rc=0; wait "$1" || rc=$?; return $rc
}
TO=(timeout 30)
NOCAP=(setpriv --inh-caps=-net_admin --bounding-set=-net_admin)

# ---- 1. --exec through NAT ra: s sends 2 MiB, a's 'sha256sum' answers with the hash -------------------
head -c $((2 << 20)) /dev/urandom >"$tmp/blob"
want=$(sha256sum <"$tmp/blob" | cut -d' ' -f1)
# s: send the blob, half-close (socat's STDIO passes the EOF on as a FIN), keep what comes back
S socat -t 30 TCP4-LISTEN:7201,bind=198.18.3.2,reuseaddr - <"$tmp/blob" >"$tmp/reply" 2>"$tmp/send.err" &
pids+=($!)
wait_listen 7201
rc=0
# the command runs as nobody (root without SUDO_UID): it may write only these two
for f in parent cmd; do : >"$tmp/caps.$f"; chmod 666 "$tmp/caps.$f"; done
A "${TO[@]}" "$RP" connect --exec "grep -E '^(Uid|CapEff|NoNewPrivs):' /proc/\$PPID/status >$tmp/caps.parent; \
grep -E '^(Uid|CapEff|NoNewPrivs):' /proc/self/status >$tmp/caps.cmd; sha256sum; exit 42" 198.18.3.2:7201 \
	2>"$tmp/exec.err" || rc=$?
[ "$rc" = 42 ] || fail "--exec: exit status $rc, want the command's 42: $(cat "$tmp/exec.err")"
grep -q '^handoff: repair 10\.0\.1\.2:[0-9]* -> 198\.18\.3\.2:7201$' "$tmp/exec.err" || fail "--exec: no 'handoff: repair' line: $(cat "$tmp/exec.err")"
for _ in $(seq 100); do [ -s "$tmp/reply" ] && break; sleep 0.05; done
got=$(cut -d' ' -f1 <"$tmp/reply")
[ "$got" = "$want" ] || fail "--exec: s got hash '$got', want $want"
for f in parent cmd; do
	[ "$(awk '$1 == "CapEff:" {print $2}' "$tmp/caps.$f")" = 0000000000000000 ] || fail "--exec: $f still has capabilities: $(cat "$tmp/caps.$f")"
	[ "$(awk '$1 == "NoNewPrivs:" {print $2}' "$tmp/caps.$f")" = 1 ] || fail "--exec: $f without no_new_privs"
	[ "$(awk '$1 == "Uid:" {print $2}' "$tmp/caps.$f")" = 65534 ] || fail "--exec: $f not nobody (the default as root): $(cat "$tmp/caps.$f")"
done
no_tables "--exec"
ok "--exec: 2 MiB through NAT ra, hash answered by a's sha256sum, exit 42 passed on, uid nobody + CapEff 0 + no_new_privs in connect and command, path=repair"

# ---- 2. -L: two clients at once, each over its own connection -------------------------------------
cat >"$tmp/echo.sh" <<EOF
#!/bin/sh
echo "\$SOCAT_PEERADDR \$SOCAT_PEERPORT" >>"$tmp/peers"
exec cat
EOF
chmod +x "$tmp/echo.sh"
S socat -t 30 TCP4-LISTEN:7202,bind=198.18.3.2,reuseaddr,fork "EXEC:$tmp/echo.sh" 2>"$tmp/echo.err" &
pids+=($!)
wait_listen 7202
ip netns exec "rp$LAB-a" "$RP" connect -L 127.0.0.1:6000 --max-clients 2 198.18.3.2:7202 2>"$tmp/fwd.err" &
fwd=$!; pids+=("$fwd")
wait_line "$tmp/fwd.err" "^forward: listening" || :
grep -q "^forward: listening on 127.0.0.1:6000" "$tmp/fwd.err" || fail "-L did not start: $(cat "$tmp/fwd.err")"
caps=$(status_field $fwd CapEff)
[ "$caps" = 0000000000003000 ] || fail "-L: CapEff $caps while listening, want CAP_NET_RAW+CAP_NET_ADMIN only (3000)"
cl=()
for i in 1 2; do
	head -c $((2 << 20)) /dev/urandom >"$tmp/in.$i"
	A "${TO[@]}" socat -t 30 - TCP4:127.0.0.1:6000 <"$tmp/in.$i" >"$tmp/out.$i" 2>"$tmp/cl.$i.err" &
	cl+=($!)
done
for i in 1 2; do
	wait "${cl[$((i - 1))]}" || fail "-L client $i failed: $(cat "$tmp/cl.$i.err")"
	cmp -s "$tmp/in.$i" "$tmp/out.$i" || fail "-L client $i: echo differs ($(stat -c %s "$tmp/out.$i") bytes back): $(cat "$tmp/fwd.err")"
done
rc=0; wait_for $fwd 20 || rc=$?
[ "$rc" = 0 ] || fail "-L exited $rc after --max-clients 2: $(cat "$tmp/fwd.err")"
[ "$(grep -c '^client [12]: handoff: repair 10\.0\.1\.2:' "$tmp/fwd.err")" = 2 ] || fail "-L: not two repair handoffs: $(cat "$tmp/fwd.err")"
grep -q '^forward: accepted=2 completed=2 failed=0 dial_failed=0 up=4194304 down=4194304 repair=2 connect=0' "$tmp/fwd.err" ||
	fail "-L: wrong summary: $(cat "$tmp/fwd.err")"
[ "$(wc -l <"$tmp/peers")" = 2 ] || fail "-L: s saw $(wc -l <"$tmp/peers") connections, want 2: $(cat "$tmp/peers")"
[ "$(awk '{print $1}' "$tmp/peers" | sort -u)" = 198.18.1.2 ] || fail "-L: not from a-public: $(cat "$tmp/peers")"
[ "$(awk '{print $2}' "$tmp/peers" | sort -u | wc -l)" = 2 ] || fail "-L: both clients from one source port: $(cat "$tmp/peers")"
no_tables "-L"
ok "-L: 2 clients at once, 2 MiB each echoed intact, from a-public ports $(awk '{print $2}' "$tmp/peers" | tr '\n' ' ')(own connections), 2 repair handoffs, caps 0x3000 while listening"

ip netns exec "rp$LAB-a" "$RP" connect -L 6001 198.18.3.2:7202 2>"$tmp/fwd2.err" &
fwd=$!; pids+=("$fwd")
wait_line "$tmp/fwd2.err" "^forward: listening" || :
kill -INT $fwd
rc=0; wait_for $fwd 20 || rc=$?
[ "$rc" = 130 ] || fail "-L: exit $rc on SIGINT (want 130): $(cat "$tmp/fwd2.err")"
grep -q '^forward: accepted=0 .*(stopped)$' "$tmp/fwd2.err" || fail "-L: no clean stop: $(cat "$tmp/fwd2.err")"
no_tables "-L SIGINT"
ok "-L: SIGINT stops it cleanly (exit 130)"

# ---- 3. fallback where TCP_REPAIR is really refused -------------------------------------------------
caps=$(A "${NOCAP[@]}" grep CapEff /proc/self/status | awk '{print $2}')
(( (0x$caps >> 12) & 1 )) && fail "CAP_NET_ADMIN still effective under setpriv ($caps)"
(( (0x$caps >> 13) & 1 )) || fail "CAP_NET_RAW lost under setpriv ($caps)"

# nothing may leave a for --no-fallback or for usage errors
ip netns exec "rp$LAB-a" dumpcap -q -i eth0 -f "host 198.18.3.2" -w "$tmp/quiet.pcapng" 2>"$tmp/dumpcap.err" &
dc=$!; pids+=("$dc")
wait_line "$tmp/dumpcap.err" "Capturing on" || fail "dumpcap did not start"
rc=0; A "${TO[@]}" "${NOCAP[@]}" "$RP" connect --no-fallback 198.18.3.2:7202 </dev/null 2>"$tmp/nofb.err" || rc=$?
[ "$rc" = 1 ] || fail "--no-fallback without CAP_NET_ADMIN: exit $rc, want 1: $(cat "$tmp/nofb.err")"
grep -q "refuses TCP_REPAIR (Operation not permitted)" "$tmp/nofb.err" || fail "--no-fallback: no clear EPERM: $(cat "$tmp/nofb.err")"
for bad in "--exec cat --raw" "--exec cat -L 6002" "-L 6002 --local-port 40000" "--max-clients 2" "-L 1.2.3:4" "--user no-such-user" "--pcap /dev/null"; do
	rc=0
	# shellcheck disable=SC2086
	A "${TO[@]}" "$RP" connect $bad 198.18.3.2:7202 </dev/null 2>"$tmp/bad.err" || rc=$?
	[ "$rc" = 2 ] || fail "'connect $bad': exit $rc, want 2: $(cat "$tmp/bad.err")"
done
sleep 0.3; kill -INT $dc; wait $dc 2>/dev/null || true
n=$(tshark -r "$tmp/quiet.pcapng" 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || fail "$n packets left a for --no-fallback / usage errors"
no_tables "--no-fallback"
ok "--no-fallback without CAP_NET_ADMIN: exit 1 (EPERM); usage errors exit 2; not one packet sent"

: >"$tmp/peers"
head -c $((1 << 20)) /dev/urandom >"$tmp/in.fb"
A "${TO[@]}" "${NOCAP[@]}" "$RP" connect --local-port 40300 198.18.3.2:7202 <"$tmp/in.fb" >"$tmp/out.fb" 2>"$tmp/fb.err" ||
	fail "fallback connect failed: $(cat "$tmp/fb.err")"
grep -q '^handoff: connect (TCP_REPAIR refused: Operation not permitted) 10\.0\.1\.2:40300 -> 198\.18\.3\.2:7202$' "$tmp/fb.err" ||
	fail "fallback: status line missing: $(cat "$tmp/fb.err")"
cmp -s "$tmp/in.fb" "$tmp/out.fb" || fail "fallback: echo differs ($(stat -c %s "$tmp/out.fb") bytes back)"
[ "$(cat "$tmp/peers")" = "198.18.1.2 40300" ] || fail "fallback: s saw '$(cat "$tmp/peers")', want a-public:40300"
no_tables "fallback"
ok "fallback: TCP_REPAIR refused (EPERM), kernel connect() from 40300 (s saw 198.18.1.2:40300), 1 MiB echoed intact"

# ---- 4. --stdio --user nobody: no privileges while relaying ---------------------------------------
mkfifo "$tmp/fifo"
ip netns exec "rp$LAB-a" "$RP" connect --stdio --user nobody 198.18.3.2:7202 <"$tmp/fifo" >"$tmp/out.u" 2>"$tmp/user.err" &
up=$!; pids+=("$up")
exec 7>"$tmp/fifo"
printf 'ping\n' >&7
wait_line "$tmp/out.u" '^ping$' || fail "--user: no echo: $(cat "$tmp/user.err")"
uid=$(status_field $up Uid); caps=$(status_field $up CapEff); bnd=$(status_field $up CapBnd)
exec 7>&-
rc=0; wait_for $up 20 || rc=$?
[ "$rc" = 0 ] || fail "--user: exit $rc: $(cat "$tmp/user.err")"
[ "$uid" = 65534 ] || fail "--user nobody: relaying as uid $uid"
[ "$caps" = 0000000000000000 ] || fail "--user: CapEff $caps while relaying"
(( (0x$bnd & ~0x3000) == 0 )) || fail "--user: bounding set $bnd while relaying (more than NET_RAW|NET_ADMIN)"
no_tables "--user"
ok "--stdio --user nobody: relays as uid 65534, CapEff 0, nothing but NET_RAW|NET_ADMIN in the bounding set"
