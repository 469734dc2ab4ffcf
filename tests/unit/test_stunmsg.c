/* SPDX-License-Identifier: MIT */
/* STUN codec: RFC 5769 test vectors, request building, strict parsing of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "rawpunch/probe/stunmsg.h"

/* RFC 5769 §2.1 Sample Request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MI, FINGERPRINT) */
static const uint8_t rfc5769_req[] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
	0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
	0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
	0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
	0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
	0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
	0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};
/* RFC 5769 §2.2 Sample IPv4 Response: 192.0.2.1:32853, SOFTWARE "test vector" */
static const uint8_t rfc5769_v4[] = {
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
	0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
	0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
	0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
	0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};
/* RFC 5769 §2.3 Sample IPv6 Response: [2001:db8:1234:5678:11:2233:4455:6677]:32853 */
static const uint8_t rfc5769_v6[] = {
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
	0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
	0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
	0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
	0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
	0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};
static const uint8_t txid[12] = { 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae };

static void test_crc32(void **state)
{
	(void)state;
	assert_int_equal(rp_stun_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
	assert_int_equal(rp_stun_crc32((const uint8_t *)"", 0), 0u);
}

static void test_type_bits(void **state)
{
	(void)state;
	assert_int_equal(rp_stun_type(RP_STUN_METHOD_BINDING, RP_STUN_REQUEST), 0x0001);
	assert_int_equal(rp_stun_type(RP_STUN_METHOD_BINDING, RP_STUN_SUCCESS), 0x0101);
	assert_int_equal(rp_stun_type(RP_STUN_METHOD_BINDING, RP_STUN_ERROR), 0x0111);
	assert_int_equal(rp_stun_type(RP_STUN_METHOD_BINDING, RP_STUN_INDICATION), 0x0011);
	assert_int_equal(rp_stun_type(0x003 /* TURN Allocate */, RP_STUN_SUCCESS), 0x0103);
	assert_int_equal(rp_stun_type(0xFFF, RP_STUN_ERROR), 0x3FFF);
}

static void test_rfc5769_request(void **state)
{
	(void)state;
	struct rp_stun_msg m;
	assert_int_equal(rp_stun_parse(rfc5769_req, sizeof(rfc5769_req), &m), 0);
	assert_int_equal(m.method, RP_STUN_METHOD_BINDING);
	assert_int_equal(m.cls, RP_STUN_REQUEST);
	assert_memory_equal(m.txid, txid, 12);
	assert_true(m.has_software);
	assert_string_equal(m.software, "STUN test client");
	assert_true(m.has_integrity);
	assert_true(m.has_fingerprint);
	/* PRIORITY (0x0024) is ICE's, comprehension-required and unknown to a plain STUN client;
	 * ICE-CONTROLLED (0x8029) is comprehension-optional. */
	assert_int_equal(m.n_unknown_required, 1);
	assert_int_equal(m.unknown_required[0], 0x0024);
	assert_int_equal(m.n_attrs, 6);
}

static void test_rfc5769_v4(void **state)
{
	(void)state;
	struct rp_stun_msg m;
	char ip[INET_ADDRSTRLEN];
	assert_int_equal(rp_stun_parse(rfc5769_v4, sizeof(rfc5769_v4), &m), 0);
	assert_int_equal(m.type, RP_STUN_BINDING_SUCCESS);
	assert_int_equal(m.cls, RP_STUN_SUCCESS);
	assert_true(m.has_xor_mapped);
	assert_int_equal(m.xor_mapped.family, RP_STUN_AF_INET);
	assert_int_equal(m.xor_mapped.port, 32853);
	inet_ntop(AF_INET, &m.xor_mapped.v4, ip, sizeof(ip));
	assert_string_equal(ip, "192.0.2.1");
	assert_string_equal(m.software, "test vector");
	assert_true(m.has_fingerprint);
	assert_int_equal(m.n_unknown_required, 0);
	assert_int_equal(rp_stun_frame_len(rfc5769_v4, sizeof(rfc5769_v4), 0), (long)sizeof(rfc5769_v4));
}

static void test_rfc5769_v6(void **state)
{
	(void)state;
	struct rp_stun_msg m;
	char ip[INET6_ADDRSTRLEN];
	assert_int_equal(rp_stun_parse(rfc5769_v6, sizeof(rfc5769_v6), &m), 0);
	assert_true(m.has_xor_mapped);
	assert_int_equal(m.xor_mapped.family, RP_STUN_AF_INET6);
	assert_int_equal(m.xor_mapped.port, 32853);
	inet_ntop(AF_INET6, m.xor_mapped.v6, ip, sizeof(ip));
	assert_string_equal(ip, "2001:db8:1234:5678:11:2233:4455:6677");
	assert_true(m.has_fingerprint);
}

static void test_fingerprint_flip(void **state)
{
	(void)state;
	uint8_t b[sizeof(rfc5769_v4)];
	struct rp_stun_msg m;
	/* Every single-bit flip after the header is caught; inside SOFTWARE's value and padding
	 * (24..35) and the MESSAGE-INTEGRITY value (52..71), which nothing else checks, by FINGERPRINT. */
	for (size_t i = 20; i < sizeof(b); i++)
		for (int bit = 0; bit < 8; bit++) {
			memcpy(b, rfc5769_v4, sizeof(b));
			b[i] ^= (uint8_t)(1u << bit);
			int r = rp_stun_parse(b, sizeof(b), &m);
			if (i >= 72 && i < 74 && r == 0) {
				/* FINGERPRINT's own type damaged: no longer a FINGERPRINT, nothing to verify */
				assert_false(m.has_fingerprint);
				continue;
			}
			if (r == 0)
				fail_msg("flip of byte %zu bit %d not caught", i, bit);
			assert_int_equal(r, -EBADMSG);
			if ((i >= 24 && i < 36) || (i >= 52 && i < 72) || i >= 76)
				assert_string_equal(m.why, "FINGERPRINT does not match");
		}
}

static void test_build_roundtrip(void **state)
{
	(void)state;
	uint8_t b[256];
	struct rp_stun_msg m;
	struct rp_stun_build o = { .change_flags = RP_STUN_CHANGE_IP | RP_STUN_CHANGE_PORT,
				   .software = "rawpunch", .fingerprint = true };
	int n = rp_stun_build_binding(b, sizeof(b), txid, &o);
	assert_int_equal(n, 20 + 8 + 12 + 8);
	assert_int_equal(b[0], 0x00);
	assert_int_equal(b[1], 0x01);
	assert_int_equal(b[2] << 8 | b[3], n - 20);
	assert_int_equal(rp_stun_parse(b, (size_t)n, &m), 0);
	assert_int_equal(m.type, RP_STUN_BINDING_REQUEST);
	assert_true(m.has_change_request);
	assert_int_equal(m.change_flags, 6);
	assert_string_equal(m.software, "rawpunch");
	assert_true(m.has_fingerprint);
	assert_memory_equal(m.txid, txid, 12);
	/* padding after "rawpunch" is none (8 bytes); odd length pads with zeros */
	o.software = "abcde";
	n = rp_stun_build_binding(b, sizeof(b), txid, &o);
	assert_int_equal(n, 20 + 8 + 12 + 8);
	assert_int_equal(b[20 + 8 + 4 + 5], 0);
	assert_int_equal(rp_stun_parse(b, (size_t)n, &m), 0);
	assert_string_equal(m.software, "abcde");
	/* bare request */
	n = rp_stun_build_binding(b, sizeof(b), txid, NULL);
	assert_int_equal(n, 20);
	assert_int_equal(rp_stun_parse(b, 20, &m), 0);
	/* errors */
	assert_int_equal(rp_stun_build_binding(b, 19, txid, NULL), -ENOSPC);
	o.software = "rawpunch";
	assert_int_equal(rp_stun_build_binding(b, 47, txid, &o), -ENOSPC);
	o.change_flags = 1;
	assert_int_equal(rp_stun_build_binding(b, sizeof(b), txid, &o), -EINVAL);
	char big[800];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	struct rp_stun_build o2 = { .software = big };
	assert_int_equal(rp_stun_build_binding(b, sizeof(b), txid, &o2), -EINVAL);
}

/* A success response with the given attribute bytes. */
static size_t mk(uint8_t *b, const uint8_t *attrs, size_t alen)
{
	b[0] = 0x01; b[1] = 0x01; b[2] = (uint8_t)(alen >> 8); b[3] = (uint8_t)alen;
	b[4] = 0x21; b[5] = 0x12; b[6] = 0xa4; b[7] = 0x42;
	memcpy(b + 8, txid, 12);
	if (alen)
		memcpy(b + 20, attrs, alen);
	return 20 + alen;
}

static void expect_bad(const uint8_t *attrs, size_t alen, const char *why)
{
	uint8_t b[512];
	struct rp_stun_msg m;
	size_t n = mk(b, attrs, alen);
	assert_int_equal(rp_stun_parse(b, n, &m), -EBADMSG);
	assert_string_equal(m.why, why);
}

static void test_malformed(void **state)
{
	(void)state;
	uint8_t b[512];
	struct rp_stun_msg m;
	size_t n;
	/* header */
	n = mk(b, NULL, 0);
	assert_int_equal(rp_stun_parse(b, 19, &m), -EBADMSG);
	b[0] = 0x41;
	assert_int_equal(rp_stun_parse(b, n, &m), -EBADMSG);
	assert_string_equal(m.why, "leading bits not zero");
	n = mk(b, NULL, 0);
	b[7] = 0x43;
	assert_int_equal(rp_stun_parse(b, n, &m), -EBADMSG);
	assert_string_equal(m.why, "bad magic cookie");
	assert_int_equal(rp_stun_frame_len(b, n, 0), -EBADMSG);
	n = mk(b, (const uint8_t[]){ 0x80, 0x22, 0, 1, 'a', 0, 0, 0 }, 8);
	b[3] = 6;
	assert_int_equal(rp_stun_parse(b, n, &m), -EBADMSG);
	assert_string_equal(m.why, "length not a multiple of 4");
	b[3] = 4;
	assert_int_equal(rp_stun_parse(b, n, &m), -EBADMSG);
	assert_string_equal(m.why, "length field disagrees with the message size");
	/* attributes */
	expect_bad((const uint8_t[]){ 0x00, 0x20, 0x00, 0x0c, 0, 1, 0, 0, 0, 0, 0, 0 }, 12,
		   "attribute runs past the end");
	expect_bad((const uint8_t[]){ 0x00, 0x20, 0x00, 0x07, 0, 1, 0, 0, 0, 0, 0, 0 }, 12,
		   "bad XOR-MAPPED-ADDRESS");
	expect_bad((const uint8_t[]){ 0x00, 0x20, 0x00, 0x08, 0, 3, 0, 0, 0, 0, 0, 0 }, 12,
		   "bad XOR-MAPPED-ADDRESS");   /* family 3 */
	expect_bad((const uint8_t[]){ 0x00, 0x01, 0x00, 0x14, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				      0, 0, 0, 0, 0, 0, 0, 0 }, 24, "bad MAPPED-ADDRESS");   /* v4 with 20 */
	expect_bad((const uint8_t[]){ 0x00, 0x09, 0x00, 0x04, 0, 0, 2, 0 }, 8, "ERROR-CODE out of range");
	expect_bad((const uint8_t[]){ 0x00, 0x09, 0x00, 0x04, 0, 0, 4, 100 }, 8, "ERROR-CODE out of range");
	expect_bad((const uint8_t[]){ 0x00, 0x08, 0x00, 0x04, 0, 0, 0, 0 }, 8, "bad MESSAGE-INTEGRITY length");
	expect_bad((const uint8_t[]){ 0x80, 0x28, 0x00, 0x04, 0, 0, 0, 0 }, 8, "FINGERPRINT does not match");
	expect_bad((const uint8_t[]){ 0x80, 0x28, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0 }, 12,
		   "bad FINGERPRINT length");
	expect_bad((const uint8_t[]){ 0x00, 0x03, 0x00, 0x08, 0, 0, 0, 6, 0, 0, 0, 0 }, 12,
		   "bad CHANGE-REQUEST length");
	/* length 0xffff in an attribute: bounds, not overflow */
	expect_bad((const uint8_t[]){ 0x80, 0x22, 0xff, 0xff, 0, 0, 0, 0 }, 8, "attribute runs past the end");
	/* attribute after FINGERPRINT */
	{
		uint8_t a[16] = { 0x80, 0x28, 0x00, 0x04, 0, 0, 0, 0, 0x80, 0x22, 0x00, 0x00 };
		n = mk(b, a, 12);
		/* fix the fingerprint so only the ordering is wrong */
		uint32_t fp = rp_stun_crc32(b, 20) ^ RP_STUN_FP_XOR;
		b[24] = (uint8_t)(fp >> 24); b[25] = (uint8_t)(fp >> 16); b[26] = (uint8_t)(fp >> 8); b[27] = (uint8_t)fp;
		assert_int_equal(rp_stun_parse(b, n, &m), -EBADMSG);
		assert_string_equal(m.why, "attribute after FINGERPRINT");
	}
	/* frame_len */
	n = mk(b, NULL, 0);
	assert_int_equal(rp_stun_frame_len(b, 10, 0), 0);
	assert_int_equal(rp_stun_frame_len(b, 20, 0), 20);
	b[2] = 0x10; b[3] = 0x00;   /* 4096 + 20 > 4096 */
	assert_int_equal(rp_stun_frame_len(b, 20, 0), -EMSGSIZE);
	assert_int_equal(rp_stun_frame_len(b, 20, 8192), 4116);
}

static void test_attributes(void **state)
{
	(void)state;
	uint8_t b[512];
	struct rp_stun_msg m;
	char ip[INET_ADDRSTRLEN];
	/* error response 420 with reason, OTHER-ADDRESS, RESPONSE-ORIGIN, duplicate XOR-MAPPED (first wins),
	 * an unknown optional (0xC001) and an unknown required (0x7F00) attribute, MAPPED-ADDRESS. */
	const uint8_t a[] = {
		0x00, 0x09, 0x00, 0x0d, 0, 0, 4, 20, 'U', 'n', 'k', 'n', 'o', 'w', '\n', 0xff, 'x', 0, 0, 0,
		0x80, 0x2c, 0x00, 0x08, 0, 1, 0x0d, 0x97, 198, 18, 3, 3,
		0x80, 0x2b, 0x00, 0x08, 0, 1, 0x0d, 0x96, 198, 18, 3, 2,
		0x00, 0x20, 0x00, 0x08, 0, 1, 0x4e ^ 0x21, 0x20 ^ 0x12, 198 ^ 0x21, 18 ^ 0x12, 1 ^ 0xa4, 2 ^ 0x42,
		0x00, 0x20, 0x00, 0x08, 0, 1, 0, 0, 0, 0, 0, 0,
		0xc0, 0x01, 0x00, 0x00,
		0x7f, 0x00, 0x00, 0x01, 9, 0, 0, 0,
		0x00, 0x01, 0x00, 0x08, 0, 1, 0x9c, 0x40, 10, 0, 1, 2,
	};
	size_t n = mk(b, a, sizeof(a));
	b[1] = 0x11;   /* error response */
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_int_equal(m.cls, RP_STUN_ERROR);
	assert_true(m.has_error);
	assert_int_equal(m.error_code, 420);
	assert_string_equal(m.error_reason, "Unknow??x");
	assert_true(m.has_other);
	inet_ntop(AF_INET, &m.other.v4, ip, sizeof(ip));
	assert_string_equal(ip, "198.18.3.3");
	assert_int_equal(m.other.port, 3479);
	assert_true(m.has_origin);
	assert_int_equal(m.origin.port, 3478);
	assert_true(m.has_xor_mapped);
	inet_ntop(AF_INET, &m.xor_mapped.v4, ip, sizeof(ip));
	assert_string_equal(ip, "198.18.1.2");
	assert_int_equal(m.xor_mapped.port, 20000);
	assert_true(m.has_mapped);
	assert_int_equal(m.mapped.port, 40000);
	assert_int_equal(m.n_unknown_required, 1);
	assert_int_equal(m.unknown_required[0], 0x7f00);
	assert_false(m.has_fingerprint);
	/* Attributes after MESSAGE-INTEGRITY (other than FINGERPRINT) are ignored. */
	const uint8_t c[] = {
		0x00, 0x08, 0x00, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x20, 0x00, 0x08, 0, 1, 0, 0, 0, 0, 0, 0,
		0x7f, 0x00, 0x00, 0x00,
	};
	n = mk(b, c, sizeof(c));
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_true(m.has_integrity);
	assert_false(m.has_xor_mapped);
	assert_int_equal(m.n_unknown_required, 0);
	/* RFC 3489 CHANGED-ADDRESS is understood (classic servers' OTHER-ADDRESS); SOURCE-ADDRESS known */
	const uint8_t d[] = {
		0x00, 0x05, 0x00, 0x08, 0, 1, 0x0d, 0x97, 203, 0, 113, 9,
		0x00, 0x04, 0x00, 0x08, 0, 1, 0x0d, 0x96, 203, 0, 113, 8,
	};
	n = mk(b, d, sizeof(d));
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_true(m.has_changed);
	assert_int_equal(m.changed.port, 3479);
	inet_ntop(AF_INET, &m.changed.v4, ip, sizeof(ip));
	assert_string_equal(ip, "203.0.113.9");
	assert_false(m.has_other);
	assert_int_equal(m.n_unknown_required, 0);
	expect_bad((const uint8_t[]){ 0x00, 0x05, 0x00, 0x04, 0, 1, 0, 0 }, 8, "bad CHANGED-ADDRESS");
	assert_string_equal(rp_stun_attr_name(0x802C), "OTHER-ADDRESS");
	assert_null(rp_stun_attr_name(0x7f00));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_type_bits),
		cmocka_unit_test(test_rfc5769_request),
		cmocka_unit_test(test_rfc5769_v4),
		cmocka_unit_test(test_rfc5769_v6),
		cmocka_unit_test(test_fingerprint_flip),
		cmocka_unit_test(test_build_roundtrip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_attributes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
