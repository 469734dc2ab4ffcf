/* SPDX-License-Identifier: MIT */
#include "rawpunch/probe/natclass.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool ep_eq(const struct rp_ep *a, const struct rp_ep *b)
{
	return a->addr == b->addr && a->port == b->port;
}

enum rp_mapping rp_mapping_classify(const struct rp_ep *local, const struct rp_ep *m1,
				    const struct rp_ep *m2, const struct rp_ep *m3, bool *behind_nat)
{
	if (behind_nat)
		*behind_nat = false;
	if (!m1)
		return RP_MAP_UNKNOWN;
	if (behind_nat && local)
		*behind_nat = !ep_eq(local, m1);
	if (local && ep_eq(local, m1))
		return RP_MAP_EI;   /* no NAT: the host's own address is what everyone sees */
	if (!m2)
		return RP_MAP_UNKNOWN;
	if (ep_eq(m1, m2))
		return RP_MAP_EI;
	if (!m3)
		return RP_MAP_UNKNOWN;
	return ep_eq(m2, m3) ? RP_MAP_AD : RP_MAP_APD;
}

bool rp_ipv4_is_private(uint32_t addr)
{
	uint32_t a = ntohl(addr);
	return (a >> 24) == 10 ||                    /* 10/8 */
	       (a >> 20) == (172u << 4 | 1) ||        /* 172.16/12 */
	       (a >> 16) == (192u << 8 | 168) ||      /* 192.168/16 */
	       (a >> 22) == (100u << 2 | 1) ||        /* 100.64/10 (RFC 6598, carrier-grade NAT) */
	       (a >> 16) == (169u << 8 | 254) ||      /* 169.254/16 */
	       (a >> 24) == 127 || (a >> 24) == 0;
}

/* ---------------------------------------------------------------- allocation */

/* Signed distance from a to b going the short way round a range of w ports. */
static long step_of(long a, long b)
{
	return b - a;
}

/* k if d == k*delta with 1 <= k <= RP_ALLOC_MAX_K, else 0. */
static long multiple(long d, long delta)
{
	if (!delta || d % delta)
		return 0;
	long k = d / delta;
	return k >= 1 && k <= RP_ALLOC_MAX_K ? k : 0;
}

/* Wilson-Hilferty upper ~95% bound of a Poisson mean given c events. */
static double poisson_upper95(unsigned c)
{
	double n = (double)c + 1.0;
	double t = 1.0 - 1.0 / (9.0 * n) + 1.645 / (3.0 * sqrt(n));
	return n * t * t * t;
}

int rp_alloc_classify(const struct rp_port_sample *s, size_t n, const struct rp_alloc_opts *o,
		      struct rp_alloc_fit *f)
{
	static const struct rp_alloc_opts defaults = { 0 };
	if (!f || (n && !s) || n > 65535)
		return -EINVAL;
	if (!o)
		o = &defaults;
	if ((o->range_lo || o->range_hi) && (!o->range_lo || o->range_hi <= o->range_lo))
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	f->n = (unsigned)n;
	f->n_steps = n ? (unsigned)n - 1 : 0;
	if (n) {
		f->last_mapped = s[n - 1].mapped_port;
		f->last_t_ns = s[n - 1].t_ns;
	}
	double pmin = o->preserve_min > 0 ? o->preserve_min : 0.8;
	double smin = o->sequential_min > 0 ? o->sequential_min : 0.6;
	uint16_t lo_obs = 65535, hi_obs = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].mapped_port == s[i].local_port)
			f->n_preserved++;
		if (s[i].mapped_port < lo_obs)
			lo_obs = s[i].mapped_port;
		if (s[i].mapped_port > hi_obs)
			hi_obs = s[i].mapped_port;
	}
	f->range_lo = o->range_lo ? o->range_lo : (lo_obs >= 1024 || !n ? 1024 : 1);
	f->range_hi = o->range_hi ? o->range_hi : 65535;
	if (n < RP_ALLOC_MIN_SAMPLES)
		return 0;
	if ((double)f->n_preserved >= pmin * (double)n) {
		f->alloc = RP_ALLOC_PRESERVING;
		return 0;
	}

	/* Best delta: most steps explained as k*delta (k >= 1); ties go to fewer implied foreign flows,
	 * then to the smaller |delta|. A step against the direction of delta by more than half the
	 * range (or, with a known range, exactly k*delta once wrapped) is a wraparound. */
	bool known_range = o->range_lo != 0;
	long w = (long)f->range_hi - (long)f->range_lo + 1;
	long best = 0;
	unsigned best_fit = 0, best_foreign = ~0u;
	for (long delta = -RP_ALLOC_MAX_DELTA; delta <= RP_ALLOC_MAX_DELTA; delta++) {
		if (!delta)
			continue;
		unsigned fit = 0, foreign = 0;
		bool wrapped = false;
		for (size_t i = 0; i + 1 < n; i++) {
			long d = step_of(s[i].mapped_port, s[i + 1].mapped_port), k = multiple(d, delta);
			if (!k && (delta > 0 ? d < 0 : d > 0)) {
				if (known_range)
					k = multiple(delta > 0 ? d + w : d - w, delta);
				else if (labs(d) > 1024 && !wrapped)
					k = 1;   /* wrap into an unknown range: counted (once), not measured */
				wrapped = wrapped || k;
			}
			if (k) {
				fit++;
				foreign += (unsigned)(k - 1);
			}
		}
		if (fit > best_fit || (fit == best_fit && fit && foreign < best_foreign)) {
			best = delta;
			best_fit = fit;
			best_foreign = foreign;
		}
	}
	unsigned need = (unsigned)ceil(smin * (double)f->n_steps);
	if (need < 2)
		need = 2;
	if (!best || best_fit < need) {
		f->alloc = RP_ALLOC_RANDOM;
		return 0;
	}
	f->alloc = RP_ALLOC_SEQUENTIAL;
	f->has_delta = true;
	f->delta = (int32_t)best;
	/* Second pass with the chosen delta: foreign flows, their rate, the step spread, wraps. */
	double sum = 0, sum2 = 0, span = 0;
	unsigned nmeas = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		long d = step_of(s[i].mapped_port, s[i + 1].mapped_port), k = multiple(d, best);
		bool wrap = false;
		if (!k && (best > 0 ? d < 0 : d > 0)) {
			if (known_range) {
				d = best > 0 ? d + w : d - w;
				k = multiple(d, best);
			} else if (labs(d) > 1024 && !f->n_wraps) {
				k = -1;   /* unknown range: neither foreign count nor size */
			}
			wrap = k != 0;
		}
		if (!k)
			continue;
		f->n_fit++;
		if (wrap)
			f->n_wraps++;
		if (k < 0)
			continue;
		f->n_foreign += (unsigned)(k - 1);
		sum += (double)d;
		sum2 += (double)d * (double)d;
		nmeas++;
		if (s[i + 1].t_ns > s[i].t_ns)
			span += (double)(s[i + 1].t_ns - s[i].t_ns) / 1e9;
	}
	if (nmeas) {
		double mean = sum / nmeas, var = sum2 / nmeas - mean * mean;
		f->jitter = var > 0 ? sqrt(var) : 0;
	}
	f->span_s = span;
	if (span < 1e-3)
		span = 1e-3;
	f->foreign_rate = f->n_foreign / span;
	f->foreign_rate_hi = poisson_upper95(f->n_foreign) / span;
	if (!known_range && f->n_wraps) {
		/* Learn the range from what was seen (it is at least this wide). */
		f->range_lo = lo_obs;
		f->range_hi = hi_obs;
	}
	return 0;
}

/* P(X <= q) for X ~ Poisson(mu) */
static double poisson_cdf(double mu, unsigned q)
{
	double term = exp(-mu), sum = term;
	for (unsigned i = 1; i <= q; i++) {
		term *= mu / i;
		sum += term;
	}
	return sum > 1 ? 1 : sum;
}

static uint16_t wrap_port(long p, uint16_t lo, uint16_t hi)
{
	long w = (long)hi - lo + 1;
	long x = (p - lo) % w;
	if (x < 0)
		x += w;
	return (uint16_t)(lo + x);
}

int rp_alloc_predict(const struct rp_alloc_fit *f, enum rp_mapping mapping, uint16_t punch_local,
		     uint16_t punch_mapped, double horizon_s, unsigned max, struct rp_prediction *p)
{
	if (!f || !p || !(horizon_s >= 0) || max > RP_MAX_PREDICT)
		return -EINVAL;
	if (!max)
		max = RP_MAX_PREDICT;
	memset(p, 0, sizeof(*p));
	double pres = (f->n_preserved + 1.0) / (f->n + 2.0);
	if (mapping == RP_MAP_EI && punch_mapped) {
		/* Every flow from the punch port leaves through its existing mapping. Three agreeing
		 * tests: (3 + 1) / (3 + 2); more if the allocation agrees too. */
		p->ports[p->n++] = punch_mapped;
		p->confidence = 0.8;
		if (f->alloc == RP_ALLOC_PRESERVING && punch_mapped == punch_local && pres > 0.8)
			p->confidence = pres;
		p->k_max = 0;
		return 0;
	}
	switch (f->alloc) {
	case RP_ALLOC_PRESERVING:
		if (!punch_local)
			return 0;
		p->ports[p->n++] = punch_local;
		p->confidence = pres;
		return 0;
	case RP_ALLOC_SEQUENTIAL: {
		double mu_hi = f->foreign_rate_hi * horizon_s;
		double mu = (f->n_foreign + 0.5) / (f->span_s > 1e-3 ? f->span_s : 1e-3) * horizon_s;
		unsigned q = 0;
		while (q + 1 < max && poisson_cdf(mu_hi, q) < 0.999)
			q++;
		p->k_max = q + 1;
		p->expected_foreign = mu;
		for (unsigned k = 1; k <= p->k_max; k++)
			p->ports[p->n++] = wrap_port((long)f->last_mapped + (long)f->delta * (long)k,
						     f->range_lo, f->range_hi);
		double fit = (f->n_fit + 1.0) / (f->n_steps + 2.0);
		p->confidence = fit * poisson_cdf(mu, q);
		return 0;
	}
	default:
		return 0;   /* random or unknown: no useful prediction */
	}
}

/* ---------------------------------------------------------------- NAT hop */

int rp_nat_hop(const struct rp_hop *h, size_t n, uint32_t local_addr, uint32_t mapped_addr)
{
	(void)local_addr;
	if (!h && n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (h[i].answered && mapped_addr && h[i].from == mapped_addr)
			return h[i].ttl;   /* the NAT itself, answering from its public address */
	for (size_t i = 0; i < n; i++)
		if (h[i].answered && h[i].inner_seen && mapped_addr && h[i].inner_saddr == mapped_addr)
			return h[i].ttl - 1;   /* the quote left the NAT untranslated: it is one hop earlier */
	for (size_t i = 0; i < n; i++) {
		if (h[i].reached)
			break;
		if (h[i].answered && !rp_ipv4_is_private(h[i].from))
			return h[i].ttl - 1;
	}
	return -ENOENT;
}
