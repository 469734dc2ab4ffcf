/* SPDX-License-Identifier: MIT */
/* rawpunch syn internals, shared by cmd_syn*.c and nothing else: the options as parsed, and what
 * the reply counting offers the command.
 *   cmd_syn.c        the command: where the SYNs go, the template, --dry-run or the burst
 *   cmd_syn-opts.c   usage and the option parser
 *   cmd_syn-watch.c  --watch's reply counting, the progress line and the final figures
 *   cmd_syn-show.c   one packet (--dry-run, -v) or one reply (--watch) as a line or a JSON object */
#ifndef RP_CMD_SYN_INTERNAL_H
#define RP_CMD_SYN_INTERNAL_H
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "rawpunch/net/burst.h"

#define CMD "syn"

/* What the command line asked for (defaults filled in by syn_parse()). */
struct syn_opts {
	uint16_t *dports, *sports;       /* 65536 each; n_d and n_s of them in use (n_s 0: pick one) */
	int n_d, n_s;
	unsigned long count, rate, threads, batch, ttl, window, wait_ms;
	unsigned long mss, wscale;
	uint32_t isn, src;
	uint64_t seed;
	bool have_isn, have_seed, explicit_opts, no_opts, random_order;
	bool want_mss, want_ws, want_sack, want_ts;
	bool dry, json, watch, quiet, have_dmac, verbose;
	enum rp_burst_engine engine;
	enum rp_ipid_mode ipid_mode;
	uint16_t ipid;
	const char *iface;
	const char *write_path;          /* --dry-run -w FILE */
	const char *user;                /* --user */
	uint8_t dmac[6];
	struct sockaddr_in dst;          /* HOST, resolved */
};

struct rp_cap;
struct rp_route;

/* Replies counted with --watch, and one burst as the progress callback and the counting see it. */
struct replies {
	uint64_t synack, rst, other, invalid;
};

struct run {
	const struct syn_opts *opt;
	struct rp_burst_cfg *cfg;
	struct rp_cap *cap;
	struct replies rep;
	uint32_t saddr, daddr;
	bool progress_line;
	uint64_t last_print;
	uint64_t shown;                  /* -v: packets shown so far (indices 0 .. shown-1) */
};

/* cmd_syn-opts.c: 0 to go on, -1 after --help, or the exit status of a usage error (printed). */
int syn_parse(int argc, char **argv, struct syn_opts *opt);

/* cmd_syn-show.c: packet number no (from 1), n bytes of IPv4 at p, on stdout as a line (and the bytes
 * in hex when hex) or, with --json, one object; a reply --watch saw, of kind "syn-ack", "rst", "other"
 * or "not-ours", the same way. */
struct rp_event;
void syn_show_packet(const struct syn_opts *opt, uint64_t no, const uint8_t *p, int n, bool hex);
void syn_show_reply(const struct syn_opts *opt, const struct rp_event *ev, const char *kind);

/* cmd_syn-watch.c */
/* -v: show the packets sent so far (up to sent) that are not shown yet */
void syn_show_sent(struct run *r, uint64_t sent);
void syn_drain(struct run *r);
void syn_print_progress(struct run *r, const struct rp_burst_stats *st, bool final);
int syn_on_progress(const struct rp_burst_stats *st, void *arg);
/* --watch: open the capture for replies from opt->dst to opt->src. 0, or 1 (the error printed). */
int syn_watch_open(struct run *r, const struct syn_opts *opt, const struct rp_route *rt);
/* The final figures: --json on stdout, or a line on stderr unless -q or the progress line showed. */
void syn_report(const struct syn_opts *opt, const struct run *r, const struct rp_burst_stats *st);

#endif
