/* SPDX-License-Identifier: MIT */
/* strategy.h, the executor's side: the phases each strategy gives for each side of its plans
 * (rp_plan_exec), and the lockstep targets of two sequential NATs (rp_lockstep_targets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "rawpunch/strategy/kit.h"
#include "rawpunch/strategy/strategy.h"
#include "tests/unit/natinfo_fixture.h"

/* The phases each strategy gives the executor for each side. */
static void test_exec(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	struct rp_exec *x = malloc(sizeof(*x));

	/* simultaneous open, a's NAT sends RSTs (primed), b's drops (not primed) */
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, PRESERVE, RP_FILTER_DROP, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(rp_plan_exec(pl, 0, &a, &b, x), 0);
	assert_int_equal(x->n, 2);
	assert_string_equal(x->ph[0].name, "prime");
	assert_true(x->ph[0].prime);
	assert_int_equal(x->ph[0].ttl, 2);
	assert_int_equal(x->ph[0].n_dst, 1);
	assert_int_equal(x->ph[0].dports[0], 41000);
	assert_int_equal(x->ph[0].at_ms, 0);
	assert_string_equal(x->ph[1].name, "burst");
	assert_int_equal(x->ph[1].ttl, 0);
	assert_int_equal(x->ph[1].src, RP_SRC_PUNCH);
	assert_int_equal(x->ph[1].at_ms, pl->side[0].start_ms);
	assert_int_equal(x->ph[1].repeat_ms, pl->side[0].repeat_ms);
	assert_int_equal(x->ph[1].until_ms, x->end_ms);
	assert_int_equal(x->ph[0].pre_ms, 0);             /* SYNs that reach the peer: never before T */
	assert_int_equal(x->ph[1].pre_ms, 0);
	assert_int_equal(x->end_ms, pl->side[0].start_ms + pl->side[0].duration_ms);
	assert_int_equal(x->rst_cut_count, 4);            /* simultaneous open cuts a refused round short */
	assert_int_equal(x->rst_cut_ms, pl->side[0].start_ms + 1000);
	assert_int_equal(rp_plan_exec(pl, 1, &b, &a, x), 0);
	assert_int_equal(x->n, 1);                        /* b's NAT drops: no prime */
	assert_int_equal(x->ph[0].dports[0], 40000);

	/* birthday: b (random) opens fresh ports with the low TTL, a probes random ports */
	mk(&b, RANDOM, RP_FILTER_RST, "198.18.2.2", 41000);
	b.nat_ttl = 3;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(rp_plan_exec(pl, 1, &b, &a, x), 0);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->action, RP_ACT_OPEN_MANY);
	assert_int_equal(x->ph[0].src, RP_SRC_FRESH);
	assert_int_equal(x->ph[0].n_src, 256);
	assert_int_equal(x->ph[0].pre_ms, 1000);          /* low TTL: may open before T, in the lead */
	assert_int_equal(x->ph[0].ttl, 3);
	assert_int_equal(x->ph[0].n_dst, 1);
	assert_int_equal(x->ph[0].dports[0], 40000);
	assert_int_equal(x->ph[0].repeat_ms, 0);
	assert_int_equal(x->rst_cut_count, 0);
	assert_int_equal(rp_plan_exec(pl, 0, &a, &b, x), 0);
	assert_int_equal(x->ph[0].dst, RP_DST_RANDOM);
	assert_int_equal(x->ph[0].n_dst, pl->side[0].n_probes);
	assert_int_equal(x->ph[0].dst_lo, 1024);
	assert_int_equal(x->ph[0].dst_hi, 65535);
	assert_int_equal(x->ph[0].at_ms, pl->side[0].start_ms);

	/* predicted burst, one-sided: b (sequential) primes a's port, then its full SYN after a's burst */
	mk(&b, SEQUENTIAL, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(rp_plan_exec(pl, 1, &b, &a, x), 0);
	assert_int_equal(x->n, 2);
	assert_true(x->ph[0].prime);
	assert_int_equal(x->ph[0].dports[0], 40000);
	assert_true(x->ph[1].at_ms > 0);
	assert_int_equal(rp_plan_exec(pl, 0, &a, &b, x), 0);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->ph[0].n_dst, pl->side[0].n_remote);
	assert_ptr_equal(x->ph[0].dports, pl->side[0].remote_ports);

	/* lockstep: every target primed, b's targets staggered, the full pass after the primes */
	mk(&a, SEQUENTIAL, RP_FILTER_RST, "198.18.1.2", 40000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	unsigned n = pl->side[0].n_remote;
	for (int me = 0; me < 2; me++) {
		const struct rp_natinfo *self = me ? &b : &a, *peer = me ? &a : &b;
		uint16_t want[RP_PLAN_MAX_PORTS];
		assert_int_equal(rp_lockstep_targets(peer, n, me, want), (int)n);
		assert_int_equal(rp_plan_exec(pl, me, self, peer, x), 0);
		assert_int_equal(x->n, 2);
		assert_true(x->ph[0].prime);
		assert_int_equal(x->ph[0].n_dst, n);
		assert_int_equal(x->ph[1].n_dst, n);
		assert_memory_equal(x->ph[0].dports, want, n * sizeof(uint16_t));
		assert_memory_equal(x->ph[1].dports, want, n * sizeof(uint16_t));
		assert_int_equal(x->ph[1].repeat_ms, 250);
		/* n primes at 2000/s take n/2 ms, then the start margin */
		assert_int_equal(x->ph[1].at_ms, (n * 1000 + 1999) / 2000 + pl->side[me].start_ms);
		assert_int_equal(x->end_ms, pl->side[me].duration_ms + x->ph[1].at_ms);
		assert_int_equal(x->ph[1].until_ms, x->end_ms);
	}
	assert_int_not_equal(x->ph[0].dports[3], pl->side[1].remote_ports[3]);   /* b: staggered */

	/* a refusal has nothing to send */
	mk(&a, RANDOM, RP_FILTER_RST, "198.18.1.2", 40000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(rp_plan_exec(pl, 0, &a, &b, x), -EINVAL);
	assert_int_equal(rp_plan_exec(pl, 2, &a, &b, x), -EINVAL);
	free(x);
	free(pl);
}

/* Two sequential NATs (a: ports from 20010 step 1; b: from 30000 step 2). Other hosts took ka ports on a's
 * NAT and kb on b's before the bursts: a's i-th SYN leaves from a's port i + ka, b's j-th from j + kb.
 * Is there a pair that is one 4-tuple (a's source = b's target and b's source = a's target)? */
static bool lockstep_meets(const uint16_t *ta, const uint16_t *tb, unsigned n, unsigned ka, unsigned kb)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < n; j++) {
			uint16_t a_src = (uint16_t)(20010 + (i + ka) * 1), b_src = (uint16_t)(30000 + (j + kb) * 2);
			if (a_src == tb[j] && b_src == ta[i])
				return true;
		}
	return false;
}

/* block-pairs: each side's low-TTL pairs (fresh port i -> random port of the peer's block), then the
 * same tuples again at full TTL */
/* With a clock estimate beside the hard bound, the simultaneous open's SYN goes early (the estimate
 * and a sending allowance) and once more when the bound has passed, then every repeat_ms; the
 * predictable side of a one-sided prediction likewise. Without one (serverless): the bound, once. */
static void test_early_again(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	struct rp_exec *x = malloc(sizeof(*x));
	struct rp_plan_params pp = { .rtt_ms = 100, .clock_err_ms = 50, .clock_est_ms = 5.3 };

	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, PRESERVE, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_int_equal(pl->side[0].start_ms, 6 + 6);      /* ceil(5.3) + the allowance */
	assert_int_equal(pl->side[0].again_ms, 52);         /* the bound + 2 */
	assert_int_equal(rp_plan_exec(pl, 0, &a, &b, x), 0);
	assert_int_equal(x->n, 3);
	assert_string_equal(x->ph[1].name, "burst");
	assert_int_equal(x->ph[1].at_ms, 12);
	assert_int_equal(x->ph[1].repeat_ms, 0);            /* once ... */
	assert_string_equal(x->ph[2].name, "again");
	assert_true(x->ph[2].again);                        /* ... the same SYN again at the bound */
	assert_int_equal(x->ph[2].at_ms, 52);
	assert_int_equal(x->ph[2].repeat_ms, pl->side[0].repeat_ms);
	assert_int_equal(x->ph[2].until_ms, x->end_ms);

	/* an estimate as large as the bound: no second pass */
	pp.clock_est_ms = 49;
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_int_equal(pl->side[0].start_ms, 52);
	assert_int_equal(pl->side[0].again_ms, 0);
	assert_int_equal(rp_plan_exec(pl, 0, &a, &b, x), 0);
	assert_int_equal(x->n, 2);
	assert_int_equal(x->ph[1].repeat_ms, pl->side[0].repeat_ms);

	/* serverless: no estimate, the bound */
	pp.clock_est_ms = 0;
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_int_equal(pl->side[0].start_ms, 52);
	assert_int_equal(pl->side[0].again_ms, 0);

	/* the early SYN only where it is safe: a port kept by neither (an endpoint-independent NAT that
	 * allocates at random: easy, but a deleted entry comes back at another port) and the peer
	 * resetting: the bound, once (rp_kit_early_ok) */
	pp.clock_est_ms = 5.3;
	b.alloc = RP_ALLOC_RANDOM;
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), "simultaneous-open");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pl->side[i].start_ms, 52);
		assert_int_equal(pl->side[i].again_ms, 0);
	}
	/* ... but where the peer's NAT drops, that side may (a's early SYN meets no reset) */
	b.filtering = RP_FILTER_DROP;
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_int_equal(pl->side[0].start_ms, 12);
	assert_int_equal(pl->side[0].again_ms, 52);
	assert_int_equal(pl->side[1].start_ms, 52);         /* b: its peer resets */

	/* sequential (rst) x preserve (drop): the easy side b at the bound (the sequential NAT resets and
	 * keeps no port), and again; the predictable side's full SYN early after b's burst, and again
	 * after b's second */
	mk(&a, SEQUENTIAL, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, PRESERVE, RP_FILTER_DROP, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	uint32_t burst = rp_kit_ms_for(pl->side[1].n_remote, pl->side[1].rate_pps);
	assert_int_equal(pl->side[1].start_ms, 52);
	assert_int_equal(pl->side[1].again_ms, 0);
	assert_int_equal(pl->side[0].start_ms, 52 + burst + 12);
	assert_int_equal(pl->side[0].again_ms, 52 + burst + 52 + burst);
	/* both resetting: the bound everywhere, as without an estimate */
	b.filtering = RP_FILTER_RST;
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_int_equal(pl->side[1].start_ms, 52);
	assert_int_equal(pl->side[0].start_ms, 52 + burst + 52);
	assert_int_equal(pl->side[0].again_ms, 0);
	free(pl);
	free(x);
}

static void test_block_pairs_exec(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	struct rp_exec *x = malloc(sizeof(*x));
	mk(&a, BLOCK, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, BLOCK, RP_FILTER_RST, "198.18.2.2", 41000);
	b.nat_ttl = 3;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	for (int me = 0; me < 2; me++) {
		const struct rp_natinfo *self = me ? &b : &a, *peer = me ? &a : &b;
		assert_int_equal(rp_plan_exec(pl, me, self, peer, x), 0);
		assert_int_equal(x->action, RP_ACT_OPEN_PAIRS);
		assert_int_equal(x->n, me == 0 ? 2 : 1);      /* only a sends the full pass */
		assert_int_equal(x->low_ttl, me ? 3 : 2);
		const struct rp_phase *o = &x->ph[0], *f = &x->ph[1];
		assert_int_equal(x->end_ms, pl->side[me].start_ms + pl->side[me].duration_ms);
		assert_string_equal(o->name, "open");
		assert_true(o->prime);
		assert_int_equal(o->ttl, x->low_ttl);
		assert_int_equal(o->src, RP_SRC_FRESH);
		assert_int_equal(o->n_src, 550);
		assert_int_equal(o->dst, RP_DST_RANDOM);
		assert_int_equal(o->n_dst, 550);
		assert_int_equal(o->dst_lo, peer->range_lo);
		assert_int_equal(o->dst_hi, peer->range_hi);
		assert_true(o->zip);
		assert_false(o->again);
		assert_int_equal(o->at_ms, 0);
		if (me == 1)
			continue;                              /* b answers a's SYNs: one pair chosen, by b */
		assert_string_equal(f->name, "burst");
		assert_true(f->again);                         /* the very tuples of "open" */
		assert_false(f->prime);
		assert_int_equal(f->ttl, 0);                   /* full TTL */
		assert_int_equal(f->at_ms, pl->side[me].start_ms);
		assert_true(f->at_ms >= 550 * 1000 / x->rate_pps);   /* after every mapping is open */
		assert_int_equal(f->repeat_ms, pl->side[me].repeat_ms);
		assert_int_equal(f->until_ms, x->end_ms);
	}
	/* a refusal has no phases */
	a.range_hi = (uint16_t)(a.range_lo + 4095);
	b.range_hi = (uint16_t)(b.range_lo + 4095);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(rp_plan_exec(pl, 0, &a, &b, x), -EINVAL);
	free(x);
	free(pl);
}

static void test_lockstep(void **state)
{
	(void)state;
	struct rp_natinfo na = { 0 }, nb = { 0 };
	uint16_t ta[64], tb[64], plain[64];
	na.has_delta = nb.has_delta = true;
	na.delta = 1;
	nb.delta = 2;
	na.n_predicted = 8;   /* predictions run out: the targets continue by delta */
	nb.n_predicted = 8;
	for (unsigned k = 0; k < 8; k++) {
		na.predicted[k] = (uint16_t)(20010 + k);
		nb.predicted[k] = (uint16_t)(30000 + 2 * k);
	}
	unsigned n = 64, m = n / 2;
	assert_int_equal(rp_lockstep_targets(&nb, n, 0, ta), 64);   /* a aims at b's predictions */
	assert_int_equal(rp_lockstep_targets(&na, n, 1, tb), 64);   /* b aims at a's, staggered */
	assert_int_equal(ta[0], 30000);
	assert_int_equal(ta[10], 30020);
	assert_int_equal(tb[0], 20010);
	assert_int_equal(tb[3], 20010 + 6);      /* j + (j mod 32) */
	assert_int_equal(tb[33], 20010 + 34);
	/* every total drift below M meets */
	for (unsigned ka = 0; ka < m; ka++)
		for (unsigned kb = 0; ka + kb < m; kb++)
			assert_true(lockstep_meets(ta, tb, n, ka, kb));
	/* plain i-th to i-th pairing (what b would do without the stagger) meets only without drift */
	assert_int_equal(rp_lockstep_targets(&na, n, 0, plain), 64);
	assert_true(lockstep_meets(ta, plain, n, 0, 0));
	assert_false(lockstep_meets(ta, plain, n, 1, 0));
	assert_false(lockstep_meets(ta, plain, n, 0, 3));
	/* the port space ends: fewer targets */
	nb.predicted[0] = 65530;
	nb.n_predicted = 1;
	assert_int_equal(rp_lockstep_targets(&nb, n, 0, ta), 3);   /* 65530, 65532, 65534 */
	/* bad input */
	nb.delta = 0;
	assert_int_equal(rp_lockstep_targets(&nb, n, 0, ta), -EINVAL);
	nb.delta = 2;
	assert_int_equal(rp_lockstep_targets(&nb, n, 2, ta), -EINVAL);
	nb.n_predicted = 0;
	assert_int_equal(rp_lockstep_targets(&nb, n, 0, ta), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_lockstep),
		cmocka_unit_test(test_early_again),
		cmocka_unit_test(test_block_pairs_exec),
	};
	return cmocka_run_group_tests_name("strategy_exec", tests, NULL, NULL);
}
