#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch watch behind a NAT (tools/natlab): the low-TTL SYN that opens a mapping.
# From a (behind ra), tests/lab/craftpkt.py sends a SYN with TTL 2 ("nat_ttl") to b-public: it passes ra (mapping made)
# and expires at inet, whose ICMP time-exceeded comes back through ra. conntrack rewrites the quote, so
# 'rawpunch watch' in a must report router 198.18.1.1 and the inner tuple as a sent it (10.0.1.2:sport,
# TTL 1 left). Then a SYN with full TTL to s's whoami port draws a SYN-ACK through the NAT (TTL 62 after
# two routers). Also checks that --host narrows to one peer.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
RP=${RAWPUNCH:-${BUILD:-build}/rawpunch}
[ -x "$RP" ] || fail "$RP not built"
for t in python3 jq; do command -v "$t" >/dev/null || fail "$t missing (make deps)"; done

LAB=$(unique_lab wn)
TMP=$(mktemp -d /tmp/rp-watchnat.XXXXXX)
WPID=
lab_up "$LAB" --nat-a preserve --nat-b preserve
# lab_up owns the EXIT trap; chain ours in front of it
trap '[ -n "$WPID" ] && kill "$WPID" 2>/dev/null; rm -rf "$TMP"; _natlab_cleanup' EXIT

A=$(tools/natlab addr "$LAB" a)
BPUB=$(tools/natlab addr "$LAB" b-public)
S=$(tools/natlab addr "$LAB" s)
SPORT=41000

tools/natlab exec "$LAB" a -- "$RP" watch --json --port $SPORT --count 2 --timeout 20 >"$TMP/out" 2>"$TMP/err" &
WPID=$!
wait_line "$TMP/err" '^watch: listening' || fail "watch did not start: $(cat "$TMP/err")"

tools/natlab exec "$LAB" a -- python3 tests/lab/craftpkt.py "$BPUB" --sport $SPORT --dport 5000 --seq 111 --ttl 2
tools/natlab exec "$LAB" a -- python3 tests/lab/craftpkt.py "$S" --sport $SPORT --dport 7000 --seq 222
wait "$WPID" || fail "watch exited $?: $(cat "$TMP/err")"
WPID=
cat "$TMP/out"
[ "$(wc -l <"$TMP/out")" -eq 2 ] || fail "want 2 events, got $(wc -l <"$TMP/out")"

e=$(jq -c 'select(.kind == "icmp")' "$TMP/out")
jq -e --arg a "$A" --arg b "$BPUB" --argjson sp $SPORT '.type == 11 and .code == 0 and .router == "198.18.1.1"
	and .dst == $a and .inner.src == $a and .inner.sport == $sp and .inner.dst == $b
	and .inner.dport == 5000 and .inner.seq == 111 and .inner.ttl == 1' <<<"$e" >/dev/null ||
	fail "time-exceeded through the NAT: $e"
ok "TTL-2 SYN: time-exceeded from inet, quote rewritten by conntrack to a's own tuple, 1 TTL left"

e=$(jq -c 'select(.kind == "syn-ack")' "$TMP/out")
jq -e --arg a "$A" --arg s "$S" --argjson sp $SPORT '.src == $s and .sport == 7000 and .dst == $a
	and .dport == $sp and .ack == 223 and .ttl == 62' <<<"$e" >/dev/null || fail "syn-ack through the NAT: $e"
ok "SYN-ACK from s through the NAT, TTL 62 after two routers"

# --host narrows to one peer: the SYN-ACK from s is not reported when watching for b.
tools/natlab exec "$LAB" a -- "$RP" watch --json --host "$BPUB" --timeout 3 >"$TMP/out2" 2>"$TMP/err2" &
WPID=$!
wait_line "$TMP/err2" '^watch: listening' || :
tools/natlab exec "$LAB" a -- python3 tests/lab/craftpkt.py "$S" --sport $((SPORT + 1)) --dport 7000
tools/natlab exec "$LAB" a -- python3 tests/lab/craftpkt.py "$BPUB" --sport $((SPORT + 2)) --dport 5000 --ttl 2
wait "$WPID" || fail "watch --host exited $?"
WPID=
cat "$TMP/out2"
[ "$(wc -l <"$TMP/out2")" -eq 1 ] || fail "--host $BPUB: want only the time-exceeded, got $(cat "$TMP/out2")"
jq -e --argjson sp $((SPORT + 2)) '.kind == "icmp" and .inner.sport == $sp' "$TMP/out2" >/dev/null ||
	fail "--host: $(cat "$TMP/out2")"
ok "--host keeps ICMP errors about our segments to that host, drops other peers"
echo "PASS watch_nat"
