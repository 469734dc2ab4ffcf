/* SPDX-License-Identifier: MIT */
/* The NAT probe, phase 2 (see probe.h): SYNs with TTL 1 .. ttl_max from the punch port, sent at once,
 * each with a Record Route option; the ICMP time-exceeded each draws (caught by pcap) quotes it with
 * the addresses the routers recorded, and the server answers those that reach it. When the options
 * are dropped somewhere (the TTLs from there on stay silent and the server is not reached), the
 * silent TTLs go again without them. */
#include "userstack/cksum.h"
#include "userstack/extract.h"
#include "rawpunch/probe/probe-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/guard.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/base/clock.h"

#define RR_OPT_LEN 40            /* type, length 39, pointer, 9 slots, one EOL: the most IPv4 allows */
#define SEQ_PLAIN 0x80u          /* low byte of a plain (option-less) SYN's ISN: 0x80 | ttl */

struct ttl_run {
	const struct rp_probe_opts *o;
	struct rp_probe_report *r;
	struct rp_cap *cap;
	struct rp_craft *cr;
	int raw;                     /* IPPROTO_RAW socket for the Record Route SYNs, -1 without */
	uint32_t laddr, isn;
	uint16_t lport, dport;
	unsigned ttl_max;
	uint32_t reach_ack;          /* the ack of the server's first answer (0: none) */
	const atomic_bool *enough;   /* the caller's: stop waiting once the server was reached */
	uint64_t sent_ns[RP_PROBE_MAX_HOPS + 1];
};

/* Our SYN of the search with TTL ttl; plain: without the option (its ISN's low byte 0x80 | ttl,
 * later than every Record Route SYN's ttl, so conntrack takes it as the same flow's new SYN). */
static int send_syn(struct ttl_run *t, unsigned ttl, bool plain)
{
	struct rp_seg s = { .saddr = t->laddr, .daddr = t->o->stun.sin_addr.s_addr, .sport = t->lport,
			    .dport = t->dport, .seq = t->isn | ttl | (plain ? SEQ_PLAIN : 0), .flags = RP_TH_SYN,
			    .win = 64240, .ttl = (uint8_t)ttl, .ip_id = (uint16_t)(0x7200 | ttl),
			    .opts = { .has_mss = true, .mss = 1460, .sack_perm = true, .has_wscale = true, .wscale = 7 } };
	t->sent_ns[ttl] = rp_clock_ns(CLOCK_MONOTONIC);
	if (plain || t->raw < 0)
		return rp_craft_send(t->cr, &s);
	/* The crafted packet with a Record Route option spliced in after its IPv4 header: the routers
	 * fill the slots in order, so the quote of the router past the last NAT shows where our source
	 * address became the public one. */
	uint8_t pkt[20 + 40 + 20 + TCPOPT_MAXLEN], out[sizeof(pkt) + RR_OPT_LEN];
	int n = rp_craft_render(t->cr, &s, pkt, sizeof(pkt));
	if (n < 20)
		return n < 0 ? n : -EIO;
	memcpy(out, pkt, 20);
	out[0] = 0x40 | (20 + RR_OPT_LEN) / 4;
	uint16_t tot = (uint16_t)(n + RR_OPT_LEN);
	us_put_be16(out + 2, tot);
	memset(out + 20, 0, RR_OPT_LEN);
	out[20] = 7;                 /* Record Route */
	out[21] = RR_OPT_LEN - 1;
	out[22] = 4;                 /* the first free slot */
	out[10] = out[11] = 0;
	us_put_be16(out + 10, us_cksum_ipv4(out, 20 + RR_OPT_LEN));
	memcpy(out + 20 + RR_OPT_LEN, pkt + 20, (size_t)n - 20);
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_addr.s_addr = s.daddr };
	ssize_t w = sendto(t->raw, out, (size_t)n + RR_OPT_LEN, 0, (struct sockaddr *)&dst, sizeof(dst));
	return w < 0 ? -errno : 0;
}

/* Take in what came back: a router's ICMP error quoting one of our SYNs, or the server's answer. */
static void take(struct ttl_run *t, const struct rp_event *ev)
{
	struct rp_probe_report *r = t->r;
	uint32_t server = t->o->stun.sin_addr.s_addr;
	if (ev->kind == RP_EV_ICMP_ERR && ev->tuple.daddr == server && ev->tuple.dport == t->dport &&
	    (ev->seq & ~0xFFu) == t->isn) {
		unsigned ttl = ev->seq & 0x7Fu;
		if (ttl < 1 || ttl > t->ttl_max)
			return;
		struct rp_probe_hop *h = &r->hops[ttl - 1];
		if (h->answered)
			return;
		h->answered = true;
		h->from = ev->ip_src;
		h->icmp_type = ev->icmp_type;
		h->icmp_code = ev->icmp_code;
		h->rtt_ms = (double)(rp_clock_ns(CLOCK_MONOTONIC) - t->sent_ns[ttl]) / 1e6;
		h->inner_saddr = ev->tuple.saddr;
		h->inner_sport = ev->tuple.sport;
		h->rr_probe = !(ev->seq & SEQ_PLAIN) && t->raw >= 0;
		if (h->rr_probe && ev->inner_ipopts_len) {
			int k = rp_rr_parse(ev->inner_ipopts, ev->inner_ipopts_len, h->rr, RP_RR_MAX);
			h->n_rr = k > 0 ? (uint8_t)k : 0;
		}
	} else if (ev->kind == RP_EV_TCP && ev->tuple.saddr == server && ev->tuple.sport == t->dport &&
		   ev->tuple.dport == t->lport && (ev->flags & (RP_TH_SYN | RP_TH_RST)) && (ev->flags & RP_TH_ACK) &&
		   ((ev->ack - 1) & ~0xFFu) == t->isn) {
		unsigned ttl = (ev->ack - 1) & 0x7Fu;
		if (ttl >= 1 && ttl <= t->ttl_max)
			r->hops[ttl - 1].reached = true;
		if (!t->reach_ack)
			t->reach_ack = ev->ack;
	}
}

/* Done when the server was reached and every TTL below it answered, or every TTL from..to did. */
static bool complete(const struct ttl_run *t, unsigned from)
{
	for (unsigned ttl = from; ttl <= t->ttl_max; ttl++) {
		const struct rp_probe_hop *h = &t->r->hops[ttl - 1];
		if (h->reached)
			return true;
		if (!h->answered)
			return false;
	}
	return true;
}

static int wait_answers(struct ttl_run *t, unsigned from, int wait_ms)
{
	uint64_t deadline = rp_clock_ns(CLOCK_MONOTONIC) + (uint64_t)wait_ms * 1000000ull;
	for (;;) {
		struct rp_event ev;
		while (rp_cap_next(t->cap, &ev) == 1)
			take(t, &ev);
		if (complete(t, from) || (t->reach_ack && t->enough && atomic_load(t->enough)))
			return 0;
		uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
		if (now >= deadline)
			return 0;
		int ms = (int)((deadline - now) / 1000000ull) + 1;
		if (t->enough && ms > 10)
			ms = 10;   /* look at enough again soon */
		int w = rp_cap_wait(t->cap, ms);
		if (w < 0 && w != -EINTR)
			return w;
	}
}

/* The first TTL of a silent tail: nothing from it on answered and the server was not reached. */
static unsigned silent_tail(const struct ttl_run *t)
{
	unsigned first = t->ttl_max + 1;
	for (unsigned ttl = t->ttl_max; ttl >= 1; ttl--) {
		const struct rp_probe_hop *h = &t->r->hops[ttl - 1];
		if (h->answered || h->reached)
			break;
		first = ttl;
	}
	return first;
}

int probe_ttl_search(const struct rp_probe_opts *o, struct rp_probe_report *r, const struct rp_route *rt,
		     uint32_t laddr, uint16_t lport, void (*step)(void *arg, bool final, int err), void *arg,
		     const atomic_bool *enough)
{
	struct ttl_run t = { .o = o, .r = r, .raw = -1, .laddr = laddr, .lport = lport, .enough = enough };
	struct rp_guard *g = NULL;
	char err[256];
	int ret;
	t.dport = ntohs(o->stun.sin_port) == RP_PROBE_TTL_DPORT ? RP_PROBE_TTL_DPORT + 1 : RP_PROBE_TTL_DPORT;
	t.ttl_max = o->ttl_max > RP_PROBE_MAX_HOPS ? RP_PROBE_MAX_HOPS : o->ttl_max;
	struct rp_flow fl = { .laddr = laddr, .lport = lport, .raddr = o->stun.sin_addr.s_addr,
			      .rport_lo = t.dport, .rport_hi = t.dport };
	/* Capture with our address and port as wildcards: a NAT that leaves ICMP quotes untranslated
	 * hands back a quote whose source is its public address and port. The sequence tag tells ours. */
	struct rp_flow cf = fl;
	cf.laddr = 0;
	cf.lport = 0;
	char expr[2048];
	if ((ret = rp_filter_build(&cf, 1, expr, sizeof(expr))) < 0)
		return ret;
	struct rp_cap_opts co = { .iface = rt->ifname, .filter = expr, .dir = RP_CAP_IN };
	if ((ret = rp_cap_open(&co, &t.cap, err, sizeof(err))) < 0)
		return ret;
	if ((ret = rp_craft_open(&t.cr, 0, err, sizeof(err))) < 0)
		goto out;
	t.raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);   /* without it: plain SYNs only */
	/* If a SYN gets as far as the server, its SYN-ACK must not draw a kernel RST that would tear
	 * the NAT's fresh mapping down (conntrack CLOSE). Best effort: without it the search still works. */
	if (rp_guard_open(&g, err, sizeof(err)) == 0)
		rp_guard_add(g, &fl);
	if (getrandom(&t.isn, sizeof(t.isn), 0) != sizeof(t.isn))
		t.isn = (uint32_t)rp_clock_ns(CLOCK_MONOTONIC);
	t.isn &= ~0xFFu;   /* the low byte carries the TTL (and 0x80 for plain): the quote tells which */
	int wait_ms = o->ttl_wait_ms > 0 ? o->ttl_wait_ms : 300;
	r->n_hops = t.ttl_max;
	for (unsigned ttl = 1; ttl <= t.ttl_max; ttl++) {
		memset(&r->hops[ttl - 1], 0, sizeof(r->hops[0]));
		r->hops[ttl - 1].ttl = (uint8_t)ttl;
	}
	/* All TTLs at once: one SYN per router per run, so the routers' ICMP rate limits (Linux: 6,
	 * then 1/s per destination) allow a probe every second or so. */
	for (unsigned ttl = 1; ttl <= t.ttl_max; ttl++)
		if ((ret = send_syn(&t, ttl, false)) < 0)
			goto out;
	if (step)
		step(arg, false, 0);
	if ((ret = wait_answers(&t, 1, wait_ms)) < 0)
		goto out;
	/* Only when the server was not reached: past it the TTLs are silent anyway (it answers one SYN
	 * of the flow), and a second SYN there would make the NAT take a new port while the STUN flows
	 * run beside the search (probe.c). */
	bool reached = false;
	for (unsigned ttl = 1; ttl <= t.ttl_max; ttl++)
		reached |= r->hops[ttl - 1].reached;
	unsigned tail = silent_tail(&t);
	if (t.raw >= 0 && tail <= t.ttl_max && !reached) {
		for (unsigned ttl = tail; ttl <= t.ttl_max; ttl++)
			if ((ret = send_syn(&t, ttl, true)) < 0)
				goto out;
		if ((ret = wait_answers(&t, tail, wait_ms)) < 0)
			goto out;
		r->rr_dropped = silent_tail(&t) > tail;
	}
	ret = 0;
	/* keep the hops up to the first that reached the server */
	for (unsigned i = 0; i < r->n_hops; i++)
		if (r->hops[i].reached) {
			r->n_hops = i + 1;
			/* Be polite to the server: the half-open connection our first SYN there made. */
			struct rp_seg rst = { .saddr = laddr, .daddr = o->stun.sin_addr.s_addr, .sport = lport,
					      .dport = t.dport, .seq = t.reach_ack, .flags = RP_TH_RST };
			if (t.reach_ack)
				rp_craft_send(t.cr, &rst);
			break;
		}
out:
	if (step)
		step(arg, true, ret);   /* r->hops are final: the closes below need not be waited for */
	rp_guard_close(g);
	if (t.raw >= 0)
		close(t.raw);
	if (t.cr)
		rp_craft_close(t.cr);
	rp_cap_close(t.cap);
	return ret;
}
