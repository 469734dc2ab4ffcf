# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shared by tests/lab/punch_*.sh (sourced; not a test itself). Needs tools/natlab-lib.sh, sha256sum, jq-free
# JSON checks through python3.
#
#   punch_lab PREFIX NATLAB-UP-ARGS...   a lab (unique name), a rendezvous server on s; everything is removed
#                                        on exit (lab, temp dir), also on failure
#   punch_pair TAG [PUNCH-ARGS...]       run 'rawpunch punch --stdio' on a and b at once with $PUNCH_MIB MiB of
#                                        random data each way ($PUNCH_BYTES bytes if set, then a line
#                                        'token-$PUNCH_TOKEN-SIDE' if that is set; PUNCH_PCAP=1: each side
#                                        writes $T/TAG-SIDE.pcap; PUNCH_SPLIT=1 with PUNCH_BYTES: what
#                                        follows those bytes only 2 s after the side's punch connected,
#                                        for --relay-first: on the direct path then)
#   expect_pair_ok TAG                   both exited 0, the SHA-256 of what each side received equals what
#                                        the other sent, the reports say repair
#   report_get TAG SIDE EXPR             evaluate EXPR (Python, the report is `r`) on $T/TAG-SIDE.json
#   no_leftovers                         no rawpunch_* nft table in a or b
#   expect_relay_released                no connection left at the TURN server on s (waits up to WAIT s, 5)
#   expect_relayfirst TAG                a --relay-first pair: the data crossed intact both ways, both moved
#                                        from the relay to the direct path while it flowed (and the data mode
#                                        took the direct socket from the switch), the first byte
#                                        came before the direct path, the allocation was released
case ${BUILD:-build} in /*) _b=$BUILD ;; *) _b=$PWD/${BUILD:-build} ;; esac
RP=${RAWPUNCH:-$_b/rawpunch}
[ -x "$RP" ] || { echo "FAIL: $RP not built (make)"; exit 1; }
# shellcheck source=tools/natlab-lib.sh
source tools/natlab-lib.sh
PUNCH_MIB=${PUNCH_MIB:-4}
T=$(mktemp -d /tmp/rp-punch.XXXXXX)
LAB=
declare -A SECRET_FILE_OF=()

_punch_cleanup() {
	_natlab_cleanup
	rm -rf "$T"
}
# from here on: lab_up chains this trap (the labs go first), so a failing 'natlab up' leaves no $T
trap _punch_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	local f
	for f in "$T"/*.err; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
	exit 1
}

punch_lab() {
	local prefix=$1; shift
	LAB=$(unique_lab "$prefix")
	lab_up "$LAB" "$@"
	head -c 32 /dev/urandom | base64 >"$T/secret"
	tools/natlab exec "$LAB" s -- "$RP" rendezvous --listen 198.18.3.2 >/dev/null 2>"$T/rv.log" &
	local i
	for i in $(seq 50); do
		tools/natlab exec "$LAB" s -- ss -ltn 2>/dev/null | grep -q ':7777 ' && return 0
		sleep 0.1
	done
	fail "rendezvous server did not start"
}

# punch_pair TAG [extra args for both sides]
punch_pair() {
	local tag=$1; shift
	local side pids=() rc
	for side in a b; do
		head -c "${PUNCH_BYTES:-$((PUNCH_MIB << 20))}" /dev/urandom >"$T/$tag-$side.in"
		[ -z "${PUNCH_TOKEN:-}" ] || echo "token-$PUNCH_TOKEN-$side" >>"$T/$tag-$side.in"
	done
	for side in a b; do
		local pc=() cmd
		[ -n "${PUNCH_PCAP:-}" ] && pc=(--pcap "$T/$tag-$side.pcap")
		cmd=(tools/natlab exec "$LAB" "$side" -- "$RP" punch "${pc[@]}" --rendezvous 198.18.3.2 --session "$tag"
			--secret-file "${SECRET_FILE_OF[$side]:-$T/secret}" --stdio --report "$T/$tag-$side.json" --timeout 20 "$@")
		if [ -n "${PUNCH_SPLIT:-}" ]; then
			_punch_split "$tag" "$side" | "${cmd[@]}" >"$T/$tag-$side.out" 2>"$T/$tag-$side.err" &
		else
			"${cmd[@]}" <"$T/$tag-$side.in" >"$T/$tag-$side.out" 2>"$T/$tag-$side.err" &
		fi
		pids+=($!)
	done
	PAIR_RC=()
	for side in 0 1; do
		rc=0
		wait "${pids[$side]}" || rc=$?
		PAIR_RC+=("$rc")
	done
}

# PUNCH_SPLIT: the stdin of punch_pair's side: its .in file, what follows the first $PUNCH_BYTES only 2 s after
# its punch connected (--relay-first: the streams move within milliseconds of it; "moved to the direct path"
# comes only at the end) or after 30 s without it (the test's checks tell)
_punch_split() {
	local in=$T/$1-$2.in i
	head -c "$PUNCH_BYTES" "$in"
	for i in $(seq 300); do grep -qs "^punch: connected " "$T/$1-$2.err" && break; sleep 0.1; done
	sleep 2
	tail -c +"$((PUNCH_BYTES + 1))" "$in"
}

# expect_pair_ok TAG: both exited 0, the data crossed intact both ways, the report says repair
expect_pair_ok() {
	local tag=$1 ha hb n
	if [ "${PAIR_RC[0]}" != 0 ] || [ "${PAIR_RC[1]}" != 0 ]; then fail "$tag: punch exited a=${PAIR_RC[0]} b=${PAIR_RC[1]}"; fi
	ha=$(sha256sum <"$T/$tag-a.in" | cut -c1-64); hb=$(sha256sum <"$T/$tag-b.in" | cut -c1-64)
	[ "$(sha256sum <"$T/$tag-b.out" | cut -c1-64)" = "$ha" ] ||
		fail "$tag: b received $(wc -c <"$T/$tag-b.out") bytes whose SHA-256 differs from a's $(wc -c <"$T/$tag-a.in")"
	[ "$(sha256sum <"$T/$tag-a.out" | cut -c1-64)" = "$hb" ] ||
		fail "$tag: a received $(wc -c <"$T/$tag-a.out") bytes whose SHA-256 differs from b's $(wc -c <"$T/$tag-b.in")"
	local side
	for side in a b; do
		n=$(wc -c <"$T/$tag-$([ $side = a ] && echo b || echo a).in")
		[ "$(report_get "$tag" "$side" "r['result']['ok']")" = True ] || fail "$tag: $side's report: result.ok is not true"
		[ "$(report_get "$tag" "$side" "r['result']['path']")" = repair ] ||
			fail "$tag: $side's report: path is not repair"
		[ "$(report_get "$tag" "$side" "r['result']['bytes_in']")" = "$n" ] ||
			fail "$tag: $side's report: bytes_in is not $n"
		[ "$(report_get "$tag" "$side" "r['rounds'][-1]['established']")" = True ] ||
			fail "$tag: $side's report: the last round is not established"
	done
	# rawpunch report reads both fresh reports: one block per side, every round, the result
	"$RP" report "$T/$tag-a.json" "$T/$tag-b.json" >"$T/$tag.report" 2>&1 || fail "$tag: rawpunch report: $(cat "$T/$tag.report")"
	[ "$(grep -c '^   result: repair handoff, ' "$T/$tag.report")" = 2 ] || fail "$tag: rawpunch report: $(cat "$T/$tag.report")"
	[ "$(grep -c '^   round [0-9]*[:( ]' "$T/$tag.report")" = $(( $(report_get "$tag" a "len(r['rounds'])") + $(report_get "$tag" b "len(r['rounds'])") )) ] ||
		fail "$tag: rawpunch report does not show every round: $(cat "$T/$tag.report")"
}

report_get() {
	python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($3)" "$T/$1-$2.json" 2>/dev/null ||
		echo "<no report $1-$2>"
}

no_leftovers() {
	local h
	for h in a b; do
		if tools/natlab exec "$LAB" "$h" -- nft list tables 2>/dev/null | grep -q 'rawpunch_'; then
			fail "an nft rawpunch table remains in $h"
		fi
	done
}

# summary TAG: one line per side for the log
summary() {
	local tag=$1 side
	for side in a b; do
		echo "   $tag/$side: $(report_get "$tag" "$side" "'%s, %d round(s), punch %.1f ms, connect %.0f ms, %d packets, trigger %s' % (r['plan']['method'], len(r['rounds']), r['result']['punch_ms'], r['result']['time_to_connect_ms'], r['result']['packets_total'], r['rounds'][-1]['trigger'])")"
	done
}

# the connections to the TURN server (coturn on s, port 3478) that are still open
s_relay_conns() { tools/natlab exec "$LAB" s -- ss -Htan | awk '$1 != "TIME-WAIT" && $1 != "LISTEN" && $4 ~ /:3478$/'; }

expect_relay_released() {
	local i
	for ((i = 0; i < ${WAIT:-5} * 10; i++)); do [ -z "$(s_relay_conns)" ] && return 0; sleep 0.1; done
	fail "connections left on the TURN server: $(s_relay_conns)"
}

expect_relayfirst() {
	local tag=$1 n=$((PUNCH_MIB << 20)) ha hb side rel
	if [ "${PAIR_RC[0]}" != 0 ] || [ "${PAIR_RC[1]}" != 0 ]; then fail "$tag: punch exited a=${PAIR_RC[0]} b=${PAIR_RC[1]}"; fi
	ha=$(sha256sum <"$T/$tag-a.in" | cut -c1-64); hb=$(sha256sum <"$T/$tag-b.in" | cut -c1-64)
	[ "$(sha256sum <"$T/$tag-b.out" | cut -c1-64)" = "$ha" ] || fail "$tag: b received $(wc -c <"$T/$tag-b.out") bytes, not a's $n"
	[ "$(sha256sum <"$T/$tag-a.out" | cut -c1-64)" = "$hb" ] || fail "$tag: a received $(wc -c <"$T/$tag-a.out") bytes, not b's $n"
	for side in a b; do
		g() { report_get "$tag" $side "$1"; }
		[ "$(g "r['result']['route']")" = "relay->direct" ] || fail "$tag: $side's route: $(g "r['result']['route']") ($(g "r['result'].get('relay_why')"))"
		[ "$(g "r['result']['switched']")" = True ] || fail "$tag: $side did not switch"
		[ "$(g "r['result']['handed_back']")" = True ] || fail "$tag: $side's switch did not hand the direct socket to the data mode"
		[ "$(g "r['result']['bytes_in']")" = $n ] || fail "$tag: $side's bytes_in $(g "r['result']['bytes_in']")"
		rel=$(g "r['result']['bytes_out_relay']")
		[ "$rel" -gt 0 ] && [ "$rel" -lt $n ] || fail "$tag: $side sent $rel of $n bytes over the relay (want some, not all)"
		[ "$(g "r['result']['time_to_first_byte_ms'] < r['result']['time_to_connect_ms']")" = True ] ||
			fail "$tag: $side's first byte $(g "r['result']['time_to_first_byte_ms']") ms is not before the punch $(g "r['result']['time_to_connect_ms']") ms"
		grep -q "relay up in" "$T/$tag-$side.err" && grep -q "moved to the direct path" "$T/$tag-$side.err" ||
			fail "$tag: $side's status lines"
		echo "   $tag/$side: $(g "'first byte at %.0f ms, relay up at %.0f ms, direct at %.0f ms (%d round(s)), switched at %.0f ms; %d bytes out over the relay' % (r['result']['time_to_first_byte_ms'], r['result']['time_to_relay_ms'], r['result']['time_to_connect_ms'], len(r['rounds']), r['result']['time_to_switch_ms'], r['result']['bytes_out_relay'])")"
	done
	no_leftovers
	expect_relay_released
}
