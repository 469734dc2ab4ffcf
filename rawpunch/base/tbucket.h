/* SPDX-License-Identifier: MIT */
/* Token bucket: a rate limit with a burst, in exact integer arithmetic. Pure: the caller passes the
 * time (ms, any monotonic origin) and the parameters, the bucket holds only its level and the time of
 * its last update. Used by the rendezvous server for per-connection message rates and per-address
 * filter-probe rates. */
#ifndef RP_TBUCKET_H
#define RP_TBUCKET_H
#include <stdbool.h>
#include <stdint.h>

struct rp_tbucket {
	uint64_t level;       /* tokens x 60000 (one token = RP_TB_UNIT) */
	uint64_t last_ms;
};
#define RP_TB_UNIT 60000u

/* A full bucket (burst tokens) at now_ms. */
void rp_tb_init(struct rp_tbucket *b, unsigned burst, uint64_t now_ms);
/* Refill for the time since the last update (per_min tokens a minute, never above burst), then take one
 * token if there is one. true: taken. A clock that goes back adds nothing. */
bool rp_tb_take(struct rp_tbucket *b, unsigned burst, unsigned per_min, uint64_t now_ms);
/* Milliseconds from now_ms until rp_tb_take would succeed (0: now); per_min 0: UINT64_MAX. */
uint64_t rp_tb_wait_ms(const struct rp_tbucket *b, unsigned burst, unsigned per_min, uint64_t now_ms);

#endif
