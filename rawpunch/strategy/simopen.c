/* SPDX-License-Identifier: MIT */
/* Strategy "simultaneous-open" (easy x easy): both external ports are known, both sides SYN each
 * other's at T. A side whose NAT answers unsolicited SYNs (RST, ICMP) first sends a low-TTL prime so
 * its own mapping exists before the peer's SYN arrives, and its SYN follows by the clock estimate's
 * margin and again by the hard bound's; the round ends early when the peer's NAT keeps refusing (its
 * port is not the one announced: the next round re-probes). */
#include <errno.h>
#include <stdio.h>

#include "rawpunch/strategy/kit.h"
#include "rawpunch/strategy/strategy.h"

#define RST_CUT_COUNT 4           /* RSTs from the peer's NAT ... */
#define RST_CUT_AFTER_MS 1000u    /* ... still coming this long after our first full SYN */

static bool applies(const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	return rp_side_classify(a) == RP_SIDE_EASY && rp_side_classify(b) == RP_SIDE_EASY;
}

static int plan(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	out->p_success = 0.95;
	out->rounds = c->p.rounds < 2 ? c->p.rounds : 2;
	for (int i = 0; i < 2; i++) {
		struct rp_side_plan *sp = &out->side[i];
		sp->action = RP_ACT_CONNECT;
		sp->remote_ports[0] = rp_kit_easy_port(c->ni[1 - i]);
		sp->n_remote = 1;
		/* a NAT that answers a SYN it has no mapping for (RST, ICMP) would kill the peer's
		 * attempt if the peer's SYN came first: open our own mapping with a low-TTL SYN at T */
		sp->prime = rp_kit_answers_unsolicited(c->ni[i]);
		sp->ttl = sp->prime ? c->low_ttl[i] : 0;
		/* early on the clock estimate where that is safe (rp_kit_early_ok), again once the hard
		 * bound has passed: an early SYN that met the peer's NAT before its prime drew a refusal
		 * at most, and the second finds the mapping */
		if (sp->prime || rp_kit_answers_unsolicited(c->ni[1 - i])) {
			bool early = rp_kit_early_ok(c, i);
			sp->start_ms = early ? c->early_ms : c->margin_ms;
			sp->again_ms = early && c->margin_ms > c->early_ms ? c->margin_ms : 0;
		}
		sp->repeat_ms = c->repeat_ms;
		sp->duration_ms = 10u * c->repeat_ms > 5000 ? 10u * c->repeat_ms : 5000;
	}
	snprintf(out->reason, sizeof(out->reason), "both external ports are known (%s/%s): simultaneous open at T%s",
		 rp_alloc_str(c->ni[0]->alloc), rp_alloc_str(c->ni[1]->alloc),
		 out->side[0].prime || out->side[1].prime ? ", low-TTL primes first" : "");
	return 0;
}

/* Both mappings exist from T on (primes), so RSTs from the peer's NAT that keep coming a second
 * after our SYN mean our SYNs do not meet its mapping: end the round early. */
static int exec(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		struct rp_exec *x)
{
	int r = rp_exec_default(pl, me, self, peer, x);
	if (r)
		return r;
	x->rst_cut_count = RST_CUT_COUNT;
	x->rst_cut_ms = pl->side[me].start_ms + RST_CUT_AFTER_MS;
	return 0;
}

const struct rp_strategy rp_strategy_simopen = {
	.name = "simultaneous-open",
	.applies = applies,
	.plan = plan,
	.exec = exec,
};
