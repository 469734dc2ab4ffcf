# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# natlab-lib.sh: helpers for lab tests and demos (source it; bash). Needs tools/natlab, socat, od.
#
#   lab_up LAB ARGS...        natlab up, and `natlab down` on EXIT (also on failure). An EXIT trap set
#                             before the first lab_up is kept: it runs after the labs are down
#   whoami LAB HOST [SPORT]   "ip:port" that s's whoami service saw (from HOST, optionally from local SPORT)
#   stun_tcp LAB HOST IP PORT [SPORT]
#                             STUN Binding over TCP; prints "MAPPED_IP:PORT OTHER_IP:PORT ORIGIN_IP:PORT"
#                             (XOR-MAPPED-ADDRESS, OTHER-ADDRESS, RESPONSE-ORIGIN; "-" when absent)
#   stun_udp LAB HOST IP PORT [SPORT]   the same over UDP
#   flow_ports LAB HOST N     external ports of N new flows from HOST (to whoami, each from a fresh port)
#   lab_state LAB KEY         a value the lab recorded at up (its profile file, as `natlab status` shows
#                             it: nat_a, cgn_b, nat_a_blocks, cgn_a_hash_seed, ...)
#   in_block PORT BLOCK       is PORT inside BLOCK ("LO-HI" or "ADDR:LO-HI")?
#   wait_line FILE RE [SECS]  poll FILE (every 50 ms, 5 s by default) until grep finds the basic regex RE
#                             in it; 1 if it never does (`wait_line F RE || fail ...` waits and asserts)
#   fail MSG / ok MSG         test verdict lines
NATLAB=${NATLAB:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/natlab}
_NATLAB_LABS=()

fail() { echo "FAIL: $*" >&2; exit 1; }
ok()   { echo "ok: $*"; }

_NATLAB_PREV_EXIT=
_NATLAB_TRAPPED=

# Idempotent: a trap that runs it after lab_up's own did finds nothing left to do.
_natlab_cleanup() {
	local l
	for l in "${_NATLAB_LABS[@]}"; do "$NATLAB" down "$l" >/dev/null 2>&1 || echo "warning: natlab down $l failed" >&2; done
	_NATLAB_LABS=()
}
_natlab_save_exit() {   # "trap -- 'CMD' EXIT" -> CMD (own function: set -- must not clobber lab_up's args)
	[ -n "$1" ] || return 0
	eval "set -- $1"
	_NATLAB_PREV_EXIT=$3
}
_natlab_exit() {
	_natlab_cleanup
	eval "$_NATLAB_PREV_EXIT"
}
# unique_lab PREFIX: PREFIX (2-3 chars) plus digits from the pid and time, 8 characters at most
unique_lab() {
	local p=$1 ns
	ns=$(date +%s%N)
	printf '%s%0*d' "$p" $((8 - ${#p})) $(( ($$ * 7919 + 10#${ns:9:6} + RANDOM) % 10 ** (8 - ${#p}) ))
}
lab_up() {
	local lab=$1; shift
	_NATLAB_LABS+=("$lab")
	if [ -z "$_NATLAB_TRAPPED" ]; then
		# chain the caller's EXIT trap (e.g. removing its temp dir) instead of replacing it
		_natlab_save_exit "$(trap -p EXIT)"
		_NATLAB_TRAPPED=1
		trap _natlab_exit EXIT
	fi
	"$NATLAB" up "$lab" "$@" >/dev/null || fail "natlab up $lab $*"
}

whoami() {
	local lab=$1 h=$2 sp=${3:-} opt=""
	[ -n "$sp" ] && opt=",sourceport=$sp,reuseaddr"
	"$NATLAB" exec "$lab" "$h" -- socat -T2 - "TCP4:198.18.3.2:7000$opt" </dev/null 2>/dev/null
}

flow_ports() {
	local lab=$1 h=$2 n=$3 i m
	for ((i = 0; i < n; i++)); do
		m=$(whoami "$lab" "$h") && [ -n "$m" ] || { echo "flow_ports: flow $((i + 1)) from $h got no answer" >&2; return 1; }
		port_of "$m"
	done
}

lab_state() { sed -n "s/^$2=//p" "${NATLAB_RUNDIR:-/run/natlab}/$1/profile"; }

in_block() {
	local b=${2##*:}
	[ "$1" -ge "${b%-*}" ] && [ "$1" -le "${b#*-}" ]
}

stun_tcp() { _stun TCP4 0.3 -T2 "$@"; }
stun_udp() { _stun UDP4 0.5 -T1 "$@"; }

# _stun PROTO WAIT TIMEOUT LAB HOST IP PORT [SPORT]: send a 20-byte STUN Binding request (RFC 8489: type
# 0x0001, length 0, magic cookie, 12-byte txid) with socat, wait, and parse the answer.
_stun() {
	local proto=$1 wait=$2 tmo=$3 lab=$4 h=$5 ip=$6 port=$7 sp=${8:-} opt="" txid req hex
	[ -n "$sp" ] && opt=",sourceport=$sp,reuseaddr"
	txid=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
	req="\\x00\\x01\\x00\\x00\\x21\\x12\\xa4\\x42$(echo "$txid" | sed 's/../\\x&/g')"
	hex=$( (printf "$req"; sleep "$wait") | "$NATLAB" exec "$lab" "$h" -- socat "$tmo" - "$proto:$ip:$port$opt" 2>/dev/null |
		od -An -tx1 -v | tr -s ' \n' ' ')
	stun_parse "$txid" $hex
}

# stun_parse TXID BYTE... : check a Binding success response and print its addresses.
stun_parse() {
	local txid=$1; shift
	local -a b=("$@")
	local n=${#b[@]} i t l mapped=- other=- origin=-
	[ "$n" -ge 20 ] || { echo "stun: short or no response ($n bytes)" >&2; return 1; }
	[ "${b[0]}${b[1]}" = 0101 ] || { echo "stun: not a Binding success response (type ${b[0]}${b[1]})" >&2; return 1; }
	[ "${b[4]}${b[5]}${b[6]}${b[7]}" = 2112a442 ] || { echo "stun: bad magic cookie" >&2; return 1; }
	[ "$(printf '%s' "${b[@]:8:12}")" = "$txid" ] || { echo "stun: transaction id mismatch" >&2; return 1; }
	local len=$((16#${b[2]}${b[3]}))
	[ $((20 + len)) -le "$n" ] || { echo "stun: truncated ($n of $((20 + len)) bytes)" >&2; return 1; }
	i=20
	while [ $((i + 4)) -le $((20 + len)) ]; do
		t=${b[i]}${b[i+1]}; l=$((16#${b[i+2]}${b[i+3]}))
		local v=$((i + 4))
		if [ "$l" -ge 8 ] && [ "${b[v+1]}" = 01 ]; then
			local port=$((16#${b[v+2]}${b[v+3]})) a1=$((16#${b[v+4]})) a2=$((16#${b[v+5]})) a3=$((16#${b[v+6]})) a4=$((16#${b[v+7]}))
			case $t in
			0020) mapped="$((a1 ^ 0x21)).$((a2 ^ 0x12)).$((a3 ^ 0xa4)).$((a4 ^ 0x42)):$((port ^ 0x2112))" ;;
			802c) other="$a1.$a2.$a3.$a4:$port" ;;
			802b) origin="$a1.$a2.$a3.$a4:$port" ;;
			esac
		fi
		i=$((v + (l + 3) / 4 * 4))
	done
	echo "$mapped $other $origin"
}

# pcap_stream_bytes FILE SRC: the TCP stream bytes SRC's segments in FILE cover (tshark's relative
# sequence ranges merged), so a segment seen twice, a retransmission tshark does not flag as one,
# counts once, and a segment missing from the file leaves its bytes out. One connection per file.
pcap_stream_bytes() {
	tshark -n -r "$1" -Y "ip.src==$2 && tcp.len > 0" -T fields -e tcp.seq -e tcp.len 2>/dev/null |
		sort -n -k1,1 | awk '{ lo = $1; hi = $1 + $2
			if (n && lo <= end) { if (hi > end) end = hi; next }
			if (n) s += end - start
			start = lo; end = hi; n = 1 }
			END { if (n) s += end - start; print s + 0 }'
}

wait_line() {
	local f=$1 re=$2 i n=$(( ${3:-5} * 20 ))
	for ((i = 0; i < n; i++)); do grep -qs -- "$re" "$f" && return 0; sleep 0.05; done
	return 1
}
port_of() { echo "${1##*:}"; }
