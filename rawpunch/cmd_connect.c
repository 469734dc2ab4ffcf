/* SPDX-License-Identifier: MIT */
/* rawpunch connect: one TCP connection whose handshake runs in userspace (raw packets, cookie ISN,
 * kernel RSTs suppressed), then either the whole connection in userspace (--raw) or a TCP_REPAIR
 * handoff to a kernel socket relayed to stdin/stdout. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/cli.h"
#include "rawpunch/fdmode.h"
#include "rawpunch/handoff.h"
#include "rawpunch/netif.h"
#include "rawpunch/session.h"

#define MAX_PORTS 1024

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	stop_flag = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch connect [--raw] [--local-port P] [--timeout S] [--ttl N] [--iface IF]\n"
		"                        [--syn-interval MS] [--pcap FILE] [-v] HOST:PORT\n"
		"\n"
		"PORT may be a list or ranges (7000-7010, 80,443; at most 1024 ports): a SYN goes to each every\n"
		"interval, and the first port whose reply carries our cookie becomes the connection.\n"
		"\n"
		"Open one TCP connection with the handshake done in userspace: SYNs carry a SipHash cookie\n"
		"ISN, every SYN-ACK/RST is checked against it (forged ones are ignored), the kernel's RSTs for\n"
		"the flow are dropped by a per-process nftables table while it runs. SYNs are repeated after\n"
		"RSTs, ICMP errors or silence until the timeout, as a punch must.\n"
		"\n"
		"  --raw              keep the whole connection in userspace: stdin goes to the peer (a few KB),\n"
		"                     what the peer sends goes to stdout, FIN close both ways\n"
		"                     (default: hand the connection to a kernel socket with TCP_REPAIR, then\n"
		"                     relay it to stdin/stdout)\n"
		"  --local-port P     source port (default: a free one)\n"
		"  --timeout S        handshake deadline in seconds (default 10)\n"
		"  --ttl N            IP TTL of the SYNs (default 64)\n"
		"  --iface IF         capture interface (default: the route's egress interface)\n"
		"  --syn-interval MS  SYN repeat interval in ms (default 1000)\n"
		"  --pcap FILE        write every packet of the attempt (both directions) to FILE\n"
		"  -v                 print per-packet events to stderr\n"
		"\n"
		"Exit status: 0 after a clean close, 1 on failure (with what was seen), 2 on bad usage.\n"
		"Needs CAP_NET_RAW and CAP_NET_ADMIN (raw socket, capture, nftables).\n");
}

static void trace_line(void *arg, const char *line)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(stderr, "[%5ld.%03ld] %s\n", (long)ts.tv_sec % 100000, ts.tv_nsec / 1000000, line);
}

static void print_stats(const struct rp_session_stats *st)
{
	fprintf(stderr,
		"connect: syns=%u replies=%u rsts=%u icmps=%u forged=%u syns_rcvd=%u established_ms=%.1f "
		"bytes_out=%llu bytes_in=%llu kernel_rsts_dropped=%lld\n",
		st->syns_sent, st->replies, st->rsts, st->icmps, st->forged, st->syns_rcvd,
		(double)st->t_established_ns / 1e6, (unsigned long long)st->bytes_out,
		(unsigned long long)st->bytes_in, (long long)st->guard_dropped);
}

static int do_handoff(struct rp_session *s)
{
	struct rp_handoff_params p;
	struct rp_handoff_result res;
	struct timespec ts;
	uint32_t la, ra;
	uint16_t lp, rp;
	int fd, r;

	rp_session_tuple(s, &la, &lp, &ra, &rp);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r = rp_handoff_from_tcb(rp_session_tcb(s), la, lp, ra, rp,
				(uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, &p);
	if (r)
		return rp_err_errno(r, "handoff: connection state");
	struct rp_handoff_opts ho = { .flags = RP_HO_NO_FALLBACK };
	fd = rp_handoff(&p, &ho, &res);
	rp_session_release(s);   /* the kernel owns the flow now (or nobody does): guard off */
	if (fd < 0) {
		rp_err_errno(fd, "handoff to a kernel socket (TCP_REPAIR)");
		rp_hint("use --raw to keep the connection in userspace");
		return 1;
	}
	r = rp_fd_stdio(fd, NULL);
	close(fd);
	if (r < 0)
		return rp_err_errno(r, "relay");
	return 0;
}

int cmd_connect(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "raw", no_argument, NULL, 'r' },
		{ "local-port", required_argument, NULL, 'l' },
		{ "timeout", required_argument, NULL, 't' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "iface", required_argument, NULL, 'i' },
		{ "syn-interval", required_argument, NULL, 'I' },
		{ "pcap", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct rp_session_opts o = { 0 };
	static uint16_t ports[MAX_PORTS];
	struct sockaddr_in dst;
	unsigned long v;
	bool raw = false, verbose = false;
	int c, r;

	optind = 1;
	opterr = 0;
	o.timeout_ns = 10000000000ull;
	while ((c = getopt_long(argc, argv, ":vh", lopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			raw = true;
			break;
		case 'l':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("connect", "--local-port: '%s' is not a port (1-65535)", optarg);
			o.lport = (uint16_t)v;
			break;
		case 't':
			if (rp_parse_ulong(optarg, 1, 3600, &v))
				return rp_usage_err("connect", "--timeout: '%s' is not a number of seconds (1-3600)", optarg);
			o.timeout_ns = v * 1000000000ull;
			break;
		case 'T':
			if (rp_parse_ulong(optarg, 1, 255, &v))
				return rp_usage_err("connect", "--ttl: '%s' is not a TTL (1-255)", optarg);
			o.syn_ttl = (uint8_t)v;
			break;
		case 'i':
			if (rp_iface_info(optarg, NULL, NULL, NULL))
				return rp_usage_err("connect", "--iface: no interface '%s'", optarg);
			o.iface = optarg;
			break;
		case 'I':
			if (rp_parse_ulong(optarg, 10, 60000, &v))
				return rp_usage_err("connect", "--syn-interval: '%s' is not a number of ms (10-60000)", optarg);
			o.syn_interval_ns = v * 1000000ull;
			break;
		case 'p':
			if (!*optarg)
				return rp_usage_err("connect", "--pcap: empty file name");
			o.pcap_path = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return rp_usage_err("connect", "%s needs a value", argv[optind - 1]);
		default:
			return rp_usage_err("connect", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return rp_usage_err("connect", optind >= argc ? "missing HOST:PORT" : "one HOST:PORT expected");
	const char *colon = strrchr(argv[optind], ':');
	if (!colon)
		return rp_usage_err("connect", "'%s': the port is missing (HOST:PORT)", argv[optind]);
	if (strpbrk(colon + 1, "-,")) {
		/* HOST:PORTS -- SYNs to each, the first port whose reply carries our cookie wins */
		char hp[300];
		int n = rp_parse_ports(colon + 1, ports, MAX_PORTS);
		if (n == -E2BIG)
			return rp_usage_err("connect", "'%s': at most %d ports", colon + 1, MAX_PORTS);
		if (n <= 0)
			return rp_usage_err("connect", "'%s' is not a port list (e.g. 7000-7010 or 80,443)", colon + 1);
		snprintf(hp, sizeof(hp), "%.*s:1", (int)(colon - argv[optind]), argv[optind]);
		r = rp_parse_hostport(hp, 0, &dst);
		o.rports = ports;
		o.n_rports = (size_t)n;
	} else {
		r = rp_parse_hostport(argv[optind], 0, &dst);
		o.rport = ntohs(dst.sin_port);
	}
	if (r == -EHOSTUNREACH)
		return rp_usage_err("connect", "'%s': cannot resolve the host (IPv4)", argv[optind]);
	if (r)
		return rp_usage_err("connect", "'%s' is not HOST:PORT", argv[optind]);
	if (!dst.sin_addr.s_addr || dst.sin_addr.s_addr == INADDR_BROADCAST || IN_MULTICAST(ntohl(dst.sin_addr.s_addr)))
		return rp_usage_err("connect", "'%s': not a unicast address", argv[optind]);

	o.raddr = dst.sin_addr.s_addr;
	o.persist = true;
	o.accept_syn = true;
	o.stop = &stop_flag;
	if (verbose) {
		o.trace = trace_line;
		o.trace_arg = NULL;
	}

	/* SIGINT/SIGTERM end the loops so every cleanup runs (the guard's 'owner' flag covers SIGKILL). */
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct rp_session *s;
	char oerr[512];
	r = rp_session_open_err(&o, &s, oerr, sizeof(oerr));
	if (r) {
		if (r == -ENETUNREACH || r == -EHOSTUNREACH)
			return rp_err("no route to %s", inet_ntoa(dst.sin_addr));
		rp_err("%s", oerr);
		if (r == -EPERM || r == -EACCES)
			rp_hint("raw sockets, capture and nftables need CAP_NET_RAW and CAP_NET_ADMIN: run as root, or "
				"'sudo setcap cap_net_raw,cap_net_admin+ep $(command -v rawpunch)'");
		return 1;
	}
	if (verbose) {
		uint32_t la;
		uint16_t lp;
		struct in_addr a;
		rp_session_tuple(s, &la, &lp, NULL, NULL);
		a.s_addr = la;
		fprintf(stderr, "connect: %s:%u -> %s\n", inet_ntoa(a), lp, argv[optind]);
	}
	r = rp_session_handshake(s);
	if (r) {
		char why[256];
		struct rp_session_stats st;
		rp_session_why(s, why, sizeof(why));
		rp_session_stats(s, &st);
		rp_session_close(s);
		if (verbose)
			print_stats(&st);
		if (r == -EINTR)
			return rp_err("interrupted during the handshake (%s)", why);
		if (r == -ETIMEDOUT)
			return rp_err("no connection to %s within the timeout: %s", argv[optind], why);
		rp_err("handshake with %s failed: %s (%s)", argv[optind], strerror(-r), why);
		return 1;
	}
	if (!raw) {
		r = do_handoff(s);
		rp_session_close(s);
		return r;
	}
	r = rp_session_exchange(s, STDIN_FILENO, STDOUT_FILENO, 0);
	struct rp_session_stats st;
	rp_session_stats(s, &st);
	rp_session_close(s);
	if (verbose)
		print_stats(&st);
	if (r == -EINTR)
		return rp_err("interrupted");
	if (r)
		return rp_err("connection to %s: %s", argv[optind], strerror(-r));
	return 0;
}
