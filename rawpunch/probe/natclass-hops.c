/* SPDX-License-Identifier: MIT */
/* NAT classification, the hops (see natclass.h): where the outermost NAT sits on the path, from what
 * the TTL-limited SYNs' ICMP time-exceeded replies show -- the addresses routers recorded (Record
 * Route), the quoted source, who answered -- and the fallbacks when they show nothing. Pure. */
#include "rawpunch/probe/natclass.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#define IPOPT_EOL_ 0
#define IPOPT_NOP_ 1
#define IPOPT_RR_ 7

bool rp_ipv4_is_private(uint32_t addr)
{
	uint32_t a = ntohl(addr);
	return (a >> 24) == 10 ||                    /* 10/8 */
	       (a >> 20) == (172u << 4 | 1) ||        /* 172.16/12 */
	       (a >> 16) == (192u << 8 | 168) ||      /* 192.168/16 */
	       (a >> 22) == (100u << 2 | 1) ||        /* 100.64/10 (RFC 6598, carrier-grade NAT) */
	       (a >> 16) == (169u << 8 | 254) ||      /* 169.254/16 */
	       (a >> 24) == 127 || (a >> 24) == 0;
}

int rp_rr_parse(const uint8_t *opts, size_t len, uint32_t *addrs, size_t max)
{
	if ((len && !opts) || (max && !addrs))
		return -EINVAL;
	size_t i = 0;
	while (i < len) {
		uint8_t type = opts[i];
		if (type == IPOPT_EOL_)
			return 0;
		if (type == IPOPT_NOP_) {
			i++;
			continue;
		}
		if (i + 1 >= len || opts[i + 1] < 2 || i + opts[i + 1] > len)
			return -EINVAL;
		uint8_t olen = opts[i + 1];
		if (type == IPOPT_RR_) {
			/* type, length, pointer (1-based, to the next free slot), then 4-byte slots */
			if (olen < 3 || opts[i + 2] < 4)
				return -EINVAL;
			size_t filled = ((size_t)opts[i + 2] - 4) / 4, room = ((size_t)olen - 3) / 4, k;
			if (filled > room)
				filled = room;
			for (k = 0; k < filled && k < max; k++)
				memcpy(&addrs[k], opts + i + 3 + 4 * k, 4);
			return (int)k;
		}
		i += olen;
	}
	return 0;
}

const char *rp_hop_evidence_str(enum rp_hop_evidence e)
{
	switch (e) {
	case RP_HOPEV_NAT_ANSWERED: return "nat-answered";
	case RP_HOPEV_RECORD_ROUTE: return "record-route";
	case RP_HOPEV_QUOTE: return "quote";
	case RP_HOPEV_PUBLIC_HOP: return "first-public-hop";
	case RP_HOPEV_SERVER: return "server-reached";
	case RP_HOPEV_QUOTE_CHANGE: return "quote-change";
	default: return "none";
	}
}

/* The smallest hop k that the hops show to be the outermost NAT by its behaviour, and how; -ENOENT. */
static int behavioural_hop(const struct rp_hop *h, size_t n, uint32_t mapped, enum rp_hop_evidence *how)
{
	int best = -ENOENT;
	if (!mapped)
		return best;
	for (size_t i = 0; i < n; i++) {
		if (!h[i].answered)
			continue;
		int k = -ENOENT;
		enum rp_hop_evidence e = RP_HOPEV_NONE;
		if (h[i].from == mapped) {
			k = h[i].ttl;                   /* it answers from our public address: the NAT */
			e = RP_HOPEV_NAT_ANSWERED;
		}
		/* Record Route: router j + 1 sent the SYN on with our public address as its own; the
		 * slot of the router that dropped the SYN (index ttl - 1) says nothing about sending */
		for (size_t j = 0; j < h[i].n_rr && j < RP_RR_MAX && (int)j + 1 < h[i].ttl; j++)
			if (h[i].rr[j] == mapped && (k < 0 || (int)j + 1 < k)) {
				k = (int)j + 1;
				e = RP_HOPEV_RECORD_ROUTE;
				break;
			}
		if (k < 0 && h[i].inner_seen && h[i].inner_saddr == mapped) {
			k = h[i].ttl - 1;               /* the quote left the NAT untranslated */
			e = RP_HOPEV_QUOTE;
		}
		if (k >= 0 && (best < 0 || k < best)) {
			best = k;
			*how = e;
		}
	}
	return best;
}

int rp_nat_ttl_guess(const struct rp_hop *h, size_t n, uint32_t local_addr, uint16_t local_port,
		     uint32_t mapped_addr, uint16_t mapped_port, struct rp_ttl_guess *g)
{
	(void)mapped_port;
	if ((!h && n) || !g)
		return -EINVAL;
	memset(g, 0, sizeof(*g));
	g->nat_hop = -ENOENT;
	/* the server's reach, and where untranslated quotes changed (a NAT before that hop) */
	uint32_t prev_a = local_addr;
	uint16_t prev_p = local_port;
	int prev_ttl = 0, public_hop = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (h[i].reached) {
			if (!g->server_hops || h[i].ttl < g->server_hops)
				g->server_hops = h[i].ttl;
			continue;
		}
		if (!h[i].answered)
			continue;
		if (public_hop < 0 && !rp_ipv4_is_private(h[i].from))
			public_hop = h[i].ttl - 1;
		if (h[i].inner_seen && local_addr) {
			bool moved = h[i].inner_saddr != prev_a || (prev_p && h[i].inner_sport && h[i].inner_sport != prev_p);
			if (moved && prev_ttl >= g->min_hop)
				g->min_hop = prev_ttl > 0 ? prev_ttl : 1;
			prev_a = h[i].inner_saddr;
			prev_p = h[i].inner_sport;
			prev_ttl = h[i].ttl;
		}
	}
	if (g->server_hops && public_hop >= g->server_hops)
		public_hop = -ENOENT;   /* answers that came after the server's are not on the way */
	enum rp_hop_evidence how = RP_HOPEV_NONE;
	int k = behavioural_hop(h, n, mapped_addr, &how);
	if (k >= 0) {
		g->nat_hop = k < g->min_hop ? g->min_hop : k;
		g->how = how;
		g->behavioural = true;
	} else if (public_hop >= 0) {
		g->nat_hop = public_hop < g->min_hop ? g->min_hop : public_hop;
		g->how = RP_HOPEV_PUBLIC_HOP;
	} else if (g->server_hops >= 2) {
		/* every NAT of ours is before the server: TTL server_hops - 1 passes them all */
		g->nat_hop = g->server_hops - 2 < g->min_hop ? g->min_hop : g->server_hops - 2;
		g->how = RP_HOPEV_SERVER;
	} else if (g->min_hop) {
		g->nat_hop = g->min_hop;
		g->how = RP_HOPEV_QUOTE_CHANGE;
	}
	return 0;
}

int rp_nat_hop(const struct rp_hop *h, size_t n, uint32_t local_addr, uint32_t mapped_addr)
{
	struct rp_ttl_guess g;
	if (!h && n)
		return -EINVAL;
	rp_nat_ttl_guess(h, n, local_addr, 0, mapped_addr, 0, &g);
	return g.behavioural || g.how == RP_HOPEV_PUBLIC_HOP ? g.nat_hop : -ENOENT;
}
