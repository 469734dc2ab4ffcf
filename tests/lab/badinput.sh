#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# README's promise, for every subcommand: bad input gets exit status 2, a message on stderr that names
# what is wrong, nothing on stdout, and no packet on the wire.
#
# Each case below is one line: a name, an extended regex the message must match, and the arguments.
# It runs in the lab host a; a netdev counter on ra's port of a's LAN (lan-a: everything a puts on the
# wire, AF_PACKET and ARP included) must not move. a's resolver is its own loopback (ip netns exec
# mounts /etc/netns/<ns>/resolv.conf), so a name lookup asks no one on the wire either.
# Also: connect --local-port on a port in use leaves no connection on the server (s), and the files
# the options name are not created. Every failing case is named; the test fails at the end if any did.
# Two-sided punch input (the after-meeting abort) is punch_precheck's; here only one side's arguments.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}; [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
RP=${RAWPUNCH:-$BUILD/rawpunch}
[ -x "$RP" ] || { echo "FAIL: $RP not built (make)"; exit 1; }
# shellcheck source=tools/natlab-lib.sh
source tools/natlab-lib.sh
LAB=$(unique_lab bi)
T=$(mktemp -d /tmp/rp-badinput.XXXXXX)
chmod 755 "$T"
NSA="rp$LAB-a"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T" "/etc/netns/$NSA"
}
trap cleanup EXIT
lab_up "$LAB"
S=$(tools/natlab addr "$LAB" s)

# ---- the counter: every frame a sends arrives at ra on lan-a ----------------------------------
ip netns exec "rp$LAB-ra" nft -f - <<'EON'
table netdev badinput {
	counter from_a { }
	chain in {
		type filter hook ingress device "lan-a" priority -500; policy accept;
		counter name "from_a"
	}
}
EON
sent() { ip netns exec "rp$LAB-ra" nft list counter netdev badinput from_a | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }
mkdir -p "/etc/netns/$NSA"
echo "nameserver 127.0.0.1" >"/etc/netns/$NSA/resolv.conf"

# ---- fixtures ---------------------------------------------------------------------------------
head -c 32 /dev/urandom | base64 >"$T/good.sec"; chmod 600 "$T/good.sec"
echo password >"$T/weak.sec"
printf 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n' >"$T/pattern.sec"
: >"$T/empty"
mkdir "$T/dir"
echo 'not a pcap, not json' >"$T/text"
echo '{"a":1}' >"$T/notreport.json"
echo '{"version":' >"$T/cut.json"
printf 'user-only\n' >"$T/onecred"
# ports in use on a: a listener on 40100 (connect/probe --local-port) and on a's 7777 (--listen)
ip netns exec "$NSA" socat TCP4-LISTEN:40100,reuseaddr,fork /dev/null & pids+=($!)
ip netns exec "$NSA" socat TCP4-LISTEN:7777,bind=10.0.1.2,reuseaddr,fork /dev/null & pids+=($!)
# s: an echo service whose connections are counted afterwards
ip netns exec "rp$LAB-s" socat TCP4-LISTEN:7100,reuseaddr,fork EXEC:cat & pids+=($!)
for _ in $(seq 50); do
	ip netns exec "$NSA" ss -Htln 'sport = :40100' | grep -q . && ip netns exec "$NSA" ss -Htln 'sport = :7777' | grep -q . &&
		ip netns exec "rp$LAB-s" ss -Htln 'sport = :7100' | grep -q . && break
	sleep 0.1
done

# settle: nothing from a for 0.3 s (the ARP of the set-up, if any, is over) before the first case
prev=$(sent)
for _ in $(seq 30); do sleep 0.3; now=$(sent); [ "$now" = "$prev" ] && break; prev=$now; done

n=0 failed=()
# bad NAME REGEX ARGS...: rawpunch ARGS in a: exit 2, stderr matches REGEX, stdout empty, 0 packets
bad() {
	local name=$1 re=$2 before after rc=0 why=""
	shift 2
	n=$((n + 1))
	before=$(sent)
	timeout 15 ip netns exec "$NSA" "$RP" "$@" </dev/null >"$T/out" 2>"$T/err" || rc=$?
	sleep 0.05
	after=$(sent)
	[ "$rc" -eq 2 ] || why+=" exit $rc (want 2);"
	grep -Eq -- "$re" "$T/err" || why+=" stderr does not match /$re/;"
	[ ! -s "$T/out" ] || why+=" stdout: $(head -c 200 "$T/out" | tr '\n' '|');"
	[ "$after" -eq "$before" ] || why+=" $((after - before)) packet(s) on the wire;"
	if [ -n "$why" ]; then
		failed+=("$name")
		echo "FAIL $name: rawpunch $*:$why"
		sed 's/^/    stderr: /' "$T/err" | head -n 4
	else
		echo "ok   $name: $(head -n 1 "$T/err")"
	fi
}

# ---- the table ----------------------------------------------------------------------------------
N=/nonexistent/dir
bad top-none                'usage: rawpunch <command>'                       
bad top-unknown             "unknown command 'frob'"                          frob --x

bad syn-no-host             'missing HOST'                                    syn
bad syn-no-ports            'missing -p/--ports'                              syn "$S"
bad syn-port-0              "--ports '0'"                                     syn "$S" -p 0
bad syn-port-big            "--ports '70000'"                                 syn "$S" -p 70000
bad syn-short-addr          "HOST '1.2.3' is neither"                         syn 1.2.3 -p 80
bad syn-octal-addr          "HOST '010.0.1.1' is neither"                     syn 010.0.1.1 -p 80
bad syn-no-such-name        "cannot resolve 'nosuchhost.invalid'"             syn nosuchhost.invalid -p 80
bad syn-rate                "--rate 'fast'"                                   syn "$S" -p 80 --rate fast
bad syn-ttl                 "--ttl '256'"                                     syn "$S" -p 80 --ttl 256
bad syn-count               "--count '-1'"                                    syn "$S" -p 80 --count -1
bad syn-iface               "--iface 'nosuch0'"                               syn "$S" -p 80 --iface nosuch0
bad syn-dst-mac             "--dst-mac 'zz'"                                  syn "$S" -p 80 --dst-mac zz
bad syn-engine              "--engine 'foo'"                                  syn "$S" -p 80 --engine foo
bad syn-src                 "--src '1.2.3'"                                   syn "$S" -p 80 --src 1.2.3
bad syn-threads             "--threads '0'"                                   syn "$S" -p 80 --threads 0
bad syn-wscale              "--wscale '15'"                                   syn "$S" -p 80 --wscale 15
bad syn-w-no-dir            "-w $N/x.pcap: no such directory"                 syn "$S" -p 80 --dry-run -w "$N/x.pcap"
bad syn-w-not-dry           '-w writes the packets --dry-run would send'      syn "$S" -p 80 -w "$T/x.pcap"
bad syn-wait-no-watch       '--wait .*add --watch'                            syn "$S" -p 80 --wait 5
bad syn-dry-watch           '--dry-run sends nothing'                         syn "$S" -p 80 --dry-run --watch
bad syn-user                "--user: no such user 'nosuchuser'"               syn "$S" -p 80 --user nosuchuser
bad syn-no-value            "option '--ttl' needs a value"                    syn "$S" -p 80 --ttl
bad syn-unknown             "unknown option '--bogus'"                        syn "$S" -p 80 --bogus

bad watch-iface             "--iface: no interface 'nosuch0'"                 watch -i nosuch0
bad watch-port              "--port: '0'"                                     watch -p 0
bad watch-host              "--host: '1.2.3.4.5'"                             watch -H 1.2.3.4.5
bad watch-count             "--count: '0'"                                    watch -c 0
bad watch-timeout           "--timeout: '-1'"                                 watch -t -1
bad watch-direction         "--direction: 'sideways'"                         watch -d sideways
bad watch-snaplen           "--snaplen: '10'"                                 watch -s 10
bad watch-read-missing      "--read $T/none.pcap: No such file"               watch -r "$T/none.pcap"
bad watch-read-text         "--read $T/text: not a pcap file"                 watch -r "$T/text"
bad watch-write-no-dir      "--write $N/x.pcap: no such directory"            watch -w "$N/x.pcap" -t 1
bad watch-write-over-read   '--write would overwrite the --read file'         watch -r "$T/text" -w "$T/text"
bad watch-filter            "--filter 'tcp and and'"                          watch -f 'tcp and and'
bad watch-filter-port       '--filter cannot be combined with --port'         watch -f tcp -p 80
bad watch-user              "--user: no such user 'nosuchuser'"               watch -Z nosuchuser
bad watch-extra             "unexpected argument 'extra'"                     watch extra

bad connect-none            'missing HOST:PORT'                               connect
bad connect-no-port         "'$S': the port is missing"                       connect "$S"
bad connect-port-0          "'$S:0' is not HOST:PORT"                         connect "$S:0"
bad connect-short-addr      "'1.2.3:7100' is not HOST:PORT"                   connect 1.2.3:7100
bad connect-hex-addr        "'0x7f.1:7100' is not HOST:PORT"                  connect 0x7f.1:7100
bad connect-no-such-name    "'nosuchhost.invalid:80': cannot resolve"         connect nosuchhost.invalid:80
bad connect-multicast       "'224.0.0.1:80': not a unicast address"           connect 224.0.0.1:80
bad connect-port-list       "'7000-7001,0' is not a port list"                connect "$S:7000-7001,0"
bad connect-ttl             "--ttl: '0'"                                      connect --ttl 0 "$S:7100"
bad connect-timeout         "--timeout: '0'"                                  connect --timeout 0 "$S:7100"
bad connect-syn-interval    "--syn-interval: '5'"                             connect --syn-interval 5 "$S:7100"
bad connect-iface           "--iface: no interface 'nosuch0'"                 connect --iface nosuch0 "$S:7100"
bad connect-local-port-0    "--local-port: '0'"                               connect --local-port 0 "$S:7100"
bad connect-local-port-busy '--local-port 40100: in use on this host'         connect --local-port 40100 "$S:7100"
bad connect-local-port-low  '--local-port 80: below net.ipv4.ip_unprivileged_port_start' connect --local-port 80 "$S:7100"
bad connect-pcap-no-dir     "--pcap $N/c.pcap: no such directory"             connect --pcap "$N/c.pcap" "$S:7100"
bad connect-pcap-dir        "--pcap $T/dir: "                                 connect --pcap "$T/dir" "$S:7100"
bad connect-pcap-with-L     '--pcap records one attempt: not with -L'          connect -L 9000 --pcap "$T/c.pcap" "$S:7100"
bad connect-user            "--user: no such user 'nosuchuser'"               connect --user nosuchuser "$S:7100"
bad connect-modes           '--stdio, --exec, -L and --raw exclude each other' connect --stdio --raw "$S:7100"
bad connect-max-clients     '--max-clients goes with -L'                      connect --max-clients 3 "$S:7100"
bad connect-listen-spec     "-L: want \[ADDR:\]PORT .*'127.0.0.1:99999'"      connect -L 127.0.0.1:99999 "$S:7100"
bad connect-L-local-port    '-L dials every client from a fresh local port'   connect -L 9000 --local-port 40200 "$S:7100"
bad connect-raw-nofallback  '--no-fallback is about the handoff'              connect --raw --no-fallback "$S:7100"
bad connect-exec-empty      '--exec: empty command'                           connect --exec '' "$S:7100"
bad connect-two-targets     'one HOST:PORT expected'                          connect "$S:7100" "$S:7101"
bad connect-unknown         "unknown option '--bogus'"                        connect --bogus "$S:7100"

bad probe-no-stun           '--stun HOST\[:PORT\] is required'                probe
bad probe-stun-short        "--stun: .*'1.2.3'"                               probe --stun 1.2.3
bad probe-stun-port-0       "--stun: .*'$S:0'"                                probe --stun "$S:0"
bad probe-samples           "--samples: want 0..256, got '999'"               probe --stun "$S" --samples 999
bad probe-ttl-max           "--ttl-max: want 0..32, got '99'"                 probe --stun "$S" --ttl-max 99
bad probe-port-range        "--port-range: .*got '5-2'"                       probe --stun "$S" --port-range 5-2
bad probe-rendezvous        "--rendezvous: want HOST\[:PORT\], got ':7777'"   probe --stun "$S" --rendezvous :7777
bad probe-plot-ext          "--plot: the file must end in .png or .svg"       probe --stun "$S" --plot "$T/p.txt"
bad probe-plot-no-dir       "--plot $N/p.png: no such directory"              probe --stun "$S" --plot "$N/p.png"
bad probe-local-port-busy   '--local-port 40100: in use on this host'         probe --stun "$S" --local-port 40100
bad probe-local-port-low    '--local-port 80: below'                          probe --stun "$S" --local-port 80
bad probe-local-addr        '--local-addr 10.9.9.9: not an address of this host' probe --stun "$S" --local-addr 10.9.9.9
bad probe-user              "--user: no such user 'nosuchuser'"               probe --stun "$S" --user nosuchuser
bad probe-json-value        "option '--json' takes no value"                  probe --stun "$S" --json=1
bad probe-unknown           "unknown option '--bogus'"                        probe --stun "$S" --bogus

P=(punch --rendezvous "$S" --session bad)
bad punch-no-secret         '--secret-file FILE is required'                  "${P[@]}"
bad punch-secret-missing    "--secret-file $T/none: No such file"             "${P[@]}" --secret-file "$T/none"
bad punch-secret-weak       "--secret-file $T/weak.sec: 8 bytes; want at least" "${P[@]}" --secret-file "$T/weak.sec"
bad punch-secret-pattern    "--secret-file $T/pattern.sec: about [0-9]+ bits" "${P[@]}" --secret-file "$T/pattern.sec"
bad punch-secret-empty      "--secret-file $T/empty: 0 bytes"                 "${P[@]}" --secret-file "$T/empty"
bad punch-secret-dir        "--secret-file $T/dir: Is a directory"            "${P[@]}" --secret-file "$T/dir"
bad punch-rendezvous-short  "--rendezvous.*1.2.3"                             punch --rendezvous 1.2.3 --session bad --secret-file "$T/good.sec"
bad punch-rate              "--rate: '5'"                                     "${P[@]}" --secret-file "$T/good.sec" --rate 5
bad punch-rounds            "--rounds: '99'"                                  "${P[@]}" --secret-file "$T/good.sec" --rounds 99
bad punch-lead              "--lead: '5'"                                     "${P[@]}" --secret-file "$T/good.sec" --lead 5
bad punch-portmap           "--portmap: .*got 'foo'"                          "${P[@]}" --secret-file "$T/good.sec" --portmap foo
bad punch-report-no-dir     "--report $N/r.json: no such directory"           "${P[@]}" --secret-file "$T/good.sec" --report "$N/r.json"
bad punch-pcap-no-dir       "--pcap $N/p.pcap: no such directory"             "${P[@]}" --secret-file "$T/good.sec" --pcap "$N/p.pcap"
bad punch-user              "--user: no such user 'nosuchuser'"               "${P[@]}" --secret-file "$T/good.sec" --user nosuchuser
bad punch-modes             '--stdio, --exec and -L exclude each other'       "${P[@]}" --secret-file "$T/good.sec" --stdio --exec true
bad punch-relay-first       '--relay-first need --relay'                      "${P[@]}" --secret-file "$T/good.sec" --relay-first
bad punch-relay-no-secret   '--relay needs --relay-secret-file'               "${P[@]}" --secret-file "$T/good.sec" --relay "$S"
bad punch-relay-secret-missing "--relay-secret-file $T/none: No such file"    "${P[@]}" --secret-file "$T/good.sec" --relay "$S" --relay-secret-file "$T/none"
bad punch-offer-no-stun     '--offer/--answer need --stun'                    punch --offer --secret-file "$T/good.sec"
bad punch-session-empty     '--session: 1..255 bytes'                         punch --rendezvous "$S" --session '' --secret-file "$T/good.sec"
bad punch-unknown           "unknown option '--bogus'"                        "${P[@]}" --secret-file "$T/good.sec" --bogus

J=(rendezvous --join "$S" --session bad)
bad rv-no-mode              'give exactly one of --listen, --join, --filter-probe' rendezvous
bad rv-listen-port-0        "--listen: want ADDR\[:PORT\], got '127.0.0.1:0'" rendezvous --listen 127.0.0.1:0
bad rv-listen-not-ours      '--listen 10.9.9.9:7777: not an address of this host' rendezvous --listen 10.9.9.9
bad rv-listen-busy          '--listen 10.0.1.2:7777: in use on this host'     rendezvous --listen 10.0.1.2
bad rv-max-sessions         "--max-sessions: want 1..1000000, got '0'"        rendezvous --listen 127.0.0.1 --max-sessions 0
bad rv-listen-client-opt    '--listen takes no client options'                rendezvous --listen 127.0.0.1 --session x
bad rv-user                 "--user: no such user 'nosuchuser'"               rendezvous --listen 127.0.0.1 --user nosuchuser
bad rv-join-no-secret       '--join needs --session NAME and --secret-file'   "${J[@]}"
bad rv-join-weak            "--secret-file $T/weak.sec: 8 bytes"              "${J[@]}" --secret-file "$T/weak.sec"
bad rv-join-short           "--join: want HOST\[:PORT\], got '1.2.3'"         rendezvous --join 1.2.3 --session bad --secret-file "$T/good.sec"
bad rv-natinfo-missing      "--natinfo $T/none.json: No such file"            "${J[@]}" --secret-file "$T/good.sec" --natinfo "$T/none.json"
bad rv-natinfo-text         "--natinfo $T/text: not a natinfo JSON object"    "${J[@]}" --secret-file "$T/good.sec" --natinfo "$T/text"
bad rv-cand                 "--cand '0'"                                      "${J[@]}" --secret-file "$T/good.sec" --cand 0
bad rv-filter-probe-no-port '--filter-probe needs --port P'                   rendezvous --filter-probe "$S"
bad rv-unknown              "unknown option '--bogus'"                        rendezvous --bogus

R=(relay --server "$S")
bad relay-no-server         '--server HOST\[:PORT\] is required'              relay
bad relay-server-short      "--server '1.2.3'"                                relay --server 1.2.3 --secret-file "$T/good.sec" --connect --peer 1.2.3.4:5
bad relay-no-creds          'give one of --secret-file FILE and --cred-file'  "${R[@]}" --connect --peer 1.2.3.4:5
bad relay-secret-missing    "--secret-file $T/none: No such file"             "${R[@]}" --secret-file "$T/none" --connect --peer 1.2.3.4:5
bad relay-cred-one-line     "--cred-file $T/onecred: an empty .*password"       "${R[@]}" --cred-file "$T/onecred" --connect --peer 1.2.3.4:5
bad relay-connect-listen    'give one of --connect and --listen'              "${R[@]}" --secret-file "$T/good.sec" --connect --listen --peer 1.2.3.4:5
bad relay-peer-port-0       "--peer '1.2.3.4:0'"                              "${R[@]}" --secret-file "$T/good.sec" --connect --peer 1.2.3.4:0
bad relay-addr-file-no-dir  "--addr-file $N/a: no such directory"             "${R[@]}" --secret-file "$T/good.sec" --connect --peer 1.2.3.4:5 --addr-file "$N/a"
bad relay-addr-file-dir     "--addr-file $T/dir: is a directory"              "${R[@]}" --secret-file "$T/good.sec" --connect --peer 1.2.3.4:5 --addr-file "$T/dir"
bad relay-timeout           "--timeout '0'"                                   "${R[@]}" --secret-file "$T/good.sec" --connect --peer 1.2.3.4:5 --timeout 0
bad relay-user              "--user: no such user 'nosuchuser'"               "${R[@]}" --secret-file "$T/good.sec" --connect --peer 1.2.3.4:5 --user nosuchuser
bad relay-unknown           "unknown option '--bogus'"                        relay --bogus

bad portmap-no-port         '--port PORT is required'                         portmap
bad portmap-port-0          "--port: want 1..65535, got '0'"                  portmap --port 0
bad portmap-protocols       "--protocols: .*got 'foo'"                        portmap --port 4000 --protocols foo
bad portmap-lifetime        "--lifetime: .*got '0'"                           portmap --port 4000 --lifetime 0
bad portmap-gateway         "--gateway: want an IPv4 address, got '1.2.3'"    portmap --port 4000 --gateway 1.2.3
bad portmap-peer            "--peer: want HOST:PORT, got '1.2.3.4'"           portmap --port 4000 --peer 1.2.3.4
bad portmap-timeout         "--timeout: want 10..10000 ms, got '1'"           portmap --port 4000 --timeout 1
bad portmap-peer-no-pcp     '--peer is PCP'                                   portmap --port 4000 --peer "$S:80" --protocols upnp
bad portmap-delete-hold     '--delete removes .*--hold is about a new mapping' portmap --port 4000 --delete --hold 5
bad portmap-unknown         "unknown option '--bogus'"                        portmap --port 4000 --bogus
bad portmap-extra           "unexpected argument 'extra'"                     portmap --port 4000 extra

bad report-none             'give one or two report files'                    report
bad report-missing          "$T/none.json: No such file"                      report "$T/none.json"
bad report-not-report       "$T/notreport.json: not a punch report"           report "$T/notreport.json"
bad report-cut              "$T/cut.json: truncated JSON"                     report "$T/cut.json"
bad report-dir              "$T/dir: Is a directory"                          report "$T/dir"
bad report-three            'give one or two report files .* got 3'           report a b c
bad report-unknown          "unknown option '--bogus'"                        report --bogus

bad secret-no-dir           "$N/s: No such file or directory"                 secret "$N/s"
bad secret-exists           "$T/good.sec exists: not overwritten"             secret "$T/good.sec"
bad secret-two              'one FILE at most, got 2'                         secret "$T/s1" "$T/s2"
bad secret-unknown          "unknown option '--bogus'"                        secret --bogus

# ---- what the cases must not have left ---------------------------------------------------------
for f in "$T/x.pcap" "$T/c.pcap" "$T/p.txt" "$T/s1" "$T/s2"; do
	[ ! -e "$f" ] || { failed+=("files"); echo "FAIL files: $f was created by a refused command"; }
done
# the server never saw a connection from a (a port in use once made the handshake, then failed)
if ip netns exec "rp$LAB-s" ss -Htn 'sport = :7100' | grep -q .; then
	failed+=("server-conns"); echo "FAIL server-conns: s holds connections on 7100:"
	ip netns exec "rp$LAB-s" ss -tn 'sport = :7100'
fi

echo "$n cases, $(sent) packets from a in all (the set-up's included)"
[ ${#failed[@]} -eq 0 ] || fail "${#failed[@]} of $n cases: ${failed[*]}"
ok "$n bad inputs over every subcommand: exit 2, the option or value named on stderr, nothing on stdout, no packet"
