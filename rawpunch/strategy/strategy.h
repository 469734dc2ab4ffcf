/* SPDX-License-Identifier: MIT */
/* Punch strategies: from both sides' rp_natinfo choose how to punch, size it, and say how this side
 * sends each round. Pure (no I/O, no clock).
 *
 * A strategy is one entry of a table (struct rp_strategy below, in the spirit of zmap's probe modules):
 * its name, when it applies to a pair of sides, how it plans (both sides' actions, ports, TTL, rates,
 * success probability, rounds, widening), the phases this side sends in a round of that plan (what the
 * executor, rawpunch/punch/punch.h, runs), and what it tells a person (the odds behind a refusal, a
 * hint after a miss). The registry (registry.c) lists them in the order the planner asks them; the
 * first whose applies() says yes plans. Nothing outside a strategy's own file switches on which one
 * it is: the names, the plan JSON and the phases all come from the table. One file per strategy:
 *
 *   mapped.c    a side whose NAT granted a port mapping for its punch port (PCP, NAT-PMP, UPnP-IGD)
 *               x any side: that side listens (sends nothing), the other connects to the mapped port.
 *   simopen.c   easy x easy: simultaneous open; a side whose NAT answers unsolicited SYNs (rst/icmp)
 *               first sends a low-TTL "prime" SYN at T so its own mapping exists before the peer's SYN;
 *               the round ends early when the peer's NAT keeps refusing (its port is not the one
 *               announced).
 *   predict.c   easy x predictable: the predictable side primes (low TTL) at T, the easy side bursts
 *               SYNs to the prediction window from its punch port; on a miss re-probe and widen x2.
 *               predictable x predictable: bursts both ways in lockstep (every target primed first;
 *               side b's targets staggered so other hosts' flows in between still pair, see
 *               rp_lockstep_targets); low confidence, widened on retries.
 *   birthday.c  easy x hard: the hard side opens k mappings with low-TTL SYNs (nat_ttl) from k local
 *               ports to the easy side's port, the easy side probes m random ports of the hard NAT
 *               meanwhile (a probe finds the mappings made before it arrives): P = 1 - prod_j (1 -
 *               c_j/N), c_j = min(k, j) at equal rates, N = 64512 (ports 1024..65535).
 *   blockpair.c hard x hard (or hard x predictable) when both sides allocate inside known blocks
 *               (range): both open k mappings with low TTL from k fresh ports, the i-th to a random
 *               port of the peer's block, then send the same tuples at full TTL; a pair meets when
 *               both ends' ports match: expected hits k^2 / (Ba * Bb). k from target_p (at most
 *               RP_BLOCKPAIR_MAX_K), else a refusal with the odds.
 *   refuse.c    everything else (hard x predictable, hard x hard without blocks): impossible without a relay (none
 *               is available): both ends pick a new unknown port per destination; the reason and
 *               the odds say so. A refusal is a plan with rounds == 0 (rp_plan_refused).
 *
 *   easy = the external port of a new flow from the punch port is known in advance: not behind NAT,
 *          endpoint-independent mapping (mapped_port), or port-preserving allocation (local_port).
 *   predictable = sequential allocation with a delta and predictions.
 *   hard = random allocation (or unknown allocation with a dependent mapping).
 * Rates are capped by params.rate_pps; timings are relative to the agreed start T.
 * Adding a strategy: HACKING.md, "Add a punch strategy". */
#ifndef RP_STRATEGY_H
#define RP_STRATEGY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

enum rp_side_kind { RP_SIDE_EASY = 1, RP_SIDE_PREDICTABLE, RP_SIDE_HARD };

/* What a side sends; the executor's vocabulary (every strategy plans in these terms). */
enum rp_action {
	RP_ACT_NONE = 0,
	RP_ACT_CONNECT,           /* SYNs from local_port to each of remote_ports[] (paced), repeated */
	RP_ACT_OPEN_MANY,         /* n_local SYNs from n_local fresh local ports with ttl to remote_ports[0] */
	RP_ACT_PROBE_RANDOM,      /* n_probes SYNs from local_port to random ports in [port_lo, port_hi] */
	RP_ACT_OPEN_PAIRS,        /* n_local SYNs with ttl, the i-th from the i-th fresh local port to a random
	                           * port of [port_lo, port_hi]; then the same tuples again at full TTL */
};

#define RP_PLAN_MAX_PORTS 2048
#define RP_BIRTHDAY_N 64512u     /* 65535 - 1024 + 1 */
#define RP_BLOCKPAIR_MAX_K 1024u /* blockpair.c: most mappings per side */

struct rp_plan_params {
	double rtt_ms;            /* path RTT estimate (relay RTT is an upper bound); 0 = unknown (100) */
	double clock_err_ms;      /* start-time disagreement bound (the hard one: half the relay RTT); 0 = 5 */
	double clock_est_ms;      /* the disagreement as estimated (the clock samples' uncertainty, both
	                             sides); 0 = unknown: the bound */
	uint32_t rate_pps;        /* per-side SYN rate cap; 0 = 2000 */
	double target_p;          /* birthday/widening target success probability; 0 = 0.99 */
	unsigned max_open;        /* hard side: most low-TTL mappings; 0 = 256 */
	unsigned max_probes;      /* easy side: most probes per round; 0 = 2048 */
	unsigned rounds;          /* attempts (re-probe + widen between them); 0 = 3 */
};

struct rp_side_plan {
	enum rp_side_kind kind;
	char kind_why[100];       /* why the side is of that kind (its mapping and allocation, in words) */
	enum rp_action action;
	bool prime;               /* first send one SYN with ttl (low) to open the own mapping */
	uint8_t ttl;              /* TTL for prime / OPEN_MANY SYNs; 0 = normal */
	char ttl_how[80];         /* how ttl was chosen (rp_kit_low_ttl: nat_ttl and its method, ...) */
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
	uint32_t again_ms;        /* CONNECT: > start_ms: the first re-send at T + again_ms (the hard clock
	                             bound, where start_ms trusts the estimate), then every repeat_ms */
};

struct rp_strategy;

struct rp_plan {
	const struct rp_strategy *strategy;  /* the registry entry that made it; NULL: none */
	char reason[160];         /* human-readable why (always set) */
	int hard_side;            /* -1 none, 0 = a, 1 = b */
	double p_success;         /* estimated success probability per round (0..1) */
	unsigned rounds;          /* how many rounds to try; 0: a refusal */
	unsigned widen_factor;    /* next round's prediction window = window * widen_factor */
	struct rp_side_plan side[2];   /* [0] what side a does, [1] what side b does */
};

/* --- one round of one side, as the executor sends it ------------------------------------------- */

#define RP_EXEC_MAX_PHASES 3
#define RP_EXEC_MAX_FRESH 4096   /* most fresh local ports of one phase */

enum rp_src { RP_SRC_PUNCH = 0, RP_SRC_FRESH };
enum rp_dst { RP_DST_LIST = 0, RP_DST_RANDOM };

/* One pass of SYNs (repeated or not): the source ports x the destination ports, paced at the rate. */
struct rp_phase {
	const char *name;         /* "prime", "burst": shown in the progress line */
	bool prime;               /* its SYNs count as primes in the round's figures */
	uint8_t ttl;              /* 0: normal */
	enum rp_src src;          /* the punch port, or n_src fresh local ports (guarded, ISN port 0) */
	unsigned n_src;
	enum rp_dst dst;          /* dports[0..n_dst), or n_dst distinct random ports of [dst_lo, dst_hi] */
	const uint16_t *dports;   /* points into the plan or into rp_exec.ports */
	unsigned n_dst;
	uint16_t dst_lo, dst_hi;
	uint32_t at_ms;           /* first pass at T + at_ms (and not before the previous phase ended) */
	uint32_t pre_ms;          /* ... or up to pre_ms before that, as soon as the round begins: for SYNs
	                             that cannot reach the peer (low TTL) and need only its address and
	                             port, e.g. the hard side's mappings, open before T in the lead's idle
	                             time (the plan's odds do not count on it) */
	uint32_t repeat_ms;       /* again every repeat_ms (0: once) ... */
	uint32_t until_ms;        /* ... while the next pass would start before T + until_ms */
	bool zip;                 /* the i-th source with the i-th destination only (destinations reused in
	                           * turn when fewer), not every source x every destination */
	bool again;               /* the previous phase's (source, destination) pairs again, as it drew them
	                           * (its fresh ports, its random ports); src and dst are then ignored */
};

struct rp_exec {
	enum rp_action action;    /* of the plan's side (for the round's figures) */
	uint8_t low_ttl;          /* TTL of primes and low-TTL mappings */
	uint32_t rate_pps;
	struct rp_phase ph[RP_EXEC_MAX_PHASES];   /* in order; the last is the action itself (none: RP_ACT_NONE, a listener) */
	unsigned n;
	uint32_t end_ms;          /* the plan's sending ends at T + end_ms (the executor listens a grace longer) */
	unsigned rst_cut_count;   /* > 0: before any valid SYN/SYN-ACK, end the round once this many RSTs came ... */
	uint32_t rst_cut_ms;      /* ... and T + rst_cut_ms has passed */
	uint16_t ports[RP_PLAN_MAX_PORTS];        /* storage for phases' dports */
};

/* --- the table --------------------------------------------------------------------------------- */

/* What a strategy's plan() gets: both natinfos and the parameters with their defaults filled in. */
struct rp_plan_ctx {
	const struct rp_natinfo *ni[2];   /* [0] side a, [1] side b */
	enum rp_side_kind kind[2];
	struct rp_plan_params p;
	unsigned round;           /* 0-based; re-planned for every round with fresh natinfos */
	uint32_t margin_ms;       /* start margin: covers the clocks' disagreement (both fire at T by their own
	                             clocks) for sure: the hard bound */
	uint32_t early_ms;        /* the same by the estimate and a sending allowance (<= margin_ms): a SYN
	                             sent this early meets the peer's prime unless the clocks are off by
	                             more than the estimate says; plans that use it re-send at margin_ms */
	uint32_t repeat_ms;       /* a re-send interval: the RTT, at least 200 ms */
	uint8_t low_ttl[2];       /* each side's TTL for primes and low-TTL mappings (kit.h rp_kit_low_ttl) */
	char ttl_how[2][80];      /* and how it was chosen (the planner copies it to the side's ttl_how) */
};

struct rp_strategy {
	const char *name;         /* "birthday": the plan JSON's method, status lines, reports */
	/* Does it take the pair (side a, side b)? The planner asks the registry in order. */
	bool (*applies)(const struct rp_natinfo *a, const struct rp_natinfo *b);
	/* Fill the plan for c->round. out comes zeroed except: strategy, hard_side = -1, rounds =
	 * c->p.rounds, widen_factor = 1, and per side kind, local_port, remote_addr, rate_pps. Sets
	 * reason, p_success, both sides' action and sizes; widening per round is its business (c->round).
	 * rounds = 0 makes a refusal. 0 or -EINVAL. */
	int (*plan)(const struct rp_plan_ctx *c, struct rp_plan *out);
	/* The phases side `me` sends in a round of pl (self / peer: the natinfos pl was made from).
	 * NULL: rp_exec_default. 0 or -EINVAL. */
	int (*exec)(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		    struct rp_exec *out);
	/* For a person, after every round missed: what would help (one line; may name the CLI's
	 * options). NULL: the generic hint. */
	void (*miss_hint)(const struct rp_plan *pl, char *buf, size_t len);
	/* For a refusal: the odds behind it (the report's why appends them to the reason) and what
	 * would help. NULL for a strategy that never refuses. */
	void (*refusal)(const struct rp_plan *pl, char *odds, size_t olen, char *hint, size_t hlen);
};

/* The registry (registry.c), in the order the planner asks; NULL-terminated. */
extern const struct rp_strategy *const rp_strategies[];
/* Its name, "none" for NULL. */
const char *rp_strategy_name(const struct rp_strategy *s);
/* The entry with this name, or NULL. */
const struct rp_strategy *rp_strategy_find(const char *name);
/* The first entry that applies to (a, b) (the last one takes every pair). */
const struct rp_strategy *rp_strategy_for(const struct rp_natinfo *a, const struct rp_natinfo *b);

/* --- plans ------------------------------------------------------------------------------------- */

enum rp_side_kind rp_side_classify(const struct rp_natinfo *ni);
const char *rp_side_kind_str(enum rp_side_kind k);   /* "easy", "predictable", "hard" */
const char *rp_action_str(enum rp_action a);         /* "none", "connect", "open-many", "probe-random",
                                                      * "open-pairs" */
/* The public address a natinfo announces (mapped address behind a NAT, else the local one). */
uint32_t rp_side_pub_addr(const struct rp_natinfo *ni);

/* P(at least one hit) = 1 - (1 - k/n)^m; 0 when n == 0, 1 when k >= n. */
double rp_birthday_p(unsigned k, unsigned m, unsigned n);
/* Smallest m with rp_birthday_p(k, m, n) >= p (capped at 1e9); 0 if p <= 0. */
unsigned rp_birthday_probes(unsigned k, unsigned n, double p);
/* The same while the k mappings are being opened (birthday.c): mapping i is made at i / rate_open,
 * probe j reaches the NAT at j / rate_probe (the first with the first mapping) and finds the c_j =
 * min(k, ceil(j rate_open / rate_probe)) mappings made before it: P = 1 - prod_{j<m} (1 - c_j / n).
 * A rate of 0: no ramp (every mapping before the first probe), rp_birthday_p. */
double rp_birthday_p_ramp(unsigned k, uint32_t rate_open, unsigned m, uint32_t rate_probe, unsigned n);
/* Smallest m with rp_birthday_p_ramp(k, rate_open, m, rate_probe, n) >= p (capped at 1e9); 0 if p <= 0. */
unsigned rp_birthday_probes_ramp(unsigned k, uint32_t rate_open, uint32_t rate_probe, unsigned n, double p);

/* Make the plan for sides a and b (pp may be NULL for the defaults) with the first registry entry
 * that applies. The round number (0-based) widens prediction windows by widen_factor^round. 0, or
 * -EINVAL (NULL, zero public address, or an easy side without its punch port). A refusal is still
 * 0: read reason. */
int rp_plan_make(const struct rp_natinfo *a, const struct rp_natinfo *b, const struct rp_plan_params *pp,
		 unsigned round, struct rp_plan *out);
/* The strategy's name ("simultaneous-open", "predicted-burst", "birthday", "block-pairs", "impossible"), "none"
 * for a plan without one. */
const char *rp_plan_name(const struct rp_plan *pl);
/* A plan without rounds: no direct connection is possible (see reason, rp_plan_refusal). */
bool rp_plan_refused(const struct rp_plan *pl);
/* The strategy's texts for a person (see struct rp_strategy); empty strings when it has none. */
void rp_plan_miss_hint(const struct rp_plan *pl, char *buf, size_t len);
void rp_plan_refusal(const struct rp_plan *pl, char *odds, size_t olen, char *hint, size_t hlen);
/* The phases side me sends in a round of pl (the strategy's exec, else rp_exec_default). 0 or
 * -EINVAL (no strategy, a refusal, me not 0/1, an action without targets). */
int rp_plan_exec(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		 struct rp_exec *out);
/* The phases of the plan's action as planned: a prime at T (CONNECT with prime: one low-TTL SYN
 * from the punch port to the first target), then the action at T + start_ms (CONNECT repeated every
 * repeat_ms; OPEN_MANY n_local fresh ports with the low TTL; PROBE_RANDOM n_probes random ports). */
int rp_exec_default(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		    struct rp_exec *out);

/* Lockstep targets (both sides sequential): n ports this side aims at, in sending order, from the
 * peer's predictions (predicted[], then onwards by delta). me == 0 (side a): the i-th aims at the
 * peer's i-th prediction; me == 1 (side b): the j-th at prediction j + (j mod M), M = max(1, n/2). If
 * other flows took ka ports on a's NAT and kb on b's before the SYNs, a's i-th leaves from its
 * prediction i + ka and b's j-th from j + kb, and some pair is one 4-tuple whenever ka + kb < M
 * (i = j + kb, j mod M = ka + kb). Returns how many ports were written (fewer than n when the
 * sequence leaves 1..65535), or -EINVAL (no predictions / zero delta / bad me). */
int rp_lockstep_targets(const struct rp_natinfo *peer, unsigned n, int me, uint16_t *out);

/* The plan as JSON (the --report's "plan"): method, reason, p_success (4 decimals), rounds, hard_side
 * ("a", "b" or null), sides: [{side, kind, kind_why, action, prime, ttl, local_port, remote, (OPEN_MANY: n_local),
 * (PROBE_RANDOM: n_probes, port_lo, port_hi | OPEN_PAIRS: port_lo, port_hi | else: n_remote, remote_lo,
 * remote_hi), (with a low ttl: ttl_how), rate_pps,
 * start_ms, repeat_ms, duration_ms}, ...] (empty for a refusal). New reference, or NULL on ENOMEM. */
struct json_object;
struct json_object *rp_plan_to_json(const struct rp_plan *pl);

#endif
