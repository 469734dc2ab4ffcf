/* SPDX-License-Identifier: MIT */
/* NAT classification, the port range (see natclass.h): the window a host's external ports come from,
 * inferred from the allocation samples. Random ports confined to a span far narrower than chance
 * allows give a block (or the NAT's narrow range); a sequential counter that wraps gives the range it
 * wraps in. Pure. */
#include "rawpunch/probe/natclass.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ALIGNED_PRIOR 1000.0  /* port blocks and ranges start on a multiple of their size (or of it
                               * past 1024, the dynamic range's start) far more often than not */

static void span_of(const struct rp_port_sample *s, size_t n, long *lo, long *hi)
{
	*lo = 65535;
	*hi = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].mapped_port < *lo)
			*lo = s[i].mapped_port;
		if (s[i].mapped_port > *hi)
			*hi = s[i].mapped_port;
	}
}

/* lo is on a multiple of size counted from 0 or from 1024 */
static bool is_aligned(long lo, long size)
{
	return size > 1 && (lo % size == 0 || (lo >= 1024 && (lo - 1024) % size == 0));
}

/* The smallest power-of-two block, aligned from 0 or from 1024, that holds lo..hi: *start, size. */
static long aligned_block(long lo, long hi, long *start)
{
	long size = 1;
	while (size < hi - lo + 1)
		size <<= 1;
	for (; size <= 65536; size <<= 1) {
		if (lo / size == hi / size) {
			*start = lo / size * size;
			return size;
		}
		if (lo >= 1024 && (lo - 1024) / size == (hi - 1024) / size) {
			*start = 1024 + (lo - 1024) / size * size;
			return size;
		}
	}
	*start = 0;
	return 65536;
}

int rp_range_from_spread(const struct rp_port_sample *s, size_t n, uint16_t full_lo, uint16_t full_hi,
			 struct rp_port_range *r)
{
	if (!r || (n && !s) || full_hi < full_lo)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	if (n < RP_ALLOC_MIN_SAMPLES)
		return 0;
	long lo, hi;
	span_of(s, n, &lo, &hi);
	double span = (double)(hi - lo + 1), full = (double)full_hi - full_lo + 1, x = span / full;
	if (x >= 1)
		return 0;
	/* P(range of n uniform draws <= x), the order statistics' classic: n x^(n-1) - (n-1) x^n */
	double dn = (double)n;
	r->p_chance = dn * pow(x, dn - 1) - (dn - 1) * pow(x, dn);
	if (r->p_chance >= RP_RANGE_ALPHA)
		return 0;
	/* An aligned power-of-two block (what block allocators hand out) against any window: the
	 * block's likelihood is size^-n at one position; a window of any width W >= span (log-uniform)
	 * at any of the full - W positions holding the samples integrates to span^(1-n) / (n (n-1))
	 * over full. The block wins when (span/size)^n * full * n (n-1) / span >= 1. Then the chance
	 * that the true block is twice as large and the draws all fell in one half is 2^(1-n). */
	long start, size = aligned_block(lo, hi, &start);
	double log_bf = dn * log(span / (double)size) + log(full * dn * (dn - 1) / span);
	r->how = RP_RANGE_SPREAD;
	if (size <= 65536 && log_bf >= 0) {
		r->aligned = true;
		r->lo = (uint16_t)(start < full_lo ? full_lo : start);
		r->hi = (uint16_t)(start + size - 1 > full_hi ? full_hi : start + size - 1);
		r->confidence = 1.0 - pow(2.0, -dn);
	} else {
		/* no block: the span widened by one mean gap each side; the next draw lands inside
		 * [min, max] with P (n-1)/(n+1), and in each widening with about (1 - 1/e)/(n+1) */
		long g = (long)ceil(span / (dn - 1));
		r->lo = (uint16_t)(lo - g < full_lo ? full_lo : lo - g);
		r->hi = (uint16_t)(hi + g > full_hi ? full_hi : hi + g);
		r->confidence = (dn - 1 + 2 * (1 - exp(-1.0))) / (dn + 1);
	}
	return 0;
}

static double poisson_pmf(unsigned k, double mu)
{
	double p = exp(-mu);
	for (unsigned i = 1; i <= k; i++)
		p *= mu / i;
	return p;
}

/* Step i of s, if it goes against delta's direction (a counter's wrap, if it is one): its size and
 * the foreign flows expected during it. */
static bool against(const struct rp_port_sample *s, size_t i, int32_t delta, double rate, long *d, double *mu)
{
	long x = (long)s[i + 1].mapped_port - s[i].mapped_port;
	if (!x || (delta > 0 ? x > 0 : x < 0))
		return false;
	double dt = s[i + 1].t_ns > s[i].t_ns ? (double)(s[i + 1].t_ns - s[i].t_ns) / 1e9 : 0;
	*d = labs(x);
	*mu = rate * dt > 1e-3 ? rate * dt : 1e-3;
	return true;
}

int rp_range_from_wraps(const struct rp_port_sample *s, size_t n, int32_t delta, double foreign_rate,
			struct rp_port_range *r)
{
	if (!r || (n && !s) || !delta || !(foreign_rate >= 0))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	long a = labs((long)delta), lo, hi, d0 = 0, d;
	double mu0 = 0, mu;
	size_t i0 = n;
	for (size_t i = 0; i + 1 < n && i0 == n; i++)
		if (against(s, i, delta, foreign_rate, &d0, &mu0))
			i0 = i;
	if (i0 == n)
		return 0;
	span_of(s, n, &lo, &hi);
	/* Each width w = k * a + |d0| the first wrap allows, weighed by how likely the foreign flows
	 * it implies at every wrap are, and by whether it leaves a range on an aligned start. */
	double total = 0, best_wt = 0, best_conf = 0;
	long best_lo = 0, best_w = 0;
	bool best_aligned = false;
	for (long k0 = 1; k0 <= RP_WRAP_MAX_K; k0++) {
		long w = k0 * a + d0;
		if (w < hi - lo + 1 || w > 65535)
			continue;
		double wt = poisson_pmf((unsigned)(k0 - 1), mu0);
		for (size_t j = i0 + 1; j + 1 < n && wt > 0; j++) {
			if (!against(s, j, delta, foreign_rate, &d, &mu))
				continue;
			long rest = w - d;
			if (rest <= 0 || rest % a || rest / a > RP_WRAP_MAX_K)
				wt = 0;
			else
				wt *= poisson_pmf((unsigned)(rest / a - 1), mu);
		}
		if (wt <= 0)
			continue;
		/* the range holds every sample: lo in [hi - w + 1, lo]; prefer an aligned start, else the
		 * end the counter was last seen at before it wrapped */
		long first = hi - w + 1 > 1 ? hi - w + 1 : 1, last = lo;
		if (last + w - 1 > 65535)
			last = 65535 - w + 1;
		if (first > last)
			continue;
		long pick = delta > 0 ? first : last;
		bool aligned = false;
		for (long c = first; c <= last; c++)
			if (is_aligned(c, w)) {
				pick = c;
				aligned = true;
				break;
			}
		if (aligned)
			wt *= ALIGNED_PRIOR;
		total += wt;
		if (wt > best_wt) {
			best_wt = wt;
			best_lo = pick;
			best_w = w;
			best_aligned = aligned;
			best_conf = aligned ? 1.0 : 1.0 / (double)(last - first + 1);
		}
	}
	if (best_wt <= 0)
		return 0;
	r->how = RP_RANGE_WRAP;
	r->lo = (uint16_t)best_lo;
	r->hi = (uint16_t)(best_lo + best_w - 1);
	r->aligned = best_aligned;
	r->confidence = best_wt / total * best_conf;
	return 0;
}
