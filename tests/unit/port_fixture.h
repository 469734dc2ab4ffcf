/* SPDX-License-Identifier: MIT */
/* For unit tests on the loopback: an address on 127.0.0.1, and a free local port held the way the
 * punch port is (bound with SO_REUSEADDR and SO_REUSEPORT, not listening), so that connections from
 * it can be made beside the hold. Header-only; include after <cmocka.h>. */
#ifndef RP_TEST_PORT_FIXTURE_H
#define RP_TEST_PORT_FIXTURE_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static inline struct sockaddr_in lo(uint16_t port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

/* the holding socket; *port its port */
static inline int hold_port(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in h = lo(0);
	socklen_t hl = sizeof(h);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&h, sizeof(h)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&h, &hl), 0);
	*port = ntohs(h.sin_port);
	return fd;
}

#endif
