/* SPDX-License-Identifier: MIT */
/* punch.h: the shared punch key, the per-round ISNs both sides must agree on (and that must differ
 * where a replay or a reflection would otherwise validate), the public address rule, argument checks
 * that need no privileges, and the round's JSON for the report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "rawpunch/punch/punch.h"
#include "rawpunch/rendezvous/proto.h"

static uint32_t ip(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void test_key_derive(void **state)
{
	(void)state;
	const uint8_t s1[] = "correct horse battery staple", s2[] = "correct horse battery stapler";
	uint8_t k1[RP_PUNCH_KEYLEN], k1b[RP_PUNCH_KEYLEN], k2[RP_PUNCH_KEYLEN], k3[RP_PUNCH_KEYLEN], zero[RP_PUNCH_KEYLEN] = { 0 };
	assert_int_equal(rp_punch_key_derive(s1, sizeof(s1) - 1, "sess", k1), 0);
	assert_int_equal(rp_punch_key_derive(s1, sizeof(s1) - 1, "sess", k1b), 0);
	assert_memory_equal(k1, k1b, RP_PUNCH_KEYLEN);                 /* both peers get the same key */
	assert_memory_not_equal(k1, zero, RP_PUNCH_KEYLEN);
	assert_int_equal(rp_punch_key_derive(s2, sizeof(s2) - 1, "sess", k2), 0);
	assert_memory_not_equal(k1, k2, RP_PUNCH_KEYLEN);              /* another secret */
	assert_int_equal(rp_punch_key_derive(s1, sizeof(s1) - 1, "sess2", k3), 0);
	assert_memory_not_equal(k1, k3, RP_PUNCH_KEYLEN);              /* another session */
	/* a secret longer than BLAKE2b's key size is fine (hashed first) */
	uint8_t big[300];
	memset(big, 7, sizeof(big));
	assert_int_equal(rp_punch_key_derive(big, sizeof(big), "sess", k3), 0);
	big[299] = 8;
	assert_int_equal(rp_punch_key_derive(big, sizeof(big), "sess", k2), 0);
	assert_memory_not_equal(k2, k3, RP_PUNCH_KEYLEN);
	/* bad input */
	assert_int_equal(rp_punch_key_derive(s1, 0, "sess", k1), -EINVAL);
	assert_int_equal(rp_punch_key_derive(NULL, 4, "sess", k1), -EINVAL);
	assert_int_equal(rp_punch_key_derive(s1, 4, "", k1), -EINVAL);
	assert_int_equal(rp_punch_key_derive(s1, 4, NULL, k1), -EINVAL);
}

/* Punch ISNs are new every run: the run key mixes the meeting's shared nonce into the session's key,
 * and the session's key is the Argon2id-stretched one (not a plain hash of the secret). */
static void test_run_key(void **state)
{
	(void)state;
	static const uint8_t s1[] = "a secret of some length";
	uint8_t k[RP_PUNCH_KEYLEN], r1[RP_PUNCH_KEYLEN], r1b[RP_PUNCH_KEYLEN], r2[RP_PUNCH_KEYLEN];
	uint8_t n1[16] = { 1 }, n2[16] = { 2 };
	struct rv_keys rk;
	assert_int_equal(rp_punch_key_derive(s1, sizeof(s1) - 1, "sess", k), 0);
	assert_int_equal(rv_keys_derive(s1, sizeof(s1) - 1, "sess", &rk), 0);
	assert_memory_equal(k, rk.kpunch, RP_PUNCH_KEYLEN);
	rp_punch_key_mix(k, n1, sizeof(n1), r1);
	rp_punch_key_mix(k, n1, sizeof(n1), r1b);
	rp_punch_key_mix(k, n2, sizeof(n2), r2);
	assert_memory_equal(r1, r1b, sizeof(r1));           /* both sides, same nonce: same key */
	assert_memory_not_equal(r1, r2, sizeof(r1));        /* another run: other ISNs */
	assert_memory_not_equal(r1, k, sizeof(r1));
	uint32_t a = 0x0a000001, b = 0x0a000002;
	assert_int_not_equal(rp_punch_isn(r1, a, b, 4000, 1), rp_punch_isn(r2, a, b, 4000, 1));
}

static void test_isn(void **state)
{
	(void)state;
	uint8_t k[RP_PUNCH_KEYLEN], k2[RP_PUNCH_KEYLEN];
	uint32_t a = ip("198.18.1.2"), b = ip("198.18.2.2");
	assert_int_equal(rp_punch_key_derive((const uint8_t *)"s3cret", 6, "x", k), 0);
	assert_int_equal(rp_punch_key_derive((const uint8_t *)"s3cret!", 7, "x", k2), 0);
	uint32_t ab = rp_punch_isn(k, a, b, 40000, 0);
	/* deterministic: the receiver computes exactly what the sender put in its SYN */
	assert_int_equal(rp_punch_isn(k, a, b, 40000, 0), ab);
	/* direction: a reflected SYN (our own, bounced back) does not pass as the peer's */
	assert_int_not_equal(rp_punch_isn(k, b, a, 40000, 0), ab);
	/* round: a late SYN of an earlier round does not validate */
	assert_int_not_equal(rp_punch_isn(k, a, b, 40000, 1), ab);
	assert_int_not_equal(rp_punch_isn(k, a, b, 40000, 1), rp_punch_isn(k, a, b, 40000, 2));
	/* the sender's punch port, or 0 for a side that sends from many ports */
	assert_int_not_equal(rp_punch_isn(k, a, b, 40001, 0), ab);
	assert_int_not_equal(rp_punch_isn(k, a, b, 0, 0), ab);
	/* the key */
	assert_int_not_equal(rp_punch_isn(k2, a, b, 40000, 0), ab);
	/* addresses */
	assert_int_not_equal(rp_punch_isn(k, a, ip("198.18.2.3"), 40000, 0), ab);
	/* round numbers beyond 8 bits are hashed in full */
	assert_int_not_equal(rp_punch_isn(k, a, b, 40000, 256), rp_punch_isn(k, a, b, 40000, 0));
	/* spread: 1000 rounds give 1000 different ISNs (32-bit values; a collision is ~1e-4 likely) */
	uint32_t seen[1000];
	for (unsigned r = 0; r < 1000; r++) {
		seen[r] = rp_punch_isn(k, a, b, 40000, r);
		for (unsigned q = 0; q < r; q++)
			assert_int_not_equal(seen[q], seen[r]);
	}
}

static void test_pub_addr(void **state)
{
	(void)state;
	struct rp_natinfo ni = { 0 };
	ni.local_addr = ip("10.0.1.2");
	ni.mapped_addr = ip("198.18.1.2");
	ni.behind_nat = true;
	assert_int_equal(rp_punch_pub_addr(&ni), ip("198.18.1.2"));
	ni.behind_nat = false;
	assert_int_equal(rp_punch_pub_addr(&ni), ip("10.0.1.2"));
}

static void test_bad_args(void **state)
{
	(void)state;
	uint8_t k[RP_PUNCH_KEYLEN] = { 1 };
	struct rp_punch *p = (struct rp_punch *)1;
	struct rp_punch_opts o = { .peer_addr = 0, .key = k };
	char err[64];
	/* checked before anything is opened: no privileges needed, nothing sent */
	assert_int_equal(rp_punch_open(&o, &p, err, sizeof(err)), -EINVAL);
	o.peer_addr = ip("198.18.2.2");
	o.key = NULL;
	assert_int_equal(rp_punch_open(&o, &p, err, sizeof(err)), -EINVAL);
	assert_int_equal(rp_punch_open(NULL, &p, err, sizeof(err)), -EINVAL);
	struct rp_punch_round_stats st;
	struct rp_punch_round_opts ro = { 0 };
	assert_int_equal(rp_punch_round(NULL, &ro, &st), -EINVAL);
	assert_int_equal(rp_punch_handoff(NULL, NULL, NULL), -ENOTCONN);
	rp_punch_close(NULL);
	assert_int_equal(rp_punch_laddr(NULL), 0);
	struct rp_punch_totals t;
	rp_punch_totals(NULL, &t);
	assert_int_equal(t.packets_sent, 0);
	assert_int_equal(t.guard_dropped, -1);
}

static const char *js(struct json_object *o, const char *path)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	struct json_object *cur = o;
	for (char *t = strtok_r(buf, ".", &save); t; t = strtok_r(NULL, ".", &save))
		if (!json_object_object_get_ex(cur, t, &cur))
			return "<missing>";
	return cur ? json_object_get_string(cur) : "null";
}

static void test_round_json(void **state)
{
	(void)state;
	struct rp_punch_round_stats st = { 0 };
	st.round = 1;
	st.strategy = rp_strategy_find("birthday");
	st.action = RP_ACT_OPEN_MANY;
	st.primed = false;
	st.prime_ttl = 2;
	st.n_local = 256;
	st.local_lo = 32768;
	st.local_hi = 60999;
	st.n_remote = 1;
	st.remote_lo = st.remote_hi = 40000;
	st.syns_sent = 256;
	st.handshake_sent = 2;
	st.rx_syn = 3;
	st.rx_icmp = 5;
	st.rx_icmp_ttl = 5;
	st.rx_forged = 1;
	st.t_first_rx_ms = 246.14;
	st.t_established_ms = -1;
	st.duration_ms = 1000;
	st.result = -ETIMEDOUT;
	snprintf(st.why, sizeof(st.why), "no valid SYN");
	struct json_object *o = rp_punch_round_to_json(&st);
	assert_non_null(o);
	assert_string_equal(js(o, "round"), "2");                   /* round 1 counted from 0: 1-based */
	assert_string_equal(js(o, "method"), "birthday");           /* the table's name */
	assert_string_equal(js(o, "action"), "open-many");
	assert_string_equal(js(o, "local_ports.n"), "256");
	assert_string_equal(js(o, "local_ports.lo"), "32768");
	assert_string_equal(js(o, "remote_ports.hi"), "40000");
	assert_string_equal(js(o, "sent.syns"), "256");
	assert_string_equal(js(o, "sent.total"), "258");
	assert_string_equal(js(o, "seen.syn"), "3");
	assert_string_equal(js(o, "seen.icmp_ttl_exceeded"), "5");
	assert_string_equal(js(o, "seen.forged"), "1");
	assert_string_equal(js(o, "first_rx_ms"), "246.1");
	assert_string_equal(js(o, "established_ms"), "null");   /* not reached */
	assert_string_equal(js(o, "flow"), "null");             /* no flow was defined */
	assert_string_equal(js(o, "result"), "miss");
	assert_string_equal(js(o, "why"), "no valid SYN");
	json_object_put(o);

	st.result = 0;
	st.defined = st.established = true;
	st.trigger = "syn-ack";
	st.lport = 40000;
	st.rport = 55555;
	st.t_established_ms = 12.25;
	o = rp_punch_round_to_json(&st);
	assert_string_equal(js(o, "result"), "ok");
	assert_string_equal(js(o, "trigger"), "syn-ack");
	assert_string_equal(js(o, "flow.remote_port"), "55555");
	assert_string_equal(js(o, "established"), "true");
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_derive),
		cmocka_unit_test(test_run_key),
		cmocka_unit_test(test_isn),
		cmocka_unit_test(test_pub_addr),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_round_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
