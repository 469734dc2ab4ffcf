/* SPDX-License-Identifier: MIT */
/* Bounds-checked decoder: link layer -> IPv4 -> TCP or ICMP error quoting IPv4+TCP.
 *
 * Style after tcpdump's GET_* / ND_TCHECK: every read goes through a cursor that knows how many
 * bytes are really there (the capture length, further limited by the IPv4 total length once
 * that is known), and every read checks it first. Nothing here reads past caplen. */
#include "capture/decode.h"

#include <errno.h>
#include <string.h>

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

/* A window on the caller's buffer: [p, p + len). */
struct cur {
	const uint8_t *p;
	size_t len;
};

static inline int has(const struct cur *c, size_t off, size_t n)
{
	return off <= c->len && n <= c->len - off;
}
static inline uint8_t get8(const struct cur *c, size_t off)
{
	return c->p[off];
}
static inline uint16_t get16(const struct cur *c, size_t off)
{
	return (uint16_t)((uint16_t)c->p[off] << 8 | c->p[off + 1]);
}
static inline uint32_t get32(const struct cur *c, size_t off)
{
	return (uint32_t)c->p[off] << 24 | (uint32_t)c->p[off + 1] << 16 |
	       (uint32_t)c->p[off + 2] << 8 | (uint32_t)c->p[off + 3];
}
/* Network-order IPv4 address as stored in memory (struct in_addr.s_addr). */
static inline uint32_t getaddr(const struct cur *c, size_t off)
{
	uint32_t a;
	memcpy(&a, c->p + off, 4);
	return a;
}
/* Sub-window from off to the end. Caller has checked off <= len. */
static inline struct cur sub(const struct cur *c, size_t off)
{
	struct cur s = { c->p + off, c->len - off };
	return s;
}

/* Skip up to MAX_VLAN_TAGS 802.1Q/802.1ad tags. *type is the ethertype found at off - 2;
 * returns the offset of the payload, or -EINVAL if a tag is cut short. */
static int skip_vlan(const struct cur *c, size_t off, uint16_t *type)
{
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (*type != ETH_P_8021Q && *type != ETH_P_8021AD && *type != ETH_P_QINQ1)
			break;
		if (!has(c, off, 4))
			return -EINVAL;
		*type = get16(c, off + 2);
		off += 4;
	}
	return (int)off;
}

/* Offset of the IPv4 header in the frame, or -EINVAL / -ENOMSG. */
static int link_offset(int linktype, const struct cur *c)
{
	uint16_t type;
	int off;

	switch (linktype) {
	case LT_RAW:
	case LT_RAW_BSD:
	case LT_RAW_FILE:
		/* raw IP: could be IPv4 or IPv6; the version nibble decides */
		if (!has(c, 0, 1))
			return -EINVAL;
		return (get8(c, 0) >> 4) == 4 ? 0 : -ENOMSG;
	case LT_IPV4:
		return 0;
	case LT_EN10MB:
		if (!has(c, 0, 14))
			return -EINVAL;
		type = get16(c, 12);
		off = 14;
		break;
	case LT_LINUX_SLL:
		/* pkttype(2) hatype(2) halen(2) addr(8) protocol(2) */
		if (!has(c, 0, 16))
			return -EINVAL;
		type = get16(c, 14);
		off = 16;
		break;
	case LT_LINUX_SLL2:
		/* protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8) */
		if (!has(c, 0, 20))
			return -EINVAL;
		type = get16(c, 0);
		off = 20;
		break;
	default:
		return -ENOMSG;
	}
	off = skip_vlan(c, (size_t)off, &type);
	if (off < 0)
		return off;
	return type == ETH_P_IPV4 ? off : -ENOMSG;
}

/* RFC 1071 one's-complement sum over an even-length header. */
static uint16_t csum16(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

struct ip4 {
	size_t hlen;          /* IHL * 4 */
	uint8_t proto, ttl;
	uint16_t id, frag;    /* frag: flags + offset field as on the wire */
	uint16_t totlen;
	uint32_t src, dst;
};

/* Parse an IPv4 header at the start of c. Checks version, IHL and that the whole header is
 * there. Does not check total length (quoted headers may carry anything there). */
static int ip4_parse(const struct cur *c, struct ip4 *ip)
{
	if (!has(c, 0, 20))
		return -EINVAL;
	uint8_t vihl = get8(c, 0);
	if (vihl >> 4 != 4)
		return -EINVAL;
	ip->hlen = (size_t)(vihl & 0x0f) * 4;
	if (ip->hlen < 20 || !has(c, 0, ip->hlen))
		return -EINVAL;
	ip->totlen = get16(c, 2);
	ip->id = get16(c, 4);
	ip->frag = get16(c, 6);
	ip->ttl = get8(c, 8);
	ip->proto = get8(c, 9);
	ip->src = getaddr(c, 12);
	ip->dst = getaddr(c, 16);
	return 0;
}

#define IP_MF      0x2000
#define IP_OFFMASK 0x1fff

/* TCP header at the start of c (c->len = bytes of the segment that are in the buffer, not more
 * than the IP header says). Fills tuple/seq/ack/flags/win/options. Returns the header length,
 * -EINVAL if the fixed header or the options are not all there or the data offset is < 5. */
static int tcp_parse(const struct cur *c, struct rp_event *ev)
{
	if (!has(c, 0, 20))
		return -EINVAL;
	size_t doff = (size_t)(get8(c, 12) >> 4) * 4;
	if (doff < 20 || !has(c, 0, doff))
		return -EINVAL;
	ev->tuple.sport = get16(c, 0);
	ev->tuple.dport = get16(c, 2);
	ev->seq = get32(c, 4);
	ev->ack = get32(c, 8);
	ev->flags = get8(c, 13);
	ev->win = get16(c, 14);
	memset(&ev->opts, 0, sizeof(ev->opts));
	ev->opts_err = doff > 20 ? tcpopt_parse(c->p + 20, doff - 20, &ev->opts) : 0;
	if (ev->opts_err > 0)
		ev->opts_err = -EINVAL;
	return (int)doff;
}

static int decode_tcp(const struct cur *seg, size_t seg_wire, struct rp_event *ev)
{
	int doff = tcp_parse(seg, ev);
	if (doff < 0)
		return doff;
	ev->kind = RP_EV_TCP;
	ev->tuple.saddr = ev->ip_src;
	ev->tuple.daddr = ev->ip_dst;
	ev->paylen = seg->len - (size_t)doff;
	ev->payload = ev->paylen ? seg->p + doff : NULL;
	ev->paylen_wire = (uint32_t)(seg_wire - (size_t)doff);
	return 0;
}

static int decode_icmp(const struct cur *icmp, struct rp_event *ev)
{
	if (!has(icmp, 0, 8))
		return -EINVAL;
	uint8_t type = get8(icmp, 0), code = get8(icmp, 1);
	switch (type) {
	case ICMP_UNREACH:
	case ICMP_SQUENCH:
	case ICMP_TIMXCEED:
	case ICMP_PARAMPROB:
		break;
	default:
		return -ENOMSG;   /* echo, redirect, ...: not about our segments */
	}
	struct cur q = sub(icmp, 8);
	struct ip4 in;
	int r = ip4_parse(&q, &in);
	if (r < 0)
		return r;
	if (in.proto != IPPROTO_TCP_)
		return -ENOMSG;
	if (in.frag & IP_OFFMASK)
		return -ENOMSG;   /* quote of a non-first fragment: no TCP header in it */
	struct cur t = sub(&q, in.hlen);
	/* RFC 792 guarantees 8 bytes of the original datagram: ports and sequence number. */
	if (!has(&t, 0, 8))
		return -EINVAL;
	ev->kind = RP_EV_ICMP_ERR;
	ev->icmp_type = type;
	ev->icmp_code = code;
	ev->inner_ttl = in.ttl;
	ev->inner_ip_id = in.id;
	ev->inner_ipopts_len = (uint8_t)(in.hlen - 20);   /* ip4_parse: 20 <= hlen <= 60, all captured */
	ev->inner_ipopts = ev->inner_ipopts_len ? q.p + 20 : NULL;
	ev->tuple.saddr = in.src;
	ev->tuple.daddr = in.dst;
	ev->tuple.sport = get16(&t, 0);
	ev->tuple.dport = get16(&t, 2);
	ev->seq = get32(&t, 4);
	/* Whatever more was quoted (Linux quotes up to 576 bytes, RFC 1812 routers as much as fits). */
	struct rp_event full = *ev;
	if (tcp_parse(&t, &full) >= 0) {
		full.inner_full = true;
		*ev = full;
	}
	return 0;
}

int rp_decode(int linktype, const uint8_t *frame, size_t caplen, struct rp_event *ev)
{
	if (!ev)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	if (!frame)
		return -EINVAL;
	struct cur f = { frame, caplen };
	int off = link_offset(linktype, &f);
	if (off < 0)
		return off;
	struct cur ipc = sub(&f, (size_t)off);
	struct ip4 ip;
	int r = ip4_parse(&ipc, &ip);
	if (r < 0) {
		/* a non-IPv4 packet behind a raw-IPv4 link type is still malformed */
		return r;
	}
	if (ip.totlen < ip.hlen)
		return -EINVAL;
	/* Trailing bytes past the total length (Ethernet padding) are not ours. */
	if (ipc.len > ip.totlen)
		ipc.len = ip.totlen;

	ev->ip_src = ip.src;
	ev->ip_dst = ip.dst;
	ev->ttl = ip.ttl;
	ev->ip_id = ip.id;
	ev->ip_csum_bad = csum16(ipc.p, ip.hlen) != 0xffff;

	if (ip.frag & IP_OFFMASK)
		return -ENOMSG;   /* non-first fragment */
	struct cur l4 = sub(&ipc, ip.hlen);
	size_t l4_wire = (size_t)ip.totlen - ip.hlen;

	switch (ip.proto) {
	case IPPROTO_TCP_:
		/* a first fragment (MF set) decodes when the whole TCP header is in it */
		r = decode_tcp(&l4, l4_wire, ev);
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
