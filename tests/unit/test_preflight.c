/* SPDX-License-Identifier: MIT */
/* preflight.h on the loopback: servers that accept, refuse, or are mixed, tried at once (the first that
 * failed is named); connections kept (from a held local port) only when all accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/port_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
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

/* Kept connections: handed out, up and from the asked local port, only when every server accepted;
 * nothing kept (every socket closed) when one did not. */
static void test_keep(void **state)
{
	(void)state;
	uint16_t up, down, lport;
	int fd = listener(&up), gone = listener(&down), err[2];
	close(gone);
	int hold = hold_port(&lport);   /* the way the punch port is held */

	struct rp_preflight_srv s[2] = { { .addr = lo(up), .keep = true }, { .addr = lo(up), .lport = lport, .keep = true } };
	assert_int_equal(rp_preflight_check(s, 2, 1000, 0, err), -1);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in peer, me;
		socklen_t pl = sizeof(peer), ml = sizeof(me);
		assert_true(s[i].fd >= 0);
		assert_true(s[i].ms >= 0);
		assert_true(s[i].t_start_ns > 0);
		assert_int_equal(getpeername(s[i].fd, (struct sockaddr *)&peer, &pl), 0);   /* connected */
		assert_int_equal(ntohs(peer.sin_port), up);
		assert_int_equal(getsockname(s[i].fd, (struct sockaddr *)&me, &ml), 0);
		if (i == 1)
			assert_int_equal(ntohs(me.sin_port), lport);
		close(s[i].fd);
	}
	/* the second refuses: the first's connection is not handed out */
	s[1] = (struct rp_preflight_srv){ .addr = lo(down), .keep = true };
	assert_int_equal(rp_preflight_check(s, 2, 1000, 0, err), 1);
	assert_int_equal(s[0].fd, -1);
	assert_int_equal(s[1].fd, -1);
	assert_int_equal(err[1], -ECONNREFUSED);
	close(hold);
	close(fd);
}

/* A SYN dropped (the server's accept queue is full at first) waits the kernel's 1 s retransmission;
 * the hedge's connection, sent after hedge_ms once there is room, answers for the server long before,
 * and is the one kept; a connection from a given port is not hedged. */
static int full_lfd;
static void *make_room(void *arg)
{
	(void)arg;
	poll(NULL, 0, 60);
	int fd = accept(full_lfd, NULL, NULL);   /* the queue's one connection out: room for one more */
	return (void *)(intptr_t)fd;
}

static uint64_t ms_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void test_hedge(void **state)
{
	(void)state;
	for (int hedged = 0; hedged < 3; hedged++) {   /* 0: no hedge, 1: hedged, 2: hedged but from a port */
		uint16_t lport = 0;
		int hold = -1;
		if (hedged == 2)
			hold = hold_port(&lport);
		uint16_t port;
		int err[1];
		full_lfd = listener(&port);
		assert_int_equal(listen(full_lfd, 0), 0);   /* a queue of one */
		struct sockaddr_in a = lo(port);
		int filler = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof(a)), 0);
		poll(NULL, 0, 20);                          /* the filler's handshake is through: the queue is full */
		pthread_t th;
		void *accepted;
		assert_int_equal(pthread_create(&th, NULL, make_room, NULL), 0);
		struct rp_preflight_srv s = { .addr = a, .lport = lport, .keep = true };
		uint64_t t0 = ms_now();
		assert_int_equal(rp_preflight_check(&s, 1, 3000, hedged ? 100 : 0, err), -1);
		uint64_t took = ms_now() - t0;
		pthread_join(th, &accepted);
		if (hedged == 1)
			assert_true(took < 600);                /* the hedge at 100 ms, not the retransmission */
		else
			assert_true(took >= 900);               /* the kernel's retransmission after 1 s (from a
			                                           given port: no hedge, its own is wanted) */
		assert_true(s.fd >= 0);
		if (hedged == 2) {
			struct sockaddr_in me;
			socklen_t ml = sizeof(me);
			assert_int_equal(getsockname(s.fd, (struct sockaddr *)&me, &ml), 0);
			assert_int_equal(ntohs(me.sin_port), lport);
			close(hold);
		}
		close(s.fd);
		close((int)(intptr_t)accepted);
		close(filler);
		close(full_lfd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reach),
		cmocka_unit_test(test_keep),
		cmocka_unit_test(test_hedge),
	};
	return cmocka_run_group_tests_name("preflight", tests, NULL, NULL);
}
