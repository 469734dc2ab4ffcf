/* SPDX-License-Identifier: MIT */
/* Port mapping beside the probe (pmhold.h): the asking thread, the refreshing thread, the natinfo's
 * pm_* fields. */
#include "rawpunch/punch/pmhold.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rawpunch/base/clock.h"

#define REFRESH_TIMEOUT_MS 2000

struct rp_pmhold {
	struct rp_portmap_opts o;
	_Atomic uint64_t give_up_ns;
	struct rp_portmap m;
	int rc;
	pthread_t ask, keep;
	bool asking, keeping;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;                   /* under mu: the refresher ends */
	unsigned refreshes;          /* under mu */
	int refresh_err;             /* under mu */
};

static void *ask_main(void *arg)
{
	struct rp_pmhold *h = arg;
	h->rc = rp_portmap_request(&h->o, &h->m);
	return NULL;
}

int rp_pmhold_start(const struct rp_portmap_opts *o, struct rp_pmhold **out)
{
	struct rp_pmhold *h;
	if (!o || !out || !o->internal_port)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->o = *o;
	atomic_init(&h->give_up_ns, 0);
	h->o.give_up_ns = &h->give_up_ns;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->ask, NULL, ask_main, h)) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return -EAGAIN;
	}
	h->asking = true;
	*out = h;
	return 0;
}

void rp_pmhold_give_up_in(struct rp_pmhold *h, int ms)
{
	if (h)
		atomic_store(&h->give_up_ns, rp_mono_ns() + (uint64_t)ms * 1000000ull);
}

int rp_pmhold_wait(struct rp_pmhold *h)
{
	if (!h)
		return -EINVAL;
	if (h->asking) {
		pthread_join(h->ask, NULL);
		h->asking = false;
	}
	return h->rc;
}

const struct rp_portmap *rp_pmhold_map(const struct rp_pmhold *h)
{
	return &h->m;
}

void rp_pmhold_fill(const struct rp_pmhold *h, struct rp_natinfo *ni)
{
	const struct rp_portmap *m = &h->m;
	size_t n = 0;
	ni->pm_asked = true;
	ni->pm_found = 0;
	ni->pm_proto[0] = 0;
	ni->pm_addr = 0;
	ni->pm_port = 0;
	ni->pm_lifetime_s = 0;
	ni->pm_error[0] = 0;
	ni->pm_ms = m->total_ms > 0 ? m->total_ms : 0;
	for (unsigned p = 0; p < RP_PM_NPROTO; p++)
		if (m->att[p].present)
			ni->pm_found |= (uint8_t)(1u << p);
	if (h->rc == 0 && m->active) {
		snprintf(ni->pm_proto, sizeof(ni->pm_proto), "%s", rp_pm_proto_name(m->rec.proto));
		ni->pm_addr = m->rec.external_addr;
		ni->pm_port = m->rec.external_port;
		ni->pm_lifetime_s = m->lifetime_s;
		return;
	}
	/* why not, per protocol asked, in one line */
	if (h->rc == -ENETUNREACH) {
		snprintf(ni->pm_error, sizeof(ni->pm_error), "no default gateway to ask");
		return;
	}
	for (unsigned p = 0; p < RP_PM_NPROTO && n < sizeof(ni->pm_error); p++) {
		const struct rp_pm_attempt *a = &m->att[p];
		int w;
		if (!a->tried)
			continue;
		w = snprintf(ni->pm_error + n, sizeof(ni->pm_error) - n, "%s%s: %s", n ? "; " : "",
			     rp_pm_proto_name((enum rp_pm_proto)p),
			     a->why[0] ? a->why : a->err ? strerror(-a->err) : "no answer");
		if (w < 0)
			break;
		n += (size_t)w;
	}
	if (!ni->pm_error[0])
		snprintf(ni->pm_error, sizeof(ni->pm_error), "%s", strerror(h->rc ? -h->rc : EPROTO));
}

/* The refresher: at half the lifetime (rp_portmap_due_ms), until stop. */
static void *keep_main(void *arg)
{
	struct rp_pmhold *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		int64_t due = rp_portmap_due_ms(&h->m);
		if (due > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(due / 1000);
			ts.tv_nsec += (long)(due % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&h->mu);
		int r = rp_portmap_refresh(&h->m, REFRESH_TIMEOUT_MS);
		pthread_mutex_lock(&h->mu);
		if (r) {
			h->refresh_err = r;
			/* try again in a second rather than spinning (the mapping lives on until its end) */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		} else {
			h->refreshes++;
		}
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int rp_pmhold_keep(struct rp_pmhold *h)
{
	if (!h)
		return -EINVAL;
	rp_pmhold_wait(h);
	if (h->rc || !h->m.active)
		return -ENOENT;
	if (h->keeping)
		return 0;
	if (pthread_create(&h->keep, NULL, keep_main, h))
		return -EAGAIN;
	h->keeping = true;
	return 0;
}

unsigned rp_pmhold_refreshes(const struct rp_pmhold *h, int *last_err)
{
	struct rp_pmhold *w = (struct rp_pmhold *)h;
	unsigned n;
	pthread_mutex_lock(&w->mu);
	n = w->refreshes;
	if (last_err)
		*last_err = w->refresh_err;
	pthread_mutex_unlock(&w->mu);
	return n;
}

int rp_pmhold_release(struct rp_pmhold *h, int timeout_ms)
{
	int r;
	if (!h)
		return 0;
	rp_pmhold_wait(h);
	if (h->keeping) {
		pthread_mutex_lock(&h->mu);
		h->stop = true;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->keep, NULL);
	}
	r = rp_portmap_delete(&h->m, timeout_ms);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
	return r;
}

void rp_natinfo_through_mapping(struct rp_natinfo *ni)
{
	if (!ni->pm_port || !ni->pm_addr)
		return;
	ni->mapped_addr = ni->pm_addr;
	ni->mapped_port = ni->pm_port;
	ni->behind_nat = ni->pm_addr != ni->local_addr;
	ni->mapping = RP_MAP_EI;
	ni->filtering = RP_FILTER_OPEN;
}

void rp_natinfo_keep_portmap(struct rp_natinfo *ni, const struct rp_natinfo *from)
{
	ni->pm_asked = from->pm_asked;
	ni->pm_found = from->pm_found;
	memcpy(ni->pm_proto, from->pm_proto, sizeof(ni->pm_proto));
	ni->pm_addr = from->pm_addr;
	ni->pm_port = from->pm_port;
	ni->pm_lifetime_s = from->pm_lifetime_s;
	ni->pm_ms = from->pm_ms;
	memcpy(ni->pm_error, from->pm_error, sizeof(ni->pm_error));
}
