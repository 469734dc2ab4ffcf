/* SPDX-License-Identifier: MIT */
/* The punch executor (see punch.h). */
#include "rawpunch/punch/punch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "rawpunch/net/burst.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/guard.h"
#include "rawpunch/net/netif.h"
#include "userstack/cookie.h"
#include "userstack/extract.h"
#include "userstack/seq.h"
#include "userstack/tcb.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"

#define SNAPLEN 65600
#define DEF_LOW_TTL 2
#define MAX_PHASES 3
#define TICK_NS 100000000ull       /* progress callback period */

struct phase {
	const char *name;            /* "prime", "burst" */
	bool prime;                  /* counts as primes_sent */
	uint8_t ttl;
	struct rp_tmpl tmpl;
	struct rp_pairset set;
	uint64_t at_ns;              /* monotonic: first pass */
	uint64_t repeat_ns;          /* 0: once */
	uint64_t until_ns;           /* repeats start before this */
};

struct sender {
	struct rp_punch *p;
	struct phase ph[MAX_PHASES];
	unsigned n;
	uint32_t rate;
	pthread_t th;
	bool running;
	atomic_int stop;
	atomic_int cur;              /* index of the phase being sent, -1 before the first */
	atomic_uint_fast64_t sent_prime, sent_syn, errors, cur_sent, cur_total;
	atomic_int last_err;
	atomic_bool done;
	uint64_t first_tx_ns;        /* monotonic; written by the sender before done */
};

struct rp_punch {
	struct rp_punch_opts o;
	uint8_t key[RP_PUNCH_KEYLEN];
	uint32_t laddr, raddr;
	struct rp_route route;
	struct rp_craft *craft;
	struct rp_guard *guard;
	struct rp_cap *cap;
	bool released;
	uint32_t ts_offset;
	/* round state */
	uint8_t lport_set[65536 / 8];
	uint16_t punch_port;
	uint32_t isn_mine, isn_peer;
	uint64_t t0;                 /* T, monotonic */
	struct rp_punch_round_stats *st;
	/* the flow */
	bool defined;
	uint16_t lport, rport;
	struct us_tcb *tcb;
	struct us_config cfg;
	uint64_t timer_ns;
	uint64_t packets_sent;       /* all rounds */
	uint16_t *guarded;           /* local ports already in the guard (with their remote range) */
	size_t n_guarded, cap_guarded;
};

/* trace(x, fmt, ...): one line to the caller's trace callback, if any */
#define trace(x, ...) rp_trace((x)->o.trace, (x)->o.trace_arg, __VA_ARGS__)

static double since_t0_ms(const struct rp_punch *p, uint64_t now)
{
	return ((double)(int64_t)(now - p->t0)) / 1e6;
}

/* --- keys and ISNs ------------------------------------------------------------------------- */

int rp_punch_key_derive(const uint8_t *secret, size_t secret_len, const char *session,
			uint8_t key[RP_PUNCH_KEYLEN])
{
	static const char label[] = "rawpunch-punch-v1";
	uint8_t k0[32];
	crypto_generichash_state st;
	if (!secret || !secret_len || !session || !*session || !key)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	crypto_generichash(k0, sizeof(k0), secret, secret_len, NULL, 0);
	crypto_generichash_init(&st, k0, sizeof(k0), RP_PUNCH_KEYLEN);
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label));   /* NUL included */
	crypto_generichash_update(&st, (const uint8_t *)session, strlen(session));
	crypto_generichash_final(&st, key, RP_PUNCH_KEYLEN);
	sodium_memzero(k0, sizeof(k0));
	return 0;
}

uint32_t rp_punch_isn(const uint8_t key[RP_PUNCH_KEYLEN], uint32_t from_pub, uint32_t to_pub,
		      uint16_t from_port, unsigned round)
{
	uint8_t m[12 + 4 + 4 + 2 + 4];
	memcpy(m, "rp-punch-syn", 12);
	memcpy(m + 12, &from_pub, 4);     /* network order as in memory */
	memcpy(m + 16, &to_pub, 4);
	us_put_be16(m + 20, from_port);
	us_put_be32(m + 22, (uint32_t)round);
	return us_hash32(key, m, sizeof(m));
}

uint32_t rp_punch_pub_addr(const struct rp_natinfo *ni)
{
	return ni->behind_nat ? ni->mapped_addr : ni->local_addr;
}

/* The port a side's SYNs are bound to in the ISN: its punch port when it sends from that one. */
static uint16_t isn_port(const struct rp_side_plan *sp, const struct rp_natinfo *ni)
{
	return sp->action == RP_ACT_OPEN_MANY ? 0 : ni->local_port;
}

/* --- open / close -------------------------------------------------------------------------- */

#define FAIL(what) do { snprintf(err, errlen, "%s: %s", what, e[0] ? e : strerror(-r)); goto fail; } while (0)

int rp_punch_open(const struct rp_punch_opts *o, struct rp_punch **out, char *err, size_t errlen)
{
	struct rp_punch *p;
	char e[256] = "", dummy[8], filt[256], la[INET_ADDRSTRLEN], ra[INET_ADDRSTRLEN];
	int r;
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = 0;
	if (!o || !out || !o->peer_addr || !o->key)
		return -EINVAL;
	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->o = *o;
	memcpy(p->key, o->key, RP_PUNCH_KEYLEN);
	p->raddr = o->peer_addr;
	if (getrandom(&p->ts_offset, sizeof(p->ts_offset), 0) != (ssize_t)sizeof(p->ts_offset))
		p->ts_offset = (uint32_t)rp_mono_ns();
	r = rp_route_get(p->raddr, &p->route);
	if (r)
		FAIL("route lookup");
	p->laddr = o->laddr ? o->laddr : p->route.src;
	p->tcb = malloc(sizeof(*p->tcb));
	if (!p->tcb) {
		r = -ENOMEM;
		goto fail;
	}
	us_tcb_init(p->tcb);
	r = rp_craft_open(&p->craft, 0, e, sizeof(e));
	if (r)
		FAIL("raw socket");
	r = rp_guard_open(&p->guard, e, sizeof(e));
	if (r)
		FAIL("nftables RST guard");
	rp_ip_str(p->laddr, la);
	rp_ip_str(p->raddr, ra);
	if (o->pcap_path)
		snprintf(filt, sizeof(filt), "(tcp and host %s and host %s) or (icmp and dst host %s)", la, ra, la);
	else
		snprintf(filt, sizeof(filt), "(tcp and src host %s and dst host %s) or (icmp and dst host %s)", ra, la, la);
	struct rp_cap_opts co = {
		.iface = o->iface ? o->iface : p->route.ifname,
		.snaplen = SNAPLEN,
		.dir = o->pcap_path ? RP_CAP_INOUT : RP_CAP_IN,
		.dump_path = o->pcap_path,
		.filter = filt,
		.buffer_bytes = 8 << 20,
	};
	r = rp_cap_open(&co, &p->cap, e, sizeof(e));
	if (r)
		FAIL("capture");
	*out = p;
	return 0;
fail:
	rp_punch_close(p);
	return r;
}

uint32_t rp_punch_laddr(const struct rp_punch *p)
{
	return p ? p->laddr : 0;
}

static void release(struct rp_punch *p)
{
	if (p->released)
		return;
	rp_guard_close(p->guard);
	p->guard = NULL;
	rp_cap_close(p->cap);
	p->cap = NULL;
	rp_craft_close(p->craft);
	p->craft = NULL;
	p->released = true;
}

void rp_punch_close(struct rp_punch *p)
{
	if (!p)
		return;
	release(p);
	free(p->tcb);
	free(p->guarded);
	sodium_memzero(p->key, sizeof(p->key));
	free(p);
}

void rp_punch_tuple(const struct rp_punch *p, uint32_t *laddr, uint16_t *lport, uint32_t *raddr, uint16_t *rport)
{
	if (laddr)
		*laddr = p->laddr;
	if (lport)
		*lport = p->lport;
	if (raddr)
		*raddr = p->raddr;
	if (rport)
		*rport = p->rport;
}

void rp_punch_totals(const struct rp_punch *p, struct rp_punch_totals *t)
{
	memset(t, 0, sizeof(*t));
	t->guard_dropped = -1;
	if (!p)
		return;
	t->packets_sent = p->packets_sent;
	if (p->cap) {
		struct rp_cap_stats cs;
		if (!rp_cap_stats(p->cap, &cs)) {
			t->cap_received = cs.received;
			t->cap_dropped = cs.dropped;
		}
	}
	if (p->guard) {
		int64_t d = rp_guard_dropped(p->guard);
		t->guard_dropped = d < 0 ? -1 : d;    /* a failed counter read is "unknown", not a count */
	}
}

/* --- guard -------------------------------------------------------------------------------- */

/* Guard (lport, whole remote address, any remote port): a local port is added once per context. */
static int guard_port(struct rp_punch *p, uint16_t lport)
{
	for (size_t i = 0; i < p->n_guarded; i++)
		if (p->guarded[i] == lport)
			return 0;
	if (p->n_guarded == p->cap_guarded) {
		size_t nc = p->cap_guarded ? 2 * p->cap_guarded : 64;
		uint16_t *g = realloc(p->guarded, nc * sizeof(*g));
		if (!g)
			return -ENOMEM;
		p->guarded = g;
		p->cap_guarded = nc;
	}
	struct rp_flow f = { .laddr = p->laddr, .lport = lport, .raddr = p->raddr };
	int r = rp_guard_add(p->guard, &f);
	if (r)
		return r;
	p->guarded[p->n_guarded++] = lport;
	return 0;
}

/* --- sending ------------------------------------------------------------------------------- */

static bool lport_in(const struct rp_punch *p, uint16_t port)
{
	return p->lport_set[port >> 3] & (1u << (port & 7));
}

static void lport_add(struct rp_punch *p, uint16_t port)
{
	p->lport_set[port >> 3] |= (uint8_t)(1u << (port & 7));
}

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

static void sender_stop(struct sender *s)
{
	if (!s->running)
		return;
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	s->running = false;
}

/* --- the round's plan -> phases ----------------------------------------------------------- */

struct round_bufs {
	uint16_t prime_ports[RP_PLAN_MAX_PORTS];
	uint16_t lock[RP_PLAN_MAX_PORTS];
	uint16_t many[4096];
	uint16_t *probes;
	unsigned n_probes;
};

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

static uint32_t ms_for(uint64_t n, uint32_t rate)
{
	return rate ? (uint32_t)((n * 1000u + rate - 1) / rate) : 0;
}

static int build_phases(struct rp_punch *p, const struct rp_punch_round_opts *ro, struct sender *s,
			struct round_bufs *b, uint64_t *end_ns)
{
	const struct rp_plan *pl = ro->plan;
	const struct rp_side_plan *sp = &pl->side[ro->me];
	struct rp_punch_round_stats *st = p->st;
	bool lockstep = pl->method == RP_METHOD_PREDICT && pl->side[0].kind == RP_SIDE_PREDICTABLE &&
			pl->side[1].kind == RP_SIDE_PREDICTABLE;
	uint8_t low = sp->ttl ? sp->ttl : ro->self->nat_ttl ? ro->self->nat_ttl : DEF_LOW_TTL;
	uint64_t t0 = p->t0, prime_end = t0;
	int r;

	s->rate = sp->rate_pps ? sp->rate_pps : 2000;
	s->n = 0;
	st->action = sp->action;
	st->prime_ttl = low;
	*end_ns = t0 + ((uint64_t)sp->start_ms + sp->duration_ms) * 1000000ull;
	if (sp->action != RP_ACT_CONNECT && sp->action != RP_ACT_OPEN_MANY && sp->action != RP_ACT_PROBE_RANDOM)
		return -EINVAL;
	if (!sp->n_remote && sp->action != RP_ACT_PROBE_RANDOM)
		return -EINVAL;

	/* Lockstep (both sides sequential). Side a's i-th SYN targets b's i-th predicted port; side b's
	 * j-th SYN targets a's predicted port j + (j mod M). If other hosts' flows took ka ports on a's
	 * NAT and kb on b's since the predictions were made, a's i-th SYN leaves from a's port i + ka and
	 * b's j-th from b's j + kb: the two are one 4-tuple when i = j + kb and j mod M = ka + kb. So
	 * any total drift K = ka + kb < M still pairs (at j = K, K + M, ...), where plain i-th to i-th
	 * pairing needs ka = kb = 0 -- which a NAT with other users rarely grants. */
	const uint16_t *targets = sp->remote_ports;
	unsigned n_targets = sp->n_remote;
	if (lockstep) {
		int k = rp_punch_lockstep_targets(ro->peer, n_targets, ro->me, b->lock);
		if (k <= 0)
			return -EINVAL;
		n_targets = (unsigned)k;
		targets = b->lock;
	}

	/* the prime(s): at T, from the punch port, low TTL */
	if ((sp->prime || lockstep) && sp->action == RP_ACT_CONNECT) {
		struct phase *ph = &s->ph[s->n++];
		unsigned n = lockstep ? n_targets : 1;
		memcpy(b->prime_ports, targets, n * sizeof(uint16_t));
		ph->name = "prime";
		ph->prime = true;
		ph->ttl = low;
		ph->at_ns = t0;
		ph->set.dports = (struct rp_portlist){ .list = b->prime_ports, .n = n };
		ph->set.sports = (struct rp_portlist){ .lo = p->punch_port, .hi = p->punch_port };
		ph->set.repeat = 1;
		r = make_tmpl(p, &ph->tmpl, p->punch_port, low);
		if (r)
			return r;
		st->primed = true;
		prime_end = t0 + (uint64_t)ms_for(n, s->rate) * 1000000ull;
	}
	struct phase *ph = &s->ph[s->n++];
	ph->name = "burst";
	ph->at_ns = t0 + (uint64_t)sp->start_ms * 1000000ull;
	ph->set.repeat = 1;
	switch (sp->action) {
	case RP_ACT_CONNECT:
		ph->ttl = 0;
		ph->set.dports = (struct rp_portlist){ .list = targets, .n = n_targets };
		ph->set.sports = (struct rp_portlist){ .lo = p->punch_port, .hi = p->punch_port };
		ph->repeat_ns = (uint64_t)sp->repeat_ms * 1000000ull;
		ph->until_ns = *end_ns;
		if (lockstep) {
			/* the full-TTL pass follows every side's primes by the start margin; it is repeated
			 * (the same 4-tuples: the mappings exist, no new port is taken) against loss */
			uint64_t at = prime_end + (uint64_t)(sp->start_ms ? sp->start_ms : 5) * 1000000ull;
			if (at > ph->at_ns) {
				*end_ns += at - ph->at_ns;
				ph->at_ns = at;
			}
			ph->repeat_ns = 250000000ull;
			ph->until_ns = *end_ns;
		}
		st->n_local = 1;
		st->local_lo = st->local_hi = p->punch_port;
		st->n_remote = n_targets;
		port_span(targets, n_targets, &st->remote_lo, &st->remote_hi);
		break;
	case RP_ACT_OPEN_MANY: {
		unsigned want = sp->n_local ? sp->n_local : 256, got;
		if (want > sizeof(b->many) / sizeof(b->many[0]))
			want = sizeof(b->many) / sizeof(b->many[0]);
		r = pick_local_ports(p, want, b->many, &got);
		if (r)
			return r;
		for (unsigned i = 0; i < got; i++) {
			r = guard_port(p, b->many[i]);
			if (r)
				return r;
		}
		ph->ttl = low;
		ph->set.dports = (struct rp_portlist){ .lo = sp->remote_ports[0], .hi = sp->remote_ports[0] };
		ph->set.sports = (struct rp_portlist){ .list = b->many, .n = got };
		st->n_local = got;
		port_span(b->many, got, &st->local_lo, &st->local_hi);
		st->n_remote = 1;
		st->remote_lo = st->remote_hi = sp->remote_ports[0];
		break;
	}
	case RP_ACT_PROBE_RANDOM:
		r = random_ports(sp->n_probes ? sp->n_probes : 1024, sp->port_lo ? sp->port_lo : 1024,
				 sp->port_hi ? sp->port_hi : 65535, &b->probes, &b->n_probes);
		if (r)
			return r;
		ph->ttl = 0;
		ph->set.dports = (struct rp_portlist){ .list = b->probes, .n = b->n_probes };
		ph->set.sports = (struct rp_portlist){ .lo = p->punch_port, .hi = p->punch_port };
		st->n_local = 1;
		st->local_lo = st->local_hi = p->punch_port;
		st->n_remote = b->n_probes;
		port_span(b->probes, b->n_probes, &st->remote_lo, &st->remote_hi);
		break;
	default:
		return -EINVAL;
	}
	r = make_tmpl(p, &ph->tmpl, p->punch_port, ph->ttl);
	if (r)
		return r;
	return 0;
}

int rp_punch_lockstep_targets(const struct rp_natinfo *pn, unsigned n, int me, uint16_t *out)
{
	unsigned m = n / 2 ? n / 2 : 1;
	if (!pn || !out || (me != 0 && me != 1) || !pn->n_predicted || pn->n_predicted > RP_MAX_PREDICT || !pn->delta)
		return -EINVAL;
	for (unsigned j = 0; j < n; j++) {
		long idx = (long)j + (me == 1 ? (long)(j % m) : 0), port;
		if (idx < (long)pn->n_predicted)
			port = pn->predicted[idx];
		else
			port = (long)pn->predicted[pn->n_predicted - 1] + (idx - (long)pn->n_predicted + 1) * pn->delta;
		if (port < 1 || port > 65535)
			return (int)j;
		out[j] = (uint16_t)port;
	}
	return (int)n;
}

/* --- receiving ----------------------------------------------------------------------------- */

static void send_out(struct rp_punch *p, const struct us_out *out)
{
	for (unsigned i = 0; i < out->n; i++) {
		struct rp_seg seg;
		char fl[9];
		rp_seg_from_us(&seg, p->laddr, p->lport, p->raddr, p->rport, &out->seg[i]);
		int r = rp_craft_send(p->craft, &seg);
		rp_tcp_flags_str(out->seg[i].flags, fl);
		if (r < 0) {
			p->st->send_errors++;
			trace(p, "tx %-3s %u -> :%u FAILED: %s", fl, p->lport, p->rport, strerror(-r));
			continue;
		}
		p->st->handshake_sent++;
		p->packets_sent++;
		trace(p, "tx %-3s %u -> :%u seq=%u ack=%u", fl, p->lport, p->rport, out->seg[i].seq, out->seg[i].ack);
	}
	p->timer_ns = out->timer_ns;
}

static int tcb_step(struct rp_punch *p, const struct us_event *ev, bool suppress_syn)
{
	struct us_out out;
	int r = us_step(p->tcb, ev, rp_mono_ns(), &out);
	if (r)
		return r;
	if (suppress_syn) {
		unsigned k = 0;
		for (unsigned i = 0; i < out.n; i++)
			if (!((out.seg[i].flags & US_TH_SYN) && !(out.seg[i].flags & US_TH_ACK)))
				out.seg[k++] = out.seg[i];
		out.n = k;
	}
	send_out(p, &out);
	if (out.notify & US_N_CLOSED)
		return out.error ? out.error : -ECONNABORTED;
	return 0;
}

static int define_flow(struct rp_punch *p, const struct rp_punch_round_opts *ro, uint16_t lport, uint16_t rport,
		       uint64_t deadline)
{
	struct us_event ev = { .type = US_EV_OPEN_ACTIVE };
	us_tcb_init(p->tcb);
	p->defined = true;
	p->lport = lport;
	p->rport = rport;
	memset(&p->cfg, 0, sizeof(p->cfg));
	p->cfg.iss = p->isn_mine;
	p->cfg.mss = 1460;
	p->cfg.wscale_ok = true;
	p->cfg.wscale = 7;
	p->cfg.sack_ok = true;
	p->cfg.ts_ok = true;
	p->cfg.ts_offset = p->ts_offset;
	p->cfg.syn_rto_ns = (uint64_t)(ro->syn_rtx_ms ? ro->syn_rtx_ms : 250) * 1000000ull;
	p->cfg.syn_no_backoff = true;
	p->cfg.persist = true;
	p->cfg.deadline_ns = deadline;
	p->cfg.time_wait_ns = 500000000ull;
	ev.cfg = &p->cfg;
	/* our SYN for this flow already left in the burst (or our peer's SYN is answered directly) */
	return tcb_step(p, &ev, true);
}

static void feed(struct rp_punch *p, const struct rp_event *ev, struct us_event *uev)
{
	memset(uev, 0, sizeof(*uev));
	uev->type = US_EV_SEGMENT;
	uev->seg.seq = ev->seq;
	uev->seg.ack = ev->ack;
	uev->seg.flags = ev->flags;
	uev->seg.win = ev->win;
	uev->seg.opts = ev->opts;
	uev->seg.payload = ev->payload;
	uev->seg.len = ev->paylen;
	us_handshake_only(p->tcb, &uev->seg);
}

static void forged(struct rp_punch *p, const struct rp_event *ev, const char *why)
{
	char fl[9];
	rp_tcp_flags_str(ev->flags, fl);
	p->st->rx_forged++;
	trace(p, "ignored %s :%u -> %u seq=%u ack=%u (%s)", fl, ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack, why);
}

/* Before the flow exists. Returns 1 when it was defined, 0, or -errno. */
static int on_tcp_undefined(struct rp_punch *p, const struct rp_punch_round_opts *ro, const struct rp_event *ev,
			    uint64_t hs_deadline_from_now)
{
	uint8_t f = ev->flags;
	bool syn = f & RP_TH_SYN, ack = f & RP_TH_ACK, rst = f & RP_TH_RST;
	uint64_t now = rp_mono_ns();
	struct us_event uev;
	char fl[9];
	int r;

	rp_tcp_flags_str(f, fl);
	if (rst) {
		if (ack && ev->ack == p->isn_mine + 1) {
			p->st->rx_rst++;
			trace(p, "rx %-3s :%u -> %u (the peer's NAT refused this port)", fl, ev->tuple.sport, ev->tuple.dport);
		} else {
			forged(p, ev, "RST that does not acknowledge our ISN");
		}
		return 0;
	}
	if (syn && !ack) {
		if (ev->seq != p->isn_peer) {
			forged(p, ev, "SYN without the peer's ISN for this round");
			return 0;
		}
		p->st->rx_syn++;
		p->st->trigger = "syn";
	} else if (syn && ack) {
		if (ev->ack != p->isn_mine + 1) {
			forged(p, ev, "SYN-ACK that does not acknowledge our ISN");
			return 0;
		}
		p->st->rx_synack++;
		p->st->trigger = "syn-ack";
	} else {
		p->st->rx_other++;
		trace(p, "rx %-3s :%u -> %u before the flow exists (ignored)", fl, ev->tuple.sport, ev->tuple.dport);
		return 0;
	}
	if (ev->paylen < ev->paylen_wire)
		return 0;
	p->st->t_first_rx_ms = since_t0_ms(p, now);
	trace(p, "rx %-3s :%u -> %u seq=%u ack=%u ttl=%u: valid, the flow is %u <-> :%u (%.1f ms after T)", fl,
	      ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack, ev->ttl, ev->tuple.dport, ev->tuple.sport,
	      p->st->t_first_rx_ms);
	r = define_flow(p, ro, ev->tuple.dport, ev->tuple.sport, now + hs_deadline_from_now);
	if (r)
		return r;
	feed(p, ev, &uev);
	r = tcb_step(p, &uev, false);
	return r ? r : 1;
}

/* After: only the flow's segments reach the tcb, after the checks session.c does. */
static bool valid_for_tcb(struct rp_punch *p, const struct rp_event *ev)
{
	const struct us_tcb *t = p->tcb;
	bool ack = ev->flags & RP_TH_ACK, rst = ev->flags & RP_TH_RST, syn = ev->flags & RP_TH_SYN;
	switch (t->state) {
	case US_SYN_SENT:
		if (ack && ev->ack != t->iss + 1)
			return forged(p, ev, "ack is not our ISN + 1"), false;
		if (rst && !ack)
			return forged(p, ev, "RST without ACK in SYN-SENT"), false;
		if (!ack && (!syn || ev->seq != p->isn_peer))
			return forged(p, ev, "bare SYN without the peer's ISN"), false;
		return true;
	case US_SYN_RECEIVED:
		if (ack && !seq_in(ev->ack, t->iss + 1, t->snd_max + 1))
			return forged(p, ev, "ack outside what we sent"), false;
		if (syn && !ack && ev->seq != p->isn_peer)
			return forged(p, ev, "SYN without the peer's ISN"), false;
		if (rst && !ack && !seq_in(ev->seq, t->rcv_nxt, t->rcv_nxt + (t->rcv_wnd ? t->rcv_wnd : 1)))
			return forged(p, ev, "RST outside the window"), false;
		return true;
	default:
		if (rst && !seq_in(ev->seq, t->rcv_nxt, t->rcv_nxt + (t->rcv_wnd ? t->rcv_wnd : 1)))
			return forged(p, ev, "RST outside the window"), false;
		if (ack && seq_gt(ev->ack, t->snd_max))
			return forged(p, ev, "acks data never sent"), false;
		return true;
	}
}

static int on_tcp(struct rp_punch *p, const struct rp_punch_round_opts *ro, const struct rp_event *ev, uint64_t hs_ns)
{
	struct us_event uev;
	char fl[9];
	if (ev->ip_src == p->laddr)
		return 0;                      /* our own, captured for the dump */
	if (ev->ip_src != p->raddr || ev->ip_dst != p->laddr || !lport_in(p, ev->tuple.dport))
		return 0;
	if (!p->defined)
		return on_tcp_undefined(p, ro, ev, hs_ns);
	if (ev->tuple.dport != p->lport || ev->tuple.sport != p->rport) {
		/* another of the round's ports answering late: count it, the flow is chosen */
		uint8_t f = ev->flags;
		if ((f & (RP_TH_SYN | RP_TH_ACK)) == RP_TH_SYN && ev->seq == p->isn_peer)
			p->st->rx_syn++;
		else if ((f & (RP_TH_SYN | RP_TH_ACK)) == (RP_TH_SYN | RP_TH_ACK) && ev->ack == p->isn_mine + 1)
			p->st->rx_synack++;
		else if ((f & RP_TH_RST) && ev->ack == p->isn_mine + 1)
			p->st->rx_rst++;
		return 0;
	}
	rp_tcp_flags_str(ev->flags, fl);
	trace(p, "rx %-3s :%u -> %u seq=%u ack=%u len=%zu", fl, ev->tuple.sport, ev->tuple.dport, ev->seq, ev->ack,
	      ev->paylen);
	if (ev->paylen < ev->paylen_wire)
		return 0;
	if (!valid_for_tcb(p, ev))
		return 0;
	if (ev->flags & RP_TH_RST)
		p->st->rx_rst++;
	feed(p, ev, &uev);
	return tcb_step(p, &uev, false);
}

static int on_icmp(struct rp_punch *p, const struct rp_event *ev)
{
	char a[INET_ADDRSTRLEN];
	if (ev->tuple.saddr != p->laddr || ev->tuple.daddr != p->raddr || !lport_in(p, ev->tuple.sport))
		return 0;
	if (ev->seq != p->isn_mine) {
		p->st->rx_forged++;
		trace(p, "ignored ICMP %u/%u from %s (quoted seq is not our ISN)", ev->icmp_type, ev->icmp_code,
		      rp_ip_str(ev->ip_src, a));
		return 0;
	}
	p->st->rx_icmp++;
	if (ev->icmp_type == 11)
		p->st->rx_icmp_ttl++;
	/* Time-exceeded answers our primes (expected). Other errors are soft: the NATs keep the
	 * mappings (RFC 5382 REQ-10) and the tcb runs in persist mode. */
	if (ev->icmp_type != 11 || p->o.trace)
		trace(p, "rx ICMP %u/%u from %s quoting %u -> :%u", ev->icmp_type, ev->icmp_code, rp_ip_str(ev->ip_src, a),
		      ev->tuple.sport, ev->tuple.dport);
	if (p->defined && ev->tuple.sport == p->lport && ev->tuple.dport == p->rport) {
		struct us_event uev = { .type = US_EV_ICMP_ERROR };
		uev.icmp.type = ev->icmp_type;
		uev.icmp.code = ev->icmp_code;
		uev.icmp.seq = ev->seq;
		return tcb_step(p, &uev, false);
	}
	return 0;
}

static void fill_why(struct rp_punch *p, const struct sender *s, int result)
{
	struct rp_punch_round_stats *st = p->st;
	char *w = st->why;
	size_t cap = sizeof(st->why);
	(void)s;
	if (result == 0) {
		snprintf(w, cap, "established %u <-> :%u by a valid %s %.1f ms after T", p->lport, p->rport,
			 st->trigger ? st->trigger : "packet", st->t_established_ms);
		return;
	}
	if (result == -EINTR) {
		snprintf(w, cap, "interrupted");
		return;
	}
	if (st->defined) {
		snprintf(w, cap, "a valid %s arrived on %u from :%u but the handshake did not complete (%s; tcb %s)",
			 st->trigger ? st->trigger : "packet", p->lport, p->rport, strerror(-result),
			 us_state_name(p->tcb->state));
		return;
	}
	int n = snprintf(w, cap, "no valid SYN/SYN-ACK from the peer: sent %llu primes + %llu SYNs to %u port(s)",
			 (unsigned long long)st->primes_sent, (unsigned long long)st->syns_sent, st->n_remote);
	if (n < 0 || (size_t)n >= cap)
		return;
	if (st->rx_rst && st->rst_cut)
		n += snprintf(w + n, cap - (size_t)n, "; the peer's NAT refused every one (%u RSTs): its mapping is "
			      "not at the announced port, round cut short", st->rx_rst);
	else if (st->rx_rst)
		n += snprintf(w + n, cap - (size_t)n, "; %u RSTs from the peer's NAT (closed ports)", st->rx_rst);
	else if (st->rx_icmp > st->rx_icmp_ttl)
		n += snprintf(w + n, cap - (size_t)n, "; %u ICMP errors", st->rx_icmp - st->rx_icmp_ttl);
	else
		n += snprintf(w + n, cap - (size_t)n, "; silence from the peer's side");
	if (n > 0 && (size_t)n < cap && st->rx_forged)
		snprintf(w + n, cap - (size_t)n, ", %u forged ignored", st->rx_forged);
}

int rp_punch_round(struct rp_punch *p, const struct rp_punch_round_opts *ro, struct rp_punch_round_stats *st)
{
	struct round_bufs *b;
	struct sender *s;
	uint64_t end_ns, next_tick, hs_ns;
	int r, result = -ETIMEDOUT;

	if (!p || !ro || !st || !ro->plan || !ro->self || !ro->peer || (ro->me != 0 && ro->me != 1) || p->released)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->round = ro->round;
	st->method = ro->plan->method;
	st->t_first_rx_ms = -1;
	st->t_established_ms = -1;
	p->st = st;
	if (ro->plan->method != RP_METHOD_SIMOPEN && ro->plan->method != RP_METHOD_PREDICT &&
	    ro->plan->method != RP_METHOD_BIRTHDAY)
		return -EINVAL;
	const struct rp_side_plan *mine = &ro->plan->side[ro->me], *theirs = &ro->plan->side[1 - ro->me];
	uint32_t my_pub = rp_punch_pub_addr(ro->self), peer_pub = rp_punch_pub_addr(ro->peer);
	if (peer_pub != p->raddr || !my_pub)
		return -EINVAL;
	p->punch_port = ro->self->local_port;
	if (!p->punch_port)
		return -EINVAL;
	p->isn_mine = rp_punch_isn(p->key, my_pub, peer_pub, isn_port(mine, ro->self), ro->round);
	p->isn_peer = rp_punch_isn(p->key, peer_pub, my_pub, isn_port(theirs, ro->peer), ro->round);
	st->isn_mine = p->isn_mine;
	st->isn_peer = p->isn_peer;
	p->defined = false;
	p->lport = p->rport = 0;
	p->timer_ns = 0;
	us_tcb_init(p->tcb);
	memset(p->lport_set, 0, sizeof(p->lport_set));
	lport_add(p, p->punch_port);
	hs_ns = (uint64_t)(ro->handshake_ms ? ro->handshake_ms : 3000) * 1000000ull;

	s = calloc(1, sizeof(*s));
	b = calloc(1, sizeof(*b));
	if (!s || !b) {
		free(s);
		free(b);
		return -ENOMEM;
	}
	s->p = p;
	atomic_store(&s->cur, -1);
	{
		uint64_t rn = rp_real_ns(), mn = rp_mono_ns();
		p->t0 = mn + (uint64_t)((int64_t)ro->start_real_ns - (int64_t)rn);
	}
	r = guard_port(p, p->punch_port);
	if (r)
		goto out;
	r = build_phases(p, ro, s, b, &end_ns);
	if (r)
		goto out;
	end_ns += (uint64_t)(ro->grace_ms ? ro->grace_ms : 600) * 1000000ull;
	/* drain what the capture holds from before (an earlier round's late packets count there) */
	{
		struct rp_event ev;
		while (rp_cap_next(p->cap, &ev) == 1)
			;
	}
	trace(p, "round %u: %s, this side %s, ISN mine %u / peer %u, T in %.1f ms", ro->round,
	      rp_method_str(ro->plan->method), rp_side_kind_str(mine->kind), p->isn_mine, p->isn_peer,
	      -since_t0_ms(p, rp_mono_ns()));
	if (pthread_create(&s->th, NULL, sender_main, s)) {
		r = -EAGAIN;
		goto out;
	}
	s->running = true;
	next_tick = rp_mono_ns();
	for (;;) {
		uint64_t now = rp_mono_ns();
		if (p->o.stop && *p->o.stop) {
			result = -EINTR;
			break;
		}
		if (p->defined && us_synchronized(p->tcb)) {
			st->established = true;
			st->t_established_ms = since_t0_ms(p, now);
			result = 0;
			break;
		}
		if (p->defined && p->tcb->state == US_CLOSED) {
			result = p->tcb->error ? p->tcb->error : -ECONNABORTED;
			if (result == -ECONNREFUSED || result == -EHOSTUNREACH)
				result = -ETIMEDOUT;
			break;
		}
		if (!p->defined && now >= end_ns)
			break;
		/* Simultaneous open: both mappings exist from T on (primes), so RSTs from the peer's NAT
		 * that keep coming a second later mean our SYNs do not meet its mapping (its port is not
		 * the one announced): end the round early, the next one re-probes. */
		if (!p->defined && ro->plan->method == RP_METHOD_SIMOPEN && st->rx_rst >= 4 &&
		    now >= p->t0 + ((uint64_t)mine->start_ms + 1000u) * 1000000ull) {
			st->rst_cut = true;
			break;
		}
		if (p->defined && now >= end_ns + hs_ns)
			break;
		if (atomic_load(&s->last_err)) {
			result = atomic_load(&s->last_err);
			break;
		}
		if (ro->progress && now >= next_tick) {
			int k = atomic_load(&s->cur);
			struct rp_punch_progress pr = {
				.round = ro->round,
				.sent = atomic_load(&s->cur_sent), .total = atomic_load(&s->cur_total),
				.replies = st->rx_syn + st->rx_synack + st->rx_rst + st->rx_icmp + st->rx_forged + st->rx_other,
				.elapsed_ms = since_t0_ms(p, now),
				.phase = p->defined ? "handshake" : k < 0 ? "waiting" : atomic_load(&s->done) ? "listen" : s->ph[k].name,
			};
			ro->progress(&pr, ro->progress_arg);
			next_tick = now + TICK_NS;
		}
		uint64_t until = p->defined ? p->timer_ns : end_ns;
		if (!until || until > now + TICK_NS)
			until = now + TICK_NS;
		int ms = until > now ? (int)((until - now + 999999) / 1000000) : 0;
		r = rp_cap_wait(p->cap, ms);
		if (r < 0 && r != -EINTR) {
			result = r;
			break;
		}
		struct rp_event ev;
		int rr = 0;
		while (rr >= 0 && (r = rp_cap_next(p->cap, &ev)) == 1) {
			if (ev.kind == RP_EV_TCP) {
				bool was = p->defined;
				rr = on_tcp(p, ro, &ev, hs_ns);
				if (!was && p->defined) {
					st->defined = true;
					atomic_store(&s->stop, 1);   /* the bursts have done their job */
				}
			} else {
				rr = on_icmp(p, &ev);
			}
		}
		if (rr < 0) {
			result = rr == -ECONNREFUSED || rr == -EHOSTUNREACH ? -ETIMEDOUT : rr;
			if (!p->defined || p->tcb->state == US_CLOSED)
				break;
		}
		if (p->defined && p->timer_ns && rp_mono_ns() >= p->timer_ns) {
			struct us_event tev = { .type = US_EV_TIMER };
			r = tcb_step(p, &tev, false);
			if (r && p->tcb->state == US_CLOSED) {
				result = -ETIMEDOUT;
				break;
			}
		}
	}
	r = 0;
out:
	sender_stop(s);
	st->primes_sent = atomic_load(&s->sent_prime);
	st->syns_sent = atomic_load(&s->sent_syn);
	st->send_errors += atomic_load(&s->errors);
	p->packets_sent += st->primes_sent + st->syns_sent;
	if (s->first_tx_ns)
		st->late_ms = since_t0_ms(p, s->first_tx_ns) - (s->n && s->ph[0].at_ns > p->t0 ?
								 (double)(s->ph[0].at_ns - p->t0) / 1e6 : 0);
	st->duration_ms = since_t0_ms(p, rp_mono_ns());
	st->lport = p->lport;
	st->rport = p->rport;
	free(b->probes);
	free(b);
	free(s);
	if (r) {
		st->result = r;
		snprintf(st->why, sizeof(st->why), "could not set the round up: %s", strerror(-r));
		return r;
	}
	st->result = result;
	fill_why(p, NULL, result);
	return result;
}

int rp_punch_handoff(struct rp_punch *p, const struct rp_handoff_opts *ho, struct rp_handoff_result *res)
{
	struct rp_handoff_params hp;
	int r, fd;
	if (!p || !p->defined || !us_synchronized(p->tcb) || p->released)
		return -ENOTCONN;
	r = rp_handoff_from_tcb(p->tcb, p->laddr, p->lport, p->raddr, p->rport, rp_mono_ns(), &hp);
	if (r)
		return r;
	fd = rp_handoff(&hp, ho, res);
	/* the kernel owns the flow now (or nobody does): guard and capture off */
	release(p);
	return fd;
}

/* --- JSON ----------------------------------------------------------------------------------- */

static struct json_object *span_json(uint32_t n, uint16_t lo, uint16_t hi)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "n", json_object_new_int64(n));
	json_object_object_add(o, "lo", json_object_new_int(lo));
	json_object_object_add(o, "hi", json_object_new_int(hi));
	return o;
}

static const char *action_str(enum rp_action a)
{
	switch (a) {
	case RP_ACT_CONNECT: return "connect";
	case RP_ACT_OPEN_MANY: return "open-many";
	case RP_ACT_PROBE_RANDOM: return "probe-random";
	default: return "none";
	}
}

static struct json_object *ms_json(double v)
{
	char b[32];
	if (v < 0)
		return NULL;
	snprintf(b, sizeof(b), "%.1f", v);
	return json_object_new_double_s(round(v * 10) / 10, b);
}

struct json_object *rp_punch_round_to_json(const struct rp_punch_round_stats *st)
{
	struct json_object *o = json_object_new_object(), *x;
	if (!o)
		return NULL;
	json_object_object_add(o, "round", json_object_new_int((int)st->round));
	json_object_object_add(o, "method", json_object_new_string(rp_method_str(st->method)));
	json_object_object_add(o, "action", json_object_new_string(action_str(st->action)));
	json_object_object_add(o, "primed", json_object_new_boolean(st->primed));
	json_object_object_add(o, "low_ttl", json_object_new_int(st->prime_ttl));
	json_object_object_add(o, "local_ports", span_json(st->n_local, st->local_lo, st->local_hi));
	json_object_object_add(o, "remote_ports", span_json(st->n_remote, st->remote_lo, st->remote_hi));
	x = json_object_new_object();
	json_object_object_add(x, "primes", json_object_new_int64((int64_t)st->primes_sent));
	json_object_object_add(x, "syns", json_object_new_int64((int64_t)st->syns_sent));
	json_object_object_add(x, "handshake", json_object_new_int64((int64_t)st->handshake_sent));
	json_object_object_add(x, "errors", json_object_new_int64((int64_t)st->send_errors));
	json_object_object_add(x, "total", json_object_new_int64((int64_t)(st->primes_sent + st->syns_sent +
									   st->handshake_sent)));
	json_object_object_add(o, "sent", x);
	x = json_object_new_object();
	json_object_object_add(x, "syn", json_object_new_int64(st->rx_syn));
	json_object_object_add(x, "syn_ack", json_object_new_int64(st->rx_synack));
	json_object_object_add(x, "rst", json_object_new_int64(st->rx_rst));
	json_object_object_add(x, "icmp", json_object_new_int64(st->rx_icmp));
	json_object_object_add(x, "icmp_ttl_exceeded", json_object_new_int64(st->rx_icmp_ttl));
	json_object_object_add(x, "forged", json_object_new_int64(st->rx_forged));
	json_object_object_add(x, "other", json_object_new_int64(st->rx_other));
	json_object_object_add(o, "seen", x);
	json_object_object_add(o, "trigger", st->trigger ? json_object_new_string(st->trigger) : NULL);
	if (st->defined) {
		x = json_object_new_object();
		json_object_object_add(x, "local_port", json_object_new_int(st->lport));
		json_object_object_add(x, "remote_port", json_object_new_int(st->rport));
		json_object_object_add(o, "flow", x);
	} else {
		json_object_object_add(o, "flow", NULL);
	}
	json_object_object_add(o, "established", json_object_new_boolean(st->established));
	json_object_object_add(o, "late_ms", ms_json(st->late_ms < 0 ? 0 : st->late_ms));
	json_object_object_add(o, "first_rx_ms", ms_json(st->t_first_rx_ms));
	json_object_object_add(o, "established_ms", ms_json(st->t_established_ms));
	json_object_object_add(o, "duration_ms", ms_json(st->duration_ms));
	json_object_object_add(o, "result", json_object_new_string(st->result == 0 ? "ok" :
								  st->result == -ETIMEDOUT ? "miss" :
								  st->result == -EINTR ? "interrupted" : strerror(-st->result)));
	json_object_object_add(o, "why", json_object_new_string(st->why));
	return o;
}
