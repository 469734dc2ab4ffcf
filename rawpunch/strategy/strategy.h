/* SPDX-License-Identifier: MIT */
/* Punch strategy: from both sides' rp_natinfo choose the method and size it. Pure (no I/O, no clock):
 * the punch command executes the plan.
 *
 *   easy = the external port of a new flow from the punch port is known in advance: not behind NAT,
 *          endpoint-independent mapping (mapped_port), or port-preserving allocation (local_port).
 *   predictable = sequential allocation with a delta and predictions.
 *   hard = random allocation (or unknown allocation with a dependent mapping).
 *
 *   easy x easy         simultaneous open; a side whose NAT answers unsolicited SYNs (rst/icmp) first
 *                       sends a low-TTL "prime" SYN at T so its own mapping exists before the peer's SYN.
 *   easy x predictable  predicted-burst: the predictable side primes (low TTL) at T, the easy side bursts
 *                       SYNs to the prediction window from its punch port; on a miss re-probe and widen.
 *   predictable x pred. predicted-burst both ways in lockstep (i-th SYN of each side pairs with the
 *                       i-th prediction of the other); low confidence, widened on retries.
 *   easy x hard         birthday: the hard side opens k mappings with low-TTL SYNs (nat_ttl) from k local
 *                       ports to the easy side's port, the easy side probes m random ports of the hard
 *                       NAT. P = 1 - (1 - k/N)^m, N = 64512 (ports 1024..65535).
 *   hard x (pred|hard)  impossible without a relay (none is available): both ends pick a new unknown
 *                       port per destination; the reason says so.
 * Rates are capped by params.rate_pps; timings are relative to the agreed start T. */
#ifndef RP_STRATEGY_H
#define RP_STRATEGY_H
#include <stdbool.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

enum rp_method {
	RP_METHOD_NONE = 0,
	RP_METHOD_SIMOPEN,        /* simultaneous open between known ports */
	RP_METHOD_PREDICT,        /* predicted-port burst */
	RP_METHOD_BIRTHDAY,       /* low-TTL mappings on the hard side x random probes from the easy side */
	RP_METHOD_IMPOSSIBLE,     /* no plan without a relay: see reason */
};

enum rp_side_kind { RP_SIDE_EASY = 1, RP_SIDE_PREDICTABLE, RP_SIDE_HARD };

enum rp_action {
	RP_ACT_NONE = 0,
	RP_ACT_CONNECT,           /* SYNs from local_port to each of remote_ports[] (paced), repeated */
	RP_ACT_OPEN_MANY,         /* n_local SYNs from n_local fresh local ports with ttl to remote_ports[0] */
	RP_ACT_PROBE_RANDOM,      /* n_probes SYNs from local_port to random ports in [port_lo, port_hi] */
};

#define RP_PLAN_MAX_PORTS 2048
#define RP_BIRTHDAY_N 64512u     /* 65535 - 1024 + 1 */

struct rp_plan_params {
	double rtt_ms;            /* path RTT estimate (relay RTT is an upper bound); 0 = unknown (100) */
	double clock_err_ms;      /* start-time disagreement bound; 0 = 5 */
	uint32_t rate_pps;        /* per-side SYN rate cap; 0 = 2000 */
	double target_p;          /* birthday/widening target success probability; 0 = 0.99 */
	unsigned max_open;        /* hard side: most low-TTL mappings; 0 = 256 */
	unsigned max_probes;      /* easy side: most probes per round; 0 = 2048 */
	unsigned rounds;          /* attempts (re-probe + widen between them); 0 = 3 */
};

struct rp_side_plan {
	enum rp_side_kind kind;
	enum rp_action action;
	bool prime;               /* first send one SYN with ttl (low) to open the own mapping */
	uint8_t ttl;              /* TTL for prime / OPEN_MANY SYNs; 0 = normal */
	uint16_t local_port;      /* punch port (CONNECT, PROBE_RANDOM) */
	unsigned n_local;         /* OPEN_MANY: how many local ports */
	uint32_t remote_addr;     /* peer's public address, network order */
	uint16_t remote_ports[RP_PLAN_MAX_PORTS]; /* CONNECT targets, most likely first; OPEN_MANY: [0] */
	unsigned n_remote;
	uint16_t port_lo, port_hi;  /* PROBE_RANDOM range */
	unsigned n_probes;        /* PROBE_RANDOM count */
	uint32_t rate_pps;
	uint32_t start_ms;        /* begin at T + start_ms */
	uint32_t repeat_ms;       /* re-send the burst/SYN every repeat_ms until success or duration_ms */
	uint32_t duration_ms;     /* per round */
};

struct rp_plan {
	enum rp_method method;
	char reason[160];         /* human-readable why (always set) */
	int hard_side;            /* -1 none, 0 = a, 1 = b */
	double p_success;         /* estimated success probability per round (0..1) */
	unsigned rounds;          /* how many rounds to try */
	unsigned widen_factor;    /* next round's prediction window = window * widen_factor */
	struct rp_side_plan side[2];   /* [0] what side a does, [1] what side b does */
};

const char *rp_method_str(enum rp_method m);    /* "simultaneous-open", "predicted-burst", "birthday",
                                                   "impossible", "none" */
enum rp_side_kind rp_side_classify(const struct rp_natinfo *ni);
const char *rp_side_kind_str(enum rp_side_kind k);   /* "easy", "predictable", "hard" */

/* P(at least one hit) = 1 - (1 - k/n)^m; 0 when n == 0, 1 when k >= n. */
double rp_birthday_p(unsigned k, unsigned m, unsigned n);
/* Smallest m with rp_birthday_p(k, m, n) >= p (capped at 1e9); 0 if p <= 0. */
unsigned rp_birthday_probes(unsigned k, unsigned n, double p);

/* Make the plan for sides a and b (pp may be NULL for the defaults). The round number (0-based)
 * widens prediction windows by widen_factor^round. 0, or -EINVAL (NULL, zero public address, or an
 * easy side without its punch port). A
 * plan of RP_METHOD_IMPOSSIBLE is still 0: read reason. */
int rp_plan_make(const struct rp_natinfo *a, const struct rp_natinfo *b, const struct rp_plan_params *pp,
		 unsigned round, struct rp_plan *out);

/* The plan as JSON (for --report and for people): method, reason, hard_side ("a", "b" or null),
 * p_success, rounds, widen_factor, sides: [{kind, action, prime, ttl, local_port, n_local, remote,
 * remote_ports, port_lo, port_hi, n_probes, rate_pps, start_ms, repeat_ms, duration_ms}, ...].
 * New reference, or NULL on ENOMEM. */
struct json_object;
struct json_object *rp_plan_to_json(const struct rp_plan *pl);
const char *rp_action_str(enum rp_action a);     /* "none", "connect", "open-many", "probe-random" */

#endif
