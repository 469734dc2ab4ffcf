/* SPDX-License-Identifier: MIT */
/* The NAT probe, rp_probe_run() (see probe.h): the phases in order and what they measured turned
 * into the natinfo. Phase 1 (filtering) runs here on a thread of its own; phase 2 is in
 * probe-ttl.c, phase 3 (the RFC 5780 mapping tests) here, phase 4 in probe-alloc.c with nat_ttl's
 * confirmation in probe-confirm.c; the report's JSON and plot are in probe-json.c and probe-plot.c. */
#include "rawpunch/probe/probe-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rawpunch/net/netif.h"
#include "rawpunch/base/version.h"
#include "rawpunch/base/clock.h"

/* ---------------------------------------------------------------- phase 1: filtering (thread) */

struct filter_job {
	rp_filter_probe_fn fn;
	void *arg;
	uint16_t port;
	int timeout_ms;
	enum rp_filter out;
	int err;
	pthread_t th;
	bool on;
};

static void *filter_thread(void *arg)
{
	struct filter_job *j = arg;
	j->out = RP_FILTER_UNKNOWN;
	j->err = j->fn(j->arg, j->port, j->timeout_ms, &j->out);
	return NULL;
}

/* The filter probe in the background: the server needs a connect timeout to tell "drop". */
static void filter_start(struct filter_job *j, const struct rp_probe_opts *o, uint16_t lport)
{
	memset(j, 0, sizeof(*j));
	j->err = -ENOTCONN;
	if (!o->filter_probe)
		return;
	j->fn = o->filter_probe;
	j->arg = o->filter_probe_arg;
	j->port = lport;   /* a port with no mapping yet: the unsolicited-SYN case */
	j->timeout_ms = o->filter_timeout_ms > 0 ? o->filter_timeout_ms : 1000;
	j->on = pthread_create(&j->th, NULL, filter_thread, j) == 0;
	if (!j->on)
		j->err = -EAGAIN;
}

static void filter_join(struct filter_job *j)
{
	if (j->on)
		pthread_join(j->th, NULL);
	j->on = false;
}

/* ---------------------------------------------------------------- phases 3 and 4, the result */

void probe_sample_from(struct rp_probe_sample *ps, enum rp_probe_kind kind, const struct rp_stun_result *res,
		       int err, uint16_t lport)
{
	memset(ps, 0, sizeof(*ps));
	ps->kind = kind;
	ps->server = res->server;
	ps->t_real_ns = res->t_start_real_ns;
	ps->t_mono_ns = res->t_start_ns;
	ps->local_port = res->local.sin_port ? ntohs(res->local.sin_port) : lport;
	ps->err = err;
	ps->ok = !err && res->has_mapped;
	if (!err && !res->has_mapped)
		ps->err = res->error_code ? -EPROTO : -EBADMSG;
	if (ps->ok) {
		ps->mapped_addr = res->mapped.sin_addr.s_addr;
		ps->mapped_port = ntohs(res->mapped.sin_port);
	}
	ps->rtt_ms = (double)res->connect_ns / 1e6;
}

static int cmp_sample(const void *a, const void *b)
{
	const struct rp_port_sample *x = a, *y = b;
	return x->t_ns < y->t_ns ? -1 : x->t_ns > y->t_ns;
}

/* One Binding from the punch port as a sample of kind k; 0, or the exchange's -errno. */
static int binding(const struct sockaddr_in *to, const struct rp_stun_opts *so, struct rp_probe_report *r,
		   enum rp_probe_kind k, struct rp_stun_result *res)
{
	memset(res, 0, sizeof(*res));
	int e = rp_stun_binding(to, so, res);
	struct rp_probe_sample *ps = &r->samples[r->n_samples++];
	probe_sample_from(ps, k, res, e, so->local_port);
	return ps->ok ? 0 : ps->err;
}

/* Phase 3 after test 1: the alternate address (test 2), the alternate address and port (test 3),
 * the primary address at the alternate port (test 4), and what they say about the mapping. */
static void mapping_tests(const struct rp_probe_opts *o, const struct rp_stun_opts *so, struct rp_probe_report *r,
			  const struct rp_stun_result *t1, struct rp_ep m[4], bool have[4])
{
	struct rp_stun_result res;
	int e2 = -ENOTSUP, e3 = -ENOTSUP;
	m[0] = (struct rp_ep){ t1->mapped.sin_addr.s_addr, ntohs(t1->mapped.sin_port) };
	have[0] = true;
	have[1] = have[2] = have[3] = false;
	if (t1->has_other && t1->other.sin_addr.s_addr != o->stun.sin_addr.s_addr) {
		struct sockaddr_in to = t1->other;
		to.sin_port = o->stun.sin_port;
		if (!(e2 = binding(&to, so, r, RP_SAMPLE_TEST2, &res))) {
			m[1] = (struct rp_ep){ res.mapped.sin_addr.s_addr, ntohs(res.mapped.sin_port) };
			have[1] = true;
		}
		if (t1->other.sin_port != o->stun.sin_port) {
			if (!(e3 = binding(&t1->other, so, r, RP_SAMPLE_TEST3, &res))) {
				m[2] = (struct rp_ep){ res.mapped.sin_addr.s_addr, ntohs(res.mapped.sin_port) };
				have[2] = true;
			}
			to = o->stun;   /* the primary address at the alternate port */
			to.sin_port = t1->other.sin_port;
			if (!binding(&to, so, r, RP_SAMPLE_TEST4, &res)) {
				m[3] = (struct rp_ep){ res.mapped.sin_addr.s_addr, ntohs(res.mapped.sin_port) };
				have[3] = true;
			}
		}
	}
	struct rp_ep local = { r->ni.local_addr, r->ni.local_port };
	r->ni.mapping = rp_mapping_classify4(&local, &m[0], have[1] ? &m[1] : NULL, have[2] ? &m[2] : NULL,
					     have[3] ? &m[3] : NULL, &r->ni.behind_nat);
	r->mapping_err = r->ni.mapping != RP_MAP_UNKNOWN ? 0 : !t1->has_other ? -ENOTSUP : e2 ? e2 : e3;
}

/* The public port a new flow from the punch port to the connect-back server gets on the outermost
 * NAT, where the mapping tests tell it: 0 when they do not. */
static uint16_t connect_back_port(const struct rp_probe_opts *o, const struct rp_probe_report *r,
				  const struct rp_ep m[4], const bool have[4])
{
	uint32_t cb = o->connect_back_addr;
	if (r->ni.mapping == RP_MAP_EI)
		return m[0].port;
	if (r->ni.mapping == RP_MAP_AD) {
		if (cb == o->stun.sin_addr.s_addr)
			return m[0].port;
		if (have[1] && r->has_other && cb == r->other.sin_addr.s_addr)
			return m[1].port;
		return 0;
	}
	for (int i = 0; i < 4; i++)   /* the port is kept, whatever the destination */
		if (have[i] && m[i].port != r->ni.local_port)
			return 0;
	return r->ni.local_port;
}

/* Start confirming nat_ttl from outside, if the caller can and the public port is known. */
static void confirm_begin(const struct rp_probe_opts *o, struct rp_probe_report *r, const struct rp_route *rt,
			  const struct rp_ep m[4], const bool have[4], struct probe_confirm *pc)
{
	memset(pc, 0, sizeof(*pc));
	if (!o->connect_back || !o->connect_back_addr) {
		r->confirm_err = -ENOTCONN;
		return;
	}
	if (!r->ni.behind_nat || r->ttl_err) {
		r->confirm_err = r->ni.behind_nat ? r->ttl_err : -ENOENT;
		return;
	}
	pc->ifname = rt->ifname;
	pc->laddr = r->ni.local_addr;
	pc->lport = r->ni.local_port;
	if (!(pc->public_port = connect_back_port(o, r, m, have))) {
		r->confirm_err = -EADDRNOTAVAIL;
		return;
	}
	pc->o = o;
	unsigned ttl_max = o->ttl_max > RP_PROBE_MAX_HOPS ? RP_PROBE_MAX_HOPS : o->ttl_max;
	/* a SYN that reaches the server draws its RST, which closes the mapping it was to test */
	pc->max_ttl = r->guess.server_hops > 1 && o->connect_back_addr == o->stun.sin_addr.s_addr ?
		      (unsigned)r->guess.server_hops - 1 : ttl_max;
	/* the TTL below the candidate first: where it fails, the server saw our filter's answer */
	pc->first = r->guess.nat_hop >= 1 ? (unsigned)r->guess.nat_hop : 1;
	if (pc->first > pc->max_ttl)
		pc->first = pc->max_ttl;
	/* the server's connect timeout: about 4 RTTs (test 1's connect), within 150 ms .. the filter's */
	int cap = o->filter_timeout_ms > 0 ? o->filter_timeout_ms : 1000;
	pc->ms = (int)(4 * r->samples[0].rtt_ms) + 100;
	pc->ms = pc->ms < 150 ? 150 : pc->ms > cap ? (cap < 150 ? 150 : cap) : pc->ms;
	if (pc->first < 1 || (r->confirm_err = probe_confirm_start(pc))) {
		r->confirm_err = r->confirm_err ? r->confirm_err : -ENOENT;
		pc->o = NULL;
	}
}

/* nat_ttl and how it was chosen: confirmed, else what the hops showed, else the fallback. */
static void decide_ttl(struct rp_probe_report *r, struct probe_confirm *pc)
{
	probe_confirm_join(pc);
	if (pc->o) {
		memcpy(r->confirm, pc->tests, sizeof(r->confirm));
		r->n_confirm = pc->n;
		if (!r->confirm_err)
			r->confirm_err = pc->err;
	}
	r->ni.server_hops = r->guess.server_hops > 0 && r->guess.server_hops < 256 ? (uint8_t)r->guess.server_hops : 0;
	if (!r->ni.behind_nat) {
		if (!r->ttl_err)
			r->ttl_err = -ENOENT;   /* no NAT: nothing to pass */
		return;
	}
	if (pc->ttl) {
		r->ni.nat_ttl = pc->ttl;
		r->ni.nat_ttl_method = RP_TTL_CONFIRMED;
	} else if (r->guess.nat_hop >= 0 && r->guess.nat_hop < 255) {
		r->ni.nat_ttl = (uint8_t)(r->guess.nat_hop + 1);
		r->ni.nat_ttl_method = r->guess.behavioural ? RP_TTL_HOPS : RP_TTL_FALLBACK;
	} else if (!r->ttl_err) {
		r->ttl_err = -ENOENT;
	}
	if (r->ni.nat_ttl) {
		r->nat_hop = r->ni.nat_ttl - 1;
		r->ttl_err = 0;
	}
}

/* When the SYN that took the NAT's port left: a connect that took about a retransmission timeout
 * (1 s, then 3, 7, 15 s after the first SYN) longer than the fastest one got through with a resent
 * SYN, and the NAT gave it the port it had free at that later moment. */
static uint64_t syn_time(const struct rp_probe_sample *x, double rtt_min_ms)
{
	static const double resent_ms[] = { 15000, 7000, 3000, 1000 };
	double late = x->rtt_ms - rtt_min_ms;
	for (size_t i = 0; i < sizeof(resent_ms) / sizeof(resent_ms[0]); i++)
		if (late > resent_ms[i] - 100)
			return x->t_mono_ns + (uint64_t)(resent_ms[i] * 1e6);
	return x->t_mono_ns;
}

/* The allocation's samples: every Binding that made a new mapping (a test that met the punch port's
 * existing mapping again is not a new flow for the NAT), in the order their SYNs reached the NAT. */
static size_t alloc_series(const struct rp_probe_report *r, struct rp_port_sample *ps)
{
	size_t nps = 0;
	double rtt_min = 1e18;
	for (unsigned i = 0; i < r->n_samples; i++)
		if (r->samples[i].ok && r->samples[i].rtt_ms < rtt_min)
			rtt_min = r->samples[i].rtt_ms;
	for (unsigned i = 0; i < r->n_samples; i++) {
		const struct rp_probe_sample *x = &r->samples[i];
		bool again = false;
		if (!x->ok || x->mapped_addr != r->ni.mapped_addr)
			continue;
		for (unsigned j = 0; j < i; j++)
			again |= r->samples[j].ok && r->samples[j].local_port == x->local_port &&
				 r->samples[j].mapped_addr == x->mapped_addr && r->samples[j].mapped_port == x->mapped_port;
		if (!again)
			ps[nps++] = (struct rp_port_sample){ syn_time(x, rtt_min), x->local_port, x->mapped_port };
	}
	qsort(ps, nps, sizeof(ps[0]), cmp_sample);
	return nps;
}

int rp_probe_run(const struct rp_probe_opts *o, struct rp_probe_report *r)
{
	struct rp_route rt;
	int ret;
	if (!o || !r || o->stun.sin_family != AF_INET || !o->stun.sin_port || !o->stun.sin_addr.s_addr)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	uint64_t t_begin = rp_clock_ns(CLOCK_MONOTONIC);
	r->stun = o->stun;
	r->nat_hop = -ENOENT;
	r->guess.nat_hop = -ENOENT;
	r->horizon_s = o->horizon_s >= 0 ? o->horizon_s : 1.0;
	r->ni.probed_at_ns = rp_clock_ns(CLOCK_REALTIME);
	if ((ret = rp_route_get(o->stun.sin_addr.s_addr, &rt)) < 0)
		return ret;
	uint32_t laddr = o->local_addr ? o->local_addr : rt.src;
	uint16_t lport = o->local_port;
	if (!lport && (ret = rp_free_port(laddr, &lport)) < 0)
		return ret;
	r->ni.local_addr = laddr;
	r->ni.local_port = lport;

	char sw[64];
	snprintf(sw, sizeof(sw), "rawpunch %s", RP_VERSION);
	struct rp_stun_opts so = { .local_addr = laddr, .local_port = lport,
				   .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 3000,
				   .software = o->software ? o->software : sw, .close = RP_STUN_CLOSE_FIN };

	/* 1. filtering, in the background. With a connect_back callback it waits for phase 4: the
	 * confirmation's test that does not get in says what the filter does, one connect-back less
	 * under the server's per-address rate limit. */
	struct filter_job fj = { .err = -ENOTCONN };
	if (!o->connect_back)
		filter_start(&fj, o, lport);

	/* 2. the hops */
	r->ttl_err = o->ttl_max ? probe_ttl_search(o, r, &rt, laddr, lport) : -ECANCELED;

	/* 3. mapping: RFC 5780 §4.3 over TCP from the punch port */
	struct rp_stun_result t1;
	int e1 = binding(&o->stun, &so, r, RP_SAMPLE_TEST1, &t1);
	if (e1) {
		r->n_samples = 0;
		filter_join(&fj);
		r->ni.filtering = fj.err ? RP_FILTER_UNKNOWN : fj.out;
		r->filter_err = fj.err;
		if (t1.error_code)   /* for the caller's message: the server's code and reason */
			snprintf(r->server_software, sizeof(r->server_software), "%d %.100s", t1.error_code,
				 t1.error_reason);
		return e1;
	}
	memcpy(r->server_software, t1.software, sizeof(r->server_software));
	r->ni.mapped_addr = t1.mapped.sin_addr.s_addr;
	r->ni.mapped_port = ntohs(t1.mapped.sin_port);
	r->has_other = t1.has_other;
	r->other = t1.other;
	struct rp_ep m[4];
	bool have[4];
	mapping_tests(o, &so, r, &t1, m, have);

	/* what the hops show, now that the public address is known */
	struct rp_hop hops[RP_PROBE_MAX_HOPS];
	memset(hops, 0, sizeof(hops));
	for (unsigned i = 0; i < r->n_hops; i++) {
		const struct rp_probe_hop *h = &r->hops[i];
		hops[i] = (struct rp_hop){ .ttl = h->ttl, .answered = h->answered, .from = h->from,
					   .reached = h->reached, .inner_seen = h->answered,
					   .inner_saddr = h->inner_saddr, .inner_sport = h->inner_sport, .n_rr = h->n_rr };
		memcpy(hops[i].rr, h->rr, sizeof(h->rr));
	}
	rp_nat_ttl_guess(hops, r->n_hops, laddr, lport, r->ni.mapped_addr, r->ni.mapped_port, &r->guess);

	/* 4. allocation, and meanwhile nat_ttl's confirmation */
	struct probe_confirm pc;
	confirm_begin(o, r, &rt, m, have, &pc);
	if (o->connect_back && !pc.running)
		filter_start(&fj, o, lport);
	if (o->samples && (ret = probe_sample_allocation(o, r, laddr, &so)) < 0) {
		probe_confirm_join(&pc);
		filter_join(&fj);
		return ret;
	}
	decide_ttl(r, &pc);
	struct rp_port_sample ps[RP_PROBE_MAX_SAMPLES + 4];
	size_t nps = alloc_series(r, ps);
	struct rp_alloc_opts ao = { .range_lo = o->range_lo, .range_hi = o->range_hi };
	if ((ret = rp_alloc_classify(ps, nps, &ao, &r->fit)) < 0) {
		filter_join(&fj);
		return ret;
	}
	if (!r->ni.behind_nat) {
		r->fit.alloc = RP_ALLOC_PRESERVING;   /* no NAT: every port is its own */
		r->fit.port_range.how = RP_RANGE_NONE;
	}
	rp_alloc_predict(&r->fit, r->ni.mapping, lport, r->ni.mapped_port, r->horizon_s, 0, &r->pred);
	r->ni.alloc = r->fit.alloc;
	r->ni.has_delta = r->fit.has_delta;
	r->ni.delta = r->fit.delta;
	r->ni.jitter = r->fit.jitter;
	memcpy(r->ni.predicted, r->pred.ports, sizeof(r->ni.predicted));
	r->ni.n_predicted = r->pred.n;
	r->ni.confidence = r->pred.confidence;
	if (r->fit.port_range.how != RP_RANGE_NONE) {
		r->ni.has_range = true;
		r->ni.range_lo = r->fit.port_range.lo;
		r->ni.range_hi = r->fit.port_range.hi;
		r->ni.range_confidence = r->fit.port_range.confidence;
	}

	filter_join(&fj);
	if (pc.o) {   /* the confirmation said it */
		fj.err = pc.filter_err;
		fj.out = pc.filtering;
	}
	r->filter_err = fj.err;
	r->ni.filtering = fj.err ? RP_FILTER_UNKNOWN : fj.out;
	r->duration_s = (double)(rp_clock_ns(CLOCK_MONOTONIC) - t_begin) / 1e9;
	return 0;
}
