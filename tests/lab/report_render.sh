#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch report: renders punch --report files (tests/lab/report/: both sides of a birthday punch, a
# run that failed at the rendezvous) line by line as documented; bad input (missing file, not JSON, cut
# short, JSON that is not a report, three files) is exit 2 with a message naming the file and nothing on
# stdout. No lab needed (the punch_* tests render their fresh reports too: punch_common.bash).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
case ${BUILD:-build} in /*) RP=$BUILD/rawpunch ;; *) RP=$PWD/${BUILD:-build}/rawpunch ;; esac
[ -x "$RP" ] || fail "$RP not built (make)"
F=tests/lab/report
D=$(mktemp -d /tmp/rp-report.XXXXXX)
trap 'rm -rf "$D"' EXIT

cp "$F/birthday-a.json" "$D/a.json"; cp "$F/birthday-b.json" "$D/b.json"
"$RP" report "$D/a.json" "$D/b.json" >"$D/out" 2>"$D/err" || fail "report a b: exit $?: $(cat "$D/err")"
cat >"$D/want" <<'TXT'
a (plan side b, hard): random NAT, action open-many
   round 1: sent 0 primes + 256 SYNs (TTL 2) from 256 local port(s) (planned: 1 remote port(s)), 1 handshake segments
            seen: 1 valid SYN, 0 valid SYN-ACK, 0 RST, 5 ICMP, 0 forged
            -> established 49845 <-> :39191 by a valid syn 177.2 ms after T
   result: repair handoff, 10.0.1.2:49845 <-> 198.18.2.2:39191, 257 packets, probe 87 ms, punch 177 ms after T, connected 697 ms after start
b (plan side a, easy): preserving NAT, action probe-random
   round 1: sent 0 primes + 83 SYNs (TTL 64) from 1 local port(s) (planned: 1159 remote port(s)), 1 handshake segments
            seen: 0 valid SYN, 1 valid SYN-ACK, 82 RST, 0 ICMP, 0 forged
            -> established 39191 <-> :39595 by a valid syn-ack 174.9 ms after T
   result: repair handoff, 10.0.2.2:39191 <-> 198.18.1.2:39595, 84 packets, probe 86 ms, punch 175 ms after T, connected 697 ms after start
TXT
diff -u "$D/want" "$D/out" || fail "report a b: output differs (above)"
[ ! -s "$D/err" ] || fail "report a b wrote to stderr: $(cat "$D/err")"
ok "both sides of a birthday punch: plan side, kind, allocation, action, round 1 sent/seen/why, result"

"$RP" report "$F/failed.json" >"$D/out" || fail "report failed.json: exit $?"
[ "$(cat "$D/out")" = "failed (no plan: the attempt stopped before the two sides agreed on one): preserving NAT
   result: failed in stage rendezvous after 3012 ms: rendezvous: no peer joined session wrong within 3 s" ] ||
	fail "report failed.json: $(cat "$D/out")"
ok "a failed run: no plan, the stage and the reason"

# bad input: exit 2, the file and the reason named, nothing on stdout (also when the first file is good)
head -c 700 "$F/birthday-a.json" >"$D/cut.json"
echo '{"rounds": [], "ok": true}' >"$D/other.json"
echo 'round 1: ok' >"$D/text.json"
: >"$D/empty.json"
check_bad() {   # check_bad WANT-IN-MESSAGE FILE...
	local want=$1 rc=0; shift
	"$RP" report "$@" >"$D/out" 2>"$D/err" || rc=$?
	[ "$rc" = 2 ] || fail "report $*: exit $rc (want 2)"
	[ ! -s "$D/out" ] || fail "report $*: printed to stdout on bad input: $(cat "$D/out")"
	grep -qF -- "$want" "$D/err" || fail "report $*: message lacks '$want': $(cat "$D/err")"
}
check_bad "$D/cut.json: truncated JSON" "$D/a.json" "$D/cut.json"
check_bad "$D/other.json: not a punch report (no \"version\"" "$D/other.json"
check_bad "$D/text.json: not JSON" "$D/text.json"
check_bad "$D/empty.json: empty file" "$D/empty.json"
check_bad "$D/nosuch.json: No such file" "$D/nosuch.json"
check_bad "one or two report files" "$D/a.json" "$D/b.json" "$D/a.json"
check_bad "one or two report files"
ok "bad input: truncated, not a report, not JSON, empty, missing, 3 files, none: exit 2, file named, stdout empty"
