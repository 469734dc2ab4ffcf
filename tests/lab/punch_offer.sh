#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch without a rendezvous server: a prints an offer (--offer), b answers it (--answer TEXT)
# and a reads the answer as the first line of its stdin, the rest of which is data. sequential x
# preserve: 1 MiB each way over the handed-off kernel socket (SHA-256), path=repair, the plan both
# made is the same. Then b holding another secret: it refuses a's offer (exit 1, the reason, no answer)
# before sending anything and a, never answered, exits 1; a garbage offer: exit 2, nothing sent; a
# secret file under 16 bytes: exit 2 with the hint, nothing sent. "Nothing sent" is b's own count: an nft
# counter on every IPv4 packet b's namespace sends out (not lo). No rawpunch nft table is left.
set -euo pipefail
cd "$(dirname "$0")/../.."
PUNCH_MIB=1
source tests/lab/punch_common.bash

punch_lab po --nat-a sequential --nat-b preserve
# every IPv4 packet leaving b (not on lo), counted in b's own namespace
tools/natlab exec "$LAB" b -- nft -f - <<'EON'
table ip fxtx {
	chain out {
		type filter hook output priority filter; policy accept;
		oifname != "lo" counter
	}
}
EON
b_tx() { tools/natlab exec "$LAB" b -- nft list chain ip fxtx out | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
[ "$(b_tx)" = 0 ] || fail "b sent packets before the test started: $(b_tx)"
head -c $((PUNCH_MIB << 20)) /dev/urandom >"$T/a.in"
head -c $((PUNCH_MIB << 20)) /dev/urandom >"$T/b.in"
mkfifo "$T/a.fifo"

# offer_answer TAG SECRET_B: runs both sides; a's stdin is the fifo (answer line, then data)
offer_answer() {
	local tag=$1 sb=$2 i offer ans
	tools/natlab exec "$LAB" a -- "$RP" punch --offer --stun 198.18.3.2 --secret-file "$T/secret" \
		--report "$T/$tag-a.json" <"$T/a.fifo" >"$T/$tag-a.out" 2>"$T/$tag-a.err" &
	PA=$!
	exec 3>"$T/a.fifo"
	offer=""
	for i in $(seq 100); do offer=$(grep -m1 '^rpo1\.' "$T/$tag-a.err" || true); [ -n "$offer" ] && break; sleep 0.1; done
	[ -n "$offer" ] || fail "$tag: a printed no offer"
	tools/natlab exec "$LAB" b -- "$RP" punch --answer "$offer" --stun 198.18.3.2 --secret-file "$sb" \
		--start-in 3 --report "$T/$tag-b.json" <"$T/b.in" >"$T/$tag-b.out" 2>"$T/$tag-b.err" 3>&- &
	PB=$!
	ans=""
	for i in $(seq 100); do ans=$(grep -m1 '^rpa1\.' "$T/$tag-b.err" || true); [ -n "$ans" ] && break; sleep 0.1; done
	[ -n "$ans" ] || fail "$tag: b printed no answer"
	{ echo "$ans"; cat "$T/a.in"; } >&3 || true
	exec 3>&-
	RC_A=0; wait "$PA" || RC_A=$?
}

offer_answer ok "$T/secret"
RC_B=0; wait "$PB" || RC_B=$?
if [ "$RC_A" != 0 ] || [ "$RC_B" != 0 ]; then fail "ok: exit codes a=$RC_A b=$RC_B"; fi
cmp -s "$T/a.in" "$T/ok-b.out" || fail "ok: b did not receive a's data intact ($(wc -c <"$T/ok-b.out") bytes)"
cmp -s "$T/b.in" "$T/ok-a.out" || fail "ok: a did not receive b's data intact ($(wc -c <"$T/ok-a.out") bytes)"
[ "$(sha256sum <"$T/a.in" | cut -c1-64)" = "$(sha256sum <"$T/ok-b.out" | cut -c1-64)" ] || fail "ok: SHA-256 differs"
for side in a b; do
	[ "$(report_get ok "$side" "r['result']['path']")" = repair ] || fail "ok: $side's path is not repair"
	[ "$(report_get ok "$side" "r['plan']['method']")" = predicted-burst ] || fail "ok: $side's method is not predicted-burst"
done
[ "$(report_get ok a "r['serverless']")" = offer ] || fail "ok: a's report does not say offer"
[ "$(report_get ok a "r['plan']['reason']")" = "$(report_get ok b "r['plan']['reason']")" ] || fail "ok: the two plans differ"
no_leftovers
ok "serverless sequential x preserve: 1 MiB each way intact, repair, the same plan on both sides"

head -c 32 /dev/urandom | base64 >"$T/other"
tools/natlab exec "$LAB" a -- "$RP" punch --offer --stun 198.18.3.2 --secret-file "$T/secret" \
	--report "$T/bad-a.json" <"$T/a.fifo" >"$T/bad-a.out" 2>"$T/bad-a.err" &
PA=$!
exec 3>"$T/a.fifo"
offer=""
for _ in $(seq 100); do offer=$(grep -m1 '^rpo1\.' "$T/bad-a.err" || true); [ -n "$offer" ] && break; sleep 0.1; done
[ -n "$offer" ] || fail "bad: a printed no offer"
rc=0
tx0=$(b_tx)
tools/natlab exec "$LAB" b -- "$RP" punch --answer "$offer" --stun 198.18.3.2 --secret-file "$T/other" \
	--report "$T/bad-b.json" </dev/null >"$T/bad-b.out" 2>"$T/bad-b.err" 3>&- || rc=$?
[ "$rc" = 1 ] || fail "bad: b exited $rc on an offer made with another secret (want 1)"
grep -q "does not authenticate" "$T/bad-b.err" || fail "bad: b gave no reason"
grep -q '^rpa1\.' "$T/bad-b.err" && fail "bad: b answered anyway"
grep -q "probe took" "$T/bad-b.err" && fail "bad: b probed (sent packets) before checking the offer"
[ "$(b_tx)" = "$tx0" ] || fail "bad: b sent $(( $(b_tx) - tx0 )) packets for an offer it refused"
exec 3>&-            # a's answer never comes: end of input
rc=0; wait "$PA" || rc=$?
[ "$rc" = 1 ] || fail "bad: a exited $rc without an answer (want 1)"
grep -q "reading the answer" "$T/bad-a.err" || fail "bad: a gave no reason"
[ "$(report_get bad a "len(r['rounds'])")" = 0 ] || fail "bad: a punched anyway"
if [ -s "$T/bad-a.out" ] || [ -s "$T/bad-b.out" ]; then fail "bad: data was written"; fi
no_leftovers
ok "an offer under another secret is refused by b (exit 1, reason, b's TX counter unchanged); a without an answer exits 1; nothing punched"

tx0=$(b_tx)
rc=0; tools/natlab exec "$LAB" b -- "$RP" punch --answer rpo1.AAAAgarbage --stun 198.18.3.2 --secret-file "$T/secret" \
	</dev/null >/dev/null 2>"$T/garbage.err" || rc=$?
if [ "$rc" != 2 ] || ! grep -q "the offer:" "$T/garbage.err"; then fail "garbage offer: exit $rc, $(cat "$T/garbage.err")"; fi
grep -q "probe took" "$T/garbage.err" && fail "garbage offer: b probed before checking it"
[ "$(b_tx)" = "$tx0" ] || fail "garbage offer: b sent $(( $(b_tx) - tx0 )) packets"
ok "a garbage offer: exit 2 with the reason, nothing sent (b's TX counter unchanged)"

printf 'short\n' >"$T/short"
rc=0; tools/natlab exec "$LAB" b -- "$RP" punch --answer "$offer" --stun 198.18.3.2 --secret-file "$T/short" \
	</dev/null >/dev/null 2>"$T/short.err" || rc=$?
[ "$rc" = 2 ] || fail "short secret: exit $rc (want 2): $(cat "$T/short.err")"
if ! grep -q "at least 16" "$T/short.err" || ! grep -q "hint: head -c 32 /dev/urandom | base64 >" "$T/short.err"; then
	fail "short secret: no reason or hint: $(cat "$T/short.err")"
fi
[ "$(b_tx)" = "$tx0" ] || fail "short secret: b sent $(( $(b_tx) - tx0 )) packets"
ok "a 5-byte secret file: exit 2 with the hint, nothing sent"
# --exec as root: the command runs as nobody (no uid-0 hint any more); an unknown --user is a usage
# error before anything else
for variant in "" "--user nobody" "--user no-such-user-rp"; do
	rc=0
	# shellcheck disable=SC2086
	tools/natlab exec "$LAB" b -- "$RP" punch --answer "$offer" --stun 198.18.3.2 --secret-file "$T/short" \
		--exec true $variant </dev/null >/dev/null 2>"$T/exec.err" || rc=$?
	[ "$rc" = 2 ] || fail "--exec $variant: exit $rc (want 2 for the short secret or the user)"
	! grep -q "uid 0" "$T/exec.err" || fail "--exec $variant: a uid-0 hint: $(cat "$T/exec.err")"
	want="at least 16"; [ "$variant" = "--user no-such-user-rp" ] && want="no such user 'no-such-user-rp'"
	grep -q "$want" "$T/exec.err" || fail "--exec $variant: no '$want': $(cat "$T/exec.err")"
done
[ "$(b_tx)" = "$tx0" ] || fail "--exec checks: b sent packets"
ok "--exec as root: no uid-0 hint (it runs as nobody); an unknown --user: exit 2, nothing sent"
tools/natlab exec "$LAB" b -- nft delete table ip fxtx
