#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rawpunch punch: mistakes caught before a packet leaves, and a peer told at once when a side fails after
# the meeting. b runs an ordinary punch each time; a gets one bad input:
#   - --pcap in a directory that does not exist, --report likewise: exit 2;
#   - run as nobody without CAP_NET_RAW/CAP_NET_ADMIN (setpriv): exit 2, the missing capabilities named;
#   - --local-port taken by a listener: exit 2;
#   - an unreachable --rendezvous, an unreachable --stun: exit 1, the server named (probe --rendezvous
#     too, before its first sample);
# and nft counters in a's NAT router ra (prerouting, before anything else sees them) show that no TCP SYN
# left a, none with a low TTL, nothing towards b (for the unreachable servers: only the pre-flight's one
# connection attempt to each server); counters in rb show that b never sent a punch SYN to a's NAT.
# Then both meet with a long --lead and a gets SIGTERM while it waits for T: b ends within 1 s with
# "rawpunch: punch: the peer gave up: interrupted", and neither sent a punch SYN.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

punch_lab pk --nat-a sequential --nat-b preserve
# nobody must read a's secret (setpriv below: without the pre-flight it would get as far as the meeting);
# b reads the same bytes
NB=$(mktemp -d /tmp/rp-precheck-nobody.XXXXXX)
LPID=
trap '[ -n "$LPID" ] && kill "$LPID" 2>/dev/null; rm -rf "$NB"; _punch_cleanup' EXIT
chmod 755 "$NB"
cp "$T/secret" "$NB/secret"
chown -R nobody "$NB"

# counters: every IPv4 packet from the host, its TCP SYNs, those with a TTL below the kernel's 64 (the
# probe's TTL search, the punch's primes), those to the other side's NAT, and SYNs to each server port
counters() {   # counters ROUTER HOSTADDR PEERNET: (re)made empty
	local ns="rp$LAB-$1"
	ip netns exec "$ns" nft delete table inet rpchk 2>/dev/null || true
	ip netns exec "$ns" nft -f - <<-EOF
	table inet rpchk {
		counter c_all {}
		counter c_syn {}
		counter c_lowttl {}
		counter c_topeer {}
		counter c_rv {}
		counter c_badrv {}
		counter c_stun {}
		counter c_badstun {}
		chain pre {
			type filter hook prerouting priority -400;
			ip saddr $2 counter name c_all
			ip saddr $2 tcp flags & (syn | ack) == syn counter name c_syn
			ip saddr $2 ip ttl < 64 counter name c_lowttl
			ip saddr $2 ip daddr $3 counter name c_topeer
			ip saddr $2 ip daddr 198.18.3.2 tcp dport 7777 tcp flags & (syn | ack) == syn counter name c_rv
			ip saddr $2 ip daddr 198.18.3.2 tcp dport 7778 tcp flags & (syn | ack) == syn counter name c_badrv
			ip saddr $2 ip daddr 198.18.3.2 tcp dport 3478 tcp flags & (syn | ack) == syn counter name c_stun
			ip saddr $2 ip daddr 198.18.3.2 tcp dport 3999 tcp flags & (syn | ack) == syn counter name c_badstun
		}
	}
	EOF
}
count() {   # count ROUTER NAME: packets so far
	ip netns exec "rp$LAB-$1" nft list counter inet rpchk "c_$2" | sed -n 's/.*packets \([0-9]*\).*/\1/p'
}
expect_count() {   # expect_count TAG ROUTER NAME WANT
	local n; n=$(count "$2" "$3")
	[ "$n" = "$4" ] || fail "$1: counter $3 at $2 is $n packets, want $4 (a: $(cat "$T/$1-a.err"))"
}

P=(punch --secret-file "$T/secret" --stdio --timeout 4)
# one case: b punches (its join times out: a never comes), a runs with its bad input
bad_case() {   # bad_case TAG WANT_RC MESSAGE-RE A-COMMAND...
	local tag=$1 want=$2 re=$3; shift 3
	counters ra 10.0.1.2 198.18.2.0/24
	counters rb 10.0.2.2 198.18.1.0/24
	ip netns exec "rp$LAB-b" "$RP" "${P[@]}" --rendezvous 198.18.3.2 --session "$tag" </dev/null >/dev/null \
		2>"$T/$tag-b.err" &
	local pb=$! rc=0
	sleep 0.2
	"$@" --session "$tag" </dev/null >"$T/$tag-a.out" 2>"$T/$tag-a.err" || rc=$?
	[ "$rc" = "$want" ] || fail "$tag: a exited $rc, want $want: $(cat "$T/$tag-a.err")"
	grep -q -- "$re" "$T/$tag-a.err" || fail "$tag: a did not say '$re': $(cat "$T/$tag-a.err")"
	rc=0; wait "$pb" || rc=$?
	[ "$rc" = 1 ] || fail "$tag: b exited $rc: $(cat "$T/$tag-b.err")"
	grep -q "no peer joined session '$tag'" "$T/$tag-b.err" || fail "$tag: b: $(cat "$T/$tag-b.err")"
	expect_count "$tag" ra lowttl 0
	expect_count "$tag" ra topeer 0
	expect_count "$tag" rb topeer 0     # b: not one SYN (or anything) towards a's NAT
}
A=(ip netns exec "rp$LAB-a" "$RP")
nothing_sent() {   # nothing_sent TAG: a sent no packet at all
	expect_count "$1" ra all 0
	ok "$1: a exited with '$(grep -m1 '^rawpunch' "$T/$1-a.err")'; no packet left a; b sent nothing towards a"
}

bad_case pcap 2 "^rawpunch punch: --pcap /nonexistent/x.pcap: no such directory" \
	"${A[@]}" "${P[@]}" --rendezvous 198.18.3.2 --pcap /nonexistent/x.pcap
nothing_sent pcap
bad_case report 2 "^rawpunch punch: --report $T/nodir/x.json: no such directory" \
	"${A[@]}" "${P[@]}" --rendezvous 198.18.3.2 --report "$T/nodir/x.json"
nothing_sent report
bad_case privs 2 "^rawpunch punch: missing CAP_NET_RAW and CAP_NET_ADMIN" \
	ip netns exec "rp$LAB-a" setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
	"$RP" punch --secret-file "$NB/secret" --stdio --timeout 4 --rendezvous 198.18.3.2
grep -q "^hint: .*setcap cap_net_raw,cap_net_admin+ep" "$T/privs-a.err" || fail "privs: no setcap hint: $(cat "$T/privs-a.err")"
nothing_sent privs

ip netns exec "rp$LAB-a" socat TCP-LISTEN:40000,bind=10.0.1.2,reuseaddr - </dev/null >/dev/null 2>&1 &
LPID=$!
for i in $(seq 50); do ip netns exec "rp$LAB-a" ss -Hltn 'sport = :40000' | grep -q . && break; sleep 0.1; done
bad_case port 2 "^rawpunch punch: --local-port 40000: in use" \
	"${A[@]}" "${P[@]}" --rendezvous 198.18.3.2 --local-port 40000
kill "$LPID"; wait "$LPID" 2>/dev/null || true; LPID=
nothing_sent port

# an unreachable server: the pre-flight's connection attempts (one SYN to each server, at once) and
# nothing else: no probe, no low-TTL SYN, no rendezvous for the right server
bad_case rv 1 "^rawpunch: rendezvous 198.18.3.2:7778: Connection refused" \
	"${A[@]}" "${P[@]}" --rendezvous 198.18.3.2:7778 --stun 198.18.3.2:3478
expect_count rv ra badrv 1
expect_count rv ra syn "$(( $(count ra badrv) + $(count ra stun) ))"
expect_count rv ra stun 1
ok "rv: a exited 1 with '$(grep -m1 '^rawpunch' "$T/rv-a.err")'; only the pre-flight's SYNs left a (rendezvous 1, STUN 1); b sent nothing towards a"
bad_case stun 1 "^rawpunch: STUN 198.18.3.2:3999: Connection refused" \
	"${A[@]}" "${P[@]}" --rendezvous 198.18.3.2 --stun 198.18.3.2:3999
expect_count stun ra badstun 1
expect_count stun ra syn "$(( $(count ra badstun) + $(count ra rv) ))"
expect_count stun ra rv 1
ok "stun: a exited 1 with '$(grep -m1 '^rawpunch' "$T/stun-a.err")'; only the pre-flight's SYNs left a (STUN 1, rendezvous 1); b sent nothing towards a"

# probe: a mistyped --rendezvous is named before the first sample (it used to pass for a foreign flow
# among the samples of the sequential NAT, and show only as 'filtering unknown (Connection refused)')
counters ra 10.0.1.2 198.18.2.0/24
rc=0
"${A[@]}" probe --stun 198.18.3.2 --rendezvous 198.18.3.2:7778 >"$T/probe-a.out" 2>"$T/probe-a.err" || rc=$?
[ "$rc" = 1 ] || fail "probe: exited $rc, want 1: $(cat "$T/probe-a.err" "$T/probe-a.out")"
grep -q "^rawpunch: probe: rendezvous 198.18.3.2:7778: Connection refused$" "$T/probe-a.err" ||
	fail "probe: did not name the rendezvous server: $(cat "$T/probe-a.err")"
expect_count probe ra lowttl 0
expect_count probe ra badrv 1
expect_count probe ra stun 1
expect_count probe ra syn 2
ok "probe: exited 1 with '$(grep -m1 '^rawpunch' "$T/probe-a.err")'; no sample, only the pre-flight's SYNs (rendezvous 1, STUN 1)"

# ---- after the meeting: a is interrupted while both wait for T; b stops within a second ----------------
counters ra 10.0.1.2 198.18.2.0/24
counters rb 10.0.2.2 198.18.1.0/24
ip netns exec "rp$LAB-b" "$RP" "${P[@]}" --rendezvous 198.18.3.2 --session term --lead 8000 </dev/null >/dev/null \
	2>"$T/term-b.err" &
PB=$!
ip netns exec "rp$LAB-a" "$RP" "${P[@]}" --rendezvous 198.18.3.2 --session term --lead 8000 </dev/null >/dev/null \
	2>"$T/term-a.err" &
PA=$!
wait_line "$T/term-a.err" '^punch: strategy ' 10 || fail "term: a did not reach its plan: $(cat "$T/term-a.err")"
wait_line "$T/term-b.err" '^punch: strategy ' 5 || fail "term: b did not reach its plan: $(cat "$T/term-b.err")"
sleep 0.5   # both set up, waiting for T (8 s after the meeting)
t0=$(date +%s%N)
kill -TERM "$PA"
rc=0; wait "$PB" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rca=0; wait "$PA" || rca=$?
[ "$rca" = 143 ] || fail "term: a exited $rca, want 143 (SIGTERM): $(cat "$T/term-a.err")"
[ "$rc" = 1 ] || fail "term: b exited $rc, want 1: $(cat "$T/term-b.err")"
[ "$ms" -le 1000 ] || fail "term: b ended $ms ms after a's SIGTERM, want within 1000 ms"
grep -q "^rawpunch: punch: the peer gave up: interrupted$" "$T/term-b.err" || fail "term: b did not give a's reason: $(cat "$T/term-b.err")"
for r in ra rb; do
	expect_count term "$r" topeer 0   # the punch never began: no SYN towards the other NAT
done
no_leftovers
ok "term: a got SIGTERM after the meeting (exit 143); b ended $ms ms later (exit 1) with '$(grep -m1 '^rawpunch' "$T/term-b.err")'; no punch SYN either way"
