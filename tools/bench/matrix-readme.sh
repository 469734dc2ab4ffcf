#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/bench/matrix-readme.sh DIR... — compact markdown tables from tools/bench/matrix results.
#
# Reads DIR/results.jsonl of one or more matrix runs (a later DIR's cell replaces an earlier one's for
# the same method, pair, filter and link: e.g. a run with more attempts for some pairs) and prints one
# table per link setting: a row per NAT pair, for each filter "successes/attempts · median/p95 ms ·
# packets (median per attempt)" of rawpunch and of the baseline. Needs jq only.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR..." >&2; exit 2; }
for d in "$@"; do [ -s "$d/results.jsonl" ] || { echo "matrix-readme: no $d/results.jsonl (run tools/bench/matrix --summary-only --out $d)" >&2; exit 1; }; done
command -v jq >/dev/null || { echo "matrix-readme: jq not found" >&2; exit 1; }

for d in "$@"; do cat "$d/results.jsonl"; done | jq -rs '
	def key: "\(.method)|\(.nat_a)|\(.nat_b)|\(.filter)|\(.rtt_ms)";
	def rank(p): {"preserve": 0, "sequential": 1, "sequential-noise": 2, "random": 3, "block": 4, "block-seq": 5,
		"sequential:2": 6, "address-dependent": 7, "preserve+cgn:random": 8, "preserve+cgn:block": 9}[p] // 99;
	def cellstr:
		if . == null then "–"
		else "\(.successes)/\(.attempts)" +
			(if .successes > 0 then " · \(.median_ms | round)/\(.p95_ms | round) ms" else "" end) +
			" · \(.packets | if . == null then "?" else (. | round) end) pk"
		end;
	(reduce .[] as $r ({}; .[$r | key] = $r)) as $m |
	([.[] | .rtt_ms] | unique) as $links |
	([.[] | .filter] | unique | sort_by(if . == "rst" then 0 elif . == "drop" then 1 else 2 end)) as $filters |
	([.[] | [.nat_a, .nat_b]] | unique | sort_by([rank(.[0]), rank(.[1])])) as $pairs |
	$links[] as $l |
	"**" + (if $l == 0 then "No added delay or loss" else "RTT \($l) ms between a and b, 1 % loss each way" end) + "**\n",
	"| NAT a × NAT b | " + ([$filters[] | "\(.): rawpunch | \(.): baseline"] | join(" | ")) + " |",
	"|---|" + ([$filters[] | "---:|---:"] | join("|")) + "|",
	($pairs[] as $p |
		"| \($p[0]) × \($p[1]) | " +
		([$filters[] as $f | ["rawpunch", "baseline"][] as $meth |
			$m["\($meth)|\($p[0])|\($p[1])|\($f)|\($l)"] | cellstr] | join(" | ")) + " |"),
	""'
