/* SPDX-License-Identifier: MIT */
/* The registry of punch strategies: the order the planner asks them in (rp_plan_make takes the first
 * whose applies() says yes). One line per strategy, naming its file's `rp_strategy_<x>`; the last
 * entry takes every pair. */
#include <stddef.h>

#include "rawpunch/strategy/strategy.h"

#define STRATEGIES(X)                                                                                        \
	X(mapped)    /* mapped.c:   a side with a port mapping from its NAT x any side */                    \
	X(simopen)   /* simopen.c:  easy x easy */                                                           \
	X(predict)   /* predict.c:  easy x predictable, predictable x predictable (lockstep) */              \
	X(birthday)  /* birthday.c: easy x hard */                                                           \
	X(blockpair) /* blockpair.c: hard x hard (or predictable) with both sides in known port blocks */    \
	X(refuse)    /* refuse.c:   everything else; keep it last */

#define DECLARE(x) extern const struct rp_strategy rp_strategy_##x;
STRATEGIES(DECLARE)

#define ENTRY(x) &rp_strategy_##x,
const struct rp_strategy *const rp_strategies[] = { STRATEGIES(ENTRY) NULL };
