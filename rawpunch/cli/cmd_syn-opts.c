/* SPDX-License-Identifier: MIT */
/* rawpunch syn, the command line: usage, the options and their checks, HOST resolved
 * (see cmd_syn-internal.h). Nothing is sent here. */
#include "rawpunch/cli/cmd_syn-internal.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "rawpunch/cli/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: rawpunch syn HOST -p PORTS [options]\n"
"\n"
"Send crafted TCP SYNs to HOST (IPv4 address or name). Each packet is built once with libnet and\n"
"re-stamped per packet (ports, ISN, IP ID, checksums); sent in batches through AF_PACKET with\n"
"qdisc bypass (default) or one by one with libnet's raw IPv4 write.\n"
"\n"
"what to send:\n"
"  -p, --ports PORTS     destination ports: 80 | 1000-2000 | 22,80,8000-8010 (required)\n"
"      --sport PORTS     source port(s), same syntax (default: one random port 32768-60999);\n"
"                        every source port is sent to every destination port\n"
"  -c, --count N         send the whole set N times (default 1)\n"
"      --random-order    each pass in a keyed random order (a permutation, no table)\n"
"      --seed N          seed for --random-order and --ip-id random (default: random)\n"
"      --src ADDR        source address (default: the route's preferred source)\n"
"      --ttl N           IP TTL (default 64)\n"
"      --isn N           fixed ISN for every SYN (default: SipHash cookie of the 4-tuple)\n"
"      --cookie          ISN = SipHash-2-4 cookie of the 4-tuple under a random key (default)\n"
"      --window W        TCP window (default 64240)\n"
"      --mss N, --wscale N, --sack, --ts\n"
"                        options to send (default, as Linux: MSS from the MTU, SACK, TS, wscale 7);\n"
"                        naming any of them sends only those\n"
"      --no-opts         no TCP options\n"
"      --ip-id N|inc|random  IP ID: fixed, incrementing, or random per packet (default random)\n"
"\n"
"how fast:\n"
"      --rate PPS        total packets per second (token bucket; default 0 = as fast as possible)\n"
"      --burst           as fast as possible (same as --rate 0)\n"
"      --threads N       sender threads, each with its own socket (default 1)\n"
"      --batch N         packets per sendmmsg (default 64)\n"
"      --engine E        afpacket (default) or libnet\n"
"      --iface IF        send out of IF (default: the route's interface)\n"
"      --dst-mac MAC     next-hop MAC for afpacket (default: from the neighbour table)\n"
"\n"
"output:\n"
"      --dry-run         print every packet (a summary line, then its bytes in hex, IPv4 header\n"
"                        first; with --json one object per packet); send nothing, no privileges\n"
"  -w, --write FILE      with --dry-run: write the packets to FILE as a pcap (raw IPv4) instead\n"
"  -v, --verbose         one line per packet sent (the --dry-run summary line; --json: an object)\n"
"      --watch           show each reply from HOST, one line on stdout (time, port that answered,\n"
"                        flags, syn-ack|rst|other, or not-ours when the ack is not our ISN + 1, ttl,\n"
"                        window, IP ID; --json: one object each) and count those whose ack matches\n"
"                        our ISN, via pcap\n"
"      --wait MS         with --watch: keep counting this long after the last SYN (default 1000)\n"
"      --json            final figures as JSON on stdout (\"type\":\"summary\", after the \"packet\"\n"
"                        and \"reply\" objects of -v and --watch)\n"
"  -q, --quiet           no progress line\n"
"      --user USER       run as USER (default as root: the invoking user (sudo), else nobody;\n"
"                        'root' keeps uid 0 without capabilities)\n"
"\n"
"A progress line (rate, sent, replies) is shown on stderr when it is a terminal. Replies are\n"
"counted only with --watch (it needs a capture handle and a little CPU). Reply times are epoch\n"
"seconds with microseconds (as tcpdump -tt prints them). -v renders each packet the burst sent, in\n"
"the order of the set, as the senders report progress (with --threads > 1 the threads interleave).\n"
"AF_PACKET skips this host's own qdisc and netfilter OUTPUT/POSTROUTING; if this host itself\n"
"NATs or filters the traffic, use --engine libnet.\n"
"Privileges: right after the options, it becomes --user with no_new_privs and keeps CAP_NET_RAW\n"
"and CAP_NET_ADMIN (raw and packet sockets, qdisc bypass, capture) until the last SYN is sent,\n"
"none at all with --dry-run.\n"
"Exit status: 0 all sent, 1 send or setup failure, 2 bad usage (nothing sent), 130 interrupted.\n");
}

enum {
	O_SPORT = 256, O_RATE, O_BURST, O_THREADS, O_BATCH, O_TTL, O_ISN, O_COOKIE, O_WINDOW, O_MSS,
	O_WSCALE, O_SACK, O_TS, O_NOOPTS, O_IPID, O_RANDOM, O_SEED, O_ENGINE, O_IFACE, O_DSTMAC,
	O_DRYRUN, O_JSON, O_WATCH, O_WAIT, O_SRC, O_USER,
};

static const struct option longopts[] = {
	{ "ports", required_argument, NULL, 'p' },
	{ "sport", required_argument, NULL, O_SPORT },
	{ "sports", required_argument, NULL, O_SPORT },
	{ "count", required_argument, NULL, 'c' },
	{ "rate", required_argument, NULL, O_RATE },
	{ "burst", no_argument, NULL, O_BURST },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "batch", required_argument, NULL, O_BATCH },
	{ "ttl", required_argument, NULL, O_TTL },
	{ "isn", required_argument, NULL, O_ISN },
	{ "cookie", no_argument, NULL, O_COOKIE },
	{ "window", required_argument, NULL, O_WINDOW },
	{ "mss", required_argument, NULL, O_MSS },
	{ "wscale", required_argument, NULL, O_WSCALE },
	{ "sack", no_argument, NULL, O_SACK },
	{ "ts", no_argument, NULL, O_TS },
	{ "no-opts", no_argument, NULL, O_NOOPTS },
	{ "ip-id", required_argument, NULL, O_IPID },
	{ "random-order", no_argument, NULL, O_RANDOM },
	{ "seed", required_argument, NULL, O_SEED },
	{ "engine", required_argument, NULL, O_ENGINE },
	{ "iface", required_argument, NULL, O_IFACE },
	{ "dst-mac", required_argument, NULL, O_DSTMAC },
	{ "src", required_argument, NULL, O_SRC },
	{ "dry-run", no_argument, NULL, O_DRYRUN },
	{ "json", no_argument, NULL, O_JSON },
	{ "watch", no_argument, NULL, O_WATCH },
	{ "wait", required_argument, NULL, O_WAIT },
	{ "user", required_argument, NULL, O_USER },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "write", required_argument, NULL, 'w' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char c;
	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &c) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

int syn_parse(int argc, char **argv, struct syn_opts *opt)
{
	static uint16_t dports[65536], sports[65536];
	int c;
	unsigned long v;
	bool wait_given = false;

	*opt = (struct syn_opts){ .dports = dports, .sports = sports, .count = 1, .threads = 1, .ttl = 64,
				  .window = 64240, .wait_ms = 1000, .wscale = 7, .engine = RP_ENGINE_AFPACKET,
				  .ipid_mode = RP_IPID_RANDOM };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:c:qvw:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			opt->n_d = rp_parse_ports(optarg, opt->dports, 65536);
			if (opt->n_d <= 0)
				return rp_usage_err(CMD, "bad --ports '%s' (ports 1-65535: 80, 1000-2000, 22,80,443)", optarg);
			break;
		case O_SPORT:
			opt->n_s = rp_parse_ports(optarg, opt->sports, 65536);
			if (opt->n_s <= 0)
				return rp_usage_err(CMD, "bad --sport '%s' (ports 1-65535: 40000, 40000-40255)", optarg);
			break;
		case 'c':
			if (rp_parse_ulong(optarg, 1, 1000000000ul, &opt->count))
				return rp_usage_err(CMD, "bad --count '%s' (1 .. 10^9)", optarg);
			break;
		case O_RATE:
			if (rp_parse_ulong(optarg, 0, 100000000ul, &opt->rate))
				return rp_usage_err(CMD, "bad --rate '%s' (packets per second, 0 = as fast as possible)", optarg);
			break;
		case O_BURST:
			opt->rate = 0;
			break;
		case O_THREADS:
			if (rp_parse_ulong(optarg, 1, 64, &opt->threads))
				return rp_usage_err(CMD, "bad --threads '%s' (1 .. 64)", optarg);
			break;
		case O_BATCH:
			if (rp_parse_ulong(optarg, 1, 1024, &opt->batch))
				return rp_usage_err(CMD, "bad --batch '%s' (1 .. 1024)", optarg);
			break;
		case O_TTL:
			if (rp_parse_ulong(optarg, 1, 255, &opt->ttl))
				return rp_usage_err(CMD, "bad --ttl '%s' (1 .. 255)", optarg);
			break;
		case O_ISN:
			if (rp_parse_ulong(optarg, 0, 0xffffffffUL, &v))
				return rp_usage_err(CMD, "bad --isn '%s' (0 .. 4294967295)", optarg);
			opt->isn = (uint32_t)v;
			opt->have_isn = true;
			break;
		case O_COOKIE:
			opt->have_isn = false;
			break;
		case O_WINDOW:
			if (rp_parse_ulong(optarg, 0, 65535, &opt->window))
				return rp_usage_err(CMD, "bad --window '%s' (0 .. 65535)", optarg);
			break;
		case O_MSS:
			if (rp_parse_ulong(optarg, 1, 65535, &opt->mss))
				return rp_usage_err(CMD, "bad --mss '%s' (1 .. 65535)", optarg);
			opt->explicit_opts = opt->want_mss = true;
			break;
		case O_WSCALE:
			if (rp_parse_ulong(optarg, 0, 14, &opt->wscale))
				return rp_usage_err(CMD, "bad --wscale '%s' (0 .. 14)", optarg);
			opt->explicit_opts = opt->want_ws = true;
			break;
		case O_SACK:
			opt->explicit_opts = opt->want_sack = true;
			break;
		case O_TS:
			opt->explicit_opts = opt->want_ts = true;
			break;
		case O_NOOPTS:
			opt->no_opts = true;
			break;
		case O_IPID:
			if (!strcmp(optarg, "inc")) {
				opt->ipid_mode = RP_IPID_INC;
			} else if (!strcmp(optarg, "random")) {
				opt->ipid_mode = RP_IPID_RANDOM;
			} else if (!rp_parse_ulong(optarg, 0, 65535, &v)) {
				opt->ipid_mode = RP_IPID_FIXED;
				opt->ipid = (uint16_t)v;
			} else {
				return rp_usage_err(CMD, "bad --ip-id '%s' (0 .. 65535, inc or random)", optarg);
			}
			break;
		case O_RANDOM:
			opt->random_order = true;
			break;
		case O_SEED:
			if (rp_parse_ulong(optarg, 0, ULONG_MAX, &v))
				return rp_usage_err(CMD, "bad --seed '%s'", optarg);
			opt->seed = v;
			opt->have_seed = true;
			break;
		case O_ENGINE:
			if (!strcmp(optarg, "afpacket"))
				opt->engine = RP_ENGINE_AFPACKET;
			else if (!strcmp(optarg, "libnet"))
				opt->engine = RP_ENGINE_LIBNET;
			else
				return rp_usage_err(CMD, "bad --engine '%s' (afpacket or libnet)", optarg);
			break;
		case O_IFACE:
			opt->iface = optarg;
			break;
		case O_DSTMAC:
			if (parse_mac(optarg, opt->dmac))
				return rp_usage_err(CMD, "bad --dst-mac '%s' (aa:bb:cc:dd:ee:ff)", optarg);
			opt->have_dmac = true;
			break;
		case O_SRC:
			if (rp_parse_ipv4(optarg, &opt->src))
				return rp_usage_err(CMD, "bad --src '%s' (an IPv4 address)", optarg);
			break;
		case O_USER:
			if (!*optarg)
				return rp_usage_err(CMD, "--user: empty user name");
			opt->user = optarg;
			break;
		case O_DRYRUN:
			opt->dry = true;
			break;
		case O_JSON:
			opt->json = true;
			break;
		case O_WATCH:
			opt->watch = true;
			break;
		case O_WAIT:
			wait_given = true;
			if (rp_parse_ulong(optarg, 0, 600000, &opt->wait_ms))
				return rp_usage_err(CMD, "bad --wait '%s' (0 .. 600000 ms)", optarg);
			break;
		case 'q':
			opt->quiet = true;
			break;
		case 'v':
			opt->verbose = true;
			break;
		case 'w':
			opt->write_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return rp_usage_getopt(CMD, c, argv);
		}
	}
	if (optind >= argc)
		return rp_usage_err(CMD, "missing HOST");
	if (optind + 1 < argc)
		return rp_usage_err(CMD, "unexpected argument '%s'", argv[optind + 1]);
	if (opt->n_d <= 0)
		return rp_usage_err(CMD, "missing -p/--ports");
	if (opt->no_opts && opt->explicit_opts)
		return rp_usage_err(CMD, "--no-opts contradicts --mss/--wscale/--sack/--ts");
	if (wait_given && !opt->watch)
		return rp_usage_err(CMD, "--wait is how long --watch counts replies after the last SYN: add --watch");
	if (opt->dry && opt->watch)
		return rp_usage_err(CMD, "--dry-run sends nothing: --watch has nothing to count");
	if (opt->write_path && !opt->dry)
		return rp_usage_err(CMD, "-w writes the packets --dry-run would send: add --dry-run (to record a "
				    "real run, capture it: rawpunch watch -w FILE, or tcpdump)");
	if (opt->write_path && opt->json)
		return rp_usage_err(CMD, "-w writes the packets to a file: --json has nothing to print");
	if (opt->threads > 1 && opt->rate && opt->rate < opt->threads)
		return rp_usage_err(CMD, "--rate %lu is below one packet per second per thread (--threads %lu)",
				    opt->rate, opt->threads);
	{
		/* HOST alone (ports come from -p): resolve it through the host:port parser */
		char tmp[300];
		int r;
		if (strchr(argv[optind], ':'))
			return rp_usage_err(CMD, "HOST is an IPv4 address or name; give ports with -p");
		if (snprintf(tmp, sizeof(tmp), "%s:1", argv[optind]) >= (int)sizeof(tmp) ||
		    (r = rp_parse_hostport(tmp, 0, &opt->dst)) == -EINVAL)
			return rp_usage_err(CMD, "HOST '%s' is neither a dotted-quad IPv4 address nor a host name",
					    argv[optind]);
		if (r)
			return rp_usage_err(CMD, "cannot resolve '%s' to an IPv4 address", argv[optind]);
	}
	return 0;
}
