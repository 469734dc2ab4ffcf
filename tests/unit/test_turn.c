/* SPDX-License-Identifier: MIT */
/* TURN client (rawpunch/relay/turn.c): TURN REST credentials; messages captured from the lab's coturn
 * (their MESSAGE-INTEGRITY verifies under the key we derive, ours under coturn's); and the client's
 * flow against a scripted server on 127.0.0.1: the 401 challenge, a 438 stale nonce, an indication
 * during a transaction, Connect, ConnectionBind with the peer's bytes right behind the response,
 * release, a forged response, wrong credentials, a silent server, the keeper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "rawpunch/probe/stunmsg.h"
#include "rawpunch/relay/turn.h"

static void unhex(const char *h, uint8_t *out, size_t *n)
{
	size_t k = 0;
	for (; h[0] && h[1]; h += 2) {
		unsigned v;
		assert_int_equal(sscanf(h, "%2x", &v), 1);
		out[k++] = (uint8_t)v;
	}
	*n = k;
}

static void test_rest_cred(void **st)
{
	(void)st;
	struct rp_turn_cred c;
	const char *secret = "0123456789abcdef0123456789abcdef";
	assert_int_equal(rp_turn_rest_cred((const uint8_t *)secret, strlen(secret), 1700000000, "alice", &c), 0);
	assert_string_equal(c.username, "1700000000:alice");
	assert_string_equal(c.password, "syM0noiTOlQo3X9F1YXulwwxriE=");   /* base64(HMAC-SHA1), python3 */
	assert_int_equal(rp_turn_rest_cred((const uint8_t *)secret, strlen(secret), 1700000000, NULL, &c), 0);
	assert_string_equal(c.username, "1700000000");
	assert_int_equal(rp_turn_rest_cred((const uint8_t *)secret, strlen(secret), 1, "a:b", &c), -EINVAL);
	assert_int_equal(rp_turn_rest_cred((const uint8_t *)secret, 0, 1, "a", &c), -EINVAL);
}

/* Captured in natlab (coturn 4.6.1, --use-auth-secret, realm natlab) from a rawpunch relay --connect:
 * its authenticated Allocate and coturn's answers. The lab's secret then was SECRET; the username
 * was "1796098334:rawpunch". */
#define SECRET "59ffe4d5b77b204bd89825ff5cefbe7976a2e0008bf2784547fe60dd1abee7f0"
static const char *cap_401 = "011300342112a442f06ff669ba24cda11969f8f40009001000000401556e617574686f72697a65640015001064323264"
				"623338386631303563623534001400066e61746c61620000";
static const char *cap_alloc_req = "000300642112a442dc0506b0e5f55dcdfa2193f800190004060000008022000872617770756e63680006001331373936"
				"3039383333343a72617770756e636800001400066e61746c616200000015001064323264623338386631303563623534"
				"00080014500f8d60ab898f6e94788fdb21183a32cffefdaf";
static const char *cap_alloc_ok = "010300382112a442dc0506b0e5f55dcdfa2193f8001600080001f503e700a740002000080001e274e700a540000d0004"
				"0000025800080014433fbcc870910c36eb87f5d798922c1eb0afbb8b";
static const char *cap_connect_ok = "010a00202112a44295f4ea0315be776ce4071e71002a000498e8cd010008001424e14e087db382e3b74ba40416e3d99c"
				"d446590d";

static void test_coturn_capture(void **st)
{
	(void)st;
	uint8_t b[256], key[RP_STUN_LT_KEY_LEN];
	size_t n;
	struct rp_stun_msg m;
	struct rp_turn_cred c;
	char ip[INET_ADDRSTRLEN];
	assert_int_equal(rp_turn_rest_cred((const uint8_t *)SECRET, strlen(SECRET), 1796098334, "rawpunch", &c), 0);
	unhex(cap_401, b, &n);
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_int_equal(m.method, RP_STUN_METHOD_ALLOCATE);
	assert_int_equal(m.error_code, 401);
	assert_string_equal(m.realm, "natlab");
	assert_string_equal(m.nonce, "d22db388f105cb54");
	rp_stun_lt_key(c.username, strlen(c.username), m.realm, m.realm_len, c.password, strlen(c.password), key);
	/* our request, which coturn accepted */
	unhex(cap_alloc_req, b, &n);
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_string_equal(m.username, "1796098334:rawpunch");
	assert_int_equal(m.transport, RP_STUN_TRANSPORT_TCP);
	assert_int_equal(rp_stun_check_integrity(b, n, &m, key, sizeof(key)), 0);
	/* coturn's answers */
	unhex(cap_alloc_ok, b, &n);
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_int_equal(m.cls, RP_STUN_SUCCESS);
	assert_int_equal(rp_stun_check_integrity(b, n, &m, key, sizeof(key)), 0);
	assert_true(m.has_relayed);
	inet_ntop(AF_INET, &m.relayed.v4, ip, sizeof(ip));
	assert_string_equal(ip, "198.18.3.2");
	assert_int_equal(m.relayed.port, 54289);
	inet_ntop(AF_INET, &m.xor_mapped.v4, ip, sizeof(ip));
	assert_string_equal(ip, "198.18.1.2");
	assert_int_equal(m.lifetime, 600);
	assert_int_equal(m.n_unknown_required, 0);
	unhex(cap_connect_ok, b, &n);
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_int_equal(m.method, RP_STUN_METHOD_CONNECT);
	assert_int_equal(m.connection_id, 0x98e8cd01u);
	assert_int_equal(rp_stun_check_integrity(b, n, &m, key, sizeof(key)), 0);
	key[3] ^= 0x10;
	assert_int_equal(rp_stun_check_integrity(b, n, &m, key, sizeof(key)), -EACCES);
}

static void test_errors(void **st)
{
	(void)st;
	assert_int_equal(rp_turn_code_errno(RP_STUN_METHOD_ALLOCATE, 401), -EACCES);
	assert_int_equal(rp_turn_code_errno(RP_STUN_METHOD_CREATE_PERMISSION, 403), -EPERM);
	assert_int_equal(rp_turn_code_errno(RP_STUN_METHOD_CONNECT, 447), -ECONNREFUSED);
	assert_int_equal(rp_turn_code_errno(RP_STUN_METHOD_CONNECTION_BIND, 400), -ENOENT);
	assert_int_equal(rp_turn_code_errno(RP_STUN_METHOD_ALLOCATE, 400), -EINVAL);
	assert_int_equal(rp_turn_code_errno(RP_STUN_METHOD_ALLOCATE, 486), -EDQUOT);
	assert_int_equal(rp_turn_code_errno(RP_STUN_METHOD_ALLOCATE, 599), -EPROTO);
	assert_string_equal(rp_turn_method_name(RP_STUN_METHOD_CONNECTION_BIND), "ConnectionBind");
	struct rp_turn *t;
	struct rp_turn_cfg cfg = { 0 };
	assert_int_equal(rp_turn_new(&cfg, &t), -EINVAL);   /* no server, no credentials */
}

/* ---- a scripted server on 127.0.0.1 ---------------------------------------------------------------- */

#define USER "alice"
#define PASS "wonderland"
#define REALM "testrealm"

struct fake {
	int lfd;
	struct sockaddr_in addr;
	pthread_t th;
	void (*script)(struct fake *);
	int failed_line;                 /* 0: the script ran to its end */
	uint8_t key[RP_STUN_LT_KEY_LEN];
};

#define SRV_CHECK(f, cond) \
	do { if (!(cond)) { (f)->failed_line = __LINE__; return; } } while (0)

/* One whole message from fd within 3 s: its length, or -1. */
static int srv_read(int fd, uint8_t *b, struct rp_stun_msg *m)
{
	size_t have = 0, want = RP_STUN_HDR_LEN;
	while (have < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 3000) <= 0)
			return -1;
		ssize_t k = recv(fd, b + have, want - have, 0);
		if (k <= 0)
			return -1;
		have += (size_t)k;
		if (have == RP_STUN_HDR_LEN) {
			long fl = rp_stun_frame_len(b, have, 0);
			if (fl < 0)
				return -1;
			want = (size_t)fl;
		}
	}
	return rp_stun_parse(b, have, m) ? -1 : (int)have;
}

/* Whether a request carries our credentials with this nonce and a MESSAGE-INTEGRITY that verifies. */
static bool srv_authed(struct fake *f, const uint8_t *b, int n, const struct rp_stun_msg *m, const char *nonce)
{
	return m->has_username && !strcmp(m->username, USER) && m->has_realm && !strcmp(m->realm, REALM) &&
	       m->has_nonce && !strcmp(m->nonce, nonce) &&
	       rp_stun_check_integrity(b, (size_t)n, m, f->key, sizeof(f->key)) == 0;
}

struct reply {
	enum rp_stun_class cls;
	int code;                        /* error responses */
	const char *nonce;               /* NONCE and REALM (challenges) */
	bool relayed;                    /* XOR-RELAYED/MAPPED-ADDRESS */
	bool lifetime;
	uint32_t lifetime_s;
	bool id;
	uint32_t id_v;
	int sign;                        /* 0 none, 1 with the key, 2 with a wrong key */
};

static int srv_build(struct fake *f, const struct rp_stun_msg *req, const struct reply *r, uint8_t *b, size_t cap)
{
	struct rp_stun_wr w;
	rp_stun_wr_start(&w, b, cap, rp_stun_type(req->method, r->cls), req->txid);
	if (r->code) {
		uint8_t ec[4] = { 0, 0, (uint8_t)(r->code / 100), (uint8_t)(r->code % 100) };
		rp_stun_wr_attr(&w, RP_STUN_ATTR_ERROR_CODE, ec, 4);
	}
	if (r->nonce) {
		rp_stun_wr_attr(&w, RP_STUN_ATTR_NONCE, r->nonce, strlen(r->nonce));
		rp_stun_wr_attr(&w, RP_STUN_ATTR_REALM, REALM, strlen(REALM));
	}
	if (r->relayed) {
		struct rp_stun_addr a = { .family = RP_STUN_AF_INET, .port = 50000 };
		inet_pton(AF_INET, "198.18.3.2", &a.v4);
		rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_RELAYED_ADDRESS, &a);
		a.port = 40000;
		inet_pton(AF_INET, "198.18.1.2", &a.v4);
		rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_MAPPED_ADDRESS, &a);
	}
	if (r->lifetime)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_LIFETIME, r->lifetime_s);
	if (r->id)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_CONNECTION_ID, r->id_v);
	if (r->sign == 1)
		rp_stun_wr_integrity(&w, f->key, sizeof(f->key));
	else if (r->sign == 2)
		rp_stun_wr_integrity(&w, (const uint8_t *)"not the key", 11);
	return rp_stun_wr_end(&w);
}

static bool srv_send(struct fake *f, int fd, const struct rp_stun_msg *req, const struct reply *r)
{
	uint8_t b[512];
	int n = srv_build(f, req, r, b, sizeof(b));
	return n > 0 && send(fd, b, (size_t)n, MSG_NOSIGNAL) == n;
}

static void srv_attempt(int fd, uint32_t id)
{
	uint8_t b[128], txid[RP_STUN_TXID_LEN] = { 7 };
	struct rp_stun_wr w;
	struct rp_stun_addr a = { .family = RP_STUN_AF_INET, .port = 4000 };
	inet_pton(AF_INET, "198.18.3.9", &a.v4);
	rp_stun_wr_start(&w, b, sizeof(b), rp_stun_type(RP_STUN_METHOD_CONNECTION_ATTEMPT, RP_STUN_INDICATION), txid);
	rp_stun_wr_u32(&w, RP_STUN_ATTR_CONNECTION_ID, id);
	rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_PEER_ADDRESS, &a);
	int n = rp_stun_wr_end(&w);
	if (n > 0)
		(void)!send(fd, b, (size_t)n, MSG_NOSIGNAL);
}

/* No wait in these tests may hang: every socket gives up after 3 s. */
static void rcv_timeout(int fd)
{
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int srv_accept(struct fake *f)
{
	struct pollfd p = { .fd = f->lfd, .events = POLLIN };
	if (poll(&p, 1, 3000) <= 0)
		return -1;
	int c = accept(f->lfd, NULL, NULL);
	if (c >= 0)
		rcv_timeout(c);
	return c;
}

/* The 401 challenge, then an authenticated Allocate answered with a relayed address. */
static bool srv_allocate(struct fake *f, int c, int sign, int code)
{
	uint8_t b[RP_STUN_MAX_MSG];
	struct rp_stun_msg m;
	int n = srv_read(c, b, &m);
	if (n < 0 || m.method != RP_STUN_METHOD_ALLOCATE || !m.has_transport || m.transport != 6 || m.has_integrity)
		return false;
	struct reply ch = { .cls = RP_STUN_ERROR, .code = 401, .nonce = "n1" };
	if (!srv_send(f, c, &m, &ch))
		return false;
	n = srv_read(c, b, &m);
	if (n < 0 || m.method != RP_STUN_METHOD_ALLOCATE || !srv_authed(f, b, n, &m, "n1"))
		return false;
	struct reply ok = { .cls = RP_STUN_SUCCESS, .relayed = true, .lifetime = true, .lifetime_s = 600, .sign = sign };
	struct reply err = { .cls = RP_STUN_ERROR, .code = code, .nonce = "n1" };
	return srv_send(f, c, &m, code ? &err : &ok);
}

static void script_flow(struct fake *f)
{
	uint8_t b[RP_STUN_MAX_MSG];
	struct rp_stun_msg m;
	int n, c = srv_accept(f), d;
	SRV_CHECK(f, c >= 0);
	srv_attempt(c, 0x11223344);      /* an indication before the Allocate response: the client queues it */
	SRV_CHECK(f, srv_allocate(f, c, 1, 0));
	/* CreatePermission: the nonce went stale (438), then the same request with the new one */
	n = srv_read(c, b, &m);
	SRV_CHECK(f, n > 0 && m.method == RP_STUN_METHOD_CREATE_PERMISSION && m.has_peer && srv_authed(f, b, n, &m, "n1"));
	SRV_CHECK(f, srv_send(f, c, &m, &(struct reply){ .cls = RP_STUN_ERROR, .code = 438, .nonce = "n2" }));
	n = srv_read(c, b, &m);
	SRV_CHECK(f, n > 0 && m.method == RP_STUN_METHOD_CREATE_PERMISSION && srv_authed(f, b, n, &m, "n2"));
	SRV_CHECK(f, srv_send(f, c, &m, &(struct reply){ .cls = RP_STUN_SUCCESS, .sign = 1 }));
	/* Connect */
	n = srv_read(c, b, &m);
	SRV_CHECK(f, n > 0 && m.method == RP_STUN_METHOD_CONNECT && m.has_peer && m.peer.port == 50001 &&
			     srv_authed(f, b, n, &m, "n2"));
	SRV_CHECK(f, srv_send(f, c, &m, &(struct reply){ .cls = RP_STUN_SUCCESS, .id = true, .id_v = 0xcafe0001, .sign = 1 }));
	/* ConnectionBind on a new connection; the peer's bytes follow the response in the same segment */
	d = srv_accept(f);
	SRV_CHECK(f, d >= 0);
	n = srv_read(d, b, &m);
	SRV_CHECK(f, n > 0 && m.method == RP_STUN_METHOD_CONNECTION_BIND && m.has_connection_id &&
			     m.connection_id == 0xcafe0001 && srv_authed(f, b, n, &m, "n2"));
	uint8_t out[600];
	int k = srv_build(f, &m, &(struct reply){ .cls = RP_STUN_SUCCESS, .sign = 1 }, out, sizeof(out));
	SRV_CHECK(f, k > 0);
	memcpy(out + k, "peer bytes", 10);
	SRV_CHECK(f, send(d, out, (size_t)k + 10, MSG_NOSIGNAL) == k + 10);
	/* the client echoes them on the data connection: raw bytes, no STUN */
	char echo[10];
	SRV_CHECK(f, recv(d, echo, sizeof(echo), MSG_WAITALL) == 10 && !memcmp(echo, "peer bytes", 10));
	close(d);
	/* release */
	n = srv_read(c, b, &m);
	SRV_CHECK(f, n > 0 && m.method == RP_STUN_METHOD_REFRESH && m.has_lifetime && m.lifetime == 0 &&
			     srv_authed(f, b, n, &m, "n2"));
	SRV_CHECK(f, srv_send(f, c, &m, &(struct reply){ .cls = RP_STUN_SUCCESS, .lifetime = true, .sign = 1 }));
	SRV_CHECK(f, recv(c, b, 1, 0) == 0);   /* then the client closes */
	close(c);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	f->script(f);
	return NULL;
}

static void fake_start(struct fake *f, void (*script)(struct fake *))
{
	socklen_t sl = sizeof(f->addr);
	int one = 1;
	memset(f, 0, sizeof(*f));
	f->script = script;
	rp_stun_lt_key(USER, strlen(USER), REALM, strlen(REALM), PASS, strlen(PASS), f->key);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	f->addr.sin_family = AF_INET;
	f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&f->addr, sizeof(f->addr)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&f->addr, &sl), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_join(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
	if (f->failed_line)
		fail_msg("the scripted server's check at line %d failed", f->failed_line);
}

static struct rp_turn *client(struct fake *f, int timeout_ms, uint32_t refresh_s)
{
	static struct rp_turn_cred cred = { .username = USER, .password = PASS };
	struct rp_turn_cfg cfg = { .server = f->addr, .cred = &cred, .timeout_ms = timeout_ms, .refresh_s = refresh_s };
	struct rp_turn *t;
	assert_int_equal(rp_turn_new(&cfg, &t), 0);
	return t;
}

static void test_flow(void **st)
{
	(void)st;
	struct fake f;
	struct rp_turn_info in;
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(50001) }, from;
	char ip[INET_ADDRSTRLEN], got[10];
	uint32_t id;
	int fd;
	inet_pton(AF_INET, "198.18.3.2", &peer.sin_addr);
	fake_start(&f, script_flow);
	struct rp_turn *t = client(&f, 3000, 0);
	assert_int_equal(rp_turn_allocate(t), 0);
	rp_turn_get_info(t, &in);
	inet_ntop(AF_INET, &in.relayed.sin_addr, ip, sizeof(ip));
	assert_string_equal(ip, "198.18.3.2");
	assert_int_equal(ntohs(in.relayed.sin_port), 50000);
	assert_int_equal(ntohs(in.mapped.sin_port), 40000);
	assert_int_equal(in.lifetime_s, 600);
	assert_string_equal(in.realm, REALM);
	assert_int_equal(rp_turn_allocate(t), -EALREADY);
	/* the indication that came before the Allocate response was kept */
	assert_int_equal(rp_turn_wait_attempt(t, 0, &id, &from), 0);
	assert_int_equal(id, 0x11223344);
	assert_int_equal(ntohs(from.sin_port), 4000);
	assert_int_equal(rp_turn_permit(t, &peer), 0);   /* through a 438 */
	/* the bind's connection is dialled before the Connect, the bind takes it (a second predial keeps it) */
	assert_int_equal(rp_turn_predial(t), 0);
	assert_int_equal(rp_turn_predial(t), 0);
	assert_int_equal(rp_turn_connect(t, &peer, &id), 0);
	assert_int_equal(id, 0xcafe0001);
	assert_int_equal(rp_turn_bind(t, id, &fd), 0);
	rcv_timeout(fd);
	/* exactly the peer's bytes: the bind did not read past its response */
	assert_int_equal(recv(fd, got, sizeof(got), MSG_WAITALL), 10);
	assert_memory_equal(got, "peer bytes", 10);
	assert_int_equal(send(fd, got, sizeof(got), MSG_NOSIGNAL), 10);
	assert_int_equal(rp_turn_release(t), 0);
	assert_int_equal(rp_turn_refresh(t, 600), -ENOTCONN);   /* released: nothing asked */
	close(fd);
	rp_turn_close(t);
	fake_join(&f);
}

static void script_forged(struct fake *f)
{
	int c = srv_accept(f);
	SRV_CHECK(f, c >= 0);
	SRV_CHECK(f, srv_allocate(f, c, 2, 0));   /* a success signed with another key */
	uint8_t b[16];
	SRV_CHECK(f, recv(c, b, 1, 0) == 0);
	close(c);
}

static void script_unsigned(struct fake *f)
{
	int c = srv_accept(f);
	SRV_CHECK(f, c >= 0);
	SRV_CHECK(f, srv_allocate(f, c, 0, 0));   /* a success without MESSAGE-INTEGRITY */
	uint8_t b[16];
	SRV_CHECK(f, recv(c, b, 1, 0) == 0);
	close(c);
}

static void script_refused(struct fake *f)
{
	int c = srv_accept(f);
	SRV_CHECK(f, c >= 0);
	SRV_CHECK(f, srv_allocate(f, c, 0, 401));  /* the credentials are wrong */
	uint8_t b[16];
	SRV_CHECK(f, recv(c, b, 1, 0) == 0);
	close(c);
}

static void test_bad_answers(void **st)
{
	(void)st;
	struct fake f;
	struct rp_turn *t;
	fake_start(&f, script_forged);
	t = client(&f, 3000, 0);
	assert_int_equal(rp_turn_allocate(t), -EBADMSG);
	rp_turn_close(t);
	fake_join(&f);
	fake_start(&f, script_unsigned);
	t = client(&f, 3000, 0);
	assert_int_equal(rp_turn_allocate(t), -EBADMSG);
	rp_turn_close(t);
	fake_join(&f);
	fake_start(&f, script_refused);
	t = client(&f, 3000, 0);
	assert_int_equal(rp_turn_allocate(t), -EACCES);
	assert_int_equal(rp_turn_last_error(t)->code, 401);
	assert_int_equal(rp_turn_last_error(t)->method, RP_STUN_METHOD_ALLOCATE);
	rp_turn_close(t);
	fake_join(&f);
}

static void script_silent(struct fake *f)
{
	uint8_t b[RP_STUN_MAX_MSG];
	struct rp_stun_msg m;
	int c = srv_accept(f);
	SRV_CHECK(f, c >= 0);
	SRV_CHECK(f, srv_allocate(f, c, 1, 0));
	SRV_CHECK(f, srv_read(c, b, &m) > 0 && m.method == RP_STUN_METHOD_REFRESH);   /* and no answer */
	SRV_CHECK(f, recv(c, b, 1, 0) == 0);
	close(c);
}

static void test_timeout(void **st)
{
	(void)st;
	struct fake f;
	fake_start(&f, script_silent);
	struct rp_turn *t = client(&f, 300, 0);
	assert_int_equal(rp_turn_allocate(t), 0);
	assert_int_equal(rp_turn_refresh(t, 600), -ETIMEDOUT);
	rp_turn_close(t);
	fake_join(&f);
}

/* The keeper refreshes every second (refresh_s 1) and drops a ConnectionAttempt meanwhile. */
static void script_keeper(struct fake *f)
{
	uint8_t b[RP_STUN_MAX_MSG];
	struct rp_stun_msg m;
	int c = srv_accept(f), n, refreshes = 0;
	SRV_CHECK(f, c >= 0);
	SRV_CHECK(f, srv_allocate(f, c, 1, 0));
	srv_attempt(c, 0x55);
	while ((n = srv_read(c, b, &m)) > 0) {
		SRV_CHECK(f, m.method == RP_STUN_METHOD_REFRESH && srv_authed(f, b, n, &m, "n1") && m.lifetime == 600);
		SRV_CHECK(f, srv_send(f, c, &m, &(struct reply){ .cls = RP_STUN_SUCCESS, .lifetime = true,
								  .lifetime_s = 600, .sign = 1 }));
		refreshes++;
	}
	SRV_CHECK(f, refreshes >= 1);
	close(c);
}

static void script_hangup(struct fake *f)
{
	int c = srv_accept(f);
	SRV_CHECK(f, c >= 0);
	SRV_CHECK(f, srv_allocate(f, c, 1, 0));
	close(c);
}

static void test_keeper(void **st)
{
	(void)st;
	struct fake f;
	struct rp_turn_info in;
	fake_start(&f, script_keeper);
	struct rp_turn *t = client(&f, 3000, 1);
	assert_int_equal(rp_turn_allocate(t), 0);
	assert_int_equal(rp_turn_keeper_start(t), 0);
	assert_int_equal(rp_turn_keeper_start(t), -EALREADY);
	usleep(1300 * 1000);
	assert_int_equal(rp_turn_keeper_stop(t), 0);
	rp_turn_get_info(t, &in);
	assert_true(in.refreshes >= 1);
	rp_turn_close(t);
	fake_join(&f);
	/* the server goes away: the keeper says so */
	fake_start(&f, script_hangup);
	t = client(&f, 3000, 0);
	assert_int_equal(rp_turn_allocate(t), 0);
	assert_int_equal(rp_turn_keeper_start(t), 0);
	usleep(200 * 1000);
	assert_int_equal(rp_turn_keeper_stop(t), -ECONNRESET);
	rp_turn_close(t);
	fake_join(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rest_cred),
		cmocka_unit_test(test_coturn_capture),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_flow),
		cmocka_unit_test(test_bad_answers),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_keeper),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
