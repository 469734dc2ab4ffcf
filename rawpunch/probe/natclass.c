/* SPDX-License-Identifier: MIT */
/* NAT classification (see natclass.h): the RFC 5780 mapping tests, the allocation fit and the
 * prediction. The port range is inferred in natclass-range.c, nat_ttl's hop evidence weighed in
 * natclass-hops.c. Pure. */
#include "rawpunch/probe/natclass.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool ep_eq(const struct rp_ep *a, const struct rp_ep *b)
{
	return a->addr == b->addr && a->port == b->port;
}

enum rp_mapping rp_mapping_classify4(const struct rp_ep *local, const struct rp_ep *m1, const struct rp_ep *m2,
				     const struct rp_ep *m3, const struct rp_ep *m4, bool *behind_nat)
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
	bool port_kept = !m4 || ep_eq(m4, m1);   /* same address, other port: same mapping? */
	if (ep_eq(m1, m2))
		return (!m3 || ep_eq(m3, m1)) && port_kept ? RP_MAP_EI : RP_MAP_APD;
	if (!m3 && !m4)
		return RP_MAP_UNKNOWN;
	return (!m3 || ep_eq(m2, m3)) && port_kept ? RP_MAP_AD : RP_MAP_APD;
}

enum rp_mapping rp_mapping_classify(const struct rp_ep *local, const struct rp_ep *m1,
				    const struct rp_ep *m2, const struct rp_ep *m3, bool *behind_nat)
{
	return rp_mapping_classify4(local, m1, m2, m3, NULL, behind_nat);
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

/* One step of the series with delta: k > 0 if it is k * delta (after a wrap of w ports when
 * wrap_w > 0 and the step goes against delta), else 0. *wrap says whether it wrapped. */
static long step_k(long d, long delta, long wrap_w, bool *wrap)
{
	long k = multiple(d, delta);
	*wrap = false;
	if (!k && wrap_w > 0 && (delta > 0 ? d < 0 : d > 0)) {
		k = multiple(delta > 0 ? d + wrap_w : d - wrap_w, delta);
		*wrap = k != 0;
	}
	return k;
}

/* The second pass for a delta that explains enough steps: the range (given, or from the wraps),
 * foreign flows, their rate, the spread, and the test against a random series that merely
 * happens to step one way often enough. Fills f and returns true for sequential. */
static bool sequential_fit(const struct rp_port_sample *s, size_t n, long best, bool known_range, long w,
			   unsigned need, const struct rp_alloc_opts *o, struct rp_alloc_fit *f)
{
	f->has_delta = true;
	f->delta = (int32_t)best;
	if (known_range) {
		f->port_range = (struct rp_port_range){ .how = RP_RANGE_GIVEN, .lo = o->range_lo, .hi = o->range_hi,
							.confidence = 1.0 };
	} else {
		/* a first estimate of the foreign rate (its upper bound) for the wraps' k: fitted steps only */
		double span = 0;
		unsigned foreign = 0;
		for (size_t i = 0; i + 1 < n; i++) {
			long k = multiple(step_of(s[i].mapped_port, s[i + 1].mapped_port), best);
			if (k && s[i + 1].t_ns > s[i].t_ns) {
				foreign += (unsigned)(k - 1);
				span += (double)(s[i + 1].t_ns - s[i].t_ns) / 1e9;
			}
		}
		rp_range_from_wraps(s, n, (int32_t)best, poisson_upper95(foreign) / (span > 1e-3 ? span : 1e-3),
				    &f->port_range);
		if (f->port_range.how == RP_RANGE_WRAP) {
			f->range_lo = f->port_range.lo;
			f->range_hi = f->port_range.hi;
			w = (long)f->range_hi - f->range_lo + 1;
		} else {
			w = 0;   /* no wrap seen: steps against delta stay unexplained */
		}
	}
	double sum = 0, sum2 = 0, span = 0;
	unsigned nmeas = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		long d = step_of(s[i].mapped_port, s[i + 1].mapped_port);
		bool wrap;
		long k = step_k(d, best, w, &wrap);
		if (!k) {
			if (d && (best > 0 ? d < 0 : d > 0))
				f->n_against++;
			continue;
		}
		if (wrap)
			d = best > 0 ? d + w : d - w;
		f->n_fit++;
		f->n_wraps += wrap;
		f->n_foreign += (unsigned)(k - 1);
		sum += (double)d;
		sum2 += (double)d * (double)d;
		nmeas++;
		if (s[i + 1].t_ns > s[i].t_ns)
			span += (double)(s[i + 1].t_ns - s[i].t_ns) / 1e9;
	}
	unsigned allowed = f->n_steps / 16 > 1 ? f->n_steps / 16 : 1;
	if (f->n_fit < need || f->n_against > allowed)
		return false;
	f->span_s = span;
	if (span < 1e-3)
		span = 1e-3;
	f->foreign_rate = f->n_foreign / span;
	f->foreign_rate_hi = poisson_upper95(f->n_foreign) / span;
	/* A range of w ports holds at most w mappings at once, each for at least a second: a counter
	 * in it cannot serve more than w new flows a second. Random ports in a small block read as
	 * "a counter with heaps of foreign flows between our samples" fail here. */
	if (w > 0 && f->foreign_rate > (double)w / RP_MAPPING_MIN_LIFE_S)
		return false;
	f->alloc = RP_ALLOC_SEQUENTIAL;
	if (nmeas) {
		double mean = sum / nmeas, var = sum2 / nmeas - mean * mean;
		f->jitter = var > 0 ? sqrt(var) : 0;
	}
	return true;
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
	 * then to the smaller |delta|. A step against the direction of delta by more than 1024 ports
	 * (counted once, and only if a range that wide could hold every sample) or, with a known range,
	 * exactly k*delta once wrapped, is a wraparound. */
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
				else if (labs(d) > 1024 && !wrapped &&
					 labs(d) + RP_WRAP_MAX_K * labs(delta) > (long)hi_obs - lo_obs)
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
	if (need < 3)
		need = 3;
	if (best && best_fit >= need && sequential_fit(s, n, best, known_range, w, need, o, f))
		return 0;
	f->alloc = RP_ALLOC_RANDOM;
	f->has_delta = false;
	f->delta = 0;
	f->n_fit = f->n_wraps = f->n_foreign = f->n_against = 0;
	f->jitter = f->span_s = f->foreign_rate = f->foreign_rate_hi = 0;
	f->range_lo = o->range_lo ? o->range_lo : (lo_obs >= 1024 ? 1024 : 1);
	f->range_hi = o->range_hi ? o->range_hi : 65535;
	rp_range_from_spread(s, n, f->range_lo, f->range_hi, &f->port_range);
	if (f->port_range.how == RP_RANGE_NONE && known_range)
		f->port_range = (struct rp_port_range){ .how = RP_RANGE_GIVEN, .lo = o->range_lo, .hi = o->range_hi,
							.confidence = 1.0 };
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

/* ---------------------------------------------------------------- the cached classification checked */

/* A predicting side: sequential, its mapping not endpoint-independent. */
static bool predicts(const struct rp_natinfo *c)
{
	return c->alloc == RP_ALLOC_SEQUENTIAL && c->mapping != RP_MAP_EI;
}

unsigned rp_alloc_recheck_flows(const struct rp_natinfo *c)
{
	if (!c || !c->behind_nat || c->mapping == RP_MAP_UNKNOWN)
		return 0;
	switch (c->alloc) {
	case RP_ALLOC_PRESERVING:
	case RP_ALLOC_RANDOM:
		return 1;
	case RP_ALLOC_SEQUENTIAL:
		if (!predicts(c))
			return 1;
		return c->has_delta && c->delta && labs(c->delta) <= RP_ALLOC_MAX_DELTA && c->n_predicted ? 2 : 0;
	default:
		return 0;
	}
}

static bool in_range(const struct rp_natinfo *c, uint16_t port)
{
	return !c->has_range || (port >= c->range_lo && port <= c->range_hi);
}

int rp_alloc_recheck(const struct rp_natinfo *c, uint32_t mapped_addr, const struct rp_port_sample *s, size_t n,
		     struct rp_natinfo *out)
{
	unsigned need = rp_alloc_recheck_flows(c);
	if (!out || !s || !need || n != need)
		return -EINVAL;
	if (mapped_addr != c->mapped_addr)
		return -ESTALE;   /* another public address: another NAT, or the same one renumbered */
	for (size_t i = 0; i < n; i++) {
		bool kept = s[i].mapped_port == s[i].local_port;
		if (kept != (c->alloc == RP_ALLOC_PRESERVING) || !in_range(c, s[i].mapped_port))
			return -ESTALE;
	}
	struct rp_natinfo x = *c;
	x.local_port = s[0].local_port;
	x.mapped_addr = mapped_addr;
	x.mapped_port = s[0].mapped_port;
	if (c->mapping == RP_MAP_EI || c->alloc == RP_ALLOC_PRESERVING) {
		x.predicted[0] = x.mapped_port;   /* the mapping, or the punch port itself */
		x.n_predicted = 1;
	} else if (predicts(c)) {
		/* the counter's range: the one seen, else what rp_alloc_classify() wraps in */
		uint16_t lo = c->has_range ? c->range_lo : (s[0].mapped_port >= 1024 && s[1].mapped_port >= 1024 ? 1024 : 1);
		uint16_t hi = c->has_range ? c->range_hi : 65535;
		long w = (long)hi - lo + 1;
		bool wrap;
		long k = step_k(step_of(s[0].mapped_port, s[1].mapped_port), c->delta, w, &wrap);
		unsigned width = c->n_predicted < RP_MAX_PREDICT ? c->n_predicted : RP_MAX_PREDICT;
		if (k < 1 || (unsigned long)k > width)
			return -ESTALE;   /* no longer a counter of this delta, or far busier than cached */
		for (unsigned i = 0; i < width; i++)
			x.predicted[i] = wrap_port((long)s[1].mapped_port + (long)c->delta * (long)(i + 1), lo, hi);
		x.n_predicted = width;
	}
	*out = x;
	return 0;
}
