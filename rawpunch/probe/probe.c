/* SPDX-License-Identifier: MIT */
#include "rawpunch/probe/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/guard.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/base/version.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"

extern char **environ;

static void sleep_until(uint64_t mono_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(mono_ns / 1000000000ull), .tv_nsec = (long)(mono_ns % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

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

/* ---------------------------------------------------------------- phase 2: nat_ttl */

static int ttl_search(const struct rp_probe_opts *o, struct rp_probe_report *r, const struct rp_route *rt,
		      uint32_t laddr, uint16_t lport)
{
	uint16_t dport = ntohs(o->stun.sin_port) == RP_PROBE_TTL_DPORT ? RP_PROBE_TTL_DPORT + 1 : RP_PROBE_TTL_DPORT;
	struct rp_cap *cap = NULL;
	struct rp_craft *cr = NULL;
	struct rp_guard *g = NULL;
	char err[256];
	int ret;
	uint32_t isn;
	struct rp_flow fl = { .laddr = laddr, .lport = lport, .raddr = o->stun.sin_addr.s_addr,
			      .rport_lo = dport, .rport_hi = dport };
	/* Capture with our address and port as wildcards: a NAT that leaves ICMP quotes untranslated
	 * hands back a quote whose source is its public address and port. The sequence tag tells ours. */
	struct rp_flow cf = fl;
	cf.laddr = 0;
	cf.lport = 0;
	char expr[2048];
	if ((ret = rp_filter_build(&cf, 1, expr, sizeof(expr))) < 0)
		return ret;
	struct rp_cap_opts co = { .iface = rt->ifname, .filter = expr, .dir = RP_CAP_IN };
	if ((ret = rp_cap_open(&co, &cap, err, sizeof(err))) < 0)
		return ret;
	if ((ret = rp_craft_open(&cr, 0, err, sizeof(err))) < 0)
		goto out;
	/* If a SYN gets as far as the server, its SYN-ACK must not draw a kernel RST that would tear
	 * the NAT's fresh mapping down (conntrack CLOSE). Best effort: without it the search still works. */
	if (rp_guard_open(&g, err, sizeof(err)) == 0)
		rp_guard_add(g, &fl);
	if (getrandom(&isn, sizeof(isn), 0) != sizeof(isn))
		isn = (uint32_t)rp_clock_ns(CLOCK_MONOTONIC);
	isn &= ~0xFFu;   /* the low byte carries the TTL: the quote tells which probe it was */
	int wait_ms = o->ttl_wait_ms > 0 ? o->ttl_wait_ms : 300;
	unsigned ttl_max = o->ttl_max > RP_PROBE_MAX_HOPS ? RP_PROBE_MAX_HOPS : o->ttl_max;
	struct rp_hop hops[RP_PROBE_MAX_HOPS];
	memset(hops, 0, sizeof(hops));
	ret = -ENOENT;
	for (unsigned ttl = 1; ttl <= ttl_max; ttl++) {
		struct rp_probe_hop *h = &r->hops[r->n_hops++];
		memset(h, 0, sizeof(*h));
		h->ttl = (uint8_t)ttl;
		hops[ttl - 1].ttl = (uint8_t)ttl;
		struct rp_seg s = { .saddr = laddr, .daddr = o->stun.sin_addr.s_addr, .sport = lport,
				    .dport = dport, .seq = isn | ttl, .flags = RP_TH_SYN,
				    .win = 64240, .ttl = (uint8_t)ttl, .ip_id = (uint16_t)(0x7200 | ttl),
				    .opts = { .has_mss = true, .mss = 1460, .sack_perm = true,
					      .has_wscale = true, .wscale = 7 } };
		uint64_t t0 = rp_clock_ns(CLOCK_MONOTONIC), deadline = t0 + (uint64_t)wait_ms * 1000000ull;
		int sr = rp_craft_send(cr, &s);
		if (sr < 0) {
			ret = sr;
			goto out;
		}
		bool got = false;
		while (!got) {
			uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
			if (now >= deadline)
				break;
			int w = rp_cap_wait(cap, (int)((deadline - now) / 1000000ull) + 1);
			if (w < 0 && w != -EINTR) {
				ret = w;
				goto out;
			}
			struct rp_event ev;
			while (rp_cap_next(cap, &ev) == 1) {
				unsigned which;
				if (ev.kind == RP_EV_ICMP_ERR && ev.tuple.daddr == o->stun.sin_addr.s_addr &&
				    ev.tuple.dport == dport && (ev.seq & ~0xFFu) == isn) {
					which = ev.seq & 0xFFu;
					if (which < 1 || which > ttl)
						continue;
					struct rp_probe_hop *hh = &r->hops[which - 1];
					if (hh->answered)
						continue;
					hh->answered = true;
					hh->from = ev.ip_src;
					hh->icmp_type = ev.icmp_type;
					hh->icmp_code = ev.icmp_code;
					hh->rtt_ms = (double)(rp_clock_ns(CLOCK_MONOTONIC) - t0) / 1e6;
					hh->inner_saddr = ev.tuple.saddr;
					hops[which - 1].answered = true;
					hops[which - 1].from = ev.ip_src;
					hops[which - 1].inner_seen = true;
					hops[which - 1].inner_saddr = ev.tuple.saddr;
					if (which == ttl)
						got = true;
				} else if (ev.kind == RP_EV_TCP && ev.tuple.saddr == o->stun.sin_addr.s_addr &&
					   ev.tuple.dport == lport && (ev.flags & (RP_TH_SYN | RP_TH_RST)) &&
					   ev.ack == (isn | ttl) + 1) {
					h->reached = true;
					hops[ttl - 1].reached = true;
					got = true;
				}
			}
		}
		if (h->reached)
			break;
		/* Decide as soon as the hops tell. With r->ni.mapped_addr unknown yet (the STUN phase
		 * comes later), only the address rule applies here; the rest is re-checked afterwards. */
		int nh = rp_nat_hop(hops, ttl, laddr, 0);
		if (nh >= 0) {
			ret = 0;
			break;
		}
	}
	if (r->n_hops && r->hops[r->n_hops - 1].reached) {
		/* Be polite to the server: the half-open connection our SYN made there. */
		struct rp_seg rst = { .saddr = laddr, .daddr = o->stun.sin_addr.s_addr, .sport = lport,
				      .dport = dport, .seq = (isn | r->hops[r->n_hops - 1].ttl) + 1,
				      .flags = RP_TH_RST };
		rp_craft_send(cr, &rst);
	}
out:
	rp_guard_close(g);
	if (cr)
		rp_craft_close(cr);
	rp_cap_close(cap);
	return ret;
}

/* ---------------------------------------------------------------- phases 3 and 4 */

static void sample_from(struct rp_probe_sample *ps, enum rp_probe_kind kind, const struct rp_stun_result *res,
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

/* N flows from fresh ports, one every interval, in flight together. */
static int sample_allocation(const struct rp_probe_opts *o, struct rp_probe_report *r, uint32_t laddr,
			     const struct rp_stun_opts *base)
{
	unsigned n = o->samples > RP_PROBE_MAX_SAMPLES ? RP_PROBE_MAX_SAMPLES : o->samples;
	int interval = o->interval_ms >= 0 ? o->interval_ms : 40;
	struct rp_stun_conn *c = calloc(n, sizeof(*c));
	bool *busy = calloc(n, sizeof(bool));
	struct pollfd *pf = calloc(n, sizeof(*pf));
	int *map = calloc(n, sizeof(int));
	if (!c || !busy || !pf || !map) {
		free(c); free(busy); free(pf); free(map);
		return -ENOMEM;
	}
	struct rp_stun_opts so = *base;
	so.local_addr = laddr;
	so.local_port = 0;
	so.close = RP_STUN_CLOSE_RST;
	unsigned started = 0, finished = 0, first = r->n_samples;
	uint64_t t0 = rp_clock_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < n; i++)
		c[i].fd = -1;
	while (finished < n) {
		uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
		while (started < n && now >= t0 + (uint64_t)started * (uint64_t)interval * 1000000ull) {
			unsigned i = started++;
			int e = rp_stun_conn_start(&c[i], &o->stun, &so);
			if (e) {
				struct rp_stun_result empty = { .server = o->stun };
				sample_from(&r->samples[first + i], RP_SAMPLE_ALLOC, &empty, e, 0);
				r->samples[first + i].t_mono_ns = now;
				finished++;
			} else {
				busy[i] = true;
			}
			now = rp_clock_ns(CLOCK_MONOTONIC);
		}
		unsigned np = 0;
		for (unsigned i = 0; i < started; i++)
			if (busy[i]) {
				pf[np] = (struct pollfd){ .fd = c[i].fd, .events = rp_stun_conn_events(&c[i]) };
				map[np++] = (int)i;
			}
		int wait = 50;
		if (started < n) {
			uint64_t next = t0 + (uint64_t)started * (uint64_t)interval * 1000000ull;
			wait = next > now ? (int)((next - now) / 1000000ull) : 0;
		}
		if (np)
			poll(pf, np, wait);
		else if (wait)
			sleep_until(now + (uint64_t)wait * 1000000ull);
		for (unsigned k = 0; k < np; k++) {
			unsigned i = (unsigned)map[k];
			int s = rp_stun_conn_step(&c[i]);
			if (s == 0)
				continue;
			sample_from(&r->samples[first + i], RP_SAMPLE_ALLOC, &c[i].res, s < 0 ? s : 0, 0);
			rp_stun_conn_close(&c[i]);
			busy[i] = false;
			finished++;
		}
	}
	r->n_samples += n;
	free(c); free(busy); free(pf); free(map);
	return 0;
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
	r->ttl_err = o->ttl_max ? ttl_search(o, r, &rt, laddr, lport) : -ECANCELED;

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
	sample_from(&r->samples[r->n_samples++], RP_SAMPLE_TEST1, &t1, 0, lport);
	memcpy(r->server_software, t1.software, sizeof(r->server_software));
	r->ni.mapped_addr = t1.mapped.sin_addr.s_addr;
	r->ni.mapped_port = ntohs(t1.mapped.sin_port);
	r->has_other = t1.has_other;
	r->other = t1.other;
	if (t1.has_other && t1.other.sin_addr.s_addr != o->stun.sin_addr.s_addr) {
		struct sockaddr_in a2 = t1.other;
		a2.sin_port = o->stun.sin_port;
		e2 = rp_stun_binding(&a2, &so, &t2);
		sample_from(&r->samples[r->n_samples++], RP_SAMPLE_TEST2, &t2, e2, lport);
		if (!r->samples[r->n_samples - 1].ok)
			e2 = r->samples[r->n_samples - 1].err;
		if (t1.other.sin_port != o->stun.sin_port) {
			e3 = rp_stun_binding(&t1.other, &so, &t3);
			sample_from(&r->samples[r->n_samples++], RP_SAMPLE_TEST3, &t3, e3, lport);
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
	if (o->samples && (ret = sample_allocation(o, r, laddr, &so)) < 0) {
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

/* ---------------------------------------------------------------- JSON */

static struct json_object *ep_json(uint32_t addr, uint16_t port)
{
	char ip[INET_ADDRSTRLEN], buf[INET_ADDRSTRLEN + 8];
	struct in_addr a = { .s_addr = addr };
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	snprintf(buf, sizeof(buf), "%s:%u", ip, (unsigned)port);
	return json_object_new_string(buf);
}

static struct json_object *err_json(int e)
{
	return e ? json_object_new_string(strerror(-e)) : NULL;
}

static const char *kind_str(enum rp_probe_kind k)
{
	switch (k) {
	case RP_SAMPLE_TEST1: return "test1";
	case RP_SAMPLE_TEST2: return "test2";
	case RP_SAMPLE_TEST3: return "test3";
	default: return "alloc";
	}
}

static uint64_t first_mono(const struct rp_probe_report *r)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < r->n_samples; i++)
		if (r->samples[i].t_mono_ns && (!t || r->samples[i].t_mono_ns < t))
			t = r->samples[i].t_mono_ns;
	return t;
}

struct json_object *rp_probe_to_json(const struct rp_probe_report *r)
{
	struct json_object *o = rp_natinfo_to_json(&r->ni);
	if (!o)
		return NULL;
	json_object_object_add(o, "stun", ep_json(r->stun.sin_addr.s_addr, ntohs(r->stun.sin_port)));
	json_object_object_add(o, "other_address", r->has_other ? ep_json(r->other.sin_addr.s_addr,
									  ntohs(r->other.sin_port)) : NULL);
	json_object_object_add(o, "server_software", r->server_software[0] ?
				json_object_new_string(r->server_software) : NULL);
	json_object_object_add(o, "mapping_error", err_json(r->mapping_err));
	json_object_object_add(o, "filtering_error", err_json(r->filter_err));
	json_object_object_add(o, "nat_ttl_error", err_json(r->ni.nat_ttl ? 0 : r->ttl_err));
	uint64_t t0 = first_mono(r);
	struct json_object *arr = json_object_new_array();
	for (unsigned i = 0; arr && i < r->n_samples; i++) {
		const struct rp_probe_sample *s = &r->samples[i];
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "kind", json_object_new_string(kind_str(s->kind)));
		json_object_object_add(e, "t", json_object_new_double((double)s->t_real_ns / 1e9));
		json_object_object_add(e, "t_rel", json_object_new_double(
			s->t_mono_ns >= t0 ? (double)(s->t_mono_ns - t0) / 1e9 : 0.0));
		json_object_object_add(e, "server", ep_json(s->server.sin_addr.s_addr, ntohs(s->server.sin_port)));
		json_object_object_add(e, "local_port", json_object_new_int(s->local_port));
		json_object_object_add(e, "mapped", s->ok ? ep_json(s->mapped_addr, s->mapped_port) : NULL);
		json_object_object_add(e, "rtt_ms", json_object_new_double(s->rtt_ms));
		if (!s->ok)
			json_object_object_add(e, "error", json_object_new_string(strerror(s->err < 0 ? -s->err : EIO)));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "samples", arr);
	arr = json_object_new_array();
	for (unsigned i = 0; arr && i < r->n_hops; i++) {
		const struct rp_probe_hop *h = &r->hops[i];
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "ttl", json_object_new_int(h->ttl));
		if (h->answered) {
			struct in_addr a = { .s_addr = h->from };
			char ip[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &a, ip, sizeof(ip));
			json_object_object_add(e, "from", json_object_new_string(ip));
			json_object_object_add(e, "icmp", json_object_new_int(h->icmp_type << 8 | h->icmp_code));
			json_object_object_add(e, "private", json_object_new_boolean(rp_ipv4_is_private(h->from)));
			a.s_addr = h->inner_saddr;
			inet_ntop(AF_INET, &a, ip, sizeof(ip));
			json_object_object_add(e, "quoted_src", json_object_new_string(ip));
			json_object_object_add(e, "rtt_ms", json_object_new_double(h->rtt_ms));
		} else {
			json_object_object_add(e, "from", NULL);
		}
		if (h->reached)
			json_object_object_add(e, "reached", json_object_new_boolean(true));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "hops", arr);
	struct json_object *fit = json_object_new_object();
	json_object_object_add(fit, "samples", json_object_new_int((int)r->fit.n));
	json_object_object_add(fit, "preserved", json_object_new_int((int)r->fit.n_preserved));
	json_object_object_add(fit, "steps", json_object_new_int((int)r->fit.n_steps));
	json_object_object_add(fit, "steps_fitted", json_object_new_int((int)r->fit.n_fit));
	json_object_object_add(fit, "wraps", json_object_new_int((int)r->fit.n_wraps));
	json_object_object_add(fit, "foreign_flows", json_object_new_int((int)r->fit.n_foreign));
	json_object_object_add(fit, "foreign_rate", json_object_new_double(r->fit.foreign_rate));
	json_object_object_add(fit, "foreign_rate_hi", json_object_new_double(r->fit.foreign_rate_hi));
	json_object_object_add(fit, "span_s", json_object_new_double(r->fit.span_s));
	char range[32];
	snprintf(range, sizeof(range), "%u-%u", (unsigned)r->fit.range_lo, (unsigned)r->fit.range_hi);
	json_object_object_add(fit, "range", json_object_new_string(range));
	json_object_object_add(o, "fit", fit);
	struct json_object *win = json_object_new_object();
	json_object_object_add(win, "horizon_s", json_object_new_double(r->horizon_s));
	json_object_object_add(win, "k_max", json_object_new_int((int)r->pred.k_max));
	json_object_object_add(win, "expected_foreign", json_object_new_double(r->pred.expected_foreign));
	json_object_object_add(o, "window", win);
	json_object_object_add(o, "duration_s", json_object_new_double(r->duration_s));
	return o;
}

/* ---------------------------------------------------------------- plot */

int rp_probe_plot(const struct rp_probe_report *r, const char *path)
{
	const char *ext = path ? strrchr(path, '.') : NULL;
	const char *term;
	if (!ext)
		return -EINVAL;
	if (!strcasecmp(ext, ".png"))
		term = "pngcairo size 960,600 font 'sans,10'";
	else if (!strcasecmp(ext, ".svg"))
		term = "svg size 960,600 dynamic font 'sans,10'";
	else
		return -EINVAL;
	if (strchr(path, '\'') || strchr(path, '\n'))
		return -EINVAL;
	/* No temporary files: data and script go to gnuplot's stdin in one piece (the data as an inline
	 * datablock $D), so neither Ctrl-C nor a crash can leave anything behind in /tmp. */
	char *buf = NULL;
	size_t blen = 0;
	FILE *s = open_memstream(&buf, &blen), *d = s;
	if (!s)
		return -ENOMEM;
	fprintf(d, "$D << EOD\n");
	uint64_t t0 = first_mono(r), tl = 0;
	/* blocks: 0 mapping tests, 1 allocation samples, 2 predicted window */
	for (int blk = 0; blk < 2; blk++) {
		unsigned rows = 0;
		for (unsigned i = 0; i < r->n_samples; i++) {
			const struct rp_probe_sample *x = &r->samples[i];
			if (!x->ok || (blk == 0) != (x->kind != RP_SAMPLE_ALLOC))
				continue;
			fprintf(d, "%.6f %u %u\n", (double)(x->t_mono_ns - t0) / 1e9, x->mapped_port, x->local_port);
			rows++;
			if (x->t_mono_ns > tl)
				tl = x->t_mono_ns;
		}
		if (!rows)
			fprintf(d, "0 -1 -1\n");   /* keeps an empty block plottable, off the scale */
		fprintf(d, "\n\n");
	}
	double tlast = tl > t0 ? (double)(tl - t0) / 1e9 : 0, th = tlast + r->horizon_s;
	for (unsigned i = 0; i < r->pred.n; i++)
		fprintf(d, "%.6f %u\n", th, r->pred.ports[i]);
	if (!r->pred.n)
		fprintf(d, "0 -1\n");
	fprintf(d, "EOD\n");
	unsigned lo = 65535, hi = 0;
	for (unsigned i = 0; i < r->n_samples; i++)
		if (r->samples[i].ok) {
			unsigned p = r->samples[i].mapped_port, q = r->samples[i].local_port;
			lo = p < lo ? p : lo;
			hi = p > hi ? p : hi;
			if (r->samples[i].kind == RP_SAMPLE_ALLOC && r->ni.alloc == RP_ALLOC_PRESERVING) {
				lo = q < lo ? q : lo;
				hi = q > hi ? q : hi;
			}
		}
	for (unsigned i = 0; i < r->pred.n; i++) {
		lo = r->pred.ports[i] < lo ? r->pred.ports[i] : lo;
		hi = r->pred.ports[i] > hi ? r->pred.ports[i] : hi;
	}
	if (lo > hi)
		lo = 0, hi = 65535;
	unsigned pad = (hi - lo) / 10 + 2;
	char title[256], sub[256];
	if (r->ni.has_delta)
		snprintf(title, sizeof(title), "NAT allocation: %s, delta %d (jitter %.2f), mapping %s, filtering %s",
			 rp_alloc_str(r->ni.alloc), r->ni.delta, r->ni.jitter, rp_mapping_str(r->ni.mapping),
			 rp_filter_str(r->ni.filtering));
	else
		snprintf(title, sizeof(title), "NAT allocation: %s, mapping %s, filtering %s",
			 rp_alloc_str(r->ni.alloc), rp_mapping_str(r->ni.mapping), rp_filter_str(r->ni.filtering));
	snprintf(sub, sizeof(sub), "predicted %u port(s) for a new flow %.2f s after the last sample, confidence %.2f",
		 r->pred.n, r->horizon_s, r->pred.confidence);
	fprintf(s, "set terminal %s\nset output '%s'\n", term, path);
	fprintf(s, "set title \"%s\\n{/*0.9 %s}\" enhanced\n", title, sub);
	fprintf(s, "set xlabel 'time since the first flow (s)'\nset ylabel 'external port'\n");
	fprintf(s, "set grid\nset key outside bottom center horizontal\nset format y '%%.0f'\n");
	fprintf(s, "set yrange [%u:%u]\nset xrange [-0.02:%.6f]\n", lo > pad ? lo - pad : 0,
		hi + pad > 65535 ? 65535 : hi + pad, th + 0.1 * (th > 0 ? th : 1));
	if (r->pred.n)
		fprintf(s, "set object 1 rect from %.6f,%u to %.6f,%u fc rgb '#ffd0a0' fs transparent solid 0.4 noborder behind\n",
			tlast, r->pred.ports[0] < r->pred.ports[r->pred.n - 1] ? r->pred.ports[0] : r->pred.ports[r->pred.n - 1],
			th, r->pred.ports[0] < r->pred.ports[r->pred.n - 1] ? r->pred.ports[r->pred.n - 1] : r->pred.ports[0]);
	fprintf(s, "plot $D index 1 using 1:2 with linespoints pt 7 ps 1.2 lc rgb '#1f77b4' title 'external port (new flows)', \\\n"
		   "     $D index 1 using 1:(%d ? $3 : 1/0) with points pt 2 ps 1.6 lc rgb '#7f7f7f' title 'local port (on a dot: preserved)', \\\n"
		   "     $D index 0 using 1:2 with points pt 5 ps 1.4 lc rgb '#2ca02c' title 'RFC 5780 tests (punch port)', \\\n"
		   "     $D index 2 using 1:2 with points pt 6 ps 1.0 lc rgb '#d62728' title 'predicted window'\n",
		r->ni.alloc == RP_ALLOC_PRESERVING);
	if (fclose(s)) {
		free(buf);
		return -ENOMEM;
	}
	/* a socket, not a pipe: send(MSG_NOSIGNAL) gets EPIPE instead of killing us if gnuplot dies early */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = -errno;
		free(buf);
		return e;
	}
	pid_t pid;
	char *argv[] = { "gnuplot", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int ret = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (ret) {
		close(sv[0]);
		free(buf);
		return ret == ENOENT ? -ENOENT : -ret;
	}
	/* if gnuplot goes away early (EPIPE) or stalls, its exit status tells */
	(void)rp_io_write_all(sv[0], buf, blen, rp_mono_ns() + 30000000000ull);
	close(sv[0]);
	free(buf);
	int st = 0;
	pid_t w;
	while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (w < 0)
		return -errno;             /* e.g. ECHILD with SIGCHLD ignored: the outcome is unknown */
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}
