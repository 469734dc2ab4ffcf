#!/usr/bin/env bash
# rp-baseline (the kernel-socket hole punch tools/bench/matrix measures rawpunch against):
#   - preserve x preserve with drop filtering: both sides connect and check the peer's payload; each
#     learned its own public address by STUN over TCP (mapped = router's outside address, port kept)
#     and connected to exactly the address the other published; agreed moment equal on both sides;
#     the pair's TCP packets toward each other (nft counters in ra/rb) are what one try costs;
#   - a wrong session on one side (the payload is keyed by it): both report an exchange failure,
#     so the payload check can fail;
#   - sequential x sequential: the connect() leaves from a new public port, so it fails within the
#     window, refused or timed out, and says so;
#   - bad usage exits 2 before any packet; a missing peer file ends with error "peer".
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
B=${BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
BL=$B/rp-baseline
[ -x "$BL" ] || fail "$BL not built (make)"
L=$(unique_lab mxb)
L2=$(unique_lab mxs)
lab_up "$L" --filter-a drop --filter-b drop
lab_up "$L2" --nat-a sequential --nat-b sequential --filter-a drop --filter-b drop
T=$(mktemp -d /tmp/mx-baseline.XXXXXX)
trap '_natlab_cleanup; rm -rf "$T"' EXIT     # after lab_up, which sets its own trap

jget() { jq -r --arg k "$1" '.[$k] | if . == null then "null" else tostring end'; }
# pair LAB TAG [A-ARGS] -- [B-ARGS]: run both sides at once; JSON in $T/TAG-{a,b}.json, status in $T/TAG-{a,b}.rc
pair() {
	local lab=$1 tag=$2; shift 2
	local -a aa=() ba=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do aa+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	ba=("$@")
	( set +e; timeout 30 ip netns exec "rp$lab-a" "$BL" --me "$T/$tag-a.addr" --peer "$T/$tag-b.addr" --session "$tag" \
		"${aa[@]}" >"$T/$tag-a.json" 2>"$T/$tag-a.err"; echo $? >"$T/$tag-a.rc" ) &
	local pa=$!
	( set +e; timeout 30 ip netns exec "rp$lab-b" "$BL" --me "$T/$tag-b.addr" --peer "$T/$tag-a.addr" --session "$tag" \
		"${ba[@]}" >"$T/$tag-b.json" 2>"$T/$tag-b.err"; echo $? >"$T/$tag-b.rc" )
	wait "$pa"
}
count_on() {   # count_on LAB ROUTER: install a counter for TCP from the LAN host to the other NAT
	local lab=$1 r=$2 src dst
	if [ "$r" = ra ]; then src=10.0.1.2 dst=198.18.2.2; else src=10.0.2.2 dst=198.18.1.2; fi
	ip netns exec "rp$lab-$r" nft -f - <<-EOF
	table ip mxcount {
	  counter ntcp { }
	  counter nsyn { }
	  chain cnt { type filter hook forward priority -10; policy accept;
	    ip saddr $src ip daddr $dst meta l4proto tcp counter name ntcp
	    ip saddr $src ip daddr $dst tcp flags & (syn|ack) == syn counter name nsyn
	  }
	}
	EOF
}
counted() { ip netns exec "rp$1-$2" nft list counter ip mxcount "$3" | awk '{for (i=1;i<NF;i++) if ($i=="packets") print $(i+1)}'; }

# ---- bad usage: exit 2, nothing sent (no files, no STUN)
set +e
ip netns exec "rp$L-a" "$BL" --peer "$T/x" 2>"$T/u1.err"; rc1=$?
ip netns exec "rp$L-a" "$BL" --me "$T/x" --peer "$T/y" --retry-ms 0 2>"$T/u2.err"; rc2=$?
ip netns exec "rp$L-a" "$BL" --me "$T/x" --peer "$T/x" 2>"$T/u3.err"; rc3=$?
ip netns exec "rp$L-a" "$BL" --me "$T/x" --peer "$T/y" --stun nowhere:3478 2>"$T/u4.err"; rc4=$?
set -e
{ [ "$rc1" = 2 ] && grep -q -- "--me and --peer are required" "$T/u1.err"; } || fail "missing --me: rc $rc1: $(cat "$T/u1.err")"
{ [ "$rc2" = 2 ] && grep -q -- "--retry-ms" "$T/u2.err"; } || fail "--retry-ms 0: rc $rc2: $(cat "$T/u2.err")"
[ "$rc3" = 2 ] || fail "--me = --peer: rc $rc3"
[ "$rc4" = 2 ] || fail "--stun nowhere: rc $rc4"
[ ! -e "$T/x" ] || fail "bad usage published $T/x"
[ ! -e "$T/y" ] || fail "bad usage still published an address"
ok "bad usage exits 2 and publishes nothing"

# ---- preserve x preserve, drop: connects and verifies both ways
count_on "$L" ra; count_on "$L" rb
pair "$L" pp
for s in a b; do
	[ "$(cat "$T/pp-$s.rc")" = 0 ] || fail "pp side $s: rc $(cat "$T/pp-$s.rc"): $(cat "$T/pp-$s.json" "$T/pp-$s.err")"
	[ "$(jget ok <"$T/pp-$s.json")" = true ] || fail "pp side $s not ok: $(cat "$T/pp-$s.json")"
	[ "$(jget method <"$T/pp-$s.json")" = baseline ] || fail "pp side $s: method"
	v=$(jget verified_ms <"$T/pp-$s.json"); t=$(jget time_ms <"$T/pp-$s.json")
	awk -v v="$v" -v t="$t" 'BEGIN{exit !(t >= 0 && v >= t && v < 8000)}' || fail "pp side $s: time_ms $t verified_ms $v"
done
ma=$(jget mapped <"$T/pp-a.json"); mb=$(jget mapped <"$T/pp-b.json")
la=$(jget local <"$T/pp-a.json"); lb=$(jget local <"$T/pp-b.json")
[ "$ma" = "198.18.1.2:${la##*:}" ] || fail "a's mapped $ma is not ra's outside address with a's port (${la})"
[ "$mb" = "198.18.2.2:${lb##*:}" ] || fail "b's mapped $mb is not rb's outside address with b's port (${lb})"
[ "$(jget peer <"$T/pp-a.json")" = "$mb" ] || fail "a connected to $(jget peer <"$T/pp-a.json"), not b's published $mb"
[ "$(jget peer <"$T/pp-b.json")" = "$ma" ] || fail "b connected to $(jget peer <"$T/pp-b.json"), not a's published $ma"
[ "$(cut -d' ' -f1 "$T/pp-a.addr")" = "$ma" ] || fail "published file does not hold a's mapped address"
[ "$(jget start_real_ms <"$T/pp-a.json")" = "$(jget start_real_ms <"$T/pp-b.json")" ] || fail "agreed moments differ"
ta=$(counted "$L" ra ntcp); tb=$(counted "$L" rb ntcp); sa=$(counted "$L" ra nsyn); sb=$(counted "$L" rb nsyn)
[ "$((sa > 0 && sb > 0))" = 1 ] || fail "no SYN toward the peer counted (a $sa, b $sb)"
tries=$(( $(jget tries <"$T/pp-a.json") + $(jget tries <"$T/pp-b.json") ))
[ $((sa + sb)) -le $((tries + 2)) ] || fail "more SYNs ($sa + $sb) than tries ($tries) + 2 retransmissions"
[ $((ta + tb)) -ge 8 ] || fail "too few TCP packets for a handshake, 64 B each way and two FINs: $ta + $tb"
ok "preserve x preserve / drop: connected in $(jget time_ms <"$T/pp-a.json") ms, payload checked both ways; $sa+$sb SYNs, $ta+$tb TCP packets"

# ---- a wrong session key on one side: the payload check fails on both
pair "$L" ws -- --session not-ws
for s in a b; do
	[ "$(cat "$T/ws-$s.rc")" = 1 ] || fail "wrong session, side $s: rc $(cat "$T/ws-$s.rc"): $(cat "$T/ws-$s.json")"
	[ "$(jget error <"$T/ws-$s.json")" = exchange ] || fail "wrong session, side $s: $(cat "$T/ws-$s.json")"
	[ "$(jget time_ms <"$T/ws-$s.json")" != null ] || fail "wrong session, side $s never connected"
done
ok "a payload keyed by another session is refused (both sides: error exchange)"

# ---- sequential x sequential: the connect() leaves from a fresh public port; no connection
pair "$L2" ss --window-ms 1500 -- --window-ms 1500
for s in a b; do
	[ "$(cat "$T/ss-$s.rc")" = 1 ] || fail "sequential pair side $s connected: $(cat "$T/ss-$s.json")"
	[ "$(jget error <"$T/ss-$s.json")" = window ] || fail "sequential pair side $s: $(cat "$T/ss-$s.json")"
	[ "$(jget tries <"$T/ss-$s.json")" -ge 5 ] || fail "sequential pair side $s: fewer than 5 tries in 1.5 s"
done
m=$(jget mapped <"$T/ss-a.json"); p=${m##*:}
[ "$((p >= 20000 && p < 30000))" = 1 ] || fail "sequential mapped port $p not in 20000..29999"
ok "sequential x sequential: no connection in 1.5 s ($(jget tries <"$T/ss-a.json") tries), reported as error window"

# ---- the peer never shows up
set +e
timeout 20 ip netns exec "rp$L-a" "$BL" --me "$T/np-a" --peer "$T/np-b" --wait-ms 500 >"$T/np.json" 2>/dev/null; rc=$?
set -e
[ "$rc:$(jget error <"$T/np.json")" = 1:peer ] || fail "missing peer: rc $rc $(cat "$T/np.json")"
ok "missing peer file: error peer after --wait-ms"
