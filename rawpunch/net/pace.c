/* SPDX-License-Identifier: MIT */
/* Token bucket with integer credit (see pace.h). */
#include "rawpunch/net/pace.h"

#define NS_PER_S 1000000000ull

uint64_t rp_pace_default_depth(uint64_t rate_pps)
{
	/* 5 ms of traffic: a sender woken late by the scheduler (loaded machine, timer slack)
	 * catches up instead of losing the time, and no burst is longer than that */
	uint64_t d = rate_pps / 200;
	if (d < 1)
		d = 1;
	if (d > 4096)
		d = 4096;
	return d;
}

void rp_pace_init(struct rp_pace *p, uint64_t rate_pps, uint64_t depth, uint64_t now_ns)
{
	p->rate = rate_pps;
	p->depth = depth ? depth : rp_pace_default_depth(rate_pps);
	if (p->depth > 1000000)    /* keeps depth * 1e9 far from overflowing */
		p->depth = 1000000;
	p->credit = 0;
	p->last_ns = now_ns;
}

/* Credit the bucket would hold at now_ns (without changing it). */
static uint64_t credit_at(const struct rp_pace *p, uint64_t now_ns)
{
	/* up to depth whole tokens plus the fraction of the next one, so that a poller that is late
	 * by less than a token's time loses nothing even with depth 1 */
	uint64_t cap = p->depth * NS_PER_S + (NS_PER_S - 1);
	uint64_t elapsed, room;

	if (now_ns <= p->last_ns)
		return p->credit;
	elapsed = now_ns - p->last_ns;
	room = cap - p->credit;
	/* elapsed * rate > room, written so that it cannot overflow */
	if (elapsed > room / p->rate)
		return cap;
	return p->credit + elapsed * p->rate < cap ? p->credit + elapsed * p->rate : cap;
}

uint64_t rp_pace_take(struct rp_pace *p, uint64_t now_ns, uint64_t want)
{
	uint64_t have;

	if (p->rate == 0)
		return want;
	p->credit = credit_at(p, now_ns);
	if (now_ns > p->last_ns)
		p->last_ns = now_ns;
	have = p->credit / NS_PER_S;
	if (have > p->depth)
		have = p->depth;
	if (want > have)
		want = have;
	p->credit -= want * NS_PER_S;
	return want;
}

uint64_t rp_pace_wait_ns(const struct rp_pace *p, uint64_t now_ns)
{
	uint64_t c, need;

	if (p->rate == 0)
		return 0;
	c = credit_at(p, now_ns);
	if (c >= NS_PER_S)
		return 0;
	need = NS_PER_S - c;   /* units still missing; at `rate` units per ns */
	return (need + p->rate - 1) / p->rate;
}
