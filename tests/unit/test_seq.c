/* SPDX-License-Identifier: MIT */
/* Sequence arithmetic mod 2^32 (userstack/seq.h), wraparound included. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "userstack/seq.h"

static void test_plain_order(void **state)
{
	(void)state;
	assert_true(seq_lt(1, 2));
	assert_false(seq_lt(2, 1));
	assert_false(seq_lt(5, 5));
	assert_true(seq_le(5, 5));
	assert_true(seq_gt(2, 1));
	assert_true(seq_ge(7, 7));
	assert_false(seq_gt(7, 7));
}

static void test_wraparound(void **state)
{
	(void)state;
	/* 0xfffffff0 is "before" 0x10 across the wrap */
	assert_true(seq_lt(0xfffffff0u, 0x10u));
	assert_true(seq_gt(0x10u, 0xfffffff0u));
	assert_true(seq_lt(0xffffffffu, 0u));
	assert_true(seq_le(0xffffffffu, 0u));
	assert_true(seq_ge(0u, 0xffffffffu));
	assert_int_equal(seq_max(0xfffffff0u, 0x10u), 0x10u);
	assert_int_equal(seq_min(0xfffffff0u, 0x10u), 0xfffffff0u);
	/* just under half the space is still "after" */
	assert_true(seq_gt(0x7fffffffu, 0u));
	assert_true(seq_lt(0x80000001u, 0u));
}

static void test_in_window(void **state)
{
	(void)state;
	assert_true(seq_in(100, 100, 200));
	assert_true(seq_in(199, 100, 200));
	assert_false(seq_in(200, 100, 200));
	assert_false(seq_in(99, 100, 200));
	/* window straddling the wrap */
	assert_true(seq_in(0xfffffffeu, 0xfffffff0u, 0x10u));
	assert_true(seq_in(0u, 0xfffffff0u, 0x10u));
	assert_true(seq_in(0xfu, 0xfffffff0u, 0x10u));
	assert_false(seq_in(0x10u, 0xfffffff0u, 0x10u));
	assert_false(seq_in(0xffffffefu, 0xfffffff0u, 0x10u));
	/* empty window holds nothing */
	assert_false(seq_in(5, 5, 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_order),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_in_window),
	};
	return cmocka_run_group_tests_name("seq", tests, NULL, NULL);
}
