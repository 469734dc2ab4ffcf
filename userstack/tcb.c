/* SPDX-License-Identifier: MIT */
/* Userspace TCP state machine: see tcb.h. This file has the entry point us_step(), which dispatches
 * each event, the state transitions the other files share (close, TIME-WAIT, ESTABLISHED), the
 * timers and the application events; segment arrival is in tcb-input.c, segment building in
 * tcb-output.c. Section numbers refer to RFC 9293 unless noted. */
#include "userstack/tcb-internal.h"

#include <errno.h>
#include <string.h>

#include "userstack/seq.h"

#define NS_PER_S 1000000000ull
#define DEF_MSS 1460
#define DEF_RTO (1 * NS_PER_S)
#define DEF_RTO_MAX (60 * NS_PER_S)
#define DEF_RETRIES 6
#define DEF_TIME_WAIT (1 * NS_PER_S)

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

void tcb_do_close(struct us_tcb *t, struct us_out *out, int err)
{
	t->state = US_CLOSED;
	t->error = err;
	t->rtx_at = 0;
	t->tw_at = 0;
	out->notify |= US_N_CLOSED;
	out->error = err;
}

void tcb_enter_time_wait(struct ctx *c)
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

void tcb_arm_syn_timer(struct ctx *c)
{
	c->t->rtx_count = 0;
	c->t->rto_cur = c->t->cfg.syn_rto_ns;
	c->t->rtx_at = c->now + c->t->rto_cur;
}

void tcb_become_established(struct ctx *c)
{
	c->t->state = US_ESTABLISHED;
	c->t->rtx_at = 0;
	c->t->rtx_count = 0;
	c->t->rto_cur = c->t->cfg.rto_ns;
	c->out->notify |= US_N_ESTABLISHED;
}

/* ---- timers ---- */

static void on_timer(struct ctx *c)
{
	struct us_tcb *t = c->t;
	bool opening = t->state == US_LISTEN || t->state == US_SYN_SENT || t->state == US_SYN_RECEIVED;

	if (opening && t->cfg.deadline_ns && c->now >= t->cfg.deadline_ns) {
		tcb_do_close(t, c->out, t->soft_error ? t->soft_error : -ETIMEDOUT);
		return;
	}
	if (t->state == US_TIME_WAIT) {
		if (t->tw_at && c->now >= t->tw_at)
			tcb_do_close(t, c->out, 0);
		return;
	}
	if (!t->rtx_at || c->now < t->rtx_at)
		return;                      /* spurious or early */
	if (t->state == US_SYN_SENT || t->state == US_SYN_RECEIVED) {
		bool unlimited = t->cfg.persist && t->cfg.deadline_ns;
		if (!unlimited && t->rtx_count >= t->cfg.max_retries) {
			tcb_do_close(t, c->out, t->soft_error ? t->soft_error : -ETIMEDOUT);
			return;
		}
		t->rtx_count++;
		t->rtx_total++;
		/* a tentative SYN-RECEIVED repeats our bare SYN: a server answers it with the SYN-ACK
		 * that proves itself, a simultaneous-open peer with its SYN-ACK again */
		tcb_send_syn(c, t->state == US_SYN_RECEIVED && !t->irs_tentative);
		t->rto_cur = backoff(t, t->rto_cur, true);
		t->rtx_at = c->now + t->rto_cur;
		return;
	}
	if (!us_synchronized(t))
		return;
	if (t->rtx_count >= t->cfg.max_retries) {
		tcb_do_close(t, c->out, t->soft_error ? t->soft_error : -ETIMEDOUT);
		return;
	}
	t->rtx_count++;
	t->rto_cur = backoff(t, t->rto_cur, false);
	if (t->snd_una == t->snd_max && t->snd_wnd == 0 &&
	    seq_lt(t->snd_nxt, tcb_buf_seq(t) + (uint32_t)t->snd_len)) {
		/* zero-window probe as Linux sends it: an old sequence number makes the peer answer
		 * with an ACK carrying its current window; an answer resets rtx_count (on_ack) */
		tcb_emit(c, t->snd_una - 1, t->rcv_nxt, US_TH_ACK, NULL, 0);
		t->rtx_at = c->now + t->rto_cur;
		return;
	}
	t->rtx_at = 0;
	t->snd_nxt = t->snd_una;             /* go back: resend the head only, the rest follows ACKs */
	tcb_try_send(c, 1);
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
	tcb_send_syn(c, false);
	tcb_arm_syn_timer(c);
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
	tcb_try_send(c, US_OUT_MAX);
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
		uint32_t grow = t->rcv_nxt + tcb_rcv_space(t) - old_edge;
		uint32_t half = t->cfg.rcv_wnd / 2 ? t->cfg.rcv_wnd / 2 : 1;
		uint32_t thresh = 2u * t->eff_mss < half ? 2u * t->eff_mss : half;
		if (open && !t->fin_rcvd && (int32_t)grow >= (int32_t)thresh)
			tcb_send_ack(c);
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
		tcb_do_close(t, c->out, 0);
		return 0;
	case US_SYN_RECEIVED: case US_ESTABLISHED: case US_CLOSE_WAIT:
		t->close_pending = true;
		tcb_try_send(c, US_OUT_MAX);
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
		tcb_emit(c, t->snd_nxt, 0, US_TH_RST, NULL, 0);
	tcb_do_close(t, c->out, -ECONNABORTED);
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
		tcb_on_segment(&c, &ev->seg);
		break;
	case US_EV_TIMER:
		on_timer(&c);
		break;
	case US_EV_ICMP_ERROR:
		tcb_on_icmp(&c, ev);
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
			tcb_try_send(&c, US_OUT_MAX);
		if (c.need_ack && !c.acked_out)
			tcb_send_ack(&c);
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
