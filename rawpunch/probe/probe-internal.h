/* SPDX-License-Identifier: MIT */
/* The NAT probe's internals, shared by probe*.c and nothing else (the API is probe.h): the phases
 * and helpers one file runs for another.
 *   probe.c        rp_probe_run(): the phases in order (filtering thread, nat_ttl, mapping tests,
 *                  allocation) and the classification of what they measured
 *   probe-ttl.c    phase 2: the TTL search for the NAT hop (crafted SYNs with Record Route, ICMP via pcap)
 *   probe-alloc.c  phase 4: the allocation samples, N flows from fresh ports in flight together
 *   probe-confirm.c phase 4's companion: nat_ttl confirmed by the server's connect-back (a thread)
 *   probe-json.c   rp_probe_to_json()
 *   probe-plot.c   rp_probe_plot() (gnuplot) */
#ifndef RP_PROBE_INTERNAL_H
#define RP_PROBE_INTERNAL_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rawpunch/probe/probe.h"

struct rp_route;

/* probe.c: a sample from one STUN exchange's result (err: its -errno, or 0) */
void probe_sample_from(struct rp_probe_sample *ps, enum rp_probe_kind kind, const struct rp_stun_result *res,
		       int err, uint16_t lport);

/* probe-ttl.c: r->hops[], r->n_hops; 0 when the NAT hop is found, else -errno (r->ttl_err) */
int probe_ttl_search(const struct rp_probe_opts *o, struct rp_probe_report *r, const struct rp_route *rt,
		     uint32_t laddr, uint16_t lport);

/* probe-alloc.c: appends o->samples (at most RP_PROBE_MAX_SAMPLES) samples to r->samples[] */
int probe_sample_allocation(const struct rp_probe_opts *o, struct rp_probe_report *r, uint32_t laddr,
			    const struct rp_stun_opts *base);

/* probe-confirm.c: the confirmation of nat_ttl, on a thread of its own between start and join */
struct probe_confirm {
	const struct rp_probe_opts *o;   /* connect_back, its arg and address */
	const char *ifname;              /* where the server's SYN comes in */
	uint32_t laddr;
	uint16_t lport;                  /* the punch port */
	uint16_t public_port;            /* what a new flow from it gets on the outermost NAT */
	unsigned first, max_ttl;         /* the candidate TTL; the highest worth a test */
	int ms;                          /* the server's connect timeout */
	struct rp_probe_confirm tests[RP_PROBE_MAX_CONFIRM];
	unsigned n;
	uint8_t ttl;                     /* confirmed nat_ttl, 0: none (err says why) */
	int err;
	enum rp_filter filtering;        /* what the server met at our NAT in a test that did not get in */
	int filter_err;                  /* (else the filter probe's, run at the end; -ENOTCONN: none) */
	pthread_t th;
	bool running;
};
int probe_confirm_start(struct probe_confirm *pc);   /* 0 or -EAGAIN (no thread) */
void probe_confirm_join(struct probe_confirm *pc);

/* probe-json.c: CLOCK_MONOTONIC of the earliest sample (0: none), the origin of t_rel and the plot */
uint64_t probe_first_mono(const struct rp_probe_report *r);

#endif
