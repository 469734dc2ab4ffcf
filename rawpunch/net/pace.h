/* SPDX-License-Identifier: MIT */
/* Token-bucket pacing for packet bursts. Pure: the caller passes the clock (ns, any monotonic
 * origin), so it is exact and testable with a simulated clock. Integer arithmetic only: credit is
 * kept in "token-nanoseconds" (1 token = 1e9 units), so the long-run rate has no drift at any
 * rate from 1 pps up. rate 0 means unpaced (every take is granted in full). */
#ifndef RP_PACE_H
#define RP_PACE_H
#include <stdint.h>

struct rp_pace {
	uint64_t rate;      /* packets per second; 0 = unlimited */
	uint64_t depth;     /* bucket size in packets (largest burst after an idle period), >= 1 */
	uint64_t credit;    /* tokens * 1e9 + fraction, < (depth + 1) * 1e9 */
	uint64_t last_ns;   /* clock of the last refill */
};

/* Start with an empty bucket at now_ns (the first token arrives 1/rate later, so the first
 * second holds exactly `rate` packets). depth 0 picks a default: 5 ms of traffic, i.e.
 * max(1, rate / 200) capped at 4096: a sender woken up to 5 ms late catches up instead of losing
 * the time, and no back-to-back burst is longer than that. */
void rp_pace_init(struct rp_pace *p, uint64_t rate_pps, uint64_t depth, uint64_t now_ns);

/* Refill for the time since the last call, then grant min(want, whole tokens, depth) and consume them.
 * Returns the number granted (0 .. want). A clock that goes backwards adds nothing. */
uint64_t rp_pace_take(struct rp_pace *p, uint64_t now_ns, uint64_t want);

/* Nanoseconds from now_ns until at least one whole token is available (0 if one is already). */
uint64_t rp_pace_wait_ns(const struct rp_pace *p, uint64_t now_ns);

/* Default bucket depth for a rate, as used by rp_pace_init(depth = 0). */
uint64_t rp_pace_default_depth(uint64_t rate_pps);

#endif
