#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test, mapping side: preserve keeps the port for several destinations, sequential hands out
# consecutive ports whatever the destination, and coturn answers STUN Binding over TCP on both addresses
# and both ports with RFC 5780 OTHER-ADDRESS. Everything is observed from the outside (at s).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
LAB=$(unique_lab ltn)
lab_up "$LAB" --nat-a preserve --nat-b sequential

[ "$(tools/natlab addr "$LAB" a-public)" = 198.18.1.2 ] || fail "addr a-public"
[ "$(tools/natlab addr "$LAB" b-public)" = 198.18.2.2 ] || fail "addr b-public"
[ "$(tools/natlab addr "$LAB" s)" = 198.18.3.2 ] || fail "addr s"

# --- STUN over TCP, both addresses, both ports.
for dst in 198.18.3.2:3478 198.18.3.2:3479 198.18.3.3:3478 198.18.3.3:3479; do
	r=$(stun_tcp "$LAB" a "${dst%:*}" "${dst#*:}") || fail "no STUN Binding response over TCP from $dst"
	read -r mapped other origin <<<"$r"
	[ "${mapped%:*}" = 198.18.1.2 ] || fail "STUN $dst: XOR-MAPPED-ADDRESS $mapped is not a-public"
	[ "$origin" = "$dst" ] || fail "STUN $dst: RESPONSE-ORIGIN $origin"
	[ "$other" != - ] || fail "STUN $dst: no OTHER-ADDRESS (RFC 5780 off?)"
	echo "  STUN tcp $dst: mapped $mapped other $other"
done
r=$(stun_tcp "$LAB" a 198.18.3.2 3478); read -r _ other _ <<<"$r"
[ "$other" = 198.18.3.3:3479 ] || fail "OTHER-ADDRESS for 198.18.3.2:3478 is $other, want 198.18.3.3:3479"
ok "coturn answers STUN Binding over TCP on 198.18.3.2/.3 ports 3478/3479, OTHER-ADDRESS present"

# UDP too (one request to the primary address), with socat's UDP client.
r=$(stun_udp "$LAB" a 198.18.3.2 3478) || fail "no STUN Binding response over UDP"
ok "coturn answers STUN Binding over UDP: ${r%% *}"

# --- preserve: one local port, five destinations, the same external port every time.
sp=41234
seen=()
seen+=("$(whoami "$LAB" a $sp)")
for dst in 198.18.3.2:3478 198.18.3.2:3479 198.18.3.3:3478 198.18.3.3:3479; do
	r=$(stun_tcp "$LAB" a "${dst%:*}" "${dst#*:}" $sp) || fail "STUN from port $sp to $dst"
	seen+=("${r%% *}")
done
echo "  preserve: local port $sp -> ${seen[*]}"
for m in "${seen[@]}"; do [ "$m" = "198.18.1.2:$sp" ] || fail "preserve: $m, want 198.18.1.2:$sp for every destination"; done
ok "preserve keeps port $sp for 5 destinations"

# --- sequential: consecutive flows (any destination, any local port) get consecutive external ports.
ports=()
ports+=("$(port_of "$(whoami "$LAB" b)")")
r=$(stun_tcp "$LAB" b 198.18.3.3 3479) || fail "STUN from b"; ports+=("$(port_of "${r%% *}")")
ports+=("$(port_of "$(whoami "$LAB" b 41234)")")
r=$(stun_tcp "$LAB" b 198.18.3.2 3478 41234) || fail "STUN from b"; ports+=("$(port_of "${r%% *}")")
ports+=("$(port_of "$(whoami "$LAB" b)")")
echo "  sequential: ${ports[*]}"
for ((i = 1; i < ${#ports[@]}; i++)); do
	[ "${ports[i]}" -eq $((ports[i-1] + 1)) ] || fail "sequential: ports ${ports[*]} are not consecutive"
done
[ "${ports[0]}" -ge 20000 ] && [ "${ports[0]}" -lt 30000 ] || fail "sequential: port ${ports[0]} outside 20000-29999"
ok "sequential gives consecutive ports ${ports[0]}..${ports[-1]} across destinations"
