#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test, port-block allocation (RFC 7422, as carrier NATs do it): with `block` every inside
# host owns a block of 256 ports at a random, aligned offset chosen at up (recorded in the lab's state)
# and each new flow gets a random port inside its own host's block, a new one per destination too;
# with `block-seq:32` the ports go up one by one inside the block and wrap at its end. Seen from the
# outside (whoami and STUN on s) and in the NAT's conntrack table.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
command -v conntrack >/dev/null || fail "conntrack missing (make deps)"
LAB=$(unique_lab ltk)
lab_up "$LAB" --nat-a block --nat-b block-seq:32

# --- the blocks: one per inside host, recorded, aligned, SIZE ports, inside 1024..65535, disjoint.
st=$(tools/natlab status "$LAB")
check_blocks() {   # check_blocks KEY SIZE HOST1 HOST2 -> BLOCKS=(LO-HI LO-HI)
	local key=$1 size=$2 v b lo hi i; shift 2
	local hosts=("$@") bs
	v=$(lab_state "$LAB" "$key")
	grep -qxF "  $key: $v" <<<"$st" || fail "status does not show $key: $st"
	read -ra bs <<<"$v"
	[ ${#bs[@]} -eq 2 ] || fail "$key: want 2 blocks, got '$v'"
	for i in 0 1; do
		b=${bs[i]}
		[ "${b%%:*}" = "${hosts[i]}" ] || fail "$key: block $b is not for ${hosts[i]}"
		b=${b#*:} lo=${b%-*} hi=${b#*-}
		[ $((hi - lo + 1)) -eq "$size" ] || fail "$key: block $b is not $size ports"
		[ "$lo" -ge 1024 ] && [ "$hi" -le 65535 ] && [ $(( (lo - 1024) % size )) -eq 0 ] || fail "$key: block $b misplaced"
		BLOCKS[i]=$b
	done
	[ "${bs[0]#*:}" != "${bs[1]#*:}" ] || fail "$key: both hosts got block ${bs[0]#*:}"
}
BLOCKS=()
check_blocks nat_a_blocks 256 10.0.1.2 10.0.1.3; blk_a=${BLOCKS[0]} blk_na=${BLOCKS[1]}
check_blocks nat_b_blocks 32 10.0.2.2 10.0.2.3; blk_b=${BLOCKS[0]} blk_nb=${BLOCKS[1]}
echo "  blocks: a $blk_a, na $blk_na (block); b $blk_b, nb $blk_nb (block-seq:32)"
ok "each inside host has its own recorded block (256 and 32 ports, aligned, disjoint)"

# --- block: 16 flows from a, 6 from na: each inside its own block, random inside it.
out=$(flow_ports "$LAB" a 16) || fail "flows from a"; read -ra pa <<<"$(echo $out)"
out=$(flow_ports "$LAB" na 6) || fail "flows from na"; read -ra pna <<<"$(echo $out)"
echo "  block, a:  ${pa[*]}"
echo "  block, na: ${pna[*]}"
for p in "${pa[@]}"; do in_block "$p" "$blk_a" || fail "block: a's port $p outside a's block $blk_a"; done
for p in "${pna[@]}"; do in_block "$p" "$blk_na" || fail "block: na's port $p outside na's block $blk_na"; done
[ "$(printf '%s\n' "${pa[@]}" | sort -u | wc -l)" -eq 16 ] || fail "block: a port repeated while its flow is still in conntrack"
up1=0
for ((i = 1; i < 16; i++)); do [ $((pa[i] - pa[i-1])) -eq 1 ] && up1=$((up1 + 1)); done
[ "$up1" -le 2 ] || fail "block: $up1 of 15 steps are +1 (sequential, not random)"
lo=$(printf '%s\n' "${pa[@]}" | sort -n | head -1); hi=$(printf '%s\n' "${pa[@]}" | sort -n | tail -1)
[ $((hi - lo)) -ge 64 ] || fail "block: 16 random ports span only $((hi - lo)) of 256"
# One local port, four STUN destinations: a new port for each (no endpoint-independent mapping), all in the block.
sp=41234 fixed=()
for dst in 198.18.3.2:3478 198.18.3.2:3479 198.18.3.3:3478 198.18.3.3:3479; do
	r=$(stun_tcp "$LAB" a "${dst%:*}" "${dst#*:}" $sp) || fail "STUN from a to $dst"
	[ "${r%%:*}" = 198.18.1.2 ] || fail "STUN: mapped address ${r%% *}"
	fixed+=("$(port_of "${r%% *}")")
done
echo "  block, a's port $sp to 4 STUN destinations: ${fixed[*]}"
for p in "${fixed[@]}"; do in_block "$p" "$blk_a" || fail "block: STUN-mapped port $p outside $blk_a"; done
[ "$(printf '%s\n' "${fixed[@]}" | sort -u | wc -l)" -ge 2 ] || fail "block: one local port kept its port across 4 destinations"
# The NAT's own table says the same: every flow of a to whoami left from a port of a's block.
ct=$(tools/natlab exec "$LAB" ra -- conntrack -L -p tcp -s 10.0.1.2 --dport 7000 2>/dev/null)
echo "$ct" | head -2 | sed 's/^/  conntrack on ra: /'
n=0
while read -r line; do
	p=$(grep -o 'dport=[0-9]*' <<<"$line" | tail -1); p=${p#dport=}
	in_block "$p" "$blk_a" || fail "conntrack on ra: reply port $p outside $blk_a: $line"
	n=$((n + 1))
done <<<"$ct"
[ "$n" -ge 16 ] || fail "conntrack on ra lists $n of a's flows, want >= 16"
ok "block: random ports inside each host's own block (span $((hi - lo)), $n conntrack entries checked), new port per destination"

# --- block-seq:32: flows from b count up from the block's start and wrap after 32; nb has its own counter.
out=$(flow_ports "$LAB" b 32) || fail "flows from b"; read -ra pb <<<"$(echo $out)"
echo "  block-seq, b's 32 flows: ${pb[*]}"
[ "${pb[0]}" -eq "${blk_b%-*}" ] || fail "block-seq: first port ${pb[0]}, want the block's start ${blk_b%-*}"
for ((i = 1; i < 32; i++)); do
	[ "${pb[i]}" -eq $((pb[i-1] + 1)) ] || fail "block-seq: ports not consecutive: ${pb[*]}"
done
[ "${pb[31]}" -eq "${blk_b#*-}" ] || fail "block-seq: 32nd port ${pb[31]}, want the block's end"
# the 33rd and 34th flows (other destinations) wrap to the start of the block
wrap=()
for dst in 198.18.3.2:3478 198.18.3.3:3479; do
	r=$(stun_tcp "$LAB" b "${dst%:*}" "${dst#*:}") || fail "STUN from b to $dst"
	wrap+=("$(port_of "${r%% *}")")
done
echo "  block-seq, flows 33 and 34: ${wrap[*]}"
[ "${wrap[*]}" = "${blk_b%-*} $((${blk_b%-*} + 1))" ] || fail "block-seq: after the block's end, want ${blk_b%-*} $((${blk_b%-*} + 1))"
out=$(flow_ports "$LAB" nb 3) || fail "flows from nb"; read -ra pnb <<<"$(echo $out)"
echo "  block-seq, nb: ${pnb[*]}"
[ "${pnb[*]}" = "${blk_nb%-*} $((${blk_nb%-*} + 1)) $((${blk_nb%-*} + 2))" ] ||
	fail "block-seq: nb's first flows ${pnb[*]}, want the start of its own block $blk_nb"
ok "block-seq: consecutive ports through b's block, wrapping at its end; nb counts in its own block"
