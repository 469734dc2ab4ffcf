/* SPDX-License-Identifier: MIT */
/* Unit tests for capture/decode.c: hand-built frames for every link type and every decode path,
 * every truncation point, the malformed cases (IHL, data offset, options, ICMP quotes), and the
 * checksum verdicts rp_decode_ex() gives on request. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture/decode.h"

#define LT_EN10MB 1
#define LT_RAW 12
#define LT_RAW_FILE 101
#define LT_SLL 113
#define LT_IPV4 228
#define LT_SLL2 276

/* ---- frame builders ---------------------------------------------------------------------- */

struct pkt {
	uint8_t b[1600];
	size_t n;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}
static uint32_t A(const char *s)
{
	return inet_addr(s);
}
static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* TCP header (+ options + data) into out; returns its length. */
static size_t tcp(uint8_t *out, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack, uint8_t flags,
		  uint16_t win, const uint8_t *opts, size_t optlen, const char *data)
{
	size_t dl = data ? strlen(data) : 0;
	memset(out, 0, 20);
	put16(out, sp);
	put16(out + 2, dp);
	put32(out + 4, seq);
	put32(out + 8, ack);
	out[12] = (uint8_t)((5 + optlen / 4) << 4);
	out[13] = flags;
	put16(out + 14, win);
	if (optlen)
		memcpy(out + 20, opts, optlen);
	if (dl)
		memcpy(out + 20 + optlen, data, dl);
	return 20 + optlen + dl;
}

/* IPv4 header (+ options) + l4 into out; returns total length. */
static size_t ip4(uint8_t *out, uint32_t src, uint32_t dst, uint8_t proto, uint8_t ttl, uint16_t id,
		  uint16_t frag, const uint8_t *ipopts, size_t ipoptlen, const uint8_t *l4, size_t l4len)
{
	size_t hl = 20 + ipoptlen;
	memset(out, 0, hl);
	out[0] = (uint8_t)(0x40 | hl / 4);
	put16(out + 2, (uint16_t)(hl + l4len));
	put16(out + 4, id);
	put16(out + 6, frag);
	out[8] = ttl;
	out[9] = proto;
	memcpy(out + 12, &src, 4);
	memcpy(out + 16, &dst, 4);
	if (ipoptlen)
		memcpy(out + 20, ipopts, ipoptlen);
	put16(out + 10, csum(out, hl));
	memmove(out + hl, l4, l4len);
	return hl + l4len;
}

static size_t icmp(uint8_t *out, uint8_t type, uint8_t code, const uint8_t *quote, size_t qlen)
{
	memset(out, 0, 8);
	out[0] = type;
	out[1] = code;
	memcpy(out + 8, quote, qlen);
	put16(out + 2, csum(out, 8 + qlen));
	return 8 + qlen;
}

/* wrap an IPv4 packet in a link-layer header */
static void link_wrap(struct pkt *f, int lt, int vlans, const uint8_t *ipp, size_t n)
{
	size_t h = 0;
	switch (lt) {
	case LT_EN10MB:
		memcpy(f->b, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01", 12);
		h = 12;
		for (int i = 0; i < vlans; i++) {
			put16(f->b + h, i == 0 && vlans == 2 ? 0x88a8 : 0x8100);
			put16(f->b + h + 2, (uint16_t)(42 + i));
			h += 4;
		}
		put16(f->b + h, 0x0800);
		h += 2;
		break;
	case LT_SLL:
		memset(f->b, 0, 16);
		put16(f->b + 2, 1);
		put16(f->b + 4, 6);
		put16(f->b + 14, 0x0800);
		h = 16;
		break;
	case LT_SLL2:
		memset(f->b, 0, 20);
		put16(f->b, 0x0800);
		put32(f->b + 4, 3);
		put16(f->b + 8, 1);
		f->b[11] = 6;
		h = 20;
		break;
	default:
		h = 0;
	}
	memcpy(f->b + h, ipp, n);
	f->n = h + n;
}

static const uint8_t SYNACK_OPTS[20] = { 2, 4, 0x05, 0x78, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 1, 1, 3, 3, 9 };
static const uint8_t SYN_OPTS[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 };

/* SYN-ACK 198.18.2.2:5000 -> 10.0.1.2:40000 with Linux's options */
static size_t build_synack(uint8_t *ipp)
{
	uint8_t t[64];
	size_t tl = tcp(t, 5000, 40000, 0x22222222, 0x11111112, RP_TH_SYN | RP_TH_ACK, 65160,
			SYNACK_OPTS, sizeof(SYNACK_OPTS), NULL);
	return ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 61, 0xbeef, 0x4000, NULL, 0, t, tl);
}

/* our SYN 10.0.1.2:40000 -> 198.18.2.2:5000, TTL ttl */
static size_t build_syn(uint8_t *ipp, uint8_t ttl)
{
	uint8_t t[64];
	size_t tl = tcp(t, 40000, 5000, 0x11111111, 0, RP_TH_SYN, 64240, SYN_OPTS, sizeof(SYN_OPTS), NULL);
	return ip4(ipp, A("10.0.1.2"), A("198.18.2.2"), 6, ttl, 0x0777, 0x4000, NULL, 0, t, tl);
}

/* ICMP error from router quoting qlen bytes of our SYN */
static size_t build_icmp_err(uint8_t *ipp, uint8_t type, uint8_t code, size_t qlen)
{
	uint8_t syn[128], ic[256];
	size_t sl = build_syn(syn, 1);
	if (qlen > sl)
		qlen = sl;
	size_t il = icmp(ic, type, code, syn, qlen);
	return ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 63, 0x0abc, 0, NULL, 0, ic, il);
}

/* Decode from an exactly-sized heap copy so ASan flags any read past caplen. */
static int dec_ex(int lt, const uint8_t *p, size_t n, unsigned flags, struct rp_event *ev, uint8_t **keep)
{
	uint8_t *c = malloc(n ? n : 1);
	assert_non_null(c);
	if (n)
		memcpy(c, p, n);
	int r = flags ? rp_decode_ex(lt, c, n, flags, ev) : rp_decode(lt, c, n, ev);
	if (ev->paylen) {
		assert_true(ev->payload >= c);
		assert_true(ev->payload + ev->paylen <= c + n);
	} else {
		assert_null(ev->payload);
	}
	if (keep)
		*keep = c;
	else
		free(c);
	return r;
}

static int dec(int lt, const uint8_t *p, size_t n, struct rp_event *ev, uint8_t **keep)
{
	return dec_ex(lt, p, n, 0, ev, keep);
}

/* Fill the TCP checksum of the IPv4 packet at ipp, with the test's own sum (not userstack/cksum). */
static void tcp_fill_csum(uint8_t *ipp)
{
	size_t hl = (size_t)(ipp[0] & 15) * 4, l4 = (size_t)(ipp[2] << 8 | ipp[3]) - hl;
	uint8_t b[12 + 1600];
	memcpy(b, ipp + 12, 8);         /* source, destination */
	b[8] = 0;
	b[9] = ipp[9];
	put16(b + 10, (uint16_t)l4);
	memcpy(b + 12, ipp + hl, l4);
	put16(b + 12 + 16, 0);
	put16(ipp + hl + 16, csum(b, 12 + l4));
}

static void check_synack(const struct rp_event *ev)
{
	assert_int_equal(ev->kind, RP_EV_TCP);
	assert_int_equal(ev->ip_src, A("198.18.2.2"));
	assert_int_equal(ev->ip_dst, A("10.0.1.2"));
	assert_int_equal(ev->tuple.saddr, A("198.18.2.2"));
	assert_int_equal(ev->tuple.daddr, A("10.0.1.2"));
	assert_int_equal(ev->tuple.sport, 5000);
	assert_int_equal(ev->tuple.dport, 40000);
	assert_int_equal(ev->seq, 0x22222222);
	assert_int_equal(ev->ack, 0x11111112);
	assert_int_equal(ev->flags, RP_TH_SYN | RP_TH_ACK);
	assert_int_equal(ev->win, 65160);
	assert_int_equal(ev->ttl, 61);
	assert_int_equal(ev->ip_id, 0xbeef);
	assert_int_equal(ev->opts_err, 0);
	assert_true(ev->opts.has_mss);
	assert_int_equal(ev->opts.mss, 1400);
	assert_true(ev->opts.sack_perm);
	assert_true(ev->opts.has_ts);
	assert_int_equal(ev->opts.tsval, 9);
	assert_int_equal(ev->opts.tsecr, 1);
	assert_true(ev->opts.has_wscale);
	assert_int_equal(ev->opts.wscale, 9);
	assert_int_equal(ev->paylen, 0);
	assert_int_equal(ev->paylen_wire, 0);
	assert_false(ev->ip_csum_bad);
	assert_string_equal(rp_ev_class(ev), "syn-ack");
}

/* ---- tests --------------------------------------------------------------------------------- */

static void synack_every_linktype(void **state)
{
	(void)state;
	static const struct { int lt, vlans; } cases[] = {
		{ LT_EN10MB, 0 }, { LT_EN10MB, 1 }, { LT_EN10MB, 2 }, { LT_SLL, 0 }, { LT_SLL2, 0 },
		{ LT_RAW, 0 }, { LT_RAW_FILE, 0 }, { LT_IPV4, 0 },
	};
	uint8_t ipp[256];
	size_t n = build_synack(ipp);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pkt f;
		struct rp_event ev;
		link_wrap(&f, cases[i].lt, cases[i].vlans, ipp, n);
		assert_int_equal(dec(cases[i].lt, f.b, f.n, &ev, NULL), 0);
		check_synack(&ev);
	}
}

/* Every prefix of every valid frame: -EINVAL, or a consistent result (never an overread). */
static void truncation_every_length(void **state)
{
	(void)state;
	uint8_t ipp[256], t[128];
	struct { int lt, vlans; size_t n; uint8_t ip[256]; } fr[12];
	size_t nf = 0;

	fr[nf].lt = LT_EN10MB; fr[nf].vlans = 0; fr[nf].n = build_synack(fr[nf].ip); nf++;
	fr[nf].lt = LT_EN10MB; fr[nf].vlans = 1; fr[nf].n = build_synack(fr[nf].ip); nf++;
	fr[nf].lt = LT_EN10MB; fr[nf].vlans = 2; fr[nf].n = build_synack(fr[nf].ip); nf++;
	fr[nf].lt = LT_SLL; fr[nf].vlans = 0; fr[nf].n = build_icmp_err(fr[nf].ip, 11, 0, 28); nf++;
	fr[nf].lt = LT_SLL2; fr[nf].vlans = 0; fr[nf].n = build_icmp_err(fr[nf].ip, 3, 3, 200); nf++;
	fr[nf].lt = LT_RAW; fr[nf].vlans = 0; fr[nf].n = build_icmp_err(fr[nf].ip, 11, 0, 200); nf++;
	size_t tl = tcp(t, 5000, 40000, 7, 8, RP_TH_ACK | RP_TH_PSH, 502, NULL, 0, "hello, world\n");
	fr[nf].lt = LT_SLL2; fr[nf].vlans = 0;
	fr[nf].n = ip4(fr[nf].ip, A("198.18.2.2"), A("10.0.1.2"), 6, 60, 1, 0, NULL, 0, t, tl); nf++;
	(void)ipp;

	for (size_t k = 0; k < nf; k++) {
		struct pkt f;
		struct rp_event full, ev;
		link_wrap(&f, fr[k].lt, fr[k].vlans, fr[k].ip, fr[k].n);
		assert_int_equal(dec(fr[k].lt, f.b, f.n, &full, NULL), 0);
		for (size_t len = 0; len < f.n; len++) {
			int r = dec(fr[k].lt, f.b, len, &ev, NULL);
			if (r == -EINVAL)
				continue;
			/* A prefix may decode only with the same header facts and less of the rest. */
			assert_int_equal(r, 0);
			assert_int_equal(ev.kind, full.kind);
			assert_memory_equal(&ev.tuple, &full.tuple, sizeof(ev.tuple));
			assert_int_equal(ev.seq, full.seq);
			assert_true(ev.paylen < full.paylen || (ev.kind == RP_EV_ICMP_ERR));
			if (ev.kind == RP_EV_ICMP_ERR) {
				assert_int_equal(ev.icmp_type, full.icmp_type);
				assert_int_equal(ev.inner_ttl, full.inner_ttl);
				/* ports + seq need 8 bytes of TCP behind the quoted IP header */
				if (ev.inner_full) {
					assert_int_equal(ev.flags, full.flags);
					assert_memory_equal(&ev.opts, &full.opts, sizeof(ev.opts));
				} else {
					assert_int_equal(ev.flags, 0);
				}
			} else {
				assert_int_equal(ev.flags, full.flags);
				assert_int_equal(ev.paylen_wire, full.paylen_wire);
			}
		}
	}
}

static void tcp_data_payload(void **state)
{
	(void)state;
	uint8_t t[128], ipp[256];
	struct rp_event ev;
	uint8_t *buf;
	const uint8_t tsopt[12] = { 1, 1, 8, 10, 0, 0, 0, 10, 0, 0, 0, 2 };
	size_t tl = tcp(t, 5000, 40000, 100, 200, RP_TH_ACK | RP_TH_PSH, 502, tsopt, 12, "hello\n");
	size_t n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 60, 1, 0, NULL, 0, t, tl);
	struct pkt f;
	link_wrap(&f, LT_EN10MB, 0, ipp, n);
	assert_int_equal(dec(LT_EN10MB, f.b, f.n, &ev, &buf), 0);
	assert_int_equal(ev.paylen, 6);
	assert_int_equal(ev.paylen_wire, 6);
	assert_memory_equal(ev.payload, "hello\n", 6);
	assert_ptr_equal(ev.payload, buf + 14 + 20 + 32);
	assert_true(ev.opts.has_ts);
	assert_string_equal(rp_ev_class(&ev), "data");
	free(buf);

	/* snapshot cut inside the payload: paylen is what is there, paylen_wire what was sent */
	assert_int_equal(dec(LT_EN10MB, f.b, f.n - 4, &ev, NULL), 0);
	assert_int_equal(ev.paylen, 2);
	assert_int_equal(ev.paylen_wire, 6);
}

/* rp_decode_ex(RP_DECODE_CSUM) verifies both checksums; rp_decode() leaves them unchecked and
 * decodes the same event; a bad checksum does not stop the decode. */
static void checksums_verified_on_request(void **state)
{
	(void)state;
	uint8_t t[128], ipp[256];
	struct rp_event ev, plain;
	size_t tl = tcp(t, 5000, 40000, 100, 200, RP_TH_ACK | RP_TH_PSH, 502, NULL, 0, "odd!!");
	size_t n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 60, 1, 0x4000, NULL, 0, t, tl);
	tcp_fill_csum(ipp);
	struct pkt f;
	link_wrap(&f, LT_EN10MB, 0, ipp, n);
	f.b[f.n] = 0xee;                /* Ethernet padding is not part of the segment */
	f.b[f.n + 1] = 0x11;

	assert_int_equal(dec(LT_EN10MB, f.b, f.n + 2, &plain, NULL), 0);
	assert_int_equal(plain.ip_csum, RP_CSUM_UNCHECKED);
	assert_int_equal(plain.tcp_csum, RP_CSUM_UNCHECKED);
	assert_int_equal(dec_ex(LT_EN10MB, f.b, f.n + 2, RP_DECODE_CSUM, &ev, NULL), 0);
	assert_int_equal(ev.ip_csum, RP_CSUM_OK);
	assert_int_equal(ev.tcp_csum, RP_CSUM_OK);
	ev.ip_csum = ev.tcp_csum = RP_CSUM_UNCHECKED;
	ev.payload = plain.payload = NULL;   /* different heap copies */
	assert_memory_equal(&ev, &plain, sizeof(ev));

	/* a payload byte changed: TCP bad, IPv4 fine, still decoded */
	f.b[f.n - 1] ^= 0x20;
	assert_int_equal(dec_ex(LT_EN10MB, f.b, f.n, RP_DECODE_CSUM, &ev, NULL), 0);
	assert_int_equal(ev.ip_csum, RP_CSUM_OK);
	assert_int_equal(ev.tcp_csum, RP_CSUM_BAD);
	assert_int_equal(ev.tuple.sport, 5000);
	f.b[f.n - 1] ^= 0x20;
	/* the TTL changed: IPv4 bad (as ip_csum_bad says), TCP fine */
	f.b[14 + 8]--;
	assert_int_equal(dec_ex(LT_EN10MB, f.b, f.n, RP_DECODE_CSUM, &ev, NULL), 0);
	assert_int_equal(ev.ip_csum, RP_CSUM_BAD);
	assert_true(ev.ip_csum_bad);
	assert_int_equal(ev.tcp_csum, RP_CSUM_OK);
	f.b[14 + 8]++;
	/* snapshot cut inside the payload: cannot tell */
	assert_int_equal(dec_ex(LT_EN10MB, f.b, f.n - 1, RP_DECODE_CSUM, &ev, NULL), 0);
	assert_int_equal(ev.ip_csum, RP_CSUM_OK);
	assert_int_equal(ev.tcp_csum, RP_CSUM_PARTIAL);

	/* a first fragment: the checksum covers the whole segment, so cannot tell either */
	n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 60, 1, 0x2000, NULL, 0, t, tl);
	tcp_fill_csum(ipp);
	assert_int_equal(dec_ex(LT_RAW, ipp, n, RP_DECODE_CSUM, &ev, NULL), 0);
	assert_int_equal(ev.ip_csum, RP_CSUM_OK);
	assert_int_equal(ev.tcp_csum, RP_CSUM_PARTIAL);

	/* an ICMP error: the outer IPv4 header is checked, the quoted TCP header is not ours to */
	n = build_icmp_err(ipp, 11, 0, 28);
	assert_int_equal(dec_ex(LT_RAW, ipp, n, RP_DECODE_CSUM, &ev, NULL), 0);
	assert_int_equal(ev.kind, RP_EV_ICMP_ERR);
	assert_int_equal(ev.ip_csum, RP_CSUM_OK);
	assert_int_equal(ev.tcp_csum, RP_CSUM_UNCHECKED);
}

static void ethernet_padding_ignored(void **state)
{
	(void)state;
	uint8_t t[64], ipp[128];
	struct rp_event ev;
	size_t tl = tcp(t, 5000, 40000, 0, 0x11111112, RP_TH_RST | RP_TH_ACK, 0, NULL, 0, NULL);
	size_t n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 62, 0, 0x4000, NULL, 0, t, tl);
	struct pkt f;
	link_wrap(&f, LT_EN10MB, 0, ipp, n);
	memset(f.b + f.n, 0xee, 6);      /* minimum frame is 60 bytes: 6 bytes of padding */
	f.n += 6;
	assert_int_equal(dec(LT_EN10MB, f.b, f.n, &ev, NULL), 0);
	assert_int_equal(ev.paylen, 0);
	assert_int_equal(ev.paylen_wire, 0);
	assert_string_equal(rp_ev_class(&ev), "rst-ack");
}

static void event_classes(void **state)
{
	(void)state;
	static const struct { uint8_t flags; const char *data, *cls; } c[] = {
		{ RP_TH_SYN, NULL, "syn" }, { RP_TH_SYN | RP_TH_ACK, NULL, "syn-ack" },
		{ RP_TH_RST, NULL, "rst" }, { RP_TH_RST | RP_TH_ACK, NULL, "rst-ack" },
		{ RP_TH_FIN | RP_TH_ACK, NULL, "fin" }, { RP_TH_ACK, NULL, "ack" },
		{ RP_TH_ACK | RP_TH_PSH, "x", "data" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint8_t t[64], ipp[128];
		struct rp_event ev;
		size_t tl = tcp(t, 1, 2, 3, 4, c[i].flags, 5, NULL, 0, c[i].data);
		size_t n = ip4(ipp, A("10.9.9.9"), A("10.0.1.2"), 6, 64, 0, 0, NULL, 0, t, tl);
		assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), 0);
		assert_string_equal(rp_ev_class(&ev), c[i].cls);
	}
}

static void ip_header_faults(void **state)
{
	(void)state;
	uint8_t ipp[256], bad[256];
	struct rp_event ev;
	size_t n = build_synack(ipp);

	/* IHL < 5 */
	memcpy(bad, ipp, n);
	bad[0] = 0x44;
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), -EINVAL);
	/* IHL beyond the capture */
	bad[0] = 0x4f;
	assert_int_equal(dec(LT_RAW, bad, 40, &ev, NULL), -EINVAL);
	/* total length shorter than the header */
	memcpy(bad, ipp, n);
	put16(bad + 2, 19);
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), -EINVAL);
	/* total length cuts the TCP header */
	put16(bad + 2, 30);
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), -EINVAL);
	/* version 6 behind DLT_IPV4 is malformed; behind DLT_RAW it is just not ours */
	memcpy(bad, ipp, n);
	bad[0] = 0x65;
	assert_int_equal(dec(LT_IPV4, bad, n, &ev, NULL), -EINVAL);
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), -ENOMSG);
	/* bad header checksum: decoded, flagged */
	memcpy(bad, ipp, n);
	bad[10] ^= 0x55;
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), 0);
	assert_true(ev.ip_csum_bad);
	/* UDP: well-formed, not ours */
	memcpy(bad, ipp, n);
	bad[9] = 17;
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), -ENOMSG);
	/* empty / NULL */
	assert_int_equal(rp_decode(LT_RAW, NULL, 0, &ev), -EINVAL);
	assert_int_equal(rp_decode(LT_RAW, ipp, n, NULL), -EINVAL);
}

static void ip_options_decoded(void **state)
{
	(void)state;
	uint8_t t[64], ipp[256];
	struct rp_event ev;
	const uint8_t ra[8] = { 0x94, 4, 0, 0, 1, 1, 1, 0 };   /* router alert, NOP, NOP, NOP, EOL */
	size_t tl = tcp(t, 5000, 40000, 0x22222222, 0x11111112, RP_TH_SYN | RP_TH_ACK, 65160,
			SYNACK_OPTS, sizeof(SYNACK_OPTS), NULL);
	size_t n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 61, 0xbeef, 0x4000, ra, 8, t, tl);
	assert_int_equal(dec(LT_IPV4, ipp, n, &ev, NULL), 0);
	check_synack(&ev);
}

static void link_layer_faults(void **state)
{
	(void)state;
	uint8_t ipp[256];
	struct pkt f;
	struct rp_event ev;
	size_t n = build_synack(ipp);

	link_wrap(&f, LT_EN10MB, 0, ipp, n);
	put16(f.b + 12, 0x86dd);                   /* IPv6 */
	assert_int_equal(dec(LT_EN10MB, f.b, f.n, &ev, NULL), -ENOMSG);
	put16(f.b + 12, 0x0806);                   /* ARP */
	assert_int_equal(dec(LT_EN10MB, f.b, f.n, &ev, NULL), -ENOMSG);
	/* three stacked VLAN tags: more than we unwrap, not ours */
	link_wrap(&f, LT_EN10MB, 2, ipp, n);
	memmove(f.b + 16, f.b + 12, f.n - 12);
	put16(f.b + 12, 0x8100);
	put16(f.b + 14, 1);
	f.n += 4;
	assert_int_equal(dec(LT_EN10MB, f.b, f.n, &ev, NULL), -ENOMSG);
	/* SLL carrying IPv6 */
	link_wrap(&f, LT_SLL, 0, ipp, n);
	put16(f.b + 14, 0x86dd);
	assert_int_equal(dec(LT_SLL, f.b, f.n, &ev, NULL), -ENOMSG);
	/* SLL2 with a VLAN tag re-inserted by libpcap */
	link_wrap(&f, LT_SLL2, 0, ipp, n);
	memmove(f.b + 24, f.b + 20, n);
	put16(f.b, 0x8100);
	put16(f.b + 20, 5);
	put16(f.b + 22, 0x0800);
	f.n += 4;
	assert_int_equal(dec(LT_SLL2, f.b, f.n, &ev, NULL), 0);
	check_synack(&ev);
	/* unknown link type */
	assert_int_equal(dec(9999, ipp, n, &ev, NULL), -ENOMSG);
	assert_int_equal(dec(0, ipp, n, &ev, NULL), -ENOMSG);
}

static void tcp_header_faults(void **state)
{
	(void)state;
	uint8_t ipp[256], bad[256];
	struct rp_event ev;
	size_t n = build_synack(ipp);

	/* data offset < 5 */
	memcpy(bad, ipp, n);
	bad[20 + 12] = 0x40;
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), -EINVAL);
	/* data offset past the segment */
	bad[20 + 12] = 0xf0;
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), -EINVAL);
	/* malformed option: MSS with length 3. Segment still decodes, opts_err says why. */
	uint8_t t[64];
	const uint8_t o[8] = { 2, 3, 5, 0xb4, 1, 1, 1, 1 };
	size_t tl = tcp(t, 5000, 40000, 1, 2, RP_TH_SYN | RP_TH_ACK, 100, o, 8, NULL);
	n = ip4(bad, A("198.18.2.2"), A("10.0.1.2"), 6, 64, 0, 0, NULL, 0, t, tl);
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), 0);
	assert_int_equal(ev.opts_err, -EINVAL);
	assert_int_equal(ev.tuple.sport, 5000);
	assert_int_equal(ev.flags, RP_TH_SYN | RP_TH_ACK);
	/* option length running past the header */
	const uint8_t o2[4] = { 8, 10, 0, 0 };
	tl = tcp(t, 5000, 40000, 1, 2, RP_TH_SYN, 100, o2, 4, NULL);
	n = ip4(bad, A("198.18.2.2"), A("10.0.1.2"), 6, 64, 0, 0, NULL, 0, t, tl);
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), 0);
	assert_int_equal(ev.opts_err, -EINVAL);
	/* option length 0 */
	const uint8_t o3[4] = { 0x1e, 0, 1, 1 };
	tl = tcp(t, 5000, 40000, 1, 2, RP_TH_SYN, 100, o3, 4, NULL);
	n = ip4(bad, A("198.18.2.2"), A("10.0.1.2"), 6, 64, 0, 0, NULL, 0, t, tl);
	assert_int_equal(dec(LT_RAW, bad, n, &ev, NULL), 0);
	assert_int_equal(ev.opts_err, -EINVAL);
}

static void fragments(void **state)
{
	(void)state;
	uint8_t t[128], ipp[256];
	struct rp_event ev;
	size_t tl = tcp(t, 5000, 40000, 1, 2, RP_TH_ACK, 100, NULL, 0, "first fragment data...");
	/* first fragment (MF, offset 0) with the whole TCP header decodes */
	size_t n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 64, 9, 0x2000, NULL, 0, t, tl);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), 0);
	assert_int_equal(ev.tuple.sport, 5000);
	assert_int_equal(ev.paylen, tl - 20);
	/* first fragment too short to hold the TCP header */
	n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 64, 9, 0x2000, NULL, 0, t, 16);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -EINVAL);
	/* non-first fragment: not ours even if its bytes look like TCP */
	n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 64, 9, 0x0003, NULL, 0, t, tl);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -ENOMSG);
	n = ip4(ipp, A("198.18.2.2"), A("10.0.1.2"), 6, 64, 9, 0x2001, NULL, 0, t, tl);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -ENOMSG);
}

static void icmp_time_exceeded_rfc792_quote(void **state)
{
	(void)state;
	uint8_t ipp[256];
	struct rp_event ev;
	size_t n = build_icmp_err(ipp, 11, 0, 28);   /* IPv4 header + 8 bytes, as RFC 792 routers do */
	struct pkt f;
	link_wrap(&f, LT_EN10MB, 0, ipp, n);
	assert_int_equal(dec(LT_EN10MB, f.b, f.n, &ev, NULL), 0);
	assert_int_equal(ev.kind, RP_EV_ICMP_ERR);
	assert_int_equal(ev.icmp_type, 11);
	assert_int_equal(ev.icmp_code, 0);
	assert_int_equal(ev.ip_src, A("198.18.1.1"));   /* the router */
	assert_int_equal(ev.ttl, 63);
	assert_int_equal(ev.tuple.saddr, A("10.0.1.2"));  /* inner tuple as we sent it */
	assert_int_equal(ev.tuple.daddr, A("198.18.2.2"));
	assert_int_equal(ev.tuple.sport, 40000);
	assert_int_equal(ev.tuple.dport, 5000);
	assert_int_equal(ev.seq, 0x11111111);
	assert_int_equal(ev.inner_ttl, 1);
	assert_int_equal(ev.inner_ip_id, 0x0777);
	assert_false(ev.inner_full);
	assert_int_equal(ev.flags, 0);
	assert_int_equal(ev.paylen, 0);
	assert_string_equal(rp_ev_class(&ev), "icmp");
}

static void icmp_port_unreachable_full_quote(void **state)
{
	(void)state;
	uint8_t ipp[256];
	struct rp_event ev;
	size_t n = build_icmp_err(ipp, 3, 3, 200);   /* Linux quotes the whole thing */
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), 0);
	assert_int_equal(ev.kind, RP_EV_ICMP_ERR);
	assert_int_equal(ev.icmp_type, 3);
	assert_int_equal(ev.icmp_code, 3);
	assert_true(ev.inner_full);
	assert_int_equal(ev.flags, RP_TH_SYN);
	assert_int_equal(ev.win, 64240);
	assert_true(ev.opts.has_mss);
	assert_int_equal(ev.opts.mss, 1460);
	assert_int_equal(ev.opts.wscale, 7);
	assert_int_equal(ev.tuple.sport, 40000);
}

static void icmp_every_error_type(void **state)
{
	(void)state;
	static const uint8_t types[][2] = {
		{ 3, 0 }, { 3, 1 }, { 3, 2 }, { 3, 3 }, { 3, 4 }, { 3, 9 }, { 3, 10 }, { 3, 13 }, { 3, 15 },
		{ 4, 0 }, { 11, 0 }, { 11, 1 }, { 12, 0 }, { 12, 2 },
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint8_t ipp[256];
		struct rp_event ev;
		size_t n = build_icmp_err(ipp, types[i][0], types[i][1], 28);
		assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), 0);
		assert_int_equal(ev.kind, RP_EV_ICMP_ERR);
		assert_int_equal(ev.icmp_type, types[i][0]);
		assert_int_equal(ev.icmp_code, types[i][1]);
		assert_int_equal(ev.tuple.dport, 5000);
	}
}

static void icmp_faults(void **state)
{
	(void)state;
	uint8_t ipp[256], ic[128], q[128];
	struct rp_event ev;
	size_t n;

	/* quote shorter than IPv4 header + 8 bytes of TCP */
	n = build_icmp_err(ipp, 11, 0, 27);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -EINVAL);
	n = build_icmp_err(ipp, 11, 0, 12);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -EINVAL);
	/* echo reply, redirect: not errors about our segments */
	const uint8_t ping[4] = "ping";
	n = ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 64, 0, 0, NULL, 0, ic, icmp(ic, 0, 0, ping, 4));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -ENOMSG);
	/* ICMP header cut */
	n = ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 64, 0, 0, NULL, 0, ic, 6);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -EINVAL);
	/* quoted UDP: not TCP, not ours */
	uint8_t udp[8] = { 0x9c, 0x40, 0x0d, 0x96, 0, 8, 0, 0 };
	size_t ql = ip4(q, A("10.0.1.2"), A("198.18.2.2"), 17, 1, 5, 0, NULL, 0, udp, 8);
	n = ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 64, 0, 0, NULL, 0, ic, icmp(ic, 11, 0, q, ql));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -ENOMSG);
	/* quoted header with a bad IHL */
	uint8_t syn[128];
	size_t sl = build_syn(syn, 1);
	syn[0] = 0x43;
	n = ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 64, 0, 0, NULL, 0, ic, icmp(ic, 11, 0, syn, sl));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -EINVAL);
	/* quoted non-first fragment */
	sl = build_syn(syn, 1);
	put16(syn + 6, 0x0010);
	n = ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 64, 0, 0, NULL, 0, ic, icmp(ic, 11, 0, syn, sl));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -ENOMSG);
	/* quoted TCP with a bad data offset: ports + seq still reported, not the rest */
	sl = build_syn(syn, 1);
	syn[20 + 12] = 0x20;
	n = ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 64, 0, 0, NULL, 0, ic, icmp(ic, 3, 1, syn, sl));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), 0);
	assert_false(ev.inner_full);
	assert_int_equal(ev.tuple.sport, 40000);
	assert_int_equal(ev.seq, 0x11111111);
	/* quoted header with IP options: the TCP header is found behind them */
	uint8_t t[64];
	const uint8_t ra[4] = { 0x94, 4, 0, 0 };
	size_t tl = tcp(t, 40001, 5001, 99, 0, RP_TH_SYN, 1000, NULL, 0, NULL);
	sl = ip4(syn, A("10.0.1.2"), A("198.18.2.2"), 6, 1, 3, 0, ra, 4, t, tl);
	n = ip4(ipp, A("198.18.1.1"), A("10.0.1.2"), 1, 64, 0, 0, NULL, 0, ic, icmp(ic, 11, 0, syn, sl));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), 0);
	assert_int_equal(ev.tuple.sport, 40001);
	assert_int_equal(ev.tuple.dport, 5001);
	assert_int_equal(ev.seq, 99);
	assert_true(ev.inner_full);
	/* fragmented ICMP (MF set): refused */
	n = build_icmp_err(ipp, 11, 0, 28);
	put16(ipp + 6, 0x2000);
	put16(ipp + 10, 0);
	put16(ipp + 10, csum(ipp, 20));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), -ENOMSG);
}

/* A quote with a Record Route the routers filled (and the ICMP carrying one of its own): the quoted
 * header's options come back as they are, inside the captured bytes, and the TCP header behind them. */
static void icmp_quote_ip_options(void **state)
{
	(void)state;
	uint8_t ipp[256], ic[200], q[128], t[64], rr[40] = { 7, 39, 16 }, echo[8] = { 7, 7, 4 };
	struct rp_event ev;
	uint8_t *keep;
	uint32_t a1 = A("100.64.1.2"), a2 = A("198.18.1.2"), a3 = A("10.255.1.1");
	memcpy(rr + 3, &a1, 4);
	memcpy(rr + 7, &a2, 4);
	memcpy(rr + 11, &a3, 4);
	size_t tl = tcp(t, 40000, 9, 0x12345603, 0, RP_TH_SYN, 64240, SYN_OPTS, sizeof(SYN_OPTS), NULL);
	size_t ql = ip4(q, A("10.0.1.2"), A("198.18.3.2"), 6, 1, 0x7203, 0x4000, rr, sizeof(rr), t, tl);
	size_t n = ip4(ipp, A("10.255.1.1"), A("10.0.1.2"), 1, 62, 0, 0, echo, sizeof(echo), ic,
		       icmp(ic, 11, 0, q, ql));
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, &keep), 0);
	assert_int_equal(ev.kind, RP_EV_ICMP_ERR);
	assert_int_equal(ev.seq, 0x12345603);
	assert_int_equal(ev.tuple.dport, 9);
	assert_true(ev.inner_full);
	assert_int_equal(ev.inner_ipopts_len, 40);
	assert_true(ev.inner_ipopts > keep && ev.inner_ipopts + 40 <= keep + n);
	assert_memory_equal(ev.inner_ipopts, rr, 40);
	free(keep);
	/* no options in the quote: none reported */
	n = build_icmp_err(ipp, 11, 0, 200);
	assert_int_equal(dec(LT_RAW, ipp, n, &ev, NULL), 0);
	assert_int_equal(ev.inner_ipopts_len, 0);
	assert_null(ev.inner_ipopts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(icmp_quote_ip_options),
		cmocka_unit_test(synack_every_linktype),
		cmocka_unit_test(truncation_every_length),
		cmocka_unit_test(tcp_data_payload),
		cmocka_unit_test(checksums_verified_on_request),
		cmocka_unit_test(ethernet_padding_ignored),
		cmocka_unit_test(event_classes),
		cmocka_unit_test(ip_header_faults),
		cmocka_unit_test(ip_options_decoded),
		cmocka_unit_test(link_layer_faults),
		cmocka_unit_test(tcp_header_faults),
		cmocka_unit_test(fragments),
		cmocka_unit_test(icmp_time_exceeded_rfc792_quote),
		cmocka_unit_test(icmp_port_unreachable_full_quote),
		cmocka_unit_test(icmp_every_error_type),
		cmocka_unit_test(icmp_faults),
	};
	return cmocka_run_group_tests_name("decode", tests, NULL, NULL);
}
