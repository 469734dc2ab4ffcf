/* SPDX-License-Identifier: MIT */
/* Bounds-checked decoder: captured bytes -> one event. Pure (no libpcap here): it takes the
 * DLT_* link type as an int. Never trusts a byte: every length is checked against the capture.
 *
 * Conventions used across rawpunch: IPv4 addresses are uint32_t in NETWORK byte order (as in
 * struct in_addr.s_addr); ports, sequence numbers, IP ID and window are in HOST byte order. */
#ifndef CAP_DECODE_H
#define CAP_DECODE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "userstack/tcpopt.h"

enum rp_ev_kind {
	RP_EV_TCP = 1,        /* a TCP segment */
	RP_EV_ICMP_ERR,       /* ICMP error quoting one of our IPv4+TCP headers */
};

/* TCP flag bits, as on the wire */
#define RP_TH_FIN 0x01
#define RP_TH_SYN 0x02
#define RP_TH_RST 0x04
#define RP_TH_PSH 0x08
#define RP_TH_ACK 0x10
#define RP_TH_URG 0x20
#define RP_TH_ECE 0x40
#define RP_TH_CWR 0x80

/* A checksum as verified by rp_decode_ex() with RP_DECODE_CSUM. */
enum rp_csum_check {
	RP_CSUM_UNCHECKED = 0,   /* not asked for (rp_decode), or not applicable */
	RP_CSUM_OK,
	RP_CSUM_BAD,
	RP_CSUM_PARTIAL,         /* cannot tell: the segment was not all captured (snapshot length) or
	                          * is the first fragment of a larger one */
};

struct rp_tuple {
	uint32_t saddr, daddr;   /* network order */
	uint16_t sport, dport;   /* host order */
};

struct rp_event {
	enum rp_ev_kind kind;
	uint64_t ts_ns;          /* capture timestamp (CLOCK_REALTIME ns), filled by the caller */
	/* outer IPv4 header */
	uint32_t ip_src, ip_dst; /* network order */
	uint8_t ttl;
	uint16_t ip_id;
	/* RP_EV_TCP: the segment; RP_EV_ICMP_ERR: the quoted (inner) TCP header, as we sent it */
	struct rp_tuple tuple;
	uint32_t seq, ack;
	uint8_t flags;           /* RP_TH_* */
	uint16_t win;
	struct tcp_opts opts;
	int opts_err;            /* 0, or -EINVAL if the options were malformed (segment still decoded) */
	const uint8_t *payload;  /* points into the caller's buffer; NULL when paylen == 0 */
	size_t paylen;
	/* RP_EV_ICMP_ERR only */
	uint8_t icmp_type, icmp_code;
	uint8_t inner_ttl;       /* TTL of the quoted header (what was left when it expired) */
	/* added after the first version (compatible extension) */
	bool ip_csum_bad;        /* outer IPv4 header checksum did not verify (event still decoded) */
	uint16_t inner_ip_id;    /* RP_EV_ICMP_ERR: IP ID of the quoted header */
	bool inner_full;         /* RP_EV_ICMP_ERR: the whole quoted TCP header (ack, flags, win,
	                          * options) was present; else only ports + seq (RFC 792's 8 bytes) */
	uint32_t paylen_wire;    /* RP_EV_TCP: payload length per the IP header; paylen is what was
	                          * captured of it (less when the snapshot length cut the packet) */
	/* filled only by rp_decode_ex() with RP_DECODE_CSUM; RP_CSUM_UNCHECKED otherwise */
	enum rp_csum_check ip_csum;   /* outer IPv4 header (the same test as ip_csum_bad) */
	enum rp_csum_check tcp_csum;  /* RP_EV_TCP: the segment, with the IPv4 pseudo header */
	const uint8_t *inner_ipopts; /* RP_EV_ICMP_ERR: the quoted IPv4 header's options (e.g. a Record
	                          * Route the routers filled in), pointing into the caller's buffer;
	                          * NULL when inner_ipopts_len == 0 */
	uint8_t inner_ipopts_len;
};

/* Short class name of an event: "syn", "syn-ack", "rst", "rst-ack", "fin", "data", "ack", "icmp". */
const char *rp_ev_class(const struct rp_event *ev);

/* Decode one captured frame. linktype is a DLT_* value (EN10MB, LINUX_SLL, LINUX_SLL2, RAW, IPV4).
 * Returns 0 and fills *ev; -EINVAL if malformed or truncated; -ENOMSG if well-formed but not
 * something we report (not IPv4, not TCP or an ICMP error quoting TCP, IP fragment, ...). */
int rp_decode(int linktype, const uint8_t *frame, size_t caplen, struct rp_event *ev);

/* Flags for rp_decode_ex() */
#define RP_DECODE_CSUM 0x1   /* verify the IPv4 and TCP checksums into ev->ip_csum, ev->tcp_csum */

/* rp_decode() with flags; rp_decode() is rp_decode_ex(..., 0, ev). The checksums do not change what
 * is returned: an event with a bad checksum is still decoded (the caller decides). */
int rp_decode_ex(int linktype, const uint8_t *frame, size_t caplen, unsigned flags, struct rp_event *ev);

#endif
