/* SPDX-License-Identifier: MIT */
/* Strategy "birthday" (easy x hard): the hard side opens k mappings with low-TTL SYNs (they die
 * before the peer's NAT, so no RST closes them) from k fresh local ports to the easy side's port; the
 * easy side probes m random ports of the hard NAT from its punch port.
 * The probing overlaps the opening: both start at T (the probes at T + margin, the clocks' bound, so
 * that in the worst case of the clocks the first probe reaches the hard NAT as its first mapping is
 * made, the one-way delay counted as 0; a margin below the bound: the probes it leaves early count
 * as finding nothing). A probe finds only the mappings opened before it arrives:
 * probe j, sent j/r_b after the first, sees c_j = min(k, ceil(j r_a / r_b)) of them (r_a, r_b: the
 * sides' rates), so P = 1 - prod_j (1 - c_j/N) (rp_birthday_p_ramp) and m is the fewest probes
 * reaching target_p (capped): 256 mappings, N = 64512, 2000/s each: m = 1287, where probes after
 * the opening (rp_birthday_p: 1 - (1 - k/N)^m) needed 1159 but began k/r_a + margin later. Hits come
 * at rate r_b c(t) / N, so half the rounds have one within sqrt(2 ln2 N / (r_a r_b)) of the start
 * (150 ms at 2000/s, about k/r_a = 128 ms: a larger k only shortens the tail).
 * A hard side whose ports stay in a known block (the probe's range: RFC 7422 port blocks, random
 * inside) is probed only there: N = the block's size, k at most half of it (the mappings need
 * distinct ports of the block), so a few dozen probes do: block 256, k 128, m 48: P = 0.991. */
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

/* How many mappings probe j finds (see the top): those with i / ra < j / rb, at most k. */
static unsigned ramp_seen(unsigned k, uint32_t ra, uint32_t rb, uint64_t j)
{
	uint64_t c = (j * ra + rb - 1) / rb;
	return c < k ? (unsigned)c : k;
}

/* log P(none of the first m probes hits), 0 < k <= n, rates > 0; *ramp: how many of the m saw fewer
 * than k mappings (the loop runs over those only). */
static double ramp_log_miss(unsigned k, uint32_t ra, unsigned m, uint32_t rb, unsigned n, unsigned *ramp)
{
	double lm = 0;
	unsigned j = 0;
	for (; j < m; j++) {
		unsigned c = ramp_seen(k, ra, rb, j);
		if (c >= k)
			break;
		lm += log1p(-(double)c / (double)n);
	}
	*ramp = j;
	return j < m ? lm + (double)(m - j) * log1p(-(double)k / (double)n) : lm;   /* no 0 * -inf */
}

double rp_birthday_p_ramp(unsigned k, uint32_t rate_open, unsigned m, uint32_t rate_probe, unsigned n)
{
	unsigned ramp;
	if (!rate_open || !rate_probe)
		return rp_birthday_p(k, m, n);
	if (n == 0 || m == 0 || k == 0)
		return 0.0;
	/* k >= n: a probe that finds all n ports mapped hits (log1p(-1) = -inf, P = 1) */
	return -expm1(ramp_log_miss(k < n ? k : n, rate_open, m, rate_probe, n, &ramp));
}

unsigned rp_birthday_probes_ramp(unsigned k, uint32_t rate_open, uint32_t rate_probe, unsigned n, double p)
{
	const unsigned cap = 1000000000u;
	unsigned ramp, r;
	if (!rate_open || !rate_probe)
		return rp_birthday_probes(k, n, p);
	if (p <= 0.0)
		return 0;
	if (n == 0 || k == 0 || p >= 1.0)
		return cap;
	if (k > n)
		k = n;
	/* the ramp: the probes that find fewer than k, j rate_open <= (k - 1) rate_probe */
	uint64_t rl = (uint64_t)(k - 1) * rate_probe / rate_open + 1;
	double lm = ramp_log_miss(k, rate_open, rl < cap ? (unsigned)rl : cap, rate_probe, n, &ramp);
	if (lm <= log1p(-p)) {
		r = ramp;                 /* reached inside the ramp (k near n): the fewest of it */
	} else {
		/* after the ramp, 1 - (1 - k/n)^x must make up the rest: 1 - (1 - p) / P(miss in the ramp) */
		unsigned x = rp_birthday_probes(k, n, -expm1(log1p(-p) - lm));
		r = x > cap - ramp ? cap : ramp + x;
	}
	/* floating rounding: make sure r really reaches p and r - 1 does not */
	while (r < cap && rp_birthday_p_ramp(k, rate_open, r, rate_probe, n) < p)
		r++;
	while (r > 1 && rp_birthday_p_ramp(k, rate_open, r - 1, rate_probe, n) >= p)
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
	uint32_t ra = out->side[hi].rate_pps, rb = out->side[ei].rate_pps;
	/* the probes leave at T + start, the early margin (the clocks' estimate, strategy.h): where the
	 * clocks are off by more than it, up to their bound, the first probes may reach the hard NAT before
	 * its first mapping: they are counted as finding nothing (a probe that finds no mapping costs only
	 * itself: no state on either NAT that a later SYN needs) */
	uint32_t start = c->early_ms;
	double ahead_ms = c->p.clock_err_ms - (double)start;
	unsigned skip = ahead_ms > 0 ? (unsigned)ceil(ahead_ms * rb / 1000.0) : 0;
	unsigned m = skip + rp_birthday_probes_ramp(k, ra, rb, n, c->p.target_p);
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
	hs->repeat_ms = 0;                /* conntrack keeps SYN_SENT ~120 s: open once per round */
	es->action = RP_ACT_PROBE_RANDOM;
	es->port_lo = lo;
	es->port_hi = top;
	es->n_probes = m;
	/* while the mappings are being opened (see start above) */
	es->start_ms = start;
	uint32_t probe_ms = rp_kit_ms_for(m, rb);
	es->repeat_ms = 0;
	es->duration_ms = probe_ms + 2 * c->repeat_ms;
	hs->duration_ms = es->start_ms + es->duration_ms;
	out->p_success = m > skip ? rp_birthday_p_ramp(k, ra, m - skip, rb, n) : 0;
	if (block) {
		/* and only if the next flows stay in the block, as the probe believes they do */
		out->p_success *= hn->range_confidence < 1 ? hn->range_confidence : 1;
		snprintf(out->reason, sizeof(out->reason),
			 "side %c allocates randomly in a block of %u ports (%u-%u): it opens %u mappings (TTL %u), "
			 "side %c probes %u block ports meanwhile: P = %.4f", 'a' + hi, n, lo, top, k, (unsigned)hs->ttl,
			 'a' + ei, m, out->p_success);
	} else {
		snprintf(out->reason, sizeof(out->reason),
			 "side %c allocates randomly: it opens %u mappings (TTL %u), side %c probes %u random ports "
			 "meanwhile: P = %.4f", 'a' + hi, k, (unsigned)hs->ttl, 'a' + ei, m, out->p_success);
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
