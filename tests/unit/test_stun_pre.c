/* SPDX-License-Identifier: MIT */
/* stun.h's pre-connected slot on the loopback: the pre-flight's connection from the punch port to the
 * STUN server serves the first binding from that port (no second connection reaches the server, the
 * handshake's time is the pre-flight's), only for that port and server; an unused one is dropped. */
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
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/preflight.h"
#include "rawpunch/probe/stun.h"
#include "rawpunch/probe/stunmsg.h"

/* A STUN server on 127.0.0.1 that answers each connection's one Binding request, one connection after
 * the other, and counts them. */
struct srv {
	int lfd;
	uint16_t port;
	int accepted;
	pthread_t th;
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	for (;;) {
		struct sockaddr_in peer;
		socklen_t pl = sizeof(peer);
		int fd = accept(s->lfd, (struct sockaddr *)&peer, &pl);
		if (fd < 0)
			return NULL;   /* shut down */
		s->accepted++;
		uint8_t req[512], resp[128];
		size_t have = 0;
		long fl = 0;
		while ((fl = rp_stun_frame_len(req, have, sizeof(req))) <= 0 || (size_t)fl > have) {
			ssize_t n = recv(fd, req + have, sizeof(req) - have, 0);
			if (n <= 0 || fl < 0)
				break;
			have += (size_t)n;
		}
		struct rp_stun_msg m;
		if (fl > 0 && (size_t)fl <= have && rp_stun_parse(req, (size_t)fl, &m) == 0) {
			struct rp_stun_wr w;
			struct rp_stun_addr a = { .family = RP_STUN_AF_INET, .port = ntohs(peer.sin_port),
						  .v4 = peer.sin_addr.s_addr };
			rp_stun_wr_start(&w, resp, sizeof(resp), RP_STUN_BINDING_SUCCESS, m.txid);
			rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_MAPPED_ADDRESS, &a);
			int len = rp_stun_wr_end(&w);
			if (len > 0)
				(void)!send(fd, resp, (size_t)len, MSG_NOSIGNAL);
		}
		close(fd);
	}
}

static void srv_start(struct srv *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);
	memset(s, 0, sizeof(*s));
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->lfd, 8), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &sl), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->lfd);
}

/* the pre-flight's connection from lport to the server, handed to the slot */
static struct rp_preflight_srv preconnect(uint16_t srv_port, uint16_t lport)
{
	struct rp_preflight_srv pf = { .addr = lo(srv_port), .lport = lport, .keep = true };
	int err;
	assert_int_equal(rp_preflight_check(&pf, 1, 2000, 0, &err), -1);
	assert_true(pf.fd >= 0);
	assert_int_equal(rp_stun_preconnected(pf.fd, lport, &pf.addr, pf.t_start_ns, (uint64_t)(pf.ms * 1e6)), 0);
	return pf;
}

static void wait_accepted(struct srv *s, int n)
{
	for (int i = 0; i < 200 && s->accepted < n; i++)
		poll(NULL, 0, 5);
	assert_int_equal(s->accepted, n);
}

static void test_taken_once(void **state)
{
	(void)state;
	struct srv s;
	uint16_t lport;
	int hold = hold_port(&lport);
	srv_start(&s);
	struct rp_preflight_srv pf = preconnect(s.port, lport);
	wait_accepted(&s, 1);   /* the pre-flight's handshake */

	/* the first binding from that port to that server: over the pre-flight's connection */
	struct sockaddr_in to = lo(s.port);
	struct rp_stun_opts o = { .local_addr = htonl(INADDR_LOOPBACK), .local_port = lport, .timeout_ms = 2000 };
	struct rp_stun_result r;
	assert_int_equal(rp_stun_binding(&to, &o, &r), 0);
	assert_true(r.has_mapped);
	assert_int_equal(ntohs(r.mapped.sin_port), lport);
	assert_int_equal(ntohs(r.local.sin_port), lport);
	assert_int_equal(r.t_start_ns, pf.t_start_ns);                     /* the pre-flight's SYN */
	assert_int_equal(r.connect_ns, (uint64_t)(pf.ms * 1e6));
	poll(NULL, 0, 50);
	assert_int_equal(s.accepted, 1);                                   /* no second connection */

	/* the slot is empty now: the next one connects (from another port: the 4-tuple is in TIME_WAIT) */
	o.local_port = 0;
	assert_int_equal(rp_stun_binding(&to, &o, &r), 0);
	wait_accepted(&s, 2);
	srv_stop(&s);
	close(hold);
}

static void test_other_port_or_server(void **state)
{
	(void)state;
	struct srv s, s2;
	uint16_t lport, lport2;
	int hold = hold_port(&lport), hold2 = hold_port(&lport2);
	srv_start(&s);
	srv_start(&s2);
	(void)preconnect(s.port, lport);
	wait_accepted(&s, 1);
	struct rp_stun_result r;
	/* another server from the punch port, and the server from another port: connections of their own */
	struct sockaddr_in to2 = lo(s2.port), to = lo(s.port);
	struct rp_stun_opts o = { .local_port = lport, .timeout_ms = 2000 };
	assert_int_equal(rp_stun_binding(&to2, &o, &r), 0);
	wait_accepted(&s2, 1);
	/* dropped unused: closed (the server, which waits on it for a request, goes on) */
	rp_stun_preconnected_drop();
	o.local_port = lport2;
	assert_int_equal(rp_stun_binding(&to, &o, &r), 0);
	wait_accepted(&s, 2);
	o.local_port = lport;
	assert_int_equal(rp_stun_binding(&to, &o, &r), 0);                 /* a connection of its own */
	wait_accepted(&s, 3);
	/* bad input: the fd is closed, nothing kept */
	assert_int_equal(rp_stun_preconnected(-1, lport, &to, 0, 0), -EINVAL);
	assert_int_equal(rp_stun_preconnected(dup(hold), 0, &to, 0, 0), -EINVAL);
	srv_stop(&s);
	srv_stop(&s2);
	close(hold);
	close(hold2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taken_once),
		cmocka_unit_test(test_other_port_or_server),
	};
	return cmocka_run_group_tests_name("stun_pre", tests, NULL, NULL);
}
