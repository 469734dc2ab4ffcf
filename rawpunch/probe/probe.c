/* SPDX-License-Identifier: MIT */
/* The NAT probe, rp_probe_run() (see probe.h): the phases in order and what they measured turned
 * into the natinfo. Phase 1 (filtering) runs here on a thread of its own; phase 2 is in
 * probe-ttl.c, phase 3 (the RFC 5780 mapping tests) here, phase 4 in probe-alloc.c; the report's
 * JSON and plot are in probe-json.c and probe-plot.c. */
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
};

static void *filter_thread(void *arg)
{
	struct filter_job *j = arg;
	j->out = RP_FILTER_UNKNOWN;
	j->err = j->fn(j->arg, j->port, j->timeout_ms, &j->out);
	return NULL;
}

/* ---------------------------------------------------------------- phases 3 and 4 */

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

	/* 1. filtering, in the background: the server needs a connect timeout to tell "drop". */
	pthread_t th;
	bool th_on = false;
	struct filter_job fj = { .err = -ENOTCONN };
	if (o->filter_probe) {
		fj.fn = o->filter_probe;
		fj.arg = o->filter_probe_arg;
		fj.port = lport;   /* a port with no mapping yet: the unsolicited-SYN case */
		fj.timeout_ms = o->filter_timeout_ms > 0 ? o->filter_timeout_ms : 1000;
		if (pthread_create(&th, NULL, filter_thread, &fj) == 0)
			th_on = true;
		else
			fj.err = -EAGAIN;
	}

	/* 2. nat_ttl */
	r->ttl_err = o->ttl_max ? probe_ttl_search(o, r, &rt, laddr, lport) : -ECANCELED;

	/* 3. mapping: RFC 5780 §4.3 over TCP from the punch port */
	struct rp_stun_result t1, t2, t3;
	memset(&t2, 0, sizeof(t2));
	memset(&t3, 0, sizeof(t3));
	int e1 = rp_stun_binding(&o->stun, &so, &t1), e2 = -ENOTSUP, e3 = -ENOTSUP;
	if (e1 == 0 && !t1.has_mapped)
		e1 = t1.error_code ? -EPROTO : -EBADMSG;
	if (e1) {
		if (th_on)
			pthread_join(th, NULL);
		r->ni.filtering = fj.err ? RP_FILTER_UNKNOWN : fj.out;
		r->filter_err = fj.err;
		if (t1.error_code)   /* for the caller's message: the server's code and reason */
			snprintf(r->server_software, sizeof(r->server_software), "%d %.100s", t1.error_code,
				 t1.error_reason);
		return e1;
	}
	probe_sample_from(&r->samples[r->n_samples++], RP_SAMPLE_TEST1, &t1, 0, lport);
	memcpy(r->server_software, t1.software, sizeof(r->server_software));
	r->ni.mapped_addr = t1.mapped.sin_addr.s_addr;
	r->ni.mapped_port = ntohs(t1.mapped.sin_port);
	r->has_other = t1.has_other;
	r->other = t1.other;
	if (t1.has_other && t1.other.sin_addr.s_addr != o->stun.sin_addr.s_addr) {
		struct sockaddr_in a2 = t1.other;
		a2.sin_port = o->stun.sin_port;
		e2 = rp_stun_binding(&a2, &so, &t2);
		probe_sample_from(&r->samples[r->n_samples++], RP_SAMPLE_TEST2, &t2, e2, lport);
		if (!r->samples[r->n_samples - 1].ok)
			e2 = r->samples[r->n_samples - 1].err;
		if (t1.other.sin_port != o->stun.sin_port) {
			e3 = rp_stun_binding(&t1.other, &so, &t3);
			probe_sample_from(&r->samples[r->n_samples++], RP_SAMPLE_TEST3, &t3, e3, lport);
			if (!r->samples[r->n_samples - 1].ok)
				e3 = r->samples[r->n_samples - 1].err;
		}
	}
	struct rp_ep local = { laddr, lport }, m1 = { t1.mapped.sin_addr.s_addr, ntohs(t1.mapped.sin_port) },
		     m2 = { t2.mapped.sin_addr.s_addr, ntohs(t2.mapped.sin_port) },
		     m3 = { t3.mapped.sin_addr.s_addr, ntohs(t3.mapped.sin_port) };
	r->ni.mapping = rp_mapping_classify(&local, &m1, e2 ? NULL : &m2, e3 ? NULL : &m3, &r->ni.behind_nat);
	r->mapping_err = r->ni.mapping != RP_MAP_UNKNOWN ? 0 : !t1.has_other ? -ENOTSUP : e2 ? e2 : e3;

	/* nat_ttl, now that the mapped address is known (it can sharpen the decision) */
	if (r->n_hops) {
		struct rp_hop hops[RP_PROBE_MAX_HOPS];
		memset(hops, 0, sizeof(hops));
		for (unsigned i = 0; i < r->n_hops; i++) {
			hops[i].ttl = r->hops[i].ttl;
			hops[i].answered = r->hops[i].answered;
			hops[i].from = r->hops[i].from;
			hops[i].reached = r->hops[i].reached;
			hops[i].inner_seen = r->hops[i].answered;
			hops[i].inner_saddr = r->hops[i].inner_saddr;
		}
		r->nat_hop = rp_nat_hop(hops, r->n_hops, laddr, r->ni.mapped_addr);
		if (r->nat_hop >= 0 && r->ni.behind_nat) {
			r->ni.nat_ttl = (uint8_t)(r->nat_hop + 1);
			r->ttl_err = 0;
		} else if (!r->ni.behind_nat) {
			r->ttl_err = -ENOENT;   /* no NAT: nothing to pass */
		} else if (!r->ttl_err) {
			r->ttl_err = -ENOENT;
		}
	}

	/* 4. allocation */
	if (o->samples && (ret = probe_sample_allocation(o, r, laddr, &so)) < 0) {
		if (th_on)
			pthread_join(th, NULL);
		return ret;
	}
	struct rp_port_sample ps[RP_PROBE_MAX_SAMPLES + 3];
	size_t nps = 0;
	for (unsigned i = 0; i < r->n_samples; i++)
		if (r->samples[i].ok && r->samples[i].mapped_addr == r->ni.mapped_addr)
			ps[nps++] = (struct rp_port_sample){ r->samples[i].t_mono_ns, r->samples[i].local_port,
							     r->samples[i].mapped_port };
	qsort(ps, nps, sizeof(ps[0]), cmp_sample);
	struct rp_alloc_opts ao = { .range_lo = o->range_lo, .range_hi = o->range_hi };
	if ((ret = rp_alloc_classify(ps, nps, &ao, &r->fit)) < 0) {
		if (th_on)
			pthread_join(th, NULL);
		return ret;
	}
	if (!r->ni.behind_nat) {
		r->fit.alloc = RP_ALLOC_PRESERVING;   /* no NAT: every port is its own */
	}
	rp_alloc_predict(&r->fit, r->ni.mapping, lport, r->ni.mapped_port, r->horizon_s, 0, &r->pred);
	r->ni.alloc = r->fit.alloc;
	r->ni.has_delta = r->fit.has_delta;
	r->ni.delta = r->fit.delta;
	r->ni.jitter = r->fit.jitter;
	memcpy(r->ni.predicted, r->pred.ports, sizeof(r->ni.predicted));
	r->ni.n_predicted = r->pred.n;
	r->ni.confidence = r->pred.confidence;

	if (th_on)
		pthread_join(th, NULL);
	r->filter_err = fj.err;
	r->ni.filtering = fj.err ? RP_FILTER_UNKNOWN : fj.out;
	r->duration_s = (double)(rp_clock_ns(CLOCK_MONOTONIC) - t_begin) / 1e9;
	return 0;
}
