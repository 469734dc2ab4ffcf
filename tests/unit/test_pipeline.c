/* SPDX-License-Identifier: MIT */
/* pipeline.h: the punch pipeline's sequencing with scripted stages (no network): the order of the
 * stages and their events, what each leaves in the result, where each failure ends the run (and that
 * nothing after it runs), the rounds with re-probe / exchange / schedule / re-plan between misses, the
 * refusal, the probe beside the join, the serverless variant, and relay first (the relay set up
 * beside the punch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/punch/pipeline.h"
#include "tests/unit/natinfo_fixture.h"

/* The scripted stages: what each returns, and a log of the calls. */
struct fake {
	int connect_r, free_port_r, probe_r, reprobe_r, join_r, serverless_r, open_r, exchange_r, schedule_r, handoff_r;
	bool join_waits;
	double rtt_ms;
	bool relayed;                              /* the meeting brings relayed addresses (relay first) */
	struct rp_natinfo self, reprobed, peer, peer_next;
	int me;
	int round_r[RP_PUNCH_MAX_ROUNDS];          /* what round i returns */
	uint64_t next_start;
	/* seen */
	char log[1024];
	int filter_ms;
	unsigned n_probe, n_close;
	struct rp_punch_round_opts ro[RP_PUNCH_MAX_ROUNDS];
	struct rp_plan plans[RP_PUNCH_MAX_ROUNDS];
	unsigned n_round;
	char told[256];
	char aborted[256];                         /* the reason our "abort" carried */
	const char *peer_why;                      /* the peer's abort (its reason); NULL: none */
	unsigned peer_round;                       /* ... halts this round and any later one */
	bool peer_relay;                           /* ... says the peer goes on to the relay */
	int abort_relay;                           /* the relay flag (round) our "abort" carried */
	bool relay;                                /* TURN on both sides (fake_relay_ops) */
};

static void logf_(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct fake *f, const char *fmt, ...)
{
	size_t n = strlen(f->log);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->log + n, sizeof(f->log) - n, fmt, ap);
	va_end(ap);
}

static int f_connect(void *st, double *rtt_ms, char *why, size_t wlen)
{
	struct fake *f = st;
	logf_(f, "connect ");
	*rtt_ms = f->rtt_ms;
	if (f->connect_r)
		snprintf(why, wlen, "no server");
	return f->connect_r;
}

static int f_free_port(void *st, uint16_t *port)
{
	struct fake *f = st;
	logf_(f, "port ");
	*port = (uint16_t)(40000 + f->n_probe);
	return f->free_port_r;
}

static int f_probe(void *st, uint16_t port, bool first, int filter_ms, struct rp_natinfo *ni, char *why, size_t wlen)
{
	struct fake *f = st;
	logf_(f, "probe(%u,%s) ", port, first ? "first" : "again");
	f->n_probe++;
	if (first) {
		f->filter_ms = filter_ms;
		if (f->probe_r) {
			snprintf(why, wlen, "no STUN");
			return f->probe_r;
		}
		*ni = f->self;
		ni->local_port = port;
		return 0;
	}
	if (f->reprobe_r)
		return f->reprobe_r;
	*ni = f->reprobed;
	ni->local_port = port;
	return 0;
}

static int f_join(void *st, const struct rp_natinfo *self, const struct rp_punch_ready *rd, struct rp_punch_meeting *m,
		  char *why, size_t wlen)
{
	struct fake *f = st;
	struct rp_natinfo me = *self;
	if (f->join_waits) {   /* a peer that never comes: only a cancel (the probe failed) ends the wait */
		while (!rd || !*rd->cancel)
			usleep(1000);
		snprintf(why, wlen, "join cancelled");
		return -ECANCELED;
	}
	int e = rd ? rd->wait(rd->arg, &me) : 0;   /* the probe runs beside: its natinfo when it is needed */
	if (e)
		return e;
	logf_(f, "join(%u) ", me.local_port);
	if (f->join_r) {
		snprintf(why, wlen, "nobody came");
		return f->join_r;
	}
	memset(m, 0, sizeof(*m));
	m->peer = f->peer;
	m->me = f->me;
	m->start_ns = 1000;
	m->via_server = true;
	m->relay_rtt_ns = 300000000;    /* 300 ms: the plan's repeat interval follows it */
	if (f->relay || f->relayed) {    /* both allocated at a TURN server */
		inet_pton(AF_INET, "198.18.3.2", &m->self_relayed.sin_addr);
		m->self_relayed.sin_port = htons(50000);
		m->peer_relayed = m->self_relayed;
		m->peer_relayed.sin_port = htons(50001);
	}
	return 0;
}

static int f_serverless(void *st, struct rp_natinfo *self, struct rp_punch_meeting *m,
			void (*say)(void *arg, const char *text), void *say_arg, char *why, size_t wlen)
{
	struct fake *f = st;
	logf_(f, "serverless ");
	say(say_arg, "rpo1.TEXT");
	if (f->serverless_r) {
		snprintf(why, wlen, "no answer");
		return f->serverless_r;
	}
	self->confidence = 0.5;        /* the codec's view of ourselves is what the plan uses */
	memset(m, 0, sizeof(*m));
	m->peer = f->peer;
	m->me = f->me;
	m->start_ns = 2000;
	return 0;
}

static int f_open(void *st, uint32_t peer_pub, void (*trace)(void *arg, const char *line), void *trace_arg,
		  char *detail, size_t dlen)
{
	struct fake *f = st;
	logf_(f, "open ");
	assert_int_equal(peer_pub, rp_punch_pub_addr(&f->peer));
	if (trace)
		trace(trace_arg, "a trace line");
	if (f->open_r)
		snprintf(detail, dlen, "raw socket: denied");
	return f->open_r;
}

static int round_ran;   /* f_round ran (read by f_relay_connect, from the pipeline's relay thread) */

static int f_round(void *st, const struct rp_punch_round_opts *ro, struct rp_punch_round_stats *rs)
{
	struct fake *f = st;
	unsigned i = f->n_round++;
	__atomic_store_n(&round_ran, 1, __ATOMIC_SEQ_CST);
	logf_(f, "round(%u) ", ro->round);
	f->ro[i] = *ro;
	f->plans[i] = *ro->plan;
	memset(rs, 0, sizeof(*rs));
	rs->round = ro->round;
	rs->strategy = ro->plan->strategy;
	rs->t_established_ms = f->round_r[i] ? -1 : 12.5;
	rs->established = !f->round_r[i];
	if (f->peer_why && i >= f->peer_round) {   /* the peer's abort halts this round */
		snprintf(rs->why, sizeof(rs->why), "halted");
		return -ECONNABORTED;
	}
	snprintf(rs->why, sizeof(rs->why), "why of round %u", ro->round);
	if (ro->progress) {
		struct rp_punch_progress pr = { .round = ro->round, .phase = "burst" };
		ro->progress(&pr, ro->progress_arg);
	}
	return f->round_r[i];
}

static void f_tell(void *st, const char *type, int round, const char *why)
{
	struct fake *f = st;
	logf_(f, "tell(%s) ", type);
	if (round >= 0)
		snprintf(f->told, sizeof(f->told), "%s %d %s", type, round, why);
	if (!strcmp(type, "abort")) {
		snprintf(f->aborted, sizeof(f->aborted), "%s", why ? why : "(none)");
		f->abort_relay = round;
	}
}

static const char *f_peer_why(void *st, bool *relay)
{
	struct fake *f = st;
	*relay = f->peer_relay;
	return f->peer_why;
}

static int f_exchange(void *st, unsigned round, const struct rp_natinfo *self, struct rp_natinfo *peer)
{
	struct fake *f = st;
	logf_(f, "exchange(%u,%u) ", round, self->local_port);
	if (f->exchange_r)
		return f->exchange_r;
	*peer = f->peer_next;
	return 0;
}

static int f_schedule(void *st, unsigned round, uint64_t *start_ns)
{
	struct fake *f = st;
	logf_(f, "schedule(%u) ", round);
	*start_ns = f->next_start + round;
	return f->schedule_r;
}

static void f_totals(void *st, struct rp_punch_totals *t)
{
	struct fake *f = st;
	logf_(f, "totals ");
	memset(t, 0, sizeof(*t));
	t->packets_sent = 77;
	t->guard_dropped = -1;
}

static int f_handoff(void *st, struct rp_punch_result *res)
{
	struct fake *f = st;
	logf_(f, "handoff ");
	res->lport = 40000;
	res->rport = 41000;
	return f->handoff_r ? f->handoff_r : 42;
}

static void f_close(void *st)
{
	struct fake *f = st;
	logf_(f, "close");
	f->n_close++;
}

/* RELAY: the stream comes up only once the punch's first round has run (within 2 s): relay first must
 * set the relay up beside the punch, not before it. Runs in the pipeline's relay thread: no cmocka
 * assertion and no log here. */
static int f_relay_connect(void *st, const struct rp_punch_meeting *m, struct rp_turn **turn, char *why, size_t wlen)
{
	(void)st;
	(void)turn;
	for (int i = 0; i < 2000 && !__atomic_load_n(&round_ran, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	if (!__atomic_load_n(&round_ran, __ATOMIC_SEQ_CST) || !m->peer_relayed.sin_addr.s_addr) {
		snprintf(why, wlen, "the punch did not run meanwhile");
		return -ETIMEDOUT;
	}
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static const struct rp_punch_ops fake_ops = {
	.connect = f_connect, .free_port = f_free_port, .probe = f_probe, .join = f_join,
	.serverless = f_serverless, .open = f_open, .round = f_round, .tell = f_tell, .peer_why = f_peer_why,
	.exchange = f_exchange,
	.schedule = f_schedule, .totals = f_totals, .handoff = f_handoff, .close = f_close,
};

/* RELAY as the fallback after the punch: logged, a stand-in fd */
static int f_relay_fallback(void *st, const struct rp_punch_meeting *m, struct rp_turn **turn, char *why, size_t wlen)
{
	struct fake *f = st;
	(void)m;
	(void)why;
	(void)wlen;
	logf_(f, "relay ");
	*turn = NULL;
	return 43;
}

/* fake_ops with a relay to fall back to (f.relay: both sides have a relayed address) */
static struct rp_punch_ops fake_relay_ops;

/* fake_ops with relay first's RELAY (f.relayed) */
static const struct rp_punch_ops fake_ops_relay = {
	.connect = f_connect, .free_port = f_free_port, .probe = f_probe, .join = f_join,
	.serverless = f_serverless, .open = f_open, .round = f_round, .tell = f_tell, .peer_why = f_peer_why,
	.exchange = f_exchange,
	.schedule = f_schedule, .totals = f_totals, .handoff = f_handoff, .close = f_close,
	.relay_connect = f_relay_connect,
};

/* The events, one letter-coded token each: B<stage> E<stage>[!] T R<n> P<n> G(progress) L(trace). */
struct evlog {
	char s[1024];
	int relay_fd;                    /* RP_PUNCH_EV_RELAY_UP's stream */
};

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;   /* RELAY_UP comes from the relay thread */

static void on_event_locked(const struct rp_punch_event *ev, void *arg);
static void on_event(const struct rp_punch_event *ev, void *arg)
{
	pthread_mutex_lock(&ev_mu);
	on_event_locked(ev, arg);
	pthread_mutex_unlock(&ev_mu);
}

static void on_event_locked(const struct rp_punch_event *ev, void *arg)
{
	struct evlog *e = arg;
	size_t n = strlen(e->s);
	char *p = e->s + n;
	size_t cap = sizeof(e->s) - n;
	assert_non_null(ev->result);
	switch (ev->kind) {
	case RP_PUNCH_EV_STAGE_BEGIN: snprintf(p, cap, "B%d ", ev->stage); break;
	case RP_PUNCH_EV_STAGE_END: snprintf(p, cap, "E%d%s ", ev->stage, ev->error ? "!" : ""); break;
	case RP_PUNCH_EV_TEXT: snprintf(p, cap, "T "); break;
	case RP_PUNCH_EV_ROUND: snprintf(p, cap, "R%u ", ev->round); break;
	case RP_PUNCH_EV_REPLAN: snprintf(p, cap, "P%u ", ev->round); break;
	case RP_PUNCH_EV_PROGRESS: snprintf(p, cap, "G "); break;
	case RP_PUNCH_EV_TRACE: snprintf(p, cap, "L "); break;
	case RP_PUNCH_EV_RELAY_UP: snprintf(p, cap, "U "); e->relay_fd = ev->fd; break;
	}
}

static struct rp_punch_result *res;   /* large: one for all tests */

static void fake_init(struct fake *f, enum prof me, enum prof peer)
{
	memset(f, 0, sizeof(*f));
	mk(&f->self, me, RP_FILTER_RST, "198.18.1.2", 0);
	mk(&f->reprobed, me, RP_FILTER_RST, "198.18.1.2", 0);
	f->reprobed.filtering = RP_FILTER_UNKNOWN;   /* a re-probe does not measure these */
	f->reprobed.nat_ttl = 0;
	mk(&f->peer, peer, RP_FILTER_RST, "198.18.2.2", 41000);
	f->peer_next = f->peer;
	f->peer_next.local_port = 41001;
	f->peer_next.mapped_port = 41001;
	f->rtt_ms = 100;
	f->next_start = 5000;
}

static int run(struct fake *f, const struct rp_punch_run_opts *o, struct evlog *e)
{
	memset(e, 0, sizeof(*e));
	return rp_punch_run_ops(o, &fake_ops, f, on_event, e, res);
}

static void test_connected_first_round(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { .trace = true };
	fake_init(&f, PRESERVE, PRESERVE);
	assert_int_equal(run(&f, &o, &e), 0);
	assert_string_equal(f.log, "connect port probe(40000,first) join(40000) open round(0) tell(done) totals handoff close");
	/* JOIN (2) begins while PROBE (1) runs; the probe ends inside the join, when its natinfo is needed */
	assert_string_equal(e.s, "B0 E0 B1 B2 E1 E2 B4 E4 B5 L E5 B6 G R0 E6 B7 E7 ");
	assert_int_equal(res->stage, RP_STAGE_DONE);
	assert_int_equal(res->fd, 42);
	assert_int_equal(res->error, 0);
	assert_int_equal(f.filter_ms, 250);                /* 2 x the connect's 100 ms + 50 */
	assert_true(res->have_self && res->have_peer && res->have_plan);
	assert_int_equal(res->self.local_port, 40000);
	assert_string_equal(rp_plan_name(&res->plan), "simultaneous-open");
	assert_int_equal(res->plan.side[0].repeat_ms, 300);     /* the meeting's relay RTT reached the planner */
	assert_int_equal(res->n_rounds, 1);
	assert_int_equal(f.ro[0].start_real_ns, 1000);
	assert_int_equal(f.ro[0].me, 0);
	assert_ptr_equal(f.ro[0].self, &res->self_now);
	assert_int_equal(res->totals.packets_sent, 77);
	assert_int_equal(res->lport, 40000);
	assert_true(res->t_connected_ms >= 0);
	assert_true(res->stage_ms[RP_STAGE_PROBE] >= 0);
	assert_true(res->stage_ms[RP_STAGE_OFFER] < 0);     /* not run */
	assert_int_equal(f.n_close, 1);
	/* without trace, no trace lines; a given punch port is probed without asking for a free one */
	o.trace = false;
	o.local_port = 39000;
	fake_init(&f, PRESERVE, PRESERVE);
	assert_int_equal(run(&f, &o, &e), 0);
	assert_string_equal(f.log, "connect probe(39000,first) join(39000) open round(0) tell(done) totals handoff close");
	assert_null(strstr(e.s, "L"));
}

/* PREPARE runs on the probe's thread after the natinfo is out: the join does not wait for it (it
 * takes 400 ms here; the log's writes from the two threads are that far apart), the pipeline joins
 * it before SETUP, which comes after it. */
static uint64_t t_wait_done, t_prepared;
static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void f_prepare(void *st, uint16_t lport, void (*trace)(void *arg, const char *line), void *trace_arg)
{
	(void)trace;
	(void)trace_arg;
	usleep(400000);
	logf_(st, "prepare(%u) ", lport);
	t_prepared = now_ms();
}

static int f_join_timed(void *st, const struct rp_natinfo *self, const struct rp_punch_ready *rd,
			struct rp_punch_meeting *m, char *why, size_t wlen)
{
	uint64_t t = now_ms();
	int e = f_join(st, self, rd, m, why, wlen);
	t_wait_done = now_ms() - t;
	return e;
}

static void test_prepare_beside(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { 0 };
	struct rp_punch_ops ops = fake_ops;
	ops.prepare = f_prepare;
	ops.join = f_join_timed;
	fake_init(&f, PRESERVE, PRESERVE);
	memset(&e, 0, sizeof(e));
	uint64_t t0 = now_ms();
	assert_int_equal(rp_punch_run_ops(&o, &ops, &f, on_event, &e, res), 0);
	assert_string_equal(f.log, "connect port probe(40000,first) join(40000) prepare(40000) open round(0) tell(done) totals handoff close");
	assert_true(t_wait_done < 300);          /* the natinfo went out without the 400 ms */
	assert_true(t_prepared - t0 >= 400);     /* and SETUP came after PREPARE */
}

/* relay first: the relay comes up while the punch runs (f_relay_connect waits for the round), its stream
 * goes to the callback, and the run ends on the direct path with the relay beside it */
static void test_relay_first_beside_punch(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { .relay_first = true };
	fake_init(&f, PRESERVE, PRESERVE);
	f.relayed = true;
	round_ran = 0;
	memset(&e, 0, sizeof(e));
	e.relay_fd = -1;
	assert_int_equal(rp_punch_run_ops(&o, &fake_ops_relay, &f, on_event, &e, res), 0);
	assert_string_equal(f.log, "connect port probe(40000,first) join(40000) open round(0) tell(done) totals handoff close");
	assert_non_null(strstr(e.s, "U "));
	assert_true(e.relay_fd >= 0);
	close(e.relay_fd);
	assert_int_equal(res->path, RP_PATH_RELAY_DIRECT);
	assert_int_equal(res->fd, 42);
	assert_true(res->t_relay_ms >= 0);
	assert_true(res->stage_ms[RP_STAGE_RELAY] >= 0);
	assert_int_equal(res->relay_why[0], 0);
	/* no relayed address from the meeting: no relay, the punch alone */
	fake_init(&f, PRESERVE, PRESERVE);
	round_ran = 0;
	memset(&e, 0, sizeof(e));
	e.relay_fd = -1;
	assert_int_equal(rp_punch_run_ops(&o, &fake_ops_relay, &f, on_event, &e, res), 0);
	assert_null(strstr(e.s, "U "));
	assert_int_equal(res->path, RP_PATH_DIRECT);
}

static void test_miss_replan_connect(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { 0 };
	fake_init(&f, SEQUENTIAL, PRESERVE);   /* predicted-burst, 3 rounds, widened */
	f.me = 1;                                         /* we are side b */
	f.round_r[0] = -ETIMEDOUT;
	f.round_r[1] = -ETIMEDOUT;
	assert_int_equal(run(&f, &o, &e), 0);
	assert_string_equal(f.log,
		"connect port probe(40000,first) join(40000) open round(0) tell(miss) port probe(40001,again) "
		"exchange(1,40001) schedule(1) round(1) tell(miss) port probe(40002,again) exchange(2,40002) "
		"schedule(2) round(2) tell(done) totals handoff close");
	assert_string_equal(e.s, "B0 E0 B1 B2 E1 E2 B4 E4 B5 E5 B6 G R0 P1 G R1 P2 G R2 E6 B7 E7 ");
	assert_string_equal(f.told, "miss 1 why of round 1");
	assert_int_equal(res->n_rounds, 3);
	/* each round starts when scheduled, with the round number and the re-probed natinfos */
	assert_int_equal(f.ro[1].start_real_ns, 5001);
	assert_int_equal(f.ro[2].start_real_ns, 5002);
	assert_int_equal(f.ro[2].round, 2);
	assert_int_equal(res->self_now.local_port, 40002);
	assert_int_equal(res->peer_now.local_port, 41001);
	/* a re-probe keeps what it does not measure */
	assert_int_equal(res->self_now.filtering, RP_FILTER_RST);
	assert_int_equal(res->self_now.nat_ttl, 2);
	/* re-planned wider each round; the report keeps round 0's plan and each round's own */
	assert_int_equal(f.plans[1].side[0].n_remote, 2 * f.plans[0].side[0].n_remote);   /* a (easy) bursts wider */
	assert_memory_equal(&res->rounds[1].plan, &f.plans[1], sizeof(struct rp_plan));
	assert_memory_equal(&res->plan, &f.plans[0], sizeof(struct rp_plan));
	assert_int_equal(res->rounds[2].st.round, 2);
	assert_int_equal(res->stage, RP_STAGE_DONE);
}

static void test_all_rounds_miss(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { 0 };
	fake_init(&f, RANDOM, PRESERVE);   /* birthday, 3 rounds */
	for (unsigned i = 0; i < RP_PUNCH_MAX_ROUNDS; i++)
		f.round_r[i] = -ETIMEDOUT;
	assert_int_equal(run(&f, &o, &e), -ETIMEDOUT);
	assert_int_equal(res->stage, RP_STAGE_PUNCH);
	assert_int_equal(res->error, -ETIMEDOUT);
	assert_int_equal(res->n_rounds, 3);
	assert_string_equal(res->why, "why of round 2");
	assert_non_null(strstr(f.log, "round(2) totals tell(abort) close"));
	assert_string_equal(f.aborted, "why of round 2");   /* the peer learns why */
	assert_null(strstr(f.log, "handoff"));
	assert_int_equal(res->totals.packets_sent, 77);
	assert_int_equal(res->fd, -1);
	assert_true(res->t_end_ms >= 0);
	assert_non_null(strstr(e.s, "R2 E6! "));
	assert_null(strstr(e.s, "B7"));
	/* --rounds 1: one round, no re-probe */
	o.plan.rounds = 1;
	fake_init(&f, RANDOM, PRESERVE);
	f.round_r[0] = -ETIMEDOUT;
	assert_int_equal(run(&f, &o, &e), -ETIMEDOUT);
	assert_int_equal(res->n_rounds, 1);
	assert_null(strstr(f.log, "again"));
	/* interrupted */
	o.plan.rounds = 0;
	fake_init(&f, RANDOM, PRESERVE);
	f.round_r[0] = -EINTR;
	assert_int_equal(run(&f, &o, &e), -EINTR);
	assert_string_equal(res->why, "interrupted");
	assert_int_equal(res->n_rounds, 1);
}

/* Each stage's failure ends the run there: its why, nothing after it, everything released. */
static void test_stage_failures(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { 0 };

	fake_init(&f, PRESERVE, PRESERVE);
	f.connect_r = -ECONNREFUSED;
	assert_int_equal(run(&f, &o, &e), -ECONNREFUSED);
	assert_string_equal(f.log, "connect close");
	assert_string_equal(e.s, "B0 E0! ");
	assert_int_equal(res->stage, RP_STAGE_CONNECT);
	assert_string_equal(res->why, "no server");
	assert_string_equal(rp_punch_stage_str(res->stage), "rendezvous");

	fake_init(&f, PRESERVE, PRESERVE);
	f.free_port_r = -EMFILE;
	assert_int_equal(run(&f, &o, &e), -EMFILE);
	assert_string_equal(f.log, "connect port close");
	assert_int_equal(res->stage, RP_STAGE_PROBE);
	assert_non_null(strstr(res->why, "picking a free punch port"));
	assert_true(res->stage_ms[RP_STAGE_PROBE] < 0);   /* the probe never ran */

	fake_init(&f, PRESERVE, PRESERVE);
	f.probe_r = -ETIMEDOUT;
	assert_int_equal(run(&f, &o, &e), -ETIMEDOUT);
	assert_string_equal(f.log, "connect port probe(40000,first) close");
	assert_int_equal(res->stage, RP_STAGE_PROBE);
	assert_string_equal(res->why, "no STUN");
	assert_false(res->have_self);
	assert_true(res->stage_ms[RP_STAGE_PROBE] >= 0);

	/* the probe runs beside the join: its failure ends a join still waiting for the peer, and the run
	 * fails in PROBE with the probe's why */
	fake_init(&f, PRESERVE, PRESERVE);
	f.probe_r = -ETIMEDOUT;
	f.join_waits = true;
	assert_int_equal(run(&f, &o, &e), -ETIMEDOUT);
	assert_string_equal(f.log, "connect port probe(40000,first) close");
	assert_int_equal(res->stage, RP_STAGE_PROBE);
	assert_string_equal(res->why, "no STUN");
	assert_false(res->have_self);

	fake_init(&f, PRESERVE, PRESERVE);
	f.join_r = -EACCES;
	assert_int_equal(run(&f, &o, &e), -EACCES);
	assert_string_equal(f.log, "connect port probe(40000,first) join(40000) close");
	assert_int_equal(res->stage, RP_STAGE_JOIN);
	assert_string_equal(res->why, "nobody came");
	assert_true(res->have_self);
	assert_false(res->have_peer);

	fake_init(&f, PRESERVE, PRESERVE);
	f.peer.mapped_addr = 0;                           /* no public address: no plan */
	assert_int_equal(run(&f, &o, &e), -EINVAL);
	assert_int_equal(res->stage, RP_STAGE_PLAN);
	assert_false(res->have_plan);
	assert_non_null(strstr(res->why, "no plan"));
	assert_null(strstr(f.log, "open"));

	fake_init(&f, PRESERVE, PRESERVE);
	f.open_r = -EPERM;
	assert_int_equal(run(&f, &o, &e), -EPERM);
	assert_string_equal(f.log, "connect port probe(40000,first) join(40000) open tell(abort) close");
	assert_string_equal(f.aborted, "setting up the punch: raw socket: denied");
	assert_int_equal(res->stage, RP_STAGE_SETUP);
	assert_string_equal(res->detail, "raw socket: denied");
	assert_string_equal(res->why, "setting up the punch: raw socket: denied");

	fake_init(&f, PRESERVE, PRESERVE);
	f.handoff_r = -ENOTCONN;
	assert_int_equal(run(&f, &o, &e), -ENOTCONN);
	assert_int_equal(res->stage, RP_STAGE_HANDOFF);
	assert_int_equal(res->fd, -1);
	assert_true(res->t_connected_ms >= 0);            /* it did connect */
	assert_non_null(strstr(res->why, "handoff to a kernel socket failed"));
	assert_int_equal(f.n_close, 1);

	/* no opts / no ops: nothing runs */
	assert_int_equal(rp_punch_run_ops(NULL, &fake_ops, &f, NULL, NULL, res), -EINVAL);
	assert_int_equal(rp_punch_run_ops(&o, NULL, &f, NULL, NULL, res), -EINVAL);
	assert_int_equal(rp_punch_run_ops(&o, &fake_ops, &f, NULL, NULL, NULL), -EINVAL);
}

/* Between rounds: each way the agreement on the next round fails. */
static void test_between_rounds_failures(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { 0 };

	fake_init(&f, SEQUENTIAL, PRESERVE);
	f.round_r[0] = -ETIMEDOUT;
	f.reprobe_r = -ETIMEDOUT;
	assert_int_equal(run(&f, &o, &e), -ETIMEDOUT);
	assert_string_equal(res->why, "re-probe failed: Connection timed out");
	assert_null(strstr(f.log, "exchange"));
	assert_int_equal(res->n_rounds, 1);
	assert_string_equal(res->rounds[0].st.why, "why of round 0");    /* the round's own why stays */

	fake_init(&f, SEQUENTIAL, PRESERVE);
	f.round_r[0] = -ETIMEDOUT;
	f.exchange_r = -EPIPE;
	assert_int_equal(run(&f, &o, &e), -EPIPE);
	assert_string_equal(res->why, "could not agree on round 2 with the peer: the peer left");
	assert_null(strstr(f.log, "schedule"));
	assert_non_null(strstr(f.log, "tell(abort)"));

	fake_init(&f, SEQUENTIAL, PRESERVE);
	f.round_r[0] = -ETIMEDOUT;
	f.peer_next.mapped_addr = htonl(0xc6120203);      /* the peer's public address moved */
	assert_int_equal(run(&f, &o, &e), -EPROTO);
	assert_non_null(strstr(res->why, "could not agree on round 2"));
	assert_null(strstr(f.log, "schedule"));

	fake_init(&f, SEQUENTIAL, PRESERVE);
	f.round_r[0] = -ETIMEDOUT;
	f.schedule_r = -ETIMEDOUT;
	assert_int_equal(run(&f, &o, &e), -ETIMEDOUT);
	assert_non_null(strstr(res->why, "could not agree on round 2"));

	fake_init(&f, SEQUENTIAL, PRESERVE);
	f.round_r[0] = -ETIMEDOUT;
	mk(&f.reprobed, RANDOM, RP_FILTER_RST, "198.18.1.2", 0);   /* the NAT now allocates randomly ... */
	mk(&f.peer_next, SEQUENTIAL, RP_FILTER_RST, "198.18.2.2", 41001);   /* ... and so does the peer's, sequentially */
	assert_int_equal(run(&f, &o, &e), -ENOTSUP);
	assert_non_null(strstr(res->why, "re-plan for round 2: "));
	assert_string_equal(rp_plan_name(&res->plan_now), "impossible");
	assert_string_equal(rp_plan_name(&res->plan), "predicted-burst");
	assert_int_equal(res->stage, RP_STAGE_PUNCH);
}

/* With a relay on both sides: the side that gives up says whether it goes on to the relay, and the
 * other follows it there, or stops too. */
static void test_peer_gave_up_relay(void **state)
{
	(void)state;
	struct fake f;
	struct rp_punch_run_opts o = { 0 };
	fake_relay_ops = fake_ops;
	fake_relay_ops.relay_connect = f_relay_fallback;

	fake_init(&f, PRESERVE, PRESERVE);             /* every round missed: to the relay, and we say so */
	f.relay = true;
	for (unsigned i = 0; i < RP_PUNCH_MAX_ROUNDS; i++)
		f.round_r[i] = -ETIMEDOUT;
	assert_int_equal(rp_punch_run_ops(&o, &fake_relay_ops, &f, NULL, NULL, res), 0);
	assert_int_equal(res->path, RP_PATH_RELAY);
	assert_int_equal(f.abort_relay, 1);
	assert_non_null(strstr(f.log, "tell(abort) relay close"));

	fake_init(&f, PRESERVE, PRESERVE);             /* interrupted: no relay, and we say so */
	f.relay = true;
	f.round_r[0] = -EINTR;
	assert_int_equal(rp_punch_run_ops(&o, &fake_relay_ops, &f, NULL, NULL, res), -EINTR);
	assert_int_equal(f.abort_relay, 0);
	assert_null(strstr(f.log, "relay"));

	fake_init(&f, PRESERVE, PRESERVE);             /* the peer stops: so do we, at once */
	f.relay = true;
	f.peer_why = "interrupted";
	f.peer_relay = false;
	assert_int_equal(rp_punch_run_ops(&o, &fake_relay_ops, &f, NULL, NULL, res), -ECONNABORTED);
	assert_string_equal(res->why, "the peer gave up: interrupted");
	assert_null(strstr(f.log, "relay"));
	assert_null(strstr(f.log, "tell(abort)"));

	fake_init(&f, PRESERVE, PRESERVE);             /* the peer goes to the relay: we follow */
	f.relay = true;
	f.peer_why = "no valid SYN/SYN-ACK from the peer";
	f.peer_relay = true;
	assert_int_equal(rp_punch_run_ops(&o, &fake_relay_ops, &f, NULL, NULL, res), 0);
	assert_int_equal(res->path, RP_PATH_RELAY);
	assert_non_null(strstr(f.log, "relay close"));
}

/* The peer gives up after the meeting: its abort halts our round, or ends the wait between rounds;
 * its reason is ours to show, and no abort goes back. */
static void test_peer_gave_up(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { 0 };

	fake_init(&f, PRESERVE, PRESERVE);
	f.peer_why = "interrupted";
	f.peer_round = 0;
	assert_int_equal(run(&f, &o, &e), -ECONNABORTED);
	assert_int_equal(res->stage, RP_STAGE_PUNCH);
	assert_string_equal(res->peer_why, "interrupted");
	assert_string_equal(res->why, "the peer gave up: interrupted");
	assert_int_equal(res->n_rounds, 1);
	assert_string_equal(f.log, "connect port probe(40000,first) join(40000) open round(0) totals close");

	fake_init(&f, SEQUENTIAL, PRESERVE);
	f.round_r[0] = -ETIMEDOUT;
	f.peer_why = "setting up the punch: raw socket: denied";
	f.peer_round = 99;
	f.exchange_r = -ECONNABORTED;                  /* its abort came instead of its natinfo */
	assert_int_equal(run(&f, &o, &e), -ECONNABORTED);
	assert_string_equal(res->why, "the peer gave up: setting up the punch: raw socket: denied");
	assert_string_equal(res->peer_why, "setting up the punch: raw socket: denied");
	assert_null(strstr(f.log, "tell(abort)"));
	assert_null(strstr(f.log, "schedule"));

	/* our own failures still tell the peer */
	fake_init(&f, PRESERVE, PRESERVE);
	f.round_r[0] = -EINTR;
	assert_int_equal(run(&f, &o, &e), -EINTR);
	assert_string_equal(res->why, "interrupted");
	assert_string_equal(res->peer_why, "");
	assert_string_equal(f.aborted, "interrupted");
}

static void test_refusal(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { 0 };
	fake_init(&f, RANDOM, RANDOM);
	assert_int_equal(run(&f, &o, &e), -ENOTSUP);
	assert_string_equal(f.log, "connect port probe(40000,first) join(40000) tell(abort) close");
	assert_string_equal(e.s, "B0 E0 B1 B2 E1 E2 B4 E4! ");
	assert_int_equal(res->stage, RP_STAGE_PLAN);
	assert_true(res->have_plan);
	assert_true(rp_plan_refused(&res->plan));
	/* why = the reason, then the strategy's odds */
	assert_int_equal(strncmp(res->why, res->plan.reason, strlen(res->plan.reason)), 0);
	assert_non_null(strstr(res->why, "(a port pair out of ~2^32"));
	assert_int_equal(res->n_rounds, 0);
}

static void test_serverless(void **state)
{
	(void)state;
	struct fake f;
	struct evlog e;
	struct rp_punch_run_opts o = { .offer = true };
	fake_init(&f, SEQUENTIAL, PRESERVE);   /* 3 rounds planned, but no channel: one */
	f.round_r[0] = -ETIMEDOUT;
	assert_int_equal(run(&f, &o, &e), -ETIMEDOUT);
	assert_string_equal(f.log, "port probe(40000,first) serverless open round(0) totals tell(abort) close");
	assert_string_equal(e.s, "B1 E1 B3 T E3 B4 E4 B5 E5 B6 G R0 E6! ");
	assert_true(res->serverless);
	assert_int_equal(f.filter_ms, 0);                 /* no server: no filter probe to size */
	assert_true(res->stage_ms[RP_STAGE_CONNECT] < 0);
	assert_true(res->stage_ms[RP_STAGE_OFFER] >= 0);
	assert_int_equal(f.ro[0].start_real_ns, 2000);
	assert_true(f.ro[0].self->confidence == 0.5);    /* planned from the codec's view of us */
	assert_true(res->self.confidence == 0.8);        /* the report keeps the probe's */
	assert_int_equal(res->n_rounds, 1);
	/* a failed exchange of texts */
	fake_init(&f, SEQUENTIAL, PRESERVE);
	f.serverless_r = -ENODATA;
	assert_int_equal(run(&f, &o, &e), -ENODATA);
	assert_int_equal(res->stage, RP_STAGE_OFFER);
	assert_string_equal(rp_punch_stage_str(res->stage), "offer");
	assert_string_equal(res->why, "no answer");
}

static int setup(void **state)
{
	(void)state;
	res = malloc(sizeof(*res));
	return res ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(res);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connected_first_round),
		cmocka_unit_test(test_relay_first_beside_punch),
		cmocka_unit_test(test_prepare_beside),
		cmocka_unit_test(test_miss_replan_connect),
		cmocka_unit_test(test_all_rounds_miss),
		cmocka_unit_test(test_stage_failures),
		cmocka_unit_test(test_between_rounds_failures),
		cmocka_unit_test(test_peer_gave_up),
		cmocka_unit_test(test_peer_gave_up_relay),
		cmocka_unit_test(test_refusal),
		cmocka_unit_test(test_serverless),
	};
	return cmocka_run_group_tests_name("pipeline", tests, setup, teardown);
}
