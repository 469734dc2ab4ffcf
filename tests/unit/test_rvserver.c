/* SPDX-License-Identifier: MIT */
/* rvserver: which requester addresses a filter probe may be aimed at; the fd budget and fwd quota
 * (pure); on a live server: per-address caps, the message rate and per-round budget, members of a
 * session (boxes to all others, "full" past RV_MEMBERS_MAX, "gone" numbered), the forwarding quota,
 * the paired lifetime, and the listener paused (not spinning) when accept runs out of descriptors. */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/rendezvous/server.h"
#include "rv_server_fixture.h"

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

static void srv_start(struct srv *v, unsigned conns, unsigned sessions)
{
	struct rv_server_cfg cfg = { .max_conns_per_addr = conns, .max_sessions_per_addr = sessions };
	srv_start_cfg(v, cfg);
}

static int dial(const struct srv *v)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)&v->a, sizeof(v->a)), 0);
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

static void test_fd_budget(void **st)
{
	(void)st;
	unsigned c, p;
	rv_server_fd_budget(1024, 8256, &c, &p);   /* the old default max_conns above a 1024 limit */
	assert_int_equal(p, (1024 - RV_FD_RESERVE) / 8);
	assert_int_equal(c, 1024 - RV_FD_RESERVE - p);
	assert_true(c + p + RV_FD_RESERVE <= 1024);
	rv_server_fd_budget(1048576, 8256, &c, &p); /* plenty: the configured cap, 128 probes */
	assert_int_equal(c, 8256);
	assert_int_equal(p, 128);
	rv_server_fd_budget(64, 8256, &c, &p);
	assert_int_equal(c + p + RV_FD_RESERVE, 64);
	assert_int_equal(p, 6);
	rv_server_fd_budget(10, 8256, &c, &p);      /* below the reserve: one connection, no probe */
	assert_int_equal(c, 1);
	assert_int_equal(p, 0);
	rv_server_fd_budget(1024, 10, &c, &p);
	assert_int_equal(c, 10);
}

static void test_fwd_quota(void **st)
{
	(void)st;
	assert_true(rv_fwd_quota_ok(0, 0, 100, 2000, 262144));
	assert_true(rv_fwd_quota_ok(1999, 0, 1, 2000, 262144));
	assert_false(rv_fwd_quota_ok(2000, 0, 1, 2000, 262144));
	assert_true(rv_fwd_quota_ok(5, 262143, 1, 2000, 262144));
	assert_false(rv_fwd_quota_ok(5, 262143, 2, 2000, 262144));
	assert_false(rv_fwd_quota_ok(5, 262145, 0, 2000, 262144));
	assert_false(rv_fwd_quota_ok(0, 0, SIZE_MAX, 2000, 262144));
}

/* ---- frames in order from one connection */
struct rd {
	int fd;
	uint8_t b[65536];
	size_t n;
};

/* The next frame's body within ms (NUL-terminated in out); false on timeout or EOF. */
static bool next_body(struct rd *r, char *out, size_t cap, int ms)
{
	for (;;) {
		const uint8_t *body;
		size_t blen;
		long fl = rv_frame_scan(r->b, r->n, &body, &blen);
		if (fl > 0) {
			size_t m = blen < cap - 1 ? blen : cap - 1;
			memcpy(out, body, m);
			out[m] = 0;
			memmove(r->b, r->b + fl, r->n - (size_t)fl);
			r->n -= (size_t)fl;
			return true;
		}
		struct pollfd p = { r->fd, POLLIN, 0 };
		if (poll(&p, 1, ms) != 1)
			return false;
		ssize_t k = recv(r->fd, r->b + r->n, sizeof(r->b) - r->n, 0);
		if (k <= 0)
			return false;
		r->n += (size_t)k;
	}
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A client pipelining 58 "time" frames at once: the first msg_burst answered at once, the rest at
 * msg_per_s; meanwhile another client is answered without waiting behind them. */
static void test_rate_and_budget(void **st)
{
	(void)st;
	struct srv v;
	struct rv_server_cfg cfg = { .msg_burst = 8, .msg_per_s = 50 };
	static struct rd a, b;
	char r[256];
	srv_start_cfg(&v, cfg);
	a.fd = dial(&v);
	b.fd = dial(&v);
	a.n = b.n = 0;
	for (int i = 0; i < 58; i++)
		send_body(a.fd, "{\"t\":\"time\",\"t1\":1}");
	double t0 = mono_s(), t_burst = 0;
	usleep(50 * 1000);
	send_body(b.fd, "{\"t\":\"time\",\"t1\":2}");
	assert_true(next_body(&b, r, sizeof(r), 2000));
	double t_other = mono_s() - t0;
	assert_non_null(strstr(r, "\"t2\""));
	for (int i = 0; i < 58; i++) {
		assert_true(next_body(&a, r, sizeof(r), 3000));
		assert_non_null(strstr(r, "\"t2\""));
		if (i == 7)
			t_burst = mono_s() - t0;
	}
	double t_all = mono_s() - t0;
	print_message("burst of 8 in %.3f s, all 58 in %.3f s, the other client answered after %.3f s\n", t_burst,
		      t_all, t_other);
	assert_true(t_burst < 0.3);
	assert_true(t_all > 0.9 && t_all < 2.0);   /* 50 over the burst at 50/s: 1 s */
	assert_true(t_other < 0.3);
	struct rv_server_stats ss;
	rv_server_stats(v.s, &ss);
	assert_true(ss.throttled > 0);
	close(a.fd);
	close(b.fd);
	srv_stop(&v);
}

static void join_id(int fd, const char *id)
{
	char body[128];
	snprintf(body, sizeof(body), "{\"t\":\"join\",\"v\":1,\"id\":\"%s\"}", id);
	send_body(fd, body);
}

/* Up to RV_MEMBERS_MAX members: each one's box goes to all the others, numbered; the next one gets
 * "full"; a member leaving is "gone" with its number. */
static void test_members(void **st)
{
	(void)st;
	struct srv v;
	static struct rd m[RV_MEMBERS_MAX + 1];
	static const char id[] = "0123456789abcdef0123456789abcdef";
	char r[256];
	srv_start(&v, 0, 0);
	for (int i = 0; i <= RV_MEMBERS_MAX; i++) {
		m[i].fd = dial(&v);
		m[i].n = 0;
		join_id(m[i].fd, id);
		assert_true(next_body(&m[i], r, sizeof(r), 2000));
		if (i == 0)
			assert_non_null(strstr(r, "\"wait\""));
		else if (i < RV_MEMBERS_MAX)
			assert_non_null(strstr(r, "\"paired\""));
		else
			assert_non_null(strstr(r, "\"full\""));
	}
	/* the first hears of each newcomer: paired (2), paired m 3, paired m 4 */
	assert_true(next_body(&m[0], r, sizeof(r), 2000));
	assert_non_null(strstr(r, "\"paired\""));
	for (int k = 3; k <= RV_MEMBERS_MAX; k++) {
		char want[16];
		assert_true(next_body(&m[0], r, sizeof(r), 2000));
		snprintf(want, sizeof(want), "\"m\":%d", k);
		assert_non_null(strstr(r, "\"paired\""));
		assert_non_null(strstr(r, want));
	}
	for (int i = 1; i < RV_MEMBERS_MAX; i++)          /* drain the later members' newcomer notes */
		while (next_body(&m[i], r, sizeof(r), 200))
			;
	send_body(m[1].fd, "{\"t\":\"fwd\",\"box\":\"QUJD\"}");
	for (int i = 0; i < RV_MEMBERS_MAX; i++) {
		if (i == 1)
			continue;
		assert_true(next_body(&m[i], r, sizeof(r), 2000));
		assert_non_null(strstr(r, "\"box\":\"QUJD\""));
		assert_non_null(strstr(r, "\"m\":2"));
	}
	assert_false(next_body(&m[1], r, sizeof(r), 200));   /* not back to the sender */
	close(m[2].fd);                                      /* member 3 leaves */
	for (int i = 0; i < RV_MEMBERS_MAX; i++) {
		if (i == 2)
			continue;
		assert_true(next_body(&m[i], r, sizeof(r), 2000));
		assert_non_null(strstr(r, "\"gone\""));
		assert_non_null(strstr(r, "\"m\":3"));
	}
	for (int i = 0; i <= RV_MEMBERS_MAX; i++)
		if (i != 2)
			close(m[i].fd);
	srv_stop(&v);
}

/* The fwd quota: past fwd_max_msgs the sender gets "quota" and is closed, the others "gone". The
 * paired lifetime: members are let go paired_ttl_s after they met. */
static void test_quota_and_lifetime(void **st)
{
	(void)st;
	struct srv v;
	struct rv_server_cfg cfg = { .fwd_max_msgs = 3, .paired_ttl_s = 1 };
	static struct rd a, b, c, d;
	static const char id[] = "00000000000000000000000000000001", id2[] = "00000000000000000000000000000002";
	char r[256];
	srv_start_cfg(&v, cfg);
	a.fd = dial(&v), b.fd = dial(&v), c.fd = dial(&v), d.fd = dial(&v);
	a.n = b.n = c.n = d.n = 0;
	join_id(a.fd, id);
	join_id(b.fd, id);
	assert_true(next_body(&a, r, sizeof(r), 2000));    /* wait */
	assert_true(next_body(&a, r, sizeof(r), 2000));
	assert_non_null(strstr(r, "\"paired\""));
	assert_true(next_body(&b, r, sizeof(r), 2000));
	assert_non_null(strstr(r, "\"paired\""));
	for (int i = 0; i < 4; i++)
		send_body(a.fd, "{\"t\":\"fwd\",\"box\":\"QUJD\"}");
	for (int i = 0; i < 3; i++) {
		assert_true(next_body(&b, r, sizeof(r), 2000));
		assert_non_null(strstr(r, "\"fwd\""));
	}
	assert_true(next_body(&b, r, sizeof(r), 2000));
	assert_non_null(strstr(r, "\"gone\""));
	assert_true(next_body(&a, r, sizeof(r), 2000));
	assert_non_null(strstr(r, "\"quota\""));
	assert_false(next_body(&a, r, sizeof(r), 2000));   /* and closed */
	/* lifetime: c and d meet, and both are let go about a second later */
	join_id(c.fd, id2);
	join_id(d.fd, id2);
	double t0 = mono_s();
	assert_true(next_body(&c, r, sizeof(r), 2000));    /* wait */
	assert_true(next_body(&c, r, sizeof(r), 2000));    /* paired */
	assert_true(next_body(&d, r, sizeof(r), 2000));    /* paired */
	send_body(c.fd, "{\"t\":\"time\",\"t1\":1}");   /* activity does not extend it */
	assert_true(next_body(&c, r, sizeof(r), 2000));
	assert_true(next_body(&d, r, sizeof(r), 3000));
	if (strstr(r, "\"gone\""))
		assert_true(next_body(&d, r, sizeof(r), 3000));
	assert_non_null(strstr(r, "\"expired\""));
	double dt = mono_s() - t0;
	assert_true(next_body(&c, r, sizeof(r), 3000));
	if (strstr(r, "\"gone\""))
		assert_true(next_body(&c, r, sizeof(r), 3000));
	assert_non_null(strstr(r, "\"expired\""));
	print_message("paired members let go after %.2f s (paired_ttl 1 s)\n", dt);
	assert_true(dt > 0.9 && dt < 2.0);
	close(a.fd), close(b.fd), close(c.fd), close(d.fd);
	srv_stop(&v);
}

/* accept() out of descriptors: the listener pauses instead of spinning on its level-triggered
 * event, and the waiting client is served once a connection is freed. */
static void test_emfile_pause(void **st)
{
	(void)st;
	struct srv v;
	static struct rd a, b;
	char r[256];
	struct rlimit old, low;
	int spare[64], nspare = 0;
	srv_start(&v, 0, 0);
	a.fd = dial(&v);
	a.n = 0;
	send_body(a.fd, "{\"t\":\"time\",\"t1\":1}");
	assert_true(next_body(&a, r, sizeof(r), 2000));   /* a is accepted and served */
	b.fd = socket(AF_INET, SOCK_STREAM, 0);
	b.n = 0;
	assert_true(b.fd >= 0);
	/* no descriptor left below the limit: fill the holes, keep the last ones to free later */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)b.fd + 8;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	for (int fd; nspare < 64 && (fd = dup(b.fd)) >= 0;)
		spare[nspare++] = fd;
	assert_int_equal(connect(b.fd, (const struct sockaddr *)&v.a, sizeof(v.a)), 0);
	send_body(b.fd, "{\"t\":\"time\",\"t1\":2}");
	usleep(200 * 1000);                                 /* accept failed by now */
	clockid_t cid;
	struct timespec c0, c1;
	assert_int_equal(pthread_getcpuclockid(v.th, &cid), 0);
	clock_gettime(cid, &c0);
	double t0 = mono_s();
	assert_false(next_body(&b, r, sizeof(r), 800));     /* not served: nothing to accept it with */
	clock_gettime(cid, &c1);
	double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
	double wall = mono_s() - t0;
	struct rv_server_stats ss;
	rv_server_stats(v.s, &ss);
	print_message("out of descriptors: server CPU %.1f %% over %.2f s, %llu listener pauses\n",
		      100.0 * cpu / wall, wall, (unsigned long long)ss.listen_pauses);
	assert_true(ss.listen_pauses >= 1);
	assert_true(cpu < 0.1 * wall);
	/* a leaves: its descriptor is freed, the listener resumes at once, b is accepted and served */
	t0 = mono_s();
	close(a.fd);
	assert_true(next_body(&b, r, sizeof(r), 2000));
	assert_non_null(strstr(r, "\"t2\""));
	print_message("served %.3f s after a descriptor was freed\n", mono_s() - t0);
	assert_true(mono_s() - t0 < 0.9);                   /* sooner than the 1 s retry */
	for (int i = 0; i < nspare; i++)
		close(spare[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	close(b.fd);
	srv_stop(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_targets),
		cmocka_unit_test(test_fd_budget),
		cmocka_unit_test(test_fwd_quota),
		cmocka_unit_test(test_rate_and_budget),
		cmocka_unit_test(test_members),
		cmocka_unit_test(test_quota_and_lifetime),
		cmocka_unit_test(test_emfile_pause),
		cmocka_unit_test(test_per_addr_caps),
		cmocka_unit_test(test_probe_loopback_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
