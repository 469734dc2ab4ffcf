/* SPDX-License-Identifier: MIT */
/* Userspace TCP state machine: see tcb.h. Section numbers refer to RFC 9293 unless noted. */
#include "userstack/tcb.h"

#include <errno.h>
#include <string.h>

#include "userstack/seq.h"

#define NS_PER_S 1000000000ull
#define DEF_MSS 1460
#define DEF_PEER_MSS 536          /* §3.7.1: no MSS option -> 536 */
#define MIN_EFF_MSS 48            /* a peer MSS of 0 must not make us loop on empty segments */
#define DEF_RTO (1 * NS_PER_S)
#define DEF_RTO_MAX (60 * NS_PER_S)
#define DEF_RETRIES 6
#define DEF_TIME_WAIT (1 * NS_PER_S)

/* per-step scratch */
struct ctx {
	struct us_tcb *t;
	struct us_out *out;
	uint64_t now;
	bool need_ack;            /* an ACK must go out unless a segment with ACK already did */
	bool acked_out;           /* a segment carrying ACK was emitted in this step */
};

const char *us_state_name(enum us_state s)
{
	static const char *const names[] = {
		[US_CLOSED] = "CLOSED", [US_LISTEN] = "LISTEN", [US_SYN_SENT] = "SYN-SENT",
		[US_SYN_RECEIVED] = "SYN-RECEIVED", [US_ESTABLISHED] = "ESTABLISHED",
		[US_FIN_WAIT_1] = "FIN-WAIT-1", [US_FIN_WAIT_2] = "FIN-WAIT-2",
		[US_CLOSE_WAIT] = "CLOSE-WAIT", [US_CLOSING] = "CLOSING", [US_LAST_ACK] = "LAST-ACK",
		[US_TIME_WAIT] = "TIME-WAIT",
	};
	if ((unsigned)s < sizeof(names) / sizeof(names[0]) && names[s])
		return names[s];
	return "?";
}

void us_tcb_init(struct us_tcb *t)
{
	memset(t, 0, offsetof(struct us_tcb, sndbuf));
	t->state = US_CLOSED;
}

bool us_synchronized(const struct us_tcb *t)
{
	return t->state >= US_ESTABLISHED;
}

static uint32_t tsval_now(const struct us_tcb *t, uint64_t now)
{
	return (uint32_t)(now / 1000000u) + t->ts_offset;
}

/* sequence number of sndbuf[0] */
static uint32_t buf_seq(const struct us_tcb *t)
{
	return us_synchronized(t) ? t->snd_una : t->iss + 1;
}

static uint32_t rcv_space(const struct us_tcb *t)
{
	/* cfg.rcv_wnd <= US_RCVBUF: the window is what is left of it after the unread bytes */
	return t->rcv_len < t->cfg.rcv_wnd ? t->cfg.rcv_wnd - (uint32_t)t->rcv_len : 0;
}

/* Window field for an outgoing segment; records what was advertised (rcv_wnd, rcv_wup). */
static uint16_t adv_window(struct us_tcb *t, bool syn)
{
	uint32_t w = rcv_space(t);
	uint32_t old_edge = t->rcv_wup + t->rcv_wnd;
	/* never move the right edge left (§3.8.6) */
	if (seq_lt(t->rcv_nxt + w, old_edge) && (t->rcv_wnd || t->rcv_wup))
		w = old_edge - t->rcv_nxt;
	uint8_t sh = syn ? 0 : t->rcv_wscale;   /* windows in SYNs are never scaled (RFC 7323 §2.2) */
	uint32_t wire = w >> sh;
	if (wire > 0xffff)
		wire = 0xffff;
	t->rcv_wnd = wire << sh;
	t->rcv_wup = t->rcv_nxt;
	return (uint16_t)wire;
}

static struct us_out_seg *emit(struct ctx *c, uint32_t seq, uint32_t ack, uint8_t flags,
			       const uint8_t *payload, size_t len)
{
	struct us_tcb *t = c->t;
	struct us_out *o = c->out;
	if (o->n >= US_OUT_MAX)
		return NULL;
	struct us_out_seg *s = &o->seg[o->n++];
	memset(s, 0, sizeof(*s));
	s->seq = seq;
	s->ack = (flags & US_TH_ACK) ? ack : 0;
	s->flags = flags;
	s->payload = len ? payload : NULL;
	s->len = len;
	bool syn = flags & US_TH_SYN;
	if (flags & US_TH_RST) {
		s->win = 0;
		return s;
	}
	s->win = adv_window(t, syn);
	if (syn) {
		bool synack = flags & US_TH_ACK;
		s->opts.has_mss = true;
		s->opts.mss = t->cfg.mss;
		/* a SYN-ACK carries only what the peer's SYN offered (RFC 7323 §1.3, RFC 2018) */
		s->opts.has_wscale = synack ? t->wscale_ok : t->cfg.wscale_ok;
		s->opts.wscale = t->cfg.wscale;
		s->opts.sack_perm = synack ? t->sack_ok : t->cfg.sack_ok;
		s->opts.has_ts = synack ? t->ts_ok : t->cfg.ts_ok;
	} else {
		s->opts.has_ts = t->ts_ok;
	}
	if (s->opts.has_ts) {
		s->opts.tsval = tsval_now(t, c->now);
		s->opts.tsecr = (syn && !(flags & US_TH_ACK)) ? 0 : t->ts_recent;
	}
	if (flags & US_TH_ACK)
		c->acked_out = true;
	return s;
}

static void send_ack(struct ctx *c)
{
	emit(c, c->t->snd_nxt, c->t->rcv_nxt, US_TH_ACK, NULL, 0);
}

static void challenge_ack(struct ctx *c)
{
	c->t->challenge_acks++;
	send_ack(c);
}

/* RST in reply to an unacceptable ACK (§3.10.7.2/3): <SEQ=SEG.ACK><CTL=RST> */
static void send_rst_for(struct ctx *c, const struct us_segment *s)
{
	emit(c, s->ack, 0, US_TH_RST, NULL, 0);
}

static void send_syn(struct ctx *c, bool with_ack)
{
	struct us_tcb *t = c->t;
	emit(c, t->iss, t->rcv_nxt, (uint8_t)(US_TH_SYN | (with_ack ? US_TH_ACK : 0)), NULL, 0);
	t->syn_tx++;
}

static void do_close(struct us_tcb *t, struct us_out *out, int err)
{
	t->state = US_CLOSED;
	t->error = err;
	t->rtx_at = 0;
	t->tw_at = 0;
	out->notify |= US_N_CLOSED;
	out->error = err;
}

static void enter_time_wait(struct ctx *c)
{
	c->t->state = US_TIME_WAIT;
	c->t->rtx_at = 0;
	c->t->tw_at = c->now + c->t->cfg.time_wait_ns;
}

static uint64_t backoff(const struct us_tcb *t, uint64_t cur, bool syn)
{
	if (syn && t->cfg.syn_no_backoff)
		return t->cfg.syn_rto_ns;
	uint64_t n = cur * 2;
	if (n < cur || n > t->cfg.rto_max_ns)
		n = t->cfg.rto_max_ns;
	return n;
}

static void arm_syn_timer(struct ctx *c)
{
	c->t->rtx_count = 0;
	c->t->rto_cur = c->t->cfg.syn_rto_ns;
	c->t->rtx_at = c->now + c->t->rto_cur;
}

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

static void become_established(struct ctx *c)
{
	c->t->state = US_ESTABLISHED;
	c->t->rtx_at = 0;
	c->t->rtx_count = 0;
	c->t->rto_cur = c->t->cfg.rto_ns;
	c->out->notify |= US_N_ESTABLISHED;
}

/* Send what the window allows: new data, then a FIN if a close is pending. limit caps the number of
 * segments (1 after an RTO). Arms the retransmission timer when something is outstanding. */
static void try_send(struct ctx *c, unsigned limit)
{
	struct us_tcb *t = c->t;
	if (!us_synchronized(t))
		return;
	bool can_data = t->state == US_ESTABLISHED || t->state == US_CLOSE_WAIT ||
			t->state == US_FIN_WAIT_1 || t->state == US_CLOSING || t->state == US_LAST_ACK;
	uint32_t end = buf_seq(t) + (uint32_t)t->snd_len;       /* one past the last queued byte */
	unsigned sent = 0;
	bool was_idle = t->snd_una == t->snd_max;

	while (can_data && sent < limit && seq_lt(t->snd_nxt, end) && c->out->n < US_OUT_MAX) {
		uint32_t inflight = t->snd_nxt - t->snd_una;
		uint32_t room = t->snd_wnd > inflight ? t->snd_wnd - inflight : 0;
		if (!room)
			break;                   /* zero window: on_timer() probes */
		uint32_t n = end - t->snd_nxt;
		if (n > t->eff_mss)
			n = t->eff_mss;
		if (n > room)
			n = room;
		const uint8_t *p = t->sndbuf + (t->snd_nxt - buf_seq(t));
		uint8_t fl = US_TH_ACK | (t->snd_nxt + n == end ? US_TH_PSH : 0);
		if (seq_lt(t->snd_nxt, t->snd_max))
			t->rtx_total++;
		emit(c, t->snd_nxt, t->rcv_nxt, fl, p, n);
		t->snd_nxt += n;
		t->snd_max = seq_max(t->snd_max, t->snd_nxt);
		sent++;
	}
	if (t->fin_sent && t->snd_nxt == t->fin_seq && sent < limit && c->out->n < US_OUT_MAX) {
		/* retransmission of our FIN */
		t->rtx_total++;
		emit(c, t->fin_seq, t->rcv_nxt, US_TH_FIN | US_TH_ACK, NULL, 0);
		t->snd_nxt = t->fin_seq + 1;
		sent++;
	} else if (t->close_pending && !t->fin_sent && t->snd_nxt == end && sent < limit &&
		   (t->state == US_ESTABLISHED || t->state == US_CLOSE_WAIT) && c->out->n < US_OUT_MAX) {
		emit(c, t->snd_nxt, t->rcv_nxt, US_TH_FIN | US_TH_ACK, NULL, 0);
		t->fin_sent = true;
		t->fin_seq = t->snd_nxt;
		t->snd_nxt++;
		t->snd_max = seq_max(t->snd_max, t->snd_nxt);
		t->state = t->state == US_ESTABLISHED ? US_FIN_WAIT_1 : US_LAST_ACK;
	}
	if (t->snd_una != t->snd_max && (!t->rtx_at || was_idle))
		t->rtx_at = c->now + t->rto_cur;
	/* data queued, window closed, nothing in flight: the RTO timer drives the window probe */
	if (t->snd_una == t->snd_max && seq_lt(t->snd_nxt, end) && !t->rtx_at)
		t->rtx_at = c->now + t->rto_cur;
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

static void on_icmp(struct ctx *c, const struct us_event *ev)
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
		do_close(t, c->out, err);
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
			send_rst_for(c, s);
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
	send_syn(c, true);
	arm_syn_timer(c);
}

static void on_syn_sent(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;
	bool ack_ok = false;

	if (s->flags & US_TH_ACK) {
		if (seq_le(s->ack, t->iss) || seq_gt(s->ack, t->snd_max)) {
			t->dropped++;
			if (!(s->flags & US_TH_RST) && !t->cfg.persist)
				send_rst_for(c, s);
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
		do_close(t, c->out, -ECONNREFUSED);
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
		become_established(c);
		c->need_ack = true;
		return;
	}
	/* simultaneous open (§3.5 fig. 8): SYN-ACK with the same ISS */
	t->state = US_SYN_RECEIVED;
	t->syn_rcvd_from_listen = false;
	send_syn(c, true);
	arm_syn_timer(c);
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
				do_close(t, c->out, 0);
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
		do_close(t, c->out, -ECONNREFUSED);
		return;
	case US_ESTABLISHED: case US_FIN_WAIT_1: case US_FIN_WAIT_2: case US_CLOSE_WAIT:
		do_close(t, c->out, -ECONNRESET);
		return;
	default:                             /* CLOSING, LAST-ACK, TIME-WAIT */
		do_close(t, c->out, 0);
		return;
	}
}

/* The ACK field in a synchronized state (§3.10.7.4 fifth check, RFC 5961 §5). false = stop. */
static bool on_ack(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;
	if (seq_gt(s->ack, t->snd_max)) {
		t->dropped++;                /* acks something not yet sent */
		send_ack(c);
		return false;
	}
	if (seq_lt(s->ack, t->snd_una - t->max_window)) {
		t->dropped++;                /* too old to be plausible: challenge (RFC 5961 §5.2) */
		challenge_ack(c);
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
				enter_time_wait(c);
			else if (t->state == US_LAST_ACK) {
				do_close(t, c->out, 0);
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
		enter_time_wait(c);
		break;
	default:
		break;
	}
}

static void on_synchronized(struct ctx *c, const struct us_segment *s)
{
	struct us_tcb *t = c->t;

	/* SYN-RECEIVED: the peer's SYN again (our SYN-ACK was lost) or its SYN-ACK (simultaneous open) */
	if (t->state == US_SYN_RECEIVED && (s->flags & US_TH_SYN) && !(s->flags & US_TH_RST) &&
	    s->seq == t->irs) {
		if (!(s->flags & US_TH_ACK)) {
			send_syn(c, true);
			return;
		}
		if (seq_gt(s->ack, t->snd_una) && seq_le(s->ack, t->snd_max)) {
			t->snd_una = s->ack;
			set_window_from_syn(t, s);
			if (t->ts_ok && s->opts.has_ts)
				t->ts_recent = s->opts.tsval;
			become_established(c);
			c->need_ack = true;
			return;
		}
		t->dropped++;
		if (!t->cfg.persist)
			send_rst_for(c, s);
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
			send_ack(c);
		}
		return;
	}
	/* second check: RST (RFC 5961 §3.2) */
	if (s->flags & US_TH_RST) {
		if (s->seq == t->rcv_nxt)
			on_rst(c);
		else {
			t->dropped++;
			challenge_ack(c);
		}
		return;
	}
	/* fourth check: SYN in a synchronized state (RFC 5961 §4.2) */
	if (s->flags & US_TH_SYN) {
		t->dropped++;
		challenge_ack(c);
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
				send_rst_for(c, s);
			return;
		}
		t->snd_una = s->ack;
		/* window of the completing ACK is scaled (it is not a SYN) */
		t->snd_wnd = (uint32_t)s->win << t->snd_wscale;
		t->snd_wl1 = s->seq;
		t->snd_wl2 = s->ack;
		if (t->snd_wnd > t->max_window)
			t->max_window = t->snd_wnd;
		become_established(c);
	}
	if (!on_ack(c, s))
		return;
	if (t->state == US_CLOSED)
		return;
	on_data_fin(c, s);
}

static void on_segment(struct ctx *c, const struct us_segment *s)
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

/* ---- timers ---- */

static void on_timer(struct ctx *c)
{
	struct us_tcb *t = c->t;
	bool opening = t->state == US_LISTEN || t->state == US_SYN_SENT || t->state == US_SYN_RECEIVED;

	if (opening && t->cfg.deadline_ns && c->now >= t->cfg.deadline_ns) {
		do_close(t, c->out, t->soft_error ? t->soft_error : -ETIMEDOUT);
		return;
	}
	if (t->state == US_TIME_WAIT) {
		if (t->tw_at && c->now >= t->tw_at)
			do_close(t, c->out, 0);
		return;
	}
	if (!t->rtx_at || c->now < t->rtx_at)
		return;                      /* spurious or early */
	if (t->state == US_SYN_SENT || t->state == US_SYN_RECEIVED) {
		bool unlimited = t->cfg.persist && t->cfg.deadline_ns;
		if (!unlimited && t->rtx_count >= t->cfg.max_retries) {
			do_close(t, c->out, t->soft_error ? t->soft_error : -ETIMEDOUT);
			return;
		}
		t->rtx_count++;
		t->rtx_total++;
		send_syn(c, t->state == US_SYN_RECEIVED);
		t->rto_cur = backoff(t, t->rto_cur, true);
		t->rtx_at = c->now + t->rto_cur;
		return;
	}
	if (!us_synchronized(t))
		return;
	if (t->rtx_count >= t->cfg.max_retries) {
		do_close(t, c->out, t->soft_error ? t->soft_error : -ETIMEDOUT);
		return;
	}
	t->rtx_count++;
	t->rto_cur = backoff(t, t->rto_cur, false);
	if (t->snd_una == t->snd_max && t->snd_wnd == 0 &&
	    seq_lt(t->snd_nxt, buf_seq(t) + (uint32_t)t->snd_len)) {
		/* zero-window probe as Linux sends it: an old sequence number makes the peer answer
		 * with an ACK carrying its current window; an answer resets rtx_count (on_ack) */
		emit(c, t->snd_una - 1, t->rcv_nxt, US_TH_ACK, NULL, 0);
		t->rtx_at = c->now + t->rto_cur;
		return;
	}
	t->rtx_at = 0;
	t->snd_nxt = t->snd_una;             /* go back: resend the head only, the rest follows ACKs */
	try_send(c, 1);
	if (!t->rtx_at && (t->snd_una != t->snd_max))
		t->rtx_at = c->now + t->rto_cur;
}

/* ---- application events ---- */

static int on_open(struct ctx *c, const struct us_event *ev)
{
	struct us_tcb *t = c->t;
	const struct us_config *cfg = ev->cfg;
	if (!cfg || t->state != US_CLOSED)
		return -EINVAL;
	if (cfg->mss && cfg->mss < 64)
		return -EINVAL;
	us_tcb_init(t);
	t->cfg = *cfg;
	if (!t->cfg.mss) t->cfg.mss = DEF_MSS;
	if (t->cfg.wscale > 14) t->cfg.wscale = 14;
	if (!t->cfg.rcv_wnd || t->cfg.rcv_wnd > US_RCVBUF) t->cfg.rcv_wnd = US_RCVBUF;
	if (!t->cfg.syn_rto_ns) t->cfg.syn_rto_ns = DEF_RTO;
	if (!t->cfg.rto_ns) t->cfg.rto_ns = DEF_RTO;
	if (!t->cfg.rto_max_ns) t->cfg.rto_max_ns = DEF_RTO_MAX;
	if (t->cfg.rto_ns > t->cfg.rto_max_ns) t->cfg.rto_ns = t->cfg.rto_max_ns;
	if (!t->cfg.max_retries) t->cfg.max_retries = DEF_RETRIES;
	if (!t->cfg.time_wait_ns) t->cfg.time_wait_ns = DEF_TIME_WAIT;
	t->iss = t->cfg.iss;
	t->ts_offset = t->cfg.ts_offset;
	t->snd_una = t->iss;
	t->snd_nxt = t->snd_max = t->iss;
	t->peer_mss = DEF_PEER_MSS;
	t->eff_mss = DEF_PEER_MSS;
	t->rto_cur = t->cfg.rto_ns;
	if (ev->type == US_EV_OPEN_PASSIVE) {
		t->state = US_LISTEN;
		return 0;
	}
	t->state = US_SYN_SENT;
	t->snd_nxt = t->snd_max = t->iss + 1;
	send_syn(c, false);
	arm_syn_timer(c);
	return 0;
}

static int on_send(struct ctx *c, const struct us_event *ev)
{
	struct us_tcb *t = c->t;
	if (ev->len && !ev->data)
		return -EINVAL;
	switch (t->state) {
	case US_CLOSED: case US_LISTEN:
		return -ENOTCONN;
	case US_SYN_SENT: case US_SYN_RECEIVED: case US_ESTABLISHED: case US_CLOSE_WAIT:
		break;
	default:
		return -EPIPE;
	}
	if (t->close_pending)
		return -EPIPE;
	size_t n = US_SNDBUF - t->snd_len;
	if (n > ev->len)
		n = ev->len;
	if (n)
		memcpy(t->sndbuf + t->snd_len, ev->data, n);
	t->snd_len += n;
	c->out->accepted = n;
	try_send(c, US_OUT_MAX);
	return 0;
}

static int on_recv(struct ctx *c, const struct us_event *ev)
{
	struct us_tcb *t = c->t;
	if (ev->cap && !ev->buf)
		return -EINVAL;
	if (t->state == US_CLOSED && !t->rcv_len)
		return -ENOTCONN;
	size_t n = t->rcv_len < ev->cap ? t->rcv_len : ev->cap;
	if (n) {
		uint32_t old_edge = t->rcv_wup + t->rcv_wnd;
		memcpy(ev->buf, t->rcvbuf, n);
		memmove(t->rcvbuf, t->rcvbuf + n, t->rcv_len - n);
		t->rcv_len -= n;
		c->out->nread = n;
		/* window update when the right edge would move by 2 segments or half the window */
		bool open = t->state == US_ESTABLISHED || t->state == US_FIN_WAIT_1 ||
			    t->state == US_FIN_WAIT_2;
		uint32_t grow = t->rcv_nxt + rcv_space(t) - old_edge;
		uint32_t half = t->cfg.rcv_wnd / 2 ? t->cfg.rcv_wnd / 2 : 1;
		uint32_t thresh = 2u * t->eff_mss < half ? 2u * t->eff_mss : half;
		if (open && !t->fin_rcvd && (int32_t)grow >= (int32_t)thresh)
			send_ack(c);
	}
	return 0;
}

static int on_close(struct ctx *c)
{
	struct us_tcb *t = c->t;
	switch (t->state) {
	case US_CLOSED:
		return -ENOTCONN;
	case US_LISTEN: case US_SYN_SENT:
		do_close(t, c->out, 0);
		return 0;
	case US_SYN_RECEIVED: case US_ESTABLISHED: case US_CLOSE_WAIT:
		t->close_pending = true;
		try_send(c, US_OUT_MAX);
		return 0;
	default:
		return 0;                    /* already closing */
	}
}

static int on_abort(struct ctx *c)
{
	struct us_tcb *t = c->t;
	if (t->state == US_CLOSED)
		return -ENOTCONN;
	if (t->state == US_SYN_RECEIVED || (us_synchronized(t) && t->state != US_TIME_WAIT))
		emit(c, t->snd_nxt, 0, US_TH_RST, NULL, 0);
	do_close(t, c->out, -ECONNABORTED);
	return 0;
}

static uint64_t next_timer(const struct us_tcb *t)
{
	uint64_t n = 0;
	if (t->state == US_CLOSED)
		return 0;
	if (t->rtx_at)
		n = t->rtx_at;
	if (t->tw_at && t->state == US_TIME_WAIT && (!n || t->tw_at < n))
		n = t->tw_at;
	bool opening = t->state == US_LISTEN || t->state == US_SYN_SENT || t->state == US_SYN_RECEIVED;
	if (opening && t->cfg.deadline_ns && (!n || t->cfg.deadline_ns < n))
		n = t->cfg.deadline_ns;
	return n;
}

int us_step(struct us_tcb *t, const struct us_event *ev, uint64_t now_ns, struct us_out *out)
{
	struct ctx c = { .t = t, .out = out, .now = now_ns };
	int rc = 0;

	if (!t || !ev || !out)
		return -EINVAL;
	out->n = 0;                          /* seg[] is filled only up to n */
	out->timer_ns = 0;
	out->notify = 0;
	out->error = 0;
	out->accepted = 0;
	out->nread = 0;
	t->last_now = now_ns;

	switch (ev->type) {
	case US_EV_OPEN_ACTIVE:
	case US_EV_OPEN_PASSIVE:
		rc = on_open(&c, ev);
		break;
	case US_EV_SEGMENT:
		if (ev->seg.len && !ev->seg.payload) {
			rc = -EINVAL;
			break;
		}
		on_segment(&c, &ev->seg);
		break;
	case US_EV_TIMER:
		on_timer(&c);
		break;
	case US_EV_ICMP_ERROR:
		on_icmp(&c, ev);
		break;
	case US_EV_SEND:
		rc = on_send(&c, ev);
		break;
	case US_EV_RECV:
		rc = on_recv(&c, ev);
		break;
	case US_EV_CLOSE:
		rc = on_close(&c);
		break;
	case US_EV_ABORT:
		rc = on_abort(&c);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (t->state != US_CLOSED && rc == 0) {
		if (ev->type == US_EV_SEGMENT)
			try_send(&c, US_OUT_MAX);
		if (c.need_ack && !c.acked_out)
			send_ack(&c);
	}
	out->timer_ns = next_timer(t);
	return rc;
}

void us_handshake_only(const struct us_tcb *t, struct us_segment *seg)
{
	if (us_synchronized(t))
		return;
	seg->payload = NULL;
	seg->len = 0;
	seg->flags &= (uint8_t)~(US_TH_FIN | US_TH_PSH);
}
