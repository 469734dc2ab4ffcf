/* SPDX-License-Identifier: MIT */
/* Clocks as plain integers: CLOCK_MONOTONIC for deadlines and intervals, CLOCK_REALTIME for times
 * shared with another host (the rendezvous start, offers). Header-only (static inline), no state. */
#ifndef RP_CLOCK_H
#define RP_CLOCK_H
#include <stdint.h>
#include <time.h>

static inline uint64_t rp_clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rp_mono_ns(void)
{
	return rp_clock_ns(CLOCK_MONOTONIC);
}

static inline uint64_t rp_mono_ms(void)
{
	return rp_mono_ns() / 1000000u;
}

static inline uint64_t rp_real_ns(void)
{
	return rp_clock_ns(CLOCK_REALTIME);
}

#endif
