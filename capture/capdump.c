/* SPDX-License-Identifier: MIT */
/* A capture that goes on writing its dump on its own (see capdump.h). */
#include "capture/capdump.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define POLL_MS 100   /* how soon a stop is seen while nothing arrives */

struct rp_capdump {
	struct rp_cap *cap;
	pthread_t th;
	atomic_bool stop;
};

/* Read (and so dump) everything pending: the number of frames read, or -errno. */
static long drain(struct rp_cap *c)
{
	const uint8_t *f;
	size_t caplen, wirelen;
	uint64_t ts;
	long n = 0;
	int r;
	while ((r = rp_cap_next_raw(c, &f, &caplen, &wirelen, &ts)) == 1)
		n++;
	return r < 0 ? r : n;
}

static void *run(void *arg)
{
	struct rp_capdump *d = arg;
	while (!atomic_load(&d->stop)) {
		int r = rp_cap_wait(d->cap, POLL_MS);
		if (r == -EINTR || r == 0)
			continue;
		if (r < 0 || drain(d->cap) < 0)
			break;   /* a capture error: what was written stays written */
	}
	return NULL;
}

int rp_capdump_start(struct rp_cap *cap, struct rp_capdump **out)
{
	struct rp_capdump *d = calloc(1, sizeof(*d));
	int r;
	if (!cap || !out) {
		rp_cap_close(cap);
		free(d);
		return -EINVAL;
	}
	if (!d) {
		rp_cap_close(cap);
		return -ENOMEM;
	}
	d->cap = cap;
	atomic_init(&d->stop, false);
	if ((r = pthread_create(&d->th, NULL, run, d))) {
		rp_cap_close(cap);
		free(d);
		return -r;
	}
	*out = d;
	return 0;
}

void rp_capdump_stop(struct rp_capdump *d, int linger_ms, struct rp_cap_stats *st)
{
	if (!d)
		return;
	atomic_store(&d->stop, true);
	pthread_join(d->th, NULL);
	/* the thread is gone: this one reads the rest, until the line has been quiet for linger_ms */
	for (int quiet = 0, total = 0; linger_ms > 0 && quiet < linger_ms && total < 10 * linger_ms;) {
		int step = linger_ms - quiet < POLL_MS ? linger_ms - quiet : POLL_MS;
		int r = rp_cap_wait(d->cap, step);
		total += step;
		if (r < 0 && r != -EINTR)
			break;
		long n = r > 0 ? drain(d->cap) : 0;
		if (n < 0)
			break;
		quiet = n > 0 ? 0 : quiet + step;
	}
	drain(d->cap);
	if (st && rp_cap_stats(d->cap, st))
		*st = (struct rp_cap_stats){ 0 };
	rp_cap_close(d->cap);
	free(d);
}
