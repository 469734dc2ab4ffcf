/* SPDX-License-Identifier: MIT */
/* Unit tests for capture/capture.c's argument checking and error reporting: what fails must fail
 * with -errno and a message, before any packet is captured. (Live capture is covered by the lab
 * test tests/lab/watch_basic.sh, in namespaces of its own.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "capture/capture.h"

static void bad_options(void **state)
{
	(void)state;
	struct rp_cap *c = (struct rp_cap *)&c;   /* must be reset to NULL on failure */
	char err[256] = "";
	struct rp_cap_opts o = { .snaplen = -1 };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	assert_true(strlen(err) > 0);
	o = (struct rp_cap_opts){ .buffer_bytes = -5 };
	assert_int_equal(rp_cap_open(&o, &c, NULL, 0), -EINVAL);
	o = (struct rp_cap_opts){ .dir = (enum rp_cap_dir)7 };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(rp_cap_open(&o, NULL, err, sizeof(err)), -EINVAL);
}

static void no_such_interface(void **state)
{
	(void)state;
	struct rp_cap *c = NULL;
	char err[256] = "";
	struct rp_cap_opts o = { .iface = "rpcap-nosuch0" };
	int r = rp_cap_open(&o, &c, err, sizeof(err));
	/* root: the interface does not exist; without CAP_NET_RAW: not allowed to look */
	assert_true(r == -ENODEV || r == -EPERM);
	assert_null(c);
	assert_non_null(strstr(err, "rpcap-nosuch0"));
}

static void null_handles(void **state)
{
	(void)state;
	struct rp_event ev;
	struct rp_cap_stats st;
	const uint8_t *f;
	size_t n;
	struct rp_flow fl = { 0 };
	assert_int_equal(rp_cap_set_filter(NULL, "tcp"), -EINVAL);
	assert_int_equal(rp_cap_set_flows(NULL, &fl, 1), -EINVAL);
	assert_int_equal(rp_cap_dump_open(NULL, "/tmp/x.pcap"), -EINVAL);
	assert_int_equal(rp_cap_fd(NULL), -EINVAL);
	assert_int_equal(rp_cap_wait(NULL, 0), -EINVAL);
	assert_int_equal(rp_cap_next(NULL, &ev), -EINVAL);
	assert_int_equal(rp_cap_next_raw(NULL, &f, &n, NULL, NULL), -EINVAL);
	assert_int_equal(rp_cap_stats(NULL, &st), -EINVAL);
	assert_int_equal(rp_cap_linktype(NULL), -EINVAL);
	assert_non_null(rp_cap_errmsg(NULL));
	rp_cap_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_options),
		cmocka_unit_test(no_such_interface),
		cmocka_unit_test(null_handles),
	};
	return cmocka_run_group_tests_name("capture_api", tests, NULL, NULL);
}
