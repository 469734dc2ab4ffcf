#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The RST guard's lifecycle and connect's failure reporting, in the NAT lab:
#   - while an attempt runs, a has table inet rawpunch_<pid> (flags owner) holding exactly the flow;
#   - SIGTERM: clean exit 1 and the table is gone; SIGKILL: gone too (owner flag);
#   - a stale rawpunch_<dead pid> table is swept by the next run; look-alike names are left alone;
#   - timeouts name what was seen: silence, ICMP time-exceeded (SYN TTL 2 dies at inet);
#   - without CAP_NET_RAW/CAP_NET_ADMIN: exit 1 with a hint; bad input exits 2 and sends no packet.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}; [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
RP=${RAWPUNCH:-$BUILD/rawpunch}
[ -x "$RP" ] || { echo "FAIL: $RP not built (make)"; exit 1; }
# shellcheck source=tools/natlab-lib.sh
source tools/natlab-lib.sh     # unique_lab (its fail/ok are redefined below)
LAB=$(unique_lab rwgd)
T=$(mktemp -d /tmp/rw-guard.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tools/natlab down "$LAB" >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$T"/*.err; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done; exit 1; }
A() { ip netns exec "rp$LAB-a" "$@"; }
S() { ip netns exec "rp$LAB-s" "$@"; }

tools/natlab up "$LAB" >/dev/null
S_IP=$(tools/natlab addr "$LAB" s)
# s drops port 7300: attempts towards it meet silence.
S nft -f - <<'EON'
table inet rwtest {
  chain in {
    type filter hook input priority filter; policy accept;
    tcp dport 7300 drop
  }
}
EON

wait_table() {   # wait_table PID: the process's table appears
  for _ in $(seq 50); do A nft list tables | grep -qx "table inet rawpunch_$1" && return 0; sleep 0.1; done
  return 1
}
gone() { ! A nft list tables | grep -q "rawpunch_$1\$"; }

# ---- running: the table exists with owner flag and exactly our flow; SIGTERM removes it -------
ip netns exec "rp$LAB-a" "$RP" connect --raw --local-port 40040 --timeout 30 "$S_IP:7300" </dev/null >/dev/null 2>"$T/term.err" & pid=$!; pids+=("$pid")
wait_table "$pid" || fail "no table rawpunch_$pid while the attempt runs"
A nft list table inet "rawpunch_$pid" >"$T/table"
grep -q 'flags owner' "$T/table" || fail "table without 'flags owner'"
grep -q "10.0.1.2 . 40040 . $S_IP . 7300" "$T/table" || { cat "$T/table"; fail "flow not in the set"; }
grep -q 'tcp flags & rst == rst' "$T/table" || fail "no RST drop rule"
grep -q 'meta mark 0x72700001 return' "$T/table" || fail "crafted packets are not exempt"
kill -TERM "$pid"
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" -eq 143 ] || fail "SIGTERM: exit status $rc, want 143 (128 + SIGTERM)"
grep -q 'interrupted' "$T/term.err" || fail "SIGTERM: no 'interrupted' message"
gone "$pid" || fail "SIGTERM: table rawpunch_$pid remains"
echo "ok table while running (owner flag, flow in set); SIGTERM -> exit 143, table gone"

# ---- SIGKILL: no cleanup code runs, the owner flag removes the table ---------------------------
ip netns exec "rp$LAB-a" "$RP" connect --raw --local-port 40041 --timeout 30 "$S_IP:7300" </dev/null >/dev/null 2>&1 & pid=$!; pids+=("$pid")
wait_table "$pid" || fail "no table for the second attempt"
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
for _ in $(seq 20); do gone "$pid" && break; sleep 0.1; done
gone "$pid" || fail "SIGKILL: table rawpunch_$pid remains"
echo "ok SIGKILL -> table gone (owner)"

# ---- stale sweep ------------------------------------------------------------------------------
true & dead=$!; wait "$dead"
while kill -0 "$dead" 2>/dev/null; do true & dead=$!; wait "$dead"; done
A nft add table inet "rawpunch_$dead"              # no owner flag: only the sweep can remove it
A nft add table inet "rawpunch_${dead}_2"           # a dead process's second guard
A nft add table inet rawpunch_0123                  # not our pattern (leading zero)
A nft add table inet rawpunchx_$dead                # not our pattern
A nft add table ip "rawpunch_$dead"                 # other family: not ours
set +e
A "$RP" connect --raw --local-port 40042 --timeout 2 "$S_IP:7300" </dev/null >/dev/null 2>"$T/silence.err"; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "silent peer: exit status $rc, want 1"
grep -q 'silence' "$T/silence.err" || fail "timeout message does not say 'silence'"
A nft list tables >"$T/tables"
grep -qx "table inet rawpunch_$dead" "$T/tables" && fail "stale table rawpunch_$dead not swept"
grep -qx "table inet rawpunch_${dead}_2" "$T/tables" && fail "stale table rawpunch_${dead}_2 not swept"
grep -qx "table inet rawpunch_0123" "$T/tables" || fail "sweep removed rawpunch_0123"
grep -qx "table inet rawpunchx_$dead" "$T/tables" || fail "sweep removed rawpunchx_$dead"
grep -qx "table ip rawpunch_$dead" "$T/tables" || fail "sweep removed an ip-family table"
A nft delete table inet rawpunch_0123; A nft delete table inet rawpunchx_$dead; A nft delete table ip "rawpunch_$dead"
echo "ok stale rawpunch_$dead swept, look-alikes kept; silent peer -> exit 1 naming silence"

# ---- ICMP: SYN TTL 2 passes ra and expires at inet ----------------------------------------------
set +e
A "$RP" connect --raw --ttl 2 --local-port 40043 --timeout 2 "$S_IP:7300" </dev/null >/dev/null 2>"$T/icmp.err"; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "TTL 2: exit status $rc, want 1"
grep -q 'ICMP errors (last 11/0 from 198.18.1.1)' "$T/icmp.err" || fail "TTL 2: ICMP time-exceeded from inet not reported"
grep -q 'within the timeout' "$T/icmp.err" || fail "TTL 2: not reported as a timeout"
echo "ok TTL 2 -> $(tail -n 1 "$T/icmp.err")"

# ---- without privileges: exit 1 with the capability hint --------------------------------------
set +e
A setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$RP" connect --raw "$S_IP:7300" </dev/null >/dev/null 2>"$T/priv.err"; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "unprivileged: exit status $rc, want 1"
grep -q 'Operation not permitted' "$T/priv.err" || fail "unprivileged: no EPERM in the message"
grep -q '^hint: .*CAP_NET_RAW' "$T/priv.err" || fail "unprivileged: no capability hint"
echo "ok unprivileged -> exit 1 with a capability hint"

# ---- bad input: exit 2, nothing sent -------------------------------------------------------------
A tshark -n -i eth0 -w "$T/bad.pcap" -q >/dev/null 2>"$T/tshark.log" & tpid=$!; pids+=("$tpid")
wait_line "$T/tshark.log" "Capturing on" || :
for args in "" "--raw" "--raw $S_IP" "--raw $S_IP:0" "--raw $S_IP:70000" "--raw --local-port 0 $S_IP:7300" \
            "--raw --timeout x $S_IP:7300" "--raw --ttl 256 $S_IP:7300" "--raw --bogus $S_IP:7300" \
            "--raw --iface nosuchif0 $S_IP:7300" "--raw 0.0.0.0:7300" "--raw a:1 b:2" "--raw --timeout"; do
  set +e
  # shellcheck disable=SC2086
  A "$RP" connect $args </dev/null >/dev/null 2>"$T/bad.err"; rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "'connect $args': exit status $rc, want 2"
  grep -q 'rawpunch connect:' "$T/bad.err" || fail "'connect $args': no error message"
done
grep -q -- '--local-port' <<<"$("$RP" connect --help)" || fail "--help does not list --local-port"   # no pipe: grep -q would SIGPIPE it under pipefail
sleep 0.5
kill "$tpid"; wait "$tpid" 2>/dev/null || true
n=$(tshark -n -r "$T/bad.pcap" -Y "ip.src==10.0.1.2" 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || fail "bad input sent $n packets"
! A nft list tables | grep -q rawpunch_ || fail "a rawpunch table remains"
echo "ok bad input: exit 2 with a message, no packet, no table"
echo PASS
