/* SPDX-License-Identifier: MIT */
/* Packet templates: taking a rendered IPv4+TCP packet apart once, for re-stamping (see tmpl.h). */
#include "rawpunch/net/tmpl.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

int rp_tmpl_from_ip(struct rp_tmpl *t, const uint8_t *ip, size_t len)
{
	struct us_cur c = us_cur_make(ip, len);
	uint32_t saddr, daddr, seq;
	uint16_t tot, id, frag, ipsum, sport, dport, tcpsum;
	uint8_t vihl, proto, doff;
	size_t ihl, thl;

	if (!t || !ip || len < 40 || len > RP_TMPL_MAX - RP_ETH_HLEN)
		return -EINVAL;
	vihl = us_get_u8(&c);
	us_skip(&c, 1);                    /* TOS */
	tot = us_get_be16(&c);
	id = us_get_be16(&c);
	frag = us_get_be16(&c);
	us_skip(&c, 1);                    /* TTL */
	proto = us_get_u8(&c);
	ipsum = us_get_be16(&c);
	us_get_copy(&c, &saddr, 4);
	us_get_copy(&c, &daddr, 4);
	ihl = (size_t)(vihl & 0x0f) * 4;
	if ((vihl >> 4) != 4 || proto != IPPROTO_TCP || ihl < 20 || tot != len)
		return -EINVAL;
	if (frag & 0x3fff)                 /* MF or a fragment offset */
		return -EINVAL;
	us_skip(&c, ihl - 20);             /* IPv4 options */
	sport = us_get_be16(&c);
	dport = us_get_be16(&c);
	seq = us_get_be32(&c);
	us_skip(&c, 4);                    /* ack */
	doff = us_get_u8(&c);
	us_skip(&c, 3);                    /* flags, window */
	tcpsum = us_get_be16(&c);
	us_skip(&c, 2);                    /* urgent pointer */
	thl = (size_t)(doff >> 4) * 4;
	if (!us_ok(&c) || thl < 20 || !us_has(&c, thl - 20))
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	memcpy(t->frame, ip, len);
	t->len = len;
	t->l3off = 0;
	t->l4off = ihl;
	t->saddr = saddr;
	t->daddr = daddr;
	t->ip_id = id;
	t->sport = sport;
	t->dport = dport;
	t->seq = seq;
	/* the fields rp_tmpl_stamp() rewrites, taken out once; per packet only their new values and a
	 * fold remain */
	t->ip_base = us_cksum_sub16(us_cksum_reopen(ipsum), id);
	t->tcp_base = us_cksum_sub32(us_cksum_sub16(us_cksum_sub16(us_cksum_reopen(tcpsum), sport), dport), seq);
	return 0;
}

int rp_tmpl_from_seg(struct rp_tmpl *t, const struct rp_seg *seg)
{
	struct rp_craft *cr;
	uint8_t pkt[RP_TMPL_MAX];
	int n, err = rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0);

	if (err)
		return err;
	n = rp_craft_render(cr, seg, pkt, sizeof(pkt) - RP_ETH_HLEN);
	rp_craft_close(cr);
	if (n < 0)
		return n;
	return rp_tmpl_from_ip(t, pkt, (size_t)n);
}

void rp_tmpl_set_eth(struct rp_tmpl *t, const uint8_t dst_mac[6], const uint8_t src_mac[6])
{
	if (t->l3off == 0) {
		memmove(t->frame + RP_ETH_HLEN, t->frame, t->len);
		t->len += RP_ETH_HLEN;
		t->l4off += RP_ETH_HLEN;
		t->l3off = RP_ETH_HLEN;
	}
	memcpy(t->frame, dst_mac, 6);
	memcpy(t->frame + 6, src_mac, 6);
	us_put_be16(t->frame + 12, 0x0800);   /* ethertype IPv4 */
}
