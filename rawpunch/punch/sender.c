/* SPDX-License-Identifier: MIT */
/* The punch executor's sending side (punch_impl.h): the round's phases, as a strategy gave them
 * (strategy.h's rp_exec), become SYN templates and port sets (fresh local ports picked and guarded,
 * random ports drawn, zipped into pairs, or a previous phase's pairs sent again), and one thread sends them through the burst engine (burst.h, libnet raw IPv4
 * engine so the packets pass the host's routing and show in --pcap), paced at the plan's rate. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture/capture.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/punch/punch_impl.h"

static void syn_opts(const struct rp_punch *p, struct tcp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->has_mss = true;
	o->mss = 1460;
	o->sack_perm = true;
	o->has_wscale = true;
	o->wscale = 7;
	o->has_ts = true;
	o->tsval = (uint32_t)(rp_mono_ns() / 1000000u) + p->ts_offset;
}

static int make_tmpl(struct rp_punch *p, struct rp_tmpl *t, uint16_t sport, uint8_t ttl)
{
	uint8_t buf[RP_TMPL_MAX];
	struct rp_seg s = {
		.saddr = p->laddr, .daddr = p->raddr, .sport = sport ? sport : 1, .dport = 1,
		.seq = p->isn_mine, .flags = RP_TH_SYN, .win = US_RCVBUF > 65535u ? 65535u : US_RCVBUF,
		.ttl = ttl,
	};
	syn_opts(p, &s.opts);
	int n = rp_craft_render(p->craft, &s, buf, sizeof(buf));
	if (n < 0)
		return n;
	return rp_tmpl_from_ip(t, buf, (size_t)n);
}

int rp_punch_reprime(struct rp_punch *p, uint16_t dport)
{
	struct rp_seg s = {
		.saddr = p->laddr, .daddr = p->raddr, .sport = p->punch_port, .dport = dport, .seq = p->isn_mine,
		.flags = RP_TH_SYN, .win = US_RCVBUF > 65535u ? 65535u : US_RCVBUF, .ttl = p->reprime_ttl,
	};
	if (!p->reprime_ttl || !p->punch_port || !dport)
		return -EINVAL;
	syn_opts(p, &s.opts);   /* as the first prime: the NAT's new entry records the same options */
	int r = rp_craft_send(p->craft, &s);
	return r < 0 ? r : 0;
}

static int burst_progress(const struct rp_burst_stats *bs, void *arg)
{
	struct sender *s = arg;
	atomic_store(&s->cur_sent, bs->sent);
	atomic_store(&s->cur_total, bs->total);
	return atomic_load(&s->stop);
}

static void sleep_until(const struct sender *s, uint64_t t)
{
	for (;;) {
		uint64_t now = rp_mono_ns();
		if (now >= t || atomic_load(&s->stop))
			return;
		uint64_t d = t - now;
		if (d > 5000000ull)
			d = 5000000ull;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)d };
		nanosleep(&ts, NULL);
	}
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	uint64_t prev_end = 0;
	for (unsigned k = 0; k < s->n && !atomic_load(&s->stop); k++) {
		struct phase *ph = &s->ph[k];
		uint64_t at = ph->at_ns > prev_end ? ph->at_ns : prev_end;
		for (unsigned pass = 0; !atomic_load(&s->stop); pass++) {
			sleep_until(s, at);
			if (atomic_load(&s->stop))
				break;
			atomic_store(&s->cur, (int)k);
			if (!s->first_tx_ns)
				s->first_tx_ns = rp_mono_ns();
			struct rp_burst_cfg c = {
				.tmpl = &ph->tmpl, .set = ph->set, .engine = RP_ENGINE_LIBNET, .rate = s->rate,
				.threads = 1, .seq_mode = RP_SEQ_FIXED, .ipid_mode = RP_IPID_RANDOM,
				.ipid_seed = rp_mono_ns() ^ ((uint64_t)k << 32 | pass), .progress = burst_progress,
				.arg = s, .progress_ns = 50000000ull, .stop = &s->stop,
			};
			struct rp_burst_stats bs;
			atomic_store(&s->cur_sent, 0);
			atomic_store(&s->cur_total, rp_pairset_total(&ph->set));
			int r = rp_burst_run(&c, &bs);
			atomic_fetch_add(ph->prime ? &s->sent_prime : &s->sent_syn, bs.sent);
			atomic_fetch_add(&s->errors, bs.errors);
			if (r && r != -EIO) {
				atomic_store(&s->last_err, r);
				atomic_store(&s->done, true);
				return NULL;
			}
			prev_end = rp_mono_ns();
			if (!ph->repeat_ns)
				break;
			at += ph->repeat_ns;
			if (at >= ph->until_ns)
				break;
		}
	}
	atomic_store(&s->done, true);
	return NULL;
}

void rp_punch_sender_stop(struct sender *s)
{
	if (!s->running)
		return;
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	s->running = false;
}

static int pick_local_ports(struct rp_punch *p, unsigned n, uint16_t *out, unsigned *got)
{
	unsigned k = 0, tries = 0;
	while (k < n && tries < n * 4 + 64) {
		uint16_t port;
		tries++;
		int r = rp_free_port(p->laddr, &port);
		if (r)
			return r;
		if (port == p->punch_port || lport_in(p, port))
			continue;
		lport_add(p, port);
		out[k++] = port;
	}
	*got = k;
	return k ? 0 : -EADDRNOTAVAIL;
}

static int random_ports(unsigned m, uint16_t lo, uint16_t hi, uint16_t **out, unsigned *n_out)
{
	uint32_t range = (uint32_t)hi - lo + 1;
	uint16_t *all;
	if (lo == 0 || lo > hi)
		return -EINVAL;
	if (m > range)
		m = range;
	all = malloc(range * sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (uint32_t i = 0; i < range; i++)
		all[i] = (uint16_t)(lo + i);
	for (uint32_t i = 0; i < m; i++) {   /* partial Fisher-Yates */
		uint32_t j = i + randombytes_uniform(range - i);
		uint16_t t = all[i];
		all[i] = all[j];
		all[j] = t;
	}
	*out = all;
	*n_out = m;
	return 0;
}

static void port_span(const uint16_t *v, unsigned n, uint16_t *lo, uint16_t *hi)
{
	*lo = 0;
	*hi = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!*lo || v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

static void list_span(const struct rp_portlist *l, uint32_t *n, uint16_t *lo, uint16_t *hi)
{
	if (l->list) {
		*n = l->n;
		port_span(l->list, l->n, lo, hi);
	} else {
		*n = (uint32_t)l->hi - l->lo + 1;
		*lo = l->lo;
		*hi = l->hi;
	}
}

/* The phase's i-th source with its i-th destination (destinations reused in turn when fewer). */
static int zip_pairs(struct phase *ph)
{
	const struct rp_portlist *sl = &ph->set.sports, *dl = &ph->set.dports;
	uint32_t ns = sl->list ? sl->n : (uint32_t)sl->hi - sl->lo + 1, nd = dl->list ? dl->n : (uint32_t)dl->hi - dl->lo + 1;
	if (!ns || !nd)
		return -EINVAL;
	ph->own_pairs = malloc(ns * sizeof(*ph->own_pairs));
	if (!ph->own_pairs)
		return -ENOMEM;
	for (uint32_t i = 0; i < ns; i++)
		ph->own_pairs[i] = (struct rp_portpair){ rp_portlist_at(sl, i), rp_portlist_at(dl, i % nd) };
	ph->set.pairs = ph->own_pairs;
	ph->set.n_pairs = ns;
	return 0;
}

struct sender *rp_punch_sender_new(struct rp_punch *p)
{
	struct sender *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->p = p;
	atomic_store(&s->cur, -1);
	return s;
}

int rp_punch_sender_build(struct sender *s, uint64_t *end_ns)
{
	struct rp_punch *p = s->p;
	struct rp_punch_round_stats *st = p->st;
	const struct rp_exec *x = &s->x;
	const struct phase *act;
	int r;

	s->rate = x->rate_pps;
	s->n = 0;
	st->action = x->action;
	st->prime_ttl = x->low_ttl;
	*end_ns = p->t0 + (uint64_t)x->end_ms * 1000000ull;
	if (x->n > RP_EXEC_MAX_PHASES || (!x->n && x->action != RP_ACT_NONE))
		return -EINVAL;
	if (!x->n)
		return 0;    /* a listener (strategy "mapped"): nothing to send, the round listens until end_ms */
	for (unsigned k = 0; k < x->n; k++) {
		const struct rp_phase *xp = &x->ph[k];
		struct phase *ph = &s->ph[s->n++];
		ph->name = xp->name;
		ph->prime = xp->prime;
		ph->ttl = xp->ttl;
		ph->at_ns = p->t0 + (uint64_t)xp->at_ms * 1000000ull;
		uint64_t pre_ns = (uint64_t)xp->pre_ms * 1000000ull;
		ph->at_ns = ph->at_ns > pre_ns ? ph->at_ns - pre_ns : 0;   /* at once if the round begins later */
		ph->repeat_ns = (uint64_t)xp->repeat_ms * 1000000ull;
		ph->until_ns = p->t0 + (uint64_t)xp->until_ms * 1000000ull;
		ph->set.repeat = 1;
		if (xp->again) {
			/* the previous phase's tuples as drawn: its lists and pairs, borrowed (freed with it) */
			if (!k)
				return -EINVAL;
			ph->set = s->ph[k - 1].set;
		} else if (xp->src == RP_SRC_FRESH) {
			unsigned got;
			ph->own_sports = malloc((xp->n_src ? xp->n_src : 1) * sizeof(uint16_t));
			if (!ph->own_sports)
				return -ENOMEM;
			r = pick_local_ports(p, xp->n_src, ph->own_sports, &got);
			if (r)
				return r;
			for (unsigned i = 0; i < got; i++) {
				r = rp_punch_guard_port(p, ph->own_sports[i]);
				if (r)
					return r;
			}
			ph->set.sports = (struct rp_portlist){ .list = ph->own_sports, .n = got };
		} else {
			ph->set.sports = (struct rp_portlist){ .lo = p->punch_port, .hi = p->punch_port };
		}
		if (!xp->again && xp->dst == RP_DST_RANDOM) {
			unsigned got;
			r = random_ports(xp->n_dst, xp->dst_lo, xp->dst_hi, &ph->own_dports, &got);
			if (r)
				return r;
			ph->set.dports = (struct rp_portlist){ .list = ph->own_dports, .n = got };
		} else if (!xp->again) {
			ph->set.dports = (struct rp_portlist){ .list = xp->dports, .n = xp->n_dst };
		}
		if (xp->zip && !xp->again) {
			if ((r = zip_pairs(ph)))
				return r;
			p->sent_pairs = &ph->set;
		}
		r = make_tmpl(p, &ph->tmpl, p->punch_port, ph->ttl);
		if (r)
			return r;
		if (ph->prime)
			st->primed = true;
	}
	/* the round's figures describe the action: the last phase */
	act = &s->ph[s->n - 1];
	list_span(&act->set.sports, &st->n_local, &st->local_lo, &st->local_hi);
	list_span(&act->set.dports, &st->n_remote, &st->remote_lo, &st->remote_hi);
	return 0;
}

int rp_punch_sender_start(struct sender *s)
{
	s->start_ns = rp_mono_ns();
	if (pthread_create(&s->th, NULL, sender_main, s))
		return -EAGAIN;
	s->running = true;
	return 0;
}

void rp_punch_sender_free(struct sender *s)
{
	if (!s)
		return;
	rp_punch_sender_stop(s);
	s->p->sent_pairs = NULL;      /* it pointed into s->ph */
	for (unsigned k = 0; k < RP_EXEC_MAX_PHASES; k++) {
		free(s->ph[k].own_sports);
		free(s->ph[k].own_dports);
		free(s->ph[k].own_pairs);
	}
	free(s);
}
