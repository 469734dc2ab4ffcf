/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rawpunch/rendezvous/offer.h"

static const uint8_t SEC[] = "correct horse battery staple 42!";
#define NOW 1800000000000000000ull

static void fill(struct rp_offer *o)
{
	rp_offer_init(o, RP_OFFER, NOW);
	inet_pton(AF_INET, "10.0.1.2", &o->ni.local_addr);
	inet_pton(AF_INET, "198.18.1.2", &o->ni.mapped_addr);
	o->ni.local_port = 40000;
	o->ni.mapped_port = 20007;
	o->ni.behind_nat = true;
	o->ni.mapping = RP_MAP_APD;
	o->ni.alloc = RP_ALLOC_SEQUENTIAL;
	o->ni.has_delta = true;
	o->ni.delta = -3;
	o->ni.jitter = 1.25;
	o->ni.confidence = 0.875;
	o->ni.filtering = RP_FILTER_ICMP;
	o->ni.nat_ttl = 2;
	for (unsigned i = 0; i < 5; i++)
		o->ni.predicted[i] = (uint16_t)(20004 - 3 * i);
	o->ni.n_predicted = 5;
	o->cand[0] = 40001;
	o->cand[1] = 65535;
	o->n_cand = 2;
	o->start_ns = NOW + 30000000000ull;
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct rp_offer o, d;
	char text[RP_OFFER_TEXT_MAX];
	fill(&o);
	int n = rp_offer_encode(&o, SEC, sizeof(SEC) - 1, text, sizeof(text));
	assert_true(n > 0 && n < 200);                  /* short enough to paste */
	assert_int_equal((int)strlen(text), n);
	assert_memory_equal(text, "rpo1.", 5);
	for (int i = 5; i < n; i++)                     /* URL-safe base64, no padding, no spaces */
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", text[i]));
	assert_int_equal(rp_offer_decode(text, SEC, sizeof(SEC) - 1, &d), 0);
	assert_int_equal(d.kind, RP_OFFER);
	assert_memory_equal(d.nonce, o.nonce, 16);
	assert_int_equal(d.ni.local_addr, o.ni.local_addr);
	assert_int_equal(d.ni.mapped_addr, o.ni.mapped_addr);
	assert_int_equal(d.ni.local_port, 40000);
	assert_int_equal(d.ni.mapped_port, 20007);
	assert_true(d.ni.behind_nat && d.ni.has_delta);
	assert_int_equal(d.ni.delta, -3);
	assert_true(fabs(d.ni.jitter - 1.25) < 1e-9);
	assert_true(fabs(d.ni.confidence - 0.875) < 1e-9);
	assert_int_equal(d.ni.mapping, RP_MAP_APD);
	assert_int_equal(d.ni.alloc, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(d.ni.filtering, RP_FILTER_ICMP);
	assert_int_equal(d.ni.nat_ttl, 2);
	assert_int_equal(d.ni.n_predicted, 5);
	assert_memory_equal(d.ni.predicted, o.ni.predicted, 5 * sizeof(uint16_t));
	assert_int_equal(d.n_cand, 2);
	assert_int_equal(d.cand[1], 65535);
	assert_int_equal(d.start_ns, o.start_ns);
	assert_int_equal(d.created_ns, NOW);
	/* pasted with whitespace around it */
	char padded[RP_OFFER_TEXT_MAX + 8];
	snprintf(padded, sizeof(padded), "  %s\r\n", text);
	assert_int_equal(rp_offer_decode(padded, SEC, sizeof(SEC) - 1, &d), 0);
	/* the maximum fits in RP_OFFER_TEXT_MAX */
	o.ni.n_predicted = RP_MAX_PREDICT;
	o.n_cand = RP_OFFER_MAX_CAND;
	n = rp_offer_encode(&o, SEC, sizeof(SEC) - 1, text, sizeof(text));
	assert_true(n > 0 && n < RP_OFFER_TEXT_MAX);
	assert_int_equal(rp_offer_decode(text, SEC, sizeof(SEC) - 1, &d), 0);
	assert_int_equal(d.ni.n_predicted, RP_OFFER_MAX_CAND);   /* the most likely ones are kept */
	assert_int_equal(rp_offer_encode(&o, SEC, sizeof(SEC) - 1, text, 50), -ENOSPC);
}

static void test_auth(void **state)
{
	(void)state;
	struct rp_offer o, d;
	char text[RP_OFFER_TEXT_MAX];
	fill(&o);
	assert_true(rp_offer_encode(&o, SEC, sizeof(SEC) - 1, text, sizeof(text)) > 0);
	assert_int_equal(rp_offer_decode(text, (const uint8_t *)"wrong", 5, &d), -EBADMSG);
	/* every character altered breaks authentication (or the encoding) */
	for (size_t i = 5; text[i]; i++) {
		char save = text[i];
		text[i] = save == 'A' ? 'B' : 'A';
		assert_int_not_equal(rp_offer_decode(text, SEC, sizeof(SEC) - 1, &d), 0);
		text[i] = save;
	}
	/* an offer cannot be passed off as an answer: the prefix is authenticated */
	text[2] = 'a';
	assert_int_equal(rp_offer_decode(text, SEC, sizeof(SEC) - 1, &d), -EBADMSG);
	text[2] = 'o';
	/* truncated */
	text[strlen(text) - 4] = 0;
	assert_int_not_equal(rp_offer_decode(text, SEC, sizeof(SEC) - 1, &d), 0);
	assert_int_equal(rp_offer_decode("hello", SEC, sizeof(SEC) - 1, &d), -EINVAL);
	assert_int_equal(rp_offer_decode("rpo1.", SEC, sizeof(SEC) - 1, &d), -EINVAL);
	assert_int_equal(rp_offer_decode("rpo1.!!!!", SEC, sizeof(SEC) - 1, &d), -EINVAL);
	assert_int_equal(rp_offer_encode(&o, SEC, 0, text, sizeof(text)), -EINVAL);
	memset(o.nonce, 0, sizeof(o.nonce));
	assert_int_equal(rp_offer_encode(&o, SEC, sizeof(SEC) - 1, text, sizeof(text)), -EINVAL);
}

static void test_answer_match_fresh(void **state)
{
	(void)state;
	struct rp_offer o, a, od, ad, a2;
	char ot[RP_OFFER_TEXT_MAX], at[RP_OFFER_TEXT_MAX];
	fill(&o);
	assert_true(rp_offer_encode(&o, SEC, sizeof(SEC) - 1, ot, sizeof(ot)) > 0);
	assert_int_equal(rp_offer_decode(ot, SEC, sizeof(SEC) - 1, &od), 0);
	rp_offer_init(&a, RP_ANSWER, NOW + 1000);
	memcpy(a.nonce, od.nonce, 16);
	inet_pton(AF_INET, "198.18.2.2", &a.ni.mapped_addr);
	a.ni.behind_nat = true;
	a.start_ns = od.start_ns + 1000000;
	assert_true(rp_offer_encode(&a, SEC, sizeof(SEC) - 1, at, sizeof(at)) > 0);
	assert_memory_equal(at, "rpa1.", 5);
	assert_int_equal(rp_offer_decode(at, SEC, sizeof(SEC) - 1, &ad), 0);
	assert_int_equal(ad.kind, RP_ANSWER);
	assert_int_equal(rp_offer_match(&o, &ad), 0);
	/* an answer to another offer does not match */
	struct rp_offer o2;
	fill(&o2);
	assert_memory_not_equal(o2.nonce, o.nonce, 16);
	assert_int_equal(rp_offer_match(&o2, &ad), -EPERM);
	a2 = ad;
	a2.kind = RP_OFFER;
	assert_int_equal(rp_offer_match(&o, &a2), -EPERM);
	/* freshness */
	assert_int_equal(rp_offer_fresh(&od, NOW + 1000000000ull, 600), 0);
	assert_int_equal(rp_offer_fresh(&od, NOW + 700000000000ull, 600), -ESTALE);     /* too old */
	assert_int_equal(rp_offer_fresh(&od, od.start_ns + 1, 600), -ESTALE);           /* start passed */
	assert_int_equal(rp_offer_fresh(&od, NOW - 120000000000ull, 600), -ESTALE);     /* from the future */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_answer_match_fresh),
	};
	return cmocka_run_group_tests_name("offer", tests, NULL, NULL);
}
