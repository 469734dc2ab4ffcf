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
 * observed steps the model explains (Laplace-smoothed) times the Poisson mass the window covers.
 *
 * Port range (natclass-range.c), the window this host's external ports come from:
 *   random      the samples sit in a span far narrower than uniform over the full range makes likely
 *               (P < RP_RANGE_ALPHA): a port block (RFC 7422) or a NAT's narrow port range. The window
 *               is the smallest power-of-two-aligned block holding them when that is not wider than
 *               the span's unbiased width estimate allows, else the span widened by one mean gap;
 *   sequential  the counter was seen wrapping: a step against the direction of delta of d ports is a
 *               wrap of a range of k*|delta| + |d| ports (k - 1 foreign flows in between); the range's
 *               ends follow from the samples (aligned ends preferred where they leave a choice).
 *               Without a wrap in the samples a sequential NAT's range stays unknown.
 *
 * nat_ttl from the hops (natclass-hops.c): rp_nat_ttl_guess() weighs what the TTL-limited SYNs' ICMP
 * replies show (Record Route, quotes, addresses); rawpunch/probe confirms it from outside where it can. */
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
/* The same with the fourth combination, m4: the primary address at the alternate port (P, q), which
 * tells a chance coincidence from the real thing on a NAT with few ports to pick from:
 *   endpoint-independent  every available test saw m1;
 *   address-dependent     m2 != m1, and the same address kept its mapping across ports
 *                         (m3 == m2 and m4 == m1, each where available; at least one of them);
 *   address-and-port-dependent otherwise (some mapping changed with the port alone).
 * m4 NULL is rp_mapping_classify(). */
enum rp_mapping rp_mapping_classify4(const struct rp_ep *local, const struct rp_ep *m1, const struct rp_ep *m2,
				     const struct rp_ep *m3, const struct rp_ep *m4, bool *behind_nat);

/* One new flow's mapping. */
struct rp_port_sample {
	uint64_t t_ns;           /* when its SYN left (any one clock; only differences are used) */
	uint16_t local_port;
	uint16_t mapped_port;
};

#define RP_ALLOC_MIN_SAMPLES 4
#define RP_ALLOC_MAX_DELTA 64    /* |delta| considered for sequential */
#define RP_ALLOC_MAX_K 64        /* a step of up to K*delta counts as "delta plus foreign flows" */
#define RP_WRAP_MAX_K 8          /* a wrap of a counter's range: at most K*delta past its end */
#define RP_MAPPING_MIN_LIFE_S 1.0 /* a NAT mapping lives at least this long: a counter in a range of w
                                   * ports cannot take more than w new flows per this time */

/* Significance for a port range from the spread of random samples: the chance that n ports drawn
 * uniformly from the full range fall into a span this narrow. A plain random NAT gets a range by
 * chance this rarely. */
#define RP_RANGE_ALPHA 1e-4

enum rp_range_how {
	RP_RANGE_NONE = 0,
	RP_RANGE_GIVEN,          /* rp_alloc_opts' range, nothing narrower seen */
	RP_RANGE_SPREAD,         /* random ports confined to a narrow window */
	RP_RANGE_WRAP,           /* a sequential counter wrapped */
};

struct rp_port_range {
	enum rp_range_how how;
	uint16_t lo, hi;         /* inclusive; meaningful unless how == RP_RANGE_NONE */
	double confidence;       /* SPREAD: estimated P(the next port is in lo..hi); WRAP: P(both ends are
	                          * right); GIVEN: 1 */
	double p_chance;         /* SPREAD: P(a span this narrow | uniform over the full range) */
	bool aligned;            /* SPREAD: a power-of-two block aligned on its size; WRAP: lo on a
	                          * multiple of the width */
};

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
	/* added with issue 11 */
	unsigned n_against;          /* sequential: steps against delta's direction that are no wrap */
	struct rp_port_range port_range; /* the window this host's ports come from, if the samples say */
};

/* Classify. 0, or -EINVAL (s NULL with n > 0, n > 65535, bad range). Sequential needs at least
 * RP_ALLOC_MIN_SAMPLES samples, sequential_min of the steps (and at least 3) explained as k * delta,
 * and hardly a step against the direction of delta that is no wrap (one, or one in 16 steps): random
 * ports in a small block step both ways, a counter does not. In a known or inferred range of w ports
 * the foreign flows may not exceed w per RP_MAPPING_MIN_LIFE_S. */
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

/* A classification from minutes ago checked against one round of fresh flows (the probe cache,
 * rawpunch/punch/probecache.h, through rp_probe_recheck()). What the check needs:
 *   every class      the public address is still c->mapped_addr;
 *   preserving       the punch port's flow kept its port;
 *   sequential, random, endpoint-independent mapping: the punch port's mapping is what a peer meets
 *                    (the plan does not look at the allocation), so only the port is checked: not
 *                    preserved (a NAT that preserves now is not the one cached), in the range if
 *                    one was seen;
 *   random           likewise (the plan uses the class and the range; it predicts nothing);
 *   sequential       (mapping not endpoint-independent: the side is predicted) a second flow from a
 *                    fresh port right after the punch port's: neither preserved, both in the range
 *                    if one was seen, and the step between them k * delta with 1 <= k <= the width
 *                    of the cached prediction window (wrapped in the range): the counter still
 *                    counts, and the prediction made from one flow would have held the next.
 * rp_alloc_recheck_flows() says how many flows c needs (1 or 2; 0: c is not a class this check can
 * confirm -- unknown allocation or mapping, no NAT, a sequential prediction without delta).
 * s[0] is the punch port's flow, s[1] the fresh one (SYN after s[0]'s); mapped_addr what they saw.
 * On a fit *out is c moved on: local and mapped port the punch port's, predicted[] from the freshest
 * flow (the punch port's mapping for endpoint-independent mapping, the punch port itself when
 * preserving, sequential: the same window of delta steps after s[n-1]), the rest (filtering,
 * nat_ttl, range, confidence) as cached; probed_at_ns is the caller's. 0, -ESTALE (no fit), -EINVAL
 * (n not what c needs, NULL). */
unsigned rp_alloc_recheck_flows(const struct rp_natinfo *c);
int rp_alloc_recheck(const struct rp_natinfo *c, uint32_t mapped_addr, const struct rp_port_sample *s, size_t n,
		     struct rp_natinfo *out);

/* natclass-range.c, for rp_alloc_classify(): the window of a random allocation from the samples'
 * spread over full_lo..full_hi (0 with r->how == RP_RANGE_NONE when they are not confined), and of a
 * sequential one from its wraps (delta != 0; the samples in time order; foreign_rate: other hosts'
 * flows per second, an upper bound rather than an estimate, for how many of them a wrap may hide).
 * -EINVAL on bad arguments. */
int rp_range_from_spread(const struct rp_port_sample *s, size_t n, uint16_t full_lo, uint16_t full_hi,
			 struct rp_port_range *r);
int rp_range_from_wraps(const struct rp_port_sample *s, size_t n, int32_t delta, double foreign_rate,
			struct rp_port_range *r);

/* True for addresses that sit behind NATs: RFC 1918, RFC 6598 (100.64/10), link-local, loopback,
 * 0/8. Network order. */
bool rp_ipv4_is_private(uint32_t addr);

#define RP_RR_MAX 9              /* addresses an IPv4 Record Route option holds */

/* One TTL-limited SYN's fate, for the NAT-hop search. */
struct rp_hop {
	uint8_t ttl;
	bool answered;           /* an ICMP time-exceeded (or other error) came back for this TTL */
	uint32_t from;           /* its source (network order) */
	bool inner_seen;         /* the quote's inner source address is known ... */
	uint32_t inner_saddr;    /* ... and is this (after the NAT's own translation, if any) */
	bool reached;            /* the destination itself answered (SYN-ACK / RST) at this TTL */
	/* added with issue 11 */
	uint16_t inner_sport;    /* the quote's source port (with inner_seen; 0 = not known) */
	uint8_t n_rr;            /* the quote carried a Record Route option with this many addresses: */
	uint32_t rr[RP_RR_MAX];  /* rr[i] was written by router i + 1: the address it sent the SYN on (the
	                          * router that dropped it may have written the one it came in on) */
};

/* The addresses recorded in an IPv4 options area (the bytes after the 20-byte header): the first
 * Record Route option's filled slots, at most max. Returns their number, 0 without RR, -EINVAL for
 * malformed options. */
int rp_rr_parse(const uint8_t *opts, size_t len, uint32_t *addrs, size_t max);

enum rp_hop_evidence {
	RP_HOPEV_NONE = 0,
	RP_HOPEV_NAT_ANSWERED,   /* a router answered from our public address: it is the NAT */
	RP_HOPEV_RECORD_ROUTE,   /* router k recorded our public address as the one it sent on */
	RP_HOPEV_QUOTE,          /* a quote came back with our public source: the NATs are before it */
	RP_HOPEV_PUBLIC_HOP,     /* (fallback) the first router with a public address is past the NATs */
	RP_HOPEV_SERVER,         /* (fallback) the last router before the server is past the NATs */
	RP_HOPEV_QUOTE_CHANGE,   /* (fallback) only a lower bound: an untranslated quote changed there */
};

struct rp_ttl_guess {
	int nat_hop;             /* the outermost NAT's hop (TTL nat_hop + 1 passes it); -ENOENT */
	enum rp_hop_evidence how;
	bool behavioural;        /* NAT_ANSWERED, RECORD_ROUTE or QUOTE: the hops showed the NAT itself */
	int server_hops;         /* the smallest TTL that reached the server, 0 if none did */
	int min_hop;             /* a NAT sits at this hop or later (untranslated quotes changed); 0 */
};

/* Everything the hops h[0..n) show about the outermost NAT (local/mapped: our address and port
 * before and after every NAT; mapped_addr 0 = not known yet). Behavioural evidence first (see
 * rp_hop_evidence), then the fallbacks: the first router answering from a public address (the hop
 * before it is taken as the NAT), else the router before the server. Never below min_hop. 0 or
 * -EINVAL. */
int rp_nat_ttl_guess(const struct rp_hop *h, size_t n, uint32_t local_addr, uint16_t local_port,
		     uint32_t mapped_addr, uint16_t mapped_port, struct rp_ttl_guess *g);
const char *rp_hop_evidence_str(enum rp_hop_evidence e);   /* "record-route", ... */

/* The hop number of the (outermost) NAT on the path: hops 1..N, where a SYN with TTL = hop + 1
 * passes it and dies at the next router. Evidence, strongest first:
 *   - a router answered from the mapped (public) address itself: that router is the NAT;
 *   - a quote whose inner source is the mapped address (a NAT that does not translate ICMP quotes):
 *     the NAT is before that hop;
 *   - the first router answering from an outside (non-private) address: the NAT is the hop before.
 * Returns the hop (0 = the NAT is this host itself), or -ENOENT when the hops do not tell. */
int rp_nat_hop(const struct rp_hop *h, size_t n, uint32_t local_addr, uint32_t mapped_addr);

#endif
