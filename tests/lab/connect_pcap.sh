#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# connect --pcap holds the whole connection, not only the handshake: after the TCP_REPAIR handoff (and
# the drop of every capability) the capture goes on, on the flow's 4-tuple, until the connection ends.
#   (1) --stdio through an echo service on s: 256 KiB and a token each way; the file has the SYN, the
#       SYN-ACK, every data byte in both directions (tshark's sums of tcp.len), the token's bytes in
#       both directions, both FINs; the count connect prints is the file's; rawpunch watch -r reads it
#       back with data lines both ways;
#   (2) --exec: what CMD sent and what came back are in the file too.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}; [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
RP=${RAWPUNCH:-$BUILD/rawpunch}
[ -x "$RP" ] || { echo "FAIL: $RP not built (make)"; exit 1; }
# shellcheck source=tools/natlab-lib.sh
source tools/natlab-lib.sh
LAB=$(unique_lab cp)
T=$(mktemp -d /tmp/rp-cpcap.XXXXXX)
chmod 777 "$T"   # the pcap is created for the user connect becomes (nobody)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
lab_up "$LAB"
S=$(tools/natlab addr "$LAB" s)
A() { ip netns exec "rp$LAB-a" "$@"; }
ip netns exec "rp$LAB-s" socat TCP4-LISTEN:7100,reuseaddr,fork EXEC:cat & pids+=($!)
for _ in $(seq 50); do ip netns exec "rp$LAB-s" ss -Htln 'sport = :7100' | grep -q . && break; sleep 0.1; done


# ---- (1) --stdio ---------------------------------------------------------------------------------
token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
{ echo "token-$token"; head -c 262144 /dev/urandom; } >"$T/in"
size=$(stat -c %s "$T/in")
# stdin stays open a little after the data, so the echo comes back before our FIN
(cat "$T/in"; sleep 1) | A "$RP" connect --pcap "$T/1.pcap" "$S:7100" >"$T/out" 2>"$T/1.err" ||
	fail "(1) connect: $(cat "$T/1.err")"
cmp -s "$T/in" "$T/out" || fail "(1) the echo differs from what was sent ($(stat -c %s "$T/out") of $size bytes)"
grep -q '^handoff: repair' "$T/1.err" || fail "(1) not a repair handoff: $(cat "$T/1.err")"
frames=$(tshark -n -r "$T/1.pcap" 2>/dev/null | wc -l)
grep -q "^connect: --pcap $T/1.pcap: $frames packets written$" "$T/1.err" ||
	fail "(1) the count connect printed is not the file's $frames: $(cat "$T/1.err")"
out=$(pcap_stream_bytes "$T/1.pcap" 10.0.1.2); back=$(pcap_stream_bytes "$T/1.pcap" "$S")
[ "$out" -eq "$size" ] && [ "$back" -eq "$size" ] ||
	fail "(1) the file has $out bytes a->s and $back s->a of the $size each way"
hex=$(printf 'token-%s' "$token" | od -An -tx1 | tr -d ' \n')
for src in 10.0.1.2 "$S"; do
	tshark -n -r "$T/1.pcap" -Y "ip.src==$src && tcp.len > 0" -T fields -e tcp.payload 2>/dev/null | tr -d ':\n' |
		grep -q "$hex" || fail "(1) the token is not in the payload from $src"
done
n_syn=$(tshark -n -r "$T/1.pcap" -Y "tcp.flags.syn==1" 2>/dev/null | wc -l)
n_fin=$(tshark -n -r "$T/1.pcap" -Y "tcp.flags.fin==1" 2>/dev/null | wc -l)
[ "$n_syn" -ge 2 ] && [ "$n_fin" -ge 2 ] || fail "(1) syn/syn-ack=$n_syn fin=$n_fin (want >= 2 each)"
"$RP" watch -r "$T/1.pcap" >"$T/1.watch" 2>/dev/null || fail "(1) watch -r could not read the file"
grep -q "^[0-9:.]* data    10.0.1.2:[0-9]* > $S:7100 " "$T/1.watch" && grep -q "^[0-9:.]* data    $S:7100 > 10.0.1.2:" "$T/1.watch" ||
	fail "(1) watch -r shows no data both ways: $(head -n 12 "$T/1.watch")"
ok "(1) --stdio: $frames packets, $size bytes each way and the token in both directions, SYNs and FINs; watch -r reads it"

# ---- (2) --exec ----------------------------------------------------------------------------------
A "$RP" connect --pcap "$T/2.pcap" --exec "echo exec-$token; head -n 1 >/dev/null" "$S:7100" 2>"$T/2.err" ||
	fail "(2) connect --exec: $(cat "$T/2.err")"
hex=$(printf 'exec-%s\n' "$token" | od -An -tx1 | tr -d ' \n')
for src in 10.0.1.2 "$S"; do
	tshark -n -r "$T/2.pcap" -Y "ip.src==$src && tcp.len > 0" -T fields -e tcp.payload 2>/dev/null | tr -d ':\n' |
		grep -q "$hex" || fail "(2) CMD's line is not in the payload from $src: $(cat "$T/2.err")"
done
ok "(2) --exec: CMD's line and its echo are in the file"
