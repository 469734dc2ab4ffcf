#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test, sequential allocation with a step other than 1: sequential:2 and sequential:3 hand
# out every 2nd / 3rd port of 20000..29999 upwards, sequential:-1 counts down from 29999, whatever the
# destination and the local port; and a step-3 NAT over a 10-port range (NATLAB_SEQ_PORTS) wraps after
# 20000 20003 20006. Seen from the outside (whoami and STUN on s).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
L1=$(unique_lab lts)
L2=$(unique_lab ltt)
lab_up "$L1" --nat-a sequential:2 --nat-b sequential:-1
NATLAB_SEQ_PORTS=10 lab_up "$L2" --nat-a sequential:3
[ "$(lab_state "$L1" nat_a)" = sequential:2 ] && [ "$(lab_state "$L1" nat_b)" = sequential:-1 ] || fail "profiles not recorded"

# mixed_flows LAB HOST: external ports of 6 new flows to whoami and to the four STUN endpoints, from fresh
# local ports and from one fixed local port
mixed_flows() {
	local lab=$1 h=$2 dst r
	port_of "$(whoami "$lab" "$h")"
	for dst in 198.18.3.3:3479 198.18.3.2:3478 198.18.3.3:3478 198.18.3.2:3479; do
		r=$(stun_tcp "$lab" "$h" "${dst%:*}" "${dst#*:}" 41234) || { echo "STUN from $h to $dst failed" >&2; return 1; }
		port_of "${r%% *}"
	done
	port_of "$(whoami "$lab" "$h" 41234)"
}
# expect_steps WHAT FIRST STEP PORTS...: the ports are FIRST, FIRST+STEP, FIRST+2*STEP, ...
expect_steps() {
	local what=$1 first=$2 step=$3 i; shift 3
	local p=("$@")
	echo "  $what: ${p[*]}"
	[ "${p[0]}" -eq "$first" ] || fail "$what: first port ${p[0]}, want $first"
	for ((i = 1; i < ${#p[@]}; i++)); do
		[ $((p[i] - p[i-1])) -eq "$step" ] || fail "$what: step $((p[i] - p[i-1])) between ${p[i-1]} and ${p[i]}, want $step"
	done
}

out=$(mixed_flows "$L1" a) || fail "flows from a"
expect_steps "sequential:2 (a)" 20000 2 $out
ok "sequential:2: 6 flows to 5 destinations get 20000, 20002, ... 20010"
out=$(mixed_flows "$L1" b) || fail "flows from b"
expect_steps "sequential:-1 (b)" 29999 -1 $out
ok "sequential:-1: 6 flows count down from 29999"
out=$(mixed_flows "$L2" a) || fail "flows from a"
# the range 20000..20009 holds 3 steps of 3: 20000 20003 20006, then the counter wraps
read -ra p <<<"$(echo $out)"
echo "  sequential:3 over 10 ports (a): ${p[*]}"
[ "${p[*]}" = "20000 20003 20006 20000 20003 20006" ] || fail "sequential:3 in 20000..20009: ${p[*]}"
ok "sequential:3: steps of 3, wrapping inside the range"
