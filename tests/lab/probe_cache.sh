#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The probe cache (rawpunch/punch/probecache.h) for the side that is not port-preserving: a punch with
# --fresh-probe probes in full and keeps the result; the next punch from the same network takes it
# after one round of STUN Bindings, counted at the STUN server (nft counters on s: Binding requests to
# port 3478 from each side's public address):
#   - sequential (b): two Bindings in flight together (the punch port's and a fresh port's), the
#     prediction moved on from them (b's port at the peer is one of its predictions), the punch
#     connects; preserving (a): one Binding;
#   - an entry the NAT no longer fits (its delta made 7: the fresh step of 1 is not a multiple) is
#     dropped: a full probe follows and the punch connects;
#   - random (b): one Binding, the classification kept, the punch connects.
# Before the cache kept sequential and random NATs, b sent every test and sample each time (10 Bindings).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash
for t in jq nft; do command -v "$t" >/dev/null || fail "$t missing (make deps)"; done
PUNCH_MIB=0
PUNCH_BYTES=4096

# STUN Binding requests (type 0x0001, the magic cookie) to the STUN port, both of s's addresses, by
# the source address: a counter per side (the pre-flight's connect to the server sends none)
count_setup() {
	tools/natlab exec "$LAB" s -- nft -f - <<'NFT'
table ip rptest_stun {
	chain in {
		type filter hook input priority -10; policy accept;
		ip saddr 198.18.1.2 tcp dport 3478 @ih,0,16 0x0001 @ih,32,32 0x2112a442 counter
		ip saddr 198.18.2.2 tcp dport 3478 @ih,0,16 0x0001 @ih,32,32 0x2112a442 counter
	}
}
NFT
}
# total SIDE: the Binding requests from SIDE's public address so far
total() {
	local addr=198.18.1.2
	[ "$1" = b ] && addr=198.18.2.2
	tools/natlab exec "$LAB" s -- nft -j list chain ip rptest_stun in |
		jq -r --arg a "$addr" '.nftables[] | select(.rule) | .rule | select(any(.expr[]; .match?.right == $a)) |
			.expr[] | select(.counter) | .counter.packets'
}
# count_reset, then count SIDE: the Binding requests from SIDE's public address since
count_reset() { BASE_A=$(total a); BASE_B=$(total b); }
count() {
	local base=$BASE_A
	[ "$1" = b ] && base=$BASE_B
	echo $(($(total "$1") - base))
}

# the cache file of b's network: b's address, its gateway and the gateway's MAC, the STUN server
b_entry() {
	local mac
	mac=$(tools/natlab exec "$LAB" rb -- cat /sys/class/net/eth0/address | tr -d ':\n')
	find /run/rawpunch -name "probe-0a000202-0a000201-$mac-c6120302-0d96.json" 2>/dev/null | head -n 1 || true
}

# cold TAG: a full probe on both sides (--fresh-probe), the result kept for b's network
cold() {
	local tag=$1 n
	count_reset
	punch_pair "$tag" --fresh-probe
	expect_pair_ok "$tag"
	n=$(count b)
	[ "$n" -ge 8 ] || fail "$tag: b's full probe sent only $n Binding requests (tests and samples)"
	[ -n "$(b_entry)" ] || fail "$tag: no cache entry for b's network"
}

# warm TAG NA NB: the cached result, NA and NB Bindings (a, b)
warm() {
	local tag=$1 na=$2 nb=$3 n
	count_reset
	punch_pair "$tag"
	expect_pair_ok "$tag"
	n=$(count a)
	[ "$n" = "$na" ] || fail "$tag: a (preserving, cached) sent $n Binding requests, want $na"
	n=$(count b)
	[ "$n" = "$nb" ] || fail "$tag: b (cached) sent $n Binding requests, want $nb"
}

punch_lab pcs --nat-a preserve --nat-b sequential
count_setup
cold seq0
warm seq1 1 2
[ "$(report_get seq1 b "r['self']['allocation']")" = sequential ] || fail "seq1: b is not sequential"
[ "$(report_get seq1 b "r['self']['delta']")" = 1 ] || fail "seq1: b's delta is not 1"
pb=$(report_get seq1 a "r['result']['remote'].split(':')[1]")
[ "$(report_get seq1 b "$pb in r['self']['predicted']")" = True ] || fail "seq1: b's port $pb was not predicted"
ok "sequential, warm: 2 Bindings (a: 1), b's port $pb was predicted, connected; probe $(report_get seq1 b "r['result']['probe_ms']") ms (cold $(report_get seq0 b "r['result']['probe_ms']") ms)"
summary seq1

# the NAT no longer fits the entry: a full probe, and the entry is written anew
f=$(b_entry)
jq -c '.natinfo.delta = 7' "$f" >"$T/entry" && cat "$T/entry" >"$f"
count_reset
punch_pair stale
expect_pair_ok stale
n=$(count b)
[ "$n" -ge 8 ] || fail "stale: b sent $n Binding requests: the entry that no longer fits was trusted"
[ "$(jq -r .natinfo.delta "$(b_entry)")" = 1 ] || fail "stale: the entry was not written anew"
ok "an entry the NAT no longer fits (delta 7): full probe ($n Binding requests), connected, the entry renewed"
no_leftovers

"$NATLAB" down "$LAB" >/dev/null
punch_lab pcr --nat-a preserve --nat-b random
count_setup
cold rnd0
warm rnd1 1 1
[ "$(report_get rnd1 b "r['self']['allocation']")" = random ] || fail "rnd1: b is not random"
ok "random, warm: 1 Binding each, connected; probe $(report_get rnd1 b "r['result']['probe_ms']") ms (cold $(report_get rnd0 b "r['result']['probe_ms']") ms)"
summary rnd1
no_leftovers
