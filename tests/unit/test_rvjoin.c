/* SPDX-License-Identifier: MIT */
/* rvjoin: the join's round trips and its hellos. The server keeps each member's hello and hands it to a
 * newcomer right after "paired" (raw frames against a real server in a thread); two peers behind a
 * proxy that delays every byte by 150 ms each way meet in 2 round trips to the server, whether they
 * join together or one after the other (3 when the hello crossed only after the pairing), with a lead
 * sized from both sides' measured clock errors although the hellos precede the clock sync; a client
 * that answered a replayed hello after the real one addresses its info again to the peer whose info
 * came (the client over a socketpair, as tools/fuzz/fuzz_rvclient.c drives it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/rendezvous/client-internal.h"
#include "rawpunch/rendezvous/client.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/rendezvous/server.h"
#include "rv_server_fixture.h"

/* ---- raw frames ------------------------------------------------------------------------------------ */

static int raw_connect(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)a, sizeof(*a)), 0);
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void raw_send(int fd, const char *body)
{
	uint8_t b[RV_HDR + 4096];
	size_t n = strlen(body);
	assert_true(n <= 4096);
	assert_int_equal(rv_frame_hdr(b, n), 0);
	memcpy(b + RV_HDR, body, n);
	assert_int_equal(send(fd, b, n + RV_HDR, MSG_NOSIGNAL), (ssize_t)(n + RV_HDR));
}

static void read_full(int fd, uint8_t *b, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = recv(fd, b + off, n - off, 0);
		assert_true(r > 0);
		off += (size_t)r;
	}
}

/* The next frame's body as JSON (a new reference) with its type. */
static struct json_object *raw_recv(int fd, const char **type)
{
	uint8_t h[RV_HDR], body[RV_FRAME_MAX];
	const uint8_t *bp;
	size_t bl;
	struct json_object *o;
	read_full(fd, h, sizeof(h));
	size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	assert_true(n >= 1 && n <= RV_FRAME_MAX);
	uint8_t f[RV_HDR + RV_FRAME_MAX];
	memcpy(f, h, RV_HDR);
	read_full(fd, body, n);
	memcpy(f + RV_HDR, body, n);
	assert_int_equal(rv_frame_scan(f, RV_HDR + n, &bp, &bl), (long)(RV_HDR + n));
	assert_int_equal(rv_body_parse(bp, bl, &o, type), 0);
	return o;
}

/* Receive a frame of type want (fails on anything else); returns it (put it). */
static struct json_object *raw_expect(int fd, const char *want)
{
	const char *t;
	struct json_object *o = raw_recv(fd, &t);
	if (strcmp(t, want))
		fail_msg("expected \"%s\", got %s", want, json_object_to_json_string(o));
	return o;
}

static const char *str_of(struct json_object *o, const char *k)
{
	struct json_object *j;
	return json_object_object_get_ex(o, k, &j) && json_object_is_type(j, json_type_string) ? json_object_get_string(j)
											       : "";
}

static int64_t int_of(struct json_object *o, const char *k)
{
	struct json_object *j;
	return json_object_object_get_ex(o, k, &j) && json_object_is_type(j, json_type_int) ? json_object_get_int64(j) : -1;
}

static bool true_of(struct json_object *o, const char *k)
{
	struct json_object *j;
	return json_object_object_get_ex(o, k, &j) && json_object_is_type(j, json_type_boolean) &&
	       json_object_get_boolean(j);
}

/* Nothing more arrives within ms. */
static void raw_quiet(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, ms), 0);
}

#define ID "0123456789abcdef0123456789abcdef"
#define JOIN "{\"t\":\"join\",\"v\":1,\"id\":\"" ID "\"}"

static void test_server_keeps_hellos(void **st)
{
	(void)st;
	struct srv v;
	struct json_object *o;
	char big[RV_HELLO_BOX_MAX + 64];
	srv_start_cfg(&v, (struct rv_server_cfg){ 0 });
	/* a: alone, its hello is kept (no "unpaired"), and the answer says the server keeps hellos */
	int a = raw_connect(&v.a);
	raw_send(a, JOIN);
	raw_send(a, "{\"t\":\"fwd\",\"box\":\"QUFBQQ-old\",\"hello\":true}");
	raw_send(a, "{\"t\":\"fwd\",\"box\":\"QUFBQQ\",\"hello\":true}");   /* the latest replaces it */
	o = raw_expect(a, "wait");
	assert_true(true_of(o, "hello"));
	json_object_put(o);
	raw_quiet(a, 100);
	/* b comes: paired, then a's latest hello; a hears of b */
	int b = raw_connect(&v.a);
	raw_send(b, JOIN);
	o = raw_expect(b, "paired");
	assert_true(true_of(o, "hello"));
	json_object_put(o);
	o = raw_expect(b, "fwd");
	assert_string_equal(str_of(o, "box"), "QUFBQQ");
	assert_int_equal(int_of(o, "m"), 1);
	json_object_put(o);
	json_object_put(raw_expect(a, "paired"));
	/* b's hello after the pairing goes to a as any box does, and is kept too */
	raw_send(b, "{\"t\":\"fwd\",\"box\":\"QkJCQg\",\"hello\":true}");
	o = raw_expect(a, "fwd");
	assert_string_equal(str_of(o, "box"), "QkJCQg");
	json_object_put(o);
	/* a plain box is not kept; a hello box over RV_HELLO_BOX_MAX is refused */
	raw_send(a, "{\"t\":\"fwd\",\"box\":\"Q0NDQw\"}");
	json_object_put(raw_expect(b, "fwd"));
	memset(big, 'A', sizeof(big));
	memcpy(big, "{\"t\":\"fwd\",\"hello\":true,\"box\":\"", 31);
	memcpy(big + 31 + RV_HELLO_BOX_MAX + 1, "\"}", 3);
	raw_send(a, big);
	o = raw_expect(a, "error");
	assert_string_equal(str_of(o, "code"), "bad-request");
	json_object_put(o);
	/* c comes: both kept hellos (a's latest hello, not its plain box nor the refused one), in
	 * member order */
	int c = raw_connect(&v.a);
	raw_send(c, JOIN);
	json_object_put(raw_expect(c, "paired"));
	o = raw_expect(c, "fwd");
	assert_string_equal(str_of(o, "box"), "QUFBQQ");
	json_object_put(o);
	o = raw_expect(c, "fwd");
	assert_string_equal(str_of(o, "box"), "QkJCQg");
	assert_int_equal(int_of(o, "m"), 2);
	json_object_put(o);
	raw_quiet(c, 100);
	/* a leaves: its hello goes with it; d gets only b's */
	raw_send(a, "{\"t\":\"bye\"}");
	json_object_put(raw_expect(b, "paired"));   /* c's coming */
	json_object_put(raw_expect(b, "gone"));
	int d = raw_connect(&v.a);
	raw_send(d, JOIN);
	json_object_put(raw_expect(d, "paired"));
	o = raw_expect(d, "fwd");
	assert_string_equal(str_of(o, "box"), "QkJCQg");
	json_object_put(o);
	raw_quiet(d, 100);
	/* a hello before any join is still "unpaired" */
	int e = raw_connect(&v.a);
	raw_send(e, "{\"t\":\"fwd\",\"box\":\"RUVFRQ\",\"hello\":true}");
	o = raw_expect(e, "error");
	assert_string_equal(str_of(o, "code"), "unpaired");
	json_object_put(o);
	close(a);
	close(b);
	close(c);
	close(d);
	close(e);
	srv_stop(&v);   /* the kept hellos are freed (LeakSanitizer) */
}

/* ---- a proxy that delays every byte by DELAY_MS each way ------------------------------------------ */

#define DELAY_MS 150
#define RTT_MS (2 * DELAY_MS)
#define PAIRS 2
#define CHUNKS 256

struct chunk {
	uint64_t due;
	size_t n;
	uint8_t b[2048];
};

struct dir {          /* one direction of one proxied connection: from -> to */
	int from, to;
	struct chunk q[CHUNKS];
	unsigned head, tail;  /* q[head..tail) are queued */
	bool eof;
};

struct proxy {
	int lfd;
	struct sockaddr_in addr, target;
	volatile int stop;
	struct dir d[2 * PAIRS];
	unsigned n;           /* directions in use */
	pthread_t th;
};

static void *proxy_main(void *arg)
{
	struct proxy *p = arg;
	while (!p->stop) {
		struct pollfd pf[1 + 2 * PAIRS];
		uint64_t now = rp_mono_ms(), next = now + 20;
		pf[0] = (struct pollfd){ .fd = p->lfd, .events = p->n < 2 * PAIRS ? POLLIN : 0 };
		for (unsigned i = 0; i < p->n; i++) {
			struct dir *d = &p->d[i];
			while (d->head < d->tail && d->q[d->head % CHUNKS].due <= now) {
				struct chunk *ch = &d->q[d->head % CHUNKS];
				(void)!send(d->to, ch->b, ch->n, MSG_NOSIGNAL);   /* small: the socket takes it */
				d->head++;
			}
			if (d->head < d->tail && d->q[d->head % CHUNKS].due < next)
				next = d->q[d->head % CHUNKS].due;
			if (d->head == d->tail && d->eof)
				shutdown(d->to, SHUT_WR);
			bool room = d->tail - d->head < CHUNKS;
			pf[1 + i] = (struct pollfd){ .fd = d->eof ? -1 : d->from, .events = room ? POLLIN : 0 };
		}
		if (poll(pf, 1 + p->n, (int)(next - now)) <= 0)
			continue;
		if (pf[0].revents & POLLIN) {
			int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC), s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			int one = 1;
			if (c < 0 || s < 0 || connect(s, (struct sockaddr *)&p->target, sizeof(p->target)))
				abort();
			setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			p->d[p->n++] = (struct dir){ .from = c, .to = s };
			p->d[p->n++] = (struct dir){ .from = s, .to = c };
		}
		for (unsigned i = 0; i < p->n; i++) {
			struct dir *d = &p->d[i];
			if (d->eof || !(pf[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct chunk *ch = &d->q[d->tail % CHUNKS];
			ssize_t r = recv(d->from, ch->b, sizeof(ch->b), MSG_DONTWAIT);
			if (r > 0) {
				ch->n = (size_t)r;
				ch->due = rp_mono_ms() + DELAY_MS;
				d->tail++;
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				d->eof = true;
			}
		}
	}
	for (unsigned i = 0; i < p->n; i += 2) {
		close(p->d[i].from);
		close(p->d[i].to);
	}
	return NULL;
}

static void proxy_start(struct proxy *p, const struct sockaddr_in *target)
{
	socklen_t al = sizeof(p->addr);
	memset(p, 0, sizeof(*p));
	p->target = *target;
	p->addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&p->addr, sizeof(p->addr)), 0);
	assert_int_equal(listen(p->lfd, 8), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&p->addr, &al), 0);
	assert_int_equal(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void proxy_stop(struct proxy *p)
{
	p->stop = 1;
	pthread_join(p->th, NULL);
	close(p->lfd);
}

struct peer {
	struct rv_client *c;
	const struct rv_keys *k;
	int rc;
	uint64_t t0, t1;      /* the join's start and end, rp_mono_ms */
	struct rv_join_res res;
	pthread_t th;
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct rv_join_req req = { .session = "x", .timeout_ms = 5000, .clock_rounds = 4, .lead_auto = true };
	p->t0 = rp_mono_ms();
	p->rc = rv_join_keys(p->c, p->k, &req, &p->res);
	p->t1 = rp_mono_ms();
	return NULL;
}

/* a and b join through the delaying proxy, b stagger_ms after a; returns b's join time in ms (a's
 * counted from b's start must be the same but for the one-way jitter) */
static void meet_delayed(unsigned stagger_ms, uint64_t *a_ms, uint64_t *b_ms)
{
	struct srv v;
	struct proxy *p = calloc(1, sizeof(*p));
	static struct rv_keys k;
	struct peer a = { .k = &k }, b = { .k = &k };
	assert_non_null(p);
	assert_int_equal(rv_keys_derive((const uint8_t *)"join-secret-0123456789", 22, "join", &k), 0);
	srv_start_cfg(&v, (struct rv_server_cfg){ 0 });
	proxy_start(p, &v.a);
	assert_int_equal(rv_connect(&p->addr, 2000, &a.c), 0);
	assert_int_equal(rv_connect(&p->addr, 2000, &b.c), 0);
	assert_int_equal(pthread_create(&a.th, NULL, peer_main, &a), 0);
	usleep(stagger_ms * 1000);
	assert_int_equal(pthread_create(&b.th, NULL, peer_main, &b), 0);
	pthread_join(a.th, NULL);
	pthread_join(b.th, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_not_equal(a.res.initiator, b.res.initiator);
	assert_int_equal(a.res.start_server_ns, b.res.start_server_ns);
	/* the lead is sized from both sides' measured clock errors (the infos), not their hard bound */
	uint64_t setup = (uint64_t)RV_SETUP_MS * 1000000u;
	for (const struct peer *x = &a; x; x = x == &a ? &b : NULL) {
		assert_true((uint64_t)x->res.lead_ns >= rv_lead_auto_ns(x->res.rtt_ns, x->res.peer_rtt_ns, 0, 0, setup));
		assert_true((uint64_t)x->res.lead_ns < rv_lead_auto_ns(x->res.rtt_ns, x->res.peer_rtt_ns, -1, -1, setup));
	}
	*a_ms = a.t1 - b.t0;
	*b_ms = b.t1 - b.t0;
	print_message("stagger %u ms: a met %llu ms, b %llu ms after b's join began (RTT %d ms)\n", stagger_ms,
		      (unsigned long long)*a_ms, (unsigned long long)*b_ms, RTT_MS);
	rv_close(a.c);
	rv_close(b.c);
	proxy_stop(p);
	free(p);
	srv_stop(&v);
}

/* The later one's join: the clock samples, the join and the hello in one flight, the pairing with the
 * peer's kept hello back (1 RTT), the infos across (1 RTT). Before the hellos were kept: 3 RTTs. */
static void test_meet_in_two_round_trips(void **st)
{
	(void)st;
	static const unsigned stagger[] = { 0, 3 * RTT_MS / 2 };
	for (unsigned i = 0; i < sizeof(stagger) / sizeof(stagger[0]); i++) {
		uint64_t a_ms, b_ms;
		meet_delayed(stagger[i], &a_ms, &b_ms);
		assert_true(b_ms >= 3 * RTT_MS / 2 && b_ms < 5 * RTT_MS / 2);
		assert_true(a_ms < 5 * RTT_MS / 2);
	}
}

/* ---- a replayed hello after the real one ---------------------------------------------------------- */

static void frame_box(int fd, const struct rv_keys *k, struct json_object *msg, unsigned m)
{
	char *b64, body[4096];
	size_t n;
	const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &n);
	assert_int_equal(rv_box_seal(k, (const uint8_t *)s, n, &b64), 0);
	snprintf(body, sizeof(body), "{\"t\":\"fwd\",\"box\":\"%s\",\"m\":%u}", b64, m);
	free(b64);
	raw_send(fd, body);
	json_object_put(msg);
}

static void test_info_again_after_replayed_hello(void **st)
{
	(void)st;
	static struct rv_keys k;
	struct rv_peerstate real, old;
	int sv[2];
	assert_int_equal(rv_keys_derive((const uint8_t *)"join-secret-0123456789", 22, "replay", &k), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct rv_client *c = rv_client_adopt_(sv[1], &k);
	assert_non_null(c);
	rv_peerstate_init(&real);
	rv_peerstate_init(&old);   /* a hello of an earlier run, replayed by a member that kept it */
	/* the real peer's hello, then the replayed one (member order at the pairing), then the real
	 * peer's info, addressed to the client's nonce */
	frame_box(sv[0], &k, rv_msg_wrap(&real, "hello", NULL), 1);
	frame_box(sv[0], &k, rv_msg_wrap(&old, "hello", NULL), 2);
	memcpy(real.theirs, rv_client_nonce_(c), RV_NONCE_LEN);
	real.have_theirs = 1;
	struct rp_natinfo ni;
	memset(&ni, 0, sizeof(ni));
	struct json_object *info = json_tokener_parse("{\"cand\":[],\"offset\":0,\"rtt\":1000000,\"err\":100000}");
	assert_non_null(info);
	json_object_object_add(info, "natinfo", rp_natinfo_to_json(&ni));
	json_object_object_add(info, "start", json_object_new_int64((int64_t)rp_real_ns() + 1000000000));
	frame_box(sv[0], &k, rv_msg_wrap(&real, "info", info), 1);
	json_object_put(info);
	struct rv_join_req req = { .session = "replay" };
	struct rv_join_res res;
	memset(&res, 0, sizeof(res));
	assert_int_equal(rv_join_finish_(c, &req, &res, rp_mono_ms() + 2000), 0);
	/* what the client sent: its hello, then infos; the last must reach the real peer */
	struct timeval tv = { .tv_usec = 100000 };
	setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char last_to[2 * RV_NONCE_LEN + 1] = "", real_hex[2 * RV_NONCE_LEN + 1];
	unsigned infos = 0;
	sodium_bin2hex(real_hex, sizeof(real_hex), real.mine, RV_NONCE_LEN);
	for (;;) {
		struct pollfd p = { .fd = sv[0], .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			break;
		const char *t;
		uint8_t *pt;
		size_t pl;
		struct json_object *f = raw_recv(sv[0], &t), *m;
		assert_string_equal(t, "fwd");
		assert_int_equal(rv_box_open(&k, str_of(f, "box"), &pt, &pl), 0);
		json_object_put(f);
		assert_int_equal(rv_body_parse(pt, pl, &m, &t), 0);
		if (!strcmp(t, "info")) {
			infos++;
			snprintf(last_to, sizeof(last_to), "%s", str_of(m, "to"));
		}
		json_object_put(m);
		free(pt);
	}
	print_message("%u infos sent, the last to %.8s… (the real peer: %.8s…)\n", infos, last_to, real_hex);
	assert_true(infos >= 2);
	assert_string_equal(last_to, real_hex);
	rv_close(c);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_keeps_hellos),
		cmocka_unit_test(test_meet_in_two_round_trips),
		cmocka_unit_test(test_info_again_after_replayed_hello),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
