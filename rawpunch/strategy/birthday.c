/* SPDX-License-Identifier: MIT */
/* Strategy "birthday" (easy x hard): the hard side opens k mappings with low-TTL SYNs (they die
 * before the peer's NAT, so no RST closes them) from k fresh local ports to the easy side's port; the
 * easy side probes m random ports of the hard NAT from its punch port once the mappings exist.
 * P = 1 - (1 - k/N)^m, N = RP_BIRTHDAY_N; m is the fewest probes reaching target_p (capped).
 * A hard side whose ports stay in a known block (the probe's range: RFC 7422 port blocks, random
 * inside) is probed only there: N = the block's size, k at most half of it (the mappings need
 * distinct ports of the block), so a few probes do: block 256, k 128, m 7: P = 0.992. */
#include <math.h>
#include <stdio.h>

#include "rawpunch/strategy/kit.h"
#include "rawpunch/strategy/strategy.h"

double rp_birthday_p(unsigned k, unsigned m, unsigned n)
{
	if (n == 0 || m == 0 || k == 0)
		return 0.0;
	if (k >= n)
		return 1.0;
	/* 1 - (1 - k/n)^m without losing precision for small k/n */
	return -expm1((double)m * log1p(-(double)k / (double)n));
}

unsigned rp_birthday_probes(unsigned k, unsigned n, double p)
{
	if (p <= 0.0)
		return 0;
	if (n == 0 || k == 0)
		return 1000000000u;
	if (k >= n)
		return 1;
	if (p >= 1.0)
		return 1000000000u;
	double m = ceil(log1p(-p) / log1p(-(double)k / (double)n));
	unsigned r = m > 1e9 ? 1000000000u : m < 1 ? 1 : (unsigned)m;
	/* floating rounding: make sure r really reaches p and r - 1 does not */
	while (r < 1000000000u && rp_birthday_p(k, r, n) < p)
		r++;
	while (r > 1 && rp_birthday_p(k, r - 1, n) >= p)
		r--;
	return r;
}

static bool applies(const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	enum rp_side_kind ka = rp_side_classify(a), kb = rp_side_classify(b);
	return (ka == RP_SIDE_EASY && kb == RP_SIDE_HARD) || (ka == RP_SIDE_HARD && kb == RP_SIDE_EASY);
}

static int plan(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	int hi = c->kind[0] == RP_SIDE_HARD ? 0 : 1, ei = 1 - hi;
	struct rp_side_plan *hs = &out->side[hi], *es = &out->side[ei];
	const struct rp_natinfo *hn = c->ni[hi];
	uint16_t lo = 1024, top = 65535;
	bool block = rp_kit_block(hn, &lo, &top);
	unsigned n = (unsigned)top - lo + 1, k = c->p.max_open;
	/* inside a block the hard side's mappings to one destination need distinct ports of it: half of
	 * it, leaving room for the host's other flows, and the easy side's probes meet one in two */
	if (block && k > n / 2)
		k = n / 2 ? n / 2 : 1;
	unsigned m = rp_birthday_probes(k, n, c->p.target_p);
	if (m > c->p.max_probes)
		m = c->p.max_probes;
	if (block && m > n)
		m = n;                        /* distinct ports: the whole block at most */
	out->hard_side = hi;
	hs->action = RP_ACT_OPEN_MANY;
	hs->n_local = k;
	hs->ttl = c->low_ttl[hi];
	hs->remote_ports[0] = rp_kit_easy_port(c->ni[ei]);
	hs->n_remote = 1;
	hs->start_ms = 0;
	uint32_t open_ms = rp_kit_ms_for(k, hs->rate_pps);
	hs->repeat_ms = 0;                /* conntrack keeps SYN_SENT ~120 s: open once per round */
	es->action = RP_ACT_PROBE_RANDOM;
	es->port_lo = lo;
	es->port_hi = top;
	es->n_probes = m;
	es->start_ms = open_ms + c->margin_ms;  /* the mappings exist before the first probe lands */
	uint32_t probe_ms = rp_kit_ms_for(m, es->rate_pps);
	es->repeat_ms = 0;
	es->duration_ms = probe_ms + 2 * c->repeat_ms;
	hs->duration_ms = es->start_ms + es->duration_ms;
	out->p_success = rp_birthday_p(k, m, n);
	if (block) {
		/* and only if the next flows stay in the block, as the probe believes they do */
		out->p_success *= hn->range_confidence < 1 ? hn->range_confidence : 1;
		snprintf(out->reason, sizeof(out->reason),
			 "side %c allocates randomly in a block of %u ports (%u-%u): it opens %u mappings (TTL %u), "
			 "side %c probes %u ports of the block: P = %.4f", 'a' + hi, n, lo, top, k, (unsigned)hs->ttl,
			 'a' + ei, m, out->p_success);
	} else {
		snprintf(out->reason, sizeof(out->reason),
			 "side %c allocates randomly: it opens %u mappings (TTL %u), side %c probes %u random ports: "
			 "P = %.4f", 'a' + hi, k, (unsigned)hs->ttl, 'a' + ei, m, out->p_success);
	}
	return 0;
}

static void miss_hint(const struct rp_plan *pl, char *buf, size_t len)
{
	snprintf(buf, len, "birthday is a matter of probability (P=%.3f per round); --max-open/--max-probes raise it",
		 pl->p_success);
}

const struct rp_strategy rp_strategy_birthday = {
	.name = "birthday",
	.applies = applies,
	.plan = plan,
	.miss_hint = miss_hint,
};
