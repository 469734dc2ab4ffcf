/* SPDX-License-Identifier: MIT */
/* netif: route lookup (loopback: no packet is sent), interface info, free-port picking. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/net/netif.h"

static void test_route_loopback(void **st)
{
	(void)st;
	struct rp_route r;
	uint32_t dst = htonl(0x7f000005);   /* 127.0.0.5: the local route via lo */
	assert_int_equal(rp_route_get(dst, &r), 0);
	assert_string_equal(r.ifname, "lo");
	assert_true(r.ifindex > 0);
	assert_int_equal(r.dst, dst);
	assert_int_equal(r.gateway, 0);
	assert_int_equal(r.nexthop, dst);
	assert_int_equal(ntohl(r.src) >> 24, 127);
	assert_true(r.mtu >= 1280);
	assert_int_equal(rp_route_get(0, &r), -EINVAL);
}

static void test_iface_info(void **st)
{
	(void)st;
	int idx = 0, mtu = 0;
	uint8_t mac[6] = { 1, 1, 1, 1, 1, 1 };
	assert_int_equal(rp_iface_info("lo", &idx, &mtu, mac), 0);
	assert_true(idx > 0);
	assert_true(mtu > 0);
	assert_int_equal(rp_iface_info("rp-no-such-if0", &idx, &mtu, mac), -ENODEV);
	assert_int_equal(rp_iface_info("an-interface-name-far-too-long", &idx, NULL, NULL), -EINVAL);
}

static void test_free_port(void **st)
{
	(void)st;
	uint16_t p = 0;
	uint32_t lo = htonl(0x7f000001);
	assert_int_equal(rp_free_port(lo, &p), 0);
	assert_true(p >= 1024);
	/* it really is free: we can bind it ourselves */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(p) };
	sin.sin_addr.s_addr = lo;
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(fd);
	assert_int_equal(rp_free_port(lo, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_loopback),
		cmocka_unit_test(test_iface_info),
		cmocka_unit_test(test_free_port),
	};
	return cmocka_run_group_tests_name("netif", tests, NULL, NULL);
}
