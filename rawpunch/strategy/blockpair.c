/* SPDX-License-Identifier: MIT */
/* Strategy "block-pairs" (hard x hard, or hard x predictable, when both sides allocate inside known
 * port blocks: RFC 7422 carrier NATs, the probe's range): neither end's next port is known, but each
 * lies in a block of Ba (Bb) ports instead of 64512. Both sides open k mappings with low-TTL SYNs
 * (they die before the peer's NAT): the i-th from the i-th of k fresh local ports to a random port of
 * the peer's block; then side a sends full-TTL SYNs along the very same tuples. A's i-th and b's j-th
 * meet when a's NAT gave a's i-th mapping the port b's j-th aimed at and b's NAT gave b's j-th the
 * port a's i-th aimed at: each of the k^2 pairs with P 1 / (Ba * Bb), so P = 1 - (1 - 1/(Ba Bb))^(k^2)
 * (about k^2 / (Ba Bb) hits expected). k is the fewest reaching target_p; above RP_BLOCKPAIR_MAX_K the
 * plan is a refusal with the odds (256 x 256 blocks: k = 550 for 0.99).
 * Only side a sends the full-TTL pass: with P 0.99 a few pairs meet (k^2 / (Ba Bb) ~ 4.6 expected), and
 * if both sides sent SYNs each could take a different pair for its flow first (seen once in the lab: a
 * handshake that never completed, the round missed). So b answers: the first of a's SYNs
 * that reaches it through one of its mappings defines the flow, its SYN-ACK goes back along that
 * pair (a's mapping i exists), and a's other hits arrive at b as late SYNs and are ignored.
 * The executor takes a flow only on one of the round's own pairs (the zip phase's): a SYN that comes
 * to one of b's local ports through a mapping an earlier attempt left at b's NAT, from a port b did
 * not aim that local port at, is stray and ignored (that NAT's conntrack knows the earlier sequence
 * numbers: such a flow was the block x block reset after the handoff, punch.c is_stray). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "rawpunch/strategy/kit.h"
#include "rawpunch/strategy/strategy.h"

static bool applies(const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	enum rp_side_kind ka = rp_side_classify(a), kb = rp_side_classify(b);
	return ka != RP_SIDE_EASY && kb != RP_SIDE_EASY && (ka == RP_SIDE_HARD || kb == RP_SIDE_HARD) &&
	       rp_kit_block_size(a) && rp_kit_block_size(b);
}

/* P of a meeting with k pairs per side between blocks of na and nb ports. */
static double pair_p(unsigned k, unsigned na, unsigned nb)
{
	return rp_birthday_p(1, k * k, na * nb);
}

/* The fewest k per side reaching p (may exceed the cap). */
static unsigned pairs_for(unsigned na, unsigned nb, double p)
{
	unsigned m = rp_birthday_probes(1, na * nb, p);
	unsigned k = (unsigned)ceil(sqrt((double)m));
	while (k > 1 && pair_p(k - 1, na, nb) >= p)
		k--;
	while (pair_p(k, na, nb) < p)
		k++;
	return k;
}

static int plan(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	unsigned n[2] = { rp_kit_block_size(c->ni[0]), rp_kit_block_size(c->ni[1]) };
	unsigned k = pairs_for(n[0], n[1], c->p.target_p);
	bool go = k <= RP_BLOCKPAIR_MAX_K;
	if (!go)
		k = RP_BLOCKPAIR_MAX_K;
	uint32_t open_ms = rp_kit_ms_for(k, c->p.rate_pps);
	out->hard_side = c->kind[0] == RP_SIDE_HARD ? 0 : 1;
	for (int i = 0; i < 2; i++) {
		struct rp_side_plan *sp = &out->side[i];
		sp->action = RP_ACT_OPEN_PAIRS;
		sp->n_local = k;
		rp_kit_block(c->ni[1 - i], &sp->port_lo, &sp->port_hi);
		sp->ttl = c->low_ttl[i];
		/* a's full-TTL pass: after both sides' mappings exist (same k, same rate, clocks within
		 * the margin); again every repeat_ms against loss (the same tuples). b listens as long */
		sp->start_ms = open_ms + c->margin_ms;
		sp->repeat_ms = i == 0 ? c->repeat_ms : 0;
		sp->duration_ms = rp_kit_ms_for(k, sp->rate_pps) + 3 * c->repeat_ms;
	}
	/* and only if both sides' next flows stay in their blocks, as the probe believes */
	double conf = 1;
	for (int i = 0; i < 2; i++)
		conf *= c->ni[i]->range_confidence < 1 ? c->ni[i]->range_confidence : 1;
	out->p_success = conf * pair_p(k, n[0], n[1]);
	if (!go) {
		out->rounds = 0;
		snprintf(out->reason, sizeof(out->reason),
			 "port blocks %u x %u: P %.2f needs %u mappings per side, more than %u (P %.3f); a relay is "
			 "needed", n[0] % 65536, n[1] % 65536, c->p.target_p, pairs_for(n[0], n[1], c->p.target_p) % 100000,
			 RP_BLOCKPAIR_MAX_K, out->p_success);
		return 0;
	}
	snprintf(out->reason, sizeof(out->reason),
		 "port blocks %u x %u: each side opens %u mappings (TTL %u/%u) to random ports of the other's "
		 "block, then a SYNs the same tuples: P = %.4f", n[0] % 65536, n[1] % 65536, k % 2048,
		 (unsigned)out->side[0].ttl, (unsigned)out->side[1].ttl, out->p_success);
	return 0;
}

/* The low-TTL pairs at T; side a then the same tuples at full TTL from start_ms, repeated. */
static int exec(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		struct rp_exec *x)
{
	const struct rp_side_plan *sp = &pl->side[me];
	if (sp->action != RP_ACT_OPEN_PAIRS || !sp->n_local || sp->n_local > RP_EXEC_MAX_FRESH || !sp->port_lo ||
	    sp->port_lo > sp->port_hi)
		return -EINVAL;
	memset(x, 0, offsetof(struct rp_exec, ports));
	x->action = sp->action;
	x->rate_pps = sp->rate_pps ? sp->rate_pps : RP_DEF_RATE;
	x->low_ttl = sp->ttl ? sp->ttl : rp_kit_low_ttl(self, peer, NULL, 0);
	x->end_ms = sp->start_ms + sp->duration_ms;
	x->ph[x->n++] = (struct rp_phase){ .name = "open", .prime = true, .ttl = x->low_ttl, .src = RP_SRC_FRESH,
					   .n_src = sp->n_local, .dst = RP_DST_RANDOM, .n_dst = sp->n_local,
					   .dst_lo = sp->port_lo, .dst_hi = sp->port_hi, .zip = true };
	if (me == 0)   /* only a sends the full pass: b's answer chooses the pair (see the top) */
		x->ph[x->n++] = (struct rp_phase){ .name = "burst", .again = true, .at_ms = sp->start_ms,
						   .repeat_ms = sp->repeat_ms, .until_ms = x->end_ms };
	return 0;
}

static void miss_hint(const struct rp_plan *pl, char *buf, size_t len)
{
	snprintf(buf, len, "two port blocks meet by chance (P=%.3f per round); other flows of the hosts behind "
		 "the NATs use block ports too", pl->p_success);
}

static void refusal(const struct rp_plan *pl, char *odds, size_t olen, char *hint, size_t hlen)
{
	if (pl->rounds)
		return;                       /* a plan that runs has no refusal */
	unsigned na = (unsigned)pl->side[1].port_hi - pl->side[1].port_lo + 1;
	unsigned nb = (unsigned)pl->side[0].port_hi - pl->side[0].port_lo + 1;
	snprintf(odds, olen, "%u mappings per side give P %.3f over %u x %u block ports", pl->side[0].n_local,
		 pl->p_success, na, nb);
	snprintf(hint, hlen, "the blocks are too large for pairs to meet: %u mappings per side give P %.3f; a "
		 "relay (TURN) is the way through", pl->side[0].n_local, pl->p_success);
}

const struct rp_strategy rp_strategy_blockpair = {
	.name = "block-pairs",
	.applies = applies,
	.plan = plan,
	.exec = exec,
	.miss_hint = miss_hint,
	.refusal = refusal,
};
