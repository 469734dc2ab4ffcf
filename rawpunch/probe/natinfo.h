/* SPDX-License-Identifier: MIT */
/* What one side knows about the NAT in front of it: the probe's result, the rendezvous' payload and
 * the strategy's input. Pure (json-c for the wire/CLI form). */
#ifndef RP_NATINFO_H
#define RP_NATINFO_H
#include <stdbool.h>
#include <stdint.h>

struct json_object;

enum rp_mapping { RP_MAP_UNKNOWN = 0, RP_MAP_EI, RP_MAP_AD, RP_MAP_APD };
enum rp_alloc { RP_ALLOC_UNKNOWN = 0, RP_ALLOC_PRESERVING, RP_ALLOC_SEQUENTIAL, RP_ALLOC_RANDOM };
enum rp_filter { RP_FILTER_UNKNOWN = 0, RP_FILTER_RST, RP_FILTER_DROP, RP_FILTER_ICMP, RP_FILTER_OPEN };
/* How nat_ttl was chosen, strongest first (JSON "nat_ttl_method"):
 *   confirmed  from outside: after a SYN with TTL nat_ttl from the punch port to the rendezvous server,
 *              the server's SYN back from that address:port reached this host through every NAT
 *              (the outermost mapping existed), and after TTL nat_ttl - 1 it did not;
 *   hops       from the TTL-limited SYNs' time-exceeded replies, by behaviour: the hop at which our
 *              packets leave with our public address (Record Route, a router answering from the
 *              public address, an untranslated ICMP quote carrying it);
 *   fallback   the hops did not show the outermost NAT: nat_ttl is the first hop that answered from a
 *              public address, else the last hop before the STUN server (server_hops - 1). It passes
 *              every NAT of ours only if those guesses hold; planning should weigh it against the
 *              peer's distance (see server_hops);
 *   unknown    nat_ttl is 0. */
enum rp_ttl_method { RP_TTL_UNKNOWN = 0, RP_TTL_CONFIRMED, RP_TTL_HOPS, RP_TTL_FALLBACK };

#define RP_MAX_PREDICT 64

struct rp_natinfo {
	uint32_t local_addr;             /* network order: the punch socket's address */
	uint16_t local_port;             /* the punch port */
	uint32_t mapped_addr;            /* reflexive address seen by STUN from the punch port */
	uint16_t mapped_port;
	bool behind_nat;                 /* mapped != local */
	enum rp_mapping mapping;
	enum rp_alloc alloc;
	bool has_delta;
	int32_t delta;                   /* sequential: port step per new flow */
	double jitter;                   /* sequential: spread of the step (ports, stddev or MAD) */
	uint16_t predicted[RP_MAX_PREDICT]; /* next external ports for a new flow, most likely first */
	unsigned n_predicted;
	double confidence;               /* 0..1: P(next mapping falls in predicted[]) as estimated */
	enum rp_filter filtering;
	uint8_t nat_ttl;                 /* the smallest TTL with which a SYN from the punch port opens the
	                                  * OUTERMOST NAT's mapping (it passes every NAT of ours and dies at
	                                  * the router after the last one); 0 unknown. How it was found:
	                                  * nat_ttl_method. Whether it also stops short of the peer's NAT is
	                                  * the planner's question (server_hops of both sides) */
	uint64_t probed_at_ns;           /* CLOCK_REALTIME */
	/* ---- added with issue 11 (JSON keys nat_ttl_method, server_hops, range; absent in older
	 * natinfos, which parse as unknown / 0 / null) */
	enum rp_ttl_method nat_ttl_method;
	uint8_t server_hops;             /* the smallest TTL with which a SYN from the punch port reached the
	                                  * STUN server (it answered); 0 not measured. Routers on the way:
	                                  * server_hops - 1. With nat_ttl: the outermost NAT is about
	                                  * server_hops - nat_ttl + 1 hops from the server (if the path
	                                  * back is as long) -- a bound for where the peer's SYNs must die */
	bool has_range;                  /* the external ports of this host's new flows stay in range_lo..hi: */
	uint16_t range_lo, range_hi;     /* a port block (RFC 7422 style: random or sequential inside) or the
	                                  * NAT's port range, inferred from the samples (a window far narrower
	                                  * than chance over 1024..65535 allows, or the end a sequential
	                                  * counter wrapped at) or given with --port-range. Random allocation:
	                                  * the next port is (about) uniform in it -- a birthday space of
	                                  * range_hi - range_lo + 1 ports instead of 64512. Sequential: the
	                                  * counter wraps inside it, and predicted[] already does */
	double range_confidence;         /* 0..1: estimated P(the next new flow's port is in the range) */
};

const char *rp_mapping_str(enum rp_mapping m);   /* "endpoint-independent", "address-dependent", ... */
const char *rp_alloc_str(enum rp_alloc a);       /* "preserving", "sequential", "random", "unknown" */
const char *rp_filter_str(enum rp_filter f);     /* "rst", "drop", "icmp", "open", "unknown" */
const char *rp_ttl_method_str(enum rp_ttl_method m); /* "confirmed", "hops", "fallback", "unknown" */
int rp_mapping_parse(const char *s, enum rp_mapping *m);  /* 0 or -EINVAL */
int rp_alloc_parse(const char *s, enum rp_alloc *a);
int rp_filter_parse(const char *s, enum rp_filter *f);
int rp_ttl_method_parse(const char *s, enum rp_ttl_method *m);

/* JSON object with the fields `rawpunch probe --json` prints:
 * mapped "ip:port", local "ip:port", mapping, allocation, delta (number|null), jitter, predicted [ports],
 * confidence, filtering, nat_ttl, nat_ttl_method, server_hops, range ({lo, hi, confidence} | null).
 * Returns a new reference or NULL on ENOMEM. */
struct json_object *rp_natinfo_to_json(const struct rp_natinfo *ni);
/* Strict inverse: 0, or -EINVAL on a missing/ill-typed/out-of-range field. The fields added with
 * issue 11 may be missing (an older peer): they read as unknown / 0 / no range. */
int rp_natinfo_from_json(const struct json_object *o, struct rp_natinfo *ni);

#endif
