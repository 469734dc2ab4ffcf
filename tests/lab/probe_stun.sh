#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The STUN-over-TCP client against misbehaving servers, in the NAT lab: a scripted server on s (socat +
# bash) answers a Binding request in a chosen way. 'rawpunch probe --samples 0 --ttl-max 0' runs test I
# only. Asserts that the client
#   - reassembles a response split across segments (header cut in two) and after a delay,
#   - skips an indication and a response with another transaction ID that come first,
#   - refuses an error response (reporting its code and reason), a wrong FINGERPRINT, non-STUN bytes,
#     a close without an answer, and a silent server (after --timeout, not much later),
#   - reports the mapping unknown (and why) when the server sends no OTHER-ADDRESS.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
RP=$(realpath -m "${RAWPUNCH:-${BUILD:-build}/rawpunch}")
[ -x "$RP" ] || fail "$RP not built"
for t in jq socat od; do command -v "$t" >/dev/null || fail "$t missing (make deps)"; done
TMP=$(mktemp -d /tmp/rp-pstun.XXXXXX)
chmod 755 "$TMP"
trap 'rm -rf "$TMP"; _natlab_cleanup' EXIT

# The scripted server: reads one request from stdin (header, then its length), answers on stdout.
cat >"$TMP/fake.sh" <<'FAKE'
#!/usr/bin/env bash
mode=$1
hex() { od -An -tx1 -v | tr -d ' \n'; }
hdr=$(head -c 20 | hex)
len=$((16#${hdr:4:4}))
[ "$len" -gt 0 ] && head -c "$len" >/dev/null
txid=${hdr:16:24}
out() { printf "$(echo "$1" | sed 's/../\\x&/g')"; }
IFS=. read -r a b c d <<<"$SOCAT_PEERADDR"
p=$SOCAT_PEERPORT
xm=$(printf '00200008 0001%04x %02x%02x%02x%02x' $((p ^ 0x2112)) $((a ^ 0x21)) $((b ^ 0x12)) $((c ^ 0xa4)) $((d ^ 0x42)) | tr -d ' ')
ok="0101000c2112a442${txid}${xm}"
case $mode in
split)
	out "${ok:0:14}"; sleep 0.1; out "${ok:14:30}"; sleep 0.1; out "${ok:44}" ;;
indication)
	out "001100082112a442${txid}802200037a7a7a00"; out "$ok" ;;
othertx)
	out "0101000c2112a442000000000000000000000000${xm}"; out "$ok" ;;
error)
	out "011100182112a442${txid}00090012000004014e6f7420617574686f72697a65640000" ;;
badfp)
	out "010100142112a442${txid}${xm}8028000412345678" ;;
garbage)
	printf 'HTTP/1.1 400 Bad Request\r\n\r\n' ;;
close)
	;;
silent)
	sleep 5 ;;
esac
sleep 0.2
FAKE
chmod 755 "$TMP/fake.sh"

L=$(unique_lab prs)
lab_up "$L" --nat-a sequential
port=4000
run() {   # run MODE -> $TMP/MODE.json, $TMP/MODE.err; returns probe's status
	local mode=$1; shift
	port=$((port + 1))
	setsid ip netns exec "rp$L-s" socat "TCP4-LISTEN:$port,bind=198.18.3.2,reuseaddr,fork" \
		"EXEC:bash $TMP/fake.sh $mode" </dev/null >/dev/null 2>&1 &
	for _ in $(seq 50); do
		tools/natlab exec "$L" s -- ss -Hlnt "src 198.18.3.2:$port" | grep -q . && break; sleep 0.05
	done
	tools/natlab exec "$L" a -- "$RP" probe --stun "198.18.3.2:$port" --samples 0 --ttl-max 0 --json "$@" \
		>"$TMP/$mode.json" 2>"$TMP/$mode.err"
}

for mode in split indication othertx; do
	run "$mode" || fail "$mode: probe failed: $(cat "$TMP/$mode.err")"
	jq -e '(.mapped | startswith("198.18.1.2:")) and .behind_nat == true and .mapping == "unknown" and
	       (.mapping_error | length > 0) and .other_address == null and .allocation == "unknown"' \
		"$TMP/$mode.json" >/dev/null || fail "$mode: $(cat "$TMP/$mode.json")"
	ok "$mode: mapped $(jq -r .mapped "$TMP/$mode.json"), mapping unknown without OTHER-ADDRESS"
done
jq -e '.samples[0].rtt_ms < 100' "$TMP/split.json" >/dev/null || fail "split: connect time"

expect_fail() {   # expect_fail MODE PATTERN [ARGS]
	local mode=$1 pat=$2; shift 2
	local t0 t1 rc
	t0=$(date +%s%N)
	set +e; run "$mode" "$@"; rc=$?; set -e
	t1=$(date +%s%N)
	[ "$rc" -eq 1 ] || fail "$mode: exit $rc, want 1 ($(cat "$TMP/$mode.err"))"
	grep -qi -- "$pat" "$TMP/$mode.err" || fail "$mode: stderr lacks '$pat': $(cat "$TMP/$mode.err")"
	[ ! -s "$TMP/$mode.json" ] || fail "$mode: printed a result: $(cat "$TMP/$mode.json")"
	echo $(( (t1 - t0) / 1000000 ))
}
expect_fail error '401 Not authorized' >/dev/null
ok "error response: refused, code and reason shown"
expect_fail badfp 'bad message' >/dev/null
ok "wrong FINGERPRINT: refused"
expect_fail garbage 'bad message' >/dev/null
ok "non-STUN bytes: refused"
expect_fail close 'reset' >/dev/null
ok "closed without an answer: refused"
ms=$(expect_fail silent 'timed out' --timeout 1)
[ "$ms" -ge 900 ] && [ "$ms" -lt 2500 ] || fail "silent: took $ms ms with --timeout 1"
ok "silent server: timed out after $ms ms (--timeout 1)"

