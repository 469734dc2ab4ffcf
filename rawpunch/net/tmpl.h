/* SPDX-License-Identifier: MIT */
/* Packet templates for the burst sender (rawpunch/net/burst.h). A SYN is built ONCE (by libnet,
 * rawpunch/net/craft.h) into a template; every packet of a burst is that template re-stamped in
 * place: source port, destination port, sequence number and IP ID, with the IPv4 and TCP checksums
 * updated incrementally (RFC 1624, userstack/cksum.h) from sums precomputed for the template.
 * Stamping is the burst's per-packet work, so it is inline here.
 *
 * Conventions: addresses uint32_t network order; ports, seq, IP ID host order. */
#ifndef RP_TMPL_H
#define RP_TMPL_H
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/net/craft.h"
#include "userstack/cksum.h"
#include "userstack/extract.h"

#define RP_ETH_HLEN 14
#define RP_TMPL_MAX (RP_ETH_HLEN + 60 + 60 + 64)   /* Ethernet + IPv4 (with options) + TCP + payload */

/* A packet to re-stamp: optional Ethernet header followed by one IPv4+TCP packet. */
struct rp_tmpl {
	uint8_t frame[RP_TMPL_MAX];
	size_t len;            /* bytes in frame (Ethernet header included when l3off == 14) */
	size_t l3off;          /* 0: frame is the IPv4 packet; RP_ETH_HLEN: an Ethernet header first */
	size_t l4off;          /* offset of the TCP header in frame */
	uint32_t saddr, daddr; /* network order, from the packet */
	uint16_t sport, dport, ip_id;
	uint32_t seq;
	/* partial sums for the incremental checksums: the template's checksum reopened, with the
	 * template's values of every field rp_tmpl_stamp() rewrites taken out (RFC 1624 ~HC + ~m) */
	uint32_t ip_base, tcp_base;
};

/* Take a complete IPv4+TCP packet (checksums valid, e.g. rendered by craft) as the template.
 * -EINVAL if it is not IPv4+TCP, is a fragment, its lengths disagree, or it is larger than fits. */
int rp_tmpl_from_ip(struct rp_tmpl *t, const uint8_t *ip, size_t len);

/* Render seg with rawpunch/craft (RP_CRAFT_NOSEND) and take it as the template. -errno. */
int rp_tmpl_from_seg(struct rp_tmpl *t, const struct rp_seg *seg);

/* Put an Ethernet header (type IPv4) in front, for AF_PACKET. Idempotent. */
void rp_tmpl_set_eth(struct rp_tmpl *t, const uint8_t dst_mac[6], const uint8_t src_mac[6]);

/* Re-stamp the IPv4 packet at ip (a copy of the template's IPv4 bytes, or a buffer stamped
 * before from the same template: only the changed fields are written, so it need not be reset)
 * with the given fields; both checksums are updated incrementally. */
static inline void rp_tmpl_stamp(const struct rp_tmpl *t, uint8_t *ip, uint16_t sport, uint16_t dport,
				 uint32_t seq, uint16_t ip_id)
{
	uint8_t *tcp = ip + (t->l4off - t->l3off);

	us_put_be16(ip + 4, ip_id);
	us_put_be16(ip + 10, us_cksum_finish(us_cksum_add16(t->ip_base, ip_id)));
	us_put_be16(tcp, sport);
	us_put_be16(tcp + 2, dport);
	us_put_be32(tcp + 4, seq);
	us_put_be16(tcp + 16, us_cksum_finish(us_cksum_add32(us_cksum_add16(us_cksum_add16(t->tcp_base, sport),
									       dport), seq)));
}

#endif
