/* SPDX-License-Identifier: MIT */
/* One TCP flow driven by raw packets (see rawflow.h). */
#include "rawpunch/punch/rawflow.h"

#include <arpa/inet.h>
#include <string.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/net/craft.h"
#include "userstack/seq.h"

#define trace(f, ...) rp_trace((f)->trace, (f)->trace_arg, __VA_ARGS__)

void rp_rawflow_reset(struct rp_rawflow *f)
{
	f->defined = false;
	f->rport = 0;
	f->timer_ns = 0;
	memset(&f->cfg, 0, sizeof(f->cfg));
	us_tcb_init(f->tcb);
}

void rp_rawflow_config(struct us_config *c, uint32_t iss, uint16_t mss, uint32_t ts_offset, uint64_t syn_rto_ns,
		       bool persist, uint64_t deadline_ns)
{
	memset(c, 0, sizeof(*c));
	c->iss = iss;
	c->mss = mss ? mss : 1460;
	c->wscale_ok = true;
	c->wscale = 7;
	c->sack_ok = true;
	c->ts_ok = true;
	c->ts_offset = ts_offset;
	c->syn_rto_ns = syn_rto_ns;
	c->syn_no_backoff = true;
	c->persist = persist;
	c->deadline_ns = deadline_ns;
	c->time_wait_ns = 500000000ull;
}

void rp_rawflow_syn(struct us_out_seg *o, const struct us_config *c, uint32_t iss, uint64_t now_ns)
{
	memset(o, 0, sizeof(*o));
	o->seq = iss;
	o->flags = US_TH_SYN;
	o->win = US_RCVBUF > 65535u ? 65535u : US_RCVBUF;
	o->opts.has_mss = true;
	o->opts.mss = c->mss;
	o->opts.sack_perm = c->sack_ok;
	o->opts.has_wscale = c->wscale_ok;
	o->opts.wscale = c->wscale;
	o->opts.has_ts = c->ts_ok;
	o->opts.tsval = (uint32_t)(now_ns / 1000000u) + c->ts_offset;
}

/* --- sending ------------------------------------------------------------------------------ */

static bool bare_syn(uint8_t flags)
{
	return (flags & (US_TH_SYN | US_TH_ACK)) == US_TH_SYN;
}

int rp_rawflow_send(struct rp_rawflow *f, const struct us_out_seg *o, uint16_t lport, uint16_t rport)
{
	struct rp_seg seg;
	char fl[9];
	rp_seg_from_us(&seg, f->laddr, lport, f->raddr, rport, o);
	seg.ttl = bare_syn(o->flags) ? f->syn_ttl : f->ttl;
	int r = rp_craft_send(f->craft, &seg);
	if (r > 0)
		r = 0;
	if (f->sent)
		f->sent(f->arg, o, rport, r);
	rp_tcp_flags_str(o->flags, fl);
	if (r < 0)
		trace(f, "tx %-3s :%u seq=%u ack=%u len=%zu FAILED: %s", fl, rport, o->seq, o->ack, o->len, strerror(-r));
	else
		trace(f, "tx %-3s :%u seq=%u ack=%u win=%u len=%zu ttl=%u", fl, rport, o->seq, o->ack, o->win, o->len,
		      seg.ttl ? seg.ttl : 64);
	return r;
}

/* Send what a step emitted, keep its timer, tell the caller; the step's result. */
static int emit(struct rp_rawflow *f, struct us_out *out)
{
	for (unsigned i = 0; i < out->n; i++)
		(void)rp_rawflow_send(f, &out->seg[i], f->lport, f->rport);   /* a failed send is a lost packet */
	f->timer_ns = out->timer_ns;
	if (f->notify)
		f->notify(f->arg, out);
	if ((out->notify & US_N_CLOSED) && out->error)
		return out->error;
	return (int)out->notify;
}

int rp_rawflow_step(struct rp_rawflow *f, const struct us_event *ev, struct us_out *out)
{
	int r = us_step(f->tcb, ev, rp_mono_ns(), out);
	return r ? r : emit(f, out);
}

int rp_rawflow_open(struct rp_rawflow *f, uint16_t lport, uint16_t rport, const struct us_config *cfg,
		    bool syn_sent, struct us_out *out)
{
	struct us_event ev = { .type = US_EV_OPEN_ACTIVE };
	us_tcb_init(f->tcb);
	f->defined = true;
	f->lport = lport;
	f->rport = rport;
	f->cfg = *cfg;
	ev.cfg = &f->cfg;
	int r = us_step(f->tcb, &ev, rp_mono_ns(), out);
	if (r)
		return r;
	if (syn_sent) {   /* the SYN of this tuple already left: the tcb's copy stays home */
		unsigned k = 0;
		for (unsigned i = 0; i < out->n; i++)
			if (!bare_syn(out->seg[i].flags))
				out->seg[k++] = out->seg[i];
		out->n = k;
	}
	return emit(f, out);
}

int rp_rawflow_timer(struct rp_rawflow *f, uint64_t now_ns, struct us_out *out)
{
	struct us_event ev = { .type = US_EV_TIMER };
	if (!f->timer_ns || now_ns < f->timer_ns) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	return rp_rawflow_step(f, &ev, out);
}

/* --- receiving ---------------------------------------------------------------------------- */

void rp_rawflow_forged(struct rp_rawflow *f, const struct rp_event *ev, const char *why)
{
	char fl[9];
	rp_tcp_flags_str(ev->flags, fl);
	if (f->forged)
		(*f->forged)++;
	trace(f, "ignored %s :%u -> %u seq=%u ack=%u (%s)", fl, ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack, why);
}

static bool peer_syn_ok(const struct rp_rawflow *f, uint32_t seq)
{
	return f->accept_syn && (!f->peer_isn_known || seq == f->peer_isn);
}

static const char *bad_syn_why(const struct rp_rawflow *f)
{
	return f->accept_syn ? "SYN without the peer's ISN" : "bare SYN and simultaneous open not accepted";
}

enum rp_rawflow_kind rp_rawflow_classify(const struct rp_rawflow *f, const struct rp_event *ev, const char **why)
{
	const char *dummy;
	uint8_t fl = ev->flags;
	bool syn = fl & RP_TH_SYN, ack = fl & RP_TH_ACK;
	bool acks_isn = ack && ev->ack == f->iss(f->arg, ev->tuple.dport, ev->tuple.sport) + 1;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (fl & RP_TH_RST) {
		if (acks_isn)
			return RP_RF_REFUSED;
		*why = "RST that does not acknowledge our ISN";
		return RP_RF_FORGED;
	}
	if (syn && !ack) {
		if (peer_syn_ok(f, ev->seq))
			return RP_RF_SYN;
		*why = bad_syn_why(f);
		return RP_RF_FORGED;
	}
	if (syn) {
		if (acks_isn)
			return RP_RF_SYNACK;
		*why = "SYN-ACK that does not acknowledge our ISN";
		return RP_RF_FORGED;
	}
	if (acks_isn)
		return RP_RF_ACK;
	*why = ack ? "ack is not our ISN + 1" : "neither SYN nor ACK: nothing to check";
	return RP_RF_OTHER;
}

static bool in_rcv_window(const struct us_tcb *t, uint32_t seq)
{
	return seq_in(seq, t->rcv_nxt, t->rcv_nxt + (t->rcv_wnd ? t->rcv_wnd : 1));
}

bool rp_rawflow_acceptable(struct rp_rawflow *f, const struct rp_event *ev)
{
	const struct us_tcb *t = f->tcb;
	bool ack = ev->flags & RP_TH_ACK, rst = ev->flags & RP_TH_RST, syn = ev->flags & RP_TH_SYN;
	const char *why = NULL;
	switch (t->state) {
	case US_SYN_SENT:
		if (ack && ev->ack != t->iss + 1)
			why = "ack is not our ISN + 1";
		else if (rst && !ack)
			why = "RST without ACK in SYN-SENT";
		else if (!ack && !syn)
			why = "neither SYN nor ACK in SYN-SENT";
		else if (!ack && !peer_syn_ok(f, ev->seq))
			why = bad_syn_why(f);
		break;
	case US_SYN_RECEIVED:
		if (ack && !seq_in(ev->ack, t->iss + 1, t->snd_max + 1))
			why = "ack outside what we sent";
		else if (syn && !ack && f->peer_isn_known && ev->seq != f->peer_isn)
			why = "SYN without the peer's ISN";
		else if (rst && !ack && !in_rcv_window(t, ev->seq))
			why = "RST outside the window";
		break;
	default:
		if (rst && !in_rcv_window(t, ev->seq))
			why = "RST outside the window";
		else if (ack && seq_gt(ev->ack, t->snd_max))
			why = "acks data never sent";
		break;
	}
	if (why) {
		rp_rawflow_forged(f, ev, why);
		return false;
	}
	return true;
}

int rp_rawflow_feed(struct rp_rawflow *f, const struct rp_event *ev, struct us_out *out)
{
	struct us_event uev = { .type = US_EV_SEGMENT };
	uev.seg.seq = ev->seq;
	uev.seg.ack = ev->ack;
	uev.seg.flags = ev->flags;
	uev.seg.win = ev->win;
	uev.seg.opts = ev->opts;
	uev.seg.payload = ev->payload;
	uev.seg.len = ev->paylen;
	us_handshake_only(f->tcb, &uev.seg);
	return rp_rawflow_step(f, &uev, out);
}

static bool quotes_flow(const struct rp_rawflow *f, const struct rp_event *ev)
{
	return f->defined && ev->tuple.sport == f->lport && ev->tuple.dport == f->rport;
}

bool rp_rawflow_icmp_ok(struct rp_rawflow *f, const struct rp_event *ev)
{
	const struct us_tcb *t = f->tcb;
	char a[INET_ADDRSTRLEN];
	bool ok;
	if (quotes_flow(f, ev))
		ok = t->state == US_SYN_SENT ? ev->seq == t->iss : seq_in(ev->seq, t->iss, t->snd_max + 1);
	else
		ok = ev->seq == f->iss(f->arg, ev->tuple.sport, ev->tuple.dport);
	if (ok)
		return true;
	if (f->forged)
		(*f->forged)++;
	trace(f, "ignored ICMP %u/%u from %s quoting %u -> :%u seq=%u (not our sequence number)", ev->icmp_type,
	      ev->icmp_code, rp_ip_str(ev->ip_src, a), ev->tuple.sport, ev->tuple.dport, ev->seq);
	return false;
}

int rp_rawflow_icmp(struct rp_rawflow *f, const struct rp_event *ev, struct us_out *out)
{
	struct us_event uev = { .type = US_EV_ICMP_ERROR };
	if (!quotes_flow(f, ev)) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	uev.icmp.type = ev->icmp_type;
	uev.icmp.code = ev->icmp_code;
	uev.icmp.seq = ev->seq;
	return rp_rawflow_step(f, &uev, out);
}
