/* SPDX-License-Identifier: MIT */
/* The NAT probe, nat_ttl confirmed from outside (see probe.h, end of phase 3), after the allocation
 * samples' SYNs so that its connections to the server are not among them. One test: a SYN with TTL t from
 * the punch port to the server's address at a fresh port Q, then the server connects from Q to our
 * public port. Its SYN matches the mapping our SYN left on every NAT it passed (a simultaneous open),
 * so it reaches this host -- pcap sees it -- exactly when t was enough to pass the outermost NAT. A
 * test that does not get in meets our outermost NAT's filter as an unsolicited SYN would: the
 * server's verdict then says what the filter does. A pass that settles nat_ttl ends the run as pcap
 * sees it: the server's verdict, a round trip later, is left to its call (call_leave). The capture and
 * the crafter may be opened ahead (probe_confirm_open: the packet ring's set-up takes the kernel
 * ~10 ms, and so does its close, which a left call has done beside the caller: close_beside). */
#include "rawpunch/probe/probe-internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/privs.h"

#define LATE_MS 20   /* after the server's verdict, how long its SYN may still be on its way to pcap */

static uint32_t rnd32(void)
{
	uint32_t x;
	if (getrandom(&x, sizeof(x), 0) != sizeof(x))
		x = (uint32_t)rp_clock_ns(CLOCK_MONOTONIC) * 2654435761u;
	return x;
}

/* The server's connect-back, on a thread of its own while pcap is watched. Its state is on the heap,
 * the thread's own: a pass that settles the run (the server's SYN got in) need not wait for the
 * server's verdict, a round trip later (the SYN's way back as our RST, the verdict's). The call is
 * then left to end on its own (call_leave): the thread, detached and without capabilities, frees the
 * state; nothing of the probe's is touched after rp_probe_run() returns. */
struct call {
	rp_connect_back_fn fn;           /* from the probe's opts: the call copies what it needs */
	void *arg;
	uint16_t public_port, server_port;
	int ms;
	pthread_mutex_t mu;              /* done, left and what the call said */
	bool done, left;
	enum rp_filter verdict;
	int err;
	pthread_t th;
};

static void call_free(struct call *c)
{
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void *call_thread(void *arg)
{
	struct call *c = arg;
	enum rp_filter v = RP_FILTER_UNKNOWN;
	/* the call is a plain TCP connection to the server, and the thread may outlive the probe (left):
	 * it gives up this thread's capabilities first (per thread), so none outlives the run's drop */
	(void)rp_privs_drop_caps();
	int err = c->fn(c->arg, c->public_port, c->server_port, c->ms, &v);
	pthread_mutex_lock(&c->mu);
	c->verdict = v;
	c->err = err;
	c->done = true;
	bool left = c->left;
	pthread_mutex_unlock(&c->mu);
	if (left)
		call_free(c);
	return NULL;
}

static bool call_done(struct call *c)
{
	pthread_mutex_lock(&c->mu);
	bool d = c->done;
	pthread_mutex_unlock(&c->mu);
	return d;
}

/* The call's start on its thread; NULL when it cannot start. */
static struct call *call_start(const struct probe_confirm *pc, uint16_t server_port)
{
	struct call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	*c = (struct call){ .fn = pc->o->connect_back, .arg = pc->o->connect_back_arg, .public_port = pc->public_port,
			    .server_port = server_port, .ms = pc->ms };
	pthread_mutex_init(&c->mu, NULL);
	if (pthread_create(&c->th, NULL, call_thread, c)) {
		call_free(c);
		return NULL;
	}
	return c;
}

/* The call's end, waited for: what it said into t (its verdict), freed. */
static int call_join(struct call *c, struct rp_probe_confirm *t)
{
	pthread_join(c->th, NULL);
	int err = c->err;
	t->verdict = c->verdict;
	call_free(c);
	return err;
}

/* pc's capture and crafter closed beside the caller, on a detached thread of their own that does
 * only that (their close takes the kernel ~10..30 ms, off the probe's way): the packet and raw sockets
 * are gone that soon, whatever the server's call still waits for. No thread: closed here. */
struct closer {
	struct rp_cap *cap;
	struct rp_craft *cr;
};

static void *closer_main(void *arg)
{
	struct closer *k = arg;
	if (k->cr)
		rp_craft_close(k->cr);
	rp_cap_close(k->cap);
	free(k);
	return NULL;
}

static void close_beside(struct probe_confirm *pc)
{
	struct closer *k = malloc(sizeof(*k));
	pthread_attr_t a;
	pthread_t th;
	if (k && !pthread_attr_init(&a)) {
		*k = (struct closer){ .cap = pc->cap, .cr = pc->cr };
		bool ok = !pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) &&
			  !pthread_create(&th, &a, closer_main, k);
		pthread_attr_destroy(&a);
		if (ok) {
			pc->cap = NULL;
			pc->cr = NULL;
			return;
		}
	}
	free(k);
	probe_confirm_close(pc);
}

/* The call no longer waited for (a pass that settles the run): it ends on its own (its thread,
 * detached, frees its state), pc's capture and crafter are closed beside the caller at once
 * (close_beside), and t's verdict stays unknown. When it already ended: as call_join, and the closes
 * are the caller's. */
static void call_leave(struct call *c, struct probe_confirm *pc, struct rp_probe_confirm *t)
{
	pthread_mutex_lock(&c->mu);
	bool done = c->done;
	pthread_t th = c->th;
	if (!done)
		c->left = true;
	pthread_mutex_unlock(&c->mu);   /* from here on c is the thread's (freed at its end) */
	if (!done)
		close_beside(pc);
	if (done)
		(void)call_join(c, t);   /* (a pass: what the call says does not change the result) */
	else
		pthread_detach(th);
}

/* Is this the server's SYN from port q to the punch port? */
static bool server_syn(const struct probe_confirm *pc, const struct rp_event *ev, uint16_t q)
{
	return ev->kind == RP_EV_TCP && ev->tuple.saddr == pc->o->connect_back_addr && ev->tuple.sport == q &&
	       ev->tuple.dport == pc->lport && (ev->flags & RP_TH_SYN) && !(ev->flags & RP_TH_ACK);
}

/* One test at TTL ttl, begun: our SYN, the server's call on its thread (*cp), and pcap watched until
 * the server's SYN got in (t->passed) or the call ended without it. 0 (test_end() takes the call),
 * or -errno when the test could not start. The server's SYN, when it gets in, is refused at once
 * with a RST in our SYN's sequence space (conntrack takes it, where it would drop the kernel's own,
 * seq 0), so the server's call returns after one round trip. */
static int test_begin(struct probe_confirm *pc, unsigned ttl, struct call **cp)
{
	struct rp_probe_confirm *t = &pc->tests[pc->n++];
	memset(t, 0, sizeof(*t));
	t->ttl = (uint8_t)ttl;
	for (;;) {   /* a server port no earlier test used: each test must meet a mapping of its own */
		t->server_port = (uint16_t)(20000 + rnd32() % 40000);
		bool used = false;
		for (unsigned i = 0; i + 1 < pc->n; i++)
			used |= pc->tests[i].server_port == t->server_port;
		if (!used)
			break;
	}
	struct rp_seg s = { .saddr = pc->laddr, .daddr = pc->o->connect_back_addr, .sport = pc->lport,
			    .dport = t->server_port, .seq = rnd32(), .flags = RP_TH_SYN, .win = 64240,
			    .ttl = (uint8_t)ttl,
			    .opts = { .has_mss = true, .mss = 1460, .sack_perm = true, .has_wscale = true, .wscale = 7 } };
	int e = rp_craft_send(pc->cr, &s);
	if (e < 0) {
		t->err = e;
		return e;
	}
	struct call *c = *cp = call_start(pc, t->server_port);
	if (!c) {
		t->err = -EAGAIN;
		return -EAGAIN;
	}
	uint64_t late = 0;
	while (!t->passed) {
		struct rp_event ev;
		while (!t->passed && rp_cap_next(pc->cap, &ev) == 1)
			if (server_syn(pc, &ev, t->server_port)) {
				struct rp_seg rst = { .saddr = pc->laddr, .daddr = pc->o->connect_back_addr,
						      .sport = pc->lport, .dport = t->server_port, .seq = s.seq + 1,
						      .ack = ev.seq + 1, .flags = RP_TH_RST | RP_TH_ACK };
				rp_craft_send(pc->cr, &rst);
				t->passed = true;
			}
		uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
		if (!late && call_done(c))
			late = now + (uint64_t)LATE_MS * 1000000ull;   /* its SYN may still be on the way to pcap */
		if (t->passed || (late && now >= late))
			break;
		rp_cap_wait(pc->cap, 5);
	}
	return 0;
}

/* The test's end: the call joined, or left where the test passed and that settles the run (settle).
 * 1 passed, 0 filtered, -errno when it said nothing. */
static int test_end(struct probe_confirm *pc, struct call *c, bool settle)
{
	struct rp_probe_confirm *t = &pc->tests[pc->n - 1];
	if (t->passed && settle) {
		call_leave(c, pc, t);
		return 1;
	}
	int err = call_join(c, t);
	if (err < 0) {
		t->err = err;
		return err;
	}
	if (!t->passed && pc->filter_err && t->verdict != RP_FILTER_UNKNOWN && t->verdict != RP_FILTER_OPEN) {
		pc->filtering = t->verdict;
		pc->filter_err = 0;
	}
	return t->passed;
}

/* t passed: is it nat_ttl? When t - 1 failed, or when t is the candidate the hops showed by
 * behaviour (the NAT itself at hop t - 1: a SYN with TTL t - 1 dies there) -- one test, one
 * connect-back of the server's rate limit. */
static bool settles(const struct probe_confirm *pc, unsigned t, unsigned failed)
{
	return t > 1 && (failed == t - 1 || (t == pc->first && pc->first_from_hops));
}

int probe_confirm_open(struct probe_confirm *pc)
{
	char err[256], expr[2048];
	struct rp_flow fl = { .laddr = pc->laddr, .lport = pc->lport, .raddr = pc->o->connect_back_addr };
	int e = rp_filter_build(&fl, 1, expr, sizeof(expr));
	struct rp_cap_opts co = { .iface = pc->ifname, .filter = expr, .dir = RP_CAP_IN };
	if (e < 0 || (e = rp_cap_open(&co, &pc->cap, err, sizeof(err))) < 0 ||
	    (e = rp_craft_open(&pc->cr, 0, err, sizeof(err))) < 0) {
		probe_confirm_close(pc);
		return e;
	}
	return 0;
}

void probe_confirm_close(struct probe_confirm *pc)
{
	if (pc->cr)
		rp_craft_close(pc->cr);
	rp_cap_close(pc->cap);
	pc->cr = NULL;
	pc->cap = NULL;
}

void probe_confirm_run(struct probe_confirm *pc)
{
	int e;
	pc->n = 0;
	pc->ttl = 0;
	pc->filter_err = -ENOTCONN;
	if (!pc->cap && (e = probe_confirm_open(pc)) < 0) {
		pc->err = e;
		return;
	}
	/* the highest TTL seen to fail and the lowest seen to pass: nat_ttl is a TTL that passed right
	 * above one that failed. From the first down while it passes, up while it fails. */
	unsigned failed = 0, passed = 0, ttl = pc->first;
	pc->err = -ENOENT;
	while (pc->n < RP_PROBE_MAX_CONFIRM && ttl >= 1 && ttl <= pc->max_ttl) {
		struct call *c = NULL;
		if ((e = test_begin(pc, ttl, &c)) < 0) {
			pc->err = e;
			break;
		}
		/* a pass that ends the run is not waited for: the server's verdict is left to the call */
		if ((e = test_end(pc, c, ttl == 1 || settles(pc, ttl, failed))) < 0) {
			pc->err = e;
			break;
		}
		if (e) {
			passed = ttl;
			if (ttl == 1) {
				pc->err = -EALREADY;   /* the server got in with no mapping made past hop 1 */
				break;
			}
			if (settles(pc, ttl, failed)) {
				pc->ttl = (uint8_t)ttl;
				pc->err = 0;
				break;
			}
			ttl--;
		} else {
			failed = ttl;
			if (passed == ttl + 1) {
				pc->ttl = (uint8_t)passed;
				pc->err = 0;
				break;
			}
			ttl++;
		}
	}
	probe_confirm_close(pc);
}
