#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# NAT lab self-test: random (fully-random) mapping shows no usable pattern; sequential-noise gives
# increasing ports with gaps (the noise host's flows take ports in between), at the configured rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
LAB=$(unique_lab ltr)
NATLAB_NOISE_RATE=10 lab_up "$LAB" --nat-a random --nat-b sequential-noise
grep -q '^noise_rate=10$' "/run/natlab/$LAB/profile" || fail "NATLAB_NOISE_RATE not honoured"

# --- random: 12 flows from ephemeral ports, then 4 destinations from one fixed local port.
ports=()
for i in $(seq 12); do ports+=("$(port_of "$(whoami "$LAB" a)")"); done
echo "  random, consecutive flows: ${ports[*]}"
sp=41234 fixed=()
fixed+=("$(port_of "$(whoami "$LAB" a $sp)")")
for dst in 198.18.3.2:3478 198.18.3.3:3479 198.18.3.3:3478; do
	r=$(stun_tcp "$LAB" a "${dst%:*}" "${dst#*:}" $sp) || fail "STUN via random NAT"
	fixed+=("$(port_of "${r%% *}")")
done
echo "  random, local port $sp to 4 destinations: ${fixed[*]}"
# No port preservation, no per-destination stability, no small-step pattern, spread over the range.
[ "$(printf '%s\n' "${fixed[@]}" | sort -u | wc -l)" -eq 4 ] || fail "random: the same local port kept its mapping"
for p in "${fixed[@]}"; do [ "$p" -ne $sp ] || fail "random: port $sp preserved"; done
all=("${ports[@]}" "${fixed[@]}")
[ "$(printf '%s\n' "${all[@]}" | sort -u | wc -l)" -eq ${#all[@]} ] || fail "random: repeated ports"
small=0
for ((i = 1; i < ${#ports[@]}; i++)); do
	d=$(( ports[i] - ports[i-1] )); d=${d#-}
	[ "$d" -le 64 ] && small=$((small + 1))
done
[ "$small" -le 2 ] || fail "random: $small of 11 steps are within 64 ports (predictable)"
lo=$(printf '%s\n' "${ports[@]}" | sort -n | head -1); hi=$(printf '%s\n' "${ports[@]}" | sort -n | tail -1)
[ $((hi - lo)) -ge 8192 ] || fail "random: 12 ports span only $((hi - lo))"
ok "random: no preservation, no per-destination stability, steps unpredictable, span $((hi - lo))"

# --- sequential-noise: flows 0.5 s apart; the NAT's counter moves ~5 in between (rate 10/s).
sleep 0.5
prev=$(port_of "$(whoami "$LAB" b)") gaps=() t0=$(date +%s%N)
for i in $(seq 6); do
	sleep 0.5
	p=$(port_of "$(whoami "$LAB" b)")
	gaps+=($((p - prev)))
	prev=$p
done
secs=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "  sequential-noise: gaps between our flows ${gaps[*]} over $secs ms"
sum=0
for g in "${gaps[@]}"; do
	[ "$g" -ge 1 ] || fail "sequential-noise: port went backwards or repeated (gaps ${gaps[*]})"
	sum=$((sum + g - 1))
done
# Noise flows seen = sum of (gap - 1); at 10/s over ~3 s expect ~30: accept a wide band.
expect=$((secs / 100))
[ "$sum" -ge $((expect / 3)) ] && [ "$sum" -le $((expect * 2 + 5)) ] ||
	fail "sequential-noise: $sum noise flows in $secs ms at rate 10/s (expected ~$expect)"
ok "sequential-noise: increasing ports, $sum noise flows in between (~$expect expected)"
