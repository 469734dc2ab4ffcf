/* SPDX-License-Identifier: MIT */
/* cksum: RFC 1071's worked example, odd lengths, partial sums that add up, the IPv4 pseudo header,
 * RFC 1624's example (eqn. 3 gives 0x0000 where eqn. 2 gives 0xffff), incremental updates equal
 * a full recompute over random data, UDP's zero rule, and packets the Linux kernel sent (captured
 * on lo with dumpcap; Wireshark's own checksum validation agrees with the values below). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "userstack/cksum.h"

static uint64_t rs = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* Reference: the textbook loop, byte by byte, padding an odd last byte with zero. */
static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)(p[i] << 8 | (i + 1 < n ? p[i + 1] : 0));
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void rfc1071_example(void **st)
{
	(void)st;
	/* RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (folded), checksum 220d */
	static const uint8_t d[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	assert_int_equal(us_cksum_fold(us_cksum_add(0, d, 8)), 0xddf2);
	assert_int_equal(us_cksum(d, 8), 0x220d);
	/* partial sums in any even split add up to the same */
	for (size_t k = 0; k <= 8; k += 2)
		assert_int_equal(us_cksum_finish(us_cksum_add(us_cksum_add(0, d, k), d + k, 8 - k)), 0x220d);
	/* zero bytes and nothing: sum 0, checksum ffff; all ones: sum ffff, checksum 0 */
	static const uint8_t z[6], ff[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	assert_int_equal(us_cksum(z, 6), 0xffff);
	assert_int_equal(us_cksum(NULL, 0), 0xffff);
	assert_int_equal(us_cksum(ff, 6), 0x0000);
}

static void odd_lengths(void **st)
{
	(void)st;
	static const uint8_t one[1] = { 0x01 }, three[3] = { 0xab, 0xcd, 0xef };
	assert_int_equal(us_cksum(one, 1), (uint16_t)~0x0100);
	assert_int_equal(us_cksum(three, 3), (uint16_t)~(0xabcd + 0xef00 - 0xffff));  /* one carry */
	uint8_t buf[301];
	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(rnd() % sizeof(buf));
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rnd();
		uint32_t start = (uint32_t)(rnd() & 0xffff);
		assert_int_equal(us_cksum_fold(us_cksum_add(start, buf, n)), ref_sum(buf, n, start));
		/* an odd run is the even run with a zero byte appended */
		if (n & 1) {
			buf[n] = 0;
			assert_int_equal(us_cksum(buf, n), us_cksum(buf, n + 1));
		}
	}
}

static void large_sums_do_not_overflow(void **st)
{
	(void)st;
	static uint8_t big[65536];
	memset(big, 0xff, sizeof(big));
	big[0] = 0xfe;   /* not all ones, so the sum is not the +0/-0 edge */
	/* a partial sum near 2^32 to start from: 0xfffffffe is 0xfffe modulo 0xffff */
	assert_int_equal(us_cksum_fold(us_cksum_add(0xfffffffeu, big, sizeof(big))),
			 ref_sum(big, sizeof(big), 0xfffe));
}

static void pseudo_header(void **st)
{
	(void)st;
	uint32_t sa = inet_addr("10.0.1.2"), da = inet_addr("198.18.3.2");
	uint8_t ph[12];
	memcpy(ph, &sa, 4);
	memcpy(ph + 4, &da, 4);
	ph[8] = 0;
	ph[9] = 6;
	ph[10] = 0x01;
	ph[11] = 0x2c;    /* 300 */
	assert_int_equal(us_cksum_fold(us_cksum_pseudo4(sa, da, 6, 300)), ref_sum(ph, 12, 0));
}

/* RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285: eqn. 3 gives 0x0000. */
static void rfc1624_example(void **st)
{
	(void)st;
	assert_int_equal(us_cksum_update16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

static void incremental_matches_full(void **st)
{
	(void)st;
	uint8_t buf[60];
	for (int round = 0; round < 20000; round++) {
		size_t len = 20 + (rnd() % 20) * 2;
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd();
		/* some all-zero / all-ones buffers: the RFC 1624 corner cases */
		if (round % 97 == 0)
			memset(buf, round % 2 ? 0xff : 0, len);
		buf[10] = buf[11] = 0;
		uint16_t c = us_cksum(buf, len);
		buf[10] = (uint8_t)(c >> 8);
		buf[11] = (uint8_t)c;
		assert_int_equal(us_cksum(buf, len), 0);
		assert_true(us_cksum_ipv4_ok(buf, len));
		/* change a 16-bit field and a 32-bit field (not the checksum) */
		size_t o16 = (rnd() % (len / 2)) * 2, o32 = (rnd() % (len / 2 - 1)) * 2;
		if (o16 == 10)
			o16 = 12;
		if (o32 == 8 || o32 == 10)
			o32 = 12;
		uint16_t old16 = be16(buf + o16), new16 = (uint16_t)rnd();
		buf[o16] = (uint8_t)(new16 >> 8);
		buf[o16 + 1] = (uint8_t)new16;
		c = us_cksum_update16(c, old16, new16);
		uint32_t old32 = (uint32_t)be16(buf + o32) << 16 | be16(buf + o32 + 2);
		uint32_t new32 = (uint32_t)rnd();
		buf[o32] = (uint8_t)(new32 >> 24); buf[o32 + 1] = (uint8_t)(new32 >> 16);
		buf[o32 + 2] = (uint8_t)(new32 >> 8); buf[o32 + 3] = (uint8_t)new32;
		c = us_cksum_update32(c, old32, new32);
		/* equal to a full recompute over the changed bytes (checksum field taken as zero) */
		assert_int_equal(c, us_cksum_ipv4(buf, len));
		buf[10] = (uint8_t)(c >> 8);
		buf[11] = (uint8_t)c;
		assert_int_equal(us_cksum(buf, len), 0);
	}
}

/* The pieces the burst template uses (reopen, take old values out once, put new ones in per
 * packet) give the same as the one-field updates. */
static void precomputed_base_matches_updates(void **st)
{
	(void)st;
	for (int round = 0; round < 5000; round++) {
		uint16_t c = (uint16_t)rnd(), a = (uint16_t)rnd(), a2 = (uint16_t)rnd();
		uint32_t b = (uint32_t)rnd(), b2 = (uint32_t)rnd();
		uint32_t base = us_cksum_sub32(us_cksum_sub16(us_cksum_reopen(c), a), b);
		uint16_t got = us_cksum_finish(us_cksum_add32(us_cksum_add16(base, a2), b2));
		assert_int_equal(got, us_cksum_update32(us_cksum_update16(c, a, a2), b, b2));
	}
}

/* A SYN and the RST it drew, as the kernel sent them over lo (127.0.0.1:57386 -> :9). The SYN left
 * with checksum offload: its field holds the folded pseudo header sum (0xfe30), and Wireshark says
 * the full checksum would be 0xe727. The RST is checksummed in software, and valid. */
static const uint8_t SYN[60] = {
	0x45, 0x00, 0x00, 0x3c, 0x26, 0x27, 0x40, 0x00, 0x40, 0x06, 0x16, 0x93, 0x7f, 0x00, 0x00, 0x01,
	0x7f, 0x00, 0x00, 0x01, 0xe0, 0x2a, 0x00, 0x09, 0x17, 0x7a, 0x0b, 0xb3, 0x00, 0x00, 0x00, 0x00,
	0xa0, 0x02, 0xff, 0xd7, 0xfe, 0x30, 0x00, 0x00, 0x02, 0x04, 0xff, 0xd7, 0x04, 0x02, 0x08, 0x0a,
	0x80, 0x3f, 0xe5, 0x36, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
};
static const uint8_t RST[40] = {
	0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x3c, 0xce, 0x7f, 0x00, 0x00, 0x01,
	0x7f, 0x00, 0x00, 0x01, 0x00, 0x09, 0xe0, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x17, 0x7a, 0x0b, 0xb4,
	0x50, 0x14, 0x00, 0x00, 0xae, 0x6c, 0x00, 0x00,
};

static void kernel_packets(void **st)
{
	(void)st;
	uint32_t lo;
	memcpy(&lo, SYN + 12, 4);
	assert_int_equal(lo, inet_addr("127.0.0.1"));

	/* IPv4 headers: both valid, and we compute what the kernel wrote */
	assert_true(us_cksum_ipv4_ok(SYN, 20));
	assert_true(us_cksum_ipv4_ok(RST, 20));
	assert_int_equal(us_cksum_ipv4(SYN, 20), 0x1693);
	assert_int_equal(us_cksum_ipv4(RST, 20), 0x3cce);

	/* the RST's TCP checksum */
	assert_true(us_cksum_ipv4_l4_ok(lo, lo, 6, RST + 20, 20));
	assert_int_equal(us_cksum_ipv4_l4(lo, lo, 6, RST + 20, 20, 16), 0xae6c);

	/* the offloaded SYN: the partial the kernel left is our pseudo header sum; the full checksum
	 * is Wireshark's 0xe727; as captured it does not verify */
	assert_int_equal(us_cksum_fold(us_cksum_pseudo4(lo, lo, 6, 40)), 0xfe30);
	assert_int_equal(us_cksum_ipv4_l4(lo, lo, 6, SYN + 20, 40, 16), 0xe727);
	assert_false(us_cksum_ipv4_l4_ok(lo, lo, 6, SYN + 20, 40));
	uint8_t fixed[60];
	memcpy(fixed, SYN, sizeof(fixed));
	fixed[36] = 0xe7;
	fixed[37] = 0x27;
	assert_true(us_cksum_ipv4_l4_ok(lo, lo, 6, fixed + 20, 40));

	/* any single flipped bit is caught */
	for (size_t i = 0; i < sizeof(RST) * 8; i++) {
		uint8_t b[40];
		memcpy(b, RST, sizeof(b));
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (i / 8 < 20)
			assert_false(us_cksum_ipv4_ok(b, 20));
		else
			assert_false(us_cksum_ipv4_l4_ok(lo, lo, 6, b + 20, 20));
	}
}

/* UDP: a checksum that computes to 0 is sent as 0xffff (RFC 768), and verifies. */
static void udp_zero_is_ffff(void **st)
{
	(void)st;
	uint32_t sa = inet_addr("10.0.0.1"), da = inet_addr("10.0.0.2");
	uint8_t u[10] = { 0x13, 0x88, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00 };
	/* pick the 2 data bytes so that the whole sum folds to 0xffff */
	uint16_t s = us_cksum_fold(us_cksum_add(us_cksum_pseudo4(sa, da, 17, 10), u, 10));
	uint16_t w = (uint16_t)(0xffff - s);
	u[8] = (uint8_t)(w >> 8);
	u[9] = (uint8_t)w;
	assert_int_equal(us_cksum_ipv4_l4(sa, da, 17, u, 10, 6), 0xffff);
	u[6] = u[7] = 0xff;
	assert_true(us_cksum_ipv4_l4_ok(sa, da, 17, u, 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc1071_example),
		cmocka_unit_test(odd_lengths),
		cmocka_unit_test(large_sums_do_not_overflow),
		cmocka_unit_test(pseudo_header),
		cmocka_unit_test(rfc1624_example),
		cmocka_unit_test(incremental_matches_full),
		cmocka_unit_test(precomputed_base_matches_updates),
		cmocka_unit_test(kernel_packets),
		cmocka_unit_test(udp_zero_is_ffff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
