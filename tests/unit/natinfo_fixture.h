/* SPDX-License-Identifier: MIT */
/* For unit tests: a natinfo as the probe reports it for each lab NAT profile (tools/natlab: preserve,
 * sequential, random, block: random inside a 256-port block), with the filtering and the public
 * address given. Header-only. */
#ifndef RP_TEST_NATINFO_FIXTURE_H
#define RP_TEST_NATINFO_FIXTURE_H
#include <arpa/inet.h>
#include <string.h>

#include "rawpunch/probe/natinfo.h"

/* an easy, a predictable and two hard sides (BLOCK with its port block known); MAPPED: a random NAT
 * that granted a port mapping (PCP) for the punch port, seen through it (rawpunch/punch/pmhold.h:
 * rp_natinfo_through_mapping) */
enum prof { PRESERVE, SEQUENTIAL, RANDOM, MAPPED, BLOCK };

static inline void mk(struct rp_natinfo *ni, enum prof p, enum rp_filter f, const char *pub, uint16_t lport)
{
	memset(ni, 0, sizeof(*ni));
	inet_pton(AF_INET, "10.0.1.2", &ni->local_addr);
	inet_pton(AF_INET, pub, &ni->mapped_addr);
	ni->local_port = lport;
	ni->behind_nat = true;
	ni->filtering = f;
	ni->nat_ttl = 2;
	switch (p) {
	case PRESERVE:
		ni->mapping = RP_MAP_EI;
		ni->alloc = RP_ALLOC_PRESERVING;
		ni->mapped_port = lport;
		break;
	case SEQUENTIAL:
		ni->mapping = RP_MAP_APD;
		ni->alloc = RP_ALLOC_SEQUENTIAL;
		ni->mapped_port = 20010;
		ni->has_delta = true;
		ni->delta = 1;
		ni->jitter = 0.5;
		ni->confidence = 0.8;
		for (unsigned i = 0; i < 4; i++)
			ni->predicted[i] = (uint16_t)(20011 + i);
		ni->n_predicted = 4;
		break;
	case RANDOM:
		ni->mapping = RP_MAP_APD;
		ni->alloc = RP_ALLOC_RANDOM;
		ni->mapped_port = 51234;
		break;
	case MAPPED:
		ni->alloc = RP_ALLOC_RANDOM;
		ni->pm_asked = true;
		ni->pm_found = 1 | 2 | 4;
		memcpy(ni->pm_proto, "pcp", 4);
		ni->pm_addr = ni->mapped_addr;
		ni->pm_port = (uint16_t)(lport + 7);
		ni->pm_lifetime_s = 60;
		ni->pm_ms = 3.5;
		ni->mapped_port = ni->pm_port;
		ni->mapping = RP_MAP_EI;
		ni->filtering = RP_FILTER_OPEN;
		break;
	case BLOCK:   /* the lab's block: random in an aligned block (a at 52224, b at 33792) */
		ni->mapping = RP_MAP_APD;
		ni->alloc = RP_ALLOC_RANDOM;
		ni->has_range = true;
		ni->range_lo = lport == 40000 ? 52224 : 33792;
		ni->range_hi = (uint16_t)(ni->range_lo + 255);
		ni->range_confidence = 1.0;
		ni->mapped_port = (uint16_t)(ni->range_lo + 17);
		break;
	}
}

#endif
