/* SPDX-License-Identifier: MIT */
/* The NAT probe: what this host sits behind, measured from the port it will punch from.
 *
 * Phases, overlapped where they do not depend on each other: 1 runs beside everything; 2's SYNs
 * leave first and its answers are awaited beside 3 and 4; 3's test 1 and 4's samples start together,
 * tests 2..4 together once test 1 named the alternate address; nat_ttl's confirmation comes after
 * the samples' SYNs (the punch port's mapping and the samples are the NAT's last new flows, so the
 * prediction starts from the freshest port) -- beside tests 2..4 where test 1 found the punch port
 * kept, else after them:
 *   1. filtering: someone outside (the caller's filter_probe callback; rawpunch passes the rendezvous
 *      server's, rv_filter_probe_cb) connects from the internet to our public address and reports
 *      rst / drop / icmp. A host cannot learn this alone: it never sees what its NAT answers to
 *      others. Without a callback: unknown.
 *   2. the hops: SYNs with TTL 1 .. ttl_max from the punch port towards the STUN server's address,
 *      port RP_PROBE_TTL_DPORT, sent at once (crafted, the kernel's RSTs suppressed by the guard),
 *      each carrying an IPv4 Record Route option; the ICMP time-exceeded replies (caught by pcap)
 *      quote them with the addresses the routers recorded, and the server's own answer tells how
 *      far it is (server_hops). Where the options are dropped on the way (the server not reached, the
 *      TTLs from there on silent), the silent TTLs are sent again without them. Not the STUN port: conntrack would keep the crafted SYN's sequence window
 *      for that 4-tuple and take the kernel's own SYN (another ISN) as a retransmission only when its
 *      ISN happens to be "after" ours, leaving every later segment INVALID, un-NATed, half the time.
 *   3. mapping: RFC 5780's Binding tests over TCP from the punch port: the primary address and port,
 *      the alternate address (from OTHER-ADDRESS), the alternate address and port, and the primary
 *      address at the alternate port (which tells real address-dependence from chance).
 *      Then, when the caller gave a connect_back callback and the public port a new flow from the
 *      punch port gets is known (endpoint-independent or address-dependent mapping, or a preserved
 *      port), nat_ttl is confirmed from outside: a SYN with TTL t goes from the punch port to
 *      connect_back_addr:Q, then the server there connects from Q to our public port; its SYN
 *      reaches us through every NAT only if the outermost one took a mapping from ours (a
 *      simultaneous open passes any filter that lets the mapping's own remote endpoint in). The
 *      hops' candidate is tried first when they showed the NAT by its behaviour (then its passing
 *      settles it: one connect-back), else the TTL below it and on up while they fail, down while
 *      they pass, at most RP_PROBE_MAX_CONFIRM tests. After phase 4's samples' SYNs: where it runs,
 *      the punch port's flows keep a known public port (they take none from the pool the samples
 *      see), and its connections to the server do not fall among the samples. Where test 1 found
 *      the punch port kept (the public port of its new flows is then the punch port, whatever
 *      tests 2..4 say, unless the NAT kept it by chance), the confirmation starts as test 1 ends,
 *      on a thread of its own beside tests 2..4 (once the last sample's SYN left and the TTL search
 *      ended); it counts if the tests' verdict gives that port, else it runs again after them.
 *   4. allocation: N new flows from fresh local ports, one every interval_ms from test 1's start (in
 *      flight together with the tests), time-stamped when their SYN left (a resent SYN's when a
 *      connect took a retransmission timeout longer); classified by natclass, with the mapping tests'
 *      new mappings included in the series. A sample still unanswered well after the rest (a lost
 *      SYN waits the kernel's 1 s) is given up: a gap in the series, as a foreign flow would be.
 *   nat_ttl is then: confirmed, else what the hops show (rp_nat_ttl_guess), else a fallback; the
 *   natinfo says which (nat_ttl_method).
 * Returns -errno and prints nothing; rp_probe_plot() runs gnuplot. */
#ifndef RP_PROBE_H
#define RP_PROBE_H
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include "rawpunch/probe/natclass.h"
#include "rawpunch/probe/natinfo.h"
#include "rawpunch/probe/stun.h"

#define RP_PROBE_MAX_SAMPLES 256
#define RP_PROBE_MAX_HOPS 32
#define RP_PROBE_TTL_DPORT 9             /* discard: closed on most hosts, so a SYN that gets there draws an RST */
#define RP_PROBE_MAX_CONFIRM 4           /* connect-backs spent on confirming nat_ttl */

/* Filtering is learnt from outside: connect to our public port public_port within timeout_ms and say
 * what came back (rst / drop / icmp / open) in *out. 0 or -errno (filtering is then unknown). */
typedef int (*rp_filter_probe_fn)(void *arg, uint16_t public_port, int timeout_ms, enum rp_filter *out);
/* The same from the server's port server_port (the one our low-TTL SYN went to). -EOPNOTSUPP when
 * the server cannot choose its port; other -errno as above. Runs on a thread of its own, and may
 * still run after rp_probe_run() returned: a test whose pass settles nat_ttl (the server's SYN came
 * in) does not wait for the verdict. *out is then the call's own, but arg is the caller's: once the
 * request has left (the server acts on it) the call must not read arg again (rv_connect_back_cb
 * reads the server's address only to connect). */
typedef int (*rp_connect_back_fn)(void *arg, uint16_t public_port, uint16_t server_port, int timeout_ms,
				  enum rp_filter *out);

struct rp_probe_opts {
	struct sockaddr_in stun;         /* primary STUN server, TCP */
	uint32_t local_addr;             /* 0 = the route's source address towards the server */
	uint16_t local_port;             /* the punch port; 0 = a free one */
	unsigned samples;                /* allocation samples; 0 = skip the allocation phase */
	int interval_ms;                 /* between sample flows (< 0: default 40) */
	int timeout_ms;                  /* per STUN exchange (<= 0: 3000) */
	rp_filter_probe_fn filter_probe; /* phase 1 (NULL: filtering unknown), run on a thread of its own */
	void *filter_probe_arg;
	int filter_timeout_ms;           /* the prober's connect timeout (<= 0: 1000) */
	unsigned ttl_max;                /* NAT-hop search up to this TTL; 0 = skip (and no confirmation) */
	int ttl_wait_ms;                 /* wait for the ICMPs of the search (<= 0: 300; twice where the
	                                  * Record Route SYNs go unanswered and plain ones are sent) */
	double horizon_s;                /* prediction: time from the last sample to the new flow (< 0: 1.0) */
	uint16_t range_lo, range_hi;     /* NAT port range if known (0,0 = infer) */
	const char *software;            /* SOFTWARE in requests; NULL = "rawpunch <version>" */
	/* added with issue 11: nat_ttl confirmed from outside (end of phase 3; NULL: not tried) */
	rp_connect_back_fn connect_back;
	void *connect_back_arg;
	uint32_t connect_back_addr;      /* the address the server connects from (network order) */
};

enum rp_probe_kind { RP_SAMPLE_TEST1 = 1, RP_SAMPLE_TEST2, RP_SAMPLE_TEST3, RP_SAMPLE_ALLOC, RP_SAMPLE_TEST4 };

struct rp_probe_sample {
	enum rp_probe_kind kind;
	uint64_t t_real_ns;              /* CLOCK_REALTIME when the flow's SYN left */
	uint64_t t_mono_ns;              /* CLOCK_MONOTONIC, same instant */
	struct sockaddr_in server;
	uint16_t local_port;
	bool ok;
	int err;                         /* -errno if the exchange failed */
	uint32_t mapped_addr;            /* network order */
	uint16_t mapped_port;
	double rtt_ms;                   /* connect time */
};

struct rp_probe_hop {
	uint8_t ttl;
	bool answered;
	uint32_t from;
	uint8_t icmp_type, icmp_code;
	bool reached;                    /* the server itself answered */
	double rtt_ms;
	uint32_t inner_saddr;            /* source address in the ICMP's quote (after any NAT's rewrite) */
	/* added with issue 11 */
	uint16_t inner_sport;            /* and its source port */
	bool rr_probe;                   /* the answer is to the SYN with the Record Route option */
	uint8_t n_rr;                    /* addresses the routers recorded in it (rr[i]: router i + 1) */
	uint32_t rr[RP_RR_MAX];
};

/* One confirmation test of nat_ttl (end of phase 3). */
struct rp_probe_confirm {
	uint8_t ttl;                     /* of our SYN from the punch port to connect_back_addr:server_port */
	uint16_t server_port;
	bool passed;                     /* the server's SYN from there reached us */
	enum rp_filter verdict;          /* what the server saw (rst from us when it passed); unknown
	                                  * where a pass settled nat_ttl: not waited for */
	int err;                         /* 0, or why the test said nothing (-EOPNOTSUPP: old server, ...) */
};

struct rp_probe_report {
	struct rp_natinfo ni;            /* the result (what `probe --json` prints, plus the extras below) */
	struct sockaddr_in stun;
	bool has_other;
	struct sockaddr_in other;        /* OTHER-ADDRESS of the primary server */
	char server_software[RP_STUN_TEXT_MAX];
	struct rp_probe_sample samples[RP_PROBE_MAX_SAMPLES + 4]; /* mapping tests first, then allocation */
	unsigned n_samples;
	struct rp_alloc_fit fit;
	struct rp_prediction pred;
	double horizon_s;
	struct rp_probe_hop hops[RP_PROBE_MAX_HOPS];
	unsigned n_hops;
	int nat_hop;                     /* -ENOENT when unknown */
	int ttl_err;                     /* 0, or why nat_ttl is unknown (-EPERM, -ENOENT, ...) */
	/* added with issue 11 */
	struct rp_ttl_guess guess;       /* what the hops showed (rp_nat_ttl_guess) */
	struct rp_probe_confirm confirm[RP_PROBE_MAX_CONFIRM];
	unsigned n_confirm;
	int confirm_err;                 /* 0, or why nat_ttl was not confirmed (-ENOTCONN: no server,
	                                  * -EADDRNOTAVAIL: a new flow's public port is not known, -ENOENT:
	                                  * no TTL passed, -EALREADY: the server got in at TTL 1 unprimed,
	                                  * or a test's error) */
	bool rr_dropped;                 /* the Record Route SYNs went unanswered where plain ones did not */
	int filter_err;                  /* 0, or why filtering is unknown (-ENOTCONN: no rendezvous given) */
	int mapping_err;                 /* 0, or why mapping is unknown (-ENOTSUP: no OTHER-ADDRESS) */
	double duration_s;
};

/* "test1" .. "test4", "alloc" */
const char *rp_probe_kind_str(enum rp_probe_kind k);

/* Run the probe. 0 (parts that could not be measured are "unknown" with their *_err set), or
 * -errno when even the first Binding from the punch port failed. */
int rp_probe_run(const struct rp_probe_opts *o, struct rp_probe_report *r);

/* The warm path: check a natinfo from an earlier full probe of this network (cached) with one round
 * of STUN Bindings to o->stun, in flight together: the punch port's (o->local_port; closed with
 * FIN, its mapping stays for the punch), and for a predicted sequential side a second from a fresh
 * port right after it (rp_alloc_recheck_flows()). Only o's stun, local_addr, local_port, timeout_ms
 * and software are used. 0 with *out the cached natinfo moved on to what they saw (rp_alloc_recheck(),
 * natclass.h); -ESTALE when the NAT no longer fits it (another public address, a port that breaks
 * the cached allocation); -ENOTSUP for a natinfo this cannot check; -EINVAL; or an exchange's -errno.
 * Only a full probe (rp_probe_run) should follow a failure. */
int rp_probe_recheck(const struct rp_probe_opts *o, const struct rp_natinfo *cached, struct rp_natinfo *out);

/* rp_natinfo_to_json(&r->ni) plus: stun, other_address, server_software, samples [{t, t_rel,
 * kind, local_port, mapped, rtt_ms}], hops [{ttl, from, icmp, quoted_src, quoted_sport, recorded
 * [addresses]}], hops_say {evidence, nat_hop, ...}, confirm [{ttl, server_port, passed, server_saw}],
 * noise (foreign_rate), window {k_max, expected_foreign, horizon_s}, fit (steps fitted, the range's
 * origin), duration_s, and *_error strings. */
struct json_object *rp_probe_to_json(const struct rp_probe_report *r);

/* Draw observed external port against time (PNG or SVG by name's extension) with gnuplot: each
 * sample, the local port for comparison, and the predicted window at the horizon. gnuplot writes
 * the image to its stdout, which is fd (a file the caller opened, rawpunch/base/outfile.h): it is
 * never given a file name, so it opens nothing and runs nothing ('|cmd') of its own.
 * 0, -EINVAL (extension, fd < 0), -ENOENT (gnuplot not installed), -EIO (gnuplot failed). */
int rp_probe_plot(const struct rp_probe_report *r, const char *name, int fd);

#endif
