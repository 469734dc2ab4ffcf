/* SPDX-License-Identifier: MIT */
/* The raw handshake driver (see session.h). */
#include "rawpunch/punch/session.h"
#include "rawpunch/punch/session_int.h"

#include <arpa/inet.h>
#include <errno.h>
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
#include "rawpunch/punch/rawflow.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"

#define SNAPLEN 65600            /* whole segments: the data path needs every byte */
#define MULTI_MAX_FLOWS 64       /* port lists longer than this are filtered as one range */

/* trace(x, fmt, ...): one line to the caller's trace callback, if any */
#define trace(x, ...) rp_trace((x)->o.trace, (x)->o.trace_arg, __VA_ARGS__)

bool rp_sess_stopped(const struct rp_session *s)
{
	return s->o.stop && *s->o.stop;
}

static bool port_wanted(const struct rp_session *s, uint16_t p)
{
	if (s->flow.defined)
		return p == s->rport;
	if (s->nports) {
		for (size_t i = 0; i < s->nports; i++)
			if (s->ports[i] == p)
				return true;
		return false;
	}
	return !s->lo || (p >= s->lo && p <= s->hi);
}

/* --- the flow (rawflow.h) ----------------------------------------------------------------- */

static uint32_t cookie_iss(void *arg, uint16_t lport, uint16_t rport)
{
	const struct rp_session *s = arg;
	return us_cookie(s->key, s->laddr, lport, s->raddr, rport);
}

static void count_sent(void *arg, const struct us_out_seg *seg, uint16_t rport, int err)
{
	struct rp_session *s = arg;
	(void)rport;
	(void)err;
	if (seg->flags & US_TH_SYN) {
		s->st.syns_sent++;
		if (!s->t_first_syn)
			s->t_first_syn = rp_mono_ns();
	}
}

static void on_notify(void *arg, const struct us_out *out)
{
	struct rp_session *s = arg;
	if (out->notify & US_N_ESTABLISHED) {
		s->st.t_established_ns = s->t_first_syn ? rp_mono_ns() - s->t_first_syn : 0;
		trace(s, "ESTABLISHED with :%u in %.1f ms", s->rport, (double)s->st.t_established_ns / 1e6);
	}
	if (out->notify & US_N_SOFT_ERROR)
		trace(s, "soft error absorbed (%s), SYNs continue", strerror(-s->tcb->soft_error));
	if (out->notify & US_N_CLOSED)
		trace(s, "CLOSED%s%s", out->error ? ": " : "", out->error ? strerror(-out->error) : "");
}

static void flow_init(struct rp_session *s)
{
	s->flow = (struct rp_rawflow){
		.craft = s->craft, .tcb = s->tcb, .laddr = s->laddr, .raddr = s->raddr,
		.syn_ttl = s->o.syn_ttl, .ttl = s->o.ttl, .accept_syn = s->o.accept_syn,
		.iss = cookie_iss, .sent = count_sent, .notify = on_notify, .arg = s, .forged = &s->st.forged,
		.trace = s->o.trace, .trace_arg = s->o.trace_arg,
	};
	rp_rawflow_reset(&s->flow);
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
	if (s->o.pcap_file)   /* the dump shows our side too (the pointer only says there is one) */
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
	bool gave = false;
	int r;

	if (!ebuf || !elen) {
		ebuf = dummy;
		elen = sizeof(dummy);
	}
	ebuf[0] = 0;

	if (!o || !out || !o->raddr) {
		if (o && o->pcap_file)
			fclose(o->pcap_file);
		return -EINVAL;
	}
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		if (o->pcap_file)
			fclose(o->pcap_file);
		return -ENOMEM;
	}
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
	{
		char a[16];
		trace(s, "local %s:%u", rp_ip_str(s->laddr, a), s->lport);
	}
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
		.dir = o->pcap_file ? RP_CAP_INOUT : RP_CAP_IN,
		.verify_csum = true,    /* a segment the kernel would drop is no reply of the peer's */
		.dump_file = o->pcap_file,
		.filter = "tcp or icmp", /* narrowed to the flows just below; on_tcp() checks tuples anyway */
	};
	gave = true;   /* rp_cap_open owns the dump stream from here on, failure or not */
	r = rp_cap_open(&co, &s->cap, err, sizeof(err));
	if (r)
		FAIL("capture");
	r = set_capture_filter(s);
	if (r) {
		snprintf(err, sizeof(err), "%s", rp_cap_errmsg(s->cap));
		FAIL("capture filter");
	}
	s->st.guard_dropped = -1;
	flow_init(s);
	*out = s;
	return 0;
fail:
	if (!gave && o->pcap_file)
		fclose(o->pcap_file);
	rp_session_close(s);
	return r;
}

static void make_cfg(const struct rp_session *s, uint16_t rport, uint64_t deadline, struct us_config *c)
{
	/* ts_offset: the port-list SYNs used the same clock */
	rp_rawflow_config(c, us_cookie(s->key, s->laddr, s->lport, s->raddr, rport), s->o.mss, s->ts_offset,
			  s->o.syn_interval_ns ? s->o.syn_interval_ns : 1000000000ull, s->o.persist, deadline);
}

static int open_flow(struct rp_session *s, uint16_t rport, uint64_t deadline, bool syn_sent)
{
	struct us_config c;
	struct us_out out;
	s->rport = rport;
	make_cfg(s, rport, deadline, &c);
	int r = rp_rawflow_open(&s->flow, s->lport, rport, &c, syn_sent, &out);
	if (r >= 0 && (s->nports || !s->o.rport))
		(void)set_capture_filter(s);   /* narrow to the answering port */
	return r;
}

/* One SYN per listed port, each with its own cookie ISN (the flow is not defined yet). */
static void multi_round(struct rp_session *s, uint64_t deadline)
{
	struct us_config c;
	struct us_out_seg o;
	uint64_t now = rp_mono_ns();
	make_cfg(s, 1, deadline, &c);
	if (s->nports) {
		for (size_t i = 0; i < s->nports; i++) {
			rp_rawflow_syn(&o, &c, cookie_iss(s, s->lport, s->ports[i]), now);
			(void)rp_rawflow_send(&s->flow, &o, s->lport, s->ports[i]);
		}
	} else if (s->lo) {
		for (uint32_t p = s->lo; p <= s->hi; p++) {
			rp_rawflow_syn(&o, &c, cookie_iss(s, s->lport, (uint16_t)p), now);
			(void)rp_rawflow_send(&s->flow, &o, s->lport, (uint16_t)p);
		}
	}
}

/* --- receiving ---------------------------------------------------------------------------- */

static int on_tcp(struct rp_session *s, const struct rp_event *ev, uint64_t deadline)
{
	struct us_out out;
	char fl[9], a[INET_ADDRSTRLEN];
	const char *why;
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
	if (!s->flow.defined) {
		switch (rp_rawflow_classify(&s->flow, ev, &why)) {
		case RP_RF_FORGED:
		case RP_RF_OTHER:
			rp_rawflow_forged(&s->flow, ev, why);
			return 0;
		case RP_RF_REFUSED:            /* a refusal from one of the ports: flow stays open */
			s->st.rsts++;
			return s->o.persist ? 0 : -ECONNREFUSED;
		case RP_RF_SYN:
			s->st.syns_rcvd++;
			break;
		default:                       /* SYN-ACK, ACK of the port's cookie */
			break;
		}
		r = open_flow(s, ev->tuple.sport, deadline, true);
		if (r < 0)
			return r;
	} else {
		if (!rp_rawflow_acceptable(&s->flow, ev))
			return 0;
		if (ev->flags & RP_TH_RST)
			s->st.rsts++;
		else if ((ev->flags & (RP_TH_SYN | RP_TH_ACK)) == RP_TH_SYN)
			s->st.syns_rcvd++;
	}
	return rp_rawflow_feed(&s->flow, ev, &out);
}

static int on_icmp(struct rp_session *s, const struct rp_event *ev)
{
	struct us_out out;
	char a[INET_ADDRSTRLEN];
	if (ev->tuple.saddr != s->laddr || ev->tuple.sport != s->lport || ev->tuple.daddr != s->raddr ||
	    !port_wanted(s, ev->tuple.dport))
		return 0;
	if (!rp_rawflow_icmp_ok(&s->flow, ev))
		return 0;
	s->st.icmps++;
	s->st.last_icmp_type = ev->icmp_type;
	s->st.last_icmp_code = ev->icmp_code;
	s->st.last_icmp_from = ev->ip_src;
	trace(s, "rx ICMP %u/%u from %s quoting :%u seq=%u (ttl left %u)", ev->icmp_type, ev->icmp_code,
	      rp_ip_str(ev->ip_src, a), ev->tuple.dport, ev->seq, ev->inner_ttl);
	if (!s->flow.defined)
		return s->o.persist ? 0 : -EHOSTUNREACH;
	return rp_rawflow_icmp(&s->flow, ev, &out);
}

int rp_sess_drain(struct rp_session *s, uint64_t deadline)
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

int rp_sess_poll_ms(uint64_t now, uint64_t until)
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
	if (!s->flow.defined) {
		if (s->rport) {
			r = open_flow(s, s->rport, deadline, false);
			if (r < 0)
				return r;
		} else if (!s->o.no_syn) {
			multi_round(s, deadline);
			s->next_multi_ns = now + interval;
		}
	}
	for (;;) {
		if (s->flow.defined && us_synchronized(s->tcb))
			return 0;
		if (s->flow.defined && s->tcb->state == US_CLOSED) {
			/* persist: RSTs/ICMP were soft, the deadline ended it; the why is in the stats */
			if (s->o.persist && rp_mono_ns() >= deadline)
				return -ETIMEDOUT;
			return s->tcb->error ? s->tcb->error : -ECONNABORTED;
		}
		if (rp_sess_stopped(s))
			return -EINTR;
		now = rp_mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (!s->flow.defined && s->next_multi_ns && now >= s->next_multi_ns) {
			multi_round(s, deadline);
			s->next_multi_ns = now + interval;
		}
		uint64_t until = deadline;
		if (s->flow.timer_ns && s->flow.timer_ns < until)
			until = s->flow.timer_ns;
		if (!s->flow.defined && s->next_multi_ns && s->next_multi_ns < until)
			until = s->next_multi_ns;
		r = rp_cap_wait(s->cap, rp_sess_poll_ms(now, until));
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		r = rp_sess_drain(s, deadline);
		if (r < 0)
			return r;
		if (s->flow.defined) {
			struct us_out out;
			r = rp_rawflow_timer(&s->flow, rp_mono_ns(), &out);
			if (r < 0)
				return s->o.persist && rp_mono_ns() >= deadline ? -ETIMEDOUT : r;
		}
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

int rp_session_take_dump(struct rp_session *s, struct rp_cap **out)
{
	int r;
	if (!s || !out || !s->o.pcap_file || !s->cap || !s->flow.defined)
		return -ENOENT;
	if ((r = rp_cap_set_tuple(s->cap, s->laddr, s->lport, s->raddr, s->rport)))
		return r;
	*out = s->cap;
	s->cap = NULL;
	return 0;
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
