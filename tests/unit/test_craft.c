/* SPDX-License-Identifier: MIT */
/* craft: rendered packets carry exactly the fields asked for, the options bytes tcpopt_build makes,
 * and checksums that verify when recomputed independently; ptag re-stamping across shapes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "rawpunch/net/craft.h"
#include "capture/decode.h"
#include "userstack/cksum.h"

static uint32_t ip(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Independent one's-complement sum over the whole header / pseudo header: must fold to 0xffff. */
static uint16_t fold(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | (i + 1 < n ? p[i + 1] : 0));
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void verify_csums(const uint8_t *pkt, int len)
{
	size_t ihl = (size_t)(pkt[0] & 15) * 4;
	assert_int_equal(fold(pkt, ihl, 0), 0xffff);
	uint32_t ps = (uint32_t)be16(pkt + 12) + be16(pkt + 14) + be16(pkt + 16) + be16(pkt + 18) + 6 +
		      (uint32_t)(len - (int)ihl);
	assert_int_equal(fold(pkt + ihl, (size_t)len - ihl, ps), 0xffff);
	/* and the shared checksum module agrees with the packet */
	assert_int_equal(us_cksum_ipv4(pkt, ihl), be16(pkt + 10));
	uint32_t sa, da;
	memcpy(&sa, pkt + 12, 4);
	memcpy(&da, pkt + 16, 4);
	assert_int_equal(us_cksum_ipv4_l4(sa, da, 6, pkt + ihl, (size_t)len - ihl, 16), be16(pkt + ihl + 16));
}

static struct rp_seg base(void)
{
	struct rp_seg s = { 0 };
	s.saddr = ip("10.0.1.2");
	s.daddr = ip("198.18.3.2");
	s.sport = 40001;
	s.dport = 7000;
	s.seq = 0xdeadbeef;
	s.ack = 0;
	s.flags = RP_TH_SYN;
	s.win = 64240;
	s.ttl = 2;
	s.ip_id = 0x1234;
	return s;
}

static void test_syn_fields_and_options(void **st)
{
	(void)st;
	struct rp_craft *c;
	uint8_t buf[RP_CRAFT_MAXLEN], ob[TCPOPT_MAXLEN];
	struct rp_seg s = base();
	s.opts.has_mss = true;
	s.opts.mss = 1460;
	s.opts.sack_perm = true;
	s.opts.has_ts = true;
	s.opts.tsval = 0x01020304;
	s.opts.tsecr = 0;
	s.opts.has_wscale = true;
	s.opts.wscale = 7;
	assert_int_equal(rp_craft_open(&c, RP_CRAFT_NOSEND, NULL, 0), 0);
	int ol = tcpopt_build(&s.opts, ob, sizeof(ob));
	assert_int_equal(ol, 20);
	int n = rp_craft_render(c, &s, buf, sizeof(buf));
	assert_int_equal(n, 40 + ol);
	assert_int_equal(rp_craft_len(&s), n);
	assert_int_equal(buf[0], 0x45);
	assert_int_equal(be16(buf + 2), n);
	assert_int_equal(be16(buf + 4), 0x1234);
	assert_int_equal(be16(buf + 6), 0x4000);       /* DF */
	assert_int_equal(buf[8], 2);
	assert_int_equal(buf[9], 6);
	assert_memory_equal(buf + 12, &s.saddr, 4);
	assert_memory_equal(buf + 16, &s.daddr, 4);
	const uint8_t *t = buf + 20;
	assert_int_equal(be16(t), 40001);
	assert_int_equal(be16(t + 2), 7000);
	assert_int_equal(be32(t + 4), 0xdeadbeef);
	assert_int_equal(be32(t + 8), 0);
	assert_int_equal(t[12] >> 4, 5 + ol / 4);
	assert_int_equal(t[13], RP_TH_SYN);
	assert_int_equal(be16(t + 14), 64240);
	assert_memory_equal(t + 20, ob, (size_t)ol);
	verify_csums(buf, n);

	/* the capture decoder reads back what we asked for */
	struct rp_event ev;
	assert_int_equal(rp_decode(228 /* DLT_IPV4 */, buf, (size_t)n, &ev), 0);
	assert_int_equal(ev.kind, RP_EV_TCP);
	assert_false(ev.ip_csum_bad);
	assert_int_equal(ev.seq, 0xdeadbeef);
	assert_true(ev.opts.has_mss && ev.opts.mss == 1460);
	assert_true(ev.opts.has_wscale && ev.opts.wscale == 7);
	assert_true(ev.opts.sack_perm && ev.opts.has_ts && ev.opts.tsval == 0x01020304);
	rp_craft_close(c);
}

static void test_restamp_and_shapes(void **st)
{
	(void)st;
	struct rp_craft *c;
	uint8_t buf[RP_CRAFT_MAXLEN];
	static const uint8_t data[] = "hello, peer\n";   /* 13 bytes incl. NUL: odd length */
	struct rp_craft_stats cs;
	assert_int_equal(rp_craft_open(&c, RP_CRAFT_NOSEND, NULL, 0), 0);

	/* the same shape many times: ports/seq/flags change, pblocks are re-stamped, never rebuilt */
	for (uint32_t i = 0; i < 200; i++) {
		struct rp_seg s = base();
		s.sport = (uint16_t)(1024 + i);
		s.seq = i * 7919u;
		s.ack = i;
		s.flags = (i & 1) ? (RP_TH_SYN | RP_TH_ACK) : RP_TH_RST;
		s.ip_id = (uint16_t)i;
		int n = rp_craft_render(c, &s, buf, sizeof(buf));
		assert_int_equal(n, 40);
		assert_int_equal(be16(buf + 20), 1024 + i);
		assert_int_equal(be32(buf + 24), i * 7919u);
		assert_int_equal(buf[33], s.flags);
		assert_int_equal(be16(buf + 4), (uint16_t)i);
		verify_csums(buf, n);
	}
	rp_craft_stats(c, &cs);
	assert_int_equal(cs.rebuilds, 0);
	assert_int_equal(cs.rendered, 200);

	/* ACK with timestamps (12 bytes of options), then data (odd length), then FIN, then bare ACK */
	struct rp_seg s = base();
	s.flags = RP_TH_ACK;
	s.ack = 77;
	s.opts.has_ts = true;
	s.opts.tsval = 5;
	s.opts.tsecr = 6;
	int n = rp_craft_render(c, &s, buf, sizeof(buf));
	assert_int_equal(n, 52);
	assert_int_equal(buf[32] >> 4, 8);
	verify_csums(buf, n);

	s.flags = RP_TH_ACK | RP_TH_PSH;
	s.payload = data;
	s.paylen = sizeof(data);
	n = rp_craft_render(c, &s, buf, sizeof(buf));
	assert_int_equal(n, 52 + (int)sizeof(data));
	assert_memory_equal(buf + 52, data, sizeof(data));
	verify_csums(buf, n);

	s.flags = RP_TH_ACK | RP_TH_FIN;
	s.payload = NULL;
	s.paylen = 0;
	memset(&s.opts, 0, sizeof(s.opts));
	n = rp_craft_render(c, &s, buf, sizeof(buf));
	assert_int_equal(n, 40);
	assert_int_equal(buf[32] >> 4, 5);
	assert_int_equal(buf[33], RP_TH_ACK | RP_TH_FIN);
	verify_csums(buf, n);
	rp_craft_stats(c, &cs);
	assert_true(cs.rebuilds >= 3);

	/* raw option bytes are padded to 4 */
	static const uint8_t odd[] = { 1, 2, 4, 5, 0xb4 };   /* NOP, MSS 1460 (5 bytes) */
	s.raw_opts = odd;
	s.raw_opts_len = sizeof(odd);
	n = rp_craft_render(c, &s, buf, sizeof(buf));
	assert_int_equal(n, 48);
	assert_memory_equal(buf + 40, odd, sizeof(odd));
	assert_int_equal(buf[45] | buf[46] | buf[47], 0);
	verify_csums(buf, n);
	rp_craft_close(c);
}

static void test_bad_input(void **st)
{
	(void)st;
	struct rp_craft *c;
	uint8_t buf[64], big[TCPOPT_MAXLEN + 1] = { 0 };
	assert_int_equal(rp_craft_open(&c, RP_CRAFT_NOSEND, NULL, 0), 0);
	struct rp_seg s = base();
	s.sport = 0;
	assert_int_equal(rp_craft_render(c, &s, buf, sizeof(buf)), -EINVAL);
	s = base();
	s.daddr = 0;
	assert_int_equal(rp_craft_len(&s), -EINVAL);
	s = base();
	s.raw_opts = big;
	s.raw_opts_len = sizeof(big);
	assert_int_equal(rp_craft_render(c, &s, buf, sizeof(buf)), -EINVAL);
	s = base();
	s.paylen = 10;   /* no payload pointer */
	assert_int_equal(rp_craft_render(c, &s, buf, sizeof(buf)), -EINVAL);
	s = base();
	assert_int_equal(rp_craft_render(c, &s, buf, 39), -ENOSPC);
	assert_int_equal(rp_craft_send(c, &s), -EOPNOTSUPP);   /* render-only context */
	assert_int_equal(rp_craft_fd(c), -1);
	/* still usable after errors */
	assert_int_equal(rp_craft_render(c, &s, buf, sizeof(buf)), 40);
	verify_csums(buf, 40);
	rp_craft_close(c);
}

static void test_from_us(void **st)
{
	(void)st;
	struct us_out_seg o = { .seq = 1, .ack = 2, .flags = US_TH_ACK | US_TH_FIN, .win = 502 };
	struct rp_seg s;
	rp_seg_from_us(&s, ip("10.0.1.2"), 5, ip("10.0.2.2"), 6, &o);
	assert_int_equal(s.seq, 1);
	assert_int_equal(s.ack, 2);
	assert_int_equal(s.flags, US_TH_ACK | US_TH_FIN);
	assert_int_equal(s.win, 502);
	assert_int_equal(s.sport, 5);
	assert_int_equal(s.dport, 6);
	assert_int_equal(s.ttl, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syn_fields_and_options),
		cmocka_unit_test(test_restamp_and_shapes),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_from_us),
	};
	return cmocka_run_group_tests_name("craft", tests, NULL, NULL);
}
