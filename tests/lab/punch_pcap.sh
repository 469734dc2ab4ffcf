#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# punch --pcap holds the whole connection, not only the punch: after the TCP_REPAIR handoff (and the drop
# of every capability) the capture goes on, on the connection's 4-tuple, until the data mode has ended.
# Two port-preserving NATs, both sides with --pcap, over --stdio:
#   (1) direct: 256 KiB and a token line each way; in each side's file: its SYNs, the data bytes of both
#       directions (the stream bytes the segments cover, each once) equal to what each side sent,
#       both tokens, a FIN from each end; the count punch prints is the file's; rawpunch watch -r reads
#       it back with data lines both ways;
#   (2) --relay-first: 64 KiB each way over the TURN relay, the token line only once the stream has moved
#       to the direct connection (2 s after it connected): the file holds the direct connection's data (what the report does not
#       count as sent over the relay, the tokens among it) and its FINs, not the relayed bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lab/punch_common.bash

# the addresses on a's and b's wire: each side's own, and the peer's public one (port-preserving NATs)
declare -A LOCAL=([a]=10.0.1.2 [b]=10.0.2.2) PUB=([a]=198.18.1.2 [b]=198.18.2.2) OTHER=([a]=b [b]=a)
# check_pcap TAG SIDE OUT IN: SIDE's file holds OUT data bytes out and IN in, both tokens, SYNs out, a FIN
# each way; punch printed its count; watch -r reads it
check_pcap() {
	local tag=$1 side=$2 want_out=$3 want_in=$4
	local f=$T/$tag-$side.pcap o=${OTHER[$side]} me=${LOCAL[$side]} peer=${PUB[${OTHER[$side]}]}
	local frames out back s hex n_syn n_fin_out n_fin_in
	frames=$(tshark -n -r "$f" 2>/dev/null | wc -l)
	grep -q "^punch: --pcap $f: $frames packets written$" "$T/$tag-$side.err" ||
		fail "$tag/$side: the count punch printed is not the file's $frames: $(grep -e '--pcap' "$T/$tag-$side.err")"
	out=$(pcap_stream_bytes "$f" "$me") back=$(pcap_stream_bytes "$f" "$peer")
	[ "$out" -eq "$want_out" ] && [ "$back" -eq "$want_in" ] ||
		fail "$tag/$side: the file has $out data bytes out (want $want_out) and $back in (want $want_in)"
	for s in "$me:$side" "$peer:$o"; do
		hex=$(printf 'token-%s-%s' "$PUNCH_TOKEN" "${s#*:}" | od -An -tx1 | tr -d ' \n')
		tshark -n -r "$f" -Y "ip.src==${s%:*} && tcp.len > 0" -T fields -e tcp.payload 2>/dev/null | tr -d ':\n' |
			grep -q "$hex" || fail "$tag/$side: ${s#*:}'s token is not in the data from ${s%:*}"
	done
	n_syn=$(tshark -n -r "$f" -Y "ip.src==$me && tcp.flags.syn==1" 2>/dev/null | wc -l)
	n_fin_out=$(tshark -n -r "$f" -Y "ip.src==$me && tcp.flags.fin==1" 2>/dev/null | wc -l)
	n_fin_in=$(tshark -n -r "$f" -Y "ip.src==$peer && tcp.flags.fin==1" 2>/dev/null | wc -l)
	[ "$n_syn" -ge 1 ] && [ "$n_fin_out" -ge 1 ] && [ "$n_fin_in" -ge 1 ] ||
		fail "$tag/$side: SYNs out $n_syn, FINs out $n_fin_out, FINs in $n_fin_in (want >= 1 each)"
	"$RP" watch -r "$f" >"$T/$tag-$side.watch" 2>/dev/null || fail "$tag/$side: watch -r could not read the file"
	grep -q "^[0-9:.]* data    $me:[0-9]* > $peer:" "$T/$tag-$side.watch" &&
		grep -q "^[0-9:.]* data    $peer:[0-9]* > $me:" "$T/$tag-$side.watch" ||
		fail "$tag/$side: watch -r shows no data both ways: $(head -n 12 "$T/$tag-$side.watch")"
	echo "   $tag/$side: $frames packets; $out data bytes out, $back in; SYNs out $n_syn, FINs $n_fin_out out $n_fin_in in"
}

punch_lab pp --nat-a preserve --nat-b preserve
PUNCH_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

# ---- (1) direct --------------------------------------------------------------------------------------
PUNCH_PCAP=1 PUNCH_BYTES=262144 punch_pair pc
expect_pair_ok pc
no_leftovers
for side in a b; do
	check_pcap pc $side "$(wc -c <"$T/pc-$side.in")" "$(wc -c <"$T/pc-${OTHER[$side]}.in")"
done
ok "(1) both sides: the token and 256 KiB each way, SYNs and both FINs in each file; watch -r reads them"

# ---- (2) --relay-first -------------------------------------------------------------------------------
TS=$(tools/natlab turn-secret "$LAB")
PUNCH_PCAP=1 PUNCH_BYTES=65536 PUNCH_SPLIT=1 punch_pair rf --relay 198.18.3.2 --relay-secret-file "$TS" --relay-first --lead 1000
if [ "${PAIR_RC[0]}" != 0 ] || [ "${PAIR_RC[1]}" != 0 ]; then fail "rf: punch exited a=${PAIR_RC[0]} b=${PAIR_RC[1]}"; fi
for side in a b; do
	o=${OTHER[$side]}
	cmp -s "$T/rf-$o.in" "$T/rf-$side.out" || fail "rf: $side received $(wc -c <"$T/rf-$side.out") bytes, not $o's $(wc -c <"$T/rf-$o.in")"
	[ "$(report_get rf $side "r['result']['route']")" = "relay->direct" ] || fail "rf: $side's route: $(report_get rf $side "r['result']['route']")"
	rel_out=$(report_get rf $side "r['result']['bytes_out_relay']") rel_in=$(report_get rf $side "r['result']['bytes_in_relay']")
	[ "$rel_out" -ge 65536 ] && [ "$rel_in" -ge 65536 ] || fail "rf: $side moved $rel_out out and $rel_in in over the relay (want the first 64 KiB)"
	check_pcap rf $side $(($(wc -c <"$T/rf-$side.in") - rel_out)) $(($(wc -c <"$T/rf-$o.in") - rel_in))
done
no_leftovers
ok "(2) --relay-first: each file holds the direct connection's data after the move (the tokens) and its FINs, not the relayed bytes"
