/* SPDX-License-Identifier: MIT */
/* The raw handshake driver (see session.h). */
#include "rawpunch/punch/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/guard.h"
#include "rawpunch/net/netif.h"
#include "userstack/seq.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/base/io.h"

#define SNAPLEN 65600            /* whole segments: the data path needs every byte */
#define MULTI_MAX_FLOWS 64       /* port lists longer than this are filtered as one range */

struct rp_session {
	struct rp_session_opts o;
	uint8_t key[US_COOKIE_KEYLEN];
	uint32_t laddr, raddr;
	uint16_t lport, rport;       /* rport 0 until the flow is defined */
	uint16_t *ports;             /* port list (sorted not required) */
	size_t nports;
	uint16_t lo, hi;             /* range, or 0,0 = any (when nports == 0 and no single port) */
	bool defined;                /* the remote port is known and the tcb is open */
	bool released;
	struct rp_route route;
	struct rp_craft *craft;
	struct rp_guard *guard;
	struct rp_cap *cap;
	struct us_tcb *tcb;
	struct us_config cfg;
	uint64_t timer_ns;           /* the tcb's next timer, 0 = none */
	uint64_t next_multi_ns;      /* next round of SYNs to the port list */
	uint64_t t_first_syn;
	uint32_t ts_offset;          /* one timestamp clock for every SYN of the session */
	struct rp_session_stats st;
	uint8_t inbuf[16384], outbuf[16384];   /* rp_session_exchange() */
};

/* trace(x, fmt, ...): one line to the caller's trace callback, if any */
#define trace(x, ...) rp_trace((x)->o.trace, (x)->o.trace_arg, __VA_ARGS__)

static bool stopped(const struct rp_session *s)
{
	return s->o.stop && *s->o.stop;
}

static bool port_wanted(const struct rp_session *s, uint16_t p)
{
	if (s->defined)
		return p == s->rport;
	if (s->nports) {
		for (size_t i = 0; i < s->nports; i++)
			if (s->ports[i] == p)
				return true;
		return false;
	}
	return !s->lo || (p >= s->lo && p <= s->hi);
}

/* --- open --------------------------------------------------------------------------------- */

static int setup_ports(struct rp_session *s, const struct rp_session_opts *o)
{
	if (o->n_rports) {
		if (!o->rports)
			return -EINVAL;
		s->ports = calloc(o->n_rports, sizeof(*s->ports));
		if (!s->ports)
			return -ENOMEM;
		memcpy(s->ports, o->rports, o->n_rports * sizeof(*s->ports));
		s->nports = o->n_rports;
		for (size_t i = 0; i < s->nports; i++)
			if (!s->ports[i])
				return -EINVAL;
		if (s->nports == 1) {
			s->rport = s->ports[0];
			s->nports = 0;
		}
	} else if (o->rport) {
		s->rport = o->rport;
	} else {
		if ((o->rport_lo == 0) != (o->rport_hi == 0) || o->rport_lo > o->rport_hi)
			return -EINVAL;
		if (o->rport_lo && o->rport_lo == o->rport_hi)
			s->rport = o->rport_lo;
		s->lo = o->rport_lo;
		s->hi = o->rport_hi;
	}
	return 0;
}

/* The remote side as a guard / capture flow set. */
static size_t flows(const struct rp_session *s, struct rp_flow *f, size_t cap)
{
	struct rp_flow base = { .laddr = s->laddr, .lport = s->lport, .raddr = s->raddr };
	if (s->rport) {
		f[0] = base;
		f[0].rport_lo = f[0].rport_hi = s->rport;
		return 1;
	}
	if (s->nports && s->nports <= cap) {
		for (size_t i = 0; i < s->nports; i++) {
			f[i] = base;
			f[i].rport_lo = f[i].rport_hi = s->ports[i];
		}
		return s->nports;
	}
	f[0] = base;
	if (s->nports) {
		uint16_t lo = 65535, hi = 1;
		for (size_t i = 0; i < s->nports; i++) {
			lo = s->ports[i] < lo ? s->ports[i] : lo;
			hi = s->ports[i] > hi ? s->ports[i] : hi;
		}
		f[0].rport_lo = lo;
		f[0].rport_hi = hi;
	} else {
		f[0].rport_lo = s->lo;
		f[0].rport_hi = s->hi;
	}
	return 1;
}

static int set_capture_filter(struct rp_session *s)
{
	struct rp_flow f[MULTI_MAX_FLOWS];
	size_t n = flows(s, f, MULTI_MAX_FLOWS);
	size_t cap = rp_filter_maxlen(n) + 160;
	char *expr = malloc(cap), la[INET_ADDRSTRLEN], ra[INET_ADDRSTRLEN];
	int r, len;
	if (!expr)
		return -ENOMEM;
	len = rp_filter_build(f, n, expr, cap);
	if (len < 0) {
		free(expr);
		return len;
	}
	if (s->o.pcap_path)   /* the dump shows our side too */
		snprintf(expr + len, cap - (size_t)len, " or (tcp and src host %s and src port %u and dst host %s)",
			 rp_ip_str(s->laddr, la), s->lport, rp_ip_str(s->raddr, ra));
	r = rp_cap_set_filter(s->cap, expr);
	free(expr);
	return r;
}

#define FAIL(what) do { snprintf(ebuf, elen, "%s: %s", what, err[0] ? err : strerror(-r)); goto fail; } while (0)

int rp_session_open(const struct rp_session_opts *o, struct rp_session **out)
{
	return rp_session_open_err(o, out, NULL, 0);
}

int rp_session_open_err(const struct rp_session_opts *o, struct rp_session **out, char *ebuf, size_t elen)
{
	struct rp_session *s;
	struct rp_flow f[MULTI_MAX_FLOWS];
	char err[256] = "", dummy[8];
	int r;

	if (!ebuf || !elen) {
		ebuf = dummy;
		elen = sizeof(dummy);
	}
	ebuf[0] = 0;

	if (!o || !out || !o->raddr)
		return -EINVAL;
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	s->raddr = o->raddr;
	r = setup_ports(s, o);
	if (r)
		FAIL("remote ports");
	if (o->key)
		memcpy(s->key, o->key, sizeof(s->key));
	else if (getrandom(s->key, sizeof(s->key), 0) != (ssize_t)sizeof(s->key)) {
		r = -EIO;
		goto fail;
	}
	if (getrandom(&s->ts_offset, sizeof(s->ts_offset), 0) != (ssize_t)sizeof(s->ts_offset))
		s->ts_offset = (uint32_t)rp_mono_ns();
	r = rp_route_get(s->raddr, &s->route);
	if (r)
		FAIL("route lookup");
	s->laddr = o->laddr ? o->laddr : s->route.src;
	s->lport = o->lport;
	if (!s->lport) {
		r = rp_free_port(s->laddr, &s->lport);
		if (r)
			FAIL("picking a free local port");
	}
	s->tcb = malloc(sizeof(*s->tcb));
	if (!s->tcb) {
		r = -ENOMEM;
		goto fail;
	}
	us_tcb_init(s->tcb);
	r = rp_craft_open(&s->craft, 0, err, sizeof(err));
	if (r)
		FAIL("raw socket");
	if (!o->no_guard) {
		size_t n = flows(s, f, MULTI_MAX_FLOWS);
		r = rp_guard_open(&s->guard, err, sizeof(err));
		if (r)
			FAIL("nftables RST guard");
		for (size_t i = 0; i < n && !r; i++)
			r = rp_guard_add(s->guard, &f[i]);
		if (r) {
			snprintf(err, sizeof(err), "%s", rp_guard_errmsg(s->guard));
			FAIL("nftables RST guard: adding the flow");
		}
	}
	struct rp_cap_opts co = {
		.iface = o->iface ? o->iface : s->route.ifname,
		.snaplen = SNAPLEN,
		.dir = o->pcap_path ? RP_CAP_INOUT : RP_CAP_IN,
		.dump_path = o->pcap_path,
		.filter = "tcp or icmp", /* narrowed to the flows just below; on_tcp() checks tuples anyway */
	};
	r = rp_cap_open(&co, &s->cap, err, sizeof(err));
	if (r)
		FAIL("capture");
	r = set_capture_filter(s);
	if (r) {
		snprintf(err, sizeof(err), "%s", rp_cap_errmsg(s->cap));
		FAIL("capture filter");
	}
	s->st.guard_dropped = -1;
	*out = s;
	return 0;
fail:
	rp_session_close(s);
	return r;
}

/* --- sending ------------------------------------------------------------------------------ */

static void send_seg(struct rp_session *s, const struct us_out_seg *o, uint16_t rport)
{
	struct rp_seg seg;
	char fl[9];
	int r;
	rp_seg_from_us(&seg, s->laddr, s->lport, s->raddr, rport, o);
	bool syn = (o->flags & US_TH_SYN) != 0;
	seg.ttl = syn && !(o->flags & US_TH_ACK) ? s->o.syn_ttl : s->o.ttl;
	r = rp_craft_send(s->craft, &seg);
	if (syn) {
		s->st.syns_sent++;
		if (!s->t_first_syn)
			s->t_first_syn = rp_mono_ns();
	}
	rp_tcp_flags_str(o->flags, fl);
	if (r < 0)
		trace(s, "tx %-3s :%u seq=%u ack=%u len=%zu FAILED: %s", fl, rport, o->seq, o->ack, o->len,
		      strerror(-r));
	else
		trace(s, "tx %-3s :%u seq=%u ack=%u win=%u len=%zu ttl=%u", fl, rport, o->seq, o->ack, o->win,
		      o->len, seg.ttl ? seg.ttl : 64);
}

static struct us_config make_cfg(const struct rp_session *s, uint16_t rport, uint64_t deadline)
{
	struct us_config c = { 0 };
	c.iss = us_cookie(s->key, s->laddr, s->lport, s->raddr, rport);
	c.mss = s->o.mss ? s->o.mss : 1460;
	c.wscale_ok = true;
	c.wscale = 7;
	c.sack_ok = true;
	c.ts_ok = true;
	c.ts_offset = s->ts_offset;   /* the port-list SYNs used the same clock */
	c.syn_rto_ns = s->o.syn_interval_ns ? s->o.syn_interval_ns : 1000000000ull;
	c.syn_no_backoff = true;
	c.persist = s->o.persist;
	c.deadline_ns = deadline;
	c.time_wait_ns = 500000000ull;
	return c;
}

/* Apply a step's output: send, remember the timer. Returns out->error on CLOSED, else 0. */
static int apply(struct rp_session *s, const struct us_out *out, bool suppress_syn)
{
	for (unsigned i = 0; i < out->n; i++) {
		if (suppress_syn && (out->seg[i].flags & US_TH_SYN) && !(out->seg[i].flags & US_TH_ACK))
			continue;
		send_seg(s, &out->seg[i], s->rport);
	}
	s->timer_ns = out->timer_ns;
	if (out->notify & US_N_ESTABLISHED) {
		s->st.t_established_ns = s->t_first_syn ? rp_mono_ns() - s->t_first_syn : 0;
		trace(s, "ESTABLISHED with :%u in %.1f ms", s->rport, (double)s->st.t_established_ns / 1e6);
	}
	if (out->notify & US_N_SOFT_ERROR)
		trace(s, "soft error absorbed (%s), SYNs continue", strerror(-s->tcb->soft_error));
	if (out->notify & US_N_CLOSED) {
		trace(s, "CLOSED%s%s", out->error ? ": " : "", out->error ? strerror(-out->error) : "");
		return out->error;
	}
	return 0;
}

static int step(struct rp_session *s, const struct us_event *ev, struct us_out *out, bool suppress_syn)
{
	int r = us_step(s->tcb, ev, rp_mono_ns(), out);
	if (r)
		return r;
	return apply(s, out, suppress_syn);
}

static int open_flow(struct rp_session *s, uint16_t rport, uint64_t deadline, bool suppress_syn)
{
	struct us_out out;
	struct us_event ev = { .type = US_EV_OPEN_ACTIVE };
	int r;
	s->rport = rport;
	s->defined = true;
	s->cfg = make_cfg(s, rport, deadline);
	ev.cfg = &s->cfg;
	r = step(s, &ev, &out, suppress_syn);
	if (!r && suppress_syn)   /* the SYN that opened it was sent by the port-list round */
		s->tcb->syn_tx = 0;
	if (!r && (s->nports || !s->o.rport))
		(void)set_capture_filter(s);   /* narrow to the answering port */
	return r;
}

/* One SYN per listed port, each with its own cookie ISN (the flow is not defined yet). */
static void multi_round(struct rp_session *s, uint64_t deadline)
{
	struct us_config c = make_cfg(s, 1, deadline);
	/* the same SYN the tcb would send (window, options, timestamp clock) */
	struct us_out_seg o = { .flags = US_TH_SYN, .win = US_RCVBUF > 65535u ? 65535u : US_RCVBUF };
	o.opts.has_mss = true;
	o.opts.mss = c.mss;
	o.opts.sack_perm = true;
	o.opts.has_wscale = true;
	o.opts.wscale = c.wscale;
	o.opts.has_ts = true;
	o.opts.tsval = (uint32_t)(rp_mono_ns() / 1000000u) + c.ts_offset;
	if (s->nports) {
		for (size_t i = 0; i < s->nports; i++) {
			o.seq = us_cookie(s->key, s->laddr, s->lport, s->raddr, s->ports[i]);
			send_seg(s, &o, s->ports[i]);
		}
	} else if (s->lo) {
		for (uint32_t p = s->lo; p <= s->hi; p++) {
			o.seq = us_cookie(s->key, s->laddr, s->lport, s->raddr, (uint16_t)p);
			send_seg(s, &o, (uint16_t)p);
		}
	}
}

/* --- receiving ---------------------------------------------------------------------------- */

static void forged(struct rp_session *s, const struct rp_event *ev, const char *why)
{
	char fl[9];
	rp_tcp_flags_str(ev->flags, fl);
	s->st.forged++;
	trace(s, "ignored %s from :%u seq=%u ack=%u (%s)", fl, ev->tuple.sport, ev->seq, ev->ack, why);
}

/* Validation before the state machine sees a segment. */
static bool valid_for_tcb(struct rp_session *s, const struct rp_event *ev)
{
	const struct us_tcb *t = s->tcb;
	bool ack = ev->flags & RP_TH_ACK, rst = ev->flags & RP_TH_RST;
	switch (t->state) {
	case US_SYN_SENT:
		if (ack && ev->ack != t->iss + 1) {
			forged(s, ev, "ack is not our cookie + 1");
			return false;
		}
		if (rst && !ack) {
			forged(s, ev, "RST without ACK in SYN-SENT");
			return false;
		}
		if (!ack && !(ev->flags & RP_TH_SYN)) {
			forged(s, ev, "neither SYN nor ACK in SYN-SENT");
			return false;
		}
		if (!ack && !s->o.accept_syn) {
			forged(s, ev, "bare SYN and simultaneous open not accepted");
			return false;
		}
		return true;
	case US_SYN_RECEIVED:
		if (ack && !seq_in(ev->ack, t->iss + 1, t->snd_max + 1)) {
			forged(s, ev, "ack outside what we sent");
			return false;
		}
		if (rst && !ack && !seq_in(ev->seq, t->rcv_nxt, t->rcv_nxt + (t->rcv_wnd ? t->rcv_wnd : 1))) {
			forged(s, ev, "RST outside the window");
			return false;
		}
		return true;
	default:
		if (rst && !seq_in(ev->seq, t->rcv_nxt, t->rcv_nxt + (t->rcv_wnd ? t->rcv_wnd : 1))) {
			forged(s, ev, "RST outside the window");
			return false;
		}
		if (ack && seq_gt(ev->ack, t->snd_max)) {
			forged(s, ev, "acks data never sent");
			return false;
		}
		return true;
	}
}

static int on_tcp(struct rp_session *s, const struct rp_event *ev, uint64_t deadline)
{
	struct us_out out;
	struct us_event uev = { .type = US_EV_SEGMENT };
	char fl[9], a[INET_ADDRSTRLEN];
	int r;

	if (ev->ip_src == s->laddr && ev->tuple.sport == s->lport)
		return 0;                          /* our own, captured for the dump */
	if (ev->ip_src != s->raddr || ev->ip_dst != s->laddr || ev->tuple.dport != s->lport ||
	    !port_wanted(s, ev->tuple.sport))
		return 0;
	s->st.replies++;
	rp_tcp_flags_str(ev->flags, fl);
	trace(s, "rx %-3s from %s:%u seq=%u ack=%u win=%u len=%zu ttl=%u", fl, rp_ip_str(ev->ip_src, a),
	      ev->tuple.sport, ev->seq, ev->ack, ev->win, ev->paylen, ev->ttl);
	if (ev->paylen < ev->paylen_wire) {
		trace(s, "dropped: truncated capture (%zu of %u bytes)", ev->paylen, ev->paylen_wire);
		return 0;
	}
	if (!s->defined) {
		bool ack = ev->flags & RP_TH_ACK;
		if (ack && !us_cookie_check_ack(s->key, s->laddr, s->lport, s->raddr, ev->tuple.sport, ev->ack)) {
			forged(s, ev, "ack is not the port's cookie + 1");
			return 0;
		}
		if (!ack && (!(ev->flags & RP_TH_SYN) || (ev->flags & RP_TH_RST) || !s->o.accept_syn)) {
			forged(s, ev, "no cookie to check");
			return 0;
		}
		if (ev->flags & RP_TH_RST) {       /* a refusal from one of the ports: flow stays open */
			s->st.rsts++;
			if (!s->o.persist)
				return -ECONNREFUSED;
			return 0;
		}
		if (!ack)
			s->st.syns_rcvd++;
		r = open_flow(s, ev->tuple.sport, deadline, true);
		if (r)
			return r;
	} else {
		if (!valid_for_tcb(s, ev))
			return 0;
		if (ev->flags & RP_TH_RST)
			s->st.rsts++;
		else if ((ev->flags & (RP_TH_SYN | RP_TH_ACK)) == RP_TH_SYN)
			s->st.syns_rcvd++;
	}
	uev.seg.seq = ev->seq;
	uev.seg.ack = ev->ack;
	uev.seg.flags = ev->flags;
	uev.seg.win = ev->win;
	uev.seg.opts = ev->opts;
	uev.seg.payload = ev->payload;
	uev.seg.len = ev->paylen;
	us_handshake_only(s->tcb, &uev.seg);
	r = step(s, &uev, &out, false);
	if (r)
		return r;
	return (int)out.notify;
}

static int on_icmp(struct rp_session *s, const struct rp_event *ev)
{
	struct us_out out;
	struct us_event uev = { .type = US_EV_ICMP_ERROR };
	char a[INET_ADDRSTRLEN];
	const struct us_tcb *t = s->tcb;
	if (ev->tuple.saddr != s->laddr || ev->tuple.sport != s->lport || ev->tuple.daddr != s->raddr ||
	    !port_wanted(s, ev->tuple.dport))
		return 0;
	if (s->defined) {
		bool ok = t->state == US_SYN_SENT ? ev->seq == t->iss
			  : seq_in(ev->seq, t->iss, t->snd_max + 1);
		if (!ok) {
			s->st.forged++;
			trace(s, "ignored ICMP %u/%u from %s quoting seq=%u (not ours)", ev->icmp_type,
			      ev->icmp_code, rp_ip_str(ev->ip_src, a), ev->seq);
			return 0;
		}
	} else if (ev->seq != us_cookie(s->key, s->laddr, s->lport, s->raddr, ev->tuple.dport)) {
		s->st.forged++;
		trace(s, "ignored ICMP %u/%u from %s (quoted seq is not the cookie)", ev->icmp_type,
		      ev->icmp_code, rp_ip_str(ev->ip_src, a));
		return 0;
	}
	s->st.icmps++;
	s->st.last_icmp_type = ev->icmp_type;
	s->st.last_icmp_code = ev->icmp_code;
	s->st.last_icmp_from = ev->ip_src;
	trace(s, "rx ICMP %u/%u from %s quoting :%u seq=%u (ttl left %u)", ev->icmp_type, ev->icmp_code,
	      rp_ip_str(ev->ip_src, a), ev->tuple.dport, ev->seq, ev->inner_ttl);
	if (!s->defined)
		return s->o.persist ? 0 : -EHOSTUNREACH;
	uev.icmp.type = ev->icmp_type;
	uev.icmp.code = ev->icmp_code;
	uev.icmp.seq = ev->seq;
	int r = step(s, &uev, &out, false);
	return r ? r : (int)out.notify;
}

/* Drain the capture. Returns OR of US_N_* seen (>= 0) or -errno. */
static int drain(struct rp_session *s, uint64_t deadline)
{
	struct rp_event ev;
	int r, notes = 0;
	while ((r = rp_cap_next(s->cap, &ev)) == 1) {
		r = ev.kind == RP_EV_TCP ? on_tcp(s, &ev, deadline) : on_icmp(s, &ev);
		if (r < 0)
			return r;
		notes |= r;
	}
	return r < 0 ? r : notes;
}

static int fire_timer(struct rp_session *s, uint64_t now)
{
	struct us_out out;
	struct us_event ev = { .type = US_EV_TIMER };
	if (!s->timer_ns || now < s->timer_ns)
		return 0;
	int r = step(s, &ev, &out, false);
	return r ? r : (int)out.notify;
}

static int poll_ms(uint64_t now, uint64_t until)
{
	if (!until)
		return 1000;
	if (until <= now)
		return 0;
	uint64_t ms = (until - now + 999999) / 1000000;
	return ms > 1000 ? 1000 : (int)ms;
}

int rp_session_handshake(struct rp_session *s)
{
	uint64_t now = rp_mono_ns(), deadline, interval;
	int r;
	if (!s || s->released)
		return -EINVAL;
	deadline = now + (s->o.timeout_ns ? s->o.timeout_ns : 10000000000ull);
	interval = s->o.syn_interval_ns ? s->o.syn_interval_ns : 1000000000ull;
	if (!s->defined) {
		if (s->rport) {
			r = open_flow(s, s->rport, deadline, false);
			if (r)
				return r;
		} else if (!s->o.no_syn) {
			multi_round(s, deadline);
			s->next_multi_ns = now + interval;
		}
	}
	for (;;) {
		if (s->defined && us_synchronized(s->tcb))
			return 0;
		if (s->defined && s->tcb->state == US_CLOSED) {
			/* persist: RSTs/ICMP were soft, the deadline ended it; the why is in the stats */
			if (s->o.persist && rp_mono_ns() >= deadline)
				return -ETIMEDOUT;
			return s->tcb->error ? s->tcb->error : -ECONNABORTED;
		}
		if (stopped(s))
			return -EINTR;
		now = rp_mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (!s->defined && s->next_multi_ns && now >= s->next_multi_ns) {
			multi_round(s, deadline);
			s->next_multi_ns = now + interval;
		}
		uint64_t until = deadline;
		if (s->timer_ns && s->timer_ns < until)
			until = s->timer_ns;
		if (!s->defined && s->next_multi_ns && s->next_multi_ns < until)
			until = s->next_multi_ns;
		r = rp_cap_wait(s->cap, poll_ms(now, until));
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		r = drain(s, deadline);
		if (r < 0)
			return r;
		if (s->defined) {
			r = fire_timer(s, rp_mono_ns());
			if (r < 0)
				return s->o.persist && rp_mono_ns() >= deadline ? -ETIMEDOUT : r;
		}
	}
}

/* --- data exchange ------------------------------------------------------------------------ */

int rp_session_exchange(struct rp_session *s, int in_fd, int out_fd, uint64_t idle_timeout_ns)
{
	uint8_t *inbuf, *outbuf;
	size_t pend_off = 0, pend_len = 0;
	bool in_eof = in_fd < 0, closed_sent = false;
	uint64_t idle = idle_timeout_ns ? idle_timeout_ns : 30000000000ull, last = rp_mono_ns();
	struct us_out out;
	int r;

	if (!s || !s->defined || !us_synchronized(s->tcb) || s->released)
		return -ENOTCONN;
	inbuf = s->inbuf;
	outbuf = s->outbuf;
	for (;;) {
		uint64_t now = rp_mono_ns();
		struct us_event ev = { 0 };
		int notes = 0;

		if (stopped(s)) {
			/* interrupted: reset the connection (the RST carries RP_CRAFT_MARK, so the guard
			 * lets it out) rather than leave the peer waiting */
			ev.type = US_EV_ABORT;
			(void)step(s, &ev, &out, false);
			return -EINTR;
		}
		if (s->tcb->state == US_CLOSED)
			return s->tcb->error;
		/* queue pending stdin bytes */
		if (pend_len) {
			ev.type = US_EV_SEND;
			ev.data = inbuf + pend_off;
			ev.len = pend_len;
			r = step(s, &ev, &out, false);
			if (r)
				return r;
			pend_off += out.accepted;
			pend_len -= out.accepted;
			s->st.bytes_out += out.accepted;
			if (out.accepted)
				last = now;
		}
		if (in_eof && !pend_len && !closed_sent) {
			ev = (struct us_event){ .type = US_EV_CLOSE };
			r = step(s, &ev, &out, false);
			if (r)
				return r;
			closed_sent = true;
		}
		struct pollfd pf[2] = { { .fd = rp_cap_fd(s->cap), .events = POLLIN },
					{ .fd = in_eof || pend_len ? -1 : in_fd, .events = POLLIN } };
		/* The tcb bounds retransmissions itself; the idle limit only ends a close that stalls
		 * (our FIN is out, the peer neither sends nor closes). */
		uint64_t until = closed_sent ? last + idle : now + 1000000000ull;
		if (s->timer_ns && s->timer_ns < until)
			until = s->timer_ns;
		int pr = poll(pf, 2, poll_ms(now, until));
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(in_fd, inbuf, sizeof(s->inbuf));
			if (n > 0) {
				pend_off = 0;
				pend_len = (size_t)n;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
				in_eof = true;   /* end of input, or a real read error */
			}                        /* EINTR / EAGAIN (a non-blocking stdin): poll again */
		}
		r = drain(s, 0);
		if (r < 0)
			return r;
		notes |= r;
		r = fire_timer(s, rp_mono_ns());
		if (r < 0)
			return r;
		notes |= r;
		if (notes & ~US_N_WRITABLE)
			last = rp_mono_ns();
		/* hand in-order data to the output */
		while (s->tcb->rcv_len) {
			ev = (struct us_event){ .type = US_EV_RECV, .buf = outbuf, .cap = sizeof(s->outbuf) };
			r = step(s, &ev, &out, false);
			if (r)
				return r;
			if (!out.nread)
				break;
			s->st.bytes_in += out.nread;
			r = rp_io_write_all(out_fd, outbuf, out.nread, 0);   /* a non-blocking output is waited for */
			if (r) {
				/* nowhere to put the peer's data: reset rather than pretend to read it */
				ev = (struct us_event){ .type = US_EV_ABORT };
				(void)step(s, &ev, &out, false);
				return r;
			}
			last = rp_mono_ns();
		}
		/* the peer finished: stop reading input, close our side after what is queued */
		if (s->tcb->fin_rcvd && !in_eof) {
			in_eof = true;
			pend_len = 0;
		}
		if (closed_sent && rp_mono_ns() - last >= idle)
			return -ETIMEDOUT;
	}
}

/* --- results and teardown ----------------------------------------------------------------- */

const struct us_tcb *rp_session_tcb(const struct rp_session *s)
{
	return s ? s->tcb : NULL;
}

void rp_session_tuple(const struct rp_session *s, uint32_t *laddr, uint16_t *lport, uint32_t *raddr,
		      uint16_t *rport)
{
	if (laddr)
		*laddr = s->laddr;
	if (lport)
		*lport = s->lport;
	if (raddr)
		*raddr = s->raddr;
	if (rport)
		*rport = s->rport;
}

void rp_session_stats(const struct rp_session *s, struct rp_session_stats *st)
{
	if (!s || !st)
		return;
	*st = s->st;
	if (s->guard) {
		int64_t d = rp_guard_dropped(s->guard);
		if (d >= 0)              /* a failed counter read keeps the last known count (or -1) */
			st->guard_dropped = d;
	}
}

void rp_session_release(struct rp_session *s)
{
	if (!s)
		return;
	if (s->guard) {
		int64_t d = rp_guard_dropped(s->guard);
		if (d >= 0)
			s->st.guard_dropped = d;
	}
	rp_guard_close(s->guard);
	s->guard = NULL;
	rp_cap_close(s->cap);
	s->cap = NULL;
	rp_craft_close(s->craft);
	s->craft = NULL;
	s->released = true;
}

void rp_session_close(struct rp_session *s)
{
	if (!s)
		return;
	rp_session_release(s);
	free(s->tcb);
	free(s->ports);
	free(s);
}

void rp_session_why(const struct rp_session *s, char *buf, size_t cap)
{
	char a[INET_ADDRSTRLEN];
	int n = 0;
	if (!s || !buf || !cap)
		return;
	buf[0] = 0;
	n += snprintf(buf + n, cap - (size_t)n, "%u SYNs sent, ", s->st.syns_sent);
	if (n < (int)cap && !s->st.replies && !s->st.icmps)
		n += snprintf(buf + n, cap - (size_t)n, "no reply (silence)");
	if (n < (int)cap && s->st.rsts)
		n += snprintf(buf + n, cap - (size_t)n, "%u RSTs (refused)", s->st.rsts);
	if (n < (int)cap && s->st.icmps)
		n += snprintf(buf + n, cap - (size_t)n, "%s%u ICMP errors (last %u/%u from %s)", s->st.rsts ? ", " : "",
			      s->st.icmps, s->st.last_icmp_type, s->st.last_icmp_code,
			      rp_ip_str(s->st.last_icmp_from, a));
	if (n < (int)cap && s->st.replies && !s->st.rsts)
		n += snprintf(buf + n, cap - (size_t)n, "%s%u replies", s->st.icmps ? ", " : "", s->st.replies);
	if (n < (int)cap && s->st.forged)
		snprintf(buf + n, cap - (size_t)n, ", %u forged ignored", s->st.forged);
}
