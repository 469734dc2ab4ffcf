/* SPDX-License-Identifier: MIT */
/* pace: the token bucket holds the asked rate over long simulated runs with irregular polling,
 * never grants more than the bucket depth after idling, and wait_ns is exact. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "rawpunch/net/pace.h"

#define S 1000000000ull

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Poll the bucket at random intervals (up to max_gap_ns) for `secs` simulated seconds, asking for
 * up to `want` each time; return what was granted. */
static uint64_t simulate(uint64_t rate, uint64_t depth, uint64_t secs, uint64_t max_gap_ns, uint64_t want)
{
	struct rp_pace p;
	uint64_t t = 5 * S, end = t + secs * S, got = 0;
	rp_pace_init(&p, rate, depth, t);
	while (t < end) {
		t += 1 + rnd() % max_gap_ns;
		if (t > end)
			t = end;
		got += rp_pace_take(&p, t, want);
	}
	return got;
}

static void test_long_run_rates(void **st)
{
	(void)st;
	static const uint64_t rates[] = { 1, 3, 7, 100, 2000, 12345, 100000, 1000000, 3000000 };
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		uint64_t r = rates[i], secs = r < 100 ? 100 : 10;
		uint64_t depth = rp_pace_default_depth(r);
		/* polled often enough that the bucket never overflows: granted == rate * time, minus
		 * at most the one token still accruing */
		uint64_t gap = depth * S / r / 2 + 1;
		uint64_t got = simulate(r, 0, secs, gap, 1000000);
		uint64_t exp = r * secs;
		assert_true(got <= exp);
		assert_true(exp - got <= 1);
	}
}

static void test_small_wants_keep_rate(void **st)
{
	(void)st;
	/* asking for one packet at a time, polled every <= 100 us, at 2000 pps for 60 s */
	uint64_t got = simulate(2000, 4, 60, 100000, 1);
	assert_true(got >= 2000 * 60 - 1 && got <= 2000 * 60);
}

static void test_burst_limit_after_idle(void **st)
{
	(void)st;
	struct rp_pace p;
	rp_pace_init(&p, 1000000, 32, 0);
	/* an hour idle still grants at most the depth */
	assert_int_equal(rp_pace_take(&p, 3600 * S, 1000000), 32);
	assert_int_equal(rp_pace_take(&p, 3600 * S, 1000000), 0);
	/* default depth: 5 ms of traffic, 1 .. 4096 */
	assert_int_equal(rp_pace_default_depth(1), 1);
	assert_int_equal(rp_pace_default_depth(2000), 10);
	assert_int_equal(rp_pace_default_depth(50000), 250);
	assert_int_equal(rp_pace_default_depth(10000000), 4096);
	/* a slow poller never gets more than depth per call */
	for (int k = 0; k < 1000; k++) {
		uint64_t g = rp_pace_take(&p, 3600 * S + (uint64_t)k * 1000000, 1000000);
		assert_true(g <= 32);
	}
}

static void test_wait_ns_exact(void **st)
{
	(void)st;
	struct rp_pace p;
	rp_pace_init(&p, 3, 1, 100);
	/* 1/3 s, rounded up */
	uint64_t w = rp_pace_wait_ns(&p, 100);
	assert_int_equal(w, 333333334);
	assert_int_equal(rp_pace_take(&p, 100 + w - 1, 1), 0);
	assert_int_equal(rp_pace_wait_ns(&p, 100 + w - 1), 1);
	assert_int_equal(rp_pace_take(&p, 100 + w, 1), 1);
	assert_true(rp_pace_wait_ns(&p, 100 + w) > 0);
	/* the first second holds exactly `rate` packets (bucket starts empty) */
	rp_pace_init(&p, 1000, 1000, 0);
	assert_int_equal(rp_pace_take(&p, S, 5000), 1000);
}

static void test_unpaced_and_clock_backwards(void **st)
{
	(void)st;
	struct rp_pace p;
	rp_pace_init(&p, 0, 0, 0);
	assert_int_equal(rp_pace_take(&p, 0, 12345), 12345);
	assert_int_equal(rp_pace_wait_ns(&p, 0), 0);

	rp_pace_init(&p, 1000, 10, 10 * S);
	assert_int_equal(rp_pace_take(&p, 10 * S + 5000000, 100), 5);
	/* the clock stepping back adds nothing, and the bucket does not re-credit the same interval */
	assert_int_equal(rp_pace_take(&p, 9 * S, 100), 0);
	assert_int_equal(rp_pace_take(&p, 10 * S + 5000000, 100), 0);
	assert_int_equal(rp_pace_take(&p, 10 * S + 6000000, 100), 1);
}

static void test_huge_rates_no_overflow(void **st)
{
	(void)st;
	struct rp_pace p;
	rp_pace_init(&p, UINT64_MAX / 2, 64, 0);
	assert_int_equal(rp_pace_take(&p, UINT64_MAX / 4, 1000), 64);
	rp_pace_init(&p, 1, 64, 0);
	assert_int_equal(rp_pace_take(&p, UINT64_MAX, 1000), 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_run_rates),
		cmocka_unit_test(test_small_wants_keep_rate),
		cmocka_unit_test(test_burst_limit_after_idle),
		cmocka_unit_test(test_wait_ns_exact),
		cmocka_unit_test(test_unpaced_and_clock_backwards),
		cmocka_unit_test(test_huge_rates_no_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
