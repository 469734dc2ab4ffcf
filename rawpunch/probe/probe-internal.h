/* SPDX-License-Identifier: MIT */
/* The NAT probe's internals, shared by probe*.c and nothing else (the API is probe.h): the phases
 * and helpers one file runs for another.
 *   probe.c        rp_probe_run(): the phases in order (filtering thread, nat_ttl, mapping tests,
 *                  allocation) and the classification of what they measured
 *   probe-ttl.c    phase 2: the TTL search for the NAT hop (crafted SYNs with Record Route, ICMP via pcap)
 *   probe-alloc.c  phases 3 and 4's STUN flows (the mapping tests, the allocation samples) in flight
 *                  together
 *   probe-confirm.c nat_ttl confirmed by the server's connect-back (after the mapping tests)
 *   probe-recheck.c rp_probe_recheck(): a cached classification checked with one round of Bindings
 *   probe-json.c   rp_probe_to_json()
 *   probe-plot.c   rp_probe_plot() (gnuplot) */
#ifndef RP_PROBE_INTERNAL_H
#define RP_PROBE_INTERNAL_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rawpunch/probe/probe.h"

struct rp_route;

/* probe.c: a sample from one STUN exchange's result (err: its -errno, or 0) */
void probe_sample_from(struct rp_probe_sample *ps, enum rp_probe_kind kind, const struct rp_stun_result *res,
		       int err, uint16_t lport);
/* probe.c: the options of a STUN exchange from laddr:lport (closed with FIN: the mapping stays), with
 * o's timeout and SOFTWARE (sw, cap bytes, holds the default one) */
struct rp_stun_opts probe_stun_opts(const struct rp_probe_opts *o, uint32_t laddr, uint16_t lport, char *sw,
				    size_t cap);

/* probe-ttl.c: r->hops[], r->n_hops; 0 when the NAT hop is found, else -errno (r->ttl_err).
 * step(arg, false, 0) is called once the first SYNs have left (the flow they make on the NAT is then
 * taken), before the answers are waited for; it may not be called when the search fails before.
 * step(arg, true, err) once r->hops are final and err is what the search returns, before its
 * capture, crafter and guard are closed (that takes the kernel tens of ms: a caller on another
 * thread need not wait for it). Once *enough (NULL: never) is set and the server was reached, the
 * wait for the answers of the hops before it ends: a router that stays silent that long (its ICMP
 * rate limit spent) will not answer. */
int probe_ttl_search(const struct rp_probe_opts *o, struct rp_probe_report *r, const struct rp_route *rt,
		     uint32_t laddr, uint16_t lport, void (*step)(void *arg, bool final, int err), void *arg,
		     const atomic_bool *enough);

/* probe-alloc.c: STUN Binding flows in flight together. Each starts at start_ns (CLOCK_MONOTONIC;
 * 0: held until a hook gives it one), in the order given among those due; a flow the caller marks
 * PROBE_FLOW_SKIP is not run, one still held at the end is left PROBE_FLOW_WAIT with -ECANCELED. */
enum probe_flow_state { PROBE_FLOW_WAIT = 0, PROBE_FLOW_BUSY, PROBE_FLOW_DONE, PROBE_FLOW_SKIP };
struct probe_flow {
	struct sockaddr_in to;
	struct rp_stun_opts so;          /* local port 0: a fresh one */
	uint64_t start_ns;
	enum probe_flow_state state;
	struct rp_stun_result res;       /* DONE: the exchange's result (t_start_ns: when its SYN left) */
	int err;                         /* DONE: 0, or the exchange's -errno */
	bool optional;                   /* given up (-ETIMEDOUT) when still in flight twice the median
	                                    exchange (+ PROBE_FLOW_LATE_MS) after its SYN, once every flow
	                                    that is not optional ended */
};
#define PROBE_FLOW_LATE_MS 100   /* a loaded host's scheduling, not a resent SYN (1 s) */
/* Called as flow i ends (it may give held flows their start); non-zero stops the run there (what is
 * in flight is closed, the rest is not started). */
typedef int (*probe_flow_done_fn)(struct probe_flow *f, unsigned n, unsigned i, void *arg);
/* 0 once every flow ended (or the hook stopped the run); -ENOMEM */
int probe_flows_run(struct probe_flow *f, unsigned n, probe_flow_done_fn done, void *arg);

/* probe-confirm.c: the confirmation of nat_ttl */
struct probe_confirm {
	const struct rp_probe_opts *o;   /* connect_back, its arg and address */
	const char *ifname;              /* where the server's SYN comes in */
	uint32_t laddr;
	uint16_t lport;                  /* the punch port */
	uint16_t public_port;            /* what a new flow from it gets on the outermost NAT */
	unsigned first, max_ttl;         /* the first TTL tested; the highest worth a test */
	bool first_from_hops;            /* first is the hops' behavioural candidate: passing settles it */
	int ms;                          /* the server's connect timeout */
	struct rp_probe_confirm tests[RP_PROBE_MAX_CONFIRM];
	unsigned n;
	uint8_t ttl;                     /* confirmed nat_ttl, 0: none (err says why) */
	int err;
	enum rp_filter filtering;        /* what the server met at our NAT in a test that did not get in */
	int filter_err;                  /* -ENOTCONN: no such test */
	struct rp_cap *cap;              /* the capture of the server's SYNs and the crafter: opened ahead */
	struct rp_craft *cr;             /* (probe_confirm_open), else by probe_confirm_run */
};
/* The capture and the crafter, from o, ifname, laddr and lport (each takes the kernel a while: ahead
 * of the run where it can be). 0 or -errno (nothing left open). */
int probe_confirm_open(struct probe_confirm *pc);
/* The tests; what was opened is closed. A pass that settles the run does not wait for the server's
 * verdict: that test's verdict stays RP_FILTER_UNKNOWN, its call ends on its own thread after this
 * returns (it touches nothing of pc's) and closes the capture and the crafter then. */
void probe_confirm_run(struct probe_confirm *pc);
/* Close what is open (safe twice). */
void probe_confirm_close(struct probe_confirm *pc);

/* probe-json.c: CLOCK_MONOTONIC of the earliest sample (0: none), the origin of t_rel and the plot */
uint64_t probe_first_mono(const struct rp_probe_report *r);

#endif
