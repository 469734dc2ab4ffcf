/* SPDX-License-Identifier: MIT */
/* Meeting over several rendezvous servers (see client.h, "Several servers"). */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/rendezvous/client-internal.h"
#include "rawpunch/rendezvous/proto.h"

static uint64_t server_rank(const struct rv_keys *k, const struct sockaddr_in *sa)
{
	char name[32];
	uint8_t h[8];
	uint64_t v = 0;
	crypto_generichash_state st;
	char ip[INET_ADDRSTRLEN] = "";
	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	int n = snprintf(name, sizeof(name), "%s:%u", ip, ntohs(sa->sin_port));
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)k->id_hex, 2 * RV_ID_LEN);
	crypto_generichash_update(&st, (const uint8_t *)"/", 1);
	crypto_generichash_update(&st, (const uint8_t *)name, (size_t)n);
	crypto_generichash_final(&st, h, sizeof(h));
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

void rv_server_order(const struct rv_keys *k, const struct sockaddr_in *sv, unsigned n, unsigned *order)
{
	uint64_t rank[RV_MAX_SERVERS];
	if (n > RV_MAX_SERVERS)
		n = RV_MAX_SERVERS;
	for (unsigned i = 0; i < n; i++) {
		order[i] = i;
		rank[i] = server_rank(k, &sv[i]);
	}
	/* insertion sort, highest rank first; ties (the same server twice) keep the list order */
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && rank[order[j]] > rank[order[j - 1]]; j--) {
			unsigned t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
}

int rv_connect_first(const struct sockaddr_in *sv, unsigned n, const struct rv_keys *k, int connect_ms,
		     volatile sig_atomic_t *stop, struct rv_client **out, unsigned *which)
{
	unsigned order[RV_MAX_SERVERS];
	int r = -EINVAL;
	if (!sv || !k || !out || !which || n == 0 || n > RV_MAX_SERVERS)
		return -EINVAL;
	rv_server_order(k, sv, n, order);
	for (unsigned i = 0; i < n; i++) {
		if (stop && *stop)
			return -EINTR;
		r = rv_connect(&sv[order[i]], connect_ms > 0 ? connect_ms : RV_CONNECT_MS, out);
		if (r == 0) {
			*which = order[i];
			return 0;
		}
	}
	return r;
}

/* ---- the join over several servers --------------------------------------------------------------- */

enum wstate { W_IDLE, W_RUNNING, W_FAILED, W_PAIRED, W_DONE };

struct multi;

struct worker {
	struct multi *m;
	unsigned idx;                      /* index into servers[] */
	struct rv_client *c;
	volatile sig_atomic_t stop;
	enum wstate state;
	int err;
	bool thread;
	pthread_t th;
};

struct multi {
	const struct sockaddr_in *sv;
	const struct rv_keys *k;
	const struct rv_join_req *req;
	struct rv_join_res *res;
	uint64_t deadline;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int winner;                        /* worker index, -1 none */
	struct worker w[RV_MAX_SERVERS];
};

static void set_state(struct worker *w, enum wstate st, int err)
{
	pthread_mutex_lock(&w->m->mu);
	w->state = st;
	w->err = err;
	pthread_cond_broadcast(&w->m->cv);
	pthread_mutex_unlock(&w->m->mu);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct multi *m = w->m;
	int r = 0;
	if (!w->c)
		r = rv_connect(&m->sv[w->idx], RV_CONNECT_MS, &w->c);
	if (r) {
		set_state(w, W_FAILED, r);
		return NULL;
	}
	rv_set_stop(w->c, &w->stop);
	r = rv_join_begin_(w->c, m->k, m->req, m->deadline);
	pthread_mutex_lock(&m->mu);
	if (r == 0 && m->winner < 0) {
		m->winner = (int)(w - m->w);
		w->state = W_PAIRED;     /* the first pairing wins: finish the join on this server */
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		r = rv_join_finish_(w->c, m->req, m->res, m->deadline);
		set_state(w, W_DONE, r);
		return NULL;
	}
	w->state = W_FAILED;
	w->err = r ? r : -ECANCELED; /* paired too, but later than the winner: let it go */
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

static int start_worker(struct multi *m, struct worker *w)
{
	w->state = W_RUNNING;
	if (pthread_create(&w->th, NULL, worker_main, w)) {
		w->state = W_FAILED;
		w->err = -EAGAIN;
		return -EAGAIN;
	}
	w->thread = true;
	(void)m;
	return 0;
}

/* Stop and reap every worker but keep (except), closing their clients. */
static void reap(struct multi *m, unsigned n, int keep)
{
	for (unsigned i = 0; i < n; i++)
		if ((int)i != keep)
			m->w[i].stop = 1;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &m->w[i];
		if (w->thread)
			pthread_join(w->th, NULL);
		w->thread = false;
		if ((int)i != keep && w->c) {
			rv_close(w->c);
			w->c = NULL;
		}
	}
}

/* Errors after the pairing that mean "this server (or its connection) died": try the next one. */
static bool server_died(int r)
{
	return r == -EPIPE || r == -ECONNRESET || r == -ECONNABORTED || r == -EPROTO;
}

int rv_join_any(const struct sockaddr_in *sv, unsigned n, const struct rv_keys *k, const struct rv_join_req *req,
		volatile sig_atomic_t *stop, struct rv_client **io, unsigned *which, struct rv_join_res *res)
{
	unsigned order[RV_MAX_SERVERS];
	bool dead[RV_MAX_SERVERS] = { false };
	struct multi *m;
	int timeout = req && req->timeout_ms > 0 ? req->timeout_ms : 30000, last = -ETIMEDOUT;
	if (!sv || !k || !req || !io || !which || !res || n == 0 || n > RV_MAX_SERVERS || req->n_cand > RV_MAX_CAND ||
	    (*io && *which >= n))
		return -EINVAL;
	if (!(m = calloc(1, sizeof(*m))))
		return -ENOMEM;
	m->sv = sv;
	m->k = k;
	m->req = req;
	m->res = res;
	m->deadline = rp_mono_ms() + (uint64_t)timeout;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	rv_server_order(k, sv, n, order);
	/* a client connected beforehand (rv_connect_first) is where we begin: the servers before it in
	 * the order did not answer a moment ago */
	struct rv_client *pre = *io;
	unsigned first = 0;
	if (pre)
		while (first < n && order[first] != *which)
			dead[order[first++]] = true;
	*io = NULL;
	for (;;) {                               /* one attempt over the servers not known dead */
		unsigned started = 0, next = 0;
		uint64_t hedge_at = 0;
		m->winner = -1;
		memset(res, 0, sizeof(*res));
		for (unsigned i = 0; i < n; i++)
			m->w[i] = (struct worker){ .m = m, .idx = order[i], .state = W_IDLE };
		while (next < n && dead[order[next]])
			next++;
		pthread_mutex_lock(&m->mu);
		for (;;) {
			uint64_t now = rp_mono_ms();
			if (stop && *stop) {
				last = -EINTR;
				break;
			}
			if (now >= m->deadline) {
				last = -ETIMEDOUT;
				break;
			}
			/* the winner finished: done, or its server died after the pairing */
			if (m->winner >= 0 && m->w[m->winner].state == W_DONE)
				break;
			/* a winner is chosen: the others give up their slots at once */
			if (m->winner >= 0)
				for (unsigned i = 0; i < started; i++)
					if ((int)i != m->winner)
						m->w[i].stop = 1;
			/* start the next server: at once when every started one has failed, else as a hedge
			 * once the last one has waited RV_HEDGE_MS unpaired (a peer that cannot reach it) */
			bool all_failed = true;
			for (unsigned i = 0; i < started; i++)
				if (m->w[i].state != W_FAILED)
					all_failed = false;
			if (m->winner < 0 && next < n && (all_failed || now >= hedge_at)) {
				struct worker *w = &m->w[started];
				w->idx = order[next];
				if (pre && order[next] == *which) {
					w->c = pre;
					pre = NULL;
				}
				start_worker(m, w);
				started++;
				next++;
				while (next < n && dead[order[next]])
					next++;
				hedge_at = now + RV_HEDGE_MS;
				continue;
			}
			if (m->winner < 0 && all_failed && next >= n) {
				last = started ? m->w[started - 1].err : -EHOSTUNREACH;
				break;                   /* nothing left to try */
			}
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t wake = m->winner < 0 && next < n && hedge_at < m->deadline ? hedge_at : m->deadline;
			if (stop)
				wake = wake < now + 50 ? wake : now + 50;   /* look at the stop flag now and then */
			uint64_t d = wake > now ? wake - now : 1;
			ts.tv_sec += (time_t)(d / 1000);
			ts.tv_nsec += (long)(d % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&m->cv, &m->mu, &ts);
		}
		int win = m->winner;
		pthread_mutex_unlock(&m->mu);
		if (win >= 0 && m->w[win].state == W_DONE && m->w[win].err == 0) {
			reap(m, started, win);
			*io = m->w[win].c;
			*which = m->w[win].idx;
			last = 0;
			break;
		}
		int werr = win >= 0 && m->w[win].state == W_DONE ? m->w[win].err : 0;
		reap(m, started, -1);
		if (!werr || !server_died(werr))
			break;                          /* stopped, timed out, or an answer to report */
		dead[m->w[win].idx] = true;             /* died after the pairing: meet at the next one */
		last = werr;
	}
	if (pre)
		rv_close(pre);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m);
	return last;
}
