/* SPDX-License-Identifier: MIT */
/* ISN cookies (userstack/cookie.h): SipHash-2-4 reference vectors, tuple sensitivity, checks, and
 * the precomputed inline variant equal to us_cookie(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "userstack/cookie.h"

static const uint8_t key0[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

/* From the SipHash paper (Aumasson & Bernstein), appendix A / vectors.h: key 00..0f, message 00..n-1 */
static void test_reference_vectors(void **state)
{
	(void)state;
	uint8_t msg[64];
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	assert_true(us_hash64(key0, NULL, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(us_hash64(key0, msg, 15) == 0xa129ca6149be45e5ull);
	assert_true(us_hash64(key0, msg, 1) == 0x74f839c593dc67fdull);
	assert_int_equal(us_hash32(key0, msg, 15), 0x49be45e5u);
}

static void test_cookie_layout(void **state)
{
	(void)state;
	uint32_t la = inet_addr("10.0.0.1"), ra = inet_addr("192.0.2.7");
	uint8_t m[12] = { 10, 0, 0, 1, 0x12, 0x34, 192, 0, 2, 7, 0x00, 0x50 };
	/* the cookie is the hash of laddr|lport(be)|raddr|rport(be) */
	assert_int_equal(us_cookie(key0, la, 0x1234, ra, 80), us_hash32(key0, m, sizeof(m)));
}

static void test_cookie_sensitivity(void **state)
{
	(void)state;
	uint32_t la = inet_addr("10.0.0.1"), ra = inet_addr("10.0.0.2");
	uint32_t c = us_cookie(key0, la, 40000, ra, 80);
	assert_int_not_equal(c, us_cookie(key0, la, 40001, ra, 80));
	assert_int_not_equal(c, us_cookie(key0, la, 40000, ra, 81));
	assert_int_not_equal(c, us_cookie(key0, inet_addr("10.0.0.3"), 40000, ra, 80));
	assert_int_not_equal(c, us_cookie(key0, la, 40000, inet_addr("10.0.0.3"), 80));
	/* direction matters: swapping the ends is a different tuple */
	assert_int_not_equal(c, us_cookie(key0, ra, 80, la, 40000));
	uint8_t k2[16];
	memcpy(k2, key0, 16);
	k2[15] ^= 1;
	assert_int_not_equal(c, us_cookie(k2, la, 40000, ra, 80));
	/* deterministic */
	assert_int_equal(c, us_cookie(key0, la, 40000, ra, 80));
}

static void test_check_ack(void **state)
{
	(void)state;
	uint32_t la = inet_addr("10.0.0.1"), ra = inet_addr("10.0.0.2");
	uint32_t c = us_cookie(key0, la, 40000, ra, 80);
	assert_true(us_cookie_check_ack(key0, la, 40000, ra, 80, c + 1));
	assert_false(us_cookie_check_ack(key0, la, 40000, ra, 80, c));
	assert_false(us_cookie_check_ack(key0, la, 40000, ra, 80, c + 2));
	assert_false(us_cookie_check_ack(key0, la, 40001, ra, 80, c + 1));
	const char msg[] = "punch-session-7";
	uint32_t h = us_hash32(key0, msg, sizeof(msg) - 1);
	assert_true(us_hash_check_ack(key0, msg, sizeof(msg) - 1, h + 1));
	assert_false(us_hash_check_ack(key0, msg, sizeof(msg) - 1, h));
	assert_false(us_hash_check_ack(key0, msg, sizeof(msg) - 2, h + 1));
}

/* us_cookie_pre_at() == us_cookie() for random keys, addresses and ports, with the local port
 * sometimes repeating (the cached first block) and sometimes changing. */
static void test_cookie_pre_equals_cookie(void **state)
{
	(void)state;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int k = 0; k < 50; k++) {
		uint8_t key[16];
		for (int i = 0; i < 16; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			key[i] = (uint8_t)(x >> 56);
		}
		uint32_t la = (uint32_t)(x >> 13), ra = (uint32_t)(x >> 29);
		struct us_cookie_pre cp;
		us_cookie_pre_init(&cp, key, la, ra);
		uint16_t lport = 0;
		for (int i = 0; i < 200; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			if (i == 0 || (x >> 60) < 4)
				lport = (uint16_t)(x >> 40);
			uint16_t rport = (uint16_t)(x >> 20);
			assert_int_equal(us_cookie_pre_at(&cp, lport, rport), us_cookie(key, la, lport, ra, rport));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_vectors),
		cmocka_unit_test(test_cookie_layout),
		cmocka_unit_test(test_cookie_sensitivity),
		cmocka_unit_test(test_check_ack),
		cmocka_unit_test(test_cookie_pre_equals_cookie),
	};
	return cmocka_run_group_tests_name("cookie", tests, NULL, NULL);
}
