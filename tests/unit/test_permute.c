/* SPDX-License-Identifier: MIT */
/* permute: a bijection on [0, n) for many n (every value exactly once), deterministic per seed,
 * different across seeds, and not close to the identity. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/net/permute.h"

static void check_bijection(uint64_t n, uint64_t seed)
{
	struct rp_perm p;
	uint8_t *seen = calloc(n, 1);
	assert_non_null(seen);
	assert_int_equal(rp_perm_init(&p, n, seed), 0);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t v = rp_perm_at(&p, i);
		assert_true(v < n);
		assert_int_equal(seen[v], 0);
		seen[v] = 1;
	}
	free(seen);
}

static void test_bijection_many_sizes(void **st)
{
	(void)st;
	static const uint64_t sizes[] = { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 100, 255, 256, 257,
					  1000, 1023, 1024, 1025, 4097, 65535, 65536, 65537, 100003, 1 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (uint64_t seed = 0; seed < 3; seed++)
			check_bijection(sizes[i], seed * 0x9e3779b9u + 1);
	/* every size up to 600 */
	for (uint64_t n = 1; n <= 600; n++)
		check_bijection(n, n);
}

static void test_deterministic_and_seeded(void **st)
{
	(void)st;
	struct rp_perm a, b, c;
	unsigned same_ab = 0, same_ac = 0, fixed = 0;
	assert_int_equal(rp_perm_init(&a, 65535, 42), 0);
	assert_int_equal(rp_perm_init(&b, 65535, 42), 0);
	assert_int_equal(rp_perm_init(&c, 65535, 43), 0);
	for (uint64_t i = 0; i < 65535; i++) {
		uint32_t x = rp_perm_at(&a, i);
		same_ab += x == rp_perm_at(&b, i);
		same_ac += x == rp_perm_at(&c, i);
		fixed += x == i;
	}
	assert_int_equal(same_ab, 65535);
	/* a random pair of permutations agrees in ~1 place; allow a margin */
	assert_true(same_ac < 20);
	assert_true(fixed < 20);
}

static void test_spread(void **st)
{
	(void)st;
	/* consecutive positions should not map to neighbouring values (port order looks random):
	 * average |p(i+1) - p(i)| over [0, 65536) is about n/3 for a random permutation */
	struct rp_perm p;
	double sum = 0;
	assert_int_equal(rp_perm_init(&p, 65536, 7), 0);
	for (uint64_t i = 0; i + 1 < 65536; i++) {
		int64_t d = (int64_t)rp_perm_at(&p, i + 1) - (int64_t)rp_perm_at(&p, i);
		sum += (double)(d < 0 ? -d : d);
	}
	sum /= 65535.0;
	assert_true(sum > 65536 / 3.0 * 0.9 && sum < 65536 / 3.0 * 1.1);
}

static void test_limits(void **st)
{
	(void)st;
	struct rp_perm p;
	assert_int_equal(rp_perm_init(&p, 0, 1), -EINVAL);
	assert_int_equal(rp_perm_init(&p, (1ull << 32) + 1, 1), -EINVAL);
	assert_int_equal(rp_perm_init(&p, 1ull << 32, 1), 0);
	/* full 32-bit domain: distinct values on a sample */
	uint32_t v[1000];
	for (int i = 0; i < 1000; i++) {
		v[i] = rp_perm_at(&p, (uint64_t)i * 4294967u);
		for (int j = 0; j < i; j++)
			assert_true(v[j] != v[i]);
	}
	assert_int_equal(rp_perm_init(&p, 1, 99), 0);
	assert_int_equal(rp_perm_at(&p, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bijection_many_sizes),
		cmocka_unit_test(test_deterministic_and_seeded),
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
