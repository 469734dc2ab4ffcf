/* SPDX-License-Identifier: MIT */
/* The NAT probe, nat_ttl confirmed from outside (see probe.h, phase 4), on a thread of its own while
 * the allocation is sampled. One test: a SYN with TTL t from the punch port to the server's address
 * at a fresh port Q, then the server connects from Q to our public port. Its SYN matches the mapping
 * our SYN left on every NAT it passed (a simultaneous open), so it reaches this host -- pcap sees it
 * -- exactly when t was enough to pass the outermost NAT. A test that does not get in meets our
 * outermost NAT's filter as an unsolicited SYN would: the server's verdict is the filtering, and the
 * separate filter probe is only run when no test gave one. */
#include "rawpunch/probe/probe-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "capture/capture.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/base/clock.h"

#define LATE_MS 20   /* after the server's verdict, how long its SYN may still be on its way to pcap */

static uint32_t rnd32(void)
{
	uint32_t x;
	if (getrandom(&x, sizeof(x), 0) != sizeof(x))
		x = (uint32_t)rp_clock_ns(CLOCK_MONOTONIC) * 2654435761u;
	return x;
}

/* Did the server's SYN from port q reach us? Reads what pcap has, waiting up to wait_ms. */
static bool server_syn_seen(struct probe_confirm *pc, struct rp_cap *cap, uint16_t q, int wait_ms)
{
	uint64_t deadline = rp_clock_ns(CLOCK_MONOTONIC) + (uint64_t)wait_ms * 1000000ull;
	for (;;) {
		struct rp_event ev;
		while (rp_cap_next(cap, &ev) == 1)
			if (ev.kind == RP_EV_TCP && ev.tuple.saddr == pc->o->connect_back_addr && ev.tuple.sport == q &&
			    ev.tuple.dport == pc->lport && (ev.flags & RP_TH_SYN) && !(ev.flags & RP_TH_ACK))
				return true;
		uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
		if (now >= deadline || rp_cap_wait(cap, (int)((deadline - now) / 1000000ull) + 1) < 0)
			return false;
	}
}

/* One test at TTL ttl: 1 passed, 0 filtered, -errno when it said nothing. */
static int one_test(struct probe_confirm *pc, struct rp_cap *cap, struct rp_craft *cr, unsigned ttl)
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
	int e = rp_craft_send(cr, &s);
	if (e >= 0)
		e = pc->o->connect_back(pc->o->connect_back_arg, pc->public_port, t->server_port, pc->ms, &t->verdict);
	if (e < 0) {
		t->err = e;
		return e;
	}
	t->passed = server_syn_seen(pc, cap, t->server_port, LATE_MS);
	if (!t->passed && pc->filter_err && t->verdict != RP_FILTER_UNKNOWN && t->verdict != RP_FILTER_OPEN) {
		pc->filtering = t->verdict;
		pc->filter_err = 0;
	}
	return t->passed;
}

static void *confirm_thread(void *arg)
{
	struct probe_confirm *pc = arg;
	struct rp_cap *cap = NULL;
	struct rp_craft *cr = NULL;
	char err[256], expr[2048];
	struct rp_flow fl = { .laddr = pc->laddr, .lport = pc->lport, .raddr = pc->o->connect_back_addr };
	int e = rp_filter_build(&fl, 1, expr, sizeof(expr));
	struct rp_cap_opts co = { .iface = pc->ifname, .filter = expr, .dir = RP_CAP_IN };
	if (e < 0 || (e = rp_cap_open(&co, &cap, err, sizeof(err))) < 0 ||
	    (e = rp_craft_open(&cr, 0, err, sizeof(err))) < 0) {
		pc->err = e;
		goto out;
	}
	/* the highest TTL seen to fail and the lowest seen to pass: nat_ttl is a TTL that passed right
	 * above one that failed. From the candidate down while it passes, up while it fails. */
	unsigned failed = 0, passed = 0, ttl = pc->first;
	pc->err = -ENOENT;
	while (pc->n < RP_PROBE_MAX_CONFIRM && ttl >= 1 && ttl <= pc->max_ttl) {
		e = one_test(pc, cap, cr, ttl);
		if (e < 0) {
			pc->err = e;
			break;
		}
		if (e) {
			passed = ttl;
			if (ttl == 1) {
				pc->err = -EALREADY;   /* the server got in with no mapping made past hop 1 */
				break;
			}
			if (failed == ttl - 1) {
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
out:
	if (cr)
		rp_craft_close(cr);
	rp_cap_close(cap);
	if (pc->filter_err && pc->o->filter_probe)
		pc->filter_err = pc->o->filter_probe(pc->o->filter_probe_arg, pc->lport,
						     pc->o->filter_timeout_ms > 0 ? pc->o->filter_timeout_ms : 1000,
						     &pc->filtering);
	return NULL;
}

int probe_confirm_start(struct probe_confirm *pc)
{
	pc->n = 0;
	pc->ttl = 0;
	pc->err = 0;
	pc->filter_err = -ENOTCONN;
	if (pthread_create(&pc->th, NULL, confirm_thread, pc)) {
		pc->running = false;
		return -EAGAIN;
	}
	pc->running = true;
	return 0;
}

void probe_confirm_join(struct probe_confirm *pc)
{
	if (pc->running)
		pthread_join(pc->th, NULL);
	pc->running = false;
}
