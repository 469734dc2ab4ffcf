/* SPDX-License-Identifier: MIT */
/* preflight.h on the loopback: servers that accept, refuse, or are mixed, tried at once (the first that
 * failed is named). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/preflight.h"

/* A listener on 127.0.0.1 (port 0: any): its fd, *port */
static int listener(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static struct sockaddr_in lo(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return sin;
}

static void test_reach(void **state)
{
	(void)state;
	uint16_t up, down;
	int fd = listener(&up), gone = listener(&down), err[3];
	close(gone);                                               /* a port nobody listens on: refused */
	struct sockaddr_in s[3] = { lo(up), lo(down), lo(up) };
	assert_int_equal(rp_preflight_reach(s, 1, 1000, err), -1);
	assert_int_equal(err[0], 0);
	assert_int_equal(rp_preflight_reach(s, 3, 1000, err), 1);  /* the first that failed */
	assert_int_equal(err[0], 0);
	assert_int_equal(err[1], -ECONNREFUSED);
	assert_int_equal(err[2], 0);
	assert_int_equal(rp_preflight_reach(s + 1, 2, 1000, err), 0);
	assert_int_equal(rp_preflight_reach(s, 3, 0, err), -EINVAL);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reach),
	};
	return cmocka_run_group_tests_name("preflight", tests, NULL, NULL);
}
