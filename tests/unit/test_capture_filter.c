/* SPDX-License-Identifier: MIT */
/* Unit tests for capture/filter.c: the expression compiles with libpcap (pcap_open_dead) for
 * every link type we capture on, and the compiled program accepts exactly the right packets
 * (pcap_offline_filter on hand-built frames): replies on the flows, ICMP errors quoting our
 * segments (also behind quoted IP options), nothing else. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "capture/filter.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static uint32_t A(const char *s)
{
	return inet_addr(s);
}

/* Minimal IPv4 + TCP (or ICMP quoting IPv4 + TCP) builders; checksums are not looked at by BPF. */
static size_t ip4(uint8_t *o, uint32_t s, uint32_t d, uint8_t proto, size_t optlen, size_t l4len)
{
	size_t hl = 20 + optlen;
	memset(o, 0, hl);
	o[0] = (uint8_t)(0x40 | hl / 4);
	put16(o + 2, (uint16_t)(hl + l4len));
	o[8] = 64;
	o[9] = proto;
	memcpy(o + 12, &s, 4);
	memcpy(o + 16, &d, 4);
	for (size_t i = 20; i < hl; i++)
		o[i] = 1;                /* NOP options */
	return hl;
}
static size_t tcp_pkt(uint8_t *o, uint32_t s, uint16_t sp, uint32_t d, uint16_t dp)
{
	size_t hl = ip4(o, s, d, 6, 0, 20);
	memset(o + hl, 0, 20);
	put16(o + hl, sp);
	put16(o + hl + 2, dp);
	o[hl + 12] = 0x50;
	o[hl + 13] = 0x12;
	return hl + 20;
}
/* ICMP type/code from router to s, quoting s:sp -> d:dp (quoted header with qopt bytes of options) */
static size_t icmp_pkt(uint8_t *o, uint8_t type, uint32_t router, uint32_t s, uint16_t sp, uint32_t d,
		       uint16_t dp, size_t qopt)
{
	size_t qlen = 20 + qopt + 8;
	size_t hl = ip4(o, router, s, 1, 0, 8 + qlen);
	memset(o + hl, 0, 8);
	o[hl] = type;
	size_t qh = ip4(o + hl + 8, s, d, 6, qopt, 20);
	uint8_t *t = o + hl + 8 + qh;
	put16(t, sp);
	put16(t + 2, dp);
	memset(t + 4, 0x11, 4);
	return hl + 8 + qlen;
}

struct compiled {
	pcap_t *p;
	struct bpf_program prog;
	int lt;
};

static void compile(struct compiled *c, int lt, const char *expr)
{
	c->lt = lt;
	c->p = pcap_open_dead(lt, 256);
	assert_non_null(c->p);
	int r = pcap_compile(c->p, &c->prog, expr, 1, PCAP_NETMASK_UNKNOWN);
	if (r != 0)
		fail_msg("pcap_compile(%d): %s\nexpr: %s", lt, pcap_geterr(c->p), expr);
}
static void release(struct compiled *c)
{
	pcap_freecode(&c->prog);
	pcap_close(c->p);
}

/* Run the program over an IPv4 packet wrapped for c->lt. */
static int match(struct compiled *c, const uint8_t *ipp, size_t n)
{
	uint8_t f[512];
	size_t h = 0;
	if (c->lt == DLT_EN10MB) {
		memset(f, 2, 12);
		put16(f + 12, 0x0800);
		h = 14;
	} else if (c->lt == DLT_LINUX_SLL2) {
		memset(f, 0, 20);
		put16(f, 0x0800);
		f[11] = 6;
		h = 20;
	} else if (c->lt == DLT_LINUX_SLL) {
		memset(f, 0, 16);
		put16(f + 14, 0x0800);
		h = 16;
	}
	memcpy(f + h, ipp, n);
	struct pcap_pkthdr hdr = { .caplen = (bpf_u_int32)(h + n), .len = (bpf_u_int32)(h + n) };
	return pcap_offline_filter(&c->prog, &hdr, f) != 0;
}

static const int LINKTYPES[] = { DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW };

static void flows_match_exactly(void **state)
{
	(void)state;
	const uint32_t us = A("10.0.1.2"), peer = A("198.18.2.2"), stun = A("198.18.3.2"),
		       rtr = A("198.18.1.1"), other = A("198.18.9.9");
	const struct rp_flow fl[2] = {
		{ .laddr = us, .lport = 40000, .raddr = peer, .rport_lo = 1000, .rport_hi = 2000 },
		{ .lport = 40001, .raddr = stun, .rport_lo = 3478, .rport_hi = 3478 },
	};
	char expr[4096];
	int n = rp_filter_build(fl, 2, expr, sizeof(expr));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(expr));
	assert_true((size_t)n < rp_filter_maxlen(2));

	for (size_t k = 0; k < sizeof(LINKTYPES) / sizeof(LINKTYPES[0]); k++) {
		struct compiled c;
		uint8_t p[256];
		size_t l;
		compile(&c, LINKTYPES[k], expr);
		/* replies on flow 0: any port of the range, edges included */
		l = tcp_pkt(p, peer, 1000, us, 40000);
		assert_true(match(&c, p, l));
		l = tcp_pkt(p, peer, 2000, us, 40000);
		assert_true(match(&c, p, l));
		l = tcp_pkt(p, peer, 1500, us, 40000);
		assert_true(match(&c, p, l));
		l = tcp_pkt(p, peer, 999, us, 40000);     /* outside the range */
		assert_false(match(&c, p, l));
		l = tcp_pkt(p, peer, 2001, us, 40000);
		assert_false(match(&c, p, l));
		l = tcp_pkt(p, peer, 1500, us, 40002);    /* other local port */
		assert_false(match(&c, p, l));
		l = tcp_pkt(p, other, 1500, us, 40000);   /* other peer */
		assert_false(match(&c, p, l));
		l = tcp_pkt(p, us, 40000, peer, 1500);    /* our own outbound segment */
		assert_false(match(&c, p, l));
		/* flow 1: any local address */
		l = tcp_pkt(p, stun, 3478, A("10.0.1.77"), 40001);
		assert_true(match(&c, p, l));
		l = tcp_pkt(p, stun, 3479, us, 40001);
		assert_false(match(&c, p, l));
		/* ICMP errors quoting our SYN on flow 0, from a router, all four types */
		static const uint8_t types[] = { 3, 4, 11, 12 };
		for (size_t t = 0; t < sizeof(types); t++) {
			l = icmp_pkt(p, types[t], rtr, us, 40000, peer, 1234, 0);
			assert_true(match(&c, p, l));
		}
		/* ... also when the quoted header carries IP options */
		l = icmp_pkt(p, 11, rtr, us, 40000, peer, 1234, 8);
		assert_true(match(&c, p, l));
		l = icmp_pkt(p, 11, rtr, us, 40000, peer, 2001, 8);   /* remote port outside */
		assert_false(match(&c, p, l));
		l = icmp_pkt(p, 11, rtr, us, 40003, peer, 1234, 0);   /* other local port */
		assert_false(match(&c, p, l));
		l = icmp_pkt(p, 11, rtr, peer, 1234, us, 40000, 0);   /* quoting the reverse direction */
		assert_false(match(&c, p, l));
		l = icmp_pkt(p, 0, rtr, us, 40000, peer, 1234, 0);    /* echo reply: not an error */
		assert_false(match(&c, p, l));
		l = icmp_pkt(p, 5, rtr, us, 40000, peer, 1234, 0);    /* redirect */
		assert_false(match(&c, p, l));
		/* quoted UDP with the same ports */
		l = icmp_pkt(p, 3, rtr, us, 40000, peer, 1234, 0);
		p[20 + 8 + 9] = 17;
		assert_false(match(&c, p, l));
		/* flow 1 by ICMP, any local address */
		l = icmp_pkt(p, 3, stun, A("10.0.1.77"), 40001, stun, 3478, 0);
		assert_true(match(&c, p, l));
		release(&c);
	}
}

static void wildcard_flow(void **state)
{
	(void)state;
	const struct rp_flow all = { 0 };
	char expr[1024];
	assert_true(rp_filter_build(&all, 1, expr, sizeof(expr)) > 0);
	struct compiled c;
	uint8_t p[256];
	size_t l;
	compile(&c, DLT_RAW, expr);
	l = tcp_pkt(p, A("1.2.3.4"), 1, A("5.6.7.8"), 2);
	assert_true(match(&c, p, l));
	l = icmp_pkt(p, 11, A("1.1.1.1"), A("5.6.7.8"), 2, A("1.2.3.4"), 1, 0);
	assert_true(match(&c, p, l));
	l = icmp_pkt(p, 8, A("1.1.1.1"), A("5.6.7.8"), 2, A("1.2.3.4"), 1, 0);   /* echo request */
	assert_false(match(&c, p, l));
	release(&c);
}

static void many_flows_compile(void **state)
{
	(void)state;
	struct rp_flow fl[RP_FILTER_MAX_FLOWS];
	for (int i = 0; i < RP_FILTER_MAX_FLOWS; i++)
		fl[i] = (struct rp_flow){ .laddr = A("255.255.255.254"), .lport = (uint16_t)(60000 + i),
					  .raddr = A("255.255.255.253"), .rport_lo = 65000, .rport_hi = 65535 };
	size_t cap = rp_filter_maxlen(RP_FILTER_MAX_FLOWS);
	char *expr = malloc(cap);
	assert_non_null(expr);
	int n = rp_filter_build(fl, RP_FILTER_MAX_FLOWS, expr, cap);
	assert_true(n > 0 && (size_t)n < cap);
	struct compiled c;
	uint8_t p[256];
	compile(&c, DLT_LINUX_SLL2, expr);
	size_t l = tcp_pkt(p, A("255.255.255.253"), 65535, A("255.255.255.254"), 60063);
	assert_true(match(&c, p, l));
	l = tcp_pkt(p, A("255.255.255.253"), 65535, A("255.255.255.254"), 60064);
	assert_false(match(&c, p, l));
	release(&c);
	free(expr);
}

static void bad_arguments(void **state)
{
	(void)state;
	char buf[2048];
	struct rp_flow f = { .lport = 1, .rport_lo = 10, .rport_hi = 5 };
	assert_int_equal(rp_filter_build(&f, 1, buf, sizeof(buf)), -EINVAL);      /* lo > hi */
	f.rport_lo = 0;
	assert_int_equal(rp_filter_build(&f, 1, buf, sizeof(buf)), -EINVAL);      /* only hi */
	f.rport_lo = 5;
	f.rport_hi = 0;
	assert_int_equal(rp_filter_build(&f, 1, buf, sizeof(buf)), -EINVAL);      /* only lo */
	f.rport_hi = 5;
	assert_int_equal(rp_filter_build(&f, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(rp_filter_build(NULL, 1, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(rp_filter_build(&f, RP_FILTER_MAX_FLOWS + 1, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(rp_filter_build(&f, 1, buf, 0), -EINVAL);
	/* every too-small buffer: -ENOSPC and an empty string, never an overflow */
	int full = rp_filter_build(&f, 1, buf, sizeof(buf));
	assert_true(full > 0);
	for (int cap = 1; cap <= full; cap++) {
		char *small = malloc((size_t)cap);
		assert_non_null(small);
		assert_int_equal(rp_filter_build(&f, 1, small, (size_t)cap), -ENOSPC);
		assert_int_equal(small[0], 0);
		free(small);
	}
	assert_int_equal(rp_filter_build(&f, 1, buf, (size_t)full + 1), full);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flows_match_exactly),
		cmocka_unit_test(wildcard_flow),
		cmocka_unit_test(many_flows_compile),
		cmocka_unit_test(bad_arguments),
	};
	return cmocka_run_group_tests_name("capture_filter", tests, NULL, NULL);
}
