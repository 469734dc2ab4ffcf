/* SPDX-License-Identifier: MIT */
/* Bounds-checked decoder: link layer -> IPv4 -> TCP or ICMP error quoting IPv4+TCP.
 *
 * Style after tcpdump's GET_* / ND_TCHECK: every read goes through a cursor (userstack/extract.h)
 * that knows how many bytes are really there (the capture length, further limited by the IPv4
 * total length once that is known), and every read checks it first. Nothing here reads past
 * caplen. Checksums: userstack/cksum.h. */
#include "capture/decode.h"

#include <errno.h>
#include <string.h>

#include "userstack/cksum.h"
#include "userstack/extract.h"

/* Link types (pcap's DLT_* / LINKTYPE_* numbers; pcap.h is not included in pure code). */
#define LT_EN10MB      1
#define LT_RAW_BSD    14     /* DLT_RAW on OpenBSD; same meaning */
#define LT_RAW        12     /* DLT_RAW on Linux */
#define LT_RAW_FILE  101     /* LINKTYPE_RAW as written in pcap files */
#define LT_LINUX_SLL 113
#define LT_IPV4      228
#define LT_LINUX_SLL2 276

#define ETH_P_IPV4   0x0800
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88a8
#define ETH_P_QINQ1  0x9100  /* pre-standard QinQ, still seen */

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_  6

#define ICMP_UNREACH   3
#define ICMP_SQUENCH   4
#define ICMP_TIMXCEED 11
#define ICMP_PARAMPROB 12

#define MAX_VLAN_TAGS 2

/* Skip up to MAX_VLAN_TAGS 802.1Q/802.1ad tags. *type is the ethertype just read; c is left at
 * the payload. -EINVAL if a tag is cut short. */
static int skip_vlan(struct us_cur *c, uint16_t *type)
{
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (*type != ETH_P_8021Q && *type != ETH_P_8021AD && *type != ETH_P_QINQ1)
			break;
		us_skip(c, 2);            /* TCI */
		*type = us_get_be16(c);
		if (!us_ok(c))
			return -EINVAL;
	}
	return 0;
}

/* Offset of the IPv4 header in the frame f, or -EINVAL / -ENOMSG. */
static int link_offset(int linktype, struct us_cur f)
{
	uint16_t type;
	uint8_t v;
	int r;

	switch (linktype) {
	case LT_RAW:
	case LT_RAW_BSD:
	case LT_RAW_FILE:
		/* raw IP: could be IPv4 or IPv6; the version nibble decides */
		v = us_get_u8(&f);
		if (!us_ok(&f))
			return -EINVAL;
		return (v >> 4) == 4 ? 0 : -ENOMSG;
	case LT_IPV4:
		return 0;
	case LT_EN10MB:
		us_skip(&f, 12);          /* destination, source */
		type = us_get_be16(&f);
		break;
	case LT_LINUX_SLL:
		/* pkttype(2) hatype(2) halen(2) addr(8) protocol(2) */
		us_skip(&f, 14);
		type = us_get_be16(&f);
		break;
	case LT_LINUX_SLL2:
		/* protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8) */
		type = us_get_be16(&f);
		us_skip(&f, 18);
		break;
	default:
		return -ENOMSG;
	}
	if (!us_ok(&f))
		return -EINVAL;
	r = skip_vlan(&f, &type);
	if (r < 0)
		return r;
	return type == ETH_P_IPV4 ? (int)f.off : -ENOMSG;
}

struct ip4 {
	size_t hlen;          /* IHL * 4 */
	uint8_t proto, ttl;
	uint16_t id, frag;    /* frag: flags + offset field as on the wire */
	uint16_t totlen;
	uint32_t src, dst;
};

/* Parse the IPv4 header at c and move c past it. Checks version, IHL and that the whole header
 * is there. Does not check total length (quoted headers may carry anything there). */
static int ip4_parse(struct us_cur *c, struct ip4 *ip)
{
	uint8_t vihl = us_get_u8(c);
	us_skip(c, 1);            /* TOS */
	ip->totlen = us_get_be16(c);
	ip->id = us_get_be16(c);
	ip->frag = us_get_be16(c);
	ip->ttl = us_get_u8(c);
	ip->proto = us_get_u8(c);
	us_skip(c, 2);            /* checksum */
	us_get_copy(c, &ip->src, 4);   /* network order as in memory */
	us_get_copy(c, &ip->dst, 4);
	if (!us_ok(c) || vihl >> 4 != 4)
		return -EINVAL;
	ip->hlen = (size_t)(vihl & 0x0f) * 4;
	if (ip->hlen < 20 || !us_skip(c, ip->hlen - 20))
		return -EINVAL;
	return 0;
}

#define IP_MF      0x2000
#define IP_OFFMASK 0x1fff

/* TCP header at c (c holds the bytes of the segment that are in the buffer, not more than the IP
 * header says); moves c past it. Fills tuple/seq/ack/flags/win/options, and nothing unless the
 * header is all there. Returns the header length, -EINVAL if the fixed header or the options are
 * not all there or the data offset is < 5. */
static int tcp_parse(struct us_cur *c, struct rp_event *ev)
{
	uint16_t sport = us_get_be16(c), dport = us_get_be16(c);
	uint32_t seq = us_get_be32(c), ack = us_get_be32(c);
	uint8_t doff_byte = us_get_u8(c), flags = us_get_u8(c);
	uint16_t win = us_get_be16(c);
	us_skip(c, 4);            /* checksum, urgent pointer */
	size_t doff = (size_t)(doff_byte >> 4) * 4;
	if (!us_ok(c) || doff < 20)
		return -EINVAL;
	const uint8_t *opts = us_get_bytes(c, doff - 20);
	if (!us_ok(c))
		return -EINVAL;
	ev->tuple.sport = sport;
	ev->tuple.dport = dport;
	ev->seq = seq;
	ev->ack = ack;
	ev->flags = flags;
	ev->win = win;
	memset(&ev->opts, 0, sizeof(ev->opts));
	ev->opts_err = doff > 20 ? tcpopt_parse(opts, doff - 20, &ev->opts) : 0;
	if (ev->opts_err > 0)
		ev->opts_err = -EINVAL;
	return (int)doff;
}

/* seg: the segment as captured (up to the IP total length); seg_wire: its length per the IP header. */
static int decode_tcp(const struct us_cur *seg, size_t seg_wire, struct rp_event *ev)
{
	struct us_cur c = *seg;
	int doff = tcp_parse(&c, ev);
	if (doff < 0)
		return doff;
	ev->kind = RP_EV_TCP;
	ev->tuple.saddr = ev->ip_src;
	ev->tuple.daddr = ev->ip_dst;
	ev->paylen = us_left(&c);
	ev->payload = ev->paylen ? us_get_bytes(&c, ev->paylen) : NULL;
	ev->paylen_wire = (uint32_t)(seg_wire - (size_t)doff);
	return 0;
}

static int decode_icmp(const struct us_cur *icmp, struct rp_event *ev)
{
	struct us_cur c = *icmp;
	uint8_t type = us_get_u8(&c), code = us_get_u8(&c);
	us_skip(&c, 6);           /* checksum, rest of header */
	if (!us_ok(&c))
		return -EINVAL;
	switch (type) {
	case ICMP_UNREACH:
	case ICMP_SQUENCH:
	case ICMP_TIMXCEED:
	case ICMP_PARAMPROB:
		break;
	default:
		return -ENOMSG;   /* echo, redirect, ...: not about our segments */
	}
	struct ip4 in;
	struct us_cur q = c;          /* the quoted IPv4 header, options included */
	int r = ip4_parse(&c, &in);   /* the quoted header; c is then at the quoted TCP header */
	if (r < 0)
		return r;
	if (in.proto != IPPROTO_TCP_)
		return -ENOMSG;
	if (in.frag & IP_OFFMASK)
		return -ENOMSG;   /* quote of a non-first fragment: no TCP header in it */
	/* RFC 792 guarantees 8 bytes of the original datagram: ports and sequence number. */
	struct us_cur t = c;
	uint16_t sport = us_get_be16(&t), dport = us_get_be16(&t);
	uint32_t seq = us_get_be32(&t);
	if (!us_ok(&t))
		return -EINVAL;
	ev->kind = RP_EV_ICMP_ERR;
	ev->icmp_type = type;
	ev->icmp_code = code;
	ev->inner_ttl = in.ttl;
	ev->inner_ip_id = in.id;
	ev->inner_ipopts_len = (uint8_t)(in.hlen - 20);   /* ip4_parse: 20 <= hlen <= 60, all captured */
	ev->inner_ipopts = ev->inner_ipopts_len ? q.p + q.off + 20 : NULL;
	ev->tuple.saddr = in.src;
	ev->tuple.daddr = in.dst;
	ev->tuple.sport = sport;
	ev->tuple.dport = dport;
	ev->seq = seq;
	/* Whatever more was quoted (Linux quotes up to 576 bytes, RFC 1812 routers as much as fits). */
	struct rp_event full = *ev;
	if (tcp_parse(&c, &full) >= 0) {
		full.inner_full = true;
		*ev = full;
	}
	return 0;
}

/* Whether the TCP checksum of the segment at l4 verifies: only a segment captured whole, and not
 * the first fragment of a larger one, can tell. */
static enum rp_csum_check tcp_csum_check(struct us_cur l4, size_t l4_wire, const struct ip4 *ip)
{
	if ((ip->frag & IP_MF) || us_left(&l4) < l4_wire)
		return RP_CSUM_PARTIAL;
	const uint8_t *seg = us_get_bytes(&l4, l4_wire);
	if (!seg)
		return RP_CSUM_PARTIAL;
	return us_cksum_ipv4_l4_ok(ip->src, ip->dst, IPPROTO_TCP_, seg, l4_wire) ? RP_CSUM_OK : RP_CSUM_BAD;
}

int rp_decode_ex(int linktype, const uint8_t *frame, size_t caplen, unsigned flags, struct rp_event *ev)
{
	if (!ev)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	if (!frame)
		return -EINVAL;
	struct us_cur f = us_cur_make(frame, caplen);
	int off = link_offset(linktype, f);
	if (off < 0)
		return off;
	us_skip(&f, (size_t)off);
	struct us_cur ipc = us_rest(&f), h = ipc;
	struct ip4 ip;
	int r = ip4_parse(&h, &ip);
	if (r < 0) {
		/* a non-IPv4 packet behind a raw-IPv4 link type is still malformed */
		return r;
	}
	if (ip.totlen < ip.hlen)
		return -EINVAL;
	/* Trailing bytes past the total length (Ethernet padding) are not ours. */
	ipc = us_sub(&ipc, us_left(&ipc) < ip.totlen ? us_left(&ipc) : ip.totlen);
	const uint8_t *hdr = us_get_bytes(&ipc, ip.hlen);   /* there: ip4_parse saw it */
	if (!hdr)
		return -EINVAL;

	ev->ip_src = ip.src;
	ev->ip_dst = ip.dst;
	ev->ttl = ip.ttl;
	ev->ip_id = ip.id;
	ev->ip_csum_bad = !us_cksum_ipv4_ok(hdr, ip.hlen);
	if (flags & RP_DECODE_CSUM)
		ev->ip_csum = ev->ip_csum_bad ? RP_CSUM_BAD : RP_CSUM_OK;

	if (ip.frag & IP_OFFMASK)
		return -ENOMSG;   /* non-first fragment */
	struct us_cur l4 = us_rest(&ipc);
	size_t l4_wire = (size_t)ip.totlen - ip.hlen;

	switch (ip.proto) {
	case IPPROTO_TCP_:
		/* a first fragment (MF set) decodes when the whole TCP header is in it */
		r = decode_tcp(&l4, l4_wire, ev);
		if (r == 0 && (flags & RP_DECODE_CSUM))
			ev->tcp_csum = tcp_csum_check(l4, l4_wire, &ip);
		break;
	case IPPROTO_ICMP_:
		if (ip.frag & IP_MF)
			return -ENOMSG;   /* ICMP errors are never fragmented in practice; don't guess */
		r = decode_icmp(&l4, ev);
		break;
	default:
		return -ENOMSG;
	}
	return r;
}

int rp_decode(int linktype, const uint8_t *frame, size_t caplen, struct rp_event *ev)
{
	return rp_decode_ex(linktype, frame, caplen, 0, ev);
}

const char *rp_ev_class(const struct rp_event *ev)
{
	if (!ev)
		return "?";
	if (ev->kind == RP_EV_ICMP_ERR)
		return "icmp";
	uint8_t f = ev->flags;
	if ((f & RP_TH_SYN) && (f & RP_TH_ACK))
		return "syn-ack";
	if (f & RP_TH_SYN)
		return "syn";
	if ((f & RP_TH_RST) && (f & RP_TH_ACK))
		return "rst-ack";
	if (f & RP_TH_RST)
		return "rst";
	if (f & RP_TH_FIN)
		return "fin";
	if (ev->paylen_wire)
		return "data";
	return "ack";
}
