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

#include "rawpunch/strategy/strategy.h"

enum prof { PRESERVE, SEQUENTIAL, RANDOM };

/* A natinfo as the probe reports it for each lab profile. */
static void mk(struct rp_natinfo *ni, enum prof p, enum rp_filter f, const char *pub, uint16_t lport)
{
	memset(ni, 0, sizeof(*ni));
	inet_pton(AF_INET, "10.0.1.2", &ni->local_addr);
	inet_pton(AF_INET, pub, &ni->mapped_addr);
	ni->local_port = lport;
	ni->behind_nat = true;
	ni->filtering = f;
	ni->nat_ttl = 2;
	switch (p) {
	case PRESERVE:
		ni->mapping = RP_MAP_EI;
		ni->alloc = RP_ALLOC_PRESERVING;
		ni->mapped_port = lport;
		break;
	case SEQUENTIAL:
		ni->mapping = RP_MAP_APD;
		ni->alloc = RP_ALLOC_SEQUENTIAL;
		ni->mapped_port = 20010;
		ni->has_delta = true;
		ni->delta = 1;
		ni->jitter = 0.5;
		ni->confidence = 0.8;
		for (unsigned i = 0; i < 4; i++)
			ni->predicted[i] = (uint16_t)(20011 + i);
		ni->n_predicted = 4;
		break;
	case RANDOM:
		ni->mapping = RP_MAP_APD;
		ni->alloc = RP_ALLOC_RANDOM;
		ni->mapped_port = 51234;
		break;
	}
}

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
		if (pl->method == RP_METHOD_IMPOSSIBLE) {
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
					enum rp_method want;
					if (pa == PRESERVE && pb == PRESERVE)
						want = RP_METHOD_SIMOPEN;
					else if (pa == RANDOM && pb == RANDOM)
						want = RP_METHOD_IMPOSSIBLE;
					else if ((pa == RANDOM) != (pb == RANDOM))
						want = (pa == PRESERVE || pb == PRESERVE) ? RP_METHOD_BIRTHDAY
											: RP_METHOD_IMPOSSIBLE;
					else
						want = RP_METHOD_PREDICT;
					assert_int_equal(pl->method, want);
					if (want == RP_METHOD_SIMOPEN) {
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
					if (want == RP_METHOD_BIRTHDAY) {
						int h = pa == RANDOM ? 0 : 1;
						assert_int_equal(pl->hard_side, h);
						assert_int_equal(pl->side[h].action, RP_ACT_OPEN_MANY);
						assert_int_equal(pl->side[h].n_local, 256);
						assert_int_equal(pl->side[h].remote_ports[0], h ? 40000 : 41000);
						assert_int_equal(pl->side[1 - h].action, RP_ACT_PROBE_RANDOM);
						assert_int_equal(pl->side[1 - h].local_port, h ? 40000 : 41000);
						assert_true(pl->side[1 - h].n_probes >= 1024 && pl->side[1 - h].n_probes <= 2048);
						/* probes start after all mappings are open */
						assert_true(pl->side[1 - h].start_ms >=
							    256 * 1000 / pl->side[h].rate_pps);
						assert_true(pl->p_success >= 0.99);
					}
					if (want == RP_METHOD_PREDICT && (pa == PRESERVE || pb == PRESERVE)) {
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
					if (want == RP_METHOD_IMPOSSIBLE) {
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
	assert_int_equal(pl->method, RP_METHOD_BIRTHDAY);
	assert_int_equal(pl->side[0].n_local, 128);
	assert_int_equal(pl->side[1].n_probes, 300);      /* capped (0.5 needs 347) */
	assert_true(fabs(pl->p_success - rp_birthday_p(128, 300, RP_BIRTHDAY_N)) < 1e-12);
	assert_int_equal(pl->side[1].rate_pps, 500);
	assert_true(pl->side[1].start_ms >= 256);          /* 128 SYNs at 500/s */
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
	assert_string_equal(rp_method_str(RP_METHOD_BIRTHDAY), "birthday");
	assert_string_equal(rp_method_str(RP_METHOD_SIMOPEN), "simultaneous-open");
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
	assert_int_equal(pl->method, RP_METHOD_PREDICT);
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

static void test_plan_json(void **state)
{
	(void)state;
	struct rp_natinfo a, b;
	struct rp_plan *pl = malloc(sizeof(*pl));
	struct json_object *o, *v, *sides, *s1, *ports;
	mk(&a, PRESERVE, RP_FILTER_RST, "198.18.1.2", 40000);
	mk(&b, RANDOM, RP_FILTER_DROP, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	o = rp_plan_to_json(pl);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "method", &v));
	assert_string_equal(json_object_get_string(v), "birthday");
	assert_true(json_object_object_get_ex(o, "hard_side", &v));
	assert_string_equal(json_object_get_string(v), "b");
	assert_true(json_object_object_get_ex(o, "sides", &sides));
	assert_int_equal(json_object_array_length(sides), 2);
	s1 = json_object_array_get_idx(sides, 1);
	assert_true(json_object_object_get_ex(s1, "action", &v));
	assert_string_equal(json_object_get_string(v), "open-many");
	assert_true(json_object_object_get_ex(s1, "remote", &v));
	assert_string_equal(json_object_get_string(v), "198.18.1.2");
	assert_true(json_object_object_get_ex(s1, "remote_ports", &ports));
	assert_int_equal(json_object_array_length(ports), 1);
	assert_int_equal(json_object_get_int(json_object_array_get_idx(ports, 0)), 40000);
	json_object_put(o);
	/* no hard side: null */
	mk(&b, PRESERVE, RP_FILTER_DROP, "198.18.2.2", 41000);
	assert_int_equal(rp_plan_make(&a, &b, NULL, 0, pl), 0);
	o = rp_plan_to_json(pl);
	assert_true(json_object_object_get_ex(o, "hard_side", &v));
	assert_null(v);
	json_object_put(o);
	assert_string_equal(rp_action_str(RP_ACT_PROBE_RANDOM), "probe-random");
	free(pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_birthday_math),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_all_pairs),
		cmocka_unit_test(test_widen_rounds),
		cmocka_unit_test(test_params_and_errors),
		cmocka_unit_test(test_seq_seq_lockstep),
		cmocka_unit_test(test_plan_json),
	};
	return cmocka_run_group_tests_name("strategy", tests, NULL, NULL);
}
