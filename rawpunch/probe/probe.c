/* SPDX-License-Identifier: MIT */
/* The NAT probe, rp_probe_run() (see probe.h): the phases, overlapped, and what they measured turned
 * into the natinfo. Phase 1 (filtering) runs on a thread of its own, phase 2 (probe-ttl.c) on another
 * beside phases 3 (the RFC 5780 mapping tests) and 4 (the allocation samples), whose STUN flows run
 * together in probe-alloc.c's event loop; nat_ttl's confirmation (probe-confirm.c) beside tests 2..4
 * on a third where test 1 found the punch port kept, else after them;
 * the report's JSON and plot are in probe-json.c and probe-plot.c. */
#include "rawpunch/probe/probe-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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

struct rp_stun_opts probe_stun_opts(const struct rp_probe_opts *o, uint32_t laddr, uint16_t lport, char *sw,
				    size_t cap)
{
	snprintf(sw, cap, "rawpunch %s", RP_VERSION);
	return (struct rp_stun_opts){ .local_addr = laddr, .local_port = lport,
				      .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 3000,
				      .software = o->software ? o->software : sw, .close = RP_STUN_CLOSE_FIN };
}

static int cmp_sample(const void *a, const void *b)
{
	const struct rp_port_sample *x = a, *y = b;
	return x->t_ns < y->t_ns ? -1 : x->t_ns > y->t_ns;
}

/* ---------------------------------------------------------------- phase 2 beside the tests (thread) */

/* The TTL search runs beside the STUN flows: they start once its SYNs have left, so the flow those
 * make on the NAT comes before theirs, as when the search ran first. */
struct ttl_job {
	const struct rp_probe_opts *o;
	struct rp_probe_report *r;
	const struct rp_route *rt;
	uint32_t laddr;
	uint16_t lport;
	int err;
	bool sent, done, on;
	atomic_bool enough;              /* the STUN flows (or test 1) are done: the search need not wait longer */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
};

/* The search's steps (probe_ttl_search's step): its SYNs left; r->hops final with its result err
 * (before its closes) */
static void ttl_step(void *arg, bool final, int err)
{
	struct ttl_job *j = arg;
	pthread_mutex_lock(&j->mu);
	j->sent = true;
	if (final) {
		j->done = true;
		j->err = err;
	}
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

static void *ttl_thread(void *arg)
{
	struct ttl_job *j = arg;
	int e = probe_ttl_search(j->o, j->r, j->rt, j->laddr, j->lport, ttl_step, j, &j->enough);
	ttl_step(j, true, e);   /* (a search that failed before sending: nothing to wait for) */
	return NULL;
}

/* Start the search and return once its SYNs have left (or it ended); without a thread it runs
 * here, to the end. */
static void ttl_start(struct ttl_job *j, const struct rp_probe_opts *o, struct rp_probe_report *r,
		      const struct rp_route *rt, uint32_t laddr, uint16_t lport)
{
	*j = (struct ttl_job){ .o = o, .r = r, .rt = rt, .laddr = laddr, .lport = lport, .err = -ECANCELED };
	if (!o->ttl_max)
		return;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->on = pthread_create(&j->th, NULL, ttl_thread, j) == 0;
	if (!j->on) {
		j->err = probe_ttl_search(o, r, rt, laddr, lport, NULL, NULL, NULL);
		return;
	}
	pthread_mutex_lock(&j->mu);
	while (!j->sent)
		pthread_cond_wait(&j->cv, &j->mu);
	pthread_mutex_unlock(&j->mu);
}

/* The search's end, from another thread than the caller's (the early confirmation): r->hops are
 * final; its -errno. Called once test 1 is done at least (two round trips to the server since the
 * search's SYNs left): a hop before the server that has not answered by then stays silent (its ICMP
 * rate limit spent). */
static int ttl_wait(struct ttl_job *j)
{
	atomic_store(&j->enough, true);
	if (!j->on)
		return j->err;
	pthread_mutex_lock(&j->mu);
	while (!j->done)
		pthread_cond_wait(&j->cv, &j->mu);
	int e = j->err;
	pthread_mutex_unlock(&j->mu);
	return e;
}

/* The search's end: r->hops are the caller's again; r->ttl_err. Called once the STUN flows are done
 * (see ttl_wait). */
static void ttl_join(struct ttl_job *j)
{
	atomic_store(&j->enough, true);
	if (j->on) {
		pthread_join(j->th, NULL);
		j->on = false;
	}
	if (j->o && j->o->ttl_max) {
		pthread_mutex_destroy(&j->mu);
		pthread_cond_destroy(&j->cv);
	}
	j->r->ttl_err = j->err;
}

/* ---------------------------------------------------------------- nat_ttl's confirmation, early */

/* The confirmation's set-up: from the punch port laddr:lport, whose new flows get public_port on the
 * outermost NAT, with what the hops show (g) and test 1's connect time (rtt_ms); pc's capture and
 * crafter stay as they are. false, with *err, when there is no TTL to test. */
static bool confirm_prep(const struct rp_probe_opts *o, const struct rp_route *rt, const struct rp_ttl_guess *g,
			 uint32_t laddr, uint16_t lport, uint16_t public_port, double rtt_ms, struct probe_confirm *pc,
			 int *err)
{
	struct rp_cap *kcap = pc->cap;   /* opened ahead (probe_confirm_open), or NULL */
	struct rp_craft *kcr = pc->cr;
	memset(pc, 0, sizeof(*pc));
	pc->cap = kcap;
	pc->cr = kcr;
	pc->ifname = rt->ifname;
	pc->laddr = laddr;
	pc->lport = lport;
	pc->public_port = public_port;
	pc->o = o;
	unsigned ttl_max = o->ttl_max > RP_PROBE_MAX_HOPS ? RP_PROBE_MAX_HOPS : o->ttl_max;
	/* a SYN that reaches the server draws its RST, which closes the mapping it was to test */
	pc->max_ttl = g->server_hops > 1 && o->connect_back_addr == o->stun.sin_addr.s_addr ?
		      (unsigned)g->server_hops - 1 : ttl_max;
	/* The hops' candidate first when they showed the NAT by its behaviour (its passing settles it),
	 * else the TTL below the candidate (a guess needs it to fail, and the one above to pass) */
	pc->first_from_hops = g->behavioural && g->nat_hop >= 1;
	pc->first = g->nat_hop >= 1 ? (unsigned)g->nat_hop + pc->first_from_hops : 1;
	if (pc->first > pc->max_ttl) {
		pc->first = pc->max_ttl;
		pc->first_from_hops = false;
	}
	/* the server's connect timeout: about 4 RTTs (test 1's connect), within 150 ms .. the filter's */
	int cap = o->filter_timeout_ms > 0 ? o->filter_timeout_ms : 1000;
	pc->ms = (int)(4 * rtt_ms) + 100;
	pc->ms = pc->ms < 150 ? 150 : pc->ms > cap ? (cap < 150 ? 150 : cap) : pc->ms;
	if (pc->first < 1) {
		*err = -ENOENT;
		pc->o = NULL;
		return false;
	}
	return true;
}

/* What the hops show (rp_nat_ttl_guess), once the search ended and the public address is known. */
static void hops_guess(const struct rp_probe_report *r, uint32_t laddr, uint16_t lport, uint32_t maddr,
		       uint16_t mport, struct rp_ttl_guess *g)
{
	struct rp_hop hops[RP_PROBE_MAX_HOPS];
	memset(hops, 0, sizeof(hops));
	for (unsigned i = 0; i < r->n_hops; i++) {
		const struct rp_probe_hop *h = &r->hops[i];
		hops[i] = (struct rp_hop){ .ttl = h->ttl, .answered = h->answered, .from = h->from,
					   .reached = h->reached, .inner_seen = h->answered,
					   .inner_saddr = h->inner_saddr, .inner_sport = h->inner_sport, .n_rr = h->n_rr };
		memcpy(hops[i].rr, h->rr, sizeof(h->rr));
	}
	rp_nat_ttl_guess(hops, r->n_hops, laddr, lport, maddr, mport, g);
}

/* Where test 1 found the punch port kept, the public port of its new flows is (almost surely) the
 * punch port itself: the confirmation starts then, on a thread of its own beside tests 2..4, once the
 * last sample's SYN has left (its connections are no flows among theirs) and the TTL search ended.
 * The thread starts once the search's SYNs have left and opens the capture and the crafter first,
 * beside test 1 (the kernel's packet ring takes ~10 ms to set up and as long to close): test 1's
 * end tells it to go or to close them. The mapping tests' verdict
 * decides at the end whether it counts (connect_back_port() is the port it used); otherwise it is
 * run again after them, as without it. */
enum early_state { EARLY_WAIT = 0, EARLY_GO, EARLY_CANCEL };
struct early {
	const struct rp_probe_opts *o;
	const struct rp_route *rt;
	struct rp_probe_report *r;       /* read: hops (once the search ended) */
	struct ttl_job *tj;
	uint32_t laddr, maddr;
	uint16_t lport;
	double rtt_ms;                   /* test 1's connect */
	uint64_t not_before_ns;          /* the last sample's start (CLOCK_MONOTONIC) */
	struct rp_ttl_guess guess;
	struct probe_confirm pc;
	int err;                         /* confirm_err: 0, or why it did not run or found nothing */
	bool started;                    /* it went (pc and err hold what it found) */
	enum early_state state;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool on;                         /* the thread is still to be joined */
};

static void *early_thread(void *arg)
{
	struct early *e = arg;
	e->pc.o = e->o;
	e->pc.ifname = e->rt->ifname;
	e->pc.laddr = e->laddr;
	e->pc.lport = e->lport;
	(void)probe_confirm_open(&e->pc);   /* failed: probe_confirm_run tries again */
	pthread_mutex_lock(&e->mu);
	while (e->state == EARLY_WAIT)
		pthread_cond_wait(&e->cv, &e->mu);
	bool go = e->state == EARLY_GO;
	pthread_mutex_unlock(&e->mu);
	if (!go) {
		probe_confirm_close(&e->pc);
		return NULL;
	}
	uint64_t nb = e->not_before_ns + 1000000ull;
	struct timespec ts = { .tv_sec = (time_t)(nb / 1000000000ull), .tv_nsec = (long)(nb % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	int te = ttl_wait(e->tj);
	memset(&e->guess, 0, sizeof(e->guess));
	e->guess.nat_hop = -ENOENT;
	hops_guess(e->r, e->laddr, e->lport, e->maddr, e->lport, &e->guess);
	e->err = te;
	if (!te && confirm_prep(e->o, e->rt, &e->guess, e->laddr, e->lport, e->lport, e->rtt_ms, &e->pc, &e->err)) {
		probe_confirm_run(&e->pc);
		e->err = e->pc.err;
	}
	probe_confirm_close(&e->pc);
	return NULL;
}

/* As test 1 starts: the thread, where a confirmation may come (a server, the TTL search). */
static void early_init(struct early *e)
{
	const struct rp_probe_opts *o = e->o;
	if (!o->connect_back || !o->connect_back_addr || !o->ttl_max)
		return;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->on = pthread_create(&e->th, NULL, early_thread, e) == 0;
	if (!e->on) {
		pthread_mutex_destroy(&e->mu);
		pthread_cond_destroy(&e->cv);
	}
}

static void early_tell(struct early *e, enum early_state st)
{
	pthread_mutex_lock(&e->mu);
	if (e->state == EARLY_WAIT)
		e->state = st;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

/* From the flows' hook as test 1 ends: go if the punch port was kept (behind a NAT), else close. */
static void early_decide(struct early *e, const struct rp_stun_result *t1)
{
	if (!e->on)
		return;
	if (!t1->has_mapped || ntohs(t1->mapped.sin_port) != e->lport || t1->mapped.sin_addr.s_addr == e->laddr) {
		early_tell(e, EARLY_CANCEL);   /* no NAT, or the port not kept: after the tests, if at all */
		return;
	}
	e->maddr = t1->mapped.sin_addr.s_addr;
	e->rtt_ms = (double)t1->connect_ns / 1e6;
	e->started = true;
	early_tell(e, EARLY_GO);
}

static void early_join(struct early *e)
{
	if (!e->on)
		return;
	early_tell(e, EARLY_CANCEL);   /* (no test 1: nothing was decided) */
	pthread_join(e->th, NULL);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	e->on = false;
}

/* ---------------------------------------------------------------- phases 3 and 4: the STUN flows */

/* The flows: test 1 (the primary address and port), tests 2 (the alternate address), 3 (the
 * alternate address and port) and 4 (the primary address at the alternate port), all from the
 * punch port, then the allocation samples from fresh ports. Test 1 and the samples start at once
 * (a sample every interval); tests 2..4 wait for test 1's OTHER-ADDRESS and then go together. */
enum { F_T1, F_T2, F_T3, F_T4, F_ALLOC };

static int flows_after(struct probe_flow *f, unsigned n, unsigned i, void *arg)
{
	struct early *e = arg;
	const struct rp_probe_opts *o = e->o;
	(void)n;
	if (i != F_T1)
		return 0;
	const struct rp_stun_result *t1 = &f[F_T1].res;
	if (f[F_T1].err || !t1->has_mapped)
		return 1;   /* no test 1: the probe ends here */
	uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
	if (t1->has_other && t1->other.sin_addr.s_addr != o->stun.sin_addr.s_addr) {
		f[F_T2].to = t1->other;
		f[F_T2].to.sin_port = o->stun.sin_port;
		f[F_T2].start_ns = now;
		if (t1->other.sin_port != o->stun.sin_port) {
			f[F_T3].to = t1->other;
			f[F_T4].to = o->stun;   /* the primary address at the alternate port */
			f[F_T4].to.sin_port = t1->other.sin_port;
			f[F_T3].start_ns = f[F_T4].start_ns = now;
		}
	}
	for (unsigned k = F_T2; k <= F_T4; k++)
		if (!f[k].start_ns)
			f[k].state = PROBE_FLOW_SKIP;
	early_decide(e, t1);   /* (the tests' SYNs leave as the hook returns, before its flows) */
	return 0;
}

/* Run the flows; r->samples: test 1, the tests that ran, then the allocation samples. 0, test 1's
 * -errno (r->samples empty, *t1 what it got), or -ENOMEM. */
static int stun_flows(const struct rp_probe_opts *o, const struct rp_stun_opts *so, struct rp_probe_report *r,
		      struct early *e, struct rp_stun_result *t1, int errs[4], struct rp_stun_result tres[4])
{
	unsigned ns = o->samples > RP_PROBE_MAX_SAMPLES ? RP_PROBE_MAX_SAMPLES : o->samples;
	int interval = o->interval_ms >= 0 ? o->interval_ms : 40;
	struct probe_flow *f = calloc(F_ALLOC + ns, sizeof(*f));
	if (!f)
		return -ENOMEM;
	uint64_t t0 = rp_clock_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < F_ALLOC + ns; i++) {
		f[i].so = *so;
		if (i >= F_ALLOC) {
			f[i].to = o->stun;
			f[i].so.local_port = 0;
			f[i].so.close = RP_STUN_CLOSE_RST;
			f[i].optional = true;   /* a straggler is a gap in the series, not a wait */
			f[i].start_ns = t0 + (uint64_t)(i - F_ALLOC) * (uint64_t)interval * 1000000ull;
		}
	}
	f[F_T1].to = o->stun;
	f[F_T1].start_ns = t0;
	e->not_before_ns = ns ? f[F_ALLOC + ns - 1].start_ns : t0;
	int ret = probe_flows_run(f, F_ALLOC + ns, flows_after, e);
	if (ret) {
		free(f);
		return ret;
	}
	*t1 = f[F_T1].res;
	r->n_samples = 0;
	if (f[F_T1].err || !t1->has_mapped) {
		int err = f[F_T1].err ? f[F_T1].err : t1->error_code ? -EPROTO : -EBADMSG;
		free(f);
		return err;
	}
	static const enum rp_probe_kind kind[F_ALLOC] = { RP_SAMPLE_TEST1, RP_SAMPLE_TEST2, RP_SAMPLE_TEST3,
							  RP_SAMPLE_TEST4 };
	for (unsigned i = 0; i < F_ALLOC + ns; i++) {
		if (i < F_ALLOC) {
			errs[i] = f[i].state == PROBE_FLOW_DONE ? f[i].err : -ENOTSUP;
			tres[i] = f[i].res;
		}
		if (f[i].state != PROBE_FLOW_DONE)
			continue;
		struct rp_probe_sample *ps = &r->samples[r->n_samples++];
		probe_sample_from(ps, i < F_ALLOC ? kind[i] : RP_SAMPLE_ALLOC, &f[i].res, f[i].err,
				  i < F_ALLOC ? so->local_port : 0);
		if (i < F_ALLOC && ps->ok)
			errs[i] = 0;
		else if (i < F_ALLOC)
			errs[i] = ps->err;
	}
	free(f);
	return 0;
}

/* Phase 3's verdict from tests 1..4: the mapping, and the public endpoints they saw. */
static void mapping_verdict(struct rp_probe_report *r, const struct rp_stun_result *t1,
			    const int errs[4], const struct rp_stun_result tres[4], struct rp_ep m[4], bool have[4])
{
	for (unsigned k = 0; k < 4; k++) {
		have[k] = !errs[k];
		m[k] = have[k] ? (struct rp_ep){ tres[k].mapped.sin_addr.s_addr, ntohs(tres[k].mapped.sin_port) }
			       : (struct rp_ep){ 0, 0 };
	}
	struct rp_ep local = { r->ni.local_addr, r->ni.local_port };
	r->ni.mapping = rp_mapping_classify4(&local, &m[0], have[1] ? &m[1] : NULL, have[2] ? &m[2] : NULL,
					     have[3] ? &m[3] : NULL, &r->ni.behind_nat);
	r->mapping_err = r->ni.mapping != RP_MAP_UNKNOWN ? 0 : !t1->has_other ? -ENOTSUP : errs[1] ? errs[1] : errs[2];
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

/* Confirm nat_ttl from outside, if the caller can and the public port is known: the early
 * confirmation's result (joined by now) where it used that port, else now. */
static void confirm(const struct rp_probe_opts *o, struct rp_probe_report *r, const struct rp_route *rt,
		    const struct rp_ep m[4], const bool have[4], struct early *e, struct probe_confirm *pc)
{
	uint16_t port;
	memset(pc, 0, sizeof(*pc));
	if (!o->connect_back || !o->connect_back_addr) {
		r->confirm_err = -ENOTCONN;
		return;
	}
	if (!r->ni.behind_nat || r->ttl_err) {
		r->confirm_err = r->ni.behind_nat ? r->ttl_err : -ENOENT;
		return;
	}
	if (!(port = connect_back_port(o, r, m, have))) {
		r->confirm_err = -EADDRNOTAVAIL;
		return;
	}
	if (e->started && port == e->lport) {
		*pc = e->pc;
		r->confirm_err = e->err;
	} else if (confirm_prep(o, rt, &r->guess, r->ni.local_addr, r->ni.local_port, port, r->samples[0].rtt_ms, pc,
				&r->confirm_err)) {
		probe_confirm_run(pc);
		r->confirm_err = pc->err;
	}
	memcpy(r->confirm, pc->tests, sizeof(r->confirm));
	r->n_confirm = pc->n;
}

/* nat_ttl and how it was chosen: confirmed, else what the hops showed, else the fallback. */
static void decide_ttl(struct rp_probe_report *r, const struct probe_confirm *pc)
{
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
	struct rp_stun_opts so = probe_stun_opts(o, laddr, lport, sw, sizeof(sw));

	/* 1. filtering, in the background (its connection to the server is made now, before the
	 * samples) */
	struct filter_job fj;
	filter_start(&fj, o, lport);

	/* 2. the hops, beside phases 3 and 4 (the STUN flows start once its SYNs have left) */
	struct ttl_job tj;
	ttl_start(&tj, o, r, &rt, laddr, lport);

	/* nat_ttl's confirmation, where it may start early: its capture opens beside test 1 (not
	 * beside the search's, which the STUN flows wait for) */
	struct early early = { .o = o, .rt = &rt, .r = r, .tj = &tj, .laddr = laddr, .lport = lport };
	early_init(&early);

	/* 3. mapping: RFC 5780 §4.3 over TCP from the punch port, with 4. the allocation samples in
	 * flight beside the tests */
	struct rp_stun_result t1, tres[4];
	int errs[4];
	int e1 = stun_flows(o, &so, r, &early, &t1, errs, tres);
	if (e1) {
		early_join(&early);
		ttl_join(&tj);
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
	mapping_verdict(r, &t1, errs, tres, m, have);
	early_join(&early);   /* before the search's end: it waits for it (ttl_wait) */
	ttl_join(&tj);

	/* what the hops show, now that the public address is known */
	hops_guess(r, laddr, lport, r->ni.mapped_addr, r->ni.mapped_port, &r->guess);

	/* nat_ttl's confirmation, after the samples' SYNs: its connections are no flows of theirs (where
	 * it runs, the public port of the punch port's flows is known: they take no new port). The early
	 * one's, if it used the port the tests give. */
	struct probe_confirm pc;
	confirm(o, r, &rt, m, have, &early, &pc);

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
	if (fj.err && pc.o && !pc.filter_err) {   /* no filter probe (rate limit?): a test that did not get in */
		fj.err = 0;
		fj.out = pc.filtering;
	}
	r->filter_err = fj.err;
	r->ni.filtering = fj.err ? RP_FILTER_UNKNOWN : fj.out;
	r->duration_s = (double)(rp_clock_ns(CLOCK_MONOTONIC) - t_begin) / 1e9;
	return 0;
}
