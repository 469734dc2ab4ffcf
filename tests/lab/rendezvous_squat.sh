#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Squatters on a session id (issue 14): anyone who saw an id can join it. Two squatters (tools/rv-load
# squat, from na and inet) join the id of the real peers' session first and spray garbage boxes; then
# the real peers a and b join: both must meet and exchange their natinfo and candidates (they skip and
# count the boxes that do not authenticate: "bad_boxes"). Then a single squatter paired with a for a
# second before b comes: a's join must survive the garbage and meet b. On a server that pairs the
# first two and refuses the third ("full"), or a client for which one bad box is fatal, this fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/rendezvous_common.bash
RPC=${RAWPUNCH_CLIENT:-$RP}     # the peers' binary (the server's by default)
rv_lab rvq rv-squat

ip netns exec "rp$L-s" "$RP" rendezvous --listen "$SRV" -v >"$T/srv.out" 2>"$T/srv.err" &
spid=$!
wait_line "$T/srv.out" "listening on $SRV" || fail "server did not start: $(cat "$T/srv.err")"
head -c 32 /dev/urandom | base64 >"$T/secret"
cat >"$T/ni-a.json" <<'J'
{"local":"10.0.1.2:40001","mapped":"198.18.1.2:40001","behind_nat":true,"mapping":"endpoint-independent","allocation":"preserving","delta":null,"jitter":0.0,"predicted":[],"confidence":0.0,"filtering":"rst","nat_ttl":2}
J
cat >"$T/ni-b.json" <<'J'
{"local":"10.0.2.2:40002","mapped":"198.18.2.2:20017","behind_nat":true,"mapping":"address-and-port-dependent","allocation":"sequential","delta":1,"jitter":0.5,"predicted":[20018,20019],"confidence":0.8,"filtering":"drop","nat_ttl":2}
J

meet() {   # meet NAME [DELAY_B]: a and b join session NAME; both must get the other's natinfo
	local n=$1 d=${2:-0}
	X "$L" a "$RPC" rendezvous --join "$SRV" --session "$n" --secret-file "$T/secret" --natinfo "$T/ni-a.json" \
		--cand 40010 --timeout 10 >"$T/$n-a.json" 2>"$T/$n-a.err" &
	local pa=$!
	sleep "$d"
	X "$L" b "$RPC" rendezvous --join "$SRV" --session "$n" --secret-file "$T/secret" --natinfo "$T/ni-b.json" \
		--timeout 10 >"$T/$n-b.json" 2>"$T/$n-b.err" || fail "$n: b's join: $(cat "$T/$n-b.err")"
	wait $pa || fail "$n: a's join: $(cat "$T/$n-a.err")"
	grep -q '"mapped":"198.18.2.2:20017"' "$T/$n-a.json" || fail "$n: a did not get b's natinfo: $(cat "$T/$n-a.json")"
	grep -q '"mapped":"198.18.1.2:40001"' "$T/$n-b.json" || fail "$n: b did not get a's natinfo: $(cat "$T/$n-b.json")"
	grep -q '"peer_cand":\[40010\]' "$T/$n-b.json" || fail "$n: b did not get a's candidates"
}
bad() { grep -o '"bad_boxes":[0-9]*' "$1" | cut -d: -f2; }

# ---- two squatters first, then the real peers (b a second after a: a sits among the squatters)
X "$L" na "$LOAD" "$SRV" squat lab-squat "$T/secret" 6 >"$T/sq1" 2>&1 &
q1=$!
X "$L" inet "$LOAD" "$SRV" squat lab-squat "$T/secret" 6 >"$T/sq2" 2>&1 &
q2=$!
sleep 1
meet lab-squat 1
wait $q1 $q2 || fail "squatters: $(cat "$T/sq1" "$T/sq2")"
cat "$T/sq1" "$T/sq2"
ba=$(bad "$T/lab-squat-a.json") bb=$(bad "$T/lab-squat-b.json")
[ "${ba:-0}" -ge 5 ] || fail "a skipped only ${ba:-0} garbage boxes in a second among two squatters"
grep -q "paired .* (4 members)" "$T/srv.err" || fail "the server never had 4 members under the id"
ok "two squatters first: the real peers met anyway (skipped $ba and $bb garbage boxes)"

# ---- one squatter paired with a for a second before b comes
X "$L" na "$LOAD" "$SRV" squat lab-squat2 "$T/secret" 5 >"$T/sq3" 2>&1 &
q3=$!
sleep 0.5
meet lab-squat2 1.5
wait $q3 || true
cat "$T/sq3"
ba=$(bad "$T/lab-squat2-a.json")
[ "${ba:-0}" -ge 5 ] || fail "a skipped only ${ba:-0} garbage boxes while paired with the squatter alone"
ok "a squatter paired with a first: a skipped $ba garbage boxes and met b"
kill -0 $spid 2>/dev/null || fail "server died"
kill -TERM $spid
wait $spid || fail "server exit status $? after SIGTERM"
echo "PASS"
