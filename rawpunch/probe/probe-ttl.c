/* SPDX-License-Identifier: MIT */
/* The NAT probe, phase 2 (see probe.h): SYNs with TTL 1, 2, ... from the punch port, the ICMP
 * time-exceeded each draws caught by pcap, until the first hop beyond the NAT. */
#include "rawpunch/probe/probe-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/guard.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/base/clock.h"

int probe_ttl_search(const struct rp_probe_opts *o, struct rp_probe_report *r, const struct rp_route *rt,
		     uint32_t laddr, uint16_t lport)
{
	uint16_t dport = ntohs(o->stun.sin_port) == RP_PROBE_TTL_DPORT ? RP_PROBE_TTL_DPORT + 1 : RP_PROBE_TTL_DPORT;
	struct rp_cap *cap = NULL;
	struct rp_craft *cr = NULL;
	struct rp_guard *g = NULL;
	char err[256];
	int ret;
	uint32_t isn;
	struct rp_flow fl = { .laddr = laddr, .lport = lport, .raddr = o->stun.sin_addr.s_addr,
			      .rport_lo = dport, .rport_hi = dport };
	/* Capture with our address and port as wildcards: a NAT that leaves ICMP quotes untranslated
	 * hands back a quote whose source is its public address and port. The sequence tag tells ours. */
	struct rp_flow cf = fl;
	cf.laddr = 0;
	cf.lport = 0;
	char expr[2048];
	if ((ret = rp_filter_build(&cf, 1, expr, sizeof(expr))) < 0)
		return ret;
	struct rp_cap_opts co = { .iface = rt->ifname, .filter = expr, .dir = RP_CAP_IN };
	if ((ret = rp_cap_open(&co, &cap, err, sizeof(err))) < 0)
		return ret;
	if ((ret = rp_craft_open(&cr, 0, err, sizeof(err))) < 0)
		goto out;
	/* If a SYN gets as far as the server, its SYN-ACK must not draw a kernel RST that would tear
	 * the NAT's fresh mapping down (conntrack CLOSE). Best effort: without it the search still works. */
	if (rp_guard_open(&g, err, sizeof(err)) == 0)
		rp_guard_add(g, &fl);
	if (getrandom(&isn, sizeof(isn), 0) != sizeof(isn))
		isn = (uint32_t)rp_clock_ns(CLOCK_MONOTONIC);
	isn &= ~0xFFu;   /* the low byte carries the TTL: the quote tells which probe it was */
	int wait_ms = o->ttl_wait_ms > 0 ? o->ttl_wait_ms : 300;
	unsigned ttl_max = o->ttl_max > RP_PROBE_MAX_HOPS ? RP_PROBE_MAX_HOPS : o->ttl_max;
	struct rp_hop hops[RP_PROBE_MAX_HOPS];
	memset(hops, 0, sizeof(hops));
	ret = -ENOENT;
	for (unsigned ttl = 1; ttl <= ttl_max; ttl++) {
		struct rp_probe_hop *h = &r->hops[r->n_hops++];
		memset(h, 0, sizeof(*h));
		h->ttl = (uint8_t)ttl;
		hops[ttl - 1].ttl = (uint8_t)ttl;
		struct rp_seg s = { .saddr = laddr, .daddr = o->stun.sin_addr.s_addr, .sport = lport,
				    .dport = dport, .seq = isn | ttl, .flags = RP_TH_SYN,
				    .win = 64240, .ttl = (uint8_t)ttl, .ip_id = (uint16_t)(0x7200 | ttl),
				    .opts = { .has_mss = true, .mss = 1460, .sack_perm = true,
					      .has_wscale = true, .wscale = 7 } };
		uint64_t t0 = rp_clock_ns(CLOCK_MONOTONIC), deadline = t0 + (uint64_t)wait_ms * 1000000ull;
		int sr = rp_craft_send(cr, &s);
		if (sr < 0) {
			ret = sr;
			goto out;
		}
		bool got = false;
		while (!got) {
			uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
			if (now >= deadline)
				break;
			int w = rp_cap_wait(cap, (int)((deadline - now) / 1000000ull) + 1);
			if (w < 0 && w != -EINTR) {
				ret = w;
				goto out;
			}
			struct rp_event ev;
			while (rp_cap_next(cap, &ev) == 1) {
				unsigned which;
				if (ev.kind == RP_EV_ICMP_ERR && ev.tuple.daddr == o->stun.sin_addr.s_addr &&
				    ev.tuple.dport == dport && (ev.seq & ~0xFFu) == isn) {
					which = ev.seq & 0xFFu;
					if (which < 1 || which > ttl)
						continue;
					struct rp_probe_hop *hh = &r->hops[which - 1];
					if (hh->answered)
						continue;
					hh->answered = true;
					hh->from = ev.ip_src;
					hh->icmp_type = ev.icmp_type;
					hh->icmp_code = ev.icmp_code;
					hh->rtt_ms = (double)(rp_clock_ns(CLOCK_MONOTONIC) - t0) / 1e6;
					hh->inner_saddr = ev.tuple.saddr;
					hops[which - 1].answered = true;
					hops[which - 1].from = ev.ip_src;
					hops[which - 1].inner_seen = true;
					hops[which - 1].inner_saddr = ev.tuple.saddr;
					if (which == ttl)
						got = true;
				} else if (ev.kind == RP_EV_TCP && ev.tuple.saddr == o->stun.sin_addr.s_addr &&
					   ev.tuple.dport == lport && (ev.flags & (RP_TH_SYN | RP_TH_RST)) &&
					   ev.ack == (isn | ttl) + 1) {
					h->reached = true;
					hops[ttl - 1].reached = true;
					got = true;
				}
			}
		}
		if (h->reached)
			break;
		/* Decide as soon as the hops tell. With r->ni.mapped_addr unknown yet (the STUN phase
		 * comes later), only the address rule applies here; the rest is re-checked afterwards. */
		int nh = rp_nat_hop(hops, ttl, laddr, 0);
		if (nh >= 0) {
			ret = 0;
			break;
		}
	}
	if (r->n_hops && r->hops[r->n_hops - 1].reached) {
		/* Be polite to the server: the half-open connection our SYN made there. */
		struct rp_seg rst = { .saddr = laddr, .daddr = o->stun.sin_addr.s_addr, .sport = lport,
				      .dport = dport, .seq = (isn | r->hops[r->n_hops - 1].ttl) + 1,
				      .flags = RP_TH_RST };
		rp_craft_send(cr, &rst);
	}
out:
	rp_guard_close(g);
	if (cr)
		rp_craft_close(cr);
	rp_cap_close(cap);
	return ret;
}
