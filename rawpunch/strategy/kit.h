/* SPDX-License-Identifier: MIT */
/* What the strategy files (simopen.c, predict.c, ...) share: small facts about a side that several
 * plans use. Internal to rawpunch/strategy/ (and its unit tests); callers use strategy.h. Pure. */
#ifndef RP_STRATEGY_KIT_H
#define RP_STRATEGY_KIT_H
#include <stdbool.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

#define RP_DEF_RATE 2000u
#define RP_DEF_LOW_TTL 2u         /* NAT hops + 1 for a host right behind its NAT */

/* The external port a new flow from the punch port gets, for an easy side (0: unknown). */
uint16_t rp_kit_easy_port(const struct rp_natinfo *ni);
/* TTL that opens the side's own mapping but dies before the peer's NAT: nat_ttl, else 2. */
uint8_t rp_kit_low_ttl(const struct rp_natinfo *ni);
/* Behind a NAT that answers a SYN it has no mapping for (RST or ICMP), i.e. not open, not drop. */
bool rp_kit_answers_unsolicited(const struct rp_natinfo *ni);
/* Milliseconds to send n packets at rate per second, rounded up (0 when rate is 0). */
uint32_t rp_kit_ms_for(uint64_t n, uint32_t rate);

#endif
