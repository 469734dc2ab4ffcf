/* SPDX-License-Identifier: MIT */
/* guard: the strict table-name pattern the stale sweep relies on (the sweep itself, the owner flag
 * and the RST drop are exercised in tests/lab/connect_guard.sh and connect_raw.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "rawpunch/net/guard.h"

static void test_parse_name(void **st)
{
	(void)st;
	long pid = -1;
	assert_true(rp_guard_parse_name("rawpunch_1", &pid));
	assert_int_equal(pid, 1);
	assert_true(rp_guard_parse_name("rawpunch_4194304", &pid));
	assert_int_equal(pid, 4194304);
	assert_true(rp_guard_parse_name("rawpunch_2147483647", &pid));
	assert_int_equal(pid, 2147483647L);
	assert_true(rp_guard_parse_name("rawpunch_77", NULL));
	pid = -1;
	assert_true(rp_guard_parse_name("rawpunch_4242_1", &pid));
	assert_int_equal(pid, 4242);
	assert_true(rp_guard_parse_name("rawpunch_4242_2147483647", &pid));

	static const char *no[] = {
		"", "rawpunch_", "rawpunch_0", "rawpunch_0123", "rawpunch_12a", "rawpunch_-5", "rawpunch_ 5",
		"rawpunch_2147483648", "rawpunch_12345678901", "Rawpunch_12", "rawpunchx_12", "xrawpunch_12",
		"rawpunch__12", "rawpunch_12 ", "rawpunch_+12", "natlab", "rawpunch_12_", "rawpunch_12_0",
		"rawpunch_12_01", "rawpunch_12_3_4", "rawpunch_12_x", "rawpunch_12-3", "rawpunch_12_2147483648", NULL,
	};
	for (int i = 0; no[i]; i++) {
		pid = -1;
		assert_false(rp_guard_parse_name(no[i], &pid));
		assert_int_equal(pid, -1);
	}
	assert_false(rp_guard_parse_name(NULL, &pid));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_name),
	};
	return cmocka_run_group_tests_name("guard", tests, NULL, NULL);
}
