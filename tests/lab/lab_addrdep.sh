#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test, address-dependent mapping (RFC 4787 4.1): from one local port, both STUN ports and
# whoami on 198.18.3.2 see one external port, both STUN ports on 198.18.3.3 see another; another local
# port gets other ports; the mapping is the same again later (a hash of inside address, inside port and
# destination address, seeded per lab), over TCP and UDP. Seen from the outside (STUN and whoami on s)
# and in the NAT's conntrack table.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
command -v conntrack >/dev/null || fail "conntrack missing (make deps)"
LAB=$(unique_lab lta)
lab_up "$LAB" --nat-a address-dependent
seed=$(lab_state "$LAB" nat_a_hash_seed)
[[ $seed =~ ^0x[0-9a-f]{8}$ ]] || fail "no hash seed recorded ($seed)"
echo "  hash seed $seed"

stun_port() {   # stun_port ADDR PORT SPORT: the external port STUN saw
	local r
	r=$(stun_tcp "$LAB" a "$1" "$2" "$3") || { echo "STUN $1:$2 from $3 failed" >&2; return 1; }
	[ "${r%%:*}" = 198.18.1.2 ] || { echo "STUN: mapped ${r%% *}" >&2; return 1; }
	port_of "${r%% *}"
}
# mapping SPORT: "P2 P2' P2'' P3 P3'": s:3478, s:3479, whoami on s, s2:3478, s2:3479 from local port SPORT
mapping() {
	local sp=$1 out=()
	out+=("$(stun_port 198.18.3.2 3478 "$sp")") || return 1
	out+=("$(stun_port 198.18.3.2 3479 "$sp")") || return 1
	out+=("$(port_of "$(whoami "$LAB" a "$sp")")")
	out+=("$(stun_port 198.18.3.3 3478 "$sp")") || return 1
	out+=("$(stun_port 198.18.3.3 3479 "$sp")") || return 1
	echo "${out[*]}"
}
check_mapping() {   # check_mapping SPORT PORTS...: one port per address; 1 if the two addresses' ports collide
	local sp=$1; shift
	echo "  local port $sp -> 198.18.3.2:3478 $1, :3479 $2, :7000 $3; 198.18.3.3:3478 $4, :3479 $5"
	[ "$1" = "$2" ] && [ "$1" = "$3" ] || fail "port $sp: three ports on 198.18.3.2 got $1 $2 $3, want one"
	[ "$4" = "$5" ] || fail "port $sp: two ports on 198.18.3.3 got $4 $5, want one"
	for p in "$1" "$4"; do
		[ "$p" -ge 20000 ] && [ "$p" -le 29999 ] || fail "port $p outside 20000..29999"
		[ "$p" != "$sp" ] || fail "port $sp preserved"
	done
	[ "$1" != "$4" ] && [[ " $AVOID " != *" $1 "* && " $AVOID " != *" $4 "* ]]
}
# pick_mapping SPORT...: the mapping of the first local port whose ports for the two addresses differ
# from each other and from $AVOID. The hash maps into 10 000 ports, so two values collide about once in
# 10 000: a collision is the profile working, and it moves on to the next port (3 collisions: a failure).
pick_mapping() {
	local sp m
	for sp in "$@"; do
		m=$(mapping "$sp") || fail "flows from $sp"
		# shellcheck disable=SC2086
		if check_mapping "$sp" $m; then SP=$sp M=$m; return 0; fi
		echo "  (hash collision for local port $sp: next port)"
	done
	fail "local ports $*: 198.18.3.2 and 198.18.3.3 got the same port every time, want one port per address"
}
AVOID=""
pick_mapping 41234 41236 41238
sp1=$SP
read -ra a1 <<<"$M"
# The NAT's conntrack table, right away (a closed flow stays 10 s): flows from 10.0.1.2:$sp1 to
# 198.18.3.2 all left from one port.
ct=$(tools/natlab exec "$LAB" ra -- conntrack -L -p tcp -s 10.0.1.2 -d 198.18.3.2 --sport $sp1 2>/dev/null)
echo "$ct" | sed 's/^/  conntrack on ra: /'
# each line: the original direction's destination port, then the reply direction's (our external port)
pairs=$(awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^dport=/) d[++n] = substr($i, 7); print d[1], d[2] }' <<<"$ct")
[ "$(cut -d' ' -f1 <<<"$pairs" | sort -n | tr '\n' ' ')" = "3478 3479 7000 " ] ||
	fail "conntrack on ra: flows to $(cut -d' ' -f1 <<<"$pairs" | tr '\n' ' '), want 3478 3479 7000"
[ "$(cut -d' ' -f2 <<<"$pairs" | sort -u)" = "${a1[0]}" ] ||
	fail "conntrack on ra: external ports $(cut -d' ' -f2 <<<"$pairs" | tr '\n' ' '), want ${a1[0]} only"
ok "conntrack on ra: 3 flows from $sp1 to 198.18.3.2 (3478, 3479, 7000), one external port ${a1[0]}"

AVOID="${a1[0]} ${a1[3]}"
pick_mapping 41235 41237 41239
ok "address-dependent: one external port per destination address, whatever the destination port"

# The mapping does not depend on order or time: the same local port gets the same ports again.
again=$(stun_port 198.18.3.3 3479 $sp1)" "$(stun_port 198.18.3.2 3478 $sp1) || fail "STUN again"
echo "  again from $sp1: 198.18.3.3:3479 ${again% *}, 198.18.3.2:3478 ${again#* }"
[ "$again" = "${a1[3]} ${a1[0]}" ] || fail "the mapping changed: $again, want ${a1[3]} ${a1[0]}"
ok "the mapping of (local port, destination address) is stable"

# UDP too: STUN Binding over UDP from one local port to both addresses.
stun_udp_port() {   # stun_udp_port ADDR PORT SPORT: the external port STUN over UDP saw
	local r
	r=$(stun_udp "$LAB" a "$1" "$2" "$3") || return 1
	port_of "${r%% *}"
}
for sp in 41300 41301 41302; do   # (another port after a hash collision, as above)
	u2=$(stun_udp_port 198.18.3.2 3478 $sp) || fail "STUN over UDP to 198.18.3.2"
	u2b=$(stun_udp_port 198.18.3.2 3479 $sp) || fail "STUN over UDP to 198.18.3.2:3479"
	u3=$(stun_udp_port 198.18.3.3 3478 $sp) || fail "STUN over UDP to 198.18.3.3"
	echo "  UDP from $sp: 198.18.3.2:3478 $u2, :3479 $u2b; 198.18.3.3:3478 $u3"
	[ "$u2" = "$u2b" ] || fail "UDP: two ports on 198.18.3.2 got $u2 $u2b, want one"
	[ "$u2" = "$u3" ] || break
done
[ "$u2" != "$u3" ] || fail "UDP: 198.18.3.2 and 198.18.3.3 got the same port from 3 local ports"
ok "address-dependent over UDP too"
