/* SPDX-License-Identifier: MIT */
/* The NAT probe, phase 4 (see probe.h): the allocation samples, N STUN Bindings from fresh local
 * ports started one every interval_ms and in flight together, each time-stamped when its SYN left. */
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

/* N flows from fresh ports, one every interval, in flight together. */
int probe_sample_allocation(const struct rp_probe_opts *o, struct rp_probe_report *r, uint32_t laddr,
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
				probe_sample_from(&r->samples[first + i], RP_SAMPLE_ALLOC, &empty, e, 0);
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
			probe_sample_from(&r->samples[first + i], RP_SAMPLE_ALLOC, &c[i].res, s < 0 ? s : 0, 0);
			rp_stun_conn_close(&c[i]);
			busy[i] = false;
			finished++;
		}
	}
	r->n_samples += n;
	free(c); free(busy); free(pf); free(map);
	return 0;
}
