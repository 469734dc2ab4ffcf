/* SPDX-License-Identifier: MIT */
/* natclass: mapping tests, allocation classification and prediction on synthetic series, port ranges
 * (blocks, narrow ranges, wraps; and a plain random NAT that must not get one), Record Route, the
 * NAT hop and nat_ttl's evidence; the probe cache's check of a cached classification. */
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


/* ---------------------------------------------------------------- issue 11 */

static uint32_t xs(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* n random ports in lo..hi, 40 ms apart, from fresh local ports */
static void gen_random(struct rp_port_sample *s, size_t n, long lo, long hi, uint32_t *x)
{
	for (size_t i = 0; i < n; i++)
		s[i] = (struct rp_port_sample){ (uint64_t)i * 40000000, (uint16_t)(40000 + i),
						(uint16_t)(lo + (long)(xs(x) % (uint32_t)(hi - lo + 1))) };
}

static void test_mapping4(void **state)
{
	(void)state;
	struct rp_ep local = { ip("10.0.1.2"), 40000 }, m1 = { ip("198.18.1.2"), 43300 },
		     m2 = { ip("198.18.1.2"), 43301 }, m3 = { ip("198.18.1.2"), 43302 }, m4 = { ip("198.18.1.2"), 43303 };
	bool nat;
	/* endpoint-independent: all four alike */
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m1, &m1, &m1, &nat), RP_MAP_EI);
	assert_true(nat);
	/* address-dependent: the address changes it, the port does not */
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m2, &m2, &m1, &nat), RP_MAP_AD);
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m2, NULL, &m1, &nat), RP_MAP_AD);
	/* a random NAT with 256 ports gives the same port twice by chance: the fourth test tells */
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m2, &m2, &m4, &nat), RP_MAP_APD);
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m1, &m3, &m4, &nat), RP_MAP_APD);
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m1, &m1, &m4, &nat), RP_MAP_APD);
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m2, &m3, &m4, &nat), RP_MAP_APD);
	/* not enough tests */
	assert_int_equal(rp_mapping_classify4(&local, &m1, &m2, NULL, NULL, &nat), RP_MAP_UNKNOWN);
	assert_int_equal(rp_mapping_classify4(&local, &m1, NULL, &m3, &m4, &nat), RP_MAP_UNKNOWN);
	/* no NAT */
	assert_int_equal(rp_mapping_classify4(&local, &local, NULL, NULL, NULL, &nat), RP_MAP_EI);
	assert_false(nat);
}

/* Random ports in an aligned block of 256 (the lab's block, RFC 7422): random with the block as its
 * range in (nearly) every trial, never sequential, whatever the sample count the probe uses. */
static void test_block_random(void **state)
{
	(void)state;
	struct rp_port_sample s[16];
	struct rp_alloc_fit f;
	uint32_t x = 12345;
	static const size_t ns[] = { 10, 13, 16 };
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		int exact = 0, trials = 2000, seq = 0;
		for (int t = 0; t < trials; t++) {
			long lo = 1024 + (long)(xs(&x) % 252) * 256;
			gen_random(s, ns[k], lo, lo + 255, &x);
			assert_int_equal(rp_alloc_classify(s, ns[k], NULL, &f), 0);
			if (f.alloc == RP_ALLOC_SEQUENTIAL) {
				seq++;   /* a random series with at most one step down: 2 * A(n,1) / n! */
				continue;
			}
			assert_int_equal(f.alloc, RP_ALLOC_RANDOM);
			assert_int_equal(f.port_range.how, RP_RANGE_SPREAD);
			for (size_t i = 0; i < ns[k]; i++)
				assert_true(s[i].mapped_port >= f.port_range.lo && s[i].mapped_port <= f.port_range.hi);
			if (f.port_range.lo == lo && f.port_range.hi == lo + 255) {
				exact++;
				assert_true(f.port_range.aligned);
				assert_true(f.port_range.confidence > 0.99);
			}
		}
		print_message("block 256, %zu samples: exact block %d/%d, sequential %d\n", ns[k], exact, trials, seq);
		assert_true(exact >= trials * 99 / 100);
		assert_true(seq <= 2);
	}
	/* a block of 16: random steps both ways, so no "sequential" however often they go up */
	int seq = 0, ranged = 0;
	for (int t = 0; t < 2000; t++) {
		long lo = 1024 + (long)(xs(&x) % 4000) * 16;
		gen_random(s, 15, lo, lo + 15, &x);
		assert_int_equal(rp_alloc_classify(s, 15, NULL, &f), 0);
		seq += f.alloc == RP_ALLOC_SEQUENTIAL;
		ranged += f.port_range.how == RP_RANGE_SPREAD && f.port_range.lo <= lo && f.port_range.hi >= lo + 15;
	}
	print_message("block 16: sequential %d/2000, range holding the block %d/2000\n", seq, ranged);
	assert_true(seq <= 2);
	assert_true(ranged >= 1990);
}

/* A plain random NAT over 1024..65535 must not get a range, least of all from few samples. */
static void test_random_no_range(void **state)
{
	(void)state;
	struct rp_port_sample s[16];
	struct rp_alloc_fit f;
	uint32_t x = 777;
	int ranged = 0, trials = 0;
	for (size_t n = 4; n <= 16; n++)
		for (int t = 0; t < 2000; t++, trials++) {
			gen_random(s, n, 1024, 65535, &x);
			assert_int_equal(rp_alloc_classify(s, n, NULL, &f), 0);
			assert_int_not_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
			ranged += f.port_range.how != RP_RANGE_NONE;
		}
	print_message("plain random: a range in %d of %d trials\n", ranged, trials);
	assert_true(ranged <= 10);   /* RP_RANGE_ALPHA = 1e-4: about 3 expected */
	/* three samples say nothing at all */
	gen_random(s, 3, 43264, 43264 + 3, &x);
	assert_int_equal(rp_alloc_classify(s, 3, NULL, &f), 0);
	assert_int_equal(f.port_range.how, RP_RANGE_NONE);
	/* adversarial: four ports drawn close together by chance are still a plain NAT's only if
	 * they are not far too close; a span of 3000 from 4 samples is not significant */
	struct rp_port_sample q[4] = { { 0, 1, 30000 }, { 1, 2, 33000 }, { 2, 3, 31000 }, { 3, 4, 32000 } };
	assert_int_equal(rp_alloc_classify(q, 4, NULL, &f), 0);
	assert_int_equal(f.port_range.how, RP_RANGE_NONE);
	assert_true(f.port_range.p_chance >= RP_RANGE_ALPHA || f.port_range.p_chance == 0);
}

/* A NAT whose whole range is narrow: an aligned one (49152..65535) is found exactly; an unaligned
 * one (32768..60999, Linux's default ephemeral range) gets a window whose stated confidence is
 * honest: the next port falls inside at least that often. */
static void test_narrow_ranges(void **state)
{
	(void)state;
	struct rp_port_sample s[17];
	struct rp_alloc_fit f;
	uint32_t x = 4242;
	int exact = 0;
	for (int t = 0; t < 500; t++) {
		gen_random(s, 16, 49152, 65535, &x);
		assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
		assert_int_equal(f.alloc, RP_ALLOC_RANDOM);
		exact += f.port_range.lo == 49152 && f.port_range.hi == 65535;
	}
	assert_true(exact >= 490);
	int hit = 0, n = 0;
	double conf = 0;
	for (int t = 0; t < 2000; t++) {
		gen_random(s, 17, 32768, 60999, &x);   /* 16 samples and the next flow */
		assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
		if (f.port_range.how == RP_RANGE_NONE)
			continue;
		n++;
		conf += f.port_range.confidence;
		hit += s[16].mapped_port >= f.port_range.lo && s[16].mapped_port <= f.port_range.hi;
	}
	print_message("32768..60999: range in %d/2000, next port inside %d, mean confidence %.3f\n", n, hit,
		      n ? conf / n : 0);
	assert_true(n >= 1900);
	assert_true((double)hit / n >= conf / n - 0.02);
	/* an unaligned block of 1000 (1024 + k * 1000): the window holds the next port as often as
	 * it says */
	hit = n = 0;
	conf = 0;
	for (int t = 0; t < 2000; t++) {
		long lo = 1024 + (long)(xs(&x) % 60) * 1000;
		gen_random(s, 17, lo, lo + 999, &x);
		assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
		assert_int_equal(f.alloc, RP_ALLOC_RANDOM);
		assert_int_not_equal(f.port_range.how, RP_RANGE_NONE);
		n++;
		conf += f.port_range.confidence;
		hit += s[16].mapped_port >= f.port_range.lo && s[16].mapped_port <= f.port_range.hi;
	}
	print_message("blocks of 1000: next port inside %d/%d, mean confidence %.3f\n", hit, n, conf / n);
	assert_true((double)hit / n >= conf / n - 0.02);
}

/* block-seq: a counter per host inside its aligned block. Once the samples cross the block's end,
 * the range is the block and the prediction wraps inside it. */
static void test_block_sequential(void **state)
{
	(void)state;
	struct rp_port_sample s[16];
	struct rp_alloc_fit f;
	struct rp_prediction p;
	/* 43264..43519, the counter at 43510: 10 ports to the end, then the start again */
	gen_seq(s, 16, 43509, 1, 0.04, 0, 1, 43264, 43519, NULL);
	assert_int_equal(s[9].mapped_port, 43519);
	assert_int_equal(s[10].mapped_port, 43264);
	assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.delta, 1);
	assert_int_equal(f.n_wraps, 1);
	assert_int_equal(f.n_against, 0);
	assert_int_equal(f.port_range.how, RP_RANGE_WRAP);
	assert_int_equal(f.port_range.lo, 43264);
	assert_int_equal(f.port_range.hi, 43519);
	assert_true(f.port_range.confidence > 0.9);
	/* the prediction wraps inside the block too: a block of 16, 8 ports short of its end */
	gen_seq(s, 16, 4103, 1, 0.04, 0, 1, 4096, 4111, NULL);
	assert_int_equal(s[15].mapped_port, 4103);
	assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
	assert_int_equal(f.port_range.how, RP_RANGE_WRAP);
	assert_int_equal(f.port_range.lo, 4096);
	assert_int_equal(f.port_range.hi, 4111);
	assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 0, 1.0, 0, &p), 0);
	assert_true(p.n > 8);
	long next = s[15].mapped_port;
	for (unsigned i = 0; i < p.n; i++) {
		next = next == 4111 ? 4096 : next + 1;
		assert_int_equal(p.ports[i], next);
	}
	/* delta 2 in a block of 256: the wrap leaves the start one port open; alignment decides */
	gen_seq(s, 16, 43500, 2, 0.04, 0, 1, 43264, 43519, NULL);
	assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
	assert_int_equal(f.delta, 2);
	assert_int_equal(f.port_range.how, RP_RANGE_WRAP);
	assert_int_equal(f.port_range.lo, 43264);
	assert_int_equal(f.port_range.hi, 43519);
	assert_true(f.port_range.aligned);
	/* other hosts' flows took the block's first two ports at the wrap: k = 3, the aligned block */
	for (int i = 0; i < 16; i++)
		s[i] = (struct rp_port_sample){ (uint64_t)i * 40000000, (uint16_t)(50000 + i),
						(uint16_t)(i < 8 ? 43512 + i : 43264 + 2 + (i - 8)) };
	assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.port_range.how, RP_RANGE_WRAP);
	assert_int_equal(f.port_range.lo, 43264);
	assert_int_equal(f.port_range.hi, 43519);
	/* no wrap in the samples: no range, and a plain sequential NAT looks just the same */
	gen_seq(s, 16, 43300, 1, 0.04, 0, 1, 43264, 43519, NULL);
	assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(f.port_range.how, RP_RANGE_NONE);
}

/* Steps other than +1 (the lab's sequential:2, :3, :-1) and the wrap of a 10000-port range in each
 * direction: delta, range and the prediction's first ports. */
static void test_deltas_and_wraps(void **state)
{
	(void)state;
	static const int deltas[] = { 2, 3, -1, -2, -3, 1 };
	struct rp_port_sample s[16];
	struct rp_alloc_fit f;
	struct rp_prediction p;
	for (size_t k = 0; k < sizeof(deltas) / sizeof(deltas[0]); k++) {
		int d = deltas[k];
		/* start so the counter wraps mid-series: near the top going up, near the bottom going down */
		long start = d > 0 ? 29999 - 8 * d : 20000 - 8 * d;
		long last = gen_seq(s, 16, start, d, 0.04, 0, 1, 20000, 29999, NULL);
		assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
		assert_int_equal(f.alloc, RP_ALLOC_SEQUENTIAL);
		assert_int_equal(f.delta, d);
		assert_int_equal(f.port_range.how, RP_RANGE_WRAP);
		assert_int_equal(f.port_range.lo, 20000);
		assert_int_equal(f.port_range.hi, 29999);
		assert_int_equal(rp_alloc_predict(&f, RP_MAP_APD, 40000, 0, 0.2, 0, &p), 0);
		long w = 10000, want = 20000 + (((last + d - 20000) % w) + w) % w;
		assert_int_equal(p.ports[0], want);
		/* and without a wrap: the same delta, no range */
		gen_seq(s, 16, 25000, d, 0.04, 0, 1, 20000, 29999, NULL);
		assert_int_equal(rp_alloc_classify(s, 16, NULL, &f), 0);
		assert_int_equal(f.delta, d);
		assert_int_equal(f.port_range.how, RP_RANGE_NONE);
	}
	/* a given range is the range */
	struct rp_alloc_opts o = { .range_lo = 20000, .range_hi = 29999 };
	gen_seq(s, 16, 25000, 1, 0.04, 0, 1, 20000, 29999, NULL);
	assert_int_equal(rp_alloc_classify(s, 16, &o, &f), 0);
	assert_int_equal(f.port_range.how, RP_RANGE_GIVEN);
	assert_true(f.port_range.confidence == 1.0);
	/* random steps both ways are no counter, even when most go up */
	struct rp_port_sample q[12];
	static const uint16_t ups[12] = { 30000, 30005, 30011, 29950, 29990, 30020, 30031, 29940, 29970,
					  29999, 30030, 29900 };
	for (int i = 0; i < 12; i++)
		q[i] = (struct rp_port_sample){ (uint64_t)i * 40000000, (uint16_t)(40000 + i), ups[i] };
	assert_int_equal(rp_alloc_classify(q, 12, NULL, &f), 0);
	assert_int_equal(f.alloc, RP_ALLOC_RANDOM);
}

static void test_rr_parse(void **state)
{
	(void)state;
	uint32_t a[RP_RR_MAX];
	uint8_t o[40] = { 7, 39, 16 };
	uint32_t x = ip("100.64.1.2"), y = ip("198.18.1.2"), z = ip("10.255.1.1");
	memcpy(o + 3, &x, 4);
	memcpy(o + 7, &y, 4);
	memcpy(o + 11, &z, 4);
	assert_int_equal(rp_rr_parse(o, 40, a, RP_RR_MAX), 3);
	assert_int_equal(a[0], x);
	assert_int_equal(a[1], y);
	assert_int_equal(a[2], z);
	assert_int_equal(rp_rr_parse(o, 40, a, 2), 2);
	/* behind NOPs and another option */
	uint8_t o2[44] = { 1, 0x94, 4, 0, 0, 7, 39, 8 };
	memcpy(o2 + 8, &y, 4);
	assert_int_equal(rp_rr_parse(o2, 44, a, RP_RR_MAX), 1);
	assert_int_equal(a[0], y);
	/* full: the pointer past the end */
	uint8_t full[40] = { 7, 39, 40 };
	assert_int_equal(rp_rr_parse(full, 40, a, RP_RR_MAX), 9);
	/* none, and malformed */
	uint8_t eol[4] = { 0 }, bad1[4] = { 7, 40, 4, 0 }, bad2[4] = { 7, 1, 4, 0 }, bad3[4] = { 7, 3, 2, 0 };
	assert_int_equal(rp_rr_parse(eol, 4, a, RP_RR_MAX), 0);
	assert_int_equal(rp_rr_parse(NULL, 0, a, RP_RR_MAX), 0);
	assert_int_equal(rp_rr_parse(bad1, 4, a, RP_RR_MAX), -EINVAL);
	assert_int_equal(rp_rr_parse(bad2, 4, a, RP_RR_MAX), -EINVAL);
	assert_int_equal(rp_rr_parse(bad3, 4, a, RP_RR_MAX), -EINVAL);
}

static struct rp_hop hop(uint8_t ttl, const char *from, uint32_t quoted, uint16_t qport)
{
	struct rp_hop h = { .ttl = ttl, .answered = from != NULL, .inner_seen = from != NULL,
			    .inner_saddr = quoted, .inner_sport = qport };
	if (from)
		h.from = ip(from);
	return h;
}

static void rr(struct rp_hop *h, const char *a0, const char *a1, const char *a2, const char *a3)
{
	const char *v[4] = { a0, a1, a2, a3 };
	h->n_rr = 0;
	for (int i = 0; i < 4 && v[i]; i++)
		h->rr[h->n_rr++] = ip(v[i]);
}

/* nat_ttl from the hops: by behaviour where they show it, by the fallbacks where they do not. */
static void test_ttl_guess(void **state)
{
	(void)state;
	uint32_t local = ip("10.0.1.2"), pub = ip("198.18.1.2");
	struct rp_ttl_guess g;
	/* the lab behind a carrier NAT: every router private but inet; Record Route shows hop 2 */
	struct rp_hop cg[5] = { hop(1, "10.0.1.1", local, 40000), hop(2, "100.64.1.1", local, 40000),
				hop(3, "10.255.1.1", local, 40000), hop(4, "198.18.1.1", local, 40000),
				{ .ttl = 5, .reached = true } };
	rr(&cg[0], "10.0.1.1", NULL, NULL, NULL);
	rr(&cg[1], "100.64.1.2", "100.64.1.1", NULL, NULL);
	rr(&cg[2], "100.64.1.2", "198.18.1.2", "10.255.1.1", NULL);
	rr(&cg[3], "100.64.1.2", "198.18.1.2", "198.18.1.254", "198.18.1.1");
	assert_int_equal(rp_nat_ttl_guess(cg, 5, local, 40000, pub, 20001, &g), 0);
	assert_int_equal(g.nat_hop, 2);
	assert_int_equal(g.how, RP_HOPEV_RECORD_ROUTE);
	assert_true(g.behavioural);
	assert_int_equal(g.server_hops, 5);
	/* the same with the options dropped past the carrier NAT: the first public hop (inet, 4),
	 * which passes both NATs; the old rule's answer, now called a fallback */
	for (int i = 0; i < 5; i++)
		cg[i].n_rr = 0;
	assert_int_equal(rp_nat_ttl_guess(cg, 5, local, 40000, pub, 20001, &g), 0);
	assert_int_equal(g.nat_hop, 3);
	assert_int_equal(g.how, RP_HOPEV_PUBLIC_HOP);
	assert_false(g.behavioural);
	/* private hops all the way to the server: the router before it */
	struct rp_hop pv[5] = { hop(1, "192.168.1.1", local, 40000), hop(2, "100.64.0.1", local, 40000),
				hop(3, "10.1.1.1", local, 40000), hop(4, "10.1.1.2", local, 40000),
				{ .ttl = 5, .reached = true } };
	assert_int_equal(rp_nat_ttl_guess(pv, 5, local, 40000, pub, 20001, &g), 0);
	assert_int_equal(g.how, RP_HOPEV_SERVER);
	assert_int_equal(g.nat_hop, 3);   /* TTL 4: dies at the last router before the server */
	/* nothing reached, nothing public: unknown */
	assert_int_equal(rp_nat_ttl_guess(pv, 4, local, 40000, pub, 20001, &g), 0);
	assert_int_equal(g.nat_hop, -ENOENT);
	assert_int_equal(g.how, RP_HOPEV_NONE);
	/* untranslated quotes: the inner NAT's address at hop 2, the public one from hop 4 on */
	uint32_t mid = ip("100.64.1.2");
	struct rp_hop q[5] = { hop(1, "10.0.1.1", local, 40000), hop(2, "100.64.1.1", mid, 40000),
			       hop(3, "100.64.9.1", mid, 40000), hop(4, "10.255.1.1", pub, 21000),
			       { .ttl = 5, .reached = true } };
	assert_int_equal(rp_nat_ttl_guess(q, 5, local, 40000, pub, 21000, &g), 0);
	assert_int_equal(g.how, RP_HOPEV_QUOTE);
	assert_int_equal(g.nat_hop, 3);
	assert_int_equal(g.min_hop, 3);
	/* without the public address in them, the changes still bound it from below: the server
	 * fallback (TTL 4) is kept, and a "public" hop before the last change is not believed */
	q[3].inner_saddr = ip("100.64.7.7");
	q[1].from = ip("203.0.113.9");   /* a public-numbered router inside the carrier */
	assert_int_equal(rp_nat_ttl_guess(q, 5, local, 40000, pub, 21000, &g), 0);
	assert_false(g.behavioural);
	assert_int_equal(g.min_hop, 3);
	assert_true(g.nat_hop >= 3);
	/* the NAT answers from its public address */
	struct rp_hop na[3] = { hop(1, "192.168.0.1", local, 40000), hop(2, "198.18.1.2", local, 40000),
				hop(3, "198.18.1.1", local, 40000) };
	assert_int_equal(rp_nat_ttl_guess(na, 3, local, 40000, pub, 40000, &g), 0);
	assert_int_equal(g.how, RP_HOPEV_NAT_ANSWERED);
	assert_int_equal(g.nat_hop, 2);
	/* the dropping router's own slot is not "sending": a router whose way in is the public
	 * address (it cannot be, but the quote must not be read that way) */
	struct rp_hop own[2] = { hop(1, "10.0.1.1", local, 40000), hop(2, "198.18.1.1", local, 40000) };
	rr(&own[0], "198.18.1.2", NULL, NULL, NULL);
	assert_int_equal(rp_nat_ttl_guess(own, 1, local, 40000, pub, 40000, &g), 0);
	assert_int_not_equal(g.how, RP_HOPEV_RECORD_ROUTE);
	/* answers beyond the server's are not on the way */
	struct rp_hop far[3] = { hop(1, "10.0.0.1", local, 40000), { .ttl = 2, .reached = true },
				 hop(3, "203.0.113.1", local, 40000) };
	assert_int_equal(rp_nat_ttl_guess(far, 3, local, 40000, pub, 40000, &g), 0);
	assert_int_equal(g.how, RP_HOPEV_SERVER);
	assert_int_equal(g.nat_hop, 0);
	assert_int_equal(rp_nat_ttl_guess(NULL, 1, local, 0, pub, 0, &g), -EINVAL);
}

/* The probe cache's check (rp_alloc_recheck): what one round of fresh flows must show for each
 * cached class, and the prediction moved on to the fresher flow. */
static struct rp_natinfo cached(enum rp_alloc alloc, enum rp_mapping mapping)
{
	struct rp_natinfo c;
	memset(&c, 0, sizeof(c));
	c.local_addr = ip("10.0.2.2");
	c.local_port = 39000;
	c.mapped_addr = ip("198.18.2.2");
	c.mapped_port = 20005;
	c.behind_nat = true;
	c.mapping = mapping;
	c.alloc = alloc;
	c.filtering = RP_FILTER_RST;
	c.nat_ttl = 2;
	c.confidence = 0.9;
	if (alloc == RP_ALLOC_SEQUENTIAL) {
		c.has_delta = true;
		c.delta = 1;
		c.n_predicted = 45;
		for (unsigned i = 0; i < c.n_predicted; i++)
			c.predicted[i] = (uint16_t)(20016 + i);
	}
	return c;
}

static void test_recheck(void **state)
{
	(void)state;
	uint32_t pub = ip("198.18.2.2");
	struct rp_natinfo out, c;
	struct rp_port_sample two[2] = { { 100, 40000, 20019 }, { 101, 41000, 20020 } };

	/* preserving: one flow, the punch port kept */
	c = cached(RP_ALLOC_PRESERVING, RP_MAP_EI);
	c.mapped_port = c.local_port;
	assert_int_equal(rp_alloc_recheck_flows(&c), 1);
	struct rp_port_sample kept = { 100, 40000, 40000 }, moved = { 100, 40000, 40001 };
	assert_int_equal(rp_alloc_recheck(&c, pub, &kept, 1, &out), 0);
	assert_int_equal(out.local_port, 40000);
	assert_int_equal(out.mapped_port, 40000);
	assert_int_equal(out.n_predicted, 1);
	assert_int_equal(out.predicted[0], 40000);
	assert_int_equal(out.filtering, RP_FILTER_RST);
	assert_int_equal(out.nat_ttl, 2);
	assert_int_equal(rp_alloc_recheck(&c, pub, &moved, 1, &out), -ESTALE);
	assert_int_equal(rp_alloc_recheck(&c, ip("198.18.2.3"), &kept, 1, &out), -ESTALE);
	assert_int_equal(rp_alloc_recheck(&c, pub, two, 2, &out), -EINVAL);
	c.mapping = RP_MAP_APD;   /* a preserving NAT's mapping does not matter: the port is the punch port */
	assert_int_equal(rp_alloc_recheck(&c, pub, &kept, 1, &out), 0);

	/* sequential, predicted: two flows, a step of k * delta within the window */
	c = cached(RP_ALLOC_SEQUENTIAL, RP_MAP_APD);
	assert_int_equal(rp_alloc_recheck_flows(&c), 2);
	assert_int_equal(rp_alloc_recheck(&c, pub, two, 1, &out), -EINVAL);
	assert_int_equal(rp_alloc_recheck(&c, pub, two, 2, &out), 0);
	assert_int_equal(out.local_port, 40000);
	assert_int_equal(out.mapped_port, 20019);
	assert_int_equal(out.n_predicted, 45);
	assert_int_equal(out.predicted[0], 20021);   /* after the fresher flow's 20020 */
	assert_int_equal(out.predicted[44], 20065);
	assert_true(out.confidence == 0.9);
	struct rp_port_sample s[2];
	memcpy(s, two, sizeof(s));
	s[1].mapped_port = 20019 + 45;   /* 44 foreign flows in between: still inside the window */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), 0);
	s[1].mapped_port = 20019 + 46;   /* past it: the cached rate no longer holds */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), -ESTALE);
	s[1].mapped_port = 20019;        /* no step */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), -ESTALE);
	s[1].mapped_port = 20014;        /* against delta, and no wrap of 1024..65535 */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), -ESTALE);
	s[1].mapped_port = 51234;        /* random now */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), -ESTALE);
	memcpy(s, two, sizeof(s));
	s[0].mapped_port = s[0].local_port = 20019;   /* preserving now */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), -ESTALE);
	/* delta -2 */
	c.delta = -2;
	s[0] = (struct rp_port_sample){ 100, 40000, 30010 };
	s[1] = (struct rp_port_sample){ 101, 41000, 30006 };   /* k = 2 */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), 0);
	assert_int_equal(out.predicted[0], 30004);
	assert_int_equal(out.predicted[1], 30002);
	/* in a range seen wrapping: the step crosses the end, the prediction wraps too */
	c = cached(RP_ALLOC_SEQUENTIAL, RP_MAP_APD);
	c.has_range = true;
	c.range_lo = 20000;
	c.range_hi = 20099;
	c.range_confidence = 0.9;
	s[0] = (struct rp_port_sample){ 100, 40000, 20098 };
	s[1] = (struct rp_port_sample){ 101, 41000, 20000 };   /* 20098 -> 20099 (foreign) -> 20000 */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), 0);
	assert_int_equal(out.predicted[0], 20001);
	s[1].mapped_port = 20100;   /* outside the range */
	assert_int_equal(rp_alloc_recheck(&c, pub, s, 2, &out), -ESTALE);

	/* sequential behind an endpoint-independent mapping: the mapping is what the peer meets */
	c = cached(RP_ALLOC_SEQUENTIAL, RP_MAP_EI);
	assert_int_equal(rp_alloc_recheck_flows(&c), 1);
	assert_int_equal(rp_alloc_recheck(&c, pub, two, 1, &out), 0);
	assert_int_equal(out.n_predicted, 1);
	assert_int_equal(out.predicted[0], 20019);
	assert_int_equal(rp_alloc_recheck(&c, pub, &kept, 1, &out), -ESTALE);

	/* random: one flow, not kept, in the block if one was seen; no prediction */
	c = cached(RP_ALLOC_RANDOM, RP_MAP_APD);
	c.has_range = true;
	c.range_lo = 16384;
	c.range_hi = 17407;
	c.range_confidence = 0.95;
	assert_int_equal(rp_alloc_recheck_flows(&c), 1);
	struct rp_port_sample r1 = { 100, 40000, 17000 };
	assert_int_equal(rp_alloc_recheck(&c, pub, &r1, 1, &out), 0);
	assert_int_equal(out.mapped_port, 17000);
	assert_int_equal(out.n_predicted, 0);
	assert_int_equal(out.range_lo, 16384);
	r1.mapped_port = 17408;
	assert_int_equal(rp_alloc_recheck(&c, pub, &r1, 1, &out), -ESTALE);
	assert_int_equal(rp_alloc_recheck(&c, pub, &kept, 1, &out), -ESTALE);

	/* what the check cannot confirm is not asked */
	c = cached(RP_ALLOC_UNKNOWN, RP_MAP_APD);
	assert_int_equal(rp_alloc_recheck_flows(&c), 0);
	assert_int_equal(rp_alloc_recheck(&c, pub, &r1, 1, &out), -EINVAL);
	c = cached(RP_ALLOC_RANDOM, RP_MAP_UNKNOWN);
	assert_int_equal(rp_alloc_recheck_flows(&c), 0);
	c = cached(RP_ALLOC_SEQUENTIAL, RP_MAP_APD);
	c.has_delta = false;
	c.delta = 0;
	assert_int_equal(rp_alloc_recheck_flows(&c), 0);
	c = cached(RP_ALLOC_PRESERVING, RP_MAP_EI);
	c.behind_nat = false;
	assert_int_equal(rp_alloc_recheck_flows(&c), 0);
	assert_int_equal(rp_alloc_recheck_flows(NULL), 0);
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
		cmocka_unit_test(test_mapping4),
		cmocka_unit_test(test_block_random),
		cmocka_unit_test(test_random_no_range),
		cmocka_unit_test(test_narrow_ranges),
		cmocka_unit_test(test_block_sequential),
		cmocka_unit_test(test_deltas_and_wraps),
		cmocka_unit_test(test_rr_parse),
		cmocka_unit_test(test_ttl_guess),
		cmocka_unit_test(test_recheck),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
