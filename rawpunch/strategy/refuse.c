/* SPDX-License-Identifier: MIT */
/* Strategy "impossible": the refusal, last in the registry, so it takes every pair no other entry
 * plans for (hard x predictable, hard x hard without known port blocks on both sides, or blocks
 * too large for block-pairs: that one refuses itself, with its odds). Neither end has a port the other can aim at: a hard
 * side picks a new random port per destination, and a sequential one a new port per destination too,
 * so no probe of one side meets a mapping of the other except by a ~2^32 (or k/64512 per round)
 * chance. The plan has no rounds; its odds and hint say why a relay (TURN) is the way through. */
#include <stdio.h>

#include "rawpunch/strategy/strategy.h"

static bool applies(const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	(void)a;
	(void)b;
	return true;
}

static int plan(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	out->rounds = 0;
	out->p_success = 0;
	out->hard_side = c->kind[0] == RP_SIDE_HARD ? 0 : 1;
	for (int i = 0; i < 2; i++)
		out->side[i].action = RP_ACT_NONE;
	snprintf(out->reason, sizeof(out->reason),
		 "side a is %s and side b is %s: neither end has a port the other can aim at (random x 2^32 "
		 "space); a relay is needed and none is available", rp_side_kind_str(c->kind[0]),
		 rp_side_kind_str(c->kind[1]));
	return 0;
}

static void refusal(const struct rp_plan *pl, char *odds, size_t olen, char *hint, size_t hlen)
{
	if (pl->side[0].kind == RP_SIDE_HARD && pl->side[1].kind == RP_SIDE_HARD) {
		snprintf(odds, olen, "a port pair out of ~2^32: some 54000 packets for 50%%");
		snprintf(hint, hlen, "both NATs pick random ports: a meeting needs a port pair out of ~2^32 (some 54000 "
			 "packets for 50%%, 170000 for 99.9%%); a relay (TURN) is the way through");
	} else {
		snprintf(odds, olen, "each probe of the sequential side meets only mappings aimed at its exact port: "
			 "P ~ k/64512 per round, 0.4%% for k = 256");
		snprintf(hint, hlen, "the sequential side takes a new port per destination, so each of its probes meets "
			 "only the random side's mappings aimed at exactly that port: P ~ k/64512 per round (0.4%% for "
			 "k = 256); a relay (TURN) is the way through");
	}
}

const struct rp_strategy rp_strategy_refuse = {
	.name = "impossible",
	.applies = applies,
	.plan = plan,
	.refusal = refusal,
};
