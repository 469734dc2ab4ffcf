/* SPDX-License-Identifier: MIT */
/* natclass: mapping tests, allocation classification and prediction on synthetic series, NAT hop. */
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

#include "rawpunch/probe/natclass.h"

static uint32_t ip(const char *s)
{
	uint32_t a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static void test_mapping(void **state)
{
	(void)state;
	struct rp_ep local = { ip("10.0.1.2"), 40000 }, pub = { ip("198.18.1.2"), 40000 },
		     p2 = { ip("198.18.1.2"), 20001 }, p3 = { ip("198.18.1.2"), 20002 };
	bool nat;
	assert_int_equal(rp_mapping_classify(&local, &pub, &pub, &pub, &nat), RP_MAP_EI);
	assert_true(nat);
	assert_int_equal(rp_mapping_classify(&local, &pub, &pub, NULL, &nat), RP_MAP_EI);
	assert_int_equal(rp_mapping_classify(&local, &pub, &p2, &p2, &nat), RP_MAP_AD);
	assert_int_equal(rp_mapping_classify(&local, &pub, &p2, &p3, &nat), RP_MAP_APD);
	assert_int_equal(rp_mapping_classify(&local, &pub, &p2, NULL, &nat), RP_MAP_UNKNOWN);
	assert_int_equal(rp_mapping_classify(&local, &pub, NULL, NULL, &nat), RP_MAP_UNKNOWN);
	assert_true(nat);
	assert_int_equal(rp_mapping_classify(&local, NULL, NULL, NULL, &nat), RP_MAP_UNKNOWN);
	assert_false(nat);
	/* no NAT at all */
	assert_int_equal(rp_mapping_classify(&local, &local, NULL, NULL, &nat), RP_MAP_EI);
	assert_false(nat);
	/* same port, other address: still a different mapping */
	struct rp_ep other_ip = { ip("198.18.1.3"), 40000 };
	assert_int_equal(rp_mapping_classify(&local, &pub, &other_ip, &other_ip, &nat), RP_MAP_AD);
}

/* A sequential NAT's counter: our flows at t_i = i * dt; foreign flows arrive as a Poisson process
 * of rate lambda (deterministic generator). Returns the counter after the last sample. */
static unsigned lcg(unsigned *x)
{
	*x = *x * 1103515245u + 12345u;
	return (*x >> 16) & 0x7fff;
}

static double expo(unsigned *x, double rate)
{
	double u = (lcg(x) + 1.0) / 32769.0;
	return -log(u) / rate;
}

static long gen_seq(struct rp_port_sample *s, size_t n, long start, int delta, double dt, double lambda,
		    unsigned seed, uint16_t lo, uint16_t hi, double *next_foreign_t)
{
	long port = start;
	double t = 0, nf = lambda > 0 ? expo(&seed, lambda) : 1e18;
	long w = (long)hi - lo + 1;
	for (size_t i = 0; i < n; i++) {
		t = (double)i * dt;
		while (nf < t) {
			port += delta;
			nf += expo(&seed, lambda);
		}
		port += delta;
		long p = lo + (((port - lo) % w) + w) % w;
		s[i].t_ns = (uint64_t)(t * 1e9);
		s[i].local_port = (uint16_t)(30000 + 7 * i);
		s[i].mapped_port = (uint16_t)p;
	}
	if (next_foreign_t)
		*next_foreign_t = nf;
	return port;
}

static void test_preserving(void **state)
{
	(void)state;
	struct rp_port_sample s[12];
	struct rp_alloc_fit f;
	struct rp_prediction p;
	for (int i = 0; i < 12; i++)
		s[i] = (struct rp_port_sample){ (uint64_t)i * 40000000, (uint16_t)(33000 + 13 * i), (uint16_t)(33000 + 13 * i) };
	s[5].mapped_port = 1234;   /* one collision re-mapped: still preserving */
	assert_int_equal(rp_alloc_classify(s, 12, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_PRESERVING);
	assert_int_equal(f.n_preserved, 11);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_EI, 40000, 40000, 1.0, 0, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.ports[0], 40000);
	assert_true(p.confidence > 0.8 && p.confidence < 1);
	/* APD mapping but preserving: the punch port itself */
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 0, 1.0, 0, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.ports[0], 40000);
}

static void test_sequential_clean(void **state)
{
	(void)state;
	struct rp_port_sample s[15];
	struct rp_alloc_fit f;
	struct rp_prediction p;
	long last = gen_seq(s, 15, 20000, 1, 0.04, 0, 1, 1024, 65535, NULL);
	assert_int_equal(rp_alloc_classify(s, 15, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_true(f.has_delta);
	assert_int_equal(f.delta, 1);
	assert_int_equal(f.n_fit, 14);
	assert_int_equal(f.n_foreign, 0);
	assert_true(f.jitter < 1e-9);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 20000, 0.2, 0, &p), 0);
	assert_true(p.n >= 1);
	assert_int_equal(p.ports[0], last + 1);
	for (unsigned i = 1; i < p.n; i++)
		assert_int_equal(p.ports[i], p.ports[i - 1] + 1);
	assert_true(p.confidence > 0.85);
	/* delta 2 and a decreasing NAT (delta -3) */
	gen_seq(s, 15, 30000, 2, 0.04, 0, 1, 1024, 65535, NULL);
	assert_int_equal(rp_alloc_classify(s, 15, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.delta, 2);
	last = gen_seq(s, 15, 60000, -3, 0.04, 0, 1, 1024, 65535, NULL);
	assert_int_equal(rp_alloc_classify(s, 15, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.delta, -3);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 0, 0.1, 0, &p), 0);
	assert_int_equal(p.ports[0], last - 3);
}

/* Noise: other hosts' flows at 4/s (the lab's sequential-noise). The prediction window must hold
 * the next flow's port in (nearly) every trial, and the stated confidence must be honest. */
static void test_sequential_noise_coverage(void **state)
{
	(void)state;
	struct rp_port_sample s[15];
	struct rp_alloc_fit f;
	struct rp_prediction p;
	int hits = 0, trials = 400;
	double conf_sum = 0;
	for (int t = 0; t < trials; t++) {
		double nf;
		unsigned seed = 1000u + (unsigned)t;
		long port = gen_seq(s, 15, 20000 + t * 100, 1, 0.04, 4.0, seed, 20000, 29999, &nf);
		assert_int_equal(rp_alloc_classify(s, 15, NULL, &f), 0);
		assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
		assert_int_equal(f.delta, 1);
		assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 0, 0.5, 0, &p), 0);
		/* the new flow at t_last + 0.5 s: count the foreign flows before it */
		double tl = 14 * 0.04, tn = tl + 0.5;
		unsigned x = seed * 7u + 3u;
		while (nf < tn) {
			port++;
			nf += expo(&x, 4.0);
		}
		port++;
		port = 20000 + (port - 20000) % 10000;
		for (unsigned i = 0; i < p.n; i++)
			if (p.ports[i] == port) {
				hits++;
				break;
			}
		conf_sum += p.confidence;
		assert_true(p.n <= RP_MAX_PREDICT);
	}
	print_message("noise coverage: %d/%d, mean confidence %.3f\n", hits, trials, conf_sum / trials);
	/* The window is sized for 99.9% with the rate's upper bound. */
	assert_true(hits >= trials * 97 / 100);
	assert_true(conf_sum / trials > 0.6 && conf_sum / trials <= 1.0);
}

static void test_wraparound(void **state)
{
	(void)state;
	struct rp_port_sample s[12];
	struct rp_alloc_fit f;
	struct rp_prediction p;
	struct rp_alloc_opts o = { .range_lo = 20000, .range_hi = 29999 };
	/* 29994 ... 29999, 20000 ... : known range */
	gen_seq(s, 12, 29993, 1, 0.04, 0, 1, 20000, 29999, NULL);
	assert_int_equal(s[6].mapped_port, 20000);
	assert_int_equal(rp_alloc_classify(s, 12, &o, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.delta, 1);
	assert_int_equal(f.n_wraps, 1);
	assert_int_equal(f.n_foreign, 0);
	/* unknown range: the wrap still counts, and the range is learnt from what was seen */
	assert_int_equal(rp_alloc_classify(s, 12, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.n_wraps, 1);
	assert_int_equal(f.range_lo, 20000);
	assert_int_equal(f.range_hi, 29999);
	/* prediction crossing the top of the range wraps to its bottom */
	gen_seq(s, 12, 29986, 1, 0.04, 0, 1, 20000, 29999, NULL);
	assert_int_equal(s[11].mapped_port, 29998);
	assert_int_equal(rp_alloc_classify(s, 12, &o, &f), 0);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 0, 1.0, 0, &p), 0);
	assert_true(p.n >= 3);
	assert_int_equal(p.ports[0], 29999);
	assert_int_equal(p.ports[1], 20000);
	assert_int_equal(p.ports[2], 20001);
	/* the full 16-bit edge: 65535 -> 1024 with the default range */
	struct rp_alloc_opts o2 = { .range_lo = 1024, .range_hi = 65535 };
	gen_seq(s, 12, 65528, 1, 0.04, 0, 1, 1024, 65535, NULL);
	assert_int_equal(rp_alloc_classify(s, 12, &o2, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.n_wraps, 1);
	/* bad ranges */
	struct rp_alloc_opts bad = { .range_lo = 5, .range_hi = 4 };
	assert_int_equal(rp_alloc_classify(s, 12, &bad, &f), -EINVAL);
}

static void test_random(void **state)
{
	(void)state;
	struct rp_port_sample s[12];
	struct rp_alloc_fit f;
	struct rp_prediction p;
	int seq = 0;
	for (unsigned t = 0; t < 500; t++) {
		unsigned x = 77u + t;
		for (int i = 0; i < 12; i++)
			s[i] = (struct rp_port_sample){ (uint64_t)i * 40000000, (uint16_t)(40000 + i),
							(uint16_t)(1024 + (lcg(&x) << 1 | (lcg(&x) & 1)) % 64512) };
		assert_int_equal(rp_alloc_classify(s, 12, NULL, &f), 0);
		if (f.alloc != RP_ALLOC_RANDOM)
			seq++;
	}
	assert_int_equal(seq, 0);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 0, 1.0, 0, &p), 0);
	assert_int_equal(p.n, 0);
	assert_true(p.confidence == 0);
}

static void test_small_and_bad(void **state)
{
	(void)state;
	struct rp_port_sample s[3] = { { 0, 1, 2 }, { 1, 2, 3 }, { 2, 3, 4 } };
	struct rp_alloc_fit f;
	struct rp_prediction p;
	assert_int_equal(rp_alloc_classify(s, 3, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_UNKNOWN);
	assert_int_equal(rp_alloc_classify(NULL, 3, NULL, &f), -EINVAL);
	assert_int_equal(rp_alloc_classify(s, 3, NULL, NULL), -EINVAL);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 1, 0, -1.0, 0, &p), -EINVAL);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 1, 0, 1.0, RP_MAX_PREDICT + 1, &p), -EINVAL);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 1, 0, 1.0, 0, &p), 0);
	assert_int_equal(p.n, 0);
	/* sequential with a heavy noise burst: window capped at max */
	struct rp_port_sample q[8];
	for (int i = 0; i < 8; i++)
		q[i] = (struct rp_port_sample){ (uint64_t)i * 1000000, (uint16_t)(50000 + i), (uint16_t)(20000 + 3 * i) };
	assert_int_equal(rp_alloc_classify(q, 8, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.delta, 3);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 1, 0, 100.0, 10, &p), 0);
	assert_int_equal(p.n, 10);
	assert_int_equal(p.ports[9], 20021 + 30);
}

static void test_private(void **state)
{
	(void)state;
	assert_true(rp_ipv4_is_private(ip("10.0.1.1")));
	assert_true(rp_ipv4_is_private(ip("172.31.255.1")));
	assert_false(rp_ipv4_is_private(ip("172.32.0.1")));
	assert_true(rp_ipv4_is_private(ip("192.168.1.1")));
	assert_true(rp_ipv4_is_private(ip("100.127.0.1")));
	assert_false(rp_ipv4_is_private(ip("100.128.0.1")));
	assert_true(rp_ipv4_is_private(ip("169.254.0.1")));
	assert_false(rp_ipv4_is_private(ip("198.18.1.1")));
	assert_false(rp_ipv4_is_private(ip("8.8.8.8")));
}

static void test_nat_hop(void **state)
{
	(void)state;
	uint32_t local = ip("10.0.1.2"), mapped = ip("198.18.1.2");
	/* the lab: ra answers from its LAN side, inet from 198.18.1.1 */
	struct rp_hop lab[2] = { { .ttl = 1, .answered = true, .from = ip("10.0.1.1") },
				 { .ttl = 2, .answered = true, .from = ip("198.18.1.1") } };
	assert_int_equal(rp_nat_hop(lab, 2, local, mapped), 1);
	/* home router + CGNAT: 192.168.1.1, 100.64.0.1, 10.1.1.1 (ISP inside), then public */
	struct rp_hop cg[4] = { { .ttl = 1, .answered = true, .from = ip("192.168.1.1") },
				{ .ttl = 2, .answered = true, .from = ip("100.64.0.1") },
				{ .ttl = 3, .answered = true, .from = ip("10.1.1.1") },
				{ .ttl = 4, .answered = true, .from = ip("203.0.113.1") } };
	assert_int_equal(rp_nat_hop(cg, 4, local, ip("203.0.113.77")), 3);
	/* silent NAT hop, then public */
	struct rp_hop silent[2] = { { .ttl = 1 }, { .ttl = 2, .answered = true, .from = ip("203.0.113.1") } };
	assert_int_equal(rp_nat_hop(silent, 2, local, mapped), 1);
	/* the NAT answers from its public address */
	struct rp_hop pub[2] = { { .ttl = 1, .answered = true, .from = ip("192.168.0.1") },
				 { .ttl = 2, .answered = true, .from = mapped } };
	assert_int_equal(rp_nat_hop(pub, 2, local, mapped), 2);
	/* a NAT that leaves ICMP quotes untranslated: hop 3's quote carries the public source */
	struct rp_hop q[3] = { { .ttl = 1, .answered = true, .from = ip("10.9.0.1"), .inner_seen = true, .inner_saddr = local },
			       { .ttl = 2, .answered = true, .from = ip("10.9.0.2"), .inner_seen = true, .inner_saddr = local },
			       { .ttl = 3, .answered = true, .from = ip("10.9.0.3"), .inner_seen = true, .inner_saddr = mapped } };
	assert_int_equal(rp_nat_hop(q, 3, local, mapped), 2);
	/* nothing but private hops, then the server: unknown */
	struct rp_hop none[2] = { { .ttl = 1, .answered = true, .from = ip("10.0.0.1") }, { .ttl = 2, .reached = true } };
	assert_int_equal(rp_nat_hop(none, 2, local, mapped), -ENOENT);
	/* NAT on this host (a container's): hop 1 is already public */
	struct rp_hop host[1] = { { .ttl = 1, .answered = true, .from = ip("203.0.113.1") } };
	assert_int_equal(rp_nat_hop(host, 1, local, mapped), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mapping),
		cmocka_unit_test(test_preserving),
		cmocka_unit_test(test_sequential_clean),
		cmocka_unit_test(test_sequential_noise_coverage),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_small_and_bad),
		cmocka_unit_test(test_private),
		cmocka_unit_test(test_nat_hop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
