/* SPDX-License-Identifier: MIT */
/* rawpunch punch's options (punch_cli.h): the usage text, the parser, and reading the secret file and
 * a pasted line of input. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/punch_cli.h"
#include "rawpunch/portmap/portmap.h"
#include "rawpunch/rendezvous/proto.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch punch --rendezvous HOST[:PORT][,...] --session NAME --secret-file FILE\n"
		"                      [--relay HOST[:PORT][,...] --relay-secret-file FILE [--relay-first]]\n"
		"                      [--stdio | --exec CMD | -L [ADDR:]PORT] [--report FILE] [--pcap FILE]\n"
		"                      [--stun HOST[:PORT]] [--local-port P] [--rate PPS] [--rounds N] [options]\n"
		"       rawpunch punch --offer --stun HOST[:PORT] --secret-file FILE [data mode] [options]\n"
		"       rawpunch punch --answer TEXT|- --stun HOST[:PORT] --secret-file FILE [data mode] [options]\n"
		"\n"
		"Both peers run this with the same session and secret. Each probes its NAT from the punch port\n"
		"(mapping, allocation, filtering, nat_ttl), meets the other at the rendezvous server (everything\n"
		"exchanged there is sealed with a key from the secret), and both compute the same plan:\n"
		"  simultaneous open   both external ports known (preserving / endpoint-independent / no NAT);\n"
		"                      low-TTL primes first on a NAT that answers unsolicited SYNs\n"
		"  predicted-burst     a sequential NAT: its side primes the predicted port, the other bursts SYNs\n"
		"                      to the prediction window; both sequential: every target primed, then\n"
		"                      lockstep bursts staggered so other hosts' flows in between still pair\n"
		"  birthday            a random NAT: that side opens many mappings with low-TTL SYNs, the other\n"
		"                      probes random ports meanwhile (a probe finds the mappings made before it:\n"
		"                      256 x 1287 = 99%%); only the NAT's port block when the probe found one\n"
		"                      (256 ports: 128 x 48 = 99%%)\n"
		"  block-pairs         both NATs random (or one sequential) inside known port blocks: each side\n"
		"                      opens k low-TTL mappings to random ports of the other's block, then sends\n"
		"                      the same tuples at full TTL (256 x 256 blocks: k = 550 for 99%%)\n"
		"At the agreed instant both execute; every reply is validated (SYNs by a keyed hash of the\n"
		"round, SYN-ACKs by our own ISN), the first valid SYN or SYN-ACK completes the handshake in\n"
		"userspace and the connection is handed to a kernel socket (TCP_REPAIR). On a miss both\n"
		"re-probe and retry with a wider window, up to --rounds. Plan options (--rate, --rounds,\n"
		"--max-open, --max-probes) must be the same on both sides.\n"
		"\n"
		"  --rendezvous HOST[:PORT][,HOST[:PORT]...]\n"
		"                            rendezvous server (port %d by default); several: both peers order\n"
		"                            them alike for the session and meet at the first both reach (a\n"
		"                            refused, silent or dying server costs about a second)\n"
		"  --relay HOST[:PORT][,...] TURN servers (TCP, port 3478 by default; the first that allocates):\n"
		"                            when no strategy applies or every round fails, the session goes\n"
		"                            on through the relay (status and report say path relay, and why)\n"
		"  --relay-secret-file FILE  the TURN server's shared secret (coturn --use-auth-secret); the\n"
		"                            credentials are made from it, never taken from the command line\n"
		"  --relay-first             the data mode starts at once over the relay while the punch runs;\n"
		"                            when the direct connection is up, both byte streams move to it\n"
		"                            (nothing lost, duplicated or reordered) and the relay is released\n"
		"  --session NAME            session name both peers use\n"
		"  --secret-file FILE        shared secret (its bytes; one trailing newline is ignored)\n"
		"  --stdio                   relay the connection to stdin/stdout (default)\n"
		"  --exec CMD                run /bin/sh -c CMD with the connection as its stdin/stdout\n"
		"  -L [ADDR:]PORT            listen on ADDR:PORT (127.0.0.1 by default) and relay the first\n"
		"                            client over the punched connection\n"
		"  --offer                   serverless: print an offer text (one line on stderr), then read the\n"
		"                            peer's answer as the first line of stdin\n"
		"  --answer TEXT|-           serverless: answer this offer (\"-\": read it from stdin); prints the\n"
		"                            answer on stderr; both start --start-in seconds later. Needs\n"
		"                            synchronised clocks (NTP), one round, filtering unknown (primes)\n"
		"  --start-in S              serverless: seconds from the answer to the start, 2..600 (20)\n"
		"  --report FILE             write a JSON account of the attempt (natinfos, plan, rounds, result)\n"
		"  --pcap FILE               write every packet of the connection to FILE, both directions: the\n"
		"                            punch and, after the handoff, the data until the connection ends\n"
		"                            (a capture on its 4-tuple; the count is shown at the end). Over the\n"
		"                            relay: the punch only (--relay-first: and the direct part after the\n"
		"                            move; the bytes relayed before it are not in the file)\n"
		"  --stun HOST[:PORT]        STUN server (TCP; default: the rendezvous host, port 3478)\n"
		"  --local-port P            punch port (default: a free one)\n"
		"  --rate PPS                SYN rate cap per side, 10..1000000 (default 2000)\n"
		"  --rounds N                attempts, 1..%d (default: the plan's, 3; 2 for simultaneous open)\n"
		"  --max-open K              birthday: mappings the hard side opens (default 256)\n"
		"  --max-probes M            birthday: most probes of the easy side (default 2048)\n"
		"  --samples N               allocation samples of the probe, 4..64 (default 6)\n"
		"  --timeout S               wait for the peer at the rendezvous, 1..3600 (default 30)\n"
		"  --lead MS|auto            time from the meeting to the start, 100..10000 ms; auto (default):\n"
		"                            from the measured RTTs to the server, both clock errors and a set-up\n"
		"                            allowance\n"
		"  --fresh-probe             probe in full even if a probe of this network from the last 5 minutes\n"
		"                            is cached (/run/rawpunch/u<UID>/probe-*.json, or in $XDG_CACHE_HOME/rawpunch:\n"
		"                            delete those to clear; used only after one round of STUN bindings\n"
		"                            from the punch port confirms it)\n"
		"  --user USER               run as USER once set up (default as root: the invoking user (sudo),\n"
		"                            else nobody; 'root' keeps uid 0, still without capabilities)\n"
		"  --portmap LIST            ask the NAT for a mapping of the punch port with these of pcp,\n"
		"                            natpmp, upnp (default: all; beside the probe, ~0.25 s at most\n"
		"                            when nothing answers); a granted one makes this side easy\n"
		"  --no-portmap              do not ask for a port mapping\n"
		"  -q, --quiet               no status lines on stderr (errors still)\n"
		"  -v, --verbose             per-packet events on stderr\n"
		"\n"
		"Status lines go to stderr (with a progress line on a terminal); stdout carries only data.\n"
		"Exit status: 0 after the data mode ended, 1 if no connection came about (with the reason: a\n"
		"rendezvous or STUN server that does not answer is named before the probe; a peer that gives up\n"
		"after the meeting says why, and this side stops at once), 2 on bad usage, missing capabilities\n"
		"or a --local-port in use (found before a packet is sent). Needs CAP_NET_RAW and CAP_NET_ADMIN\n"
		"(raw SYNs, capture, nftables, TCP_REPAIR): once the secret is read and --report / --pcap are\n"
		"open, it runs as --user with no_new_privs and only those two, and drops them too when the\n"
		"kernel owns the connection, before any data or CMD.\n",
		RV_DEFAULT_PORT, RP_PUNCH_MAX_ROUNDS);
}

int punch_read_line(int fd, char *buf, size_t cap, volatile sig_atomic_t *stop)
{
	size_t n = 0;
	for (;;) {
		char ch;
		ssize_t k = read(fd, &ch, 1);
		if (k < 0) {
			if (errno == EINTR && !(stop && *stop))
				continue;
			return errno == EINTR ? -EINTR : -errno;
		}
		if (k == 0) {
			if (!n)
				return -ENODATA;
			break;
		}
		if (ch == '\n')
			break;
		if (n + 1 >= cap)
			return -EMSGSIZE;
		buf[n++] = ch;
	}
	while (n && (buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = 0;
	return (int)n;
}

/* "HOST[:PORT][,HOST[:PORT]...]" into at most max addresses. 0, -E2BIG, or rp_parse_hostport's error. */
static int parse_list(const char *spec, uint16_t defport, struct sockaddr_in *out, unsigned max, unsigned *n)
{
	char buf[1024];
	char *save = NULL;
	if (strlen(spec) >= sizeof(buf))
		return -E2BIG;
	strcpy(buf, spec);
	*n = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n >= max)
			return -E2BIG;
		int r = rp_parse_hostport(tok, defport, &out[*n]);
		if (r)
			return r;
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

static const char *list_err(int r, unsigned max)
{
	static char m[64];
	if (r == -E2BIG)
		return snprintf(m, sizeof(m), "more than %u servers", max), m;
	return r == -EHOSTUNREACH ? "cannot resolve a host" : "not HOST[:PORT][,HOST[:PORT]...]";
}

int punch_parse(int argc, char **argv, struct punch_cfg *c)
{
	static const struct option lopts[] = {
		{ "rendezvous", required_argument, NULL, 'R' },
		{ "session", required_argument, NULL, 'S' },
		{ "secret-file", required_argument, NULL, 'K' },
		{ "stdio", no_argument, NULL, 's' },
		{ "exec", required_argument, NULL, 'e' },
		{ "report", required_argument, NULL, 'r' },
		{ "pcap", required_argument, NULL, 'p' },
		{ "stun", required_argument, NULL, 'U' },
		{ "local-port", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'a' },
		{ "rounds", required_argument, NULL, 'n' },
		{ "max-open", required_argument, NULL, 'o' },
		{ "max-probes", required_argument, NULL, 'm' },
		{ "samples", required_argument, NULL, 'N' },
		{ "timeout", required_argument, NULL, 't' },
		{ "lead", required_argument, NULL, 'd' },
		{ "user", required_argument, NULL, 'u' },
		{ "offer", no_argument, NULL, 'O' },
		{ "fresh-probe", no_argument, NULL, 'P' },
		{ "answer", required_argument, NULL, 'A' },
		{ "start-in", required_argument, NULL, 'I' },
		{ "relay", required_argument, NULL, 'T' },
		{ "relay-secret-file", required_argument, NULL, 'X' },
		{ "relay-first", no_argument, NULL, 'F' },
		{ "portmap", required_argument, NULL, 'M' },
		{ "no-portmap", no_argument, NULL, 'W' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long v;
	int ch, modes = 0;
	const char *stun = NULL, *rv = NULL, *relay = NULL;

	optind = 1;
	opterr = 0;
	c->samples = 6;
	c->timeout_s = 30;
	c->lead_ms = 0;   /* auto */
	c->start_in_s = 20;
	while ((ch = getopt_long(argc, argv, ":L:qvh", lopts, NULL)) != -1) {
		switch (ch) {
		case 'R': rv = optarg; break;
		case 'S':
			if (!*optarg || strlen(optarg) > 255)
				return rp_usage_err("punch", "--session: 1..255 bytes");
			c->session = optarg;
			break;
		case 'K': c->secret_file = optarg; break;
		case 's': c->mode = PUNCH_STDIO; modes++; break;
		case 'e':
			if (!*optarg)
				return rp_usage_err("punch", "--exec: empty command");
			c->mode = PUNCH_EXEC;
			c->exec_cmd = optarg;
			modes++;
			break;
		case 'L': c->mode = PUNCH_FORWARD; c->fwd_spec = optarg; modes++; break;
		case 'r':
			if (!*optarg)
				return rp_usage_err("punch", "--report: empty file name");
			c->report = optarg;
			break;
		case 'p':
			if (!*optarg)
				return rp_usage_err("punch", "--pcap: empty file name");
			c->pcap = optarg;
			break;
		case 'U': stun = optarg; break;
		case 'l':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("punch", "--local-port: '%s' is not a port (1-65535)", optarg);
			c->lport = (uint16_t)v;
			break;
		case 'a':
			if (rp_parse_ulong(optarg, 10, 1000000, &v))
				return rp_usage_err("punch", "--rate: '%s' is not 10..1000000 packets/s", optarg);
			c->rate = (uint32_t)v;
			break;
		case 'n':
			if (rp_parse_ulong(optarg, 1, RP_PUNCH_MAX_ROUNDS, &v))
				return rp_usage_err("punch", "--rounds: '%s' is not 1..%d", optarg, RP_PUNCH_MAX_ROUNDS);
			c->rounds = (unsigned)v;
			break;
		case 'o':
			if (rp_parse_ulong(optarg, 1, 4096, &v))
				return rp_usage_err("punch", "--max-open: '%s' is not 1..4096", optarg);
			c->max_open = (unsigned)v;
			break;
		case 'm':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("punch", "--max-probes: '%s' is not 1..65535", optarg);
			c->max_probes = (unsigned)v;
			break;
		case 'N':
			if (rp_parse_ulong(optarg, 4, 64, &v))
				return rp_usage_err("punch", "--samples: '%s' is not 4..64", optarg);
			c->samples = (unsigned)v;
			break;
		case 't':
			if (rp_parse_ulong(optarg, 1, 3600, &v))
				return rp_usage_err("punch", "--timeout: '%s' is not 1..3600 seconds", optarg);
			c->timeout_s = (int)v;
			break;
		case 'd':
			if (!strcmp(optarg, "auto"))
				v = 0;
			else if (rp_parse_ulong(optarg, 100, 10000, &v))
				return rp_usage_err("punch", "--lead: '%s' is neither auto nor 100..10000 ms", optarg);
			c->lead_ms = (int)v;
			break;
		case 'u': c->user = optarg; break;
		case 'O': c->offer = true; break;
		case 'P': c->fresh_probe = true; break;
		case 'A':
			if (!*optarg)
				return rp_usage_err("punch", "--answer: empty offer text");
			c->answer_to = optarg;
			break;
		case 'I':
			if (rp_parse_ulong(optarg, 2, 600, &v))
				return rp_usage_err("punch", "--start-in: '%s' is not 2..600 seconds", optarg);
			c->start_in_s = (int)v;
			break;
		case 'T': relay = optarg; break;
		case 'X': c->relay_secret_file = optarg; break;
		case 'F': c->relay_first = true; break;
		case 'M':
			if (rp_pm_parse_protocols(optarg, &c->portmap_protocols))
				return rp_usage_err("punch", "--portmap: want any of pcp,natpmp,upnp (comma-separated), got '%s'", optarg);
			break;
		case 'W': c->no_portmap = true; break;
		case 'q': c->quiet = true; break;
		case 'v': c->verbose = true; break;
		case 'h': usage(stdout); return -1;
		default: return rp_usage_getopt("punch", ch, argv);
		}
	}
	if (optind != argc)
		return rp_usage_err("punch", "unexpected argument '%s'", argv[optind]);
	if (modes > 1)
		return rp_usage_err("punch", "--stdio, --exec and -L exclude each other");
	if (!c->secret_file)
		return rp_usage_err("punch", "--secret-file FILE is required");
	int r;
	if (c->offer || c->answer_to) {
		if (c->offer && c->answer_to)
			return rp_usage_err("punch", "--offer and --answer exclude each other");
		if (rv)
			return rp_usage_err("punch", "--offer/--answer are serverless: no --rendezvous");
		if (!stun)
			return rp_usage_err("punch", "--offer/--answer need --stun HOST[:PORT] (no rendezvous host to default to)");
		if (!c->session)
			c->session = "serverless";
	} else {
		if (!rv)
			return rp_usage_err("punch", "--rendezvous HOST[:PORT] is required (or --offer / --answer)");
		if (!c->session)
			return rp_usage_err("punch", "--session NAME is required");
		r = parse_list(rv, RV_DEFAULT_PORT, c->rvs, RP_PUNCH_MAX_RV, &c->n_rv);
		if (r)
			return rp_usage_err("punch", "--rendezvous '%s': %s", rv, list_err(r, RP_PUNCH_MAX_RV));
		c->rv = c->rvs[0];
	}
	if (relay) {
		if (c->offer || c->answer_to)
			return rp_usage_err("punch", "--relay needs a rendezvous server (the relayed addresses are exchanged there)");
		r = parse_list(relay, 3478, c->relays, RP_PUNCH_MAX_RELAYS, &c->n_relay);
		if (r)
			return rp_usage_err("punch", "--relay '%s': %s", relay, list_err(r, RP_PUNCH_MAX_RELAYS));
		if (!c->relay_secret_file)
			return rp_usage_err("punch", "--relay needs --relay-secret-file FILE (credentials never go on the command line)");
	} else if (c->relay_secret_file || c->relay_first) {
		return rp_usage_err("punch", "--relay-secret-file and --relay-first need --relay HOST[:PORT][,...]");
	}
	if (stun) {
		r = rp_parse_hostport(stun, 3478, &c->stun);
		if (r)
			return rp_usage_err("punch", "--stun '%s': %s", stun,
					    r == -EHOSTUNREACH ? "cannot resolve the host" : "not HOST[:PORT]");
	} else {
		c->stun = c->rv;
		c->stun.sin_port = htons(3478);
	}
	return 0;
}
