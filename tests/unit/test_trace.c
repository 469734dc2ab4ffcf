/* SPDX-License-Identifier: MIT */
/* trace helpers: flag letters, address text, the callback line (and its cut at RP_TRACE_LINE_MAX). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "rawpunch/base/trace.h"

static void test_flags(void **st)
{
	(void)st;
	char b[RP_TCP_FLAGS_STRLEN];
	assert_string_equal(rp_tcp_flags_str(0x12, b), "SA");
	assert_string_equal(rp_tcp_flags_str(0x02, b), "S");
	assert_string_equal(rp_tcp_flags_str(0x14, b), "RA");
	assert_string_equal(rp_tcp_flags_str(0x11, b), "FA");
	assert_string_equal(rp_tcp_flags_str(0, b), "");
	assert_string_equal(rp_tcp_flags_str(0xff, b), "FSRPAUEC");
}

static void test_ip(void **st)
{
	(void)st;
	char b[INET_ADDRSTRLEN];
	assert_string_equal(rp_ip_str(htonl(0xc6120102), b), "198.18.1.2");
	assert_string_equal(rp_ip_str(htonl(0xffffffff), b), "255.255.255.255");
	assert_string_equal(rp_ip_str(0, b), "0.0.0.0");
}

static char got[1024];
static int calls;
static void *got_arg;

static void sink(void *arg, const char *line)
{
	got_arg = arg;
	calls++;
	strncpy(got, line, sizeof(got) - 1);
}

static void test_trace(void **st)
{
	(void)st;
	int tag;
	char big[600];
	calls = 0;
	rp_trace(NULL, &tag, "nobody listens %d", 1);
	assert_int_equal(calls, 0);
	rp_trace(sink, &tag, "SYN %s:%u seq %u", "10.0.1.2", 40000u, 7u);
	assert_int_equal(calls, 1);
	assert_ptr_equal(got_arg, &tag);
	assert_string_equal(got, "SYN 10.0.1.2:40000 seq 7");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	rp_trace(sink, NULL, "%s", big);
	assert_int_equal(strlen(got), RP_TRACE_LINE_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_ip),
		cmocka_unit_test(test_trace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
