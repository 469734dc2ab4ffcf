#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Rendezvous server on s, peers in a and b (both NATed), in the NAT lab:
#   - filter probe of the requester's own public address: rst (lab 1, a), drop (lab 1, b: as soon as the
#     server's connect timeout has run out), icmp (lab 2, a);
#     the per-client rate limit refuses a burst of probes;
#   - two peers with the same session and secret get each other's natinfo and candidates, opposite
#     roles and the same start time; both fire within a few ms of each other, also in a lab with 20 ms
#     (+-4 ms) per internet hop, where the relay RTT is ~80 ms (within 12 ms there);
#   - a wrong secret cannot join (no pairing: both time out); a forger holding the session id but not
#     the key is refused by the real peer (and the real peer by it) once the join's time is up (its
#     boxes are skipped, not fatal: rendezvous_squat); a fifth member of one id gets "full";
#   - random, oversized and malformed frames get an error frame and the server lives on;
#   - idle connections are closed and unpaired sessions expire;
#   - 200 sessions at once all pair correctly and exchange one more sealed round (tools/rv-load; they
#     come from one address, so that server runs with --max-per-addr 512);
#   - a requester the server sees at its own address is not filter-probed ("forbidden");
#   - SIGTERM: clean exit 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
B=${BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
RP=${RAWPUNCH:-$B/rawpunch}
LOAD=$B/rv-load
[ -x "$RP" ] || fail "$RP not built (make)"
[ -x "$LOAD" ] || fail "$LOAD not built (make)"
L=$(unique_lab rv)
L2=$(unique_lab rvi)
lab_up "$L" --filter-a rst --filter-b drop
lab_up "$L2" --filter-a icmp --delay 20 --jitter 4
T=$(mktemp -d /tmp/rv-basic.XXXXXX)
trap '_natlab_cleanup; rm -rf "$T"' EXIT     # after lab_up, which sets its own trap
SRV=198.18.3.2:7777
X() { local lab=$1 h=$2; shift 2; tools/natlab exec "$lab" "$h" -- "$@"; }

start_server() {   # start_server LAB [OPTS...]: rendezvous on s, wait for its startup line
	local lab=$1; shift
	# ip netns exec execs in place: $! is the server itself (for the SIGTERM check)
	ip netns exec "rp$lab-s" "$RP" rendezvous --listen "$SRV" "$@" -v >"$T/srv-$lab.out" 2>"$T/srv-$lab.err" &
	echo $! >"$T/srv-$lab.pid"
	wait_line "$T/srv-$lab.out" "listening on $SRV" && return 0
	cat "$T/srv-$lab.err" >&2
	fail "server did not start in lab $lab"
}
alive() { kill -0 "$(cat "$T/srv-$L.pid")" 2>/dev/null || fail "server died ($*)"; }
# frame BODY: 4-byte big-endian length + body on stdout
frame() { local n=${#1}; printf "\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))%s" "$1"; }

start_server "$L" --idle-timeout 20 --max-per-addr 512
start_server "$L2" --idle-timeout 3 --session-ttl 3

# ---- filter probe: the server connects back to the requester's public address
r=$(X "$L" a "$RP" rendezvous --filter-probe "$SRV" --port 5555) || fail "filter probe from a"
[ "$r" = rst ] || fail "filter probe, a behind an rst NAT: got '$r'"
# "drop" is the server's connect timeout running out: its verdict comes then, not at the next 100 ms
# sweep (it came 0..200 ms late; three probes all within 60 ms of it)
for i in 1 2 3; do
	t0=$(date +%s%N)
	r=$(X "$L" b "$RP" rendezvous --filter-probe "$SRV" --port 5555 --timeout-ms 300) || fail "filter probe from b"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$r" = drop ] || fail "filter probe, b behind a drop NAT: got '$r'"
	[ "$ms" -lt 360 ] || fail "filter probe, b behind a drop NAT: 'drop' after $ms ms for a 300 ms timeout"
done
r=$(X "$L2" a "$RP" rendezvous --filter-probe "$SRV" --port 5555) || fail "filter probe from a (lab 2)"
[ "$r" = icmp ] || fail "filter probe, a behind an icmp NAT: got '$r'"
grep -q "fprobe 198.18.1.2:[0-9]* port 5555: rst" "$T/srv-$L.err" || fail "server did not probe a's own public address"
ok "filter probe: rst, drop, icmp"
set +e
X "$L" s "$RP" rendezvous --filter-probe "$SRV" --port 5555 >"$T/own.out" 2>"$T/own.err"
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "refuses to probe" "$T/own.err" || fail "probe of the server's own address: exit $rc, $(cat "$T/own.err")"
grep -q "error 198.18.3.2:[0-9]* forbidden" "$T/srv-$L.err" || fail "server did not log the forbidden probe"
grep -q "fprobe 198.18.3.2" "$T/srv-$L.err" && fail "server probed its own address"
ok "filter probe of the server's own address: forbidden"
limited=0
for _ in $(seq 10); do
	X "$L" a "$RP" rendezvous --filter-probe "$SRV" --port 5556 >/dev/null 2>"$T/rate.err" || {
		grep -q "rate limit" "$T/rate.err" || fail "filter probe failed for another reason: $(cat "$T/rate.err")"
		limited=$((limited + 1)); }
done
[ "$limited" -ge 2 ] || fail "11 probes in a row from one address: only $limited refused by the rate limit"
ok "filter-probe rate limit refused $limited of 10"

# ---- two peers meet
head -c 32 /dev/urandom | base64 >"$T/secret"
head -c 32 /dev/urandom | base64 >"$T/wrong"
cat >"$T/ni-a.json" <<'J'
{"local":"10.0.1.2:40001","mapped":"198.18.1.2:40001","behind_nat":true,"mapping":"endpoint-independent","allocation":"preserving","delta":null,"jitter":0.0,"predicted":[],"confidence":0.0,"filtering":"rst","nat_ttl":2}
J
cat >"$T/ni-b.json" <<'J'
{"local":"10.0.2.2:40002","mapped":"198.18.2.2:20017","behind_nat":true,"mapping":"address-and-port-dependent","allocation":"sequential","delta":1,"jitter":0.5,"predicted":[20018,20019],"confidence":0.8,"filtering":"drop","nat_ttl":2}
J
X "$L" a "$RP" rendezvous --join "$SRV" --session lab-meet --secret-file "$T/secret" --natinfo "$T/ni-a.json" \
	--cand 40010-40012 --wait-start --timeout 10 >"$T/a.json" 2>"$T/a.err" &
pa=$!
X "$L" b "$RP" rendezvous --join "$SRV" --session lab-meet --secret-file "$T/secret" --natinfo "$T/ni-b.json" \
	--wait-start --timeout 10 >"$T/b.json" 2>"$T/b.err" || fail "b's join: $(cat "$T/b.err")"
wait $pa || fail "a's join: $(cat "$T/a.err")"
field() { grep -o "\"$2\":[^,}]*" "$1" | head -n1 | cut -d: -f2-; }
grep -q '"mapped":"198.18.2.2:20017"' "$T/a.json" || fail "a did not get b's natinfo: $(cat "$T/a.json")"
grep -q '"predicted":\[20018,20019\]' "$T/a.json" || fail "a lost b's predictions"
grep -q '"mapped":"198.18.1.2:40001"' "$T/b.json" || fail "b did not get a's natinfo: $(cat "$T/b.json")"
grep -q '"peer_cand":\[40010,40011,40012\]' "$T/b.json" || fail "b did not get a's candidates"
[ "$(field "$T/a.json" start_server_ns)" = "$(field "$T/b.json" start_server_ns)" ] || fail "start times differ"
[ "$(field "$T/a.json" initiator)" != "$(field "$T/b.json" initiator)" ] || fail "both peers got the same role"
fa=$(field "$T/a.json" fired_ns) fb=$(field "$T/b.json" fired_ns)
d=$(( fa > fb ? fa - fb : fb - fa ))
# the lab's namespaces share one clock: the difference is what the agreed start + wake-up jitter gives
[ "$d" -lt 5000000 ] || fail "peers fired $d ns apart"
ok "peers met: natinfo, candidates, roles, same start; fired $((d / 1000)) us apart, relay RTT $(( $(field "$T/a.json" relay_rtt_ns) / 1000 )) us"

# the same with delay and jitter (lab 2): the start agreement must not degrade to RTT/2
X "$L2" a "$RP" rendezvous --join "$SRV" --session lab-delay --secret-file "$T/secret" --wait-start --timeout 10 \
	>"$T/da.json" 2>"$T/da.err" &
pa=$!
X "$L2" b "$RP" rendezvous --join "$SRV" --session lab-delay --secret-file "$T/secret" --wait-start --timeout 10 \
	>"$T/db.json" 2>"$T/db.err" || fail "b's join (delay): $(cat "$T/db.err")"
wait $pa || fail "a's join (delay): $(cat "$T/da.err")"
fa=$(field "$T/da.json" fired_ns) fb=$(field "$T/db.json" fired_ns) relay=$(field "$T/da.json" relay_rtt_ns)
d=$(( fa > fb ? fa - fb : fb - fa ))
[ "$relay" -gt 60000000 ] || fail "relay RTT $relay ns with 20 ms per hop?"
# (jitter makes the two legs of a clock sample unequal: up to 4 ms of offset error per side; RTT/2 is 40 ms)
[ "$d" -lt 12000000 ] || fail "with delay: peers fired $d ns apart (relay RTT $relay ns)"
ok "with 20+-4 ms per hop: fired $((d / 1000)) us apart, relay RTT $((relay / 1000000)) ms"

# ---- secrets: 'rawpunch secret' makes a good one (0600, never overwritten); a short or low-entropy
# secret is refused with exit 2 before anything is sent (the server sees no connection)
"$RP" secret "$T/made" || fail "rawpunch secret failed"
[ "$(stat -c %a "$T/made")" = 600 ] || fail "rawpunch secret: mode $(stat -c %a "$T/made"), want 600"
[ "$(wc -c <"$T/made")" -ge 40 ] || fail "rawpunch secret: $(wc -c <"$T/made") bytes"
cp "$T/made" "$T/made.orig"
rc=0; "$RP" secret "$T/made" 2>/dev/null || rc=$?
[ "$rc" = 2 ] && cmp -s "$T/made" "$T/made.orig" || fail "rawpunch secret overwrote an existing file (exit $rc)"
printf 'password12345678\n' >"$T/weak"
printf 'abcd' >"$T/short"
n0=$(grep -c ' accept ' "$T/srv-$L.err" || true)
for w in weak short; do
	rc=0; X "$L" a "$RP" rendezvous --join "$SRV" --session s-$w --secret-file "$T/$w" 2>"$T/$w.err" || rc=$?
	[ "$rc" = 2 ] || fail "$w secret: exit $rc, want 2"
	grep -q "rawpunch secret" "$T/$w.err" || fail "$w secret: no hint to 'rawpunch secret': $(cat "$T/$w.err")"
done
sleep 0.2
[ "$(grep -c ' accept ' "$T/srv-$L.err" || true)" = "$n0" ] || fail "a weak secret still connected to the server"
# the join itself stretched the secret (Argon2id): the same good secret joins as before (checked above)
ok "rawpunch secret (0600, no overwrite); weak and short secrets refused before connecting"

# ---- a wrong secret cannot join: different session id, nobody pairs, both give up
X "$L" a "$RP" rendezvous --join "$SRV" --session lab-wrong --secret-file "$T/secret" --timeout 3 >"$T/w1" 2>"$T/w1.err" &
pa=$!
if X "$L" b "$RP" rendezvous --join "$SRV" --session lab-wrong --secret-file "$T/wrong" --timeout 3 >"$T/w2" 2>"$T/w2.err"; then
	fail "a peer with the wrong secret joined"
fi
wait $pa && fail "the right-secret peer paired with a wrong-secret one"
grep -q "no peer joined" "$T/w1.err" || fail "right-secret peer: $(cat "$T/w1.err")"
[ ! -s "$T/w1" ] && [ ! -s "$T/w2" ] || fail "something was printed for an unpaired join"
ok "wrong secret: no pairing"

# ---- a forger that knows the session id (as the server operator would) but not the key
t0=$(date +%s%N)
X "$L" a "$RP" rendezvous --join "$SRV" --session lab-forge --secret-file "$T/secret" --timeout 4 >"$T/f1" 2>"$T/f1.err" &
pa=$!
sleep 0.3
X "$L" b "$LOAD" "$SRV" forge lab-forge "$T/secret" >"$T/f2" 2>&1 || fail "forger: $(cat "$T/f2")"
wait $pa && fail "the real peer accepted a forger: $(cat "$T/f1")"
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "do not authenticate" "$T/f1.err" || fail "real peer vs forger: $(cat "$T/f1.err")"
[ ! -s "$T/f1" ] || fail "the real peer printed a result with a forger"
# reported as such, within the join's timeout (4 s) and not much later
[ "$dt" -lt 6000 ] || fail "the forger was reported after $dt ms (timeout 4 s)"
ok "forger with the session id but not the key: refused both ways (reported after $dt ms, --timeout 4)"

# ---- up to 4 members wait under one id (rawpunch/rendezvous/proto.h); the fifth gets "full"
ID=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
J="{\"t\":\"join\",\"v\":1,\"id\":\"$ID\"}"
pids=()
for i in 1 2 3 4; do
	h=a; [ $((i % 2)) = 0 ] && h=b
	(frame "$J"; sleep 3) | X "$L" $h socat -T5 - "TCP4:$SRV" >"$T/p$i" 2>/dev/null &
	pids+=($!)
	sleep 0.2
done
sleep 0.5
(frame "$J"; sleep 1) | X "$L" na socat -T3 - "TCP4:$SRV" >"$T/p5" 2>/dev/null || true
grep -aq '"code":"full"' "$T/p5" || fail "fifth member: $(od -c "$T/p5" | head -3)"
wait "${pids[@]}" || true
for i in 1 2 3 4; do
	grep -aq '"t":"paired"' "$T/p$i" || fail "member $i was not paired"
	grep -aq '"code":"full"' "$T/p$i" && fail "member $i got full"
done
ok "four members paired under one id, the fifth refused: full"

# ---- garbage
expect_err() {   # expect_err NAME CODE: send stdin, want an error frame with CODE
	X "$L" a socat -T3 - "TCP4:$SRV" >"$T/g-$1" 2>/dev/null || true
	grep -aq "\"code\":\"$2\"" "$T/g-$1" || fail "$1: no '$2' error frame: $(od -c "$T/g-$1" | head -3)"
	alive "$1"
}
{ printf '\xff\xff\xff\xff'; head -c 4000 /dev/urandom; } | expect_err oversize oversize
{ printf '\x00\x00\x40\x01'; head -c 20000 /dev/zero; } | expect_err oversize-by-one oversize
{ printf '\x00\x00\x00\x00'; } | expect_err zero-length oversize
{ printf '\x00\x00\x00\x40'; head -c 64 /dev/urandom; } | expect_err random-body malformed
{ frame '{"t":"join","v":1,"id":"not-hex"}'; sleep 0.3; } | expect_err bad-id bad-request
{ frame '{"t":"join","v":2,"id":"00000000000000000000000000000000"}'; sleep 0.3; } | expect_err version version
{ frame '{"t":"fwd","box":"AAAA"}'; sleep 0.3; } | expect_err unpaired unpaired
{ frame '{"t":"nope"}'; sleep 0.3; } | expect_err unknown unknown-type
{ frame '{"t":"fprobe","port":0}'; sleep 0.3; } | expect_err probe-port bad-request
for i in $(seq 20); do head -c $((RANDOM % 3000 + 1)) /dev/urandom | X "$L" na socat -T1 - "TCP4:$SRV" >/dev/null 2>&1 || true; done
alive "random streams"
ok "oversized, malformed and random input: error frames, server alive"

# ---- timeouts (lab 2: --idle-timeout 3 --session-ttl 3): a silent connection, a lone peer
sleep 6 | X "$L2" a socat -T8 - "TCP4:$SRV" >"$T/idle" 2>/dev/null &
pi=$!
(frame "{\"t\":\"join\",\"v\":1,\"id\":\"$ID\"}"; sleep 2; frame '{"t":"time","t1":1}'; sleep 4) |
	X "$L2" b socat -T8 - "TCP4:$SRV" >"$T/lone" 2>/dev/null &
pl=$!
wait $pi $pl || true
grep -aq '"code":"idle"' "$T/idle" || fail "silent connection not closed for idleness"
grep -aq '"t":"wait"' "$T/lone" && grep -aq '"code":"expired"' "$T/lone" || fail "lone peer's session did not expire"
ok "idle connection closed, unpaired session expired"

# ---- 200 sessions at once
X "$L" a "$LOAD" "$SRV" pairs 200 >"$T/load" 2>&1 || fail "load: $(cat "$T/load")"
grep -q "200/200 sessions paired correctly" "$T/load" || fail "load: $(cat "$T/load")"
ok "$(cat "$T/load")"
alive "load"

# ---- clean exit on SIGTERM
pid=$(cat "$T/srv-$L.pid")
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "server exit status $rc after SIGTERM"
[ "$(wc -l <"$T/srv-$L.out")" -eq 1 ] || fail "server printed more than its startup line on stdout"
ok "SIGTERM: exit 0"
echo "PASS"
