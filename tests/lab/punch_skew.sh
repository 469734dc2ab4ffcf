#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# punch_skew: the simultaneous open's early SYN when the peers' clocks disagree by more than the estimate.
#
# The peers sync their clocks with the rendezvous server on s (minimum-RTT NTP-style samples); the offset
# is wrong by half the path's asymmetry, which the samples cannot see. natlab --skew-b 300 makes the way
# from s to b 300 ms longer than the way back (only there: a <-> b is unchanged), so b believes the
# server's clock 150 ms behind and acts 150 ms late, while the estimate's uncertainty (clock_err_ms)
# stays ~25 ms. With --delay 50 (one way 50 ms between any two internet hosts):
#   a primes at T, sends its first full SYN at T + early_ms (~32); it reaches rb at ~T+82, before b's
#   prime (~T+150), and rb (filter rst) answers with a RST. That RST, the only reply, deletes a's own
#   conntrack entry at ra: b's SYN (~T+182, at ra ~T+232) would meet no mapping, and both sides would
#   keep drawing resets. The executor primes again on that RST (rp_punch_reprime: "primed again"), so
#   b's SYN passes ra and the round connects.
# Checks, over 10 punches in that lab: every one connects in round 1 with the data intact both ways (a
# handoff), b's offset is ~150 ms off and a's is not, the plan sent early (start_ms < again_ms), and
# the re-prime shows (a's round sent more than one prime after a RST from b's NAT) in at least half of
# them. The same lab with both filters drop connects in round 1 with no prime and no RST (the early
# SYN is dropped silently); an unskewed lab at the same delay connects in round 1 without a re-prime
# (the control: the re-primes above come from the skew). Prints the median T-to-established (the
# round's established_ms, each side from its own T) of the skewed and the unskewed lab.
# Last, an asymmetry on b's own link (--delay-down-b 100: b's clock 50 ms off too) draws no RST at all:
# a's SYN to b crosses the same slow link, so it reaches rb after b's late prime (the disagreement
# between two clocks synced over shared links is at most half the asymmetry of the a <-> b path, less
# than its one-way delay). Only a skew on the server's path alone, as above, makes the early SYN early.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash
PUNCH_BYTES=${PUNCH_BYTES:-262144}
N=${SKEW_RUNS:-10}
[[ $N =~ ^[1-9][0-9]*$ ]] || fail "SKEW_RUNS: a count of punches (1..), got '$N'"
SKEW=300 DELAY=50

# stats TAG: one line of a pair's report fields, "key=value ..." (a's and b's)
stats() {
	python3 - "$T/$1-a.json" "$T/$1-b.json" "$T/$1-a.err" <<-'EOF'
	import json, sys
	a, b = (json.load(open(f)) for f in sys.argv[1:3])
	reprime = sum("primed again" in l for l in open(sys.argv[3]))
	out = {}
	for n, r in (("a", a), ("b", b)):
	    rd = r["rounds"][0] if r["rounds"] else {}
	    sp = r["plan"]["sides"][0 if n == "a" else 1] if r.get("plan") else {}
	    out.update({
	        n + "_rounds": len(r["rounds"]), n + "_est": rd.get("established"),
	        n + "_ms": rd.get("established_ms"), n + "_primes": rd.get("sent", {}).get("primes"),
	        n + "_rst": rd.get("seen", {}).get("rst"), n + "_offset": r["rendezvous"]["offset_ms"],
	        n + "_err": r["rendezvous"]["clock_err_ms"], n + "_start": sp.get("start_ms"),
	        n + "_again": sp.get("again_ms")})
	out["a_reprime_lines"] = reprime
	# every field this test reads must be there: a missing one would read as 0 in awk and pass (a plan
	# side's start_ms/again_ms only where it primes or waits: the skew series checks those itself,
	# and "none" fails its comparison)
	missing = [k for k, v in out.items() if v is None and not k.endswith(("_start", "_again"))]
	if missing:
	    sys.exit("report fields missing: " + ", ".join(missing))
	print(" ".join("%s=%s" % (k, "none" if v is None else v) for k, v in out.items()))
	EOF
}
val() { local k; for k in $1; do case $k in "$2="*) echo "${k#*=}"; return ;; esac; done; echo "?"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# series NAME N: N punches in the lab that is up; each must connect in round 1 with the data intact.
# Leaves one stats line per punch in $T/NAME.stats.
series() {
	local name=$1 n=$2 i tag s
	: >"$T/$name.stats"
	for ((i = 1; i <= n; i++)); do
		tag=$name$i
		punch_pair "$tag" -v
		expect_pair_ok "$tag"
		s=$(stats "$tag") || fail "$tag: the reports lack a field the test reads"
		echo "   $tag: $s"
		[ "$(val "$s" a_rounds)" = 1 ] && [ "$(val "$s" b_rounds)" = 1 ] ||
			fail "$tag: not connected in round 1 (a $(val "$s" a_rounds), b $(val "$s" b_rounds) rounds)"
		echo "$s" >>"$T/$name.stats"
		no_leftovers
	done
}
# col NAME KEY: that field of every punch of the series
col() { local l; while read -r l; do val "$l" "$2"; done <"$T/$1.stats"; }
awk_all() { awk -v SKEW="$SKEW" "$2" < <(col "$1" "$3"); }   # awk_all NAME PROGRAM KEY: PROGRAM over one column (SKEW set)

# --- the skewed lab, both NATs resetting -------------------------------------------------------------
punch_lab sk --filter-a rst --filter-b rst --delay $DELAY --skew-b $SKEW
series skew "$N"
# the clocks: b's estimate is ~SKEW/2 off (it believes the server behind it), a's is right, and the
# uncertainty the plan sees is small: the estimate cannot see the asymmetry
awk_all skew '{ if ($1 > -SKEW / 2 + 25 || $1 < -SKEW / 2 - 25) bad++ } END { exit bad > 0 }' b_offset ||
	fail "skew: b's offset_ms is not about -$((SKEW / 2)): $(col skew b_offset | tr '\n' ' ')"
awk_all skew '{ if ($1 > 10 || $1 < -10) bad++ } END { exit bad > 0 }' a_offset ||
	fail "skew: a's offset_ms is not about 0: $(col skew a_offset | tr '\n' ' ')"
awk_all skew '{ if ($1 >= 50) bad++ } END { exit bad > 0 }' a_err ||
	fail "skew: clock_err_ms not below 50: $(col skew a_err | tr '\n' ' ')"
# the plan: both first SYNs on the estimate, again at the bound
for side in a b; do
	[ "$(paste -d' ' <(col skew ${side}_start) <(col skew ${side}_again) | awk '$1 < 60 && $2 > $1 + 100 { n++ } END { print n + 0 }')" = "$N" ] ||
		fail "skew: $side's plan did not send early: start_ms $(col skew ${side}_start | tr '\n' ' ') again_ms $(col skew ${side}_again | tr '\n' ' ')"
done
# the re-prime: a's early SYN drew a RST from rb, and a primed again at once
reprimed=$(paste -d' ' <(col skew a_primes) <(col skew a_rst) <(col skew a_reprime_lines) | awk '$1 > 1 && $2 >= 1 && $3 >= 1 { n++ } END { print n + 0 }')
[ "$reprimed" -ge $(( (N + 1) / 2 )) ] ||
	fail "skew: a primed again (a RST from b's NAT, primes > 1, 'primed again') in $reprimed of $N punches; primes $(col skew a_primes | tr '\n' ' ')"
ok "skew-b $SKEW ms, delay $DELAY ms, rst x rst: $N of $N in round 1, data intact; b's offset $(col skew b_offset | median) ms (median), clock_err $(col skew a_err | median) ms; a re-primed after a RST in $reprimed of $N"
skew_a=$(col skew a_ms | median) skew_b=$(col skew b_ms | median)
"$NATLAB" down "$LAB" >/dev/null

# --- the same skew, both NATs dropping: the early SYN is dropped silently, nothing to repair ----------
punch_lab sd --filter-a drop --filter-b drop --delay $DELAY --skew-b $SKEW
series drop 3
[ "$(paste -d' ' <(col drop a_primes) <(col drop b_primes) <(col drop a_rst) <(col drop b_rst) | awk '$1 + $2 + $3 + $4 == 0 { n++ } END { print n + 0 }')" = 3 ] ||
	fail "drop: primes or RSTs where none belong: a_primes $(col drop a_primes | tr '\n' ' ') a_rst $(col drop a_rst | tr '\n' ' ')"
ok "skew-b $SKEW ms, drop x drop: 3 of 3 in round 1, no prime, no RST; established after T: a $(col drop a_ms | median) ms, b $(col drop b_ms | median) ms (median)"
"$NATLAB" down "$LAB" >/dev/null

# --- the control: no skew, same delay, both resetting: round 1 without a re-prime -------------------
punch_lab su --filter-a rst --filter-b rst --delay $DELAY
series flat "$N"
[ "$(paste -d' ' <(col flat a_primes) <(col flat b_primes) | awk '$1 == 1 && $2 == 1 { n++ } END { print n + 0 }')" = "$N" ] ||
	fail "unskewed: a re-prime without skew: a_primes $(col flat a_primes | tr '\n' ' ') b_primes $(col flat b_primes | tr '\n' ' ')"
ok "unskewed, delay $DELAY ms, rst x rst: $N of $N in round 1, one prime a side"
echo "T-to-established (round 1 established_ms, median of $N; each side from its own T):"
echo "   skewed (b $((SKEW / 2)) ms late): a $skew_a ms, b $skew_b ms"
echo "   unskewed:                 a $(col flat a_ms | median) ms, b $(col flat b_ms | median) ms"
"$NATLAB" down "$LAB" >/dev/null

# --- the asymmetry on b's own link: b's clock is off, and still no RST --------------------------------
punch_lab sl --filter-a rst --filter-b rst --delay $DELAY --delay-down-b 100
series link 3
awk_all link '{ if ($1 > -35 || $1 < -65) bad++ } END { exit bad > 0 }' b_offset ||
	fail "delay-down-b 100: b's offset_ms is not about -50: $(col link b_offset | tr '\n' ' ')"
[ "$(paste -d' ' <(col link a_primes) <(col link b_primes) <(col link a_rst) <(col link b_rst) | awk '$1 == 1 && $2 == 1 && $3 + $4 == 0 { n++ } END { print n + 0 }')" = 3 ] ||
	fail "delay-down-b 100: a RST or a re-prime: a_rst $(col link a_rst | tr '\n' ' ') a_primes $(col link a_primes | tr '\n' ' ')"
ok "delay-down-b 100 ms: b's offset $(col link b_offset | median) ms, 3 of 3 in round 1 with no RST and one prime a side"
