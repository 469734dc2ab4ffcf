/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "rawpunch/rendezvous/proto.h"

static const uint8_t SECRET[] = "0123456789abcdef0123456789abcdef";

static void test_frame_partial_and_whole(void **state)
{
	(void)state;
	const char body[] = "{\"t\":\"time\",\"t1\":5}";
	uint8_t buf[64];
	const uint8_t *b = NULL;
	size_t bl = 0, n = sizeof(body) - 1;
	assert_int_equal(rv_frame_hdr(buf, n), 0);
	memcpy(buf + 4, body, n);
	memcpy(buf + 4 + n, "\0\0", 2);       /* the start of a next frame */
	/* every prefix shorter than the frame asks for more */
	for (size_t i = 0; i < 4 + n; i++)
		assert_int_equal(rv_frame_scan(buf, i, &b, &bl), 0);
	assert_int_equal(rv_frame_scan(buf, 4 + n, &b, &bl), (long)(4 + n));
	assert_ptr_equal(b, buf + 4);
	assert_int_equal(bl, n);
	/* bytes after the frame are left for the next call */
	assert_int_equal(rv_frame_scan(buf, 4 + n + 2, &b, &bl), (long)(4 + n));
	struct json_object *o;
	const char *t;
	assert_int_equal(rv_body_parse(b, bl, &o, &t), 0);
	assert_string_equal(t, "time");
	json_object_put(o);
}

static void test_frame_oversize_and_zero(void **state)
{
	(void)state;
	uint8_t h[4];
	const uint8_t *b;
	size_t bl;
	assert_int_equal(rv_frame_hdr(h, RV_FRAME_MAX), 0);
	assert_int_equal(rv_frame_scan(h, 4, &b, &bl), 0);          /* legal length: wait for the body */
	assert_int_equal(rv_frame_hdr(h, RV_FRAME_MAX + 1), -EMSGSIZE);
	assert_int_equal(rv_frame_hdr(h, 0), -EMSGSIZE);
	uint8_t big[4] = { 0, 0, 0x40, 0x01 };                      /* 16385 */
	assert_int_equal(rv_frame_scan(big, 4, &b, &bl), -EMSGSIZE);
	uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
	assert_int_equal(rv_frame_scan(huge, 4, &b, &bl), -EMSGSIZE);
	uint8_t zero[4] = { 0 };
	assert_int_equal(rv_frame_scan(zero, 4, &b, &bl), -EMSGSIZE);
}

static void test_frame_json_roundtrip(void **state)
{
	(void)state;
	struct json_object *o = json_object_new_object(), *p;
	uint8_t *f;
	size_t n;
	const uint8_t *b;
	size_t bl;
	const char *t;
	json_object_object_add(o, "t", json_object_new_string("join"));
	json_object_object_add(o, "v", json_object_new_int(1));
	assert_int_equal(rv_frame_json(o, &f, &n), 0);
	assert_int_equal(rv_frame_scan(f, n, &b, &bl), (long)n);
	assert_int_equal(rv_body_parse(b, bl, &p, &t), 0);
	assert_string_equal(t, "join");
	json_object_put(p);
	free(f);
	/* too big a body is refused at framing time */
	char *s = malloc(RV_FRAME_MAX + 1);
	memset(s, 'x', RV_FRAME_MAX);
	s[RV_FRAME_MAX] = 0;
	json_object_object_add(o, "pad", json_object_new_string(s));
	assert_int_equal(rv_frame_json(o, &f, &n), -EMSGSIZE);
	free(s);
	json_object_put(o);
}

static void test_body_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "[]", "{}", "{\"t\":1}", "{\"t\":\"\"}", "{\"t\":\"join\"} x", "{\"t\":\"join\"",
		"{\"t\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "{\"t\":\"a\",\"x\":[[[[[[[[[[[[1]]]]]]]]]]]]}",
		"{'t':'a'}", "{\"t\":\"\xff\xfe\"}", "nul",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *o = NULL;
		const char *t;
		size_t len = strlen(bad[i]);
		assert_int_equal(rv_body_parse((const uint8_t *)bad[i], len, &o, &t), -EBADMSG);
	}
	/* an embedded NUL is refused too */
	const uint8_t withnul[] = "{\"t\":\"a\"}\0";
	struct json_object *o;
	const char *t;
	assert_int_equal(rv_body_parse(withnul, sizeof(withnul) - 1, &o, &t), -EBADMSG);
}

static void test_keys(void **state)
{
	(void)state;
	struct rv_keys a, b, c, d;
	assert_int_equal(rv_keys_derive(SECRET, 32, "meet", &a), 0);
	assert_int_equal(rv_keys_derive(SECRET, 32, "meet", &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));                    /* deterministic */
	assert_int_equal(strlen(a.id_hex), 32);
	assert_int_equal(rv_id_hex_valid(a.id_hex), 0);
	assert_int_equal(rv_keys_derive(SECRET, 31, "meet", &c), 0);   /* another secret */
	assert_memory_not_equal(a.id, c.id, RV_ID_LEN);
	assert_memory_not_equal(a.kbox, c.kbox, RV_KEY_LEN);
	assert_int_equal(rv_keys_derive(SECRET, 32, "meet2", &d), 0);  /* another session */
	assert_memory_not_equal(a.id, d.id, RV_ID_LEN);
	assert_memory_not_equal(a.kbox, d.kbox, RV_KEY_LEN);
	/* the id the server sees is not the box key, nor the punch key */
	assert_memory_not_equal(a.id, a.kbox, RV_ID_LEN);
	assert_memory_not_equal(a.kpunch, a.kbox, sizeof(a.kpunch));
	assert_memory_not_equal(a.kpunch, d.kpunch, sizeof(a.kpunch));
	/* the id is Argon2id-stretched: not the v1 keyed BLAKE2b of the secret */
	uint8_t v1[RV_ID_LEN], m1[32];
	crypto_generichash_state st;
	crypto_generichash_init(&st, SECRET, 32, sizeof(m1));
	crypto_generichash_update(&st, (const uint8_t *)"rawpunch-rv-v1", 15);
	crypto_generichash_update(&st, (const uint8_t *)"meet", 4);
	crypto_generichash_final(&st, m1, sizeof(m1));
	crypto_generichash(v1, sizeof(v1), (const uint8_t *)"id", 2, m1, sizeof(m1));
	assert_memory_not_equal(a.id, v1, RV_ID_LEN);
	/* long secrets are fine; empty secret or bad names are not */
	uint8_t longsec[300];
	memset(longsec, 7, sizeof(longsec));
	assert_int_equal(rv_keys_derive(longsec, sizeof(longsec), "s", &c), 0);
	assert_int_equal(rv_keys_derive(SECRET, 0, "meet", &c), -EINVAL);
	assert_int_equal(rv_keys_derive(SECRET, 32, "", &c), -EINVAL);
	char name[300];
	memset(name, 'n', sizeof(name));
	name[299] = 0;
	assert_int_equal(rv_keys_derive(SECRET, 32, name, &c), -EINVAL);
	assert_int_equal(rv_id_hex_valid("0123456789ABCDEF0123456789abcdef"), -EINVAL);
	assert_int_equal(rv_id_hex_valid("0123456789abcdef0123456789abcde"), -EINVAL);
	rv_keys_wipe(&a);
	uint8_t zero[sizeof(a)] = { 0 };
	assert_memory_equal(&a, zero, sizeof(a));
}

static void test_secret_bits(void **state)
{
	(void)state;
	const char *b64 = "q3Jm0v5T8x+P1kz9Yc2LwQe7Rb4Ng6Hs0Ut1Ia8Dj5Ko=";   /* 32 random bytes, base64 */
	uint8_t raw[32];
	randombytes_buf(raw, sizeof(raw));
	assert_true(rv_secret_bits((const uint8_t *)b64, strlen(b64)) >= 200);
	assert_true(rv_secret_bits(raw, sizeof(raw)) >= RV_SECRET_BITS);
	assert_true(rv_secret_bits((const uint8_t *)"password12345678", 16) < RV_SECRET_BITS);
	assert_true(rv_secret_bits((const uint8_t *)"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 36) == 0);
	assert_true(rv_secret_bits((const uint8_t *)"abababababababababababababababab", 32) < RV_SECRET_BITS);
	/* four common words: long, but a dictionary attack needs far fewer than 2^96 guesses */
	assert_true(rv_secret_bits((const uint8_t *)"correct horse battery staple", 28) < RV_SECRET_BITS);
	assert_true(rv_secret_bits((const uint8_t *)"Tr0ub4dor&3Tr0ub4dor&3", 22) < RV_SECRET_BITS);
	const char *hex = "26f7984ae63c890493da36a54a3e9407";             /* 16 random bytes, hex */
	assert_true(rv_secret_bits((const uint8_t *)hex, strlen(hex)) >= RV_SECRET_BITS);
	assert_int_equal(rv_secret_bits(NULL, 3), 0);
}

static void test_box(void **state)
{
	(void)state;
	struct rv_keys k, other, sess2;
	char *b64, *b64b;
	uint8_t *pt;
	size_t pl;
	const char msg[] = "{\"t\":\"info\"}";
	rv_keys_derive(SECRET, 32, "meet", &k);
	rv_keys_derive((const uint8_t *)"another secret", 14, "meet", &other);
	rv_keys_derive(SECRET, 32, "meet-b", &sess2);
	assert_int_equal(rv_box_seal(&k, (const uint8_t *)msg, sizeof(msg) - 1, &b64), 0);
	assert_int_equal(rv_box_seal(&k, (const uint8_t *)msg, sizeof(msg) - 1, &b64b), 0);
	assert_string_not_equal(b64, b64b);                       /* random nonces */
	assert_null(strstr(b64, "info"));
	assert_int_equal(rv_box_open(&k, b64, &pt, &pl), 0);
	assert_int_equal(pl, sizeof(msg) - 1);
	assert_memory_equal(pt, msg, pl);
	free(pt);
	assert_int_equal(rv_box_open(&other, b64, &pt, &pl), -EBADMSG);   /* wrong secret */
	/* same kbox but another session id would fail too: the id is additional data */
	memcpy(sess2.kbox, k.kbox, RV_KEY_LEN);
	assert_int_equal(rv_box_open(&sess2, b64, &pt, &pl), -EBADMSG);
	/* any flipped character breaks it */
	for (size_t i = 0; b64[i]; i += 3) {
		char save = b64[i];
		b64[i] = save == 'A' ? 'B' : 'A';
		assert_int_not_equal(rv_box_open(&k, b64, &pt, &pl), 0);
		b64[i] = save;
	}
	assert_int_equal(rv_box_open(&k, "", &pt, &pl), -EBADMSG);
	assert_int_equal(rv_box_open(&k, "!!!!", &pt, &pl), -EBADMSG);
	assert_int_equal(rv_box_open(&k, "AAAA", &pt, &pl), -EBADMSG);
	uint8_t *big = calloc(1, RV_BOX_MAX + 1);
	char *bb;
	assert_int_equal(rv_box_seal(&k, big, RV_BOX_MAX + 1, &bb), -EMSGSIZE);
	assert_int_equal(rv_box_seal(&k, big, RV_BOX_MAX, &bb), 0);
	assert_true(strlen(bb) + 32 < RV_FRAME_MAX);              /* a full box still fits a frame */
	free(bb);
	free(big);
	free(b64);
	free(b64b);
}

/* serialise a wrapped message the way the client does */
static char *wrap_str(struct rv_peerstate *ps, const char *type)
{
	struct json_object *o = rv_msg_wrap(ps, type, NULL);
	assert_non_null(o);
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static int check_str(struct rv_peerstate *ps, const char *s, const char **type_copy)
{
	struct json_object *o;
	const char *t;
	int r = rv_msg_check(ps, (const uint8_t *)s, strlen(s), &o, &t);
	if (r == 0) {
		if (type_copy)
			*type_copy = strcmp(t, "hello") ? "other" : "hello";
		json_object_put(o);
	}
	return r;
}

/* A server replays an old run's hello before the real peer's: the real hello supersedes it, the info a
 * addressed to the old nonce is refused by b (and skipped by the client), the re-addressed info is
 * accepted, and once a box addressed to a's nonce pins b, neither old hello nor another sender gets in. */
static void test_msg_replayed_hello(void **state)
{
	(void)state;
	struct rv_peerstate old, a, b;
	const char *t;
	rv_peerstate_init(&old);                 /* the peer of an earlier run */
	char *h_old = wrap_str(&old, "hello");
	rv_peerstate_init(&a);
	rv_peerstate_init(&b);
	char *ha = wrap_str(&a, "hello"), *hb = wrap_str(&b, "hello");
	assert_int_equal(check_str(&a, h_old, &t), 0);     /* replayed first: names "old" for now */
	assert_string_equal(t, "hello");
	assert_memory_equal(a.theirs, old.mine, RV_NONCE_LEN);
	assert_false(a.pinned);
	char *ia_old = wrap_str(&a, "info");               /* a answers the replay: to old */
	assert_int_equal(check_str(&a, hb, &t), 0);        /* the real hello supersedes it */
	assert_string_equal(t, "hello");
	assert_memory_equal(a.theirs, b.mine, RV_NONCE_LEN);
	assert_int_equal(check_str(&b, ha, NULL), 0);
	char *ib = wrap_str(&b, "info");
	assert_int_equal(check_str(&b, ia_old, NULL), -EPERM);   /* for another run: refused, no harm */
	assert_memory_equal(b.theirs, a.mine, RV_NONCE_LEN);
	char *ia = wrap_str(&a, "info");                   /* re-addressed to b */
	assert_int_equal(check_str(&b, ia, &t), 0);
	assert_string_equal(t, "other");
	assert_int_equal(check_str(&a, ib, &t), 0);        /* to == a's nonce: pins b */
	assert_true(a.pinned);
	/* after pinning: the old hello again, b's hello again, the old run's peer: all refused */
	assert_int_equal(check_str(&a, h_old, NULL), -EPERM);
	assert_int_equal(check_str(&a, hb, NULL), -EALREADY);
	assert_memory_equal(a.theirs, b.mine, RV_NONCE_LEN);
	/* a newer hello does not override a pinned peer even with a fresh counter */
	struct rv_peerstate imp;
	rv_peerstate_init(&imp);
	imp.send_ctr = 100;
	char *h_imp = wrap_str(&imp, "hello");
	assert_int_equal(check_str(&a, h_imp, NULL), -EPERM);
	free(h_old);
	free(ha);
	free(hb);
	free(ia_old);
	free(ia);
	free(ib);
	free(h_imp);
}

static void test_msg_replay_reflection(void **state)
{
	(void)state;
	struct rv_peerstate a, b, c;
	const char *t;
	rv_peerstate_init(&a);
	rv_peerstate_init(&b);
	rv_peerstate_init(&c);
	assert_memory_not_equal(a.mine, b.mine, RV_NONCE_LEN);
	char *ha = wrap_str(&a, "hello"), *hb = wrap_str(&b, "hello");
	/* reflection: a's own hello back to a */
	assert_int_equal(check_str(&a, ha, NULL), -EPERM);
	assert_int_equal(check_str(&a, hb, &t), 0);
	assert_string_equal(t, "hello");
	assert_int_equal(check_str(&b, ha, NULL), 0);
	/* replay of the same hello */
	assert_int_equal(check_str(&a, hb, NULL), -EALREADY);
	char *ia = wrap_str(&a, "info");
	assert_non_null(strstr(ia, "\"ctr\":2"));
	assert_int_equal(check_str(&b, ia, &t), 0);
	assert_string_equal(t, "other");
	assert_int_equal(check_str(&b, ia, NULL), -EALREADY);    /* replay */
	/* a message addressed to b, shown to c (another run): wrong recipient */
	assert_int_equal(check_str(&c, ia, NULL), -EPERM);
	/* a non-hello without a recipient is refused */
	struct rv_peerstate fresh;
	rv_peerstate_init(&fresh);
	char *noto = wrap_str(&fresh, "info");
	assert_int_equal(check_str(&c, noto, NULL), -EPERM);
	/* once b knows a, another sender is refused even with the right recipient */
	struct rv_peerstate imp = c;
	memcpy(imp.theirs, b.mine, RV_NONCE_LEN);
	imp.have_theirs = 1;
	char *fake = wrap_str(&imp, "info");
	assert_int_equal(check_str(&b, fake, NULL), -EPERM);
	/* malformed */
	assert_int_equal(check_str(&b, "{\"t\":\"x\"}", NULL), -EBADMSG);
	assert_int_equal(check_str(&b, "{\"t\":\"x\",\"from\":\"zz\",\"to\":\"\",\"ctr\":1}", NULL), -EBADMSG);
	assert_int_equal(check_str(&b, "not json", NULL), -EBADMSG);
	/* wrap refuses bad types */
	assert_null(rv_msg_wrap(&a, "", NULL));
	assert_null(rv_msg_wrap(&a, "0123456789012345678901234567890123", NULL));
	/* caller members are carried, reserved ones are not overridden */
	struct json_object *extra = json_object_new_object(), *w, *v;
	json_object_object_add(extra, "ctr", json_object_new_int(999));
	json_object_object_add(extra, "port", json_object_new_int(4242));
	w = rv_msg_wrap(&a, "miss", extra);
	assert_true(json_object_object_get_ex(w, "port", &v));
	assert_int_equal(json_object_get_int(v), 4242);
	assert_true(json_object_object_get_ex(w, "ctr", &v));
	assert_int_equal(json_object_get_int(v), 3);
	json_object_put(w);
	json_object_put(extra);
	free(ha);
	free(hb);
	free(ia);
	free(noto);
	free(fake);
}

static void test_clock_sample(void **state)
{
	(void)state;
	struct rv_clock_sample s;
	/* server 1 s ahead, 10 ms each way, 1 ms hold */
	uint64_t t1 = 1000000000000ull, t2 = t1 + 1000000000ull + 10000000ull, t3 = t2 + 1000000ull,
		 t4 = t1 + 21000000ull;
	assert_int_equal(rv_clock_sample(t1, t2, t3, t4, &s), 0);
	assert_int_equal(s.offset_ns, 1000000000ll);
	assert_int_equal(s.rtt_ns, 20000000ll);
	/* server behind by 2 s, asymmetric path 4 ms out, 8 ms back: offset off by half the asymmetry */
	t2 = t1 - 2000000000ull + 4000000ull;
	t3 = t2;
	t4 = t1 + 12000000ull;
	assert_int_equal(rv_clock_sample(t1, t2, t3, t4, &s), 0);
	assert_int_equal(s.offset_ns, -2000000000ll - 2000000ll);
	assert_int_equal(s.rtt_ns, 12000000ll);
	assert_int_equal(rv_clock_sample(t1, t2, t3, t1 - 1, &s), -EINVAL);
	assert_int_equal(rv_clock_sample(t1, t3 + 1, t3, t4, &s), -EINVAL);
	/* a lying server's negative int64 (seen as a huge uint64) or far-future stamps: refused, no UB */
	assert_int_equal(rv_clock_sample(t1, (uint64_t)INT64_MIN, (uint64_t)INT64_MIN, t4, &s), -EINVAL);
	assert_int_equal(rv_clock_sample(t1, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX, t4, &s), -EINVAL);
	assert_int_equal(rv_clock_sample(t1, RV_CLOCK_T_MAX, RV_CLOCK_T_MAX, t4, &s), 0);
}

static void test_clock_estimate(void **state)
{
	(void)state;
	struct rv_clock_est e;
	/* the min-RTT sample wins; its neighbours' spread and a tenth of the RTT make the uncertainty */
	struct rv_clock_sample s[] = {
		{ .offset_ns = 5000000, .rtt_ns = 60000000 },     /* queued: ignored for the spread */
		{ .offset_ns = 1000000, .rtt_ns = 50000000 },     /* best */
		{ .offset_ns = 1400000, .rtt_ns = 50500000 },     /* near: spread 0.4 ms */
	};
	assert_int_equal(rv_clock_estimate(s, 3, &e), 0);
	assert_int_equal(e.offset_ns, 1000000);
	assert_int_equal(e.rtt_ns, 50000000);
	assert_int_equal(e.bound_ns, 25000000);
	assert_int_equal(e.err_ns, 50000000 / 20 + 200000 + 100000);   /* 2.8 ms, not 25 */
	assert_int_equal(e.n, 2);
	/* never above the hard bound */
	struct rv_clock_sample w[] = { { .offset_ns = 0, .rtt_ns = 1000 }, { .offset_ns = 900000000, .rtt_ns = 2000 } };
	assert_int_equal(rv_clock_estimate(w, 2, &e), 0);
	assert_int_equal(e.err_ns, 500);
	/* a server whose clock is more than a minute away is not believed */
	struct rv_clock_sample far = { .offset_ns = RV_CLOCK_OFFSET_MAX + 1, .rtt_ns = 1000000 };
	assert_int_equal(rv_clock_estimate(&far, 1, &e), -ERANGE);
	far.offset_ns = -RV_CLOCK_OFFSET_MAX - 1;
	assert_int_equal(rv_clock_estimate(&far, 1, &e), -ERANGE);
	far.offset_ns = RV_CLOCK_OFFSET_MAX;
	assert_int_equal(rv_clock_estimate(&far, 1, &e), 0);
	assert_int_equal(rv_clock_estimate(s, 0, &e), -EINVAL);
	assert_int_equal(rv_clock_estimate(NULL, 1, &e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_partial_and_whole),
		cmocka_unit_test(test_frame_oversize_and_zero),
		cmocka_unit_test(test_frame_json_roundtrip),
		cmocka_unit_test(test_body_rejects),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_secret_bits),
		cmocka_unit_test(test_box),
		cmocka_unit_test(test_msg_replay_reflection),
		cmocka_unit_test(test_msg_replayed_hello),
		cmocka_unit_test(test_clock_sample),
		cmocka_unit_test(test_clock_estimate),
	};
	return cmocka_run_group_tests_name("rvproto", tests, NULL, NULL);
}
