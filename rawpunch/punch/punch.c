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
#include "rawpunch/punch/rawflow.h"
#include "userstack/seq.h"
#include "userstack/tcb.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"

#define REPRIME_MAX 8   /* primes again in one round, one per reset of ours: a bound on the ping-pong */

#define TICK_NS 100000000ull       /* progress callback period */

/* The port a side's SYNs are bound to in the ISN: its punch port when it sends from that one. */
static uint16_t isn_port(const struct rp_side_plan *sp, const struct rp_natinfo *ni)
{
	return sp->action == RP_ACT_OPEN_MANY ? 0 : ni->local_port;
}

/* --- receiving ----------------------------------------------------------------------------- */

/* The ISN of every SYN we send this round, whatever the ports (rawflow iss hook). */
static uint32_t round_iss(void *arg, uint16_t lport, uint16_t rport)
{
	const struct rp_punch *p = arg;
	(void)lport;
	(void)rport;
	return p->isn_mine;
}

static void handshake_sent(void *arg, const struct us_out_seg *seg, uint16_t rport, int err)
{
	struct rp_punch *p = arg;
	(void)seg;
	(void)rport;
	if (err < 0) {
		p->st->send_errors++;
		return;
	}
	p->st->handshake_sent++;
	p->packets_sent++;
}

/* A new round: no flow yet; the round's ISNs are what its packets are checked against. */
static void flow_begin(struct rp_punch *p)
{
	p->flow = (struct rp_rawflow){
		.craft = p->craft, .tcb = p->tcb, .laddr = p->laddr, .raddr = p->raddr,
		.accept_syn = true, .peer_isn_known = true, .peer_isn = p->isn_peer,
		.iss = round_iss, .sent = handshake_sent, .arg = p, .forged = &p->st->rx_forged,
		.trace = p->o.trace, .trace_arg = p->o.trace_arg,
	};
	rp_rawflow_reset(&p->flow);
	p->defined = false;
	p->lport = p->rport = 0;
}

static int define_flow(struct rp_punch *p, const struct rp_punch_round_opts *ro, uint16_t lport, uint16_t rport,
		       uint64_t deadline)
{
	struct us_config cfg;
	struct us_out out;
	rp_rawflow_config(&cfg, p->isn_mine, 1460, p->ts_offset,
			  (uint64_t)(ro->syn_rtx_ms ? ro->syn_rtx_ms : 250) * 1000000ull, true, deadline);
	cfg.syn_validated = true;   /* a bare SYN reaches the tcb only with the peer's round ISN */
	p->defined = true;
	p->lport = lport;
	p->rport = rport;
	/* our SYN for this flow already left in the burst (or our peer's SYN is answered directly) */
	int r = rp_rawflow_open(&p->flow, lport, rport, &cfg, true, &out);
	return r < 0 ? r : 0;
}

/* A valid SYN or SYN-ACK on a tuple this round sent no SYN on, when its SYNs are explicit pairs
 * (block-pairs): it came through a mapping that an earlier SYN of this local port left at a NAT (an
 * earlier attempt's, SYN-SENT there for minutes), whose connection tracking knows that attempt's
 * sequence numbers, not ours. A flow on it would complete its handshake, then the NAT would hold our
 * segments out of window and let them out untranslated, and the NAT on the other side would answer
 * them with a reset. Never the flow; counted as stray. */
static bool is_stray(const struct rp_punch *p, enum rp_rawflow_kind kind, const struct rp_event *ev)
{
	return (kind == RP_RF_SYN || kind == RP_RF_SYNACK) && p->sent_pairs &&
	       !rp_pairset_has(p->sent_pairs, ev->tuple.dport, ev->tuple.sport);
}

/* Before the flow exists. Returns 1 when it was defined, 0, or -errno. */
static int on_tcp_undefined(struct rp_punch *p, const struct rp_punch_round_opts *ro, const struct rp_event *ev,
			    uint64_t hs_deadline_from_now)
{
	uint64_t now = rp_mono_ns();
	struct us_out out;
	const char *why;
	char fl[9];
	int r;

	rp_tcp_flags_str(ev->flags, fl);
	enum rp_rawflow_kind kind = rp_rawflow_classify(&p->flow, ev, &why);
	if (is_stray(p, kind, ev)) {
		p->st->rx_stray++;
		trace(p, "rx %-3s :%u -> %u: not one of this round's pairs (a stale mapping; ignored)", fl,
		      ev->tuple.sport, ev->tuple.dport);
		return 0;
	}
	switch (kind) {
	case RP_RF_FORGED:
		rp_rawflow_forged(&p->flow, ev, why);
		return 0;
	case RP_RF_REFUSED:
		p->st->rx_rst++;
		trace(p, "rx %-3s :%u -> %u (the peer's NAT refused this port)", fl, ev->tuple.sport, ev->tuple.dport);
		/* a SYN of ours came before the peer's prime (an early SYN, clocks further apart than
		 * estimated): the RST, the entry's only reply, deleted the mapping our prime made (Linux
		 * conntrack does), and the peer's SYN would now meet none: prime again at once */
		if (p->reprime_ttl && ev->tuple.dport == p->punch_port && p->reprimes < REPRIME_MAX &&
		    rp_punch_reprime(p, ev->tuple.sport) == 0) {
			p->reprimes++;
			trace(p, "tx SYN :%u -> %u ttl=%u: primed again (the reset deleted our NAT's entry)", p->punch_port,
			      ev->tuple.sport, p->reprime_ttl);
		}
		return 0;
	case RP_RF_SYN:
		p->st->rx_syn++;
		p->st->trigger = "syn";
		break;
	case RP_RF_SYNACK:
		p->st->rx_synack++;
		p->st->trigger = "syn-ack";
		break;
	default:
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
	r = rp_rawflow_feed(&p->flow, ev, &out);
	return r < 0 ? r : 1;
}

/* Returns < 0 when the tcb closed on an error, else >= 0. */
static int on_tcp(struct rp_punch *p, const struct rp_punch_round_opts *ro, const struct rp_event *ev, uint64_t hs_ns)
{
	struct us_out out;
	char fl[9];
	if (ev->ip_src == p->laddr)
		return 0;                      /* our own, captured for the dump */
	if (ev->ip_src != p->raddr || ev->ip_dst != p->laddr || !lport_in(p, ev->tuple.dport))
		return 0;
	if (!p->defined)
		return on_tcp_undefined(p, ro, ev, hs_ns);
	if (ev->tuple.dport != p->lport || ev->tuple.sport != p->rport) {
		/* another of the round's ports answering late: count it, the flow is chosen */
		enum rp_rawflow_kind kind = rp_rawflow_classify(&p->flow, ev, NULL);
		if (is_stray(p, kind, ev)) {
			p->st->rx_stray++;
			return 0;
		}
		switch (kind) {
		case RP_RF_SYN: p->st->rx_syn++; break;
		case RP_RF_SYNACK: p->st->rx_synack++; break;
		case RP_RF_REFUSED: p->st->rx_rst++; break;
		default: break;
		}
		return 0;
	}
	rp_tcp_flags_str(ev->flags, fl);
	trace(p, "rx %-3s :%u -> %u seq=%u ack=%u len=%zu", fl, ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack,
	      ev->paylen);
	if (ev->paylen < ev->paylen_wire)
		return 0;
	if (!rp_rawflow_acceptable(&p->flow, ev))
		return 0;
	if (ev->flags & RP_TH_RST)
		p->st->rx_rst++;
	return rp_rawflow_feed(&p->flow, ev, &out);
}

static int on_icmp(struct rp_punch *p, const struct rp_event *ev)
{
	struct us_out out;
	char a[INET_ADDRSTRLEN];
	if (ev->tuple.saddr != p->laddr || ev->tuple.daddr != p->raddr || !lport_in(p, ev->tuple.sport))
		return 0;
	if (!rp_rawflow_icmp_ok(&p->flow, ev))
		return 0;
	p->st->rx_icmp++;
	if (ev->icmp_type == 11)
		p->st->rx_icmp_ttl++;
	/* Time-exceeded answers our primes (expected). Other errors are soft: the NATs keep the
	 * mappings (RFC 5382 REQ-10) and the tcb runs in persist mode. */
	trace(p, "rx ICMP %u/%u from %s quoting %u -> :%u", ev->icmp_type, ev->icmp_code, rp_ip_str(ev->ip_src, a),
	      ev->tuple.sport, ev->tuple.dport);
	return rp_rawflow_icmp(&p->flow, ev, &out);
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
			      "not at the announced port, or a reset deleted it; round cut short", st->rx_rst);
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
	/* (only a prime from the punch port behind a NAT that keeps its ports: elsewhere the deleted entry's
	 * port does not come back, and a prime again would only take another) */
	p->reprime_ttl = s->x.n && s->x.ph[0].prime && s->x.ph[0].src == RP_SRC_PUNCH &&
			 ro->self->alloc == RP_ALLOC_PRESERVING ? (s->x.ph[0].ttl ? s->x.ph[0].ttl : s->x.low_ttl) : 0;
	p->reprimes = 0;
	p->isn_mine = rp_punch_isn(p->key, my_pub, peer_pub, isn_port(mine, ro->self), ro->round);
	p->isn_peer = rp_punch_isn(p->key, peer_pub, my_pub, isn_port(theirs, ro->peer), ro->round);
	st->isn_mine = p->isn_mine;
	st->isn_peer = p->isn_peer;
	flow_begin(p);
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
	trace(p, "round %u: %s, this side %s, ISN mine %u / peer %u, T in %.1f ms", ro->round + 1,
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
		if (ro->halt && *ro->halt) {
			result = -ECONNABORTED;
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
				.replies = st->rx_syn + st->rx_synack + st->rx_rst + st->rx_icmp + st->rx_forged + st->rx_other +
					   st->rx_stray,
				.elapsed_ms = since_t0_ms(p, now),
				.phase = p->defined ? "handshake" : k < 0 ? "waiting" : atomic_load(&s->done) ? "listen" : s->ph[k].name,
			};
			ro->progress(&pr, ro->progress_arg);
			next_tick = now + TICK_NS;
		}
		uint64_t until = p->defined ? p->flow.timer_ns : end_ns;
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
		if (p->defined) {
			struct us_out tout;
			r = rp_rawflow_timer(&p->flow, rp_mono_ns(), &tout);
			if (r && p->tcb->state == US_CLOSED) {
				result = -ETIMEDOUT;
				break;
			}
		}
	}
	r = 0;
out:
	rp_punch_sender_stop(s);
	st->primes_sent = atomic_load(&s->sent_prime) + p->reprimes;
	st->syns_sent = atomic_load(&s->sent_syn);
	st->send_errors += atomic_load(&s->errors);
	p->packets_sent += st->primes_sent + st->syns_sent;
	if (s->first_tx_ns) {
		/* against when the first phase was due: T + its at_ms, or, for one that may begin before T
		 * (pre_ms), its start or the round's, whichever came later */
		uint64_t due = s->ph[0].at_ns > p->t0 ? s->ph[0].at_ns : p->t0;
		if (s->x.n && s->x.ph[0].pre_ms)
			due = s->ph[0].at_ns > s->start_ns ? s->ph[0].at_ns : s->start_ns;
		st->late_ms = (double)(int64_t)(s->first_tx_ns - due) / 1e6;
	}
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
