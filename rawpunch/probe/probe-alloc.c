/* SPDX-License-Identifier: MIT */
/* The NAT probe's STUN flows in flight together (see probe-internal.h): the mapping tests and the
 * allocation samples of phases 3 and 4 as one event loop over non-blocking Binding exchanges, each
 * started at its own instant (or held until an earlier one's answer tells where it goes) and
 * time-stamped when its SYN left. One thread starts them in order, so the NAT sees their SYNs in
 * the order of their time stamps. An optional flow still in flight well after the others is given
 * up: on a lossy path one lost SYN among a dozen flows would otherwise hold the whole probe for the
 * kernel's 1 s retransmission. */
#include "rawpunch/probe/probe-internal.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "rawpunch/base/clock.h"

static void sleep_until(uint64_t mono_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(mono_ns / 1000000000ull), .tv_nsec = (long)(mono_ns % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return *x < *y ? -1 : *x > *y;
}

/* Once every flow that is not optional ended: how long an optional one may take (from its SYN),
 * twice the median exchange of those that answered and PROBE_FLOW_LATE_MS more; 0: not yet. */
static uint64_t late_ns(const struct probe_flow *f, unsigned n, uint64_t *tot)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!f[i].optional && (f[i].state == PROBE_FLOW_BUSY || (f[i].state == PROBE_FLOW_WAIT && f[i].start_ns)))
			return 0;
		if (f[i].state == PROBE_FLOW_DONE && !f[i].err)
			tot[k++] = f[i].res.total_ns;
	}
	if (!k)
		return 0;
	qsort(tot, k, sizeof(tot[0]), cmp_u64);
	return 2 * tot[k / 2] + (uint64_t)PROBE_FLOW_LATE_MS * 1000000ull;
}

/* Flow i is over (err 0: f->res holds the answer): the hook, and whether the run stops here. */
static bool finish(struct probe_flow *f, unsigned n, unsigned i, int err, probe_flow_done_fn done, void *arg)
{
	f[i].state = PROBE_FLOW_DONE;
	f[i].err = err;
	return done && done(f, n, i, arg) != 0;
}

int probe_flows_run(struct probe_flow *f, unsigned n, probe_flow_done_fn done, void *arg)
{
	struct rp_stun_conn *c = calloc(n ? n : 1, sizeof(*c));
	struct pollfd *pf = calloc(n ? n : 1, sizeof(*pf));
	int *map = calloc(n ? n : 1, sizeof(int));
	uint64_t *tot = calloc(n ? n : 1, sizeof(uint64_t));
	bool stop = false;
	if (!c || !pf || !map || !tot) {
		free(c); free(pf); free(map); free(tot);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		c[i].fd = -1;
		f[i].err = -ECANCELED;
		if (f[i].state != PROBE_FLOW_SKIP)
			f[i].state = PROBE_FLOW_WAIT;
	}
	for (;;) {
		uint64_t now = rp_clock_ns(CLOCK_MONOTONIC), next = UINT64_MAX;
		unsigned np = 0, open = 0;
		/* start what is due, in the order given */
		for (unsigned i = 0; i < n && !stop; i++) {
			if (f[i].state != PROBE_FLOW_WAIT || !f[i].start_ns)
				continue;
			if (f[i].start_ns > now) {
				next = f[i].start_ns < next ? f[i].start_ns : next;
				continue;
			}
			int e = rp_stun_conn_start(&c[i], &f[i].to, &f[i].so);
			if (e) {
				f[i].res = (struct rp_stun_result){ .server = f[i].to, .t_start_ns = now,
								     .t_start_real_ns = rp_clock_ns(CLOCK_REALTIME) };
				stop = finish(f, n, i, e, done, arg);
				i = (unsigned)-1;   /* the hook may have released a held flow: look again */
			} else {
				f[i].state = PROBE_FLOW_BUSY;
			}
			now = rp_clock_ns(CLOCK_MONOTONIC);
		}
		for (unsigned i = 0; i < n; i++) {
			if (f[i].state == PROBE_FLOW_BUSY) {
				pf[np] = (struct pollfd){ .fd = c[i].fd, .events = rp_stun_conn_events(&c[i]) };
				map[np++] = (int)i;
			}
			open += f[i].state == PROBE_FLOW_WAIT && f[i].start_ns;
		}
		if (stop || (!np && !open))
			break;
		int wait = 50;
		if (next != UINT64_MAX)
			wait = next > now ? (int)((next - now) / 1000000ull) : 0;
		uint64_t late = late_ns(f, n, tot);
		for (unsigned k = 0; late && k < np; k++) {
			unsigned i = (unsigned)map[k];
			if (!f[i].optional)
				continue;
			uint64_t due = c[i].res.t_start_ns + late;
			if (now >= due) {   /* given up: its port stays unknown, a gap in the series */
				f[i].res = c[i].res;
				rp_stun_conn_close(&c[i]);
				stop = finish(f, n, i, -ETIMEDOUT, done, arg);
				map[k] = -1;
			} else if ((int)((due - now) / 1000000ull) + 1 < wait) {
				wait = (int)((due - now) / 1000000ull) + 1;
			}
		}
		unsigned kept = 0;   /* the given-up ones out of the poll set */
		for (unsigned k = 0; k < np; k++)
			if (map[k] >= 0) {
				pf[kept] = pf[k];
				map[kept++] = map[k];
			}
		np = kept;
		if (stop)
			break;
		if (np)
			poll(pf, np, wait);
		else if (wait)
			sleep_until(now + (uint64_t)wait * 1000000ull);
		for (unsigned k = 0; k < np && !stop; k++) {
			unsigned i = (unsigned)map[k];
			int s = rp_stun_conn_step(&c[i]);
			if (s == 0)
				continue;
			f[i].res = c[i].res;
			rp_stun_conn_close(&c[i]);
			stop = finish(f, n, i, s < 0 ? s : 0, done, arg);
		}
	}
	for (unsigned i = 0; i < n; i++)   /* stopped early: what is still open goes */
		if (c[i].fd >= 0)
			rp_stun_conn_close(&c[i]);
	free(c); free(pf); free(map); free(tot);
	return 0;
}
