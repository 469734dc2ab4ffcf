/* SPDX-License-Identifier: MIT */
/* TCP options codec (userstack/tcpopt.h): well-formed, every length fault, unknown kinds, EOL
 * padding, wscale clamp, and the Linux SYN layout on build. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "userstack/tcpopt.h"

static void test_linux_syn(void **state)
{
	(void)state;
	/* what Linux 6.x puts on a SYN: mss 1460, sackOK, TS val/ecr, nop, wscale 7 */
	const uint8_t p[] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0,
			      1, 3, 3, 7 };
	struct tcp_opts o;
	assert_int_equal(tcpopt_parse(p, sizeof(p), &o), 0);
	assert_true(o.has_mss);
	assert_int_equal(o.mss, 1460);
	assert_true(o.sack_perm);
	assert_true(o.has_ts);
	assert_int_equal(o.tsval, 0x11223344u);
	assert_int_equal(o.tsecr, 0);
	assert_true(o.has_wscale);
	assert_int_equal(o.wscale, 7);
	assert_int_equal(o.n_unknown, 0);
}

static void test_empty_and_nop_only(void **state)
{
	(void)state;
	struct tcp_opts o;
	memset(&o, 0xa5, sizeof(o));
	assert_int_equal(tcpopt_parse(NULL, 0, &o), 0);
	assert_false(o.has_mss || o.has_ts || o.has_wscale || o.sack_perm);
	const uint8_t nops[] = { 1, 1, 1, 1 };
	assert_int_equal(tcpopt_parse(nops, sizeof(nops), &o), 0);
	assert_false(o.has_mss);
	assert_int_equal(tcpopt_parse(NULL, 4, &o), -EINVAL);
}

static void test_eol_stops(void **state)
{
	(void)state;
	/* MSS, EOL, then garbage that would be malformed if read */
	const uint8_t p[] = { 2, 4, 0x02, 0x18, 0, 0xff, 0x01, 3 };
	struct tcp_opts o;
	assert_int_equal(tcpopt_parse(p, sizeof(p), &o), 0);
	assert_true(o.has_mss);
	assert_int_equal(o.mss, 536);
	assert_false(o.has_wscale);
}

static void test_unknown_skipped(void **state)
{
	(void)state;
	/* kind 30 (MPTCP) len 4, kind 254 (experimental) len 6, then wscale */
	const uint8_t p[] = { 30, 4, 0xaa, 0xbb, 254, 6, 1, 2, 3, 4, 3, 3, 2, 1 };
	struct tcp_opts o;
	assert_int_equal(tcpopt_parse(p, sizeof(p), &o), 0);
	assert_int_equal(o.n_unknown, 2);
	assert_true(o.has_wscale);
	assert_int_equal(o.wscale, 2);
}

static void test_sack_blocks_recognised(void **state)
{
	(void)state;
	const uint8_t ok[] = { 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2 };
	const uint8_t bad[] = { 5, 6, 0, 0, 0, 1 };
	struct tcp_opts o;
	assert_int_equal(tcpopt_parse(ok, sizeof(ok), &o), 0);
	assert_int_equal(o.n_unknown, 0);
	assert_int_equal(tcpopt_parse(bad, sizeof(bad), &o), -EINVAL);
}

static void test_wscale_clamp(void **state)
{
	(void)state;
	const uint8_t p15[] = { 3, 3, 15, 1 };
	const uint8_t p255[] = { 3, 3, 255, 1 };
	const uint8_t p14[] = { 3, 3, 14, 1 };
	struct tcp_opts o;
	assert_int_equal(tcpopt_parse(p15, sizeof(p15), &o), 0);
	assert_int_equal(o.wscale, 14);
	assert_int_equal(tcpopt_parse(p255, sizeof(p255), &o), 0);
	assert_int_equal(o.wscale, 14);
	assert_int_equal(tcpopt_parse(p14, sizeof(p14), &o), 0);
	assert_int_equal(o.wscale, 14);
}

static void test_length_faults(void **state)
{
	(void)state;
	struct tcp_opts o;
	/* kind with no length byte at the very end (after a good MSS: partial result kept) */
	const uint8_t a[] = { 2, 4, 0x05, 0xb4, 8 };
	assert_int_equal(tcpopt_parse(a, sizeof(a), &o), -EINVAL);
	assert_true(o.has_mss);
	assert_int_equal(o.mss, 1460);
	/* length 0 and 1 (would loop or overlap) */
	const uint8_t b0[] = { 99, 0, 1, 1 }, b1[] = { 99, 1, 1, 1 };
	assert_int_equal(tcpopt_parse(b0, sizeof(b0), &o), -EINVAL);
	assert_int_equal(tcpopt_parse(b1, sizeof(b1), &o), -EINVAL);
	/* length runs past the end */
	const uint8_t c[] = { 8, 10, 0, 0, 0, 1 };
	assert_int_equal(tcpopt_parse(c, sizeof(c), &o), -EINVAL);
	assert_false(o.has_ts);
	const uint8_t c2[] = { 99, 5, 0, 0 };
	assert_int_equal(tcpopt_parse(c2, sizeof(c2), &o), -EINVAL);
	/* wrong length for each known kind */
	const uint8_t mss3[] = { 2, 3, 5, 1 }, mss5[] = { 2, 5, 5, 0xb4, 0, 1, 1, 1 };
	const uint8_t ws2[] = { 3, 2, 1, 1 }, ws4[] = { 3, 4, 7, 0 };
	const uint8_t sp3[] = { 4, 3, 0, 1 };
	const uint8_t ts8[] = { 8, 8, 0, 0, 0, 1, 0, 0 }, ts12[] = { 8, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0 };
	assert_int_equal(tcpopt_parse(mss3, sizeof(mss3), &o), -EINVAL);
	assert_false(o.has_mss);
	assert_int_equal(tcpopt_parse(mss5, sizeof(mss5), &o), -EINVAL);
	assert_int_equal(tcpopt_parse(ws2, sizeof(ws2), &o), -EINVAL);
	assert_false(o.has_wscale);
	assert_int_equal(tcpopt_parse(ws4, sizeof(ws4), &o), -EINVAL);
	assert_int_equal(tcpopt_parse(sp3, sizeof(sp3), &o), -EINVAL);
	assert_false(o.sack_perm);
	assert_int_equal(tcpopt_parse(ts8, sizeof(ts8), &o), -EINVAL);
	assert_int_equal(tcpopt_parse(ts12, sizeof(ts12), &o), -EINVAL);
	assert_false(o.has_ts);
}

/* Every prefix of a valid block either parses or fails cleanly; never reads past len (ASan). */
static void test_all_truncations(void **state)
{
	(void)state;
	const uint8_t p[] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7 };
	const size_t boundaries[] = { 0, 4, 6, 16, 17, 20 };
	struct tcp_opts o;
	for (size_t n = 0; n <= sizeof(p); n++) {
		uint8_t *h = malloc(n ? n : 1);   /* exact-size heap copy: ASan catches over-reads */
		memcpy(h, p, n);
		int rc = tcpopt_parse(h, n, &o);
		bool boundary = false;
		for (size_t i = 0; i < sizeof(boundaries) / sizeof(boundaries[0]); i++)
			boundary |= boundaries[i] == n;
		assert_int_equal(rc, boundary ? 0 : -EINVAL);
		free(h);
	}
}

static void test_build_layouts(void **state)
{
	(void)state;
	uint8_t buf[TCPOPT_MAXLEN];
	struct tcp_opts o = { .has_mss = true, .mss = 1460, .sack_perm = true, .has_ts = true,
			      .tsval = 0x01020304, .tsecr = 0, .has_wscale = true, .wscale = 7 };
	const uint8_t linux_syn[] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0,
				      1, 3, 3, 7 };
	assert_int_equal(tcpopt_build(&o, buf, sizeof(buf)), sizeof(linux_syn));
	assert_memory_equal(buf, linux_syn, sizeof(linux_syn));

	/* timestamps only (data segments): NOP NOP TS */
	struct tcp_opts t = { .has_ts = true, .tsval = 5, .tsecr = 6 };
	const uint8_t ts_only[] = { 1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6 };
	assert_int_equal(tcpopt_build(&t, buf, sizeof(buf)), sizeof(ts_only));
	assert_memory_equal(buf, ts_only, sizeof(ts_only));

	/* MSS + wscale + SACK without TS: MSS, NOP WS, NOP NOP SACK_PERM */
	struct tcp_opts s = { .has_mss = true, .mss = 536, .has_wscale = true, .wscale = 20,
			      .sack_perm = true };
	const uint8_t nots[] = { 2, 4, 0x02, 0x18, 1, 3, 3, 14, 1, 1, 4, 2 };
	assert_int_equal(tcpopt_build(&s, buf, sizeof(buf)), sizeof(nots));
	assert_memory_equal(buf, nots, sizeof(nots));

	struct tcp_opts none = { 0 };
	assert_int_equal(tcpopt_build(&none, buf, sizeof(buf)), 0);
	assert_int_equal(tcpopt_build(&o, buf, 19), -ENOSPC);
}

static void test_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[TCPOPT_MAXLEN];
	for (unsigned m = 0; m < 16; m++) {
		struct tcp_opts in = { .has_mss = m & 1, .mss = 1400, .has_wscale = m & 2, .wscale = 9,
				       .sack_perm = m & 4, .has_ts = m & 8, .tsval = 0xdeadbeef,
				       .tsecr = 0xfeedface };
		struct tcp_opts out;
		int n = tcpopt_build(&in, buf, sizeof(buf));
		assert_true(n >= 0 && n % 4 == 0);
		assert_int_equal(tcpopt_parse(buf, (size_t)n, &out), 0);
		assert_int_equal(out.has_mss, in.has_mss);
		assert_int_equal(out.has_wscale, in.has_wscale);
		assert_int_equal(out.sack_perm, in.sack_perm);
		assert_int_equal(out.has_ts, in.has_ts);
		if (in.has_mss) assert_int_equal(out.mss, 1400);
		if (in.has_wscale) assert_int_equal(out.wscale, 9);
		if (in.has_ts) {
			assert_int_equal(out.tsval, 0xdeadbeefu);
			assert_int_equal(out.tsecr, 0xfeedfaceu);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linux_syn),
		cmocka_unit_test(test_empty_and_nop_only),
		cmocka_unit_test(test_eol_stops),
		cmocka_unit_test(test_unknown_skipped),
		cmocka_unit_test(test_sack_blocks_recognised),
		cmocka_unit_test(test_wscale_clamp),
		cmocka_unit_test(test_length_faults),
		cmocka_unit_test(test_all_truncations),
		cmocka_unit_test(test_build_layouts),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests_name("tcpopt", tests, NULL, NULL);
}
