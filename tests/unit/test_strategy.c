/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rawpunch/strategy/kit.h"
#include "rawpunch/strategy/strategy.h"
#include "tests/unit/natinfo_fixture.h"

/* the registry's names, as plans, reports and status lines show them */
#define SIMOPEN "simultaneous-open"
#define PREDICT "predicted-burst"
#define BIRTHDAY "birthday"
#define IMPOSSIBLE "impossible"
#define MAPPED_S "mapped"
#define BLOCKPAIRS "block-pairs"

static void test_birthday_math(void **state)
{
	(void)state;
	/* the figures in facts.md and the issue */
	assert_true(fabs(rp_birthday_p(256, 1024, RP_BIRTHDAY_N) - 0.982) < 0.001);
	assert_true(rp_birthday_p(256, 2048, RP_BIRTHDAY_N) > 0.9996);
	assert_true(fabs(rp_birthday_p(256, 174, RP_BIRTHDAY_N) - 0.49) < 0.01);
	assert_true(rp_birthday_p(0, 1000, 100) == 0.0);
	assert_true(rp_birthday_p(10, 0, 100) == 0.0);
	assert_true(rp_birthday_p(100, 1, 100) == 1.0);
	assert_true(rp_birthday_p(1, 1, 0) == 0.0);
	/* exact against the closed form on a small space */
	assert_true(fabs(rp_birthday_p(1, 2, 4) - (1 - 0.75 * 0.75)) < 1e-12);
	/* inverse: smallest m reaching p */
	unsigned m = rp_birthday_probes(256, RP_BIRTHDAY_N, 0.99);
	assert_true(rp_birthday_p(256, m, RP_BIRTHDAY_N) >= 0.99);
	assert_true(rp_birthday_p(256, m - 1, RP_BIRTHDAY_N) < 0.99);
	assert_true(m > 1024 && m < 2048);
	assert_int_equal(rp_birthday_probes(256, RP_BIRTHDAY_N, 0), 0);
	assert_int_equal(rp_birthday_probes(5, 5, 0.5), 1);
	assert_int_equal(rp_birthday_probes(0, 100, 0.5), 1000000000u);
	for (unsigned k = 1; k <= 4096; k *= 4)
		for (double p = 0.1; p < 1.0; p += 0.2) {
			unsigned mm = rp_birthday_probes(k, RP_BIRTHDAY_N, p);
			assert_true(rp_birthday_p(k, mm, RP_BIRTHDAY_N) >= p);
			assert_true(mm == 1 || rp_birthday_p(k, mm - 1, RP_BIRTHDAY_N) < p);
		}
}

/* A small deterministic generator for the simulation below (splitmix64). */
static uint64_t sim_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The overlapped schedule played out: a NAT gives mapping i (made at i / ra) a random free port of n;
 * probe j (at j / rb) goes to a random port (distinct ones when distinct, as the executor draws them)
 * and hits when that port's mapping was made before it: i / ra < j / rb. The share of rounds hit. */
static double sim_ramp(unsigned k, uint32_t ra, unsigned m, uint32_t rb, unsigned n, bool distinct,
		       unsigned trials, uint64_t seed)
{
	unsigned *port = malloc(n * sizeof(*port)), *owner = malloc(n * sizeof(*owner)), hits = 0;
	assert_non_null(port);
	assert_non_null(owner);
	for (unsigned t = 0; t < trials; t++) {
		for (unsigned i = 0; i < n; i++) {
			port[i] = i;
			owner[i] = UINT32_MAX;
		}
		for (unsigned i = 0; i < k; i++) {           /* the mappings' ports, in order */
			unsigned j = i + (unsigned)(sim_next(&seed) % (n - i)), tmp = port[i];
			port[i] = port[j];
			port[j] = tmp;
			owner[port[i]] = i;
		}
		for (unsigned i = 0; i < n; i++)
			port[i] = i;
		for (unsigned j = 0; j < m; j++) {
			unsigned q;
			if (distinct) {
				unsigned r = j + (unsigned)(sim_next(&seed) % (n - j)), tmp = port[j];
				port[j] = port[r];
				port[r] = tmp;
				q = port[j];
			} else {
				q = (unsigned)(sim_next(&seed) % n);
			}
			if (owner[q] != UINT32_MAX && (uint64_t)owner[q] * rb < (uint64_t)j * ra) {
				hits++;
				break;
			}
		}
	}
	free(port);
	free(owner);
	return (double)hits / trials;
}

/* The overlapped schedule's odds (rp_birthday_p_ramp): closed forms, the inverse, a simulation. */
static void test_birthday_ramp(void **state)
{
	(void)state;
	const unsigned N = RP_BIRTHDAY_N;
	/* equal rates: probe j finds min(k, j) mappings */
	for (unsigned m = 1; m <= 600; m += 37) {
		double miss = 1;
		for (unsigned j = 0; j < m; j++)
			miss *= 1 - (double)(j < 256 ? j : 256) / N;
		assert_true(fabs(rp_birthday_p_ramp(256, 2000, m, 2000, N) - (1 - miss)) < 1e-9);
	}
	/* the opening twice as fast: min(k, 2j); and half as fast: min(k, ceil(j / 2)) */
	double m2 = 1, mh = 1;
	for (unsigned j = 0; j < 100; j++) {
		m2 *= 1 - (double)(2 * j < 64 ? 2 * j : 64) / 1000;
		mh *= 1 - (double)((j + 1) / 2 < 64 ? (j + 1) / 2 : 64) / 1000;
	}
	assert_true(fabs(rp_birthday_p_ramp(64, 4000, 100, 2000, 1000) - (1 - m2)) < 1e-12);
	assert_true(fabs(rp_birthday_p_ramp(64, 1000, 100, 2000, 1000) - (1 - mh)) < 1e-12);
	/* after the ramp every probe finds k: the old formula's tail */
	double ramp_miss = 1;
	for (unsigned j = 0; j < 256; j++)
		ramp_miss *= 1 - (double)j / N;
	assert_true(fabs(rp_birthday_p_ramp(256, 2000, 1287, 2000, N) -
			 (1 - ramp_miss * (1 - rp_birthday_p(256, 1287 - 256, N)))) < 1e-9);
	/* probes that find fewer mappings hit less: the overlapped schedule needs more of them */
	assert_true(rp_birthday_p_ramp(256, 2000, 1159, 2000, N) < rp_birthday_p(256, 1159, N));
	/* no rate: no ramp, the old formula */
	assert_true(rp_birthday_p_ramp(256, 0, 1159, 2000, N) == rp_birthday_p(256, 1159, N));
	assert_int_equal(rp_birthday_probes_ramp(256, 2000, 0, N, 0.99), rp_birthday_probes(256, N, 0.99));
	/* edges: nothing to find, nothing sent, the first probe finds nothing, a full space */
	assert_true(rp_birthday_p_ramp(0, 2000, 100, 2000, N) == 0.0);
	assert_true(rp_birthday_p_ramp(10, 2000, 0, 2000, N) == 0.0);
	assert_true(rp_birthday_p_ramp(10, 2000, 1, 2000, N) == 0.0);
	assert_true(rp_birthday_p_ramp(10, 2000, 5, 2000, 0) == 0.0);
	assert_true(rp_birthday_p_ramp(8, 2000, 9, 2000, 8) == 1.0);
	assert_true(rp_birthday_p_ramp(8, 2000, 8, 2000, 8) < 1.0);
	assert_true(rp_birthday_p_ramp(100, 2000, 9, 2000, 8) == 1.0);   /* k beyond the space */
	/* the figures of the plan (docs/how-it-works.md): 256 x 1287 and in a 256-port block 128 x 48 */
	assert_int_equal(rp_birthday_probes_ramp(256, 2000, 2000, N, 0.99), 1287);
	assert_int_equal(rp_birthday_probes_ramp(128, 2000, 2000, 256, 0.99), 48);
	/* inverse: the smallest m reaching p, inside the ramp and after it */
	assert_int_equal(rp_birthday_probes_ramp(256, 2000, 2000, N, 0), 0);
	assert_int_equal(rp_birthday_probes_ramp(0, 2000, 2000, N, 0.5), 1000000000u);
	for (unsigned k = 1; k <= 4096; k *= 4)
		for (unsigned n = 256; n <= N; n *= 8)
			for (double p = 0.1; p < 1.0; p += 0.2) {
				unsigned mm = rp_birthday_probes_ramp(k, 2000, 1000, n, p);
				assert_true(rp_birthday_p_ramp(k, 2000, mm, 1000, n) >= p);
				assert_true(mm == 1 || rp_birthday_p_ramp(k, 2000, mm - 1, 1000, n) < p);
				assert_true(mm >= rp_birthday_probes(k < n ? k : n, n, p));
			}
	/* against the schedule played out: exact for independent probes (within 4.5 sigma of 20000
	 * rounds), a lower bound for distinct ones */
	const struct { unsigned k; uint32_t ra, rb; } cf[] = { { 40, 1000, 1000 }, { 40, 2000, 1000 }, { 40, 1000, 3000 } };
	for (unsigned c = 0; c < sizeof(cf) / sizeof(cf[0]); c++) {
		unsigned m = rp_birthday_probes_ramp(cf[c].k, cf[c].ra, cf[c].rb, 500, 0.6);
		double want = rp_birthday_p_ramp(cf[c].k, cf[c].ra, m, cf[c].rb, 500);
		double indep = sim_ramp(cf[c].k, cf[c].ra, m, cf[c].rb, 500, false, 20000, 1 + c);
		double dist = sim_ramp(cf[c].k, cf[c].ra, m, cf[c].rb, 500, true, 20000, 11 + c);
		assert_true(fabs(indep - want) < 0.016);
		assert_true(dist > want - 0.016);
		/* and the ramp matters: the old formula would be far off */
		assert_true(rp_birthday_p(cf[c].k, m, 500) - indep > 0.05);
	}
}

static void test_classify(void **state)
{
	(void)state;
	struct rp_natinfo n;
	mk(&n, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	assert_int_equal(rp_side_classify(&n), RP_SIDE_EASY);
	mk(&n, SEQUENTIAL, RP_FILTER_RST, "198.18.1.2", 40000);
	assert_int_equal(rp_side_classify(&n), RP_SIDE_PREDICTABLE);
	n.n_predicted = 0;
	assert_int_equal(rp_side_classify(&n), RP_SIDE_HARD);     /* sequential without predictions */
	mk(&n, RANDOM, RP_FILTER_RST, "198.18.1.2", 40000);
	assert_int_equal(rp_side_classify(&n), RP_SIDE_HARD);
	n.mapping = RP_MAP_EI;                                      /* random but endpoint-independent */
	assert_int_equal(rp_side_classify(&n), RP_SIDE_EASY);
	mk(&n, RANDOM, RP_FILTER_RST, "198.18.1.2", 40000);
	n.behind_nat = false;                                       /* public host */
	assert_int_equal(rp_side_classify(&n), RP_SIDE_EASY);
	assert_string_equal(rp_side_kind_str(RP_SIDE_PREDICTABLE), "predictable");
}

static const enum rp_filter filters[] = { RP_FILTER_RST, RP_FILTER_DROP, RP_FILTER_ICMP };

static void check_common(const struct rp_plan *pl, const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	assert_true(pl->reason[0] != 0);
	assert_true(pl->p_success >= 0 && pl->p_success <= 1);
	for (int i = 0; i < 2; i++) {
		const struct rp_side_plan *sp = &pl->side[i];
		const struct rp_natinfo *peer = i ? a : b;
		if (rp_plan_refused(pl)) {
			assert_int_equal(sp->action, RP_ACT_NONE);
			continue;
		}
		assert_int_equal(sp->remote_addr, peer->mapped_addr);
		assert_true(sp->rate_pps > 0);
		if (sp->action == RP_ACT_CONNECT || sp->action == RP_ACT_OPEN_MANY)
			assert_true(sp->n_remote >= 1 && sp->n_remote <= RP_PLAN_MAX_PORTS);
		for (unsigned k = 0; k < sp->n_remote; k++)
			assert_true(sp->remote_ports[k] != 0);
		if (sp->prime || sp->action == RP_ACT_OPEN_MANY)
			assert_int_equal(sp->ttl, 2);
	}
}

static void test_all_pairs(void **state)
{
	(void)state;
	for (int pa = PRESERVE; pa <= RANDOM; pa++)
		for (int pb = PRESERVE; pb <= RANDOM; pb++)
			for (unsigned fa = 0; fa < 3; fa++)
				for (unsigned fb = 0; fb < 3; fb++) {
					struct rp_natinfo a, b;
					struct rp_plan *pl = malloc(sizeof(*pl));
					mk(&a, (enum prof)pa, filters[fa], "198.18.1.2", 40000);
					mk(&b, (enum prof)pb, filters[fb], "198.18.2.2", 41000);
					assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
					check_common(pl, &a, &b);
					const char *want;
					if (pa == PRESERVE && pb == PRESERVE)
						want = SIMOPEN;
					else if (pa == RANDOM && pb == RANDOM)
						want = IMPOSSIBLE;
					else if ((pa == RANDOM) != (pb == RANDOM))
						want = (pa == PRESERVE || pb == PRESERVE) ? BIRTHDAY : IMPOSSIBLE;
					else
						want = PREDICT;
					assert_string_equal(rp_plan_name(pl), want);
					assert_ptr_equal(pl->strategy, rp_strategy_find(want));
					if (!strcmp(want, SIMOPEN)) {
						assert_int_equal(pl->hard_side, -1);
						assert_int_equal(pl->side[0].remote_ports[0], 41000);
						assert_int_equal(pl->side[1].remote_ports[0], 40000);
						/* prime exactly when the own NAT answers unsolicited SYNs */
						assert_int_equal(pl->side[0].prime, filters[fa] != RP_FILTER_DROP);
						assert_int_equal(pl->side[1].prime, filters[fb] != RP_FILTER_DROP);
						/* a primed side sends its real SYN after the prime */
						if (pl->side[0].prime)
							assert_true(pl->side[0].start_ms > 0);
						assert_true(pl->p_success > 0.9);
					}
					if (!strcmp(want, BIRTHDAY)) {
						int h = pa == RANDOM ? 0 : 1;
						assert_int_equal(pl->hard_side, h);
						assert_int_equal(pl->side[h].action, RP_ACT_OPEN_MANY);
						assert_int_equal(pl->side[h].n_local, 256);
						assert_int_equal(pl->side[h].remote_ports[0], h ? 40000 : 41000);
						assert_int_equal(pl->side[1 - h].action, RP_ACT_PROBE_RANDOM);
						assert_int_equal(pl->side[1 - h].local_port, h ? 40000 : 41000);
						assert_true(pl->side[1 - h].n_probes >= 1024 && pl->side[1 - h].n_probes <= 2048);
						/* the probes start while the mappings are being opened, and are
						 * counted for it: a probe finds only the mappings made before it */
						assert_true(pl->side[1 - h].start_ms <
							    256 * 1000 / pl->side[h].rate_pps);
						assert_int_equal(pl->side[1 - h].n_probes,
								 rp_birthday_probes_ramp(256, pl->side[h].rate_pps,
											 pl->side[1 - h].rate_pps,
											 RP_BIRTHDAY_N, 0.99));
						assert_true(pl->p_success >= 0.99);
					}
					if (!strcmp(want, PREDICT) && (pa == PRESERVE || pb == PRESERVE)) {
						int s = pa == SEQUENTIAL ? 0 : 1;
						assert_int_equal(pl->hard_side, s);
						assert_true(pl->side[s].prime);
						/* the easy side's window starts with the predictions, in order */
						for (unsigned k = 0; k < 4; k++)
							assert_int_equal(pl->side[1 - s].remote_ports[k], 20011 + k);
						assert_true(pl->side[1 - s].n_remote >= 8);
						/* the sequential side's full SYN comes after the burst */
						assert_true(pl->side[s].start_ms > pl->side[1 - s].start_ms);
						assert_int_equal(pl->widen_factor, 2);
					}
					if (!strcmp(want, IMPOSSIBLE)) {
						assert_int_equal(pl->rounds, 0);
						assert_non_null(strstr(pl->reason, "relay"));
					}
					free(pl);
				}
}

static void test_widen_rounds(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *p0 = malloc(sizeof(*p0)), *p1 = malloc(sizeof(*p1)), *p9 = malloc(sizeof(*p9));
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, SEQUENTIAL, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, p0), 0);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 1, p1), 0);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 20, p9), 0);
	assert_int_equal(p1->side[0].n_remote, 2 * p0->side[0].n_remote);
	assert_int_equal(p9->side[0].n_remote, RP_PLAN_MAX_PORTS);
	assert_true(p1->p_success >= p0->p_success);
	/* no duplicates, and the window stays in range even near the top of the port space */
	b.predicted[0] = 65533;
	b.predicted[1] = 65534;
	b.predicted[2] = 65535;
	b.n_predicted = 3;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 3, p9), 0);
	assert_true(p9->side[0].n_remote >= 8);
	for (unsigned i = 0; i < p9->side[0].n_remote; i++)
		for (unsigned j = i + 1; j < p9->side[0].n_remote; j++)
			assert_int_not_equal(p9->side[0].remote_ports[i], p9->side[0].remote_ports[j]);
	/* a larger jitter gives a larger first window */
	b.predicted[0] = 20011;
	b.n_predicted = 1;
	b.jitter = 40;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, p1), 0);
	assert_true(p1->side[0].n_remote >= 160);
	free(p0);
	free(p1);
	free(p9);
}

static void test_params_and_errors(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	mk(&a, RANDOM, RP_FILTER_DROP, "198.18.1.2", 40000);
	mk(&b, PRESERVE, RP_FILTER_RST, "198.18.2.2", 41000);
	struct rp_plan_params pp = { .rate_pps = 500, .max_open = 128, .max_probes = 300, .target_p = 0.5 };
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), BIRTHDAY);
	assert_int_equal(pl->side[0].n_local, 128);
	assert_int_equal(pl->side[1].n_probes, 300);      /* capped (0.5 needs 414) */
	assert_true(fabs(pl->p_success - rp_birthday_p_ramp(128, 500, 300, 500, RP_BIRTHDAY_N)) < 1e-12);
	assert_true(pl->p_success < rp_birthday_p(128, 300, RP_BIRTHDAY_N));
	assert_int_equal(pl->side[1].rate_pps, 500);
	assert_true(pl->side[1].start_ms < 256);           /* before the 128 SYNs at 500/s are out */
	a.nat_ttl = 3;
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_int_equal(pl->side[0].ttl, 3);
	b.local_port = 0;                                  /* easy side without a punch port */
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), -EINVAL);
	b.local_port = 41000;
	a.local_port = 0;                                  /* the hard side opens fresh ports: fine */
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	a.mapped_addr = 0;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), -EINVAL);
	assert_int_equal(rp_plan_make(NULL, &b, NULL, 0, pl), -EINVAL);
	free(pl);
}

static void test_seq_seq_lockstep(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	mk(&a, SEQUENTIAL, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, SEQUENTIAL, RP_FILTER_RST, "198.18.2.2", 41000);
	b.predicted[0] = 30001;
	b.predicted[1] = 30003;
	b.n_predicted = 2;
	b.delta = 2;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), PREDICT);
	assert_int_equal(pl->side[0].n_remote, pl->side[1].n_remote);
	/* a's k-th target is b's k-th predicted port and vice versa */
	assert_int_equal(pl->side[0].remote_ports[0], 30001);
	assert_int_equal(pl->side[0].remote_ports[1], 30003);
	assert_int_equal(pl->side[0].remote_ports[2], 30005);
	assert_int_equal(pl->side[1].remote_ports[0], 20011);
	assert_int_equal(pl->side[1].remote_ports[4], 20015);
	assert_int_equal(pl->side[0].start_ms, pl->side[1].start_ms);
	assert_true(fabs(pl->p_success - 0.64) < 1e-9);
	free(pl);
}

static const char *js(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return "<missing>";
	return v ? json_object_get_string(v) : "null";
}

/* The plan JSON is the --report's "plan": its keys and the way each is printed. */
static void test_plan_json(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	struct json_object *o, *sides, *s0, *s1, *v;
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, RANDOM, RP_FILTER_DROP, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	o = rp_plan_to_json(pl);
	assert_non_null(o);
	assert_string_equal(js(o, "method"), BIRTHDAY);
	assert_string_equal(js(o, "reason"), pl->reason);
	assert_string_equal(js(o, "p_success"), "0.9900");      /* 4 decimals, as printed */
	assert_string_equal(js(o, "rounds"), "3");
	assert_string_equal(js(o, "hard_side"), "b");
	/* the order of the keys is the report's */
	const char *order[] = { "method", "reason", "p_success", "rounds", "hard_side", "sides" };
	unsigned i = 0;
	json_object_object_foreach(o, key, val) {
		(void)val;
		assert_true(i < 6);
		assert_string_equal(key, order[i++]);
	}
	assert_true(json_object_object_get_ex(o, "sides", &sides));
	assert_int_equal(json_object_array_length(sides), 2);
	s0 = json_object_array_get_idx(sides, 0);
	s1 = json_object_array_get_idx(sides, 1);
	/* the hard side opens mappings: n_local and the one remote port as a span */
	assert_string_equal(js(s1, "side"), "b");
	assert_string_equal(js(s1, "kind"), "hard");
	assert_string_equal(js(s1, "action"), "open-many");
	assert_string_equal(js(s1, "remote"), "198.18.1.2");
	assert_string_equal(js(s1, "n_local"), "256");
	assert_string_equal(js(s1, "n_remote"), "1");
	assert_string_equal(js(s1, "remote_lo"), "40000");
	assert_string_equal(js(s1, "remote_hi"), "40000");
	assert_string_equal(js(s1, "ttl"), "2");
	assert_string_equal(js(s1, "n_probes"), "<missing>");
	/* the easy side probes: a range and a count, no remote span, no n_local */
	assert_string_equal(js(s0, "side"), "a");
	assert_string_equal(js(s0, "action"), "probe-random");
	assert_string_equal(js(s0, "port_lo"), "1024");
	assert_string_equal(js(s0, "port_hi"), "65535");
	assert_string_equal(js(s0, "n_probes"), "1287");
	assert_string_equal(js(s0, "n_remote"), "<missing>");
	assert_string_equal(js(s0, "n_local"), "<missing>");
	assert_string_equal(js(s0, "local_port"), "40000");
	assert_string_equal(js(s0, "rate_pps"), "2000");
	json_object_put(o);
	/* no hard side: null */
	mk(&b, PRESERVE, RP_FILTER_DROP, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	o = rp_plan_to_json(pl);
	assert_true(json_object_object_get_ex(o, "hard_side", &v));
	assert_null(v);
	assert_string_equal(js(o, "method"), SIMOPEN);
	json_object_put(o);
	/* a refusal lists no sides */
	mk(&a, RANDOM, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, RANDOM, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	o = rp_plan_to_json(pl);
	assert_string_equal(js(o, "method"), IMPOSSIBLE);
	assert_string_equal(js(o, "rounds"), "0");
	assert_string_equal(js(o, "p_success"), "0.0000");
	assert_true(json_object_object_get_ex(o, "sides", &sides));
	assert_int_equal(json_object_array_length(sides), 0);
	json_object_put(o);
	assert_string_equal(rp_action_str(RP_ACT_PROBE_RANDOM), "probe-random");
	free(pl);
}

/* Birthday's probes start at the early margin (the clocks' estimate): with the estimate at the bound
 * nothing changes; below it, the probes the clocks may put before the first mapping are counted as
 * finding nothing, and added. */
static void test_birthday_margin(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = calloc(1, sizeof(*pl));
	const struct rp_strategy *bd = rp_strategy_find(BIRTHDAY);
	assert_non_null(pl);
	assert_non_null(bd);
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, RANDOM, RP_FILTER_RST, "198.18.2.2", 41000);
	struct rp_plan_ctx c = {
		.ni = { &a, &b }, .kind = { RP_SIDE_EASY, RP_SIDE_HARD },
		.p = { .rtt_ms = 100, .clock_err_ms = 50, .rate_pps = 2000, .target_p = 0.99, .max_open = 256,
		       .max_probes = 2048, .rounds = 3 },
		.margin_ms = 52, .early_ms = 52, .repeat_ms = 200, .low_ttl = { 2, 2 },
	};
	unsigned m = rp_birthday_probes_ramp(256, 2000, 2000, RP_BIRTHDAY_N, 0.99);
	pl->side[0].rate_pps = pl->side[1].rate_pps = 2000;
	assert_int_equal(bd->plan(&c, pl), 0);
	assert_int_equal(pl->side[0].start_ms, 52);
	assert_int_equal(pl->side[0].n_probes, m);                  /* the margin covers the bound */
	assert_true(fabs(pl->p_success - rp_birthday_p_ramp(256, 2000, m, 2000, RP_BIRTHDAY_N)) < 1e-12);
	c.early_ms = 10;                                            /* the estimate's start, 40 ms short of the
	                                                               bound: 80 probes at 2000/s */
	assert_int_equal(bd->plan(&c, pl), 0);
	assert_int_equal(pl->side[0].start_ms, 10);
	assert_int_equal(pl->side[0].n_probes, m + 80);
	assert_true(fabs(pl->p_success - rp_birthday_p_ramp(256, 2000, m, 2000, RP_BIRTHDAY_N)) < 1e-12);
	assert_true(pl->p_success >= 0.99);
	c.p.max_probes = 50;                                        /* capped below the early ones: P 0 */
	assert_int_equal(bd->plan(&c, pl), 0);
	assert_int_equal(pl->side[0].n_probes, 50);
	assert_true(pl->p_success == 0.0);
	free(pl);
}

/* Birthday against a hard side whose ports stay in a known block: the probes go only there. */
static void test_birthday_block(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, BLOCK, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), BIRTHDAY);
	assert_int_equal(pl->hard_side, 1);
	assert_int_equal(pl->side[1].action, RP_ACT_OPEN_MANY);
	assert_int_equal(pl->side[1].n_local, 128);              /* half the block */
	assert_int_equal(pl->side[0].action, RP_ACT_PROBE_RANDOM);
	assert_int_equal(pl->side[0].port_lo, 33792);
	assert_int_equal(pl->side[0].port_hi, 33792 + 255);
	assert_int_equal(pl->side[0].n_probes, 48);              /* 1 - prod_{j<48} (1 - j/256) = 0.991 */
	assert_true(fabs(pl->p_success - rp_birthday_p_ramp(128, 2000, 48, 2000, 256)) < 1e-9);
	assert_true(pl->p_success >= 0.99);
	assert_non_null(strstr(pl->reason, "block of 256 ports (33792-34047)"));
	/* the range's confidence weighs the odds */
	b.range_confidence = 0.9;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_true(fabs(pl->p_success - 0.9 * rp_birthday_p_ramp(128, 2000, 48, 2000, 256)) < 1e-9);
	/* a range not believed is no block: the whole port space, as before */
	b.range_confidence = 0.3;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(pl->side[0].port_lo, 1024);
	assert_int_equal(pl->side[0].port_hi, 65535);
	assert_int_equal(pl->side[1].n_local, 256);
	/* a big block (4096): k is capped by max_open, m from the block's size */
	b.range_confidence = 1;
	b.range_hi = (uint16_t)(b.range_lo + 4095);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(pl->side[1].n_local, 256);
	assert_int_equal(pl->side[0].n_probes, rp_birthday_probes_ramp(256, 2000, 2000, 4096, 0.99));
	assert_true(pl->side[0].n_probes < 256);                 /* the target met during the opening */
	/* a tiny block: never more probes than its ports */
	b.range_hi = (uint16_t)(b.range_lo + 3);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(pl->side[1].n_local, 2);
	assert_true(pl->side[0].n_probes <= 4);
	free(pl);
}

/* hard x hard with both sides' port blocks known: k pairs per side, k from the target */
static void test_block_pairs(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	char odds[200], hint[300];
	mk(&a, BLOCK, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, BLOCK, RP_FILTER_DROP, "198.18.2.2", 41000);
	a.nat_ttl = 3;
	a.nat_ttl_method = RP_TTL_HOPS;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), BLOCKPAIRS);
	assert_false(rp_plan_refused(pl));
	/* 256 x 256: 550 pairs give 1 - (1 - 1/65536)^(550^2) >= 0.99, 549 do not */
	assert_int_equal(pl->side[0].n_local, 550);
	assert_int_equal(pl->side[1].n_local, 550);
	assert_true(pl->p_success >= 0.99);
	assert_true(rp_birthday_p(1, 549 * 549, 65536) < 0.99);
	for (int i = 0; i < 2; i++) {
		const struct rp_side_plan *sp = &pl->side[i];
		const struct rp_natinfo *peer = i ? &a : &b;
		assert_int_equal(sp->action, RP_ACT_OPEN_PAIRS);
		assert_int_equal(sp->port_lo, peer->range_lo);     /* aims at the peer's block */
		assert_int_equal(sp->port_hi, peer->range_hi);
		/* the full-TTL pass (a's) after every mapping is open; b listens as long */
		assert_true(sp->start_ms >= 550 * 1000 / sp->rate_pps);
		assert_int_equal(sp->repeat_ms > 0, i == 0);
	}
	assert_int_equal(pl->side[0].ttl, 3);                  /* each side's own nat_ttl */
	assert_int_equal(pl->side[1].ttl, 2);
	assert_non_null(strstr(pl->reason, "port blocks 256 x 256"));
	struct json_object *o = rp_plan_to_json(pl), *sides;
	assert_true(json_object_object_get_ex(o, "sides", &sides));
	assert_string_equal(js(json_object_array_get_idx(sides, 0), "action"), "open-pairs");
	json_object_put(o);
	rp_plan_refusal(pl, odds, sizeof(odds), hint, sizeof(hint));
	assert_string_equal(odds, "");
	rp_plan_miss_hint(pl, hint, sizeof(hint));
	assert_non_null(strstr(hint, "P=0.99"));
	/* a lower target, fewer pairs: 0.5 needs sqrt(ln 2 * 65536) ~ 214 */
	struct rp_plan_params pp = { .target_p = 0.5 };
	assert_int_equal(rp_plan_make(&a, &b, &pp, 0, pl), 0);
	assert_int_equal(pl->side[0].n_local, 214);
	/* blocks of 4096 x 4096: 0.99 needs ~8800 pairs, more than the cap: a refusal with the odds */
	a.range_hi = (uint16_t)(a.range_lo + 4095);
	b.range_hi = (uint16_t)(b.range_lo + 4095);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), BLOCKPAIRS);
	assert_true(rp_plan_refused(pl));
	assert_non_null(strstr(pl->reason, "relay"));
	assert_true(pl->p_success > 0.05 && pl->p_success < 0.07);   /* 1 - exp(-1024^2 / 4096^2) */
	rp_plan_refusal(pl, odds, sizeof(odds), hint, sizeof(hint));
	assert_non_null(strstr(odds, "1024 mappings per side give P 0.061"));
	assert_non_null(strstr(hint, "relay"));
	/* a block x a sequential side with its block known (block-seq): pairs too */
	mk(&a, SEQUENTIAL, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, BLOCK, RP_FILTER_RST, "198.18.2.2", 41000);
	a.has_range = true;
	a.range_lo = 20480;
	a.range_hi = 20480 + 255;
	a.range_confidence = 1;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), BLOCKPAIRS);
	assert_int_equal(pl->hard_side, 1);
	/* two sequential sides in blocks stay with the lockstep */
	mk(&b, SEQUENTIAL, RP_FILTER_RST, "198.18.2.2", 41000);
	b.has_range = true;
	b.range_lo = 30000;
	b.range_hi = 30255;
	b.range_confidence = 1;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), PREDICT);
	free(pl);
}

/* Address-dependent mapping: one external port per peer address, unknown until used. Preserving
 * allocation makes it easy again (the punch port itself); otherwise it is hard and the plan says why. */
static void test_address_dependent(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	char why[100];
	mk(&a, RANDOM, RP_FILTER_RST, "198.18.1.2", 40000);
	a.mapping = RP_MAP_AD;                       /* the lab's address-dependent: a hash, random */
	mk(&b, PRESERVE, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_side_classify(&a), RP_SIDE_HARD);
	rp_kit_kind_why(&a, why, sizeof(why));
	assert_string_equal(why, "address-dependent mapping, random allocation: one port per peer address, unknown until used");
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), BIRTHDAY);      /* k fresh ports: k ports towards the peer */
	assert_int_equal(pl->hard_side, 0);
	assert_string_equal(pl->side[0].kind_why, why);
	struct json_object *o = rp_plan_to_json(pl), *sides;
	assert_true(json_object_object_get_ex(o, "sides", &sides));
	assert_string_equal(js(json_object_array_get_idx(sides, 0), "kind_why"), why);
	assert_string_equal(js(json_object_array_get_idx(sides, 1), "kind_why"),
			    "endpoint-independent mapping: the port STUN saw serves every peer");
	json_object_put(o);
	/* the hash's range known (20000..29999): the probes stay in it */
	a.has_range = true;
	a.range_lo = 20000;
	a.range_hi = 29999;
	a.range_confidence = 0.95;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(pl->side[1].port_lo, 20000);
	assert_int_equal(pl->side[1].port_hi, 29999);
	/* address-dependent and preserving: easy, simultaneous open to the punch port */
	a.alloc = RP_ALLOC_PRESERVING;
	a.mapped_port = 40000;
	assert_int_equal(rp_side_classify(&a), RP_SIDE_EASY);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), SIMOPEN);
	assert_int_equal(pl->side[1].remote_ports[0], 40000);
	assert_non_null(strstr(pl->side[0].kind_why, "address-dependent mapping, but preserving"));
	/* address-dependent and sequential: the peer's address takes the counter's next port */
	mk(&a, SEQUENTIAL, RP_FILTER_RST, "198.18.1.2", 40000);
	a.mapping = RP_MAP_AD;
	assert_int_equal(rp_side_classify(&a), RP_SIDE_PREDICTABLE);
	rp_kit_kind_why(&a, why, sizeof(why));
	assert_non_null(strstr(why, "counter's next"));
	/* the others' words */
	mk(&a, BLOCK, RP_FILTER_RST, "198.18.1.2", 40000);
	rp_kit_kind_why(&a, why, sizeof(why));
	assert_string_equal(why, "random allocation in a block of 256 ports");
	mk(&a, RANDOM, RP_FILTER_RST, "198.18.1.2", 40000);
	rp_kit_kind_why(&a, why, sizeof(why));
	assert_string_equal(why, "random allocation: a new unknown port per destination");
	free(pl);
}

/* The low TTL of primes and mappings: this side's nat_ttl as measured; a fallback one weighed against
 * where the peer's NAT is. */
static void test_low_ttl(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	char how[80];
	/* a home NAT behind a carrier NAT: nat_ttl 3 confirmed is used as is (not the default 2) */
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, PRESERVE, RP_FILTER_RST, "198.18.2.2", 41000);
	a.nat_ttl = 3;
	a.nat_ttl_method = RP_TTL_CONFIRMED;
	a.server_hops = 5;
	b.server_hops = 3;
	assert_int_equal(rp_kit_low_ttl(&a, &b, how, sizeof(how)), 3);
	assert_string_equal(how, "nat_ttl 3 (confirmed)");
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_true(pl->side[0].prime);
	assert_int_equal(pl->side[0].ttl, 3);
	assert_string_equal(pl->side[0].ttl_how, "nat_ttl 3 (confirmed)");
	struct json_object *o = rp_plan_to_json(pl), *sides, *s0;
	assert_true(json_object_object_get_ex(o, "sides", &sides));
	s0 = json_object_array_get_idx(sides, 0);
	assert_string_equal(js(s0, "ttl_how"), "nat_ttl 3 (confirmed)");
	json_object_put(o);
	/* the same from the hops */
	a.nat_ttl_method = RP_TTL_HOPS;
	assert_int_equal(rp_kit_low_ttl(&a, &b, how, sizeof(how)), 3);
	assert_string_equal(how, "nat_ttl 3 (hops)");
	/* the peer's outermost NAT: our last router before the server (hop 4) + b's hops from its NAT
	 * to there (3 - 2): hop 5 from a; from b: 2 + (5 - 3) = 4 */
	assert_int_equal(rp_kit_peer_nat_hop(&a, &b), 5);
	b.nat_ttl = 2;
	assert_int_equal(rp_kit_peer_nat_hop(&b, &a), 4);
	/* fallback 4 (the first public hop past both NATs) dies at hop 4, short of b's NAT at 5: kept */
	a.nat_ttl = 4;
	a.nat_ttl_method = RP_TTL_FALLBACK;
	assert_int_equal(rp_kit_low_ttl(&a, &b, how, sizeof(how)), 4);
	assert_non_null(strstr(how, "fallback"));
	assert_non_null(strstr(how, "hop 5"));
	/* a fallback that would reach the peer's NAT is lowered to the hop before it */
	a.nat_ttl = 6;
	assert_int_equal(rp_kit_low_ttl(&a, &b, how, sizeof(how)), 4);
	assert_non_null(strstr(how, "would reach"));
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(pl->side[0].ttl, 4);
	assert_non_null(strstr(pl->side[0].ttl_how, "would reach the peer's NAT (~hop 5): 4"));
	/* the peer's distance unknown: the fallback as is, and said so */
	b.server_hops = 0;
	assert_int_equal(rp_kit_peer_nat_hop(&a, &b), 0);
	assert_int_equal(rp_kit_low_ttl(&a, &b, how, sizeof(how)), 6);
	assert_non_null(strstr(how, "distance unknown"));
	/* no nat_ttl: the default 2; an older peer's nat_ttl without a method: as is */
	a.nat_ttl = 0;
	assert_int_equal(rp_kit_low_ttl(&a, &b, NULL, 0), 2);
	a.nat_ttl = 3;
	a.nat_ttl_method = RP_TTL_UNKNOWN;
	assert_int_equal(rp_kit_low_ttl(&a, &b, how, sizeof(how)), 3);
	/* the birthday's mappings take the hard side's TTL */
	mk(&b, RANDOM, RP_FILTER_RST, "198.18.2.2", 41000);
	b.nat_ttl = 3;
	b.nat_ttl_method = RP_TTL_HOPS;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(pl->side[1].action, RP_ACT_OPEN_MANY);
	assert_int_equal(pl->side[1].ttl, 3);
	assert_string_equal(pl->side[1].ttl_how, "nat_ttl 3 (hops)");
	free(pl);
}

/* The registry: which entry takes which pair of side classes. */
static void test_registry(void **state)
{
	(void)state;
	/* one natinfo per class: PRESERVE is easy, SEQUENTIAL predictable, RANDOM and BLOCK hard (BLOCK
	 * with its port block known); MAPPED: a hard NAT that granted a port mapping (easy through it):
	 * "mapped" takes every pair with it */
	static const char *const want[5][5] = {
		/*              b easy      b predictable  b hard      b mapped  b block */
		/* a easy */  { SIMOPEN,    PREDICT,       BIRTHDAY,   MAPPED_S, BIRTHDAY },
		/* a pred */  { PREDICT,    PREDICT,       IMPOSSIBLE, MAPPED_S, IMPOSSIBLE },
		/* a hard */  { BIRTHDAY,   IMPOSSIBLE,    IMPOSSIBLE, MAPPED_S, IMPOSSIBLE },
		/* a mapd */  { MAPPED_S,   MAPPED_S,      MAPPED_S,   MAPPED_S, MAPPED_S },
		/* a block */ { BIRTHDAY,   IMPOSSIBLE,    IMPOSSIBLE, MAPPED_S, BLOCKPAIRS },
	};
	unsigned n = 0, chosen[16] = { 0 };
	while (rp_strategies[n])
		n++;
	assert_int_equal(n, 6);
	/* names are unique and found by name */
	for (unsigned i = 0; i < n; i++) {
		assert_non_null(rp_strategies[i]->name);
		assert_non_null(rp_strategies[i]->applies);
		assert_non_null(rp_strategies[i]->plan);
		assert_ptr_equal(rp_strategy_find(rp_strategies[i]->name), rp_strategies[i]);
		for (unsigned j = 0; j < i; j++)
			assert_string_not_equal(rp_strategies[i]->name, rp_strategies[j]->name);
	}
	assert_null(rp_strategy_find("none"));
	assert_null(rp_strategy_find(NULL));
	assert_string_equal(rp_strategy_name(NULL), "none");
	for (int pa = PRESERVE; pa <= BLOCK; pa++)
		for (int pb = PRESERVE; pb <= BLOCK; pb++) {
			struct rp_natinfo a, b;
			mk(&a, (enum prof)pa, RP_FILTER_RST, "198.18.1.2", 40000);
			mk(&b, (enum prof)pb, RP_FILTER_RST, "198.18.2.2", 41000);
			const struct rp_strategy *s = rp_strategy_for(&a, &b);
			assert_non_null(s);
			assert_string_equal(s->name, want[pa][pb]);
			/* it is the first entry that applies: none before it claims the pair */
			unsigned k = 0;
			while (rp_strategies[k] != s)
				assert_false(rp_strategies[k++]->applies(&a, &b));
			chosen[k]++;
			/* and claiming is symmetric in the sides */
			assert_true(s->applies(&b, &a));
			/* the planner uses exactly that entry */
			struct rp_plan *pl = malloc(sizeof(*pl));
			assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
			assert_ptr_equal(pl->strategy, s);
			free(pl);
		}
	/* every entry is chosen for some pair: none is shadowed by the ones before it */
	for (unsigned i = 0; i < n; i++)
		assert_true(chosen[i] > 0);
	/* the last one takes everything */
	struct rp_natinfo x = { 0 };
	assert_true(rp_strategies[n - 1]->applies(&x, &x));
}

/* "mapped": the side holding a port mapping listens (sends nothing), the other connects to the
 * granted port from its punch port; with both mapped side a listens. Its phases: none / one burst. */
static void test_mapped(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	struct rp_exec *x = malloc(sizeof(*x));
	mk(&a, MAPPED, RP_FILTER_DROP, "198.18.1.2", 40000);
	mk(&b, RANDOM, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_side_classify(&a), RP_SIDE_EASY);
	for (int swap = 0; swap < 2; swap++) {
		const struct rp_natinfo *sa = swap ? &b : &a, *sb = swap ? &a : &b;
		int l = swap ? 1 : 0, k = 1 - l;
		assert_int_equal(rp_plan_make(sa, sb, NULL, 0, pl), 0);
		assert_string_equal(rp_plan_name(pl), MAPPED_S);
		assert_false(rp_plan_refused(pl));
		assert_true(pl->p_success >= 0.99);
		assert_int_equal(pl->side[l].action, RP_ACT_NONE);
		assert_int_equal(pl->side[k].action, RP_ACT_CONNECT);
		assert_int_equal(pl->side[k].n_remote, 1);
		assert_int_equal(pl->side[k].remote_ports[0], 40007);          /* the granted port */
		assert_false(pl->side[k].prime);
		assert_true(pl->side[k].start_ms > 0);                           /* the listener is up first */
		assert_true(pl->side[l].duration_ms >= pl->side[k].start_ms + pl->side[k].duration_ms);
		assert_non_null(strstr(pl->reason, "pcp"));
		/* the listener's round: no phases, listening as long as the SYNs come */
		assert_int_equal(rp_plan_exec(pl, l, l ? &b : &a, l ? &a : &b, x), 0);
		assert_int_equal(x->n, 0);
		assert_int_equal(x->action, RP_ACT_NONE);
		assert_int_equal(x->end_ms, pl->side[l].duration_ms);
		/* the connecting side: one burst from the punch port to the granted port, repeated */
		assert_int_equal(rp_plan_exec(pl, k, k ? &b : &a, k ? &a : &b, x), 0);
		assert_int_equal(x->n, 1);
		assert_int_equal(x->ph[0].src, RP_SRC_PUNCH);
		assert_int_equal(x->ph[0].n_dst, 1);
		assert_int_equal(x->ph[0].dports[0], 40007);
		assert_int_equal(x->ph[0].ttl, 0);
		assert_true(x->ph[0].repeat_ms > 0);
	}
	/* both mapped: a listens, b connects to a's port */
	mk(&b, MAPPED, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_int_equal(pl->side[0].action, RP_ACT_NONE);
	assert_int_equal(pl->side[1].remote_ports[0], 40007);
	/* without the mapping (refused or not asked) the same NAT is hard again: today's plans */
	mk(&a, RANDOM, RP_FILTER_DROP, "198.18.1.2", 40000);
	mk(&b, RANDOM, RP_FILTER_RST, "198.18.2.2", 41000);
	a.pm_asked = true;
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	assert_string_equal(rp_plan_name(pl), IMPOSSIBLE);
	free(x);
	free(pl);
}

/* Every name a person or a report sees comes from the table. */
static void test_names_from_table(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	char hint[300], odds[200];
	for (int pa = PRESERVE; pa <= BLOCK; pa++)
		for (int pb = PRESERVE; pb <= BLOCK; pb++) {
			mk(&a, (enum prof)pa, RP_FILTER_RST, "198.18.1.2", 40000);
			mk(&b, (enum prof)pb, RP_FILTER_RST, "198.18.2.2", 41000);
			assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
			assert_ptr_equal(rp_plan_name(pl), pl->strategy->name);       /* the very string */
			struct json_object *o = rp_plan_to_json(pl);
			assert_string_equal(js(o, "method"), pl->strategy->name);
			json_object_put(o);
			rp_plan_miss_hint(pl, hint, sizeof(hint));
			assert_true(hint[0] != 0);
			rp_plan_refusal(pl, odds, sizeof(odds), hint, sizeof(hint));
			/* a refusal explains its odds and what helps; a runnable plan has no refusal text */
			assert_int_equal(rp_plan_refused(pl), odds[0] != 0);
			assert_int_equal(rp_plan_refused(pl), hint[0] != 0);
		}
	/* the hints are the strategies' own: birthday's quotes its probability */
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, RANDOM, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	rp_plan_miss_hint(pl, hint, sizeof(hint));
	assert_non_null(strstr(hint, "P=0.990"));
	/* random x random and random x sequential refuse with different odds */
	mk(&a, RANDOM, RP_FILTER_RST, "198.18.1.2", 40000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	rp_plan_refusal(pl, odds, sizeof(odds), hint, sizeof(hint));
	assert_non_null(strstr(odds, "2^32"));
	assert_non_null(strstr(hint, "170000 for 99.9%"));
	mk(&b, SEQUENTIAL, RP_FILTER_RST, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	rp_plan_refusal(pl, odds, sizeof(odds), hint, sizeof(hint));
	assert_non_null(strstr(odds, "k/64512"));
	/* a plan without a strategy */
	memset(pl, 0, sizeof(*pl));
	assert_string_equal(rp_plan_name(pl), "none");
	assert_true(rp_plan_refused(pl));
	rp_plan_miss_hint(pl, hint, sizeof(hint));
	assert_non_null(strstr(hint, "same session"));
	free(pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_birthday_math),
		cmocka_unit_test(test_birthday_ramp),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_all_pairs),
		cmocka_unit_test(test_widen_rounds),
		cmocka_unit_test(test_params_and_errors),
		cmocka_unit_test(test_seq_seq_lockstep),
		cmocka_unit_test(test_plan_json),
		cmocka_unit_test(test_birthday_block),
		cmocka_unit_test(test_birthday_margin),
		cmocka_unit_test(test_block_pairs),
		cmocka_unit_test(test_address_dependent),
		cmocka_unit_test(test_low_ttl),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_mapped),
		cmocka_unit_test(test_names_from_table),
	};
	return cmocka_run_group_tests_name("strategy", tests, NULL, NULL);
}
