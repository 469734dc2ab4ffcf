/* SPDX-License-Identifier: MIT */
/* rawpunch connect: one TCP connection whose handshake runs in userspace (raw packets, cookie ISN,
 * kernel RSTs suppressed), then either the whole connection in userspace (--raw) or a TCP_REPAIR
 * handoff to a kernel socket (connect() from the same port where TCP_REPAIR is refused), given to
 * the user as stdin/stdout (--stdio), as a command's stdin/stdout (--exec) or, one new connection
 * per local client, behind a local listener (-L, like ssh -L).
 * This file: the options, their checks (nothing is sent on bad usage), privileges, signals and the
 * modes; cmd_connect_dial.c makes the connections. --pcap records the whole connection: the session's
 * capture is kept past the handoff (capture/capdump.h), on the flow's 4-tuple, until the data ends. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/privs.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/cmd_connect.h"
#include "rawpunch/handoff/fdmode.h"
#include "rawpunch/net/netif.h"

#define MAX_PORTS 1024

static volatile sig_atomic_t stop_flag;
static int stop_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int e = errno;
	stop_flag = sig;
	rp_cli_note_signal(sig);
	if (stop_pipe[1] >= 0) {
		char b = 1;
		if (write(stop_pipe[1], &b, 1) < 0) {
			/* full pipe: a stop is already pending */
		}
	}
	errno = e;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch connect [--stdio | --exec CMD | -L [ADDR:]PORT [--max-clients N] | --raw]\n"
		"                        [--local-port P] [--timeout S] [--ttl N] [--iface IF] [--syn-interval MS]\n"
		"                        [--pcap FILE] [--no-fallback] [--user USER] [-q] [-v] HOST:PORT\n"
		"\n"
		"Open a TCP connection to HOST:PORT with the handshake done in userspace: SYNs carry a SipHash\n"
		"cookie ISN, every SYN-ACK/RST is checked against it (forged ones are ignored), the kernel's RSTs\n"
		"for the flow are dropped by a per-process nftables table while it runs. SYNs are repeated after\n"
		"RSTs, ICMP errors or silence until the timeout, as a punch must. Then the connection is handed to\n"
		"a kernel socket with TCP_REPAIR (same connection, kernel speed) and given to you:\n"
		"\n"
		"  --stdio            netcat-like: stdin goes to the peer, what it sends to stdout (the default)\n"
		"  --exec CMD         the connection becomes the stdin and stdout of '/bin/sh -c CMD' (like socat\n"
		"                     EXEC); connect exits with CMD's exit status\n"
		"  -L [ADDR:]PORT     like ssh -L: listen on ADDR:PORT (default 127.0.0.1) and carry EVERY local\n"
		"                     client over its OWN new connection to HOST:PORT (own raw handshake from a\n"
		"                     fresh local port, own handoff); several clients at once. Ctrl-C stops\n"
		"                     accepting and waits for the open ones (a second Ctrl-C ends them)\n"
		"  --max-clients N    with -L: stop after N clients were served\n"
		"  --raw              keep the whole connection in userspace (no handoff): stdin goes to the peer\n"
		"                     (a few KB), what it sends to stdout, FIN closes both ways\n"
		"\n"
		"  --local-port P     source port (default: a free one). Not with -L: one local port carries one\n"
		"                     connection to HOST:PORT at a time, so every -L client gets a fresh port\n"
		"  --timeout S        handshake (or fallback connect) deadline in seconds (default 10)\n"
		"  --ttl N            IP TTL of the SYNs (default 64)\n"
		"  --iface IF         capture interface (default: the route's egress interface)\n"
		"  --syn-interval MS  SYN repeat interval in ms (default 1000)\n"
		"  --pcap FILE        write every packet of the connection to FILE, both directions: the\n"
		"                     handshake and, after the handoff, the data until the connection ends\n"
		"                     (a capture on its 4-tuple; the count is shown at the end). Not with -L\n"
		"  --no-fallback      TCP_REPAIR or nothing (see below)\n"
		"  --user USER        run as USER once set up (default as root: the invoking user (sudo), else\n"
		"                     nobody; 'root' keeps uid 0, still without capabilities)\n"
		"  -q                 no status lines on stderr (errors still)\n"
		"  -v                 per-packet events and counters on stderr\n"
		"\n"
		"PORT may be a list or ranges (7000-7010, 80,443; at most 1024 ports): a SYN goes to each every\n"
		"interval, and the first port whose reply carries our cookie becomes the connection.\n"
		"\n"
		"Fallback: where the kernel refuses TCP_REPAIR (no CAP_NET_ADMIN, an old kernel, a security\n"
		"policy; tested once at start with a throwaway socket) there is nothing a userspace handshake could\n"
		"be handed to, and the nftables guard it needs wants CAP_NET_ADMIN too. connect then skips it and\n"
		"makes a kernel connect() from the local port instead, retried after refusals until the timeout\n"
		"(a simultaneous open if the peer does the same). --no-fallback makes that an error, before any\n"
		"packet is sent. A status line on stderr says which path each connection took:\n"
		"  handoff: repair 10.0.1.2:40123 -> 198.18.3.2:7000\n"
		"  handoff: connect (TCP_REPAIR refused: Operation not permitted) 10.0.1.2:40123 -> 198.18.3.2:7000\n"
		"\n"
		"Privileges: needs CAP_NET_RAW and CAP_NET_ADMIN (raw socket, capture, nftables, TCP_REPAIR).\n"
		"Right after the options are checked and --pcap is opened, it becomes the --user (as root: the\n"
		"invoking user, else nobody), sets no_new_privs and keeps only those two capabilities (bounding\n"
		"set included). --stdio and --exec drop them too as soon as the kernel owns the connection,\n"
		"before any data is relayed or CMD runs, so CMD runs unprivileged. -L and --raw keep the two for\n"
		"as long as they run (every -L client needs a raw handshake and a handoff; --raw sends raw\n"
		"packets to the end): they run no command.\n"
		"\n"
		"Exit status: 0 after a clean close, 1 on failure (with what was seen), 2 on bad usage (nothing\n"
		"sent); --exec: CMD's status; -L: 0 when every accepted client was served, 1 otherwise.\n");
}

static void default_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
}

int cmd_connect(int argc, char **argv)
{
	enum { O_STDIO = 256, O_EXEC, O_MAXC, O_NOFB, O_USER };
	static const struct option lopts[] = {
		{ "raw", no_argument, NULL, 'r' },
		{ "stdio", no_argument, NULL, O_STDIO },
		{ "exec", required_argument, NULL, O_EXEC },
		{ "listen", required_argument, NULL, 'L' },
		{ "max-clients", required_argument, NULL, O_MAXC },
		{ "no-fallback", no_argument, NULL, O_NOFB },
		{ "user", required_argument, NULL, O_USER },
		{ "local-port", required_argument, NULL, 'l' },
		{ "timeout", required_argument, NULL, 't' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "iface", required_argument, NULL, 'i' },
		{ "syn-interval", required_argument, NULL, 'I' },
		{ "pcap", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static uint16_t ports[MAX_PORTS];
	static struct conn c;
	struct sockaddr_in dst;
	unsigned long v, max_clients = 0;
	const char *exec_cmd = NULL, *listen_spec = NULL, *user = NULL, *pcap_path = NULL;
	bool raw = false, stdio_flag = false, have_maxc = false;
	int opt, r;

	memset(&c, 0, sizeof(c));
	c.hold_fd = -1;
	pthread_mutex_init(&c.mu, NULL);
	struct rp_session_opts *o = &c.o;
	optind = 1;
	opterr = 0;
	o->timeout_ns = 10000000000ull;
	while ((opt = getopt_long(argc, argv, ":L:qvh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			raw = true;
			break;
		case O_STDIO:
			stdio_flag = true;
			break;
		case O_EXEC:
			if (!*optarg)
				return rp_usage_err("connect", "--exec: empty command");
			exec_cmd = optarg;
			break;
		case 'L':
			listen_spec = optarg;
			break;
		case O_MAXC:
			if (rp_parse_ulong(optarg, 1, 1000000, &max_clients))
				return rp_usage_err("connect", "--max-clients: '%s' is not a number (1-1000000)", optarg);
			have_maxc = true;
			break;
		case O_NOFB:
			c.no_fallback = true;
			break;
		case O_USER:
			if (!*optarg)
				return rp_usage_err("connect", "--user: empty user name");
			user = optarg;
			break;
		case 'l':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("connect", "--local-port: '%s' is not a port (1-65535)", optarg);
			o->lport = (uint16_t)v;
			break;
		case 't':
			if (rp_parse_ulong(optarg, 1, 3600, &v))
				return rp_usage_err("connect", "--timeout: '%s' is not a number of seconds (1-3600)", optarg);
			o->timeout_ns = v * 1000000000ull;
			break;
		case 'T':
			if (rp_parse_ulong(optarg, 1, 255, &v))
				return rp_usage_err("connect", "--ttl: '%s' is not a TTL (1-255)", optarg);
			o->syn_ttl = (uint8_t)v;
			break;
		case 'i':
			if (rp_iface_info(optarg, NULL, NULL, NULL))
				return rp_usage_err("connect", "--iface: no interface '%s'", optarg);
			o->iface = optarg;
			break;
		case 'I':
			if (rp_parse_ulong(optarg, 10, 60000, &v))
				return rp_usage_err("connect", "--syn-interval: '%s' is not a number of ms (10-60000)", optarg);
			o->syn_interval_ns = v * 1000000ull;
			break;
		case 'p':
			if (!*optarg)
				return rp_usage_err("connect", "--pcap: empty file name");
			pcap_path = optarg;
			break;
		case 'q':
			c.quiet = true;
			break;
		case 'v':
			c.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return rp_usage_getopt("connect", opt, argv);
		}
	}
	/* data modes: one of --stdio (default), --exec, -L, --raw */
	int nmodes = !!stdio_flag + !!exec_cmd + !!listen_spec + !!raw;
	if (nmodes > 1)
		return rp_usage_err("connect", "--stdio, --exec, -L and --raw exclude each other: choose one");
	if (have_maxc && !listen_spec)
		return rp_usage_err("connect", "--max-clients goes with -L");
	if (listen_spec && o->lport)
		return rp_usage_err("connect", "-L dials every client from a fresh local port: --local-port names one, "
				    "which can carry only one connection to HOST:PORT at a time");
	if (listen_spec && pcap_path)
		return rp_usage_err("connect", "--pcap records one attempt: not with -L");
	if (raw && c.no_fallback)
		return rp_usage_err("connect", "--no-fallback is about the handoff: --raw has none");
	if (optind != argc - 1)
		return rp_usage_err("connect", optind >= argc ? "missing HOST:PORT" : "one HOST:PORT expected");
	const char *target = argv[optind];
	const char *colon = strrchr(target, ':');
	if (!colon)
		return rp_usage_err("connect", "'%s': the port is missing (HOST:PORT)", target);
	if (strpbrk(colon + 1, "-,")) {
		/* HOST:PORTS -- SYNs to each, the first port whose reply carries our cookie wins */
		char hp[300];
		int n = rp_parse_ports(colon + 1, ports, MAX_PORTS);
		if (n == -E2BIG)
			return rp_usage_err("connect", "'%s': at most %d ports", colon + 1, MAX_PORTS);
		if (n <= 0)
			return rp_usage_err("connect", "'%s' is not a port list (e.g. 7000-7010 or 80,443)", colon + 1);
		snprintf(hp, sizeof(hp), "%.*s:1", (int)(colon - target), target);
		r = rp_parse_hostport(hp, 0, &dst);
		o->rports = ports;
		o->n_rports = (size_t)n;
	} else {
		r = rp_parse_hostport(target, 0, &dst);
		o->rport = ntohs(dst.sin_port);
	}
	if (r == -EHOSTUNREACH)
		return rp_usage_err("connect", "'%s': cannot resolve the host (IPv4)", target);
	if (r)
		return rp_usage_err("connect", "'%s' is not HOST:PORT", target);
	if (!dst.sin_addr.s_addr || dst.sin_addr.s_addr == INADDR_BROADCAST || IN_MULTICAST(ntohl(dst.sin_addr.s_addr)))
		return rp_usage_err("connect", "'%s': not a unicast address", target);

	/* who we run as, and the --pcap file opened for that user, before the drop and before any packet */
	uid_t uid;
	gid_t gid;
	if ((r = rp_cli_user("connect", user, &uid, &gid)))
		return r;
	/* --local-port: free, and bindable after the drop (the handoff binds it then), checked and held
	 * now: a port in use once made the handshake on the wire and then failed the handoff */
	if (o->lport) {
		struct rp_route rt;
		if ((c.hold_fd = rp_cli_local_port("connect", rp_route_get(dst.sin_addr.s_addr, &rt) ? 0 : rt.src,
						   o->lport)) < 0)
			return 2;
	}
	if (pcap_path && !(o->pcap_file = rp_cli_out("connect", "--pcap", pcap_path, uid, gid)))
		return 2;

	/* -L: the listening socket now, so a bad or busy ADDR:PORT fails before any packet */
	int lfd = -1;
	if (listen_spec) {
		lfd = rp_forward_listen(listen_spec, 64);
		if (lfd == -EINVAL)
			return rp_usage_err("connect", "-L: want [ADDR:]PORT with an IPv4 ADDR, got '%s'", listen_spec);
		/* (no --pcap with -L: nothing else to close here) */
		if (lfd < 0) {
			char what[128];
			snprintf(what, sizeof(what), "-L %s", listen_spec);
			return rp_err_errno(lfd, what);
		}
	}

	/* From here on: the unprivileged user (--user, the invoking one, nobody), no_new_privs, and only
	 * CAP_NET_RAW and CAP_NET_ADMIN, which every raw handshake and handoff needs: --stdio and --exec
	 * drop them too once the kernel owns the connection; -L and --raw keep them to the end. */
	if (rp_cli_enter(user, RP_PRIV_NET)) {
		if (lfd >= 0)
			close(lfd);
		return 1;
	}

	c.target = target;
	c.pcap_path = pcap_path;
	o->raddr = dst.sin_addr.s_addr;
	o->persist = true;
	o->accept_syn = true;
	o->stop = &stop_flag;
	if (c.verbose) {
		o->trace = rp_trace_stderr;
		o->trace_arg = NULL;
	}
	if (!raw) {
		c.repair_errno = connect_repair_probe();
		if (c.repair_errno && !connect_refusal(c.repair_errno)) {
			if (lfd >= 0)
				close(lfd);
			return rp_err_errno(-c.repair_errno, "TCP_REPAIR test socket");
		}
		if (c.repair_errno) {
			const char *why = strerror(c.repair_errno);
			if (c.no_fallback || o->n_rports) {
				if (lfd >= 0)
					close(lfd);
				rp_err("the kernel refuses TCP_REPAIR (%s): no handoff possible; nothing was sent", why);
				if (c.repair_errno == EPERM || c.repair_errno == EACCES)
					rp_hint("TCP_REPAIR needs CAP_NET_ADMIN in the network namespace");
				if (o->n_rports)
					rp_hint("the kernel connect() fallback needs one HOST:PORT, not a port list");
				else
					rp_hint("without --no-fallback a kernel connect() from the local port is made instead");
				return 1;
			}
			if (c.verbose)
				fprintf(stderr, "connect: TCP_REPAIR refused (%s): kernel connect() instead of the raw "
					"handshake (--ttl, --syn-interval, --iface, --pcap do not apply)\n", why);
		}
	}

	/* SIGINT/SIGTERM/SIGHUP end the loops so every cleanup runs (the guard's 'owner' flag covers
	 * SIGKILL); a second one kills at once (SA_RESETHAND). */
	if (listen_spec && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK)) {
		close(lfd);
		return rp_err_errno(-errno, "pipe");
	}
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (listen_spec) {
		r = connect_forward(&c, lfd, listen_spec, (unsigned)max_clients, stop_pipe[0]);
		close(stop_pipe[0]);
		close(stop_pipe[1]);
		stop_pipe[0] = stop_pipe[1] = -1;
		return r;
	}

	if (raw)
		return connect_raw(&c);

	int fd = connect_dial(&c, NULL);
	if (fd < 0) {
		connect_pcap_end(&c, 0);
		return 1;
	}
	/* The kernel owns the connection and the guard is gone: nothing privileged is left to do (an open
	 * --pcap capture goes on reading without privileges). */
	if (rp_cli_drop_caps()) {
		close(fd);
		connect_pcap_end(&c, 0);
		return 1;
	}
	/* like netcat: Ctrl-C now simply ends it (the kernel closes the socket; every packet the --pcap
	 * file got is already written) */
	default_signals();
	if (exec_cmd) {
		r = rp_fd_exec(fd, exec_cmd);
		close(fd);
		connect_pcap_end(&c, RP_CLI_PCAP_LINGER_MS);
		if (r < 0) {
			char what[300];
			snprintf(what, sizeof(what), "--exec '%.200s'", exec_cmd);
			return rp_err_errno(r, what);
		}
		return r;
	}
	struct rp_relay_stats rs = { 0 };
	r = rp_fd_stdio(fd, &rs);
	close(fd);
	connect_pcap_end(&c, RP_CLI_PCAP_LINGER_MS);
	if (c.verbose)
		fprintf(stderr, "connect: relayed out=%llu in=%llu\n", (unsigned long long)rs.a_to_b,
			(unsigned long long)rs.b_to_a);
	if (r < 0) {
		char what[300];
		snprintf(what, sizeof(what), "the connection to %s (stdin/stdout)", target);
		return rp_err_errno(r, what);
	}
	return 0;
}
