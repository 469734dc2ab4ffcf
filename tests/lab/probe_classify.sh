#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch probe, end to end in the NAT lab: for every NAT profile on ra (preserve, sequential,
# sequential-noise, random) and every filter (rst, drop, icmp) a lab of its own, with a rawpunch
# rendezvous server on s for the filter probe (restarted before every run: a probe that confirms
# nat_ttl spends two of the server's per-address connect-backs, burst 8, 30 a minute). PROBE_RUNS
# probes per lab (default 7: 21 runs per profile, 28 per filter). Every run must classify exactly:
#   mapped 198.18.1.2, mapping (preserve: endpoint-independent, else address-and-port-dependent),
#   allocation (preserving / sequential with delta 1 / random), filtering = the lab's filter,
#   nat_ttl = 2 (hops: ra answers from 10.0.1.1, inet from 198.18.1.1),
# and the next real flow from the punch port (to s's whoami, right after the probe) must get an
# external port inside the predicted window (preserve: the punch port itself; random: no window).
# One run per profile also draws --plot (PNG, SVG once) and checks the file. Bad input exits 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
RP=$(realpath -m "${RAWPUNCH:-${BUILD:-build}/rawpunch}")
[ -x "$RP" ] || fail "$RP not built"
for t in jq socat gnuplot od; do command -v "$t" >/dev/null || fail "$t missing (make deps)"; done
RUNS=${PROBE_RUNS:-7}
TMP=$(mktemp -d /tmp/rp-probe.XXXXXX)
trap 'rm -rf "$TMP"; _natlab_cleanup' EXIT

# ---- bad input: exit status 2, nothing sent (no lab needed: it must fail before any socket)
for args in "" "--stun" "--stun 198.18.3.2 --samples 999" "--stun 198.18.3.2 --plot x.gif" \
	    "--stun 198.18.3.2:0" "--stun 198.18.3.2 --ttl-max 99" "--stun 198.18.3.2 --port-range 9-3" \
	    "--stun 198.18.3.2 --horizon -1" "--stun 198.18.3.2 extra"; do
	set +e; "$RP" probe $args >/dev/null 2>"$TMP/err"; rc=$?; set -e
	[ $rc -eq 2 ] || fail "probe $args: exit $rc, want 2 ($(cat "$TMP/err"))"
done
"$RP" probe --help | grep -q -- '--stun HOST' || fail "probe --help"
ok "bad input exits 2"

declare -A want_map=([preserve]=endpoint-independent [sequential]=address-and-port-dependent
	[sequential-noise]=address-and-port-dependent [random]=address-and-port-dependent)
declare -A want_alloc=([preserve]=preserving [sequential]=sequential [sequential-noise]=sequential [random]=random)
declare -A runs_profile runs_filter
total=0 window_checks=0 RV_PID=""

start_rv() {   # start_rv LAB: (re)start the rendezvous server on s
	[ -n "$RV_PID" ] && { kill "$RV_PID" 2>/dev/null || true; wait "$RV_PID" 2>/dev/null || true; }
	setsid ip netns exec "rp$1-s" "$RP" rendezvous --listen 198.18.3.2:7777 </dev/null >>"$TMP/rv-$1.log" 2>&1 &
	RV_PID=$!
	for _ in $(seq 50); do
		tools/natlab exec "$1" s -- ss -Hlnt 'src 198.18.3.2:7777' | grep -q . && return 0; sleep 0.05
	done
	fail "rendezvous server on $1 did not start"
}

one_run() {   # one_run LAB PROFILE FILTER N
	local L=$1 prof=$2 filt=$3 n=$4 port extra="" out next np
	port=$((10000 + RANDOM % 10000))
	if [ "$n" -eq 1 ]; then
		extra="--plot $TMP/plot-$prof.png"
		[ "$prof" = sequential-noise ] && extra="--plot $TMP/plot-$prof.svg"
	fi
	# The next real flow leaves the punch port right after the probe, in the same shell.
	tools/natlab exec "$L" a -- bash -c '
		"$1" probe --stun 198.18.3.2 --rendezvous 198.18.3.2:7777 --filter-timeout 500 \
			--local-port "$2" --samples 12 --json $3 >"$4/run.json" 2>"$4/run.err" || exit 1
		socat -T2 - "TCP4:198.18.3.2:7000,sourceport=$2,reuseaddr" </dev/null 2>/dev/null' \
		_ "$RP" "$port" "$extra" "$TMP" >"$TMP/next" ||
		fail "$prof/$filt run $n: probe failed: $(cat "$TMP/run.err")"
	out=$TMP/run.json
	next=$(cat "$TMP/next")
	cp "$out" "$TMP/last-$prof-$filt.json"
	chk() { [ "$(jq -r "$1" "$out")" = "$2" ] || fail "$prof/$filt run $n: $1 = $(jq -c "$1" "$out"), want $2: $(jq -c 'del(.samples)' "$out")"; }
	chk '.mapped | split(":")[0]' 198.18.1.2
	chk '.local' "10.0.1.2:$port"
	chk .behind_nat true
	chk .mapping "${want_map[$prof]}"
	chk .allocation "${want_alloc[$prof]}"
	chk .filtering "$filt"
	chk .nat_ttl 2
	chk '.hops[0].from' 10.0.1.1
	chk '.hops[1].from' 198.18.1.1
	chk '.samples | map(select(.kind == "alloc" and .mapped != null)) | length' 12
	case $prof in
	sequential|sequential-noise) chk .delta 1 ;;
	*) chk .delta null ;;
	esac
	[ "${next%%:*}" = 198.18.1.2 ] || fail "$prof/$filt run $n: whoami saw '$next'"
	np=${next##*:}
	case $prof in
	preserve)
		[ "$np" = "$port" ] || fail "$prof/$filt run $n: next flow got port $np, not the punch port $port"
		chk '.predicted | tostring' "[$port]" ;;
	sequential|sequential-noise)
		jq -e --argjson p "$np" '.predicted | index($p) != null' "$out" >/dev/null ||
			fail "$prof/$filt run $n: next flow's port $np outside the predicted window $(jq -c .predicted "$out")"
		window_checks=$((window_checks + 1)) ;;
	random)
		chk '.predicted | length' 0 ;;
	esac
	jq -e '.confidence >= 0 and .confidence <= 1' "$out" >/dev/null || fail "confidence out of range"
	runs_profile[$prof]=$(( ${runs_profile[$prof]:-0} + 1 ))
	runs_filter[$filt]=$(( ${runs_filter[$filt]:-0} + 1 ))
	total=$((total + 1))
}

start=$(date +%s)
for prof in preserve sequential sequential-noise random; do
	for filt in rst drop icmp; do
		L=$(unique_lab pr)
		lab_up "$L" --nat-a "$prof" --filter-a "$filt"
		for n in $(seq "$RUNS"); do
			start_rv "$L"
			t0=$(date +%s%N)
			one_run "$L" "$prof" "$filt" "$n"
			# Routers answer TTL-expired with ICMP at 1/s per destination (after a burst of 6):
			# keep runs at least a second apart so every run sees its hops.
			dt=$(( ($(date +%s%N) - t0) / 1000000 ))
			[ "$dt" -lt 1000 ] && sleep "0.$(printf '%03d' $((1000 - dt)))"
		done
		[ "$filt" = rst ] && {
			f=$TMP/plot-$prof.png; [ "$prof" = sequential-noise ] && f=$TMP/plot-$prof.svg
			[ -s "$f" ] || fail "--plot wrote nothing for $prof"
			case $f in
			*.png) [ "$(od -An -tx1 -N8 "$f" | tr -d ' ')" = 89504e470d0a1a0a ] || fail "$f is not a PNG" ;;
			*.svg) grep -q '<svg' "$f" || fail "$f is not an SVG" ;;
			esac
			mkdir -p "${PROBE_PLOT_DIR:-$TMP}" && cp "$f" "${PROBE_PLOT_DIR:-$TMP}/" 2>/dev/null || true
		}
		if [ "$prof/$filt" = preserve/rst ]; then
			start_rv "$L"
			# Without a server to probe back, filtering is unknown (and says why); --ttl-max 0 skips
			# nat_ttl; the readable summary names every field.
			tools/natlab exec "$L" a -- "$RP" probe --stun 198.18.3.2 --ttl-max 0 --samples 4 --json >"$TMP/alone.json" ||
				fail "probe without --rendezvous failed"
			jq -e '.filtering == "unknown" and (.filtering_error | length > 0) and .nat_ttl == null and
			       .allocation == "preserving" and (.hops | length == 0)' "$TMP/alone.json" >/dev/null ||
				fail "probe alone: $(jq -c 'del(.samples)' "$TMP/alone.json")"
			tools/natlab exec "$L" a -- "$RP" probe --stun 198.18.3.2 --rendezvous 198.18.3.2 -v >"$TMP/text" ||
				fail "probe (text) failed"
			for w in mapped mapping allocation predicted filtering nat_ttl test1 alloc; do
				grep -q "$w" "$TMP/text" || fail "summary lacks '$w': $(cat "$TMP/text")"
			done
			grep -q 'filtering   rst' "$TMP/text" || fail "summary: $(cat "$TMP/text")"
			ok "probe without a rendezvous server: filtering unknown, and the text summary"
		fi
		"$NATLAB" down "$L" >/dev/null
		RV_PID=""
		ok "$prof / $filt: $RUNS runs classified ($(jq -c '{mapping, allocation, delta, filtering, nat_ttl, confidence, n: (.predicted|length)}' "$TMP/last-$prof-$filt.json"))"
	done
done
for p in preserve sequential sequential-noise random; do echo "runs $p: ${runs_profile[$p]}"; done
for f in rst drop icmp; do echo "runs $f: ${runs_filter[$f]}"; done
ok "$total runs, $window_checks next-port checks inside the predicted window, $(( $(date +%s) - start )) s"
