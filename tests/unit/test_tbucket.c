/* SPDX-License-Identifier: MIT */
/* tbucket: the token bucket (burst, refill per minute, wait time, clock going back, long idle). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rawpunch/base/tbucket.h"

static void test_burst_then_rate(void **st)
{
	(void)st;
	struct rp_tbucket b;
	rp_tb_init(&b, 3, 1000);
	for (int i = 0; i < 3; i++)
		assert_true(rp_tb_take(&b, 3, 60, 1000));   /* the burst */
	assert_false(rp_tb_take(&b, 3, 60, 1000));
	assert_int_equal(rp_tb_wait_ms(&b, 3, 60, 1000), 1000);   /* 60 a minute: one a second */
	assert_int_equal(rp_tb_wait_ms(&b, 3, 60, 1400), 600);
	assert_false(rp_tb_take(&b, 3, 60, 1999));
	assert_true(rp_tb_take(&b, 3, 60, 2000));
	assert_false(rp_tb_take(&b, 3, 60, 2000));
	/* 20 a second (1200 a minute): a token every 50 ms */
	rp_tb_init(&b, 1, 0);
	assert_true(rp_tb_take(&b, 1, 1200, 0));
	assert_int_equal(rp_tb_wait_ms(&b, 1, 1200, 0), 50);
	assert_false(rp_tb_take(&b, 1, 1200, 49));
	assert_true(rp_tb_take(&b, 1, 1200, 50));
}

static void test_never_above_burst(void **st)
{
	(void)st;
	struct rp_tbucket b;
	rp_tb_init(&b, 2, 0);
	assert_true(rp_tb_take(&b, 2, 60, 0));
	/* a year idle: back to the burst, not more, and no overflow */
	uint64_t t = UINT64_C(365) * 86400 * 1000;
	for (int i = 0; i < 2; i++)
		assert_true(rp_tb_take(&b, 2, 4000000000u, t));
	assert_false(rp_tb_take(&b, 2, 4000000000u, t));
	assert_int_equal(rp_tb_wait_ms(&b, 2, 4000000000u, t), 1);
	rp_tb_init(&b, 5, 0);
	assert_int_equal(rp_tb_wait_ms(&b, 5, 1, UINT64_MAX), 0);
	assert_true(rp_tb_take(&b, 5, 1, UINT64_MAX));
}

static void test_clock_back_and_zero_rate(void **st)
{
	(void)st;
	struct rp_tbucket b;
	rp_tb_init(&b, 1, 5000);
	assert_true(rp_tb_take(&b, 1, 60, 5000));
	assert_false(rp_tb_take(&b, 1, 60, 3000));        /* earlier: adds nothing */
	assert_false(rp_tb_take(&b, 1, 60, 5999));        /* and did not move the origin back */
	assert_true(rp_tb_take(&b, 1, 60, 6000));
	rp_tb_init(&b, 1, 0);
	assert_true(rp_tb_take(&b, 1, 0, 0));
	assert_false(rp_tb_take(&b, 1, 0, UINT64_C(1) << 40));   /* no refill at all */
	assert_int_equal(rp_tb_wait_ms(&b, 1, 0, 0), UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_never_above_burst),
		cmocka_unit_test(test_clock_back_and_zero_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
