/* SPDX-License-Identifier: MIT */
/* Userspace TCP state machine, input (see tcb-internal.h): a segment arriving in LISTEN, SYN-SENT
 * or a synchronized state (the §3.10.7 checks with RFC 5961 and PAWS, ACK processing, in-order
 * data and FIN), the options negotiated from the peer's SYN, and ICMP errors (RFC 5927). */
#include "userstack/tcb-internal.h"

#include <errno.h>
#include <string.h>

#include "userstack/seq.h"

#define MIN_EFF_MSS 48            /* a peer MSS of 0 must not make us loop on empty segments */

/* Options from the peer's SYN (§3.7.1, RFC 7323, RFC 2018). */
static void negotiate(struct us_tcb *t, const struct us_segment *s)
{
	t->wscale_ok = t->cfg.wscale_ok && s->opts.has_wscale;
	t->snd_wscale = t->wscale_ok ? (s->opts.wscale > 14 ? 14 : s->opts.wscale) : 0;
	t->rcv_wscale = t->wscale_ok ? t->cfg.wscale : 0;
	t->sack_ok = t->cfg.sack_ok && s->opts.sack_perm;
	t->ts_ok = t->cfg.ts_ok && s->opts.has_ts;
	t->ts_recent = t->ts_ok ? s->opts.tsval : 0;
	t->peer_mss = s->opts.has_mss ? s->opts.mss : DEF_PEER_MSS;
	uint16_t eff = t->peer_mss < t->cfg.mss ? t->peer_mss : t->cfg.mss;
	if (t->ts_ok && eff > MIN_EFF_MSS + 12)
		eff -= 12;                    /* room for the timestamp option on every segment */
	t->eff_mss = eff < MIN_EFF_MSS ? MIN_EFF_MSS : eff;
}

static void set_window_from_syn(struct us_tcb *t, const struct us_segment *s)
{
	t->snd_wnd = s->win;                  /* unscaled in a SYN */
	t->snd_wl1 = s->seq;
	t->snd_wl2 = s->ack;
	if (t->snd_wnd > t->max_window)
		t->max_window = t->snd_wnd;
}

/* ---- ICMP ---- */

/* -errno for an ICMP error, *hard = abort a connection that is not yet established. 0 = ignore. */
static int icmp_errno(uint8_t type, uint8_t code, bool *hard)
{
	*hard = false;
	switch (type) {
	case 3: /* destination unreachable */
		switch (code) {
		case 0: return -ENETUNREACH;
		case 1: return -EHOSTUNREACH;
		case 2: *hard = true; return -ENOPROTOOPT;
		case 3: *hard = true; return -ECONNREFUSED;
		case 4: return 0;                     /* fragmentation needed: PMTU, not an error */
		case 5: return -EOPNOTSUPP;
		case 6: *hard = true; return -ENETUNREACH;
		case 7: *hard = true; return -EHOSTDOWN;
		case 8: *hard = true; return -ENONET;
		case 9: case 10: *hard = true; return -ENETUNREACH;   /* administratively prohibited */
		case 11: return -ENETUNREACH;
		case 12: return -EHOSTUNREACH;
		case 13: case 14: case 15: *hard = true; return -EHOSTUNREACH;
		default: return 0;
		}
	case 11: return -EHOSTUNREACH;            /* time exceeded (low-TTL SYNs die this way) */
	case 12: *hard = true; return -EPROTO;    /* parameter problem */
	default: return 0;                        /* source quench, redirects, ...: ignored */
	}
}

void tcb_on_icmp(struct ctx *c, const struct us_event *ev)
{
	struct us_tcb *t = c->t;
	bool hard;
	t->icmp_rcvd++;
	t->last_icmp_type = ev->icmp.type;
	t->last_icmp_code = ev->icmp.code;
	if (t->state == US_CLOSED || t->state == US_LISTEN || t->state == US_TIME_WAIT)
		return;
	/* the quoted segment must be one we have outstanding (RFC 5927 §4.1) */
	uint32_t lo = t->snd_una, hi = t->snd_max;
	if (lo == hi || !seq_in(ev->icmp.seq, lo, hi)) {
		t->dropped++;
		return;
	}
	int err = icmp_errno(ev->icmp.type, ev->icmp.code, &hard);
	if (!err)
		return;
	t->soft_error = err;
	bool opening = t->state == US_SYN_SENT || t->state == US_SYN_RECEIVED;
	if (opening && hard && !t->cfg.persist) {
		tcb_do_close(t, c->out, err);
		return;
	}
	c->out->notify |= US_N_SOFT_ERROR;
}

/* ---- segment arrival ---- */

/* The peer's SYN (LISTEN or SYN-SENT): its ISN, the options both SYNs agree on, its window; our
 * receive window is advertised afresh with the SYN-ACK. */
static void take_peer_syn(struct us_tcb *t, const struct us_segment *s)
{
	t->irs = s->seq;
	t->rcv_nxt = s->seq + 1;
	negotiate(t, s);
	set_window_from_syn(t, s);
	t->rcv_wnd = 0;
	t->rcv_wup = 0;
}

static void on_listen(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;
	if (s->flags & US_TH_RST)
		return;
	if (s->flags & US_TH_ACK) {
		t->dropped++;
		if (!t->cfg.persist)
			tcb_send_rst_for(c, s);
		return;
	}
	if (!(s->flags & US_TH_SYN)) {
		t->dropped++;
		return;
	}
	take_peer_syn(t, s);
	t->snd_una = t->iss;
	t->snd_nxt = t->snd_max = t->iss + 1;
	t->state = US_SYN_RECEIVED;
	t->syn_rcvd_from_listen = true;
	tcb_send_syn(c, true);
	tcb_arm_syn_timer(c);
}

static void on_syn_sent(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;
	bool ack_ok = false;

	if (s->flags & US_TH_ACK) {
		if (seq_le(s->ack, t->iss) || seq_gt(s->ack, t->snd_max)) {
			t->dropped++;
			if (!(s->flags & US_TH_RST) && !t->cfg.persist)
				tcb_send_rst_for(c, s);
			return;
		}
		ack_ok = true;
	}
	if (s->flags & US_TH_RST) {
		if (!ack_ok) {               /* RFC 5961 §3: only an RST that acks our SYN counts */
			t->dropped++;
			return;
		}
		t->rst_rcvd++;
		if (t->cfg.persist) {
			t->soft_error = -ECONNREFUSED;
			c->out->notify |= US_N_SOFT_ERROR;
			return;
		}
		tcb_do_close(t, c->out, -ECONNREFUSED);
		return;
	}
	if (!(s->flags & US_TH_SYN)) {
		t->dropped++;
		return;
	}
	take_peer_syn(t, s);
	if (ack_ok) {
		/* active open completes; any payload on the SYN-ACK is not taken (no TFO) */
		t->snd_una = s->ack;
		t->snd_nxt = seq_max(t->snd_nxt, s->ack);
		tcb_become_established(c);
		c->need_ack = true;
		return;
	}
	/* simultaneous open (§3.5 fig. 8): SYN-ACK with the same ISS */
	t->state = US_SYN_RECEIVED;
	t->syn_rcvd_from_listen = false;
	t->irs_tentative = !t->cfg.syn_validated;
	tcb_send_syn(c, true);
	tcb_arm_syn_timer(c);
}

/* §3.10.7.4 first check; rcv window as last advertised */
static bool acceptable(const struct us_tcb *t, const struct us_segment *s)
{
	uint32_t slen = (uint32_t)s->len + !!(s->flags & US_TH_SYN) + !!(s->flags & US_TH_FIN);
	uint32_t edge = t->rcv_wup + t->rcv_wnd;
	uint32_t wnd = seq_gt(edge, t->rcv_nxt) ? edge - t->rcv_nxt : 0;
	if (slen == 0)
		return wnd == 0 ? s->seq == t->rcv_nxt : seq_in(s->seq, t->rcv_nxt, t->rcv_nxt + wnd);
	if (wnd == 0)
		return false;
	return seq_in(s->seq, t->rcv_nxt, t->rcv_nxt + wnd) ||
	       seq_in(s->seq + slen - 1, t->rcv_nxt, t->rcv_nxt + wnd);
}

static void on_rst(struct ctx *c)
{
	struct us_tcb *t = c->t;
	t->rst_rcvd++;
	switch (t->state) {
	case US_SYN_RECEIVED:
		if (t->syn_rcvd_from_listen) {
			/* back to LISTEN (§3.10.7.4); the next SYN starts over, unless the app closed */
			if (t->close_pending) {
				tcb_do_close(t, c->out, 0);
				return;
			}
			t->state = US_LISTEN;
			t->rtx_at = 0;
			t->snd_len = 0;
			return;
		}
		if (t->cfg.persist) {
			t->soft_error = -ECONNREFUSED;
			c->out->notify |= US_N_SOFT_ERROR;
			return;
		}
		tcb_do_close(t, c->out, -ECONNREFUSED);
		return;
	case US_ESTABLISHED: case US_FIN_WAIT_1: case US_FIN_WAIT_2: case US_CLOSE_WAIT:
		tcb_do_close(t, c->out, -ECONNRESET);
		return;
	default:                             /* CLOSING, LAST-ACK, TIME-WAIT */
		tcb_do_close(t, c->out, 0);
		return;
	}
}

/* The ACK field in a synchronized state (§3.10.7.4 fifth check, RFC 5961 §5). false = stop. */
static bool on_ack(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;
	if (seq_gt(s->ack, t->snd_max)) {
		t->dropped++;                /* acks something not yet sent */
		tcb_send_ack(c);
		return false;
	}
	if (seq_lt(s->ack, t->snd_una - t->max_window)) {
		t->dropped++;                /* too old to be plausible: challenge (RFC 5961 §5.2) */
		tcb_challenge_ack(c);
		return false;
	}
	if (seq_gt(s->ack, t->snd_una)) {
		uint32_t acked = s->ack - t->snd_una;
		bool fin_acked = t->fin_sent && seq_gt(s->ack, t->fin_seq);
		size_t data = fin_acked ? acked - 1 : acked;
		if (data > t->snd_len)
			data = t->snd_len;
		if (data) {
			memmove(t->sndbuf, t->sndbuf + data, t->snd_len - data);
			t->snd_len -= data;
			c->out->notify |= US_N_WRITABLE;
		}
		t->snd_una = s->ack;
		if (seq_lt(t->snd_nxt, t->snd_una))
			t->snd_nxt = t->snd_una;
		t->rtx_count = 0;
		t->rto_cur = t->cfg.rto_ns;
		t->rtx_at = t->snd_una == t->snd_max ? 0 : c->now + t->rto_cur;
		if (fin_acked) {
			if (t->state == US_FIN_WAIT_1)
				t->state = US_FIN_WAIT_2;
			else if (t->state == US_CLOSING)
				tcb_enter_time_wait(c);
			else if (t->state == US_LAST_ACK) {
				tcb_do_close(t, c->out, 0);
				return false;
			}
		}
	}
	/* window update (§3.10.7.4): newer segment, or same segment with a newer ack */
	if (seq_le(t->snd_una, s->ack) &&
	    (seq_lt(t->snd_wl1, s->seq) || (t->snd_wl1 == s->seq && seq_le(t->snd_wl2, s->ack)))) {
		t->snd_wnd = (uint32_t)s->win << t->snd_wscale;
		t->snd_wl1 = s->seq;
		t->snd_wl2 = s->ack;
		if (t->snd_wnd > t->max_window)
			t->max_window = t->snd_wnd;
		/* a live peer answering window probes with a zero window is not a dead one */
		if (!t->snd_wnd && s->ack == t->snd_una)
			t->rtx_count = 0;
	}
	return true;
}

/* Payload and FIN (§3.10.7.4 seventh and eighth checks); in-order only. */
static void on_data_fin(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;
	bool fin = s->flags & US_TH_FIN;
	bool takes_data = t->state == US_ESTABLISHED || t->state == US_FIN_WAIT_1 ||
			  t->state == US_FIN_WAIT_2;

	if (!s->len && !fin)
		return;
	if (t->fin_rcvd || !takes_data) {
		/* after the peer's FIN: a retransmitted FIN or stray data; re-ACK */
		if (t->state == US_TIME_WAIT && fin)
			t->tw_at = c->now + t->cfg.time_wait_ns;
		c->need_ack = true;
		return;
	}
	if (seq_gt(s->seq, t->rcv_nxt)) {
		t->dropped++;                /* out of order: dropped, duplicate ACK tells the peer */
		c->need_ack = true;
		return;
	}
	size_t skip = t->rcv_nxt - s->seq;
	size_t take = 0;
	if (skip < s->len) {
		uint32_t edge = t->rcv_wup + t->rcv_wnd;
		size_t wnd = seq_gt(edge, t->rcv_nxt) ? edge - t->rcv_nxt : 0;
		size_t room = US_RCVBUF - t->rcv_len;
		take = s->len - skip;
		if (take > wnd)
			take = wnd;
		if (take > room)
			take = room;
		memcpy(t->rcvbuf + t->rcv_len, s->payload + skip, take);
		t->rcv_len += take;
		t->rcv_nxt += (uint32_t)take;
		if (take)
			c->out->notify |= US_N_READABLE;
	}
	c->need_ack = true;
	if (!fin || skip + take != s->len)
		return;                      /* FIN only once everything before it is in */
	t->rcv_nxt++;
	t->fin_rcvd = true;
	c->out->notify |= US_N_PEER_FIN;
	switch (t->state) {
	case US_ESTABLISHED:
		t->state = US_CLOSE_WAIT;
		break;
	case US_FIN_WAIT_1:                   /* our FIN not acked yet (else we'd be in FIN-WAIT-2) */
		t->state = US_CLOSING;
		break;
	case US_FIN_WAIT_2:
		tcb_enter_time_wait(c);
		break;
	default:
		break;
	}
}

static void on_synchronized(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;

	/* SYN-RECEIVED on a SYN nobody validated: only what acks our SYN counts. A SYN-ACK that does
	 * (a server answering our SYN, or a simultaneous-open peer) defines the peer's ISN, whatever the
	 * tentative one was; RSTs must ack our SYN; other bare SYNs are ignored (a blind spray). */
	if (t->state == US_SYN_RECEIVED && t->irs_tentative) {
		bool acks_ours = (s->flags & US_TH_ACK) && seq_gt(s->ack, t->snd_una) && seq_le(s->ack, t->snd_max);
		if ((s->flags & US_TH_RST) && !acks_ours) {
			t->dropped++;             /* anyone who sent the SYN can send this: remember only */
			t->rst_rcvd++;
			t->soft_error = -ECONNREFUSED;
			c->out->notify |= US_N_SOFT_ERROR;
			return;
		}
		if ((s->flags & US_TH_SYN) && !(s->flags & US_TH_RST) && acks_ours && s->seq != t->irs)
			take_peer_syn(t, s);
		else if ((s->flags & US_TH_SYN) && !(s->flags & US_TH_ACK) && s->seq != t->irs) {
			t->dropped++;
			return;
		}
		if (acks_ours)
			t->irs_tentative = false;    /* the peer saw our ISN: irs is its own */
	}
	/* SYN-RECEIVED: the peer's SYN again (our SYN-ACK was lost) or its SYN-ACK (simultaneous open) */
	if (t->state == US_SYN_RECEIVED && (s->flags & US_TH_SYN) && !(s->flags & US_TH_RST) &&
	    s->seq == t->irs) {
		if (!(s->flags & US_TH_ACK)) {
			tcb_send_syn(c, true);
			return;
		}
		if (seq_gt(s->ack, t->snd_una) && seq_le(s->ack, t->snd_max)) {
			t->snd_una = s->ack;
			set_window_from_syn(t, s);
			if (t->ts_ok && s->opts.has_ts)
				t->ts_recent = s->opts.tsval;
			tcb_become_established(c);
			c->need_ack = true;
			return;
		}
		t->dropped++;
		if (!t->cfg.persist)
			tcb_send_rst_for(c, s);
		return;
	}

	/* first check: sequence number, with PAWS (RFC 7323 §5) */
	bool paws_fail = t->ts_ok && s->opts.has_ts && !(s->flags & US_TH_RST) &&
			 seq_lt(s->opts.tsval, t->ts_recent);
	if (paws_fail || !acceptable(t, s)) {
		t->dropped++;
		if (!(s->flags & US_TH_RST)) {
			if (t->state == US_TIME_WAIT && (s->flags & US_TH_FIN))
				t->tw_at = c->now + t->cfg.time_wait_ns;
			tcb_send_ack(c);
		}
		return;
	}
	/* second check: RST (RFC 5961 §3.2) */
	if (s->flags & US_TH_RST) {
		if (s->seq == t->rcv_nxt)
			on_rst(c);
		else {
			t->dropped++;
			tcb_challenge_ack(c);
		}
		return;
	}
	/* fourth check: SYN in a synchronized state (RFC 5961 §4.2) */
	if (s->flags & US_TH_SYN) {
		t->dropped++;
		tcb_challenge_ack(c);
		return;
	}
	if (!(s->flags & US_TH_ACK)) {
		t->dropped++;
		return;
	}
	if (t->ts_ok && s->opts.has_ts && seq_le(s->seq, t->rcv_nxt) &&
	    seq_ge(s->opts.tsval, t->ts_recent))
		t->ts_recent = s->opts.tsval;

	if (t->state == US_SYN_RECEIVED) {
		if (!(seq_gt(s->ack, t->snd_una) && seq_le(s->ack, t->snd_max))) {
			t->dropped++;
			if (!t->cfg.persist)
				tcb_send_rst_for(c, s);
			return;
		}
		t->snd_una = s->ack;
		/* window of the completing ACK is scaled (it is not a SYN) */
		t->snd_wnd = (uint32_t)s->win << t->snd_wscale;
		t->snd_wl1 = s->seq;
		t->snd_wl2 = s->ack;
		if (t->snd_wnd > t->max_window)
			t->max_window = t->snd_wnd;
		tcb_become_established(c);
	}
	if (!on_ack(c, s))
		return;
	if (t->state == US_CLOSED)
		return;
	on_data_fin(c, s);
}

void tcb_on_segment(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;
	switch (t->state) {
	case US_CLOSED:
		t->dropped++;                /* a CLOSED tcb stays silent; the caller owns the port */
		return;
	case US_LISTEN:
		on_listen(c, s);
		return;
	case US_SYN_SENT:
		on_syn_sent(c, s);
		return;
	default:
		on_synchronized(c, s);
		return;
	}
}
