/* SPDX-License-Identifier: MIT */
/* rvserver: which requester addresses a filter probe may be aimed at; per-address caps on a live server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/rendezvous/server.h"

static uint32_t ip(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void test_probe_targets(void **st)
{
	(void)st;
	static const char *never[] = { "127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "169.254.1.1",
					"224.0.0.1", "239.255.255.255", "240.0.0.1", "255.255.255.255" };
	static const char *priv[] = { "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "172.17.0.1",
				       "192.168.1.1", "100.64.0.1", "100.127.255.255" };
	static const char *pub[] = { "198.18.1.2", "198.19.255.1", "8.8.8.8", "172.15.255.255", "172.32.0.1",
				      "100.63.255.255", "100.128.0.1", "192.169.0.1", "169.253.1.1", "223.255.255.255",
				      "1.0.0.1", "128.0.0.1" };
	for (size_t i = 0; i < sizeof(never) / sizeof(*never); i++) {
		assert_int_equal(rv_probe_target_ok(ip(never[i]), 0), -EACCES);
		assert_int_equal(rv_probe_target_ok(ip(never[i]), 1), -EACCES);
	}
	for (size_t i = 0; i < sizeof(priv) / sizeof(*priv); i++) {
		assert_int_equal(rv_probe_target_ok(ip(priv[i]), 0), -EACCES);
		assert_int_equal(rv_probe_target_ok(ip(priv[i]), 1), 0);
	}
	for (size_t i = 0; i < sizeof(pub) / sizeof(*pub); i++) {
		assert_int_equal(rv_probe_target_ok(ip(pub[i]), 0), 0);
		assert_int_equal(rv_probe_target_ok(ip(pub[i]), 1), 0);
	}
}

/* ---- a live server on 127.0.0.1: every client shares one address */

struct srv {
	struct rv_server *s;
	volatile sig_atomic_t stop;
	pthread_t th;
	struct sockaddr_in addr;
};

static void *run(void *arg)
{
	struct srv *v = arg;
	rv_server_run(v->s, &v->stop);
	return NULL;
}

static void srv_start(struct srv *v, unsigned conns, unsigned sessions)
{
	struct rv_server_cfg cfg = { .max_conns_per_addr = conns, .max_sessions_per_addr = sessions };
	cfg.listen.sin_family = AF_INET;
	cfg.listen.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(rv_server_open(&cfg, &v->s), 0);
	rv_server_addr(v->s, &v->addr);
	v->stop = 0;
	assert_int_equal(pthread_create(&v->th, NULL, run, v), 0);
}

static void srv_stop(struct srv *v)
{
	v->stop = 1;
	pthread_join(v->th, NULL);
	rv_server_close(v->s);
}

static int dial(const struct srv *v)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)&v->addr, sizeof(v->addr)), 0);
	return fd;
}

static void send_body(int fd, const char *body)
{
	uint8_t b[256];
	size_t n = strlen(body);
	b[0] = 0, b[1] = 0, b[2] = (uint8_t)(n >> 8), b[3] = (uint8_t)n;
	memcpy(b + 4, body, n);
	assert_int_equal(send(fd, b, n + 4, MSG_NOSIGNAL), (ssize_t)(n + 4));
}

/* What comes back within 2 s: the first frame's body (NUL-terminated), "" on EOF/reset. */
static void recv_body(int fd, char *out, size_t cap)
{
	uint8_t b[512];
	size_t got = 0;
	out[0] = 0;
	while (got < sizeof(b)) {
		struct pollfd p = { fd, POLLIN, 0 };
		assert_true(poll(&p, 1, 2000) == 1);
		ssize_t n = recv(fd, b + got, sizeof(b) - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
		const uint8_t *body;
		size_t blen;
		long fl = rv_frame_scan(b, got, &body, &blen);
		if (fl > 0) {
			size_t m = blen < cap - 1 ? blen : cap - 1;
			memcpy(out, body, m);
			out[m] = 0;
			return;
		}
	}
}

static void join(int fd, int n, char *out, size_t cap)
{
	char body[128];
	snprintf(body, sizeof(body), "{\"t\":\"join\",\"v\":1,\"id\":\"%032x\"}", n);
	send_body(fd, body);
	recv_body(fd, out, cap);
}

static void test_per_addr_caps(void **st)
{
	(void)st;
	struct srv v;
	char r[256];
	int fd[6];
	srv_start(&v, 4, 2);
	for (int i = 0; i < 4; i++)
		fd[i] = dial(&v);
	join(fd[0], 1, r, sizeof(r));
	assert_non_null(strstr(r, "\"wait\""));
	join(fd[1], 2, r, sizeof(r));
	assert_non_null(strstr(r, "\"wait\""));
	join(fd[2], 3, r, sizeof(r));             /* a third session from the same address */
	assert_non_null(strstr(r, "\"busy\""));
	assert_non_null(strstr(r, "--max-per-addr"));
	join(fd[3], 1, r, sizeof(r));             /* joining an existing session is not a new one */
	assert_non_null(strstr(r, "\"paired\""));
	close(fd[2]);                             /* refused join: the server closes it; so do we */
	usleep(300 * 1000);
	fd[4] = dial(&v);                         /* 4 again: accepted and served */
	send_body(fd[4], "{\"t\":\"time\",\"t1\":1}");
	recv_body(fd[4], r, sizeof(r));
	assert_non_null(strstr(r, "\"t2\""));
	fd[5] = dial(&v);                         /* the 5th: accepted by the kernel, closed by the server */
	send_body(fd[5], "{\"t\":\"time\",\"t1\":1}");
	recv_body(fd[5], r, sizeof(r));
	assert_string_equal(r, "");
	close(fd[5]);
	/* a session's slot is freed with the session */
	close(fd[0]);
	close(fd[3]);
	usleep(300 * 1000);
	fd[0] = dial(&v);
	join(fd[0], 7, r, sizeof(r));
	assert_non_null(strstr(r, "\"wait\""));
	close(fd[0]);
	close(fd[1]);
	close(fd[4]);
	srv_stop(&v);
}

/* Loopback requesters are never probed (a proxy on the server host makes every client look so). */
static void test_probe_loopback_refused(void **st)
{
	(void)st;
	struct srv v;
	char r[256];
	srv_start(&v, 0, 0);
	int fd = dial(&v);
	send_body(fd, "{\"t\":\"fprobe\",\"port\":9}");
	recv_body(fd, r, sizeof(r));
	assert_non_null(strstr(r, "\"forbidden\""));
	/* the server's source port, if asked for, must be 1024..65535 (checked before anything else) */
	static const char *const bad_sport[] = { "{\"t\":\"fprobe\",\"port\":9,\"sport\":80}",
						 "{\"t\":\"fprobe\",\"port\":9,\"sport\":70000}",
						 "{\"t\":\"fprobe\",\"port\":9,\"sport\":\"7777\"}" };
	for (size_t i = 0; i < sizeof(bad_sport) / sizeof(bad_sport[0]); i++) {
		send_body(fd, bad_sport[i]);
		recv_body(fd, r, sizeof(r));
		assert_non_null(strstr(r, "\"bad-request\""));
	}
	send_body(fd, "{\"t\":\"fprobe\",\"port\":9,\"sport\":40000}");
	recv_body(fd, r, sizeof(r));
	assert_non_null(strstr(r, "\"forbidden\""));
	close(fd);
	struct rv_server_stats s;
	rv_server_stats(v.s, &s);
	assert_int_equal(s.probes, 0);
	srv_stop(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_targets),
		cmocka_unit_test(test_per_addr_caps),
		cmocka_unit_test(test_probe_loopback_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
