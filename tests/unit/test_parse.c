/* SPDX-License-Identifier: MIT */
/* parse: host:port (dotted quads, names, and numbers that are not dotted quads refused before any
 * lookup), numbers, port lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>

#include "rawpunch/base/parse.h"

static void test_hostport_quad(void **st)
{
	(void)st;
	struct sockaddr_in a;
	assert_int_equal(rp_parse_hostport("198.18.3.2:7777", 0, &a), 0);
	assert_int_equal(a.sin_addr.s_addr, inet_addr("198.18.3.2"));
	assert_int_equal(ntohs(a.sin_port), 7777);
	assert_int_equal(rp_parse_hostport("198.18.3.2", 3478, &a), 0);
	assert_int_equal(ntohs(a.sin_port), 3478);
	assert_int_equal(rp_parse_hostport("localhost:80", 0, &a), 0);   /* /etc/hosts: no packet */
	assert_int_equal(a.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
}

static void test_hostport_bad(void **st)
{
	(void)st;
	struct sockaddr_in a;
	/* inet_aton would take each of these (1.2.0.3, 192.168.1.1, 127.0.0.1, 8.0.0.1): refused before
	 * getaddrinfo() can read them so */
	static const char *const numeric[] = {
		"1.2.3:80", "3232235777:80", "0x7f.1:80", "010.0.0.1:80", "1.2.3.4.5:80", "300.1.1.1:80",
		"1.2.3.:80", "0x7f000001:80", "12:80",
	};
	for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
		int r = rp_parse_hostport(numeric[i], 0, &a);
		if (r != -EINVAL)
			fail_msg("%s: %d, want -EINVAL", numeric[i], r);
	}
	assert_int_equal(rp_parse_hostport("198.18.3.2:0", 0, &a), -EINVAL);
	assert_int_equal(rp_parse_hostport("198.18.3.2:65536", 0, &a), -EINVAL);
	assert_int_equal(rp_parse_hostport("198.18.3.2", 0, &a), -EINVAL);   /* the port is required */
	assert_int_equal(rp_parse_hostport(":80", 0, &a), -EINVAL);
}

static void test_ports(void **st)
{
	(void)st;
	uint16_t p[8];
	assert_int_equal(rp_parse_ports("80,443,7000-7002", p, 8), 5);
	assert_int_equal(p[4], 7002);
	assert_int_equal(rp_parse_ports("0", p, 8), -ERANGE);
	assert_int_equal(rp_parse_ports("5-2", p, 8), -ERANGE);
	assert_int_equal(rp_parse_ports("1-9", p, 8), -E2BIG);
	assert_int_equal(rp_parse_ports("80,", p, 8), 1);
	assert_int_equal(rp_parse_ports("x", p, 8), -EINVAL);
	unsigned long v;
	assert_int_equal(rp_parse_ulong("-1", 0, 10, &v), -EINVAL);
	assert_int_equal(rp_parse_ulong("11", 0, 10, &v), -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostport_quad),
		cmocka_unit_test(test_hostport_bad),
		cmocka_unit_test(test_ports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
