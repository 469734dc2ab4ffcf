/* SPDX-License-Identifier: MIT */
/* The punch executor (see punch.h): one round -- receiving, validation, the userspace handshake --
 * and the handoff. The context is in context.c, the sending in sender.c (punch_impl.h). */
#include "rawpunch/punch/punch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/punch/punch_impl.h"
#include "userstack/seq.h"
#include "userstack/tcb.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"

#define TICK_NS 100000000ull       /* progress callback period */

/* The port a side's SYNs are bound to in the ISN: its punch port when it sends from that one. */
static uint16_t isn_port(const struct rp_side_plan *sp, const struct rp_natinfo *ni)
{
	return sp->action == RP_ACT_OPEN_MANY ? 0 : ni->local_port;
}

/* --- receiving ----------------------------------------------------------------------------- */

static void send_out(struct rp_punch *p, const struct us_out *out)
{
	for (unsigned i = 0; i < out->n; i++) {
		struct rp_seg seg;
		char fl[9];
		rp_seg_from_us(&seg, p->laddr, p->lport, p->raddr, p->rport, &out->seg[i]);
		int r = rp_craft_send(p->craft, &seg);
		rp_tcp_flags_str(out->seg[i].flags, fl);
		if (r < 0) {
			p->st->send_errors++;
			trace(p, "tx %-3s %u -> :%u FAILED: %s", fl, p->lport, p->rport, strerror(-r));
			continue;
		}
		p->st->handshake_sent++;
		p->packets_sent++;
		trace(p, "tx %-3s %u -> :%u seq=%u ack=%u", fl, p->lport, p->rport, out->seg[i].seq, out->seg[i].ack);
	}
	p->timer_ns = out->timer_ns;
}

static int tcb_step(struct rp_punch *p, const struct us_event *ev, bool suppress_syn)
{
	struct us_out out;
	int r = us_step(p->tcb, ev, rp_mono_ns(), &out);
	if (r)
		return r;
	if (suppress_syn) {
		unsigned k = 0;
		for (unsigned i = 0; i < out.n; i++)
			if (!((out.seg[i].flags & US_TH_SYN) && !(out.seg[i].flags & US_TH_ACK)))
				out.seg[k++] = out.seg[i];
		out.n = k;
	}
	send_out(p, &out);
	if (out.notify & US_N_CLOSED)
		return out.error ? out.error : -ECONNABORTED;
	return 0;
}

static int define_flow(struct rp_punch *p, const struct rp_punch_round_opts *ro, uint16_t lport, uint16_t rport,
		       uint64_t deadline)
{
	struct us_event ev = { .type = US_EV_OPEN_ACTIVE };
	us_tcb_init(p->tcb);
	p->defined = true;
	p->lport = lport;
	p->rport = rport;
	memset(&p->cfg, 0, sizeof(p->cfg));
	p->cfg.iss = p->isn_mine;
	p->cfg.mss = 1460;
	p->cfg.wscale_ok = true;
	p->cfg.wscale = 7;
	p->cfg.sack_ok = true;
	p->cfg.ts_ok = true;
	p->cfg.ts_offset = p->ts_offset;
	p->cfg.syn_rto_ns = (uint64_t)(ro->syn_rtx_ms ? ro->syn_rtx_ms : 250) * 1000000ull;
	p->cfg.syn_no_backoff = true;
	p->cfg.persist = true;
	p->cfg.deadline_ns = deadline;
	p->cfg.time_wait_ns = 500000000ull;
	ev.cfg = &p->cfg;
	/* our SYN for this flow already left in the burst (or our peer's SYN is answered directly) */
	return tcb_step(p, &ev, true);
}

static void feed(struct rp_punch *p, const struct rp_event *ev, struct us_event *uev)
{
	memset(uev, 0, sizeof(*uev));
	uev->type = US_EV_SEGMENT;
	uev->seg.seq = ev->seq;
	uev->seg.ack = ev->ack;
	uev->seg.flags = ev->flags;
	uev->seg.win = ev->win;
	uev->seg.opts = ev->opts;
	uev->seg.payload = ev->payload;
	uev->seg.len = ev->paylen;
	us_handshake_only(p->tcb, &uev->seg);
}

static void forged(struct rp_punch *p, const struct rp_event *ev, const char *why)
{
	char fl[9];
	rp_tcp_flags_str(ev->flags, fl);
	p->st->rx_forged++;
	trace(p, "ignored %s :%u -> %u seq=%u ack=%u (%s)", fl, ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack, why);
}

/* Before the flow exists. Returns 1 when it was defined, 0, or -errno. */
static int on_tcp_undefined(struct rp_punch *p, const struct rp_punch_round_opts *ro, const struct rp_event *ev,
			    uint64_t hs_deadline_from_now)
{
	uint8_t f = ev->flags;
	bool syn = f & RP_TH_SYN, ack = f & RP_TH_ACK, rst = f & RP_TH_RST;
	uint64_t now = rp_mono_ns();
	struct us_event uev;
	char fl[9];
	int r;

	rp_tcp_flags_str(f, fl);
	if (rst) {
		if (ack && ev->ack == p->isn_mine + 1) {
			p->st->rx_rst++;
			trace(p, "rx %-3s :%u -> %u (the peer's NAT refused this port)", fl, ev->tuple.sport, ev->tuple.dport);
		} else {
			forged(p, ev, "RST that does not acknowledge our ISN");
		}
		return 0;
	}
	if (syn && !ack) {
		if (ev->seq != p->isn_peer) {
			forged(p, ev, "SYN without the peer's ISN for this round");
			return 0;
		}
		p->st->rx_syn++;
		p->st->trigger = "syn";
	} else if (syn && ack) {
		if (ev->ack != p->isn_mine + 1) {
			forged(p, ev, "SYN-ACK that does not acknowledge our ISN");
			return 0;
		}
		p->st->rx_synack++;
		p->st->trigger = "syn-ack";
	} else {
		p->st->rx_other++;
		trace(p, "rx %-3s :%u -> %u before the flow exists (ignored)", fl, ev->tuple.sport, ev->tuple.dport);
		return 0;
	}
	if (ev->paylen < ev->paylen_wire)
		return 0;
	p->st->t_first_rx_ms = since_t0_ms(p, now);
	trace(p, "rx %-3s :%u -> %u seq=%u ack=%u ttl=%u: valid, the flow is %u <-> :%u (%.1f ms after T)", fl,
	      ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack, ev->ttl, ev->tuple.dport, ev->tuple.sport,
	      p->st->t_first_rx_ms);
	r = define_flow(p, ro, ev->tuple.dport, ev->tuple.sport, now + hs_deadline_from_now);
	if (r)
		return r;
	feed(p, ev, &uev);
	r = tcb_step(p, &uev, false);
	return r ? r : 1;
}

/* After: only the flow's segments reach the tcb, after the checks session.c does. */
static bool valid_for_tcb(struct rp_punch *p, const struct rp_event *ev)
{
	const struct us_tcb *t = p->tcb;
	bool ack = ev->flags & RP_TH_ACK, rst = ev->flags & RP_TH_RST, syn = ev->flags & RP_TH_SYN;
	switch (t->state) {
	case US_SYN_SENT:
		if (ack && ev->ack != t->iss + 1)
			return forged(p, ev, "ack is not our ISN + 1"), false;
		if (rst && !ack)
			return forged(p, ev, "RST without ACK in SYN-SENT"), false;
		if (!ack && (!syn || ev->seq != p->isn_peer))
			return forged(p, ev, "bare SYN without the peer's ISN"), false;
		return true;
	case US_SYN_RECEIVED:
		if (ack && !seq_in(ev->ack, t->iss + 1, t->snd_max + 1))
			return forged(p, ev, "ack outside what we sent"), false;
		if (syn && !ack && ev->seq != p->isn_peer)
			return forged(p, ev, "SYN without the peer's ISN"), false;
		if (rst && !ack && !seq_in(ev->seq, t->rcv_nxt, t->rcv_nxt + (t->rcv_wnd ? t->rcv_wnd : 1)))
			return forged(p, ev, "RST outside the window"), false;
		return true;
	default:
		if (rst && !seq_in(ev->seq, t->rcv_nxt, t->rcv_nxt + (t->rcv_wnd ? t->rcv_wnd : 1)))
			return forged(p, ev, "RST outside the window"), false;
		if (ack && seq_gt(ev->ack, t->snd_max))
			return forged(p, ev, "acks data never sent"), false;
		return true;
	}
}

static int on_tcp(struct rp_punch *p, const struct rp_punch_round_opts *ro, const struct rp_event *ev, uint64_t hs_ns)
{
	struct us_event uev;
	char fl[9];
	if (ev->ip_src == p->laddr)
		return 0;                      /* our own, captured for the dump */
	if (ev->ip_src != p->raddr || ev->ip_dst != p->laddr || !lport_in(p, ev->tuple.dport))
		return 0;
	if (!p->defined)
		return on_tcp_undefined(p, ro, ev, hs_ns);
	if (ev->tuple.dport != p->lport || ev->tuple.sport != p->rport) {
		/* another of the round's ports answering late: count it, the flow is chosen */
		uint8_t f = ev->flags;
		if ((f & (RP_TH_SYN | RP_TH_ACK)) == RP_TH_SYN && ev->seq == p->isn_peer)
			p->st->rx_syn++;
		else if ((f & (RP_TH_SYN | RP_TH_ACK)) == (RP_TH_SYN | RP_TH_ACK) && ev->ack == p->isn_mine + 1)
			p->st->rx_synack++;
		else if ((f & RP_TH_RST) && ev->ack == p->isn_mine + 1)
			p->st->rx_rst++;
		return 0;
	}
	rp_tcp_flags_str(ev->flags, fl);
	trace(p, "rx %-3s :%u -> %u seq=%u ack=%u len=%zu", fl, ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack,
	      ev->paylen);
	if (ev->paylen < ev->paylen_wire)
		return 0;
	if (!valid_for_tcb(p, ev))
		return 0;
	if (ev->flags & RP_TH_RST)
		p->st->rx_rst++;
	feed(p, ev, &uev);
	return tcb_step(p, &uev, false);
}

static int on_icmp(struct rp_punch *p, const struct rp_event *ev)
{
	char a[INET_ADDRSTRLEN];
	if (ev->tuple.saddr != p->laddr || ev->tuple.daddr != p->raddr || !lport_in(p, ev->tuple.sport))
		return 0;
	if (ev->seq != p->isn_mine) {
		p->st->rx_forged++;
		trace(p, "ignored ICMP %u/%u from %s (quoted seq is not our ISN)", ev->icmp_type, ev->icmp_code,
		      rp_ip_str(ev->ip_src, a));
		return 0;
	}
	p->st->rx_icmp++;
	if (ev->icmp_type == 11)
		p->st->rx_icmp_ttl++;
	/* Time-exceeded answers our primes (expected). Other errors are soft: the NATs keep the
	 * mappings (RFC 5382 REQ-10) and the tcb runs in persist mode. */
	if (ev->icmp_type != 11 || p->o.trace)
		trace(p, "rx ICMP %u/%u from %s quoting %u -> :%u", ev->icmp_type, ev->icmp_code, rp_ip_str(ev->ip_src, a),
		      ev->tuple.sport, ev->tuple.dport);
	if (p->defined && ev->tuple.sport == p->lport && ev->tuple.dport == p->rport) {
		struct us_event uev = { .type = US_EV_ICMP_ERROR };
		uev.icmp.type = ev->icmp_type;
		uev.icmp.code = ev->icmp_code;
		uev.icmp.seq = ev->seq;
		return tcb_step(p, &uev, false);
	}
	return 0;
}

static void fill_why(struct rp_punch *p, const struct sender *s, int result)
{
	struct rp_punch_round_stats *st = p->st;
	char *w = st->why;
	size_t cap = sizeof(st->why);
	(void)s;
	if (result == 0) {
		snprintf(w, cap, "established %u <-> :%u by a valid %s %.1f ms after T", p->lport, p->rport,
			 st->trigger ? st->trigger : "packet", st->t_established_ms);
		return;
	}
	if (result == -EINTR) {
		snprintf(w, cap, "interrupted");
		return;
	}
	if (st->defined) {
		snprintf(w, cap, "a valid %s arrived on %u from :%u but the handshake did not complete (%s; tcb %s)",
			 st->trigger ? st->trigger : "packet", p->lport, p->rport, strerror(-result),
			 us_state_name(p->tcb->state));
		return;
	}
	int n = snprintf(w, cap, "no valid SYN/SYN-ACK from the peer: sent %llu primes + %llu SYNs to %u port(s)",
			 (unsigned long long)st->primes_sent, (unsigned long long)st->syns_sent, st->n_remote);
	if (n < 0 || (size_t)n >= cap)
		return;
	if (st->rx_rst && st->rst_cut)
		n += snprintf(w + n, cap - (size_t)n, "; the peer's NAT refused every one (%u RSTs): its mapping is "
			      "not at the announced port, round cut short", st->rx_rst);
	else if (st->rx_rst)
		n += snprintf(w + n, cap - (size_t)n, "; %u RSTs from the peer's NAT (closed ports)", st->rx_rst);
	else if (st->rx_icmp > st->rx_icmp_ttl)
		n += snprintf(w + n, cap - (size_t)n, "; %u ICMP errors", st->rx_icmp - st->rx_icmp_ttl);
	else
		n += snprintf(w + n, cap - (size_t)n, "; silence from the peer's side");
	if (n > 0 && (size_t)n < cap && st->rx_forged)
		snprintf(w + n, cap - (size_t)n, ", %u forged ignored", st->rx_forged);
}

int rp_punch_round(struct rp_punch *p, const struct rp_punch_round_opts *ro, struct rp_punch_round_stats *st)
{
	struct sender *s;
	uint64_t end_ns, next_tick, hs_ns;
	int r, result = -ETIMEDOUT;

	if (!p || !ro || !st || !ro->plan || !ro->self || !ro->peer || (ro->me != 0 && ro->me != 1) || p->released)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->round = ro->round;
	st->strategy = ro->plan->strategy;
	st->t_first_rx_ms = -1;
	st->t_established_ms = -1;
	p->st = st;
	const struct rp_side_plan *mine = &ro->plan->side[ro->me], *theirs = &ro->plan->side[1 - ro->me];
	uint32_t my_pub = rp_punch_pub_addr(ro->self), peer_pub = rp_punch_pub_addr(ro->peer);
	if (peer_pub != p->raddr || !my_pub)
		return -EINVAL;
	p->punch_port = ro->self->local_port;
	if (!p->punch_port)
		return -EINVAL;
	s = rp_punch_sender_new(p);
	if (!s)
		return -ENOMEM;
	/* what this side sends: the strategy's phases (a refusal or an inconsistent plan has none) */
	r = rp_plan_exec(ro->plan, ro->me, ro->self, ro->peer, &s->x);
	if (r) {
		rp_punch_sender_free(s);
		return r;
	}
	p->isn_mine = rp_punch_isn(p->key, my_pub, peer_pub, isn_port(mine, ro->self), ro->round);
	p->isn_peer = rp_punch_isn(p->key, peer_pub, my_pub, isn_port(theirs, ro->peer), ro->round);
	st->isn_mine = p->isn_mine;
	st->isn_peer = p->isn_peer;
	p->defined = false;
	p->lport = p->rport = 0;
	p->timer_ns = 0;
	us_tcb_init(p->tcb);
	memset(p->lport_set, 0, sizeof(p->lport_set));
	lport_add(p, p->punch_port);
	hs_ns = (uint64_t)(ro->handshake_ms ? ro->handshake_ms : 3000) * 1000000ull;
	{
		uint64_t rn = rp_real_ns(), mn = rp_mono_ns();
		p->t0 = mn + (uint64_t)((int64_t)ro->start_real_ns - (int64_t)rn);
	}
	r = rp_punch_guard_port(p, p->punch_port);
	if (r)
		goto out;
	r = rp_punch_sender_build(s, &end_ns);
	if (r)
		goto out;
	end_ns += (uint64_t)(ro->grace_ms ? ro->grace_ms : 600) * 1000000ull;
	/* drain what the capture holds from before (an earlier round's late packets count there) */
	{
		struct rp_event ev;
		while (rp_cap_next(p->cap, &ev) == 1)
			;
	}
	trace(p, "round %u: %s, this side %s, ISN mine %u / peer %u, T in %.1f ms", ro->round,
	      rp_plan_name(ro->plan), rp_side_kind_str(mine->kind), p->isn_mine, p->isn_peer,
	      -since_t0_ms(p, rp_mono_ns()));
	r = rp_punch_sender_start(s);
	if (r)
		goto out;
	next_tick = rp_mono_ns();
	for (;;) {
		uint64_t now = rp_mono_ns();
		if (p->o.stop && *p->o.stop) {
			result = -EINTR;
			break;
		}
		if (p->defined && us_synchronized(p->tcb)) {
			st->established = true;
			st->t_established_ms = since_t0_ms(p, now);
			result = 0;
			break;
		}
		if (p->defined && p->tcb->state == US_CLOSED) {
			result = p->tcb->error ? p->tcb->error : -ECONNABORTED;
			if (result == -ECONNREFUSED || result == -EHOSTUNREACH)
				result = -ETIMEDOUT;
			break;
		}
		if (!p->defined && now >= end_ns)
			break;
		/* The strategy's early end: RSTs from the peer's NAT that keep coming mean our SYNs do
		 * not meet its mapping (its port is not the one announced): the next round re-probes. */
		if (!p->defined && s->x.rst_cut_count && st->rx_rst >= s->x.rst_cut_count &&
		    now >= p->t0 + (uint64_t)s->x.rst_cut_ms * 1000000ull) {
			st->rst_cut = true;
			break;
		}
		if (p->defined && now >= end_ns + hs_ns)
			break;
		if (atomic_load(&s->last_err)) {
			result = atomic_load(&s->last_err);
			break;
		}
		if (ro->progress && now >= next_tick) {
			int k = atomic_load(&s->cur);
			struct rp_punch_progress pr = {
				.round = ro->round,
				.sent = atomic_load(&s->cur_sent), .total = atomic_load(&s->cur_total),
				.replies = st->rx_syn + st->rx_synack + st->rx_rst + st->rx_icmp + st->rx_forged + st->rx_other,
				.elapsed_ms = since_t0_ms(p, now),
				.phase = p->defined ? "handshake" : k < 0 ? "waiting" : atomic_load(&s->done) ? "listen" : s->ph[k].name,
			};
			ro->progress(&pr, ro->progress_arg);
			next_tick = now + TICK_NS;
		}
		uint64_t until = p->defined ? p->timer_ns : end_ns;
		if (!until || until > now + TICK_NS)
			until = now + TICK_NS;
		int ms = until > now ? (int)((until - now + 999999) / 1000000) : 0;
		r = rp_cap_wait(p->cap, ms);
		if (r < 0 && r != -EINTR) {
			result = r;
			break;
		}
		struct rp_event ev;
		int rr = 0;
		while (rr >= 0 && (r = rp_cap_next(p->cap, &ev)) == 1) {
			if (ev.kind == RP_EV_TCP) {
				bool was = p->defined;
				rr = on_tcp(p, ro, &ev, hs_ns);
				if (!was && p->defined) {
					st->defined = true;
					atomic_store(&s->stop, 1);   /* the bursts have done their job */
				}
			} else {
				rr = on_icmp(p, &ev);
			}
		}
		if (rr < 0) {
			result = rr == -ECONNREFUSED || rr == -EHOSTUNREACH ? -ETIMEDOUT : rr;
			if (!p->defined || p->tcb->state == US_CLOSED)
				break;
		}
		if (p->defined && p->timer_ns && rp_mono_ns() >= p->timer_ns) {
			struct us_event tev = { .type = US_EV_TIMER };
			r = tcb_step(p, &tev, false);
			if (r && p->tcb->state == US_CLOSED) {
				result = -ETIMEDOUT;
				break;
			}
		}
	}
	r = 0;
out:
	rp_punch_sender_stop(s);
	st->primes_sent = atomic_load(&s->sent_prime);
	st->syns_sent = atomic_load(&s->sent_syn);
	st->send_errors += atomic_load(&s->errors);
	p->packets_sent += st->primes_sent + st->syns_sent;
	if (s->first_tx_ns)
		st->late_ms = since_t0_ms(p, s->first_tx_ns) - (s->n && s->ph[0].at_ns > p->t0 ?
								 (double)(s->ph[0].at_ns - p->t0) / 1e6 : 0);
	st->duration_ms = since_t0_ms(p, rp_mono_ns());
	st->lport = p->lport;
	st->rport = p->rport;
	rp_punch_sender_free(s);
	if (r) {
		st->result = r;
		snprintf(st->why, sizeof(st->why), "could not set the round up: %s", strerror(-r));
		return r;
	}
	st->result = result;
	fill_why(p, NULL, result);
	return result;
}

int rp_punch_handoff(struct rp_punch *p, const struct rp_handoff_opts *ho, struct rp_handoff_result *res)
{
	struct rp_handoff_params hp;
	int r, fd;
	if (!p || !p->defined || !us_synchronized(p->tcb) || p->released)
		return -ENOTCONN;
	r = rp_handoff_from_tcb(p->tcb, p->laddr, p->lport, p->raddr, p->rport, rp_mono_ns(), &hp);
	if (r)
		return r;
	fd = rp_handoff(&hp, ho, res);
	/* the kernel owns the flow now (or nobody does): guard and capture off */
	rp_punch_release(p);
	return fd;
}
