/* SPDX-License-Identifier: MIT */
/* Token bucket (tbucket.h): level in 1/60000 token, so a rate given per minute refills exactly
 * per_min units a millisecond. */
#include "rawpunch/base/tbucket.h"

void rp_tb_init(struct rp_tbucket *b, unsigned burst, uint64_t now_ms)
{
	b->level = (uint64_t)burst * RP_TB_UNIT;
	b->last_ms = now_ms;
}

static uint64_t level_at(const struct rp_tbucket *b, unsigned burst, unsigned per_min, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)burst * RP_TB_UNIT, lv = b->level;
	if (lv >= cap)
		return cap;
	if (now_ms > b->last_ms && per_min) {
		uint64_t dt = now_ms - b->last_ms, room = cap - lv;
		if (dt > room / per_min)          /* full (and dt * per_min cannot overflow below this) */
			return cap;
		lv += dt * per_min;
	}
	return lv < cap ? lv : cap;
}

bool rp_tb_take(struct rp_tbucket *b, unsigned burst, unsigned per_min, uint64_t now_ms)
{
	b->level = level_at(b, burst, per_min, now_ms);
	if (now_ms > b->last_ms)
		b->last_ms = now_ms;
	if (b->level < RP_TB_UNIT)
		return false;
	b->level -= RP_TB_UNIT;
	return true;
}

uint64_t rp_tb_wait_ms(const struct rp_tbucket *b, unsigned burst, unsigned per_min, uint64_t now_ms)
{
	uint64_t lv = level_at(b, burst, per_min, now_ms);
	if (lv >= RP_TB_UNIT)
		return 0;
	if (!per_min)
		return UINT64_MAX;
	return (RP_TB_UNIT - lv + per_min - 1) / per_min;
}
