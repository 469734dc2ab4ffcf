# SPDX-License-Identifier: MIT
# tools/bench/lib.sh — what tools/bench/matrix and tools/bench/latency share (sourced, not run): a
# unique lab name, the rendezvous server on s, the pacing of attempts, and one attempt of each method
# with both peers launched at once in a and b. The caller sets RP, BL (binaries), TMO (seconds per
# peer), GAP (seconds between rawpunch attempts) and RV_PORT.

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

bench_lab_name() {   # bench_lab_name PREFIX IDX: a natlab name no other lab (or concurrent run) holds
	local p=$1 idx=$2 lab
	lab=$(printf '%s%02d%04d' "$p" $((idx % 100)) $(( (BASHPID * 31 + RANDOM) % 10000 )))
	while [ -e "/run/netns/rp$lab-a" ] || [ -d "/run/natlab/$lab" ]; do
		lab=$(printf '%s%06d' "$p" $(( (RANDOM * 32768 + RANDOM) % 1000000 )))
	done
	echo "$lab"
}

bench_rendezvous() {   # bench_rendezvous LAB DIR: the server on s (a child of the caller); 1 if it does not start
	local lab=$1 D=$2 i
	ip netns exec "rp$lab-s" "$RP" rendezvous --listen "198.18.3.2:$RV_PORT" -v >"$D/rendezvous.out" 2>"$D/rendezvous.err" &
	for i in $(seq 50); do grep -q "listening on" "$D/rendezvous.out" 2>/dev/null && break; sleep 0.1; done
	grep -q "listening on" "$D/rendezvous.out"
}

bench_warm() {   # bench_warm LAB: one TCP connection from a and from b to the rendezvous port on s
	# natlab's emulated internet links carry their delay for ARP too, so the first packets over each
	# would pay an extra round trip that a real path (ARP on the end LANs only) does not: the first
	# attempt of a cell is otherwise slower for the lab's sake, not rawpunch's
	local lab=$1 h
	for h in a b; do
		ip netns exec "rp$lab-$h" timeout 3 bash -c "exec 3<>/dev/tcp/198.18.3.2/$RV_PORT" 2>/dev/null || true
	done
}

bench_pace() {   # keep GAP seconds between attempts of one method in a cell (file holds the last start)
	local f=$1 last now wait
	last=$(cat "$f" 2>/dev/null || echo 0); now=$(now_ms)
	wait=$(awk -v g="$GAP" -v l="$last" -v n="$now" 'BEGIN{w = l + g * 1000 - n; printf "%.3f", (w > 0 ? w / 1000 : 0)}')
	[ "$wait" = 0.000 ] || sleep "$wait"
	now_ms >"$f"
}

rep_or_null() { if jq -e . "$1" >/dev/null 2>&1; then cat "$1"; else echo null; fi; }

# One rawpunch attempt: both peers at once, 256 random bytes each way through --stdio, reports in
# P-a.json / P-b.json, exit codes in P-a.rc / P-b.rc. Extra punch arguments: RP_ARGS (array).
# RP_HOLD=1: each side's input stays open after its 256 bytes until that side's punch has ended
# (its "punch: connected" status line, direct or through the relay, or an error), so that with --relay-first
# the stream is still there to move when the direct path comes up.
# 0 when both exit 0 and each received exactly what the other sent.
bench_rawpunch_pair() {
	local lab=$1 D=$2 P=$3 sess=$4 s
	head -c 256 /dev/urandom >"$P-a.in"; head -c 256 /dev/urandom >"$P-b.in"
	local -a pids=()
	for s in a b; do
		: >"$P-$s.err"
		( set +e; bench_input "$P-$s" | timeout -k 3 "$TMO" ip netns exec "rp$lab-$s" "$RP" punch \
			--rendezvous "198.18.3.2:$RV_PORT" --session "$sess" --secret-file "$D/secret" --timeout 20 --stdio \
			--report "$P-$s.json" "${RP_ARGS[@]}" >"$P-$s.out" 2>"$P-$s.err"
			echo "${PIPESTATUS[1]}" >"$P-$s.rc" ) &
		pids+=($!)
	done
	wait "${pids[@]}"   # not the rendezvous server, which is a child too
	[ "$(cat "$P-a.rc")" = 0 ] && [ "$(cat "$P-b.rc")" = 0 ] && cmp -s "$P-a.in" "$P-b.out" && cmp -s "$P-b.in" "$P-a.out"
}

bench_input() {   # bench_input P-SIDE: the side's 256 bytes, then (RP_HOLD=1) open until its punch ended
	cat "$1.in"
	[ "${RP_HOLD:-0}" = 1 ] || return 0
	local i
	for ((i = 0; i < TMO * 20; i++)); do
		grep -qE '^(punch: connected|rawpunch: )' "$1.err" 2>/dev/null && return 0
		sleep 0.05
	done
}

rp_why() {   # the first reason a failed rawpunch attempt gives
	local P=$1 rc_a=$2 rc_b=$3 s w
	for s in a b; do
		w=$(jq -r '.why // empty' "$P-$s.json" 2>/dev/null || true)
		[ -n "$w" ] && { echo "$s: $w"; return; }
	done
	for s in a b; do
		local rc; rc=$(cat "$P-$s.rc")
		[ "$rc" = 124 ] || [ "$rc" = 137 ] && { echo "$s: timed out after ${TMO} s"; return; }
		[ "$rc" != 0 ] && { echo "$s: exit $rc: $(grep -m1 'rawpunch:' "$P-$s.err" || tail -1 "$P-$s.err")"; return; }
	done
	cmp -s "$P-a.in" "$P-b.out" || { echo "b received $(stat -c %s "$P-b.out") bytes, not a's 256"; return; }
	echo "a received $(stat -c %s "$P-a.out") bytes, not b's 256"
}

# One baseline attempt (tools/rp-baseline.c): both sides at once, JSON lines in P-a.json / P-b.json.
# 0 when both exit 0.
bench_baseline_pair() {
	local lab=$1 P=$2 sess=$3 s
	local -a pids=()
	for s in a b; do
		local o=b; [ $s = b ] && o=a
		( set +e; timeout -k 3 "$TMO" ip netns exec "rp$lab-$s" "$BL" --me "$P-$s.addr" --peer "$P-$o.addr" \
			--session "$sess" >"$P-$s.json" 2>"$P-$s.err"; echo $? >"$P-$s.rc" ) &
		pids+=($!)
	done
	wait "${pids[@]}"
	[ "$(cat "$P-a.rc")" = 0 ] && [ "$(cat "$P-b.rc")" = 0 ]
}
