/* SPDX-License-Identifier: MIT */
/* Userspace TCP state machine, output (see tcb-internal.h): the segments a step emits, with the
 * window we advertise and the options a SYN, SYN-ACK or later segment carries, and tcb_try_send(),
 * which puts queued data and a pending FIN on the wire as far as the peer's window allows. */
#include "userstack/tcb-internal.h"

#include <string.h>

#include "userstack/seq.h"

static uint32_t tsval_now(const struct us_tcb *t, uint64_t now)
{
	return (uint32_t)(now / 1000000u) + t->ts_offset;
}

/* sequence number of sndbuf[0] */
uint32_t tcb_buf_seq(const struct us_tcb *t)
{
	return us_synchronized(t) ? t->snd_una : t->iss + 1;
}

uint32_t tcb_rcv_space(const struct us_tcb *t)
{
	/* cfg.rcv_wnd <= US_RCVBUF: the window is what is left of it after the unread bytes */
	return t->rcv_len < t->cfg.rcv_wnd ? t->cfg.rcv_wnd - (uint32_t)t->rcv_len : 0;
}

/* Window field for an outgoing segment; records what was advertised (rcv_wnd, rcv_wup). */
static uint16_t adv_window(struct us_tcb *t, bool syn)
{
	uint32_t w = tcb_rcv_space(t);
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

struct us_out_seg *tcb_emit(struct ctx *c, uint32_t seq, uint32_t ack, uint8_t flags,
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

void tcb_send_ack(struct ctx *c)
{
	tcb_emit(c, c->t->snd_nxt, c->t->rcv_nxt, US_TH_ACK, NULL, 0);
}

void tcb_challenge_ack(struct ctx *c)
{
	c->t->challenge_acks++;
	tcb_send_ack(c);
}

/* RST in reply to an unacceptable ACK (§3.10.7.2/3): <SEQ=SEG.ACK><CTL=RST> */
void tcb_send_rst_for(struct ctx *c, const struct us_segment *s)
{
	tcb_emit(c, s->ack, 0, US_TH_RST, NULL, 0);
}

void tcb_send_syn(struct ctx *c, bool with_ack)
{
	struct us_tcb *t = c->t;
	tcb_emit(c, t->iss, t->rcv_nxt, (uint8_t)(US_TH_SYN | (with_ack ? US_TH_ACK : 0)), NULL, 0);
	t->syn_tx++;
}

/* Send what the window allows: new data, then a FIN if a close is pending. limit caps the number of
 * segments (1 after an RTO). Arms the retransmission timer when something is outstanding. */
void tcb_try_send(struct ctx *c, unsigned limit)
{
	struct us_tcb *t = c->t;
	if (!us_synchronized(t))
		return;
	bool can_data = t->state == US_ESTABLISHED || t->state == US_CLOSE_WAIT ||
			t->state == US_FIN_WAIT_1 || t->state == US_CLOSING || t->state == US_LAST_ACK;
	uint32_t end = tcb_buf_seq(t) + (uint32_t)t->snd_len;       /* one past the last queued byte */
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
		const uint8_t *p = t->sndbuf + (t->snd_nxt - tcb_buf_seq(t));
		uint8_t fl = US_TH_ACK | (t->snd_nxt + n == end ? US_TH_PSH : 0);
		if (seq_lt(t->snd_nxt, t->snd_max))
			t->rtx_total++;
		tcb_emit(c, t->snd_nxt, t->rcv_nxt, fl, p, n);
		t->snd_nxt += n;
		t->snd_max = seq_max(t->snd_max, t->snd_nxt);
		sent++;
	}
	if (t->fin_sent && t->snd_nxt == t->fin_seq && sent < limit && c->out->n < US_OUT_MAX) {
		/* retransmission of our FIN */
		t->rtx_total++;
		tcb_emit(c, t->fin_seq, t->rcv_nxt, US_TH_FIN | US_TH_ACK, NULL, 0);
		t->snd_nxt = t->fin_seq + 1;
		sent++;
	} else if (t->close_pending && !t->fin_sent && t->snd_nxt == end && sent < limit &&
		   (t->state == US_ESTABLISHED || t->state == US_CLOSE_WAIT) && c->out->n < US_OUT_MAX) {
		tcb_emit(c, t->snd_nxt, t->rcv_nxt, US_TH_FIN | US_TH_ACK, NULL, 0);
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
