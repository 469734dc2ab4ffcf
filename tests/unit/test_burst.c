/* SPDX-License-Identifier: MIT */
/* burst: a re-stamped template (incremental checksums: userstack/cksum.h, tested in test_cksum) is
 * byte for byte the packet libnet (rawpunch/craft) builds for the same fields, with and without
 * options and an Ethernet header; pair sets enumerate in the documented order; random order visits
 * every pair exactly once per pass; per-packet seq is the SipHash cookie; IP ID modes; bad configs
 * refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/net/burst.h"
#include "rawpunch/net/craft.h"
#include "capture/decode.h"
#include "userstack/cookie.h"

static uint64_t rs = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static uint32_t ip4(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void base_seg(struct rp_seg *s, bool opts)
{
	memset(s, 0, sizeof(*s));
	s->saddr = ip4("10.77.0.1");
	s->daddr = ip4("10.77.0.2");
	s->sport = 40000;
	s->dport = 80;
	s->seq = 0x01020304;
	s->flags = RP_TH_SYN;
	s->win = 64240;
	s->ttl = 3;
	s->ip_id = 0x1111;
	if (opts) {
		s->opts.has_mss = true;
		s->opts.mss = 1460;
		s->opts.has_wscale = true;
		s->opts.wscale = 7;
		s->opts.sack_perm = true;
		s->opts.has_ts = true;
		s->opts.tsval = 0xdeadbeef;
	}
}

static void stamp_equals_libnet(bool opts, bool eth)
{
	struct rp_craft *cr;
	struct rp_seg s;
	struct rp_tmpl t;
	uint8_t pkt[RP_TMPL_MAX], want[RP_TMPL_MAX];
	static const uint8_t dmac[6] = { 2, 0, 0, 0, 0, 2 }, smac[6] = { 2, 0, 0, 0, 0, 1 };
	int n;

	assert_int_equal(rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0), 0);
	base_seg(&s, opts);
	n = rp_craft_render(cr, &s, pkt, sizeof(pkt));
	assert_true(n >= 40);
	assert_int_equal(rp_tmpl_from_ip(&t, pkt, (size_t)n), 0);
	assert_int_equal(t.sport, 40000);
	assert_int_equal(t.dport, 80);
	assert_int_equal(t.seq, 0x01020304);
	assert_int_equal(t.ip_id, 0x1111);
	assert_int_equal(t.saddr, s.saddr);
	if (eth) {
		rp_tmpl_set_eth(&t, dmac, smac);
		rp_tmpl_set_eth(&t, dmac, smac);   /* idempotent */
		assert_int_equal(t.len, (size_t)n + 14);
		assert_memory_equal(t.frame, dmac, 6);
		assert_memory_equal(t.frame + 6, smac, 6);
		assert_int_equal(t.frame[12], 0x08);
		assert_int_equal(t.frame[13], 0x00);
	}
	uint8_t frame[RP_TMPL_MAX];
	memcpy(frame, t.frame, t.len);
	for (int k = 0; k < 5000; k++) {
		s.sport = (uint16_t)rnd();
		s.dport = (uint16_t)rnd();
		s.seq = (uint32_t)rnd();
		s.ip_id = (uint16_t)rnd();
		if (k == 0) { s.sport = 0xffff; s.dport = 0xffff; s.seq = 0xffffffff; s.ip_id = 0xffff; }
		if (k == 1) { s.sport = 1; s.dport = 1; s.seq = 0; s.ip_id = 0; }
		if (s.sport == 0 || s.dport == 0)
			continue;   /* craft refuses port 0 */
		/* stamp the same buffer again and again: no reset between packets */
		rp_tmpl_stamp(&t, frame + t.l3off, s.sport, s.dport, s.seq, s.ip_id);
		assert_int_equal(rp_craft_render(cr, &s, want, sizeof(want)), n);
		assert_memory_equal(frame + t.l3off, want, (size_t)n);
		if (eth)
			assert_memory_equal(frame, t.frame, 14);
	}
	rp_craft_close(cr);
}

static void test_stamp_equals_libnet_plain(void **st) { (void)st; stamp_equals_libnet(false, false); }
static void test_stamp_equals_libnet_opts(void **st) { (void)st; stamp_equals_libnet(true, false); }
static void test_stamp_equals_libnet_eth(void **st) { (void)st; stamp_equals_libnet(true, true); }

static void test_tmpl_rejects(void **st)
{
	(void)st;
	struct rp_craft *cr;
	struct rp_seg s;
	struct rp_tmpl t;
	uint8_t pkt[RP_TMPL_MAX], bad[RP_TMPL_MAX];
	int n;

	assert_int_equal(rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0), 0);
	base_seg(&s, true);
	n = rp_craft_render(cr, &s, pkt, sizeof(pkt));
	rp_craft_close(cr);
	assert_int_equal(rp_tmpl_from_ip(&t, pkt, (size_t)n - 1), -EINVAL);   /* length disagrees */
	memcpy(bad, pkt, (size_t)n);
	bad[0] = 0x65;                                                        /* IPv6 */
	assert_int_equal(rp_tmpl_from_ip(&t, bad, (size_t)n), -EINVAL);
	memcpy(bad, pkt, (size_t)n);
	bad[9] = 17;                                                          /* UDP */
	assert_int_equal(rp_tmpl_from_ip(&t, bad, (size_t)n), -EINVAL);
	memcpy(bad, pkt, (size_t)n);
	bad[6] |= 0x20;                                                       /* MF */
	assert_int_equal(rp_tmpl_from_ip(&t, bad, (size_t)n), -EINVAL);
	memcpy(bad, pkt, (size_t)n);
	bad[20 + 12] = 0xf0;                                                  /* doff past the end */
	assert_int_equal(rp_tmpl_from_ip(&t, bad, (size_t)n), -EINVAL);
	assert_int_equal(rp_tmpl_from_ip(&t, pkt, 30), -EINVAL);
	assert_int_equal(rp_tmpl_from_ip(&t, pkt, (size_t)n), 0);
}

static void test_pairset_order(void **st)
{
	(void)st;
	static const uint16_t d[] = { 80, 443, 8080 };
	struct rp_pairset s = { .dports = { .list = d, .n = 3 }, .sports = { .lo = 1000, .hi = 1001 }, .repeat = 2 };
	uint16_t sp, dp;
	assert_int_equal(rp_pairset_total(&s), 12);
	static const uint16_t exp[6][2] = { { 1000, 80 }, { 1001, 80 }, { 1000, 443 }, { 1001, 443 },
					    { 1000, 8080 }, { 1001, 8080 } };
	for (uint64_t i = 0; i < 12; i++) {
		rp_pairset_at(&s, i, &sp, &dp);
		assert_int_equal(sp, exp[i % 6][0]);
		assert_int_equal(dp, exp[i % 6][1]);
	}
	static const struct rp_portpair pp[] = { { 5, 6 }, { 7, 8 } };
	struct rp_pairset e = { .pairs = pp, .n_pairs = 2 };
	assert_int_equal(rp_pairset_total(&e), 2);
	rp_pairset_at(&e, 1, &sp, &dp);
	assert_int_equal(sp, 7);
	assert_int_equal(dp, 8);
	struct rp_pairset empty = { .dports = { .lo = 10, .hi = 9 }, .sports = { .lo = 1, .hi = 1 } };
	assert_int_equal(rp_pairset_total(&empty), 0);
	/* the whole port space from one source port: 65536 pairs (lo 0 .. hi 65535) */
	struct rp_pairset all = { .dports = { .lo = 0, .hi = 65535 }, .sports = { .lo = 9, .hi = 9 } };
	assert_int_equal(rp_pairset_total(&all), 65536);
	rp_pairset_at(&all, 65535, &sp, &dp);
	assert_int_equal(dp, 65535);
}

/* rp_pairset_has, as the punch round uses it to pick its flow: with explicit pairs only the very
 * pairs count. The case block x block met in the lab: local port 56633 sent its SYN to 64854 this
 * round; a SYN to 56633 from 64945 (through an earlier attempt's mapping of 56633 -> 64945 still
 * in the NAT) is not the round's, though both ports are. */
static void test_pairset_has(void **st)
{
	(void)st;
	static const struct rp_portpair pp[] = { { 56633, 64854 }, { 49409, 64945 }, { 40000, 64854 } };
	struct rp_pairset e = { .pairs = pp, .n_pairs = 3 };
	assert_true(rp_pairset_has(&e, 56633, 64854));
	assert_true(rp_pairset_has(&e, 49409, 64945));
	assert_true(rp_pairset_has(&e, 40000, 64854));
	assert_false(rp_pairset_has(&e, 56633, 64945));   /* the stale mapping's tuple */
	assert_false(rp_pairset_has(&e, 49409, 64854));
	assert_false(rp_pairset_has(&e, 64854, 56633));   /* reversed */
	assert_false(rp_pairset_has(&e, 1, 2));
	/* a product: any source port with any destination port */
	static const uint16_t d[] = { 80, 443 };
	struct rp_pairset s = { .dports = { .list = d, .n = 2 }, .sports = { .lo = 1000, .hi = 1001 } };
	assert_true(rp_pairset_has(&s, 1001, 80));
	assert_true(rp_pairset_has(&s, 1000, 443));
	assert_false(rp_pairset_has(&s, 1002, 80));
	assert_false(rp_pairset_has(&s, 1000, 81));
	struct rp_pairset empty = { .dports = { .lo = 10, .hi = 9 }, .sports = { .lo = 1, .hi = 1 } };
	assert_false(rp_pairset_has(&empty, 1, 10));
}

static void test_random_order_each_pass_once(void **st)
{
	(void)st;
	struct rp_pairset s = { .dports = { .lo = 1, .hi = 1000 }, .sports = { .lo = 2000, .hi = 2002 },
				.repeat = 3, .random_order = true, .seed = 77 };
	uint64_t per = 3000;
	assert_int_equal(rp_pairset_total(&s), 9000);
	uint8_t *seen = calloc(3 * 1001, 1);
	unsigned in_order = 0, pass_same = 0;
	uint16_t first[3000][2];
	for (uint64_t pass = 0; pass < 3; pass++) {
		memset(seen, 0, 3 * 1001);
		for (uint64_t j = 0; j < per; j++) {
			uint16_t sp, dp;
			rp_pairset_at(&s, pass * per + j, &sp, &dp);
			assert_true(sp >= 2000 && sp <= 2002 && dp >= 1 && dp <= 1000);
			unsigned k = (unsigned)(sp - 2000) * 1001 + dp;
			assert_int_equal(seen[k], 0);
			seen[k] = 1;
			in_order += (sp == 2000 + j % 3 && dp == 1 + j / 3);
			if (pass == 0) {
				first[j][0] = sp;
				first[j][1] = dp;
			} else {
				pass_same += first[j][0] == sp && first[j][1] == dp;
			}
		}
	}
	free(seen);
	assert_true(in_order < 20);    /* not the natural order */
	assert_true(pass_same < 20);   /* each pass has its own order */
}

static void test_render_cookie_and_ipid(void **st)
{
	(void)st;
	struct rp_craft *cr;
	struct rp_seg s;
	struct rp_tmpl t;
	uint8_t pkt[RP_TMPL_MAX];
	struct rp_event ev;
	int n;

	assert_int_equal(rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0), 0);
	base_seg(&s, true);
	n = rp_craft_render(cr, &s, pkt, sizeof(pkt));
	rp_craft_close(cr);
	assert_int_equal(rp_tmpl_from_ip(&t, pkt, (size_t)n), 0);

	struct rp_burst_cfg c = { .tmpl = &t, .seq_mode = RP_SEQ_COOKIE, .ipid_mode = RP_IPID_INC,
				  .set = { .dports = { .lo = 100, .hi = 199 }, .sports = { .lo = 5000, .hi = 5000 } } };
	for (int i = 0; i < 16; i++)
		c.cookie_key[i] = (uint8_t)(i * 7 + 1);
	for (uint64_t i = 0; i < 100; i++) {
		assert_int_equal(rp_burst_render(&c, i, pkt, sizeof(pkt)), n);
		assert_int_equal(rp_decode(12 /* DLT_RAW */, pkt, (size_t)n, &ev), 0);
		assert_false(ev.ip_csum_bad);
		assert_int_equal(ev.tuple.sport, 5000);
		assert_int_equal(ev.tuple.dport, 100 + i);
		assert_int_equal(ev.seq, us_cookie(c.cookie_key, s.saddr, 5000, s.daddr, (uint16_t)(100 + i)));
		assert_int_equal(ev.ip_id, (uint16_t)(0x1111 + i));
		assert_int_equal(ev.ttl, 3);
		assert_int_equal(ev.flags, RP_TH_SYN);
		assert_true(ev.opts.has_mss && ev.opts.mss == 1460 && ev.opts.has_wscale && ev.opts.wscale == 7);
	}
	assert_int_equal(rp_burst_render(&c, 100, pkt, sizeof(pkt)), -EINVAL);
	assert_int_equal(rp_burst_render(&c, 0, pkt, 20), -ENOSPC);

	c.seq_mode = RP_SEQ_FIXED;
	c.ipid_mode = RP_IPID_RANDOM;
	c.ipid_seed = 5;
	unsigned distinct = 0;
	uint16_t prev = 0;
	for (uint64_t i = 0; i < 100; i++) {
		assert_int_equal(rp_burst_render(&c, i, pkt, sizeof(pkt)), n);
		assert_int_equal(rp_decode(12, pkt, (size_t)n, &ev), 0);
		assert_int_equal(ev.seq, 0x01020304);
		distinct += ev.ip_id != prev;
		prev = ev.ip_id;
	}
	assert_true(distinct > 95);
	c.ipid_mode = RP_IPID_FIXED;
	assert_int_equal(rp_burst_render(&c, 42, pkt, sizeof(pkt)), n);
	assert_int_equal(rp_decode(12, pkt, (size_t)n, &ev), 0);
	assert_int_equal(ev.ip_id, 0x1111);
}

/* The burst engine computes the cookie inline (precomputed key schedule and first block): it
 * must equal us_cookie() for any key, addresses, and source ports that change between packets. */
static void test_inline_cookie_equals_us_cookie(void **st)
{
	(void)st;
	struct rp_craft *cr;
	struct rp_seg s;
	struct rp_tmpl t;
	uint8_t pkt[RP_TMPL_MAX];
	struct rp_portpair pairs[64];
	struct rp_event ev;

	assert_int_equal(rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0), 0);
	for (int round = 0; round < 200; round++) {
		base_seg(&s, round & 1);
		s.saddr = (uint32_t)rnd() | 1;
		s.daddr = (uint32_t)rnd() | 1;
		int n = rp_craft_render(cr, &s, pkt, sizeof(pkt));
		assert_true(n > 0);
		assert_int_equal(rp_tmpl_from_ip(&t, pkt, (size_t)n), 0);
		struct rp_burst_cfg c = { .tmpl = &t, .seq_mode = RP_SEQ_COOKIE,
					  .set = { .pairs = pairs, .n_pairs = 64 } };
		for (int i = 0; i < 16; i++)
			c.cookie_key[i] = (uint8_t)rnd();
		for (int i = 0; i < 64; i++) {
			/* runs of equal source ports, then changes */
			pairs[i].sport = i % 8 < 5 ? (uint16_t)(1000 + i / 8) : (uint16_t)rnd();
			pairs[i].dport = (uint16_t)rnd();
		}
		for (uint64_t i = 0; i < 64; i++) {
			assert_int_equal(rp_burst_render(&c, i, pkt, sizeof(pkt)), n);
			assert_int_equal(rp_decode(12, pkt, (size_t)n, &ev), 0);
			assert_int_equal(ev.seq, us_cookie(c.cookie_key, s.saddr, pairs[i].sport, s.daddr, pairs[i].dport));
		}
	}
	rp_craft_close(cr);
}

/* rp_tmpl_from_seg renders through craft; rp_burst_attach with a given MAC puts the Ethernet
 * header on and points the config at the template and interface, without any lookup. */
static void test_tmpl_from_seg_and_attach(void **st)
{
	(void)st;
	struct rp_seg s;
	struct rp_tmpl t, u;
	struct rp_craft *cr;
	uint8_t pkt[RP_TMPL_MAX];
	struct rp_route rt;
	static const uint8_t dmac[6] = { 2, 0xaa, 0, 0, 0, 9 };
	struct rp_burst_cfg c = { .engine = RP_ENGINE_AFPACKET,
				  .set = { .dports = { .lo = 1, .hi = 1 }, .sports = { .lo = 2, .hi = 2 } } };

	base_seg(&s, true);
	assert_int_equal(rp_tmpl_from_seg(&t, &s), 0);
	assert_int_equal(rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0), 0);
	int n = rp_craft_render(cr, &s, pkt, sizeof(pkt));
	rp_craft_close(cr);
	assert_int_equal(rp_tmpl_from_ip(&u, pkt, (size_t)n), 0);
	assert_int_equal(t.len, u.len);
	assert_memory_equal(t.frame, u.frame, t.len);
	s.dport = 0;
	assert_int_equal(rp_tmpl_from_seg(&u, &s), -EINVAL);   /* craft refuses port 0 */

	memset(&rt, 0, sizeof(rt));
	assert_int_equal(rp_burst_attach(&c, &t, &rt, dmac, false), -EINVAL);   /* no interface */
	rt.ifindex = 7;
	memcpy(rt.if_mac, (uint8_t[6]){ 2, 0xbb, 0, 0, 0, 1 }, 6);
	assert_int_equal(rp_burst_attach(&c, &t, &rt, dmac, false), 0);
	assert_ptr_equal(c.tmpl, &t);
	assert_int_equal(c.ifindex, 7);
	assert_int_equal(t.l3off, RP_ETH_HLEN);
	assert_memory_equal(t.frame, dmac, 6);
	assert_memory_equal(t.frame + 6, rt.if_mac, 6);
	assert_memory_equal(t.frame + RP_ETH_HLEN, pkt, (size_t)n);
	/* the rendered IPv4 packet does not change with the Ethernet header */
	assert_int_equal(rp_burst_render(&c, 0, pkt + 100, sizeof(pkt) - 100), n);
}

static void test_run_refuses_bad_config(void **st)
{
	(void)st;
	struct rp_tmpl t;
	struct rp_burst_stats bs;
	memset(&t, 0, sizeof(t));
	struct rp_burst_cfg c = { .tmpl = &t, .set = { .dports = { .lo = 1, .hi = 2 }, .sports = { .lo = 1, .hi = 1 } } };
	assert_int_equal(rp_burst_run(&c, &bs), -EINVAL);            /* empty template */
	assert_int_equal(bs.sent, 0);
	assert_int_equal(rp_burst_run(NULL, NULL), -EINVAL);
	struct rp_craft *cr;
	struct rp_seg s;
	uint8_t pkt[RP_TMPL_MAX];
	assert_int_equal(rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0), 0);
	base_seg(&s, false);
	int n = rp_craft_render(cr, &s, pkt, sizeof(pkt));
	rp_craft_close(cr);
	assert_int_equal(rp_tmpl_from_ip(&t, pkt, (size_t)n), 0);
	c.engine = RP_ENGINE_AFPACKET;
	c.ifindex = 1;
	assert_int_equal(rp_burst_run(&c, &bs), -EINVAL);            /* AF_PACKET needs an Ethernet header */
	c.ifindex = 0;
	static const uint8_t m[6] = { 2, 0, 0, 0, 0, 1 };
	rp_tmpl_set_eth(&t, m, m);
	assert_int_equal(rp_burst_run(&c, &bs), -EINVAL);            /* ... and an interface */
	c.ifindex = 1;
	c.threads = 1000;
	assert_int_equal(rp_burst_run(&c, &bs), -EINVAL);
	c.threads = 1;
	c.set.dports.hi = 0;
	assert_int_equal(rp_burst_run(&c, &bs), -EINVAL);            /* empty pair set */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stamp_equals_libnet_plain),
		cmocka_unit_test(test_stamp_equals_libnet_opts),
		cmocka_unit_test(test_stamp_equals_libnet_eth),
		cmocka_unit_test(test_tmpl_rejects),
		cmocka_unit_test(test_pairset_order),
		cmocka_unit_test(test_pairset_has),
		cmocka_unit_test(test_random_order_each_pass_once),
		cmocka_unit_test(test_render_cookie_and_ipid),
		cmocka_unit_test(test_inline_cookie_equals_us_cookie),
		cmocka_unit_test(test_tmpl_from_seg_and_attach),
		cmocka_unit_test(test_run_refuses_bad_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
