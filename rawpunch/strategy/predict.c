/* SPDX-License-Identifier: MIT */
/* Strategy "predicted-burst": a sequential NAT's next external ports are predicted.
 *   easy x predictable: the predictable side's low-TTL prime takes the predicted port (a mapping
 *     towards the easy side's port), the easy side bursts SYNs to the prediction window from its
 *     punch port, then the predictable side's full SYN follows; re-probe and widen x2 on a miss.
 *   predictable x predictable: lockstep. Every target is primed first (so each side's i-th mapping
 *     exists before the other's i-th SYN arrives), then a full-TTL pass repeated against loss; side
 *     b's targets are staggered (rp_lockstep_targets) so other hosts' flows in between still pair. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rawpunch/strategy/kit.h"
#include "rawpunch/strategy/strategy.h"

#define MIN_WINDOW 8u
#define LOCKSTEP_GAP_MS 5u         /* full pass after the primes when the plan gives no start margin */
#define LOCKSTEP_REPEAT_MS 250u    /* the same 4-tuples again (the mappings exist: no new port taken) */

static bool applies(const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	enum rp_side_kind ka = rp_side_classify(a), kb = rp_side_classify(b);
	return (ka == RP_SIDE_PREDICTABLE && (kb == RP_SIDE_EASY || kb == RP_SIDE_PREDICTABLE)) ||
	       (ka == RP_SIDE_EASY && kb == RP_SIDE_PREDICTABLE);
}

static void add_port(struct rp_side_plan *sp, long p, unsigned cap)
{
	if (p < 1 || p > 65535 || sp->n_remote >= cap)
		return;
	for (unsigned i = 0; i < sp->n_remote; i++)
		if (sp->remote_ports[i] == (uint16_t)p)
			return;
	sp->remote_ports[sp->n_remote++] = (uint16_t)p;
}

/* Window of the predictable side's next external ports, most likely first: its predictions, then
 * forward along delta (other flows only ever push the counter ahead), then w/8 ports behind. */
static void fill_window(struct rp_side_plan *sp, const struct rp_natinfo *ni, unsigned w)
{
	long base = ni->predicted[0], last = ni->predicted[ni->n_predicted - 1], d = ni->delta;
	if (w > RP_PLAN_MAX_PORTS)
		w = RP_PLAN_MAX_PORTS;
	unsigned back = w / 8;
	sp->n_remote = 0;
	for (unsigned i = 0; i < ni->n_predicted && i < RP_MAX_PREDICT; i++)
		add_port(sp, ni->predicted[i], w);
	for (long k = 1; sp->n_remote + back < w && last + k * d >= 1 && last + k * d <= 65535; k++)
		add_port(sp, last + k * d, w - back);
	for (long k = 1; sp->n_remote < w && k <= (long)back && base - k * d >= 1 && base - k * d <= 65535; k++)
		add_port(sp, base - k * d, w);
	/* behind ran out of range: take the rest forward */
	for (long k = 1; sp->n_remote < w && last + k * d >= 1 && last + k * d <= 65535; k++)
		add_port(sp, last + k * d, w);
}

/* The prediction window for a round: the predictions or the jitter's spread, at least MIN_WINDOW,
 * doubled per round. */
static unsigned window_size(const struct rp_natinfo *ni, unsigned round)
{
	double w = ni->n_predicted;
	double spread = 4.0 * (ni->jitter > 0 ? ni->jitter : 0) / (ni->delta < 0 ? -ni->delta : ni->delta) + 1;
	if (spread > w)
		w = spread;
	if (w < MIN_WINDOW)
		w = MIN_WINDOW;
	for (unsigned i = 0; i < round && w < RP_PLAN_MAX_PORTS; i++)
		w *= 2;
	return w > RP_PLAN_MAX_PORTS ? RP_PLAN_MAX_PORTS : (unsigned)ceil(w);
}

static int plan_one_sided(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	int pi = c->kind[0] == RP_SIDE_PREDICTABLE ? 0 : 1, ei = 1 - pi;
	struct rp_side_plan *ps = &out->side[pi], *es = &out->side[ei];
	const struct rp_natinfo *pn = c->ni[pi];
	unsigned w = window_size(pn, c->round);
	out->hard_side = pi;
	out->widen_factor = 2;
	/* easy side: burst to the predicted window from its punch port once the prime passed */
	es->action = RP_ACT_CONNECT;
	fill_window(es, pn, w);
	/* early on the clock estimate where the peer's NAT does not reset (rp_kit_early_ok: the
	 * predictable side does not keep its port), again after the hard bound: a burst that came before
	 * the prime drew refusals at most, the second meets the mapping */
	uint32_t e_early = rp_kit_early_ok(c, ei) ? c->early_ms : c->margin_ms;
	uint32_t p_early = rp_kit_early_ok(c, pi) ? c->early_ms : c->margin_ms;
	es->start_ms = e_early;
	uint32_t burst = rp_kit_ms_for(es->n_remote, es->rate_pps);
	es->repeat_ms = burst + c->repeat_ms;
	es->duration_ms = 3 * (burst + c->repeat_ms);
	es->again_ms = c->margin_ms > e_early ? c->margin_ms + burst : 0;
	/* predictable side: its prime takes the predicted port (mapping to the easy side's port);
	 * its full SYN follows the burst so it meets an open conntrack entry on the easy NAT */
	ps->action = RP_ACT_CONNECT;
	ps->prime = true;
	ps->ttl = c->low_ttl[pi];
	ps->remote_ports[0] = rp_kit_easy_port(c->ni[ei]);
	ps->n_remote = 1;
	/* after the easy side's burst (from its start, by this side's margin) */
	ps->start_ms = e_early + burst + p_early;
	ps->again_ms = ps->start_ms < c->margin_ms + burst + c->margin_ms ? c->margin_ms + burst + c->margin_ms + burst : 0;
	ps->repeat_ms = c->repeat_ms;
	ps->duration_ms = es->duration_ms;
	double conf = pn->confidence > 0 && pn->confidence <= 1 ? pn->confidence : 0.5;
	double extra = es->n_remote > pn->n_predicted ? 1.0 - (double)pn->n_predicted / es->n_remote : 0;
	out->p_success = conf + (1 - conf) * extra * 0.9;
	if (out->p_success > 0.99)
		out->p_success = 0.99;
	snprintf(out->reason, sizeof(out->reason),
		 "side %c is sequential (delta %d): its prime takes the predicted port, side %c bursts "
		 "%u ports; re-probe and widen x2 on a miss", 'a' + pi, (int)pn->delta, 'a' + ei, es->n_remote);
	return 0;
}

static int plan_lockstep(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	const struct rp_natinfo *a = c->ni[0], *b = c->ni[1];
	unsigned w = window_size(a, c->round), wb = window_size(b, c->round);
	if (wb > w)
		w = wb;
	out->widen_factor = 2;
	for (int i = 0; i < 2; i++) {
		struct rp_side_plan *sp = &out->side[i];
		const struct rp_natinfo *o = c->ni[1 - i];
		sp->ttl = c->low_ttl[i];       /* every target is primed first (exec) */
		/* lockstep: the i-th SYN of each side (which takes its own i-th predicted port)
		 * targets the other's i-th predicted port, so the pairs match up */
		sp->action = RP_ACT_CONNECT;
		sp->n_remote = 0;
		for (unsigned k = 0; k < w; k++) {
			long port = k < o->n_predicted ? o->predicted[k]
						       : (long)o->predicted[o->n_predicted - 1] +
							 (long)(k - o->n_predicted + 1) * o->delta;
			if (port < 1 || port > 65535)
				break;
			sp->remote_ports[sp->n_remote++] = (uint16_t)port;
		}
		sp->start_ms = c->margin_ms;
		uint32_t burst = rp_kit_ms_for(w, sp->rate_pps);
		sp->repeat_ms = 0;             /* a repeat would take new ports: re-plan instead */
		sp->duration_ms = burst + 2 * c->repeat_ms;
	}
	unsigned n = out->side[0].n_remote < out->side[1].n_remote ? out->side[0].n_remote : out->side[1].n_remote;
	out->side[0].n_remote = out->side[1].n_remote = n;
	double ca = a->confidence > 0 ? a->confidence : 0.5, cb = b->confidence > 0 ? b->confidence : 0.5;
	out->p_success = ca * cb;
	snprintf(out->reason, sizeof(out->reason),
		 "both sides sequential: lockstep bursts of %u SYNs pairing the i-th predictions; works only "
		 "while no other flow takes a port in between", n);
	return 0;
}

static int plan(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	if (c->kind[0] == RP_SIDE_PREDICTABLE && c->kind[1] == RP_SIDE_PREDICTABLE)
		return plan_lockstep(c, out);
	return plan_one_sided(c, out);
}

int rp_lockstep_targets(const struct rp_natinfo *pn, unsigned n, int me, uint16_t *out)
{
	unsigned m = n / 2 ? n / 2 : 1;
	if (!pn || !out || (me != 0 && me != 1) || !pn->n_predicted || pn->n_predicted > RP_MAX_PREDICT || !pn->delta)
		return -EINVAL;
	for (unsigned j = 0; j < n; j++) {
		long idx = (long)j + (me == 1 ? (long)(j % m) : 0), port;
		if (idx < (long)pn->n_predicted)
			port = pn->predicted[idx];
		else
			port = (long)pn->predicted[pn->n_predicted - 1] + (idx - (long)pn->n_predicted + 1) * pn->delta;
		if (port < 1 || port > 65535)
			return (int)j;
		out[j] = (uint16_t)port;
	}
	return (int)n;
}

/* Lockstep (both sides sequential). Side a's i-th SYN targets b's i-th predicted port; side b's
 * j-th SYN targets a's predicted port j + (j mod M). If other hosts' flows took ka ports on a's
 * NAT and kb on b's since the predictions were made, a's i-th SYN leaves from a's port i + ka and
 * b's j-th from b's j + kb: the two are one 4-tuple when i = j + kb and j mod M = ka + kb. So
 * any total drift K = ka + kb < M still pairs (at j = K, K + M, ...), where plain i-th to i-th
 * pairing needs ka = kb = 0 -- which a NAT with other users rarely grants. */
static int exec(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		struct rp_exec *x)
{
	const struct rp_side_plan *sp = &pl->side[me];
	int r = rp_exec_default(pl, me, self, peer, x);
	if (r || pl->side[0].kind != RP_SIDE_PREDICTABLE || pl->side[1].kind != RP_SIDE_PREDICTABLE)
		return r;
	if (sp->action != RP_ACT_CONNECT)
		return -EINVAL;
	int k = rp_lockstep_targets(peer, sp->n_remote, me, x->ports);
	if (k <= 0)
		return -EINVAL;
	/* every target primed at T, from the punch port */
	x->n = 0;
	x->ph[x->n++] = (struct rp_phase){ .name = "prime", .prime = true, .ttl = x->low_ttl, .src = RP_SRC_PUNCH,
					   .dst = RP_DST_LIST, .dports = x->ports, .n_dst = (unsigned)k };
	/* the full-TTL pass follows every side's primes by the start margin; it is repeated (the same
	 * 4-tuples: the mappings exist, no new port is taken) against loss */
	struct rp_phase *ph = &x->ph[x->n++];
	*ph = (struct rp_phase){ .name = "burst", .src = RP_SRC_PUNCH, .dst = RP_DST_LIST, .dports = x->ports,
				 .n_dst = (unsigned)k, .at_ms = sp->start_ms, .repeat_ms = LOCKSTEP_REPEAT_MS };
	uint32_t at = rp_kit_ms_for((unsigned)k, x->rate_pps) + (sp->start_ms ? sp->start_ms : LOCKSTEP_GAP_MS);
	if (at > ph->at_ms) {
		x->end_ms += at - ph->at_ms;
		ph->at_ms = at;
	}
	ph->until_ms = x->end_ms;
	return 0;
}

static void miss_hint(const struct rp_plan *pl, char *buf, size_t len)
{
	(void)pl;
	snprintf(buf, len, "other flows through the sequential NAT move its counter; fewer of them, or more rounds, help");
}

const struct rp_strategy rp_strategy_predict = {
	.name = "predicted-burst",
	.applies = applies,
	.plan = plan,
	.exec = exec,
	.miss_hint = miss_hint,
};
