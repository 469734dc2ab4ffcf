/* SPDX-License-Identifier: MIT */
/* rawpunch syn: craft SYNs once with libnet and send them as a burst (rawpunch/net/burst.h): one or many
 * destination ports, one or many source ports, repeated, paced or as fast as possible, in order or
 * in a keyed random order; --dry-run prints every packet (or writes them to a pcap with -w), -v shows
 * each packet sent; --watch shows each reply and counts those whose acknowledgement matches our ISN
 * cookie (or --isn).
 * This file is the command itself: where the SYNs go, the template, --dry-run or the burst. The options
 * are parsed in cmd_syn-opts.c, replies and figures are in cmd_syn-watch.c (cmd_syn-internal.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "capture/pcapout.h"
#include "rawpunch/base/outfile.h"
#include "rawpunch/base/privs.h"
#include "rawpunch/net/burst.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/cli/cmd_syn-internal.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/netif.h"
#include "userstack/extract.h"

static atomic_int g_stop;

static void on_signal(int sig)
{
	atomic_store(&g_stop, 1);
	rp_cli_note_signal(sig);
}

/* --dry-run: every packet of the burst on stdout, or into the -w pcap (stamped now, 1 us apart) */
static int dry_run(const struct syn_opts *opt, const struct rp_burst_cfg *cfg, uint64_t total)
{
	uint8_t pkt[RP_TMPL_MAX];
	struct rp_pcapout *w = NULL;
	int rc = 0, err;
	if (opt->write_path) {
		uid_t uid;
		gid_t gid;
		err = rp_privs_target(NULL, &uid, &gid, NULL, 0);
		FILE *f = err ? NULL : rp_out_fopen(opt->write_path, uid, gid);
		if (!f)
			return rp_usage_err(CMD, "-w %s: %s", opt->write_path, err ? strerror(-err) : rp_out_strerror(-errno));
		if ((err = rp_pcapout_open(f, &w)))
			return rp_err("-w %s: %s", opt->write_path, strerror(-err));
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t t0 = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	for (uint64_t i = 0; i < total && !rc; i++) {
		int n = rp_burst_render(cfg, i, pkt, sizeof(pkt));
		if (n < 0)
			rc = rp_err_errno(n, "rendering");
		else if (w)
			rc = rp_pcapout_write(w, pkt, (size_t)n, t0 + i * 1000) ? rp_err("-w %s: packet %llu not written",
				opt->write_path, (unsigned long long)i + 1) : 0;
		else
			syn_show_packet(opt, i + 1, pkt, n, true);
	}
	if (w && rp_pcapout_close(w) && !rc)
		rc = rp_err("-w %s: write error", opt->write_path);
	if (w && !rc && !opt->quiet)
		fprintf(stderr, "wrote %llu packets to %s (pcap, raw IPv4)\n", (unsigned long long)total, opt->write_path);
	return rc;
}

int cmd_syn(int argc, char **argv)
{
	struct syn_opts opt;
	int err, mtu = 1500;

	err = syn_parse(argc, argv, &opt);
	if (err)
		return err < 0 ? 0 : err;
	/* the unprivileged user and no_new_privs from here on; raw sockets and the capture need
	 * CAP_NET_RAW/CAP_NET_ADMIN until the burst is out, --dry-run nothing */
	uid_t uid;
	gid_t gid;
	if ((err = rp_cli_user(CMD, opt.user, &uid, &gid)))
		return err;
	if (rp_cli_enter(opt.user, opt.dry ? 0 : RP_PRIV_NET))
		return 1;

	/* where it goes (no packet sent) */
	struct rp_route rt;
	err = rp_burst_route(opt.dst.sin_addr.s_addr, opt.iface, &rt);
	if (err == -ENODEV)
		return rp_usage_err(CMD, "unknown --iface '%s'", opt.iface);
	char dst_s[INET_ADDRSTRLEN], what[64];
	rp_ip_str(opt.dst.sin_addr.s_addr, dst_s);
	if (err && !opt.src) {
		snprintf(what, sizeof(what), "no route to %s", dst_s);
		rp_err_errno(err, what);
		rp_hint("give --src (and --iface for --engine afpacket)");
		return 1;
	}
	if (!err && rt.mtu > 0)
		mtu = rt.mtu;
	if (!opt.src)
		opt.src = rt.src;
	if (!opt.src)
		return rp_err("no source address for %s; give --src", dst_s);

	if (opt.n_s == 0) {
		uint16_t r = 0;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			return rp_err_errno(-errno, "getrandom");
		opt.sports[0] = (uint16_t)(32768 + r % (61000 - 32768));
		opt.n_s = 1;
	}
	if (!opt.have_seed && getrandom(&opt.seed, sizeof(opt.seed), 0) != sizeof(opt.seed))
		return rp_err_errno(-errno, "getrandom");

	/* the template: built once by libnet (craft), re-stamped per packet by the burst engine */
	struct rp_seg seg;
	memset(&seg, 0, sizeof(seg));
	seg.saddr = opt.src;
	seg.daddr = opt.dst.sin_addr.s_addr;
	seg.sport = opt.sports[0];
	seg.dport = opt.dports[0];
	seg.seq = opt.isn;
	seg.flags = RP_TH_SYN;
	seg.win = (uint16_t)opt.window;
	seg.ttl = (uint8_t)opt.ttl;
	seg.ip_id = opt.ipid;
	if (!opt.no_opts) {
		bool all = !opt.explicit_opts;
		seg.opts.has_mss = all || opt.want_mss;
		seg.opts.mss = (uint16_t)(opt.mss ? opt.mss : (unsigned long)(mtu > 80 ? mtu - 40 : 536));
		seg.opts.has_wscale = all || opt.want_ws;
		seg.opts.wscale = (uint8_t)opt.wscale;
		seg.opts.sack_perm = all || opt.want_sack;
		seg.opts.has_ts = all || opt.want_ts;
		if (seg.opts.has_ts && getrandom(&seg.opts.tsval, sizeof(seg.opts.tsval), 0) != sizeof(seg.opts.tsval))
			return rp_err_errno(-errno, "getrandom");
	}
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
			.dports = { .list = opt.dports, .n = (uint32_t)opt.n_d },
			.sports = { .list = opt.sports, .n = (uint32_t)opt.n_s },
			.repeat = opt.count,
			.random_order = opt.random_order,
			.seed = opt.seed,
		},
		.engine = opt.engine,
		.rate = opt.rate,
		.threads = (unsigned)opt.threads,
		.batch = (unsigned)opt.batch,
		.seq_mode = opt.have_isn ? RP_SEQ_FIXED : RP_SEQ_COOKIE,
		.ipid_mode = opt.ipid_mode,
		.ipid_seed = opt.seed ^ 0x6970696470697064ull,
		.stop = &g_stop,
	};
	uint64_t total = rp_pairset_total(&cfg.set);
	int rc = 0;
	if (total == 0) {
		free(tmpl);
		return rp_usage_err(CMD, "too many packets (ports x source ports x count overflows)");
	}
	if (!opt.have_isn && getrandom(cfg.cookie_key, sizeof(cfg.cookie_key), 0) != sizeof(cfg.cookie_key)) {
		free(tmpl);
		return rp_err_errno(-errno, "getrandom");
	}

	if (opt.dry) {
		rc = dry_run(&opt, &cfg, total);
		free(tmpl);
		return rc;
	}

	if (opt.engine == RP_ENGINE_AFPACKET) {
		if (!rt.ifindex) {
			free(tmpl);
			return rp_err("no egress interface for %s; give --iface", dst_s);
		}
		err = rp_burst_attach(&cfg, tmpl, &rt, opt.have_dmac ? opt.dmac : NULL, true);
		if (err) {
			free(tmpl);
			char nh[INET_ADDRSTRLEN];
			snprintf(what, sizeof(what), "next-hop MAC address of %s on %s", rp_ip_str(rt.nexthop, nh), rt.ifname);
			rp_err_errno(err, what);
			rp_hint("give --dst-mac, or use --engine libnet (the kernel routes each packet)");
			return 1;
		}
	}

	struct run r = { .opt = &opt, .cfg = &cfg, .saddr = opt.src, .daddr = opt.dst.sin_addr.s_addr,
			 .progress_line = !opt.quiet && isatty(STDERR_FILENO) };
	if (opt.watch && syn_watch_open(&r, &opt, &rt)) {
		free(tmpl);
		return 1;
	}
	cfg.progress = syn_on_progress;
	cfg.arg = &r;
	cfg.progress_ns = opt.verbose ? 20000000ull : opt.watch ? 50000000ull : 250000000ull;

	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	struct rp_burst_stats st;
	err = rp_burst_run(&cfg, &st);
	if (rp_cli_drop_caps()) {   /* every SYN is out: counting replies on the open capture needs none */
		rc = 1;
		goto out;
	}
	if (err == -EINVAL || (err && st.sent == 0 && st.errors == 0)) {
		rc = rp_err_errno(err, opt.engine == RP_ENGINE_AFPACKET ? "AF_PACKET sender" : "libnet sender");
		goto out;
	}
	syn_show_sent(&r, st.sent);
	if (r.cap) {
		uint64_t until = rp_burst_now_ns() + opt.wait_ms * 1000000ull;
		while (!atomic_load(&g_stop) && rp_burst_now_ns() < until) {
			rp_cap_wait(r.cap, 50);
			syn_drain(&r);
		}
		syn_drain(&r);
	}
	if (r.progress_line)
		syn_print_progress(&r, &st, true);
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
	syn_report(&opt, &r, &st);
out:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (r.cap)
		rp_cap_close(r.cap);
	free(tmpl);
	return rc;
}
