/* SPDX-License-Identifier: MIT */
/* rawpunch syn: craft SYNs once with libnet and send them as a burst (rawpunch/net/burst.h): one or many
 * destination ports, one or many source ports, repeated, paced or as fast as possible, in order or
 * in a keyed random order; --dry-run prints every packet as hex; --watch counts the replies whose
 * acknowledgement matches our ISN cookie (or --isn). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "capture/capture.h"
#include "rawpunch/net/burst.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/netif.h"
#include "userstack/cookie.h"
#include "userstack/extract.h"

#define CMD "syn"

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
"      --dry-run         print every packet as hex (IPv4 header first); send nothing, no privileges\n"
"      --watch           count replies (SYN-ACK, RST) whose ack matches our ISN, via pcap\n"
"      --wait MS         with --watch: keep counting this long after the last SYN (default 1000)\n"
"      --json            final figures as JSON on stdout\n"
"  -q, --quiet           no progress line\n"
"\n"
"A progress line (rate, sent, replies) is shown on stderr when it is a terminal. Replies are\n"
"counted only with --watch (it needs a capture handle and a little CPU).\n"
"AF_PACKET skips this host's own qdisc and netfilter OUTPUT/POSTROUTING; if this host itself\n"
"NATs or filters the traffic, use --engine libnet.\n"
"Exit status: 0 all sent, 1 send or setup failure, 2 bad usage (nothing sent), 130 interrupted.\n");
}

enum {
	O_SPORT = 256, O_RATE, O_BURST, O_THREADS, O_BATCH, O_TTL, O_ISN, O_COOKIE, O_WINDOW, O_MSS,
	O_WSCALE, O_SACK, O_TS, O_NOOPTS, O_IPID, O_RANDOM, O_SEED, O_ENGINE, O_IFACE, O_DSTMAC,
	O_DRYRUN, O_JSON, O_WATCH, O_WAIT, O_SRC,
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
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static atomic_int g_stop;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_stop, 1);
}

struct replies {
	uint64_t synack, rst, other, invalid;
};

struct run {
	struct rp_burst_cfg *cfg;
	struct rp_cap *cap;
	struct replies rep;
	uint32_t saddr, daddr;
	bool progress_line;
	uint64_t last_print;
};

static uint64_t replies_total(const struct replies *r) { return r->synack + r->rst + r->other; }

/* Drain the capture: count segments from the target that acknowledge one of our SYNs. */
static void drain(struct run *r)
{
	struct rp_event ev;
	if (!r->cap)
		return;
	while (rp_cap_next(r->cap, &ev) == 1) {
		bool ok;
		if (ev.kind != RP_EV_TCP || ev.tuple.saddr != r->daddr || ev.tuple.daddr != r->saddr)
			continue;
		if (!(ev.flags & RP_TH_ACK)) {
			r->rep.invalid++;
			continue;
		}
		if (r->cfg->seq_mode == RP_SEQ_COOKIE)
			ok = us_cookie_check_ack(r->cfg->cookie_key, r->saddr, ev.tuple.dport, r->daddr,
						 ev.tuple.sport, ev.ack);
		else
			ok = ev.ack - 1u == r->cfg->tmpl->seq;
		if (!ok)
			r->rep.invalid++;
		else if ((ev.flags & (RP_TH_SYN | RP_TH_ACK)) == (RP_TH_SYN | RP_TH_ACK))
			r->rep.synack++;
		else if (ev.flags & RP_TH_RST)
			r->rep.rst++;
		else
			r->rep.other++;
	}
}

static void print_progress(struct run *r, const struct rp_burst_stats *st, bool final)
{
	double secs = (double)st->elapsed_ns / 1e9;
	double rate = secs > 0 ? (double)st->sent / secs : 0;
	fprintf(stderr, "\r\033[K%llu/%llu sent  %.0f pps  %.2f s",
		(unsigned long long)st->sent, (unsigned long long)st->total, rate, secs);
	if (st->errors)
		fprintf(stderr, "  %llu errors", (unsigned long long)st->errors);
	if (r->cap)
		fprintf(stderr, "  replies %llu (syn-ack %llu, rst %llu)",
			(unsigned long long)replies_total(&r->rep), (unsigned long long)r->rep.synack,
			(unsigned long long)r->rep.rst);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static int on_progress(const struct rp_burst_stats *st, void *arg)
{
	struct run *r = arg;
	drain(r);
	if (r->progress_line && !st->done && st->elapsed_ns - r->last_print >= 240000000ull) {
		print_progress(r, st, false);
		r->last_print = st->elapsed_ns;
	}
	return 0;
}

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

static void hexline(const uint8_t *p, int n)
{
	for (int i = 0; i < n; i++)
		printf("%02x", p[i]);
	putchar('\n');
}

/* --dry-run: packet number no (from 1), n bytes of IPv4 at pkt, as a summary line and in hex. */
static void dry_packet(uint64_t no, const uint8_t *pkt, int n, const char *src, const char *dst)
{
	struct us_cur c = us_cur_make(pkt, (size_t)n);
	uint8_t vihl = us_get_u8(&c);
	us_skip(&c, 3);                    /* TOS, total length */
	uint16_t ip_id = us_get_be16(&c);
	us_skip(&c, 2);                    /* fragment */
	uint8_t ttl = us_get_u8(&c);
	us_skip(&c, (size_t)(vihl & 15) * 4 - 9);
	uint16_t sport = us_get_be16(&c), dport = us_get_be16(&c);
	uint32_t seq = us_get_be32(&c);
	printf("# %llu %s:%u > %s:%u seq %u ip_id %u ttl %u len %d\n", (unsigned long long)no, src, (unsigned)sport,
	       dst, (unsigned)dport, (unsigned)seq, (unsigned)ip_id, (unsigned)ttl, n);
	hexline(pkt, n);
}

int cmd_syn(int argc, char **argv)
{
	static uint16_t dports[65536], sports[65536];
	int n_d = 0, n_s = 0, c, err, mtu = 1500;
	unsigned long v;
	unsigned long count = 1, rate = 0, threads = 1, batch = 0, ttl = 64, window = 64240, wait_ms = 1000;
	unsigned long mss = 0, wscale = 7;
	uint32_t isn = 0, src = 0;
	uint64_t seed = 0;
	bool have_isn = false, have_seed = false, explicit_opts = false, no_opts = false, random_order = false;
	bool want_mss = false, want_ws = false, want_sack = false, want_ts = false;
	bool dry = false, json = false, watch = false, quiet = false, have_dmac = false;
	enum rp_burst_engine engine = RP_ENGINE_AFPACKET;
	enum rp_ipid_mode ipid_mode = RP_IPID_RANDOM;
	uint16_t ipid = 0;
	const char *iface = NULL;
	uint8_t dmac[6];
	struct sockaddr_in dst;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:c:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			n_d = rp_parse_ports(optarg, dports, 65536);
			if (n_d <= 0)
				return rp_usage_err(CMD, "bad --ports '%s' (ports 1-65535: 80, 1000-2000, 22,80,443)", optarg);
			break;
		case O_SPORT:
			n_s = rp_parse_ports(optarg, sports, 65536);
			if (n_s <= 0)
				return rp_usage_err(CMD, "bad --sport '%s' (ports 1-65535: 40000, 40000-40255)", optarg);
			break;
		case 'c':
			if (rp_parse_ulong(optarg, 1, 1000000000ul, &count))
				return rp_usage_err(CMD, "bad --count '%s' (1 .. 10^9)", optarg);
			break;
		case O_RATE:
			if (rp_parse_ulong(optarg, 0, 100000000ul, &rate))
				return rp_usage_err(CMD, "bad --rate '%s' (packets per second, 0 = as fast as possible)", optarg);
			break;
		case O_BURST:
			rate = 0;
			break;
		case O_THREADS:
			if (rp_parse_ulong(optarg, 1, 64, &threads))
				return rp_usage_err(CMD, "bad --threads '%s' (1 .. 64)", optarg);
			break;
		case O_BATCH:
			if (rp_parse_ulong(optarg, 1, 1024, &batch))
				return rp_usage_err(CMD, "bad --batch '%s' (1 .. 1024)", optarg);
			break;
		case O_TTL:
			if (rp_parse_ulong(optarg, 1, 255, &ttl))
				return rp_usage_err(CMD, "bad --ttl '%s' (1 .. 255)", optarg);
			break;
		case O_ISN:
			if (rp_parse_ulong(optarg, 0, 0xffffffffUL, &v))
				return rp_usage_err(CMD, "bad --isn '%s' (0 .. 4294967295)", optarg);
			isn = (uint32_t)v;
			have_isn = true;
			break;
		case O_COOKIE:
			have_isn = false;
			break;
		case O_WINDOW:
			if (rp_parse_ulong(optarg, 0, 65535, &window))
				return rp_usage_err(CMD, "bad --window '%s' (0 .. 65535)", optarg);
			break;
		case O_MSS:
			if (rp_parse_ulong(optarg, 1, 65535, &mss))
				return rp_usage_err(CMD, "bad --mss '%s' (1 .. 65535)", optarg);
			explicit_opts = want_mss = true;
			break;
		case O_WSCALE:
			if (rp_parse_ulong(optarg, 0, 14, &wscale))
				return rp_usage_err(CMD, "bad --wscale '%s' (0 .. 14)", optarg);
			explicit_opts = want_ws = true;
			break;
		case O_SACK:
			explicit_opts = want_sack = true;
			break;
		case O_TS:
			explicit_opts = want_ts = true;
			break;
		case O_NOOPTS:
			no_opts = true;
			break;
		case O_IPID:
			if (!strcmp(optarg, "inc")) {
				ipid_mode = RP_IPID_INC;
			} else if (!strcmp(optarg, "random")) {
				ipid_mode = RP_IPID_RANDOM;
			} else if (!rp_parse_ulong(optarg, 0, 65535, &v)) {
				ipid_mode = RP_IPID_FIXED;
				ipid = (uint16_t)v;
			} else {
				return rp_usage_err(CMD, "bad --ip-id '%s' (0 .. 65535, inc or random)", optarg);
			}
			break;
		case O_RANDOM:
			random_order = true;
			break;
		case O_SEED:
			if (rp_parse_ulong(optarg, 0, ULONG_MAX, &v))
				return rp_usage_err(CMD, "bad --seed '%s'", optarg);
			seed = v;
			have_seed = true;
			break;
		case O_ENGINE:
			if (!strcmp(optarg, "afpacket"))
				engine = RP_ENGINE_AFPACKET;
			else if (!strcmp(optarg, "libnet"))
				engine = RP_ENGINE_LIBNET;
			else
				return rp_usage_err(CMD, "bad --engine '%s' (afpacket or libnet)", optarg);
			break;
		case O_IFACE:
			iface = optarg;
			break;
		case O_DSTMAC:
			if (parse_mac(optarg, dmac))
				return rp_usage_err(CMD, "bad --dst-mac '%s' (aa:bb:cc:dd:ee:ff)", optarg);
			have_dmac = true;
			break;
		case O_SRC:
			if (rp_parse_ipv4(optarg, &src))
				return rp_usage_err(CMD, "bad --src '%s' (an IPv4 address)", optarg);
			break;
		case O_DRYRUN:
			dry = true;
			break;
		case O_JSON:
			json = true;
			break;
		case O_WATCH:
			watch = true;
			break;
		case O_WAIT:
			if (rp_parse_ulong(optarg, 0, 600000, &wait_ms))
				return rp_usage_err(CMD, "bad --wait '%s' (0 .. 600000 ms)", optarg);
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return rp_usage_err(CMD, "unknown option");
		}
	}
	if (optind >= argc)
		return rp_usage_err(CMD, "missing HOST");
	if (optind + 1 < argc)
		return rp_usage_err(CMD, "unexpected argument '%s'", argv[optind + 1]);
	if (n_d <= 0)
		return rp_usage_err(CMD, "missing -p/--ports");
	if (no_opts && explicit_opts)
		return rp_usage_err(CMD, "--no-opts contradicts --mss/--wscale/--sack/--ts");
	if (dry && watch)
		return rp_usage_err(CMD, "--dry-run sends nothing: --watch has nothing to count");
	if (threads > 1 && rate && rate < threads)
		return rp_usage_err(CMD, "--rate %lu is below one packet per second per thread (--threads %lu)",
				    rate, threads);
	{
		/* HOST alone (ports come from -p): resolve it through the host:port parser */
		char tmp[300];
		if (strchr(argv[optind], ':'))
			return rp_usage_err(CMD, "HOST is an IPv4 address or name; give ports with -p");
		if (snprintf(tmp, sizeof(tmp), "%s:1", argv[optind]) >= (int)sizeof(tmp) ||
		    rp_parse_hostport(tmp, 0, &dst))
			return rp_usage_err(CMD, "cannot resolve '%s' to an IPv4 address", argv[optind]);
	}

	/* where it goes (no packet sent) */
	struct rp_route rt;
	err = rp_burst_route(dst.sin_addr.s_addr, iface, &rt);
	if (err == -ENODEV)
		return rp_usage_err(CMD, "unknown --iface '%s'", iface);
	if (err && !src) {
		rp_err_errno(err, "no route to the destination");
		rp_hint("give --src (and --iface for --engine afpacket)");
		return 1;
	}
	if (!err && rt.mtu > 0)
		mtu = rt.mtu;
	if (!src)
		src = rt.src;
	if (!src)
		return rp_err("no source address for the destination; give --src");

	if (n_s == 0) {
		uint16_t r = 0;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			return rp_err_errno(-errno, "getrandom");
		sports[0] = (uint16_t)(32768 + r % (61000 - 32768));
		n_s = 1;
	}
	if (!have_seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		return rp_err_errno(-errno, "getrandom");

	/* the template: built once by libnet (craft), re-stamped per packet by the burst engine */
	struct rp_seg seg;
	memset(&seg, 0, sizeof(seg));
	seg.saddr = src;
	seg.daddr = dst.sin_addr.s_addr;
	seg.sport = sports[0];
	seg.dport = dports[0];
	seg.seq = isn;
	seg.flags = RP_TH_SYN;
	seg.win = (uint16_t)window;
	seg.ttl = (uint8_t)ttl;
	seg.ip_id = ipid;
	if (!no_opts) {
		bool all = !explicit_opts;
		seg.opts.has_mss = all || want_mss;
		seg.opts.mss = (uint16_t)(mss ? mss : (unsigned long)(mtu > 80 ? mtu - 40 : 536));
		seg.opts.has_wscale = all || want_ws;
		seg.opts.wscale = (uint8_t)wscale;
		seg.opts.sack_perm = all || want_sack;
		seg.opts.has_ts = all || want_ts;
		if (seg.opts.has_ts && getrandom(&seg.opts.tsval, sizeof(seg.opts.tsval), 0) != sizeof(seg.opts.tsval))
			return rp_err_errno(-errno, "getrandom");
	}
	uint8_t pkt[RP_TMPL_MAX];
	char ebuf[256] = "";
	struct rp_tmpl *tmpl = calloc(1, sizeof(*tmpl));
	if (!tmpl)
		return rp_err_errno(-ENOMEM, "template");
	err = rp_tmpl_from_seg(tmpl, &seg);
	if (err) {
		free(tmpl);
		return rp_err_errno(err, "building the SYN with libnet");
	}

	struct rp_burst_cfg cfg = {
		.tmpl = tmpl,
		.set = {
			.dports = { .list = dports, .n = (uint32_t)n_d },
			.sports = { .list = sports, .n = (uint32_t)n_s },
			.repeat = count,
			.random_order = random_order,
			.seed = seed,
		},
		.engine = engine,
		.rate = rate,
		.threads = (unsigned)threads,
		.batch = (unsigned)batch,
		.seq_mode = have_isn ? RP_SEQ_FIXED : RP_SEQ_COOKIE,
		.ipid_mode = ipid_mode,
		.ipid_seed = seed ^ 0x6970696470697064ull,
		.stop = &g_stop,
	};
	uint64_t total = rp_pairset_total(&cfg.set);
	int rc = 0;
	if (total == 0) {
		free(tmpl);
		return rp_usage_err(CMD, "too many packets (ports x source ports x count overflows)");
	}
	if (!have_isn && getrandom(cfg.cookie_key, sizeof(cfg.cookie_key), 0) != sizeof(cfg.cookie_key)) {
		free(tmpl);
		return rp_err_errno(-errno, "getrandom");
	}

	if (dry) {
		char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &src, s, sizeof(s));
		inet_ntop(AF_INET, &dst.sin_addr, d, sizeof(d));
		for (uint64_t i = 0; i < total; i++) {
			int n = rp_burst_render(&cfg, i, pkt, sizeof(pkt));
			if (n < 0) {
				rc = rp_err_errno(n, "rendering");
				break;
			}
			dry_packet(i + 1, pkt, n, s, d);
		}
		free(tmpl);
		return rc;
	}

	if (engine == RP_ENGINE_AFPACKET) {
		if (!rt.ifindex) {
			free(tmpl);
			return rp_err("no egress interface for the destination; give --iface");
		}
		err = rp_burst_attach(&cfg, tmpl, &rt, have_dmac ? dmac : NULL, true);
		if (err) {
			free(tmpl);
			rp_err_errno(err, "next-hop MAC address");
			rp_hint("give --dst-mac, or use --engine libnet (the kernel routes each packet)");
			return 1;
		}
	}

	struct run r = { .cfg = &cfg, .saddr = src, .daddr = dst.sin_addr.s_addr,
			 .progress_line = !quiet && isatty(STDERR_FILENO) };
	if (watch) {
		char d[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN], filt[160];
		inet_ntop(AF_INET, &dst.sin_addr, d, sizeof(d));
		inet_ntop(AF_INET, &src, s, sizeof(s));
		snprintf(filt, sizeof(filt), "tcp and src host %s and dst host %s", d, s);
		struct rp_cap_opts co = { .iface = rt.ifname[0] ? rt.ifname : NULL, .filter = filt,
					  .buffer_bytes = 32 << 20, .snaplen = 128 };
		err = rp_cap_open(&co, &r.cap, ebuf, sizeof(ebuf));
		if (err) {
			free(tmpl);
			rp_err("capture on %s: %s", co.iface ? co.iface : "any", ebuf[0] ? ebuf : strerror(-err));
			if (err == -EPERM)
				rp_hint("capturing replies needs CAP_NET_RAW: run as root, or leave out --watch");
			return 1;
		}
	}
	cfg.progress = on_progress;
	cfg.arg = &r;
	cfg.progress_ns = watch ? 50000000ull : 250000000ull;

	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	struct rp_burst_stats st;
	err = rp_burst_run(&cfg, &st);
	if (err == -EINVAL || (err && st.sent == 0 && st.errors == 0)) {
		rc = rp_err_errno(err, engine == RP_ENGINE_AFPACKET ? "AF_PACKET sender" : "libnet sender");
		goto out;
	}
	if (r.cap) {
		uint64_t until = rp_burst_now_ns() + wait_ms * 1000000ull;
		while (!atomic_load(&g_stop) && rp_burst_now_ns() < until) {
			rp_cap_wait(r.cap, 50);
			drain(&r);
		}
		drain(&r);
	}
	if (r.progress_line)
		print_progress(&r, &st, true);
	if (atomic_load(&g_stop)) {
		rp_err("interrupted after %llu of %llu packets", (unsigned long long)st.sent,
		       (unsigned long long)st.total);
		rc = 130;
	}
	if (err) {
		rc = 1;
		rp_err("%llu of %llu packets could not be sent: %s", (unsigned long long)st.errors,
		       (unsigned long long)st.total, strerror(st.last_err ? -st.last_err : EIO));
	}
	if (json) {
		struct json_object *o = json_object_new_object();
		double secs = (double)st.elapsed_ns / 1e9;
		char d[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &dst.sin_addr, d, sizeof(d));
		json_object_object_add(o, "dst", json_object_new_string(d));
		json_object_object_add(o, "engine", json_object_new_string(engine == RP_ENGINE_AFPACKET ? "afpacket" : "libnet"));
		json_object_object_add(o, "threads", json_object_new_int((int)threads));
		json_object_object_add(o, "rate_asked", json_object_new_int64((int64_t)rate));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)st.total));
		json_object_object_add(o, "sent", json_object_new_int64((int64_t)st.sent));
		json_object_object_add(o, "errors", json_object_new_int64((int64_t)st.errors));
		json_object_object_add(o, "stopped", json_object_new_boolean(st.stopped));
		json_object_object_add(o, "elapsed_s", json_object_new_double(secs));
		json_object_object_add(o, "rate_pps", json_object_new_double(secs > 0 ? (double)st.sent / secs : 0));
		if (r.cap) {
			struct json_object *rp = json_object_new_object();
			json_object_object_add(rp, "total", json_object_new_int64((int64_t)replies_total(&r.rep)));
			json_object_object_add(rp, "syn_ack", json_object_new_int64((int64_t)r.rep.synack));
			json_object_object_add(rp, "rst", json_object_new_int64((int64_t)r.rep.rst));
			json_object_object_add(rp, "other", json_object_new_int64((int64_t)r.rep.other));
			json_object_object_add(rp, "not_ours", json_object_new_int64((int64_t)r.rep.invalid));
			json_object_object_add(o, "replies", rp);
		}
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else if (!quiet && !r.progress_line) {
		double secs = (double)st.elapsed_ns / 1e9;
		fprintf(stderr, "sent %llu/%llu in %.3f s (%.0f pps)", (unsigned long long)st.sent,
			(unsigned long long)st.total, secs, secs > 0 ? (double)st.sent / secs : 0);
		if (r.cap)
			fprintf(stderr, ", replies %llu (syn-ack %llu, rst %llu)",
				(unsigned long long)replies_total(&r.rep), (unsigned long long)r.rep.synack,
				(unsigned long long)r.rep.rst);
		fputc('\n', stderr);
	}
out:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (r.cap)
		rp_cap_close(r.cap);
	free(tmpl);
	return rc;
}
