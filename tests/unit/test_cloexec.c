/* SPDX-License-Identifier: MIT */
/* The privileged sockets are close-on-exec: libpcap's packet socket (rp_cap_open) and libnet's raw
 * socket (rp_craft_open) are not by default, and a data mode's --exec command must not inherit a
 * socket that sees the host's traffic or sends raw packets. Needs root (CAP_NET_RAW), as make check
 * runs it; without it the opens fail and so does the test (never a silent pass). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"

static void test_capture_cloexec(void **st)
{
	(void)st;
	struct rp_cap *c = NULL;
	char err[256] = "";
	struct rp_cap_opts o = { .iface = "lo", .filter = "tcp and port 9" };
	int r = rp_cap_open(&o, &c, err, sizeof(err));
	if (r)
		fail_msg("rp_cap_open(lo): %d %s (the test needs root)", r, err);
	int fd = rp_cap_fd(c);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	rp_cap_close(c);
}

static void test_craft_cloexec(void **st)
{
	(void)st;
	struct rp_craft *c = NULL;
	char err[256] = "";
	int r = rp_craft_open(&c, 0, err, sizeof(err));
	if (r)
		fail_msg("rp_craft_open: %d %s (the test needs root)", r, err);
	int fd = rp_craft_fd(c);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	rp_craft_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capture_cloexec),
		cmocka_unit_test(test_craft_cloexec),
	};
	return cmocka_run_group_tests_name("cloexec", tests, NULL, NULL);
}
