/* SPDX-License-Identifier: MIT */
/* STUN codec: RFC 5769 test vectors, request building, strict parsing of malformed input, the TURN
 * attributes, the writer, MESSAGE-INTEGRITY and long-term credential keys. */
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


static void test_hmac_and_keys(void **state)
{
	(void)state;
	uint8_t mac[RP_STUN_MI_LEN], key[RP_STUN_LT_KEY_LEN];
	/* RFC 2202 test case 2 */
	static const uint8_t want_mac[20] = { 0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74,
					      0x16, 0xd5, 0xf1, 0x84, 0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79 };
	const char *data = "what do ya want for nothing?";
	rp_stun_hmac_sha1((const uint8_t *)"Jefe", 4, (const uint8_t *)data, strlen(data), mac);
	assert_memory_equal(mac, want_mac, 20);
	/* MD5("user:realm:pass") */
	static const uint8_t want_key[16] = { 0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb,
					      0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc, 0x40, 0xeb };
	rp_stun_lt_key("user", 4, "realm", 5, "pass", 4, key);
	assert_memory_equal(key, want_key, 16);
}

/* RFC 5769's samples carry MESSAGE-INTEGRITY under the short-term password "VOkJxbRl1RmTxUk/WvJxBt". */
static void test_rfc5769_integrity(void **state)
{
	(void)state;
	const char *pw = "VOkJxbRl1RmTxUk/WvJxBt";
	struct rp_stun_msg m;
	const uint8_t *v[3] = { rfc5769_req, rfc5769_v4, rfc5769_v6 };
	size_t n[3] = { sizeof(rfc5769_req), sizeof(rfc5769_v4), sizeof(rfc5769_v6) };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rp_stun_parse(v[i], n[i], &m), 0);
		assert_true(m.integrity_off > 0);
		assert_int_equal(rp_stun_check_integrity(v[i], n[i], &m, (const uint8_t *)pw, strlen(pw)), 0);
		assert_int_equal(rp_stun_check_integrity(v[i], n[i], &m, (const uint8_t *)"wrong", 5), -EACCES);
	}
	assert_int_equal(rp_stun_parse(rfc5769_req, sizeof(rfc5769_req), &m), 0);
	assert_true(m.has_username);
	assert_int_equal(m.username_len, 9);
	assert_string_equal(m.username, "evtj:h6vY");
	/* no MESSAGE-INTEGRITY */
	uint8_t b[64];
	int len = rp_stun_build_binding(b, sizeof(b), txid, NULL);
	assert_int_equal(rp_stun_parse(b, (size_t)len, &m), 0);
	assert_int_equal(rp_stun_check_integrity(b, (size_t)len, &m, (const uint8_t *)pw, strlen(pw)), -ENOMSG);
}

/* An authenticated TURN request built with the writer parses back to what was written. */
static void test_writer_turn(void **state)
{
	(void)state;
	uint8_t b[512], key[RP_STUN_LT_KEY_LEN];
	struct rp_stun_wr w;
	struct rp_stun_msg m;
	struct rp_stun_addr peer = { .family = RP_STUN_AF_INET, .port = 50123 }, peer6 = { .family = RP_STUN_AF_INET6, .port = 1 };
	char ip[INET6_ADDRSTRLEN];
	inet_pton(AF_INET, "198.18.3.2", &peer.v4);
	inet_pton(AF_INET6, "2001:db8::1", peer6.v6);
	rp_stun_lt_key("1700000000:a", 12, "natlab", 6, "pw", 2, key);
	rp_stun_wr_start(&w, b, sizeof(b), rp_stun_type(RP_STUN_METHOD_CONNECT, RP_STUN_REQUEST), txid);
	rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_PEER_ADDRESS, &peer);
	rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_RELAYED_ADDRESS, &peer6);
	rp_stun_wr_u32(&w, RP_STUN_ATTR_REQUESTED_TRANSPORT, (uint32_t)RP_STUN_TRANSPORT_TCP << 24);
	rp_stun_wr_u32(&w, RP_STUN_ATTR_LIFETIME, 600);
	rp_stun_wr_u32(&w, RP_STUN_ATTR_CONNECTION_ID, 0xdeadbeef);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_USERNAME, "1700000000:a", 12);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_REALM, "natlab", 6);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_NONCE, "abc", 3);
	rp_stun_wr_integrity(&w, key, sizeof(key));
	rp_stun_wr_fingerprint(&w);
	int n = rp_stun_wr_end(&w);
	assert_true(n > 0);
	assert_int_equal(n, 20 + 12 + 24 + 8 + 8 + 8 + 16 + 12 + 8 + 24 + 8);
	assert_int_equal(rp_stun_frame_len(b, (size_t)n, 0), n);
	assert_int_equal(rp_stun_parse(b, (size_t)n, &m), 0);
	assert_int_equal(m.method, RP_STUN_METHOD_CONNECT);
	assert_int_equal(m.cls, RP_STUN_REQUEST);
	assert_true(m.has_peer);
	inet_ntop(AF_INET, &m.peer.v4, ip, sizeof(ip));
	assert_string_equal(ip, "198.18.3.2");
	assert_int_equal(m.peer.port, 50123);
	assert_true(m.has_relayed);
	assert_int_equal(m.relayed.family, RP_STUN_AF_INET6);
	inet_ntop(AF_INET6, m.relayed.v6, ip, sizeof(ip));
	assert_string_equal(ip, "2001:db8::1");
	assert_true(m.has_transport);
	assert_int_equal(m.transport, RP_STUN_TRANSPORT_TCP);
	assert_true(m.has_lifetime);
	assert_int_equal(m.lifetime, 600);
	assert_true(m.has_connection_id);
	assert_int_equal(m.connection_id, 0xdeadbeef);
	assert_string_equal(m.username, "1700000000:a");
	assert_int_equal(m.realm_len, 6);
	assert_string_equal(m.realm, "natlab");
	assert_string_equal(m.nonce, "abc");
	assert_int_equal(m.nonce_len, 3);
	assert_true(m.has_fingerprint);
	assert_int_equal(m.n_unknown_required, 0);
	assert_int_equal(rp_stun_check_integrity(b, (size_t)n, &m, key, sizeof(key)), 0);
	key[0] ^= 1;
	assert_int_equal(rp_stun_check_integrity(b, (size_t)n, &m, key, sizeof(key)), -EACCES);
	key[0] ^= 1;
	/* a changed byte before MESSAGE-INTEGRITY (no FINGERPRINT this time, so the parse still passes) */
	rp_stun_wr_start(&w, b, sizeof(b), rp_stun_type(RP_STUN_METHOD_REFRESH, RP_STUN_REQUEST), txid);
	rp_stun_wr_u32(&w, RP_STUN_ATTR_LIFETIME, 0);
	rp_stun_wr_integrity(&w, key, sizeof(key));
	n = rp_stun_wr_end(&w);
	assert_int_equal(n, 20 + 8 + 24);
	assert_int_equal(rp_stun_parse(b, (size_t)n, &m), 0);
	assert_int_equal(m.lifetime, 0);
	assert_int_equal(rp_stun_check_integrity(b, (size_t)n, &m, key, sizeof(key)), 0);
	b[27] ^= 1;
	assert_int_equal(rp_stun_parse(b, (size_t)n, &m), 0);
	assert_int_equal(m.lifetime, 1);
	assert_int_equal(rp_stun_check_integrity(b, (size_t)n, &m, key, sizeof(key)), -EACCES);
}

static void test_writer_errors(void **state)
{
	(void)state;
	uint8_t b[64];
	struct rp_stun_wr w;
	struct rp_stun_addr bad = { .family = 3 };
	/* nothing after MESSAGE-INTEGRITY but FINGERPRINT, nothing after FINGERPRINT */
	rp_stun_wr_start(&w, b, sizeof(b), RP_STUN_BINDING_REQUEST, txid);
	rp_stun_wr_integrity(&w, (const uint8_t *)"k", 1);
	rp_stun_wr_u32(&w, RP_STUN_ATTR_LIFETIME, 1);
	assert_int_equal(rp_stun_wr_end(&w), -EINVAL);
	rp_stun_wr_start(&w, b, sizeof(b), RP_STUN_BINDING_REQUEST, txid);
	rp_stun_wr_fingerprint(&w);
	rp_stun_wr_fingerprint(&w);
	assert_int_equal(rp_stun_wr_end(&w), -EINVAL);
	/* too small: sticky, the first error wins */
	rp_stun_wr_start(&w, b, sizeof(b), RP_STUN_BINDING_REQUEST, txid);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_SOFTWARE, "01234567890123456789012345678901234567890", 41);
	assert_int_equal(rp_stun_wr_end(&w), -ENOSPC);
	rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_PEER_ADDRESS, &bad);
	assert_int_equal(rp_stun_wr_end(&w), -ENOSPC);
	rp_stun_wr_start(&w, b, sizeof(b), RP_STUN_BINDING_REQUEST, txid);
	rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_PEER_ADDRESS, &bad);
	assert_int_equal(rp_stun_wr_end(&w), -EINVAL);
	rp_stun_wr_start(&w, b, 19, RP_STUN_BINDING_REQUEST, txid);
	assert_int_equal(rp_stun_wr_end(&w), -ENOSPC);
	rp_stun_wr_start(&w, b, sizeof(b), 0xC001, txid);
	assert_int_equal(rp_stun_wr_end(&w), -EINVAL);
	/* an empty value is fine */
	rp_stun_wr_start(&w, b, sizeof(b), RP_STUN_BINDING_REQUEST, txid);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_SOFTWARE, NULL, 0);
	assert_int_equal(rp_stun_wr_end(&w), 24);
}

/* TURN attributes in malformed shapes; a 401 challenge as coturn sends it. */
static void test_turn_attributes(void **state)
{
	(void)state;
	uint8_t b[2048];
	struct rp_stun_msg m;
	expect_bad((const uint8_t[]){ 0x00, 0x0d, 0x00, 0x02, 0, 1, 0, 0 }, 8, "bad LIFETIME length");
	expect_bad((const uint8_t[]){ 0x00, 0x19, 0x00, 0x01, 6, 0, 0, 0 }, 8, "bad REQUESTED-TRANSPORT length");
	expect_bad((const uint8_t[]){ 0x00, 0x2a, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0 }, 12, "bad CONNECTION-ID length");
	expect_bad((const uint8_t[]){ 0x00, 0x16, 0x00, 0x08, 0, 2, 0, 0, 0, 0, 0, 0 }, 12, "bad XOR-RELAYED-ADDRESS");
	expect_bad((const uint8_t[]){ 0x00, 0x12, 0x00, 0x04, 0, 1, 0, 0 }, 8, "bad XOR-PEER-ADDRESS");
	expect_bad((const uint8_t[]){ 0x00, 0x0a, 0x00, 0x03, 0, 1, 0, 0 }, 8, "bad UNKNOWN-ATTRIBUTES length");
	/* a REALM of 764 bytes is one too many */
	uint8_t big[4 + 764];
	big[0] = 0x00; big[1] = 0x14; big[2] = 764 >> 8; big[3] = 764 & 0xff;
	memset(big + 4, 'r', 764);
	size_t n = mk(b, big, sizeof(big));
	assert_int_equal(rp_stun_parse(b, n, &m), -EBADMSG);
	assert_string_equal(m.why, "REALM too long");
	big[3] = 763 & 0xff;   /* 763: accepted (the last byte becomes padding) */
	n = mk(b, big, sizeof(big));
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_int_equal(m.realm_len, 763);
	/* 401 with ERROR-CODE, NONCE, REALM, UNKNOWN-ATTRIBUTES */
	const uint8_t a[] = {
		0x00, 0x09, 0x00, 0x10, 0, 0, 4, 1, 'U', 'n', 'a', 'u', 't', 'h', 'o', 'r', 'i', 'z', 'e', 'd',
		0x00, 0x15, 0x00, 0x05, 'n', 0, 'c', 'e', '!', 0, 0, 0,
		0x00, 0x14, 0x00, 0x06, 'n', 'a', 't', 'l', 'a', 'b', 0, 0,
		0x00, 0x0a, 0x00, 0x06, 0x00, 0x19, 0x7f, 0x01, 0x00, 0x2a, 0, 0,
	};
	n = mk(b, a, sizeof(a));
	b[1] = 0x13;   /* Allocate error response */
	assert_int_equal(rp_stun_parse(b, n, &m), 0);
	assert_int_equal(m.method, RP_STUN_METHOD_ALLOCATE);
	assert_int_equal(m.cls, RP_STUN_ERROR);
	assert_int_equal(m.error_code, 401);
	assert_true(m.has_nonce);
	assert_int_equal(m.nonce_len, 5);
	assert_memory_equal(m.nonce, "n\0ce!", 5);   /* raw bytes, a NUL kept */
	assert_string_equal(m.realm, "natlab");
	assert_int_equal(m.n_unknown_attrs, 3);
	assert_int_equal(m.unknown_attrs[1], 0x7f01);
	assert_string_equal(rp_stun_attr_name(RP_STUN_ATTR_CONNECTION_ID), "CONNECTION-ID");
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
		cmocka_unit_test(test_hmac_and_keys),
		cmocka_unit_test(test_rfc5769_integrity),
		cmocka_unit_test(test_writer_turn),
		cmocka_unit_test(test_writer_errors),
		cmocka_unit_test(test_turn_attributes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
