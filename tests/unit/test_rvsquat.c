/* SPDX-License-Identifier: MIT */
/* rvsquat: the rendezvous client among intruders, with a real server in a thread on loopback. A squatter
 * that joined the id first and sends garbage boxes does not keep two peers from meeting (its boxes are
 * skipped and counted); a peer whose only company sends boxes that do not authenticate gets -EACCES at
 * its deadline, not before and not -ETIMEDOUT. */
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

#include "rawpunch/base/clock.h"
#include "rawpunch/rendezvous/client.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/rendezvous/server.h"
#include "rv_server_fixture.h"

static void send_body(int fd, const char *body)
{
	uint8_t b[512];
	size_t n = strlen(body);
	assert_int_equal(rv_frame_hdr(b, n), 0);
	memcpy(b + RV_HDR, body, n);
	assert_int_equal(send(fd, b, n + RV_HDR, MSG_NOSIGNAL), (ssize_t)(n + RV_HDR));
}

/* A squatter: joins id, then sends a garbage box every 50 ms while *stop is 0. */
struct squatter {
	struct sockaddr_in a;
	const char *id;
	volatile int stop;
	unsigned sent;
	pthread_t th;
};

static void *squat_main(void *arg)
{
	struct squatter *q = arg;
	char body[128];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&q->a, sizeof(q->a)))
		return NULL;
	snprintf(body, sizeof(body), "{\"t\":\"join\",\"v\":1,\"id\":\"%s\"}", q->id);
	send_body(fd, body);
	while (!q->stop) {
		uint8_t junk[4096];
		while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
		/* "unpaired" errors until someone comes: harmless */
		send_body(fd, "{\"t\":\"fwd\",\"box\":\"Z2FyYmFnZSBnYXJiYWdlIGdhcmJhZ2UgZ2FyYmFnZQ==\"}");
		q->sent++;
		usleep(50 * 1000);
	}
	close(fd);
	return NULL;
}

struct peer {
	struct sockaddr_in a;
	struct rv_keys k;
	int timeout_ms;
	int rc;
	uint64_t ms;
	struct rv_join_res res;
	pthread_t th;
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct rv_client *c;
	struct rv_join_req req = { .session = "x", .timeout_ms = p->timeout_ms, .clock_rounds = 4 };
	uint64_t t0 = rp_mono_ms();
	p->rc = rv_connect(&p->a, 2000, &c);
	if (p->rc)
		return NULL;
	p->rc = rv_join_keys(c, &p->k, &req, &p->res);
	p->ms = rp_mono_ms() - t0;
	rv_close(c);
	return NULL;
}

static void test_squatter_first(void **st)
{
	(void)st;
	struct srv v;
	static struct squatter q;
	static struct peer a, b;
	srv_start_cfg(&v, (struct rv_server_cfg){ 0 });
	assert_int_equal(rv_keys_derive((const uint8_t *)"squat-secret-0123456789", 23, "squat", &a.k), 0);
	b.k = a.k;
	q.a = a.a = b.a = v.a;
	q.id = a.k.id_hex;
	q.stop = 0;
	a.timeout_ms = b.timeout_ms = 5000;
	assert_int_equal(pthread_create(&q.th, NULL, squat_main, &q), 0);
	usleep(200 * 1000);
	assert_int_equal(pthread_create(&a.th, NULL, peer_main, &a), 0);
	usleep(500 * 1000);                 /* a sits with the squatter alone, its garbage coming */
	assert_int_equal(pthread_create(&b.th, NULL, peer_main, &b), 0);
	pthread_join(a.th, NULL);
	pthread_join(b.th, NULL);
	q.stop = 1;
	pthread_join(q.th, NULL);
	print_message("a: %d after %llu ms, %u bad boxes; b: %d, %u bad boxes; the squatter sent %u\n", a.rc,
		      (unsigned long long)a.ms, a.res.bad_boxes, b.rc, b.res.bad_boxes, q.sent);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_true(a.res.bad_boxes >= 3);
	assert_int_not_equal(a.res.initiator, b.res.initiator);
	assert_int_equal(a.res.start_server_ns, b.res.start_server_ns);
	srv_stop(&v);
}

static void test_only_forgeries_is_eacces_at_deadline(void **st)
{
	(void)st;
	struct srv v;
	static struct peer a, f;
	srv_start_cfg(&v, (struct rv_server_cfg){ 0 });
	assert_int_equal(rv_keys_derive((const uint8_t *)"squat-secret-0123456789", 23, "forge", &a.k), 0);
	f.k = a.k;
	memset(f.k.kbox, 0x5a, sizeof(f.k.kbox));   /* the id, not the key */
	a.a = f.a = v.a;
	a.timeout_ms = f.timeout_ms = 1500;
	assert_int_equal(pthread_create(&a.th, NULL, peer_main, &a), 0);
	usleep(100 * 1000);
	assert_int_equal(pthread_create(&f.th, NULL, peer_main, &f), 0);
	pthread_join(a.th, NULL);
	pthread_join(f.th, NULL);
	print_message("a: %d after %llu ms (timeout 1500), %u bad boxes\n", a.rc, (unsigned long long)a.ms,
		      a.res.bad_boxes);
	assert_int_equal(a.rc, -EACCES);
	assert_int_equal(f.rc, -EACCES);
	assert_true(a.ms >= 1400 && a.ms < 2500);
	srv_stop(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_squatter_first),
		cmocka_unit_test(test_only_forgeries_is_eacces_at_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
