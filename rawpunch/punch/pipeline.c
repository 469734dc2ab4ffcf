/* SPDX-License-Identifier: MIT */
/* The punch pipeline's sequencing (pipeline.h): which stage runs when, what each leaves in the
 * result, and where a failure ends the run. The stages themselves are the ops (stages.c). */
#include "rawpunch/punch/pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/punch/pmhold.h"

struct run {
	const struct rp_punch_run_opts *o;
	const struct rp_punch_ops *ops;
	void *st;
	rp_punch_event_fn cb;
	void *cb_arg;
	struct rp_punch_result *res;
	uint64_t t0, stage_t0;
	int filter_ms;                 /* the filter probe's timeout, sized by CONNECT */
	struct rp_plan_params pp;      /* the plan's parameters (PLAN, and every re-plan) */
	uint32_t peer_pub;             /* the peer's public address the punch context aims at */
	bool portmap;                  /* PORTMAP is asking (begun with the probe) */
	bool peer_relay;               /* the peer gave up and goes on to the relay */
	/* PROBE beside JOIN: the first probe on a thread of its own */
	pthread_t probe_th;
	bool probe_on;                 /* the thread was started and is not joined yet */
	bool probe_joined;             /* its failure is reported */
	uint16_t probe_port;
	int probe_err;
	char probe_why[RP_PUNCH_WHY_LEN];
	volatile sig_atomic_t probe_failed;   /* ends the join's waits (rp_punch_ready.cancel) */
	pthread_mutex_t ready_mu;      /* the thread's natinfo (or failure) is out: ready_wait goes on while */
	pthread_cond_t ready_cv;       /* the thread prepares the punch context */
	bool ready;
};

const char *rp_punch_stage_str(enum rp_punch_stage s)
{
	switch (s) {
	case RP_STAGE_CONNECT: return "rendezvous";
	case RP_STAGE_PROBE: return "probe";
	case RP_STAGE_PORTMAP: return "portmap";
	case RP_STAGE_JOIN: return "rendezvous";
	case RP_STAGE_OFFER: return "offer";
	case RP_STAGE_PLAN: return "plan";
	case RP_STAGE_SETUP: return "setup";
	case RP_STAGE_PUNCH: return "punch";
	case RP_STAGE_HANDOFF: return "handoff";
	case RP_STAGE_RELAY: return "relay";
	default: return "done";
	}
}

const char *rp_punch_path_str(enum rp_punch_path p)
{
	switch (p) {
	case RP_PATH_DIRECT: return "direct";
	case RP_PATH_RELAY: return "relay";
	case RP_PATH_RELAY_DIRECT: return "relay->direct";
	default: return "none";
	}
}

static double ms_since(uint64_t t)
{
	return (double)(rp_mono_ns() - t) / 1e6;
}

static void emit(struct run *r, enum rp_punch_event_kind kind, int error, unsigned round, const char *text,
		 const struct rp_punch_progress *pr)
{
	struct rp_punch_event ev = {
		.kind = kind, .stage = r->res->stage, .error = error, .round = round, .text = text,
		.progress = pr, .result = r->res,
	};
	if (r->cb)
		r->cb(&ev, r->cb_arg);
}

static void begin(struct run *r, enum rp_punch_stage s)
{
	r->res->stage = s;
	r->stage_t0 = rp_mono_ns();
	emit(r, RP_PUNCH_EV_STAGE_BEGIN, 0, 0, NULL, NULL);
}

/* The running stage ends: error 0, or its -errno (why already written), which ends the run there. */
static int end(struct run *r, int error)
{
	r->res->stage_ms[r->res->stage] = ms_since(r->stage_t0);
	if (error) {
		r->res->error = error;
		r->res->t_end_ms = ms_since(r->t0);
	}
	emit(r, RP_PUNCH_EV_STAGE_END, error, 0, NULL, NULL);
	return error;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct run *r, int error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->res->why, sizeof(r->res->why), fmt, ap);
	va_end(ap);
	return end(r, error);
}

static void on_progress(const struct rp_punch_progress *pr, void *arg)
{
	emit(arg, RP_PUNCH_EV_PROGRESS, 0, pr->round, NULL, pr);
}

static void on_trace(void *arg, const char *line)
{
	emit(arg, RP_PUNCH_EV_TRACE, 0, 0, line, NULL);
}

static void on_text(void *arg, const char *text)
{
	emit(arg, RP_PUNCH_EV_TEXT, 0, 0, text, NULL);
}

/* The peer's abort, if one came: its reason goes to res->peer_why and why. */
static bool peer_gave_up(struct run *r, char *why, size_t wlen)
{
	const char *pw = r->ops->peer_why ? r->ops->peer_why(r->st, &r->peer_relay) : NULL;
	if (!pw)
		return false;
	snprintf(r->res->peer_why, sizeof(r->res->peer_why), "%s", pw);
	snprintf(why, wlen, "the peer gave up: %.350s", pw);
	return true;
}

/* --- the stages ---------------------------------------------------------------------------------- */

static int stage_connect(struct run *r)
{
	double rtt = 0;
	int e;
	if (r->res->serverless)
		return 0;
	begin(r, RP_STAGE_CONNECT);
	e = r->ops->connect(r->st, &rtt, r->res->why, sizeof(r->res->why));
	if (!e) {
		/* the filter probe waits for the server's SYN to draw an answer from our NAT: about one
		 * RTT, which the connect just measured; 2 x RTT + 50 ms, within 150..1000 ms (a drop-filtering
		 * NAT is known only when it runs out: at 4 x RTT + 100 it held every cold probe there) */
		int f = (int)(2 * rtt + 50);
		r->filter_ms = f < 150 ? 150 : f > 1000 ? 1000 : f;
	}
	return end(r, e);
}

/* The punch port and PORTMAP's asking, at the probe's start; 0 or -errno (the run fails in PROBE). */
static int pick_port(struct run *r, uint16_t *port)
{
	struct rp_punch_result *res = r->res;
	int e;
	*port = r->o->local_port;
	if (!*port && (e = r->ops->free_port(r->st, port))) {
		e = fail(r, e, "picking a free punch port: %s", strerror(-e));
		res->stage_ms[RP_STAGE_PROBE] = -1;      /* the probe itself never ran */
		return e;
	}
	/* PORTMAP asks beside the probe: a network without a port mapping service costs nothing */
	r->portmap = !r->o->no_portmap && !res->serverless && r->ops->portmap_begin &&
		     r->ops->portmap_begin(r->st, *port) == 0;
	return 0;
}

static int stage_probe(struct run *r)
{
	struct rp_punch_result *res = r->res;
	uint16_t port;
	int e;
	begin(r, RP_STAGE_PROBE);
	if ((e = pick_port(r, &port)))
		return e;
	e = r->ops->probe(r->st, port, true, r->filter_ms, &res->self, res->why, sizeof(res->why));
	if (!e) {
		res->have_self = true;
		res->self_now = res->self;
	}
	return end(r, e);
}

static void relay_alloc(struct run *r);
static int stage_portmap(struct run *r);

static void set_ready(struct run *r)
{
	pthread_mutex_lock(&r->ready_mu);
	r->ready = true;
	pthread_cond_broadcast(&r->ready_cv);
	pthread_mutex_unlock(&r->ready_mu);
}

/* PROBE beside JOIN, on a thread of its own: the probe, then PORTMAP's answer and the TURN
 * allocation, as a sequential run has them before JOIN, each stage's end reported as it comes. The
 * main thread is in the join meanwhile and emits nothing; JOIN's stage and clock are put back here.
 * A failure only sets probe_err (probe_join reports it): the join writes res->why as it ends. */
static void *probe_thread(void *arg)
{
	struct run *r = arg;
	struct rp_punch_result *res = r->res;
	enum rp_punch_stage was = res->stage;
	uint64_t was_t0 = r->stage_t0, t = rp_mono_ns();
	struct rp_natinfo ni;
	r->probe_err = r->ops->probe(r->st, r->probe_port, true, r->filter_ms, &ni, r->probe_why, sizeof(r->probe_why));
	res->stage_ms[RP_STAGE_PROBE] = ms_since(t);
	if (r->probe_err) {
		r->probe_failed = 1;   /* the join's waits end */
		set_ready(r);
		return NULL;
	}
	res->self = ni;
	res->have_self = true;
	res->self_now = res->self;
	res->stage = RP_STAGE_PROBE;
	emit(r, RP_PUNCH_EV_STAGE_END, 0, 0, NULL, NULL);
	stage_portmap(r);
	relay_alloc(r);
	res->stage = was;
	r->stage_t0 = was_t0;
	set_ready(r);   /* the natinfo goes out now; the rest is not on its way */
	if (r->ops->prepare)   /* the capture's and the guard's open off the path to T */
		r->ops->prepare(r->st, r->probe_port, r->o->trace ? on_trace : NULL, r);
	return NULL;
}

/* PROBE begun, to run beside JOIN: the port and PORTMAP's asking; the thread starts in stage_meet. */
static int stage_probe_begin(struct run *r)
{
	begin(r, RP_STAGE_PROBE);
	return pick_port(r, &r->probe_port);
}

/* The probe thread's end (without a thread the probe ran in probe_start): 0, or its failure, which
 * is the run's (in PROBE, with the probe's why). */
static int probe_join(struct run *r)
{
	struct rp_punch_result *res = r->res;
	if (r->probe_on) {
		pthread_join(r->probe_th, NULL);
		r->probe_on = false;
	}
	if (!r->probe_err || r->probe_joined)
		return r->probe_err;
	r->probe_joined = true;
	res->stage = RP_STAGE_PROBE;
	snprintf(res->why, sizeof(res->why), "%s", r->probe_why);
	res->error = r->probe_err;
	res->t_end_ms = ms_since(r->t0);
	emit(r, RP_PUNCH_EV_STAGE_END, r->probe_err, 0, NULL, NULL);
	return r->probe_err;
}

static void probe_start(struct run *r)
{
	r->probe_on = pthread_create(&r->probe_th, NULL, probe_thread, r) == 0;
	if (!r->probe_on)
		probe_thread(r);
}

/* Before JOIN: the TURN allocation, whose relayed address goes into the exchange. Not fatal: without
 * it there is no relay to fall back to (relay_why says why). */
static void relay_alloc(struct run *r)
{
	struct rp_punch_result *res = r->res;
	if (res->serverless || !r->o->n_relay || !r->ops->relay_alloc)
		return;
	uint64_t t = rp_mono_ns();
	int e = r->ops->relay_alloc(r->st, &res->meet.self_relayed, &res->relay_server, res->relay_why,
				    sizeof(res->relay_why));
	res->stage_ms[RP_STAGE_RELAY] = ms_since(t);
	if (e)
		memset(&res->meet.self_relayed, 0, sizeof(res->meet.self_relayed));
}

/* The answer to the asking begun with the probe: waited for here (the stage's time is the wait). */
static int stage_portmap(struct run *r)
{
	struct rp_punch_result *res = r->res;
	if (!r->portmap)
		return 0;
	begin(r, RP_STAGE_PORTMAP);
	r->ops->portmap_end(r->st, &res->self);
	rp_natinfo_through_mapping(&res->self);
	res->self_now = res->self;
	return end(r, 0);
}

/* rp_punch_ready.wait: the probe thread's natinfo (the thread may still prepare the punch context:
 * stage_meet joins it); a failure is reported as the thread's end */
static int ready_wait(void *arg, struct rp_natinfo *self)
{
	struct run *r = arg;
	if (r->probe_on) {
		pthread_mutex_lock(&r->ready_mu);
		while (!r->ready)
			pthread_cond_wait(&r->ready_cv, &r->ready_mu);
		pthread_mutex_unlock(&r->ready_mu);
	}
	int e = r->probe_err ? probe_join(r) : 0;
	if (!e)
		*self = r->res->self_now;
	return e;
}

static int stage_meet(struct run *r)
{
	struct rp_punch_result *res = r->res;
	int e;
	if (res->serverless) {
		relay_alloc(r);
		begin(r, RP_STAGE_OFFER);
		e = r->ops->serverless(r->st, &res->self_now, &res->meet, on_text, r, res->why, sizeof(res->why));
	} else {
		struct rp_punch_ready rd = { .wait = ready_wait, .arg = r, .cancel = &r->probe_failed };
		struct rp_natinfo none = res->self_now;   /* not known yet: the join asks rd */
		begin(r, RP_STAGE_JOIN);
		probe_start(r);
		e = r->ops->join(r->st, &none, &rd, &res->meet, res->why, sizeof(res->why));
		/* the probe's own failure is the run's, whatever the join made of it */
		if (probe_join(r))
			return r->probe_err;
	}
	if (!e) {
		res->have_peer = true;
		res->peer_now = res->meet.peer;
	}
	return end(r, e);
}

/* The plan for `round` from the latest natinfos, side a first. */
static int plan(struct run *r, unsigned round)
{
	struct rp_punch_result *res = r->res;
	int me = res->meet.me;
	return rp_plan_make(me ? &res->peer_now : &res->self_now, me ? &res->self_now : &res->peer_now, &r->pp, round,
			    &res->plan_now);
}

static int stage_plan(struct run *r)
{
	struct rp_punch_result *res = r->res;
	char odds[200];
	int e;
	begin(r, RP_STAGE_PLAN);
	/* both sides compute the same plan from the same inputs */
	r->pp = r->o->plan;
	r->pp.rtt_ms = (double)res->meet.relay_rtt_ns / 1e6;
	/* Two timing margins: the hard bound (half the relay RTT: the clocks cannot disagree by more), and
	 * the estimate (the samples' uncertainty, a few ms), which the plans that can afford a re-send
	 * use for their first SYNs (early_ms in strategy.h): one RTT of the bound was ~50 ms of every
	 * punch at 50 ms RTT. Serverless: no bound, the plan's default. */
	r->pp.clock_err_ms = (double)(res->meet.clock_bound_ns ? res->meet.clock_bound_ns : res->meet.clock_err_ns) / 1e6;
	r->pp.clock_est_ms = res->meet.clock_bound_ns ? (double)res->meet.clock_err_ns / 1e6 : 0;
	e = plan(r, 0);
	if (e)
		return fail(r, e, "no plan: a natinfo lacks a public address or punch port");
	res->plan = res->plan_now;
	res->have_plan = true;
	if (rp_plan_refused(&res->plan)) {
		rp_plan_refusal(&res->plan, odds, sizeof(odds), NULL, 0);
		return fail(r, -ENOTSUP, "%s (%s)", res->plan.reason, odds);
	}
	return end(r, 0);
}

static int stage_setup(struct run *r)
{
	struct rp_punch_result *res = r->res;
	int e;
	begin(r, RP_STAGE_SETUP);
	r->peer_pub = rp_punch_pub_addr(&res->peer_now);
	e = r->ops->open(r->st, r->peer_pub, r->o->trace ? on_trace : NULL, r, res->detail, sizeof(res->detail));
	if (e)
		return fail(r, e, "setting up the punch: %s", res->detail);
	return end(r, 0);
}

/* After a miss of round `round`: tell the peer, re-probe from a fresh punch port, exchange natinfos,
 * agree on the next T, re-plan (wider). 0, or -errno with why written. */
static int next_round(struct run *r, unsigned round, uint64_t *start, char *why, size_t wlen)
{
	struct rp_punch_result *res = r->res;
	struct rp_natinfo ni;
	char scratch[RP_PUNCH_WHY_LEN];
	uint16_t port;
	int e;
	r->ops->tell(r->st, "miss", (int)round, res->rounds[round].st.why);
	if (!res->self_now.pm_port) {
		/* (a side seen through its mapping keeps its punch port and the mapping: nothing to re-probe) */
		if ((e = r->ops->free_port(r->st, &port)))
			return e;
		e = r->ops->probe(r->st, port, false, r->filter_ms, &ni, scratch, sizeof(scratch));
		if (e) {
			snprintf(why, wlen, "re-probe failed: %s", strerror(-e));
			return e;
		}
		ni.filtering = res->self_now.filtering;   /* not re-measured */
		ni.nat_ttl = res->self_now.nat_ttl;
		ni.nat_ttl_method = res->self_now.nat_ttl_method;
		ni.server_hops = res->self_now.server_hops;
		rp_natinfo_keep_portmap(&ni, &res->self_now);   /* nor asked again */
		res->self_now = ni;
	}
	e = r->ops->exchange(r->st, round + 1, &res->self_now, &res->peer_now);
	if (!e && rp_punch_pub_addr(&res->peer_now) != r->peer_pub)
		e = -EPROTO;   /* the peer's public address moved: a new context would be needed */
	if (!e)
		e = r->ops->schedule(r->st, round + 1, start);
	if (e) {
		snprintf(why, wlen, "could not agree on round %u with the peer: %s", round + 2,
			 e == -EPIPE ? "the peer left" : strerror(-e));
		return e;
	}
	e = plan(r, round + 1);
	if (e || rp_plan_refused(&res->plan_now)) {
		snprintf(why, wlen, "re-plan for round %u: %s", round + 2, e ? strerror(-e) : res->plan_now.reason);
		return e ? e : -ENOTSUP;
	}
	return 0;
}

static int stage_punch(struct run *r)
{
	struct rp_punch_result *res = r->res;
	uint64_t start = res->meet.start_ns;
	unsigned nrounds = res->plan.rounds ? res->plan.rounds : 1;
	char why[RP_PUNCH_WHY_LEN] = "";
	int e = -ETIMEDOUT;
	begin(r, RP_STAGE_PUNCH);
	if (res->serverless)
		nrounds = 1;   /* no channel to agree on a re-probe */
	if (nrounds > RP_PUNCH_MAX_ROUNDS)
		nrounds = RP_PUNCH_MAX_ROUNDS;
	for (unsigned round = 0; round < nrounds; round++) {
		struct rp_punch_round_record *rec = &res->rounds[round];
		struct rp_punch_round_opts ro = {
			.plan = &res->plan_now, .me = res->meet.me, .self = &res->self_now, .peer = &res->peer_now,
			.round = round, .start_real_ns = start, .progress = on_progress, .progress_arg = r,
		};
		e = r->ops->round(r->st, &ro, &rec->st);
		rec->plan = res->plan_now;
		res->n_rounds = round + 1;
		snprintf(why, sizeof(why), "%s", rec->st.why);
		emit(r, RP_PUNCH_EV_ROUND, e, round, NULL, NULL);
		if (e != -ETIMEDOUT || round + 1 >= nrounds)
			break;
		e = next_round(r, round, &start, why, sizeof(why));
		if (e)
			break;
		emit(r, RP_PUNCH_EV_REPLAN, 0, round + 1, NULL, NULL);
	}
	if (e == -ECONNABORTED)
		(void)peer_gave_up(r, why, sizeof(why));
	if (!e) {
		r->ops->tell(r->st, "done", -1, NULL);   /* a failure's "abort" goes at the end of the run */
		res->t_connected_ms = ms_since(r->t0);
	}
	r->ops->totals(r->st, &res->totals);
	if (e)
		return fail(r, e, "%s", e == -EINTR ? "interrupted" : why);
	return end(r, 0);
}

/* The session through the relay: right after the meeting (relay_first: the stream goes to the
 * callback), or instead of a failed punch. 0 with the stream; -errno (relay_why written) when there
 * is no relay on both sides or it fails. */
static int stage_relay(struct run *r, int *fd)
{
	struct rp_punch_result *res = r->res;
	char why[RP_PUNCH_WHY_LEN];
	int e;
	if (!r->ops->relay_connect || !res->meet.self_relayed.sin_addr.s_addr)
		return -ENOTCONN;   /* relay_why: what the allocation said, or nothing asked for */
	if (!res->meet.peer_relayed.sin_addr.s_addr) {
		snprintf(res->relay_why, sizeof(res->relay_why), "the peer has no relayed address");
		return -ENOTCONN;
	}
	enum rp_punch_stage was = res->stage;
	begin(r, RP_STAGE_RELAY);
	e = r->ops->relay_connect(r->st, &res->meet, &res->turn, why, sizeof(why));
	res->stage_ms[RP_STAGE_RELAY] = ms_since(r->stage_t0);
	emit(r, RP_PUNCH_EV_STAGE_END, e < 0 ? e : 0, 0, NULL, NULL);
	res->stage = was;
	if (e < 0) {
		snprintf(res->relay_why, sizeof(res->relay_why), "%s", why);
		return e;
	}
	res->t_relay_ms = ms_since(r->t0);
	*fd = e;
	return 0;
}

/* relay_first: RELAY beside the punch, in its own thread, so that the punch keeps the T agreed at the
 * meeting however long the relay takes (TURN Connect and ConnectionBind cost several round trips to
 * the server, the accepting side waits for the attempt, and the two sides finish at different times:
 * done before PLAN, it delayed each side's first round by a different amount, and the SYNs that were
 * to cross met a NAT with no mapping yet: "the peer's NAT refused every one"). The stream goes to the
 * callback from that thread (RP_PUNCH_EV_RELAY_UP, stage RELAY) the moment it is up; the thread only
 * writes the relay's fields of the result (turn, t_relay_ms, stage_ms[RELAY], relay_why), and the
 * pipeline joins it before it reads them. */
struct relay_bg {
	struct run *r;
	pthread_t th;
	bool running, up;
};

static void *relay_bg_main(void *arg)
{
	struct relay_bg *b = arg;
	struct run *r = b->r;
	struct rp_punch_result *res = r->res;
	char why[RP_PUNCH_WHY_LEN];
	uint64_t t = rp_mono_ns();
	int e = r->ops->relay_connect(r->st, &res->meet, &res->turn, why, sizeof(why));
	res->stage_ms[RP_STAGE_RELAY] = ms_since(t);
	if (e < 0) {
		snprintf(res->relay_why, sizeof(res->relay_why), "%s", why);
		return NULL;
	}
	res->t_relay_ms = ms_since(r->t0);
	b->up = true;
	struct rp_punch_event ev = { .kind = RP_PUNCH_EV_RELAY_UP, .stage = RP_STAGE_RELAY, .result = res, .fd = e };
	if (r->cb)
		r->cb(&ev, r->cb_arg);
	else
		close(e);
	return NULL;
}

static void relay_bg_start(struct run *r, struct relay_bg *b)
{
	struct rp_punch_result *res = r->res;
	b->r = r;
	if (!r->ops->relay_connect || !res->meet.self_relayed.sin_addr.s_addr)
		return;   /* relay_why: what the allocation said, or nothing asked for */
	if (!res->meet.peer_relayed.sin_addr.s_addr) {
		snprintf(res->relay_why, sizeof(res->relay_why), "the peer has no relayed address");
		return;
	}
	if (pthread_create(&b->th, NULL, relay_bg_main, b) == 0)
		b->running = true;
	else
		relay_bg_main(b);   /* no thread: the relay first, the punch after it */
}

/* the relay is up (true) or failed; the thread is gone */
static bool relay_bg_join(struct relay_bg *b)
{
	if (b->running)
		pthread_join(b->th, NULL);
	b->running = false;
	return b->up;
}

static int stage_handoff(struct run *r)
{
	struct rp_punch_result *res = r->res;
	int fd;
	begin(r, RP_STAGE_HANDOFF);
	fd = r->ops->handoff(r->st, res);
	if (fd < 0)
		return fail(r, fd, "handoff to a kernel socket failed: %s", strerror(-fd));
	res->fd = fd;
	return end(r, 0);
}

int rp_punch_run_ops(const struct rp_punch_run_opts *o, const struct rp_punch_ops *ops, void *st, rp_punch_event_fn cb,
		     void *cb_arg, struct rp_punch_result *res)
{
	struct run r = { .o = o, .ops = ops, .st = st, .cb = cb, .cb_arg = cb_arg, .res = res,
			 .ready_mu = PTHREAD_MUTEX_INITIALIZER, .ready_cv = PTHREAD_COND_INITIALIZER };
	int e;
	if (!res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	res->fd = -1;
	res->t_connected_ms = -1;
	res->t_relay_ms = -1;
	for (unsigned i = 0; i < RP_STAGE_N; i++)
		res->stage_ms[i] = -1;
	if (!o || !ops) {
		snprintf(res->why, sizeof(res->why), "no options or stages given");
		return res->error = -EINVAL;
	}
	res->serverless = o->offer || o->answer_to;
	r.t0 = o->t_start_ns ? o->t_start_ns : rp_mono_ns();
	e = stage_connect(&r);
	if (!e && res->serverless) {
		e = stage_probe(&r);
		if (!e)
			e = stage_portmap(&r);
	} else if (!e) {
		e = stage_probe_begin(&r);   /* ends in JOIN, when the natinfo is needed */
	}
	if (!e)
		e = stage_meet(&r);
	struct relay_bg bg = { 0 };
	if (!e && o->relay_first)
		relay_bg_start(&r, &bg);
	if (!e)
		e = stage_plan(&r);
	if (!e)
		e = stage_setup(&r);
	if (!e)
		e = stage_punch(&r);
	if (!e)
		e = stage_handoff(&r);
	/* the relay next, unless interrupted or the peer gave up and goes nowhere */
	bool to_relay = e && e != -EINTR && e != -EINVAL && res->have_peer && (!res->peer_why[0] || r.peer_relay);
	if (e && res->have_peer && !res->peer_why[0])
		ops->tell(st, "abort", to_relay, res->why);   /* the peer stops at once, knows why and where next */
	if (relay_bg_join(&bg))
		res->path = RP_PATH_RELAY;
	if (!e) {
		res->path = res->path == RP_PATH_RELAY ? RP_PATH_RELAY_DIRECT : RP_PATH_DIRECT;
	} else if (to_relay) {
		/* no direct path: the relay carries the session (already does, relay first) */
		int rfd = -1;
		if (res->path == RP_PATH_RELAY || !stage_relay(&r, &rfd)) {
			snprintf(res->relay_why, sizeof(res->relay_why), "%s: %.300s", rp_punch_stage_str(res->stage), res->why);
			res->fd = rfd;
			res->path = RP_PATH_RELAY;
			res->error = 0;
			e = 0;
		}
	}
	if (!e) {
		res->stage = RP_STAGE_DONE;
		res->t_end_ms = ms_since(r.t0);
	}
	ops->close(st);
	return e;
}
