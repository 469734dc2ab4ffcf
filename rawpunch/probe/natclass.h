/* SPDX-License-Identifier: MIT */
/* NAT classification and port prediction from what a probe observed. Pure: no I/O, no globals.
 *
 * Mapping (RFC 4787/5780 vocabulary, RFC 5780 §4.3's three tests done over TCP from one local port):
 * endpoint-independent, address-dependent, address-and-port-dependent.
 *
 * Allocation, from N time-stamped new flows (local port -> external port):
 *   preserving  external port == local port for (nearly) every flow;
 *   sequential  successive external ports step by a small delta. Other hosts behind the same NAT take
 *               ports in between, so a step is k * delta with k >= 1 (k - 1 foreign flows); the
 *               classifier finds delta (the step that explains most steps as small positive
 *               multiples), the foreign-flow rate (per second, from the gaps and their durations),
 *               the jitter (spread of the steps in ports) and tolerates wraparound at the end of
 *               the NAT's port range;
 *   random      no such structure: a step that is a small multiple of any delta is as likely as
 *               chance (about 2*K/range per step).
 * Prediction of the external port of the NEXT new flow (from the punch port, to a new peer):
 *   endpoint-independent mapping -> the punch port's current mapping;
 *   preserving                   -> the punch port itself;
 *   sequential                   -> last + delta*(1 .. 1+q), q the upper quantile of the foreign
 *                                   flows expected over the horizon (Poisson with the rate's upper
 *                                   bound), wrapped into the port range, nearest first;
 *   random                       -> nothing (n = 0, confidence 0).
 * The confidence is the estimated probability that the next port is in the list: the fraction of
 * observed steps the model explains (Laplace-smoothed) times the Poisson mass the window covers. */
#ifndef RP_NATCLASS_H
#define RP_NATCLASS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

struct rp_ep {
	uint32_t addr;           /* network order */
	uint16_t port;           /* host order */
};

/* RFC 5780 §4.3 over TCP, all from the same local endpoint:
 *   m1: mapped address seen by the primary server (address P, port p),
 *   m2: seen at the alternate address, primary port (A, p),
 *   m3: seen at the alternate address and port (A, q).
 * m2 / m3 may be NULL when the test could not run. Returns the mapping; *behind_nat (may be NULL)
 * gets m1 != local. No NAT (m1 == local) is endpoint-independent. Unknown if m1 is NULL, or m2 is
 * NULL, or m2 != m1 and m3 is NULL. */
enum rp_mapping rp_mapping_classify(const struct rp_ep *local, const struct rp_ep *m1,
				    const struct rp_ep *m2, const struct rp_ep *m3, bool *behind_nat);

/* One new flow's mapping. */
struct rp_port_sample {
	uint64_t t_ns;           /* when its SYN left (any one clock; only differences are used) */
	uint16_t local_port;
	uint16_t mapped_port;
};

#define RP_ALLOC_MIN_SAMPLES 4
#define RP_ALLOC_MAX_DELTA 64    /* |delta| considered for sequential */
#define RP_ALLOC_MAX_K 64        /* a step of up to K*delta counts as "delta plus foreign flows" */

struct rp_alloc_opts {
	uint16_t range_lo, range_hi; /* the NAT's port range if known; 0,0 = infer (wraps seen) or 1024..65535 */
	double preserve_min;         /* fraction of preserved ports for "preserving"; 0 = 0.8 */
	double sequential_min;       /* fraction of steps explained for "sequential"; 0 = 0.6 */
};

struct rp_alloc_fit {
	enum rp_alloc alloc;         /* RP_ALLOC_UNKNOWN with fewer than RP_ALLOC_MIN_SAMPLES */
	unsigned n;                  /* samples */
	unsigned n_preserved;        /* mapped == local */
	unsigned n_steps;            /* n - 1 */
	unsigned n_fit;              /* steps equal to k*delta, 1 <= k <= RP_ALLOC_MAX_K (wraps included) */
	unsigned n_wraps;            /* of those, steps that crossed the end of the range */
	unsigned n_foreign;          /* sum of (k - 1) over fitted steps: other flows seen in between */
	bool has_delta;
	int32_t delta;               /* sequential: port step per new flow */
	double jitter;               /* sequential: standard deviation of the fitted steps, in ports */
	double span_s;               /* time covered by the fitted steps */
	double foreign_rate;         /* other flows per second through the NAT (n_foreign / span_s) */
	double foreign_rate_hi;      /* an upper bound (about 95%) of that rate */
	uint16_t range_lo, range_hi; /* range used for wraparound */
	uint16_t last_mapped;        /* the last sample's external port */
	uint64_t last_t_ns;          /* and when its SYN left */
};

/* Classify. 0, or -EINVAL (s NULL with n > 0, n > 65535, bad range). */
int rp_alloc_classify(const struct rp_port_sample *s, size_t n, const struct rp_alloc_opts *o,
		      struct rp_alloc_fit *f);

struct rp_prediction {
	uint16_t ports[RP_MAX_PREDICT];  /* most likely first */
	unsigned n;
	double confidence;               /* 0..1 */
	double expected_foreign;         /* foreign flows expected before ours (sequential) */
	unsigned k_max;                  /* window: steps 1..k_max after the last observed port */
};

/* Predict the next external port(s) of a new flow from punch_local (whose current mapping is
 * punch_mapped, 0 if unknown) horizon_s seconds after the last sample, at most max ports
 * (<= RP_MAX_PREDICT; 0 = RP_MAX_PREDICT). 0 or -EINVAL. */
int rp_alloc_predict(const struct rp_alloc_fit *f, enum rp_mapping mapping, uint16_t punch_local,
		     uint16_t punch_mapped, double horizon_s, unsigned max, struct rp_prediction *p);

/* True for addresses that sit behind NATs: RFC 1918, RFC 6598 (100.64/10), link-local, loopback,
 * 0/8. Network order. */
bool rp_ipv4_is_private(uint32_t addr);

/* One TTL-limited SYN's fate, for the NAT-hop search. */
struct rp_hop {
	uint8_t ttl;
	bool answered;           /* an ICMP time-exceeded (or other error) came back for this TTL */
	uint32_t from;           /* its source (network order) */
	bool inner_seen;         /* the quote's inner source address is known ... */
	uint32_t inner_saddr;    /* ... and is this (after the NAT's own translation, if any) */
	bool reached;            /* the destination itself answered (SYN-ACK / RST) at this TTL */
};

/* The hop number of the (outermost) NAT on the path: hops 1..N, where a SYN with TTL = hop + 1
 * passes it and dies at the next router. Evidence, strongest first:
 *   - a router answered from the mapped (public) address itself: that router is the NAT;
 *   - a quote whose inner source is the mapped address (a NAT that does not translate ICMP quotes):
 *     the NAT is before that hop;
 *   - the first router answering from an outside (non-private) address: the NAT is the hop before.
 * Returns the hop (0 = the NAT is this host itself), or -ENOENT when the hops do not tell. */
int rp_nat_hop(const struct rp_hop *h, size_t n, uint32_t local_addr, uint32_t mapped_addr);

#endif
