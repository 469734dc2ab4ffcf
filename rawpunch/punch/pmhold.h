/* SPDX-License-Identifier: MIT */
/* Port mapping beside the probe: ask the NAT (rawpunch/portmap: PCP, NAT-PMP, UPnP-IGD) to map the
 * punch port on a thread of its own while the probe runs, so that a network without any such service
 * costs the probe nothing; then put what the NAT offered into the natinfo (its pm_* fields), keep a
 * granted mapping refreshed (a second thread, at half its lifetime) while the punch runs, and delete
 * it at the end. The PORTMAP stage of the punch pipeline and `rawpunch probe` use it.
 * Library code: 0 or -errno, prints nothing. */
#ifndef RP_PMHOLD_H
#define RP_PMHOLD_H
#include <stdbool.h>
#include <stdint.h>

#include "rawpunch/portmap/portmap.h"
#include "rawpunch/probe/natinfo.h"

#define RP_PMHOLD_LIFETIME 60u   /* seconds asked for: short, refreshed while held */

struct rp_pmhold;

/* Start asking for o (copied) on a thread. 0 and *out, or -errno (nothing started). */
int rp_pmhold_start(const struct rp_portmap_opts *o, struct rp_pmhold **out);
/* The caller's own work is done: stop waiting for a late (SSDP) answer ms from now (the find step's
 * own timeout still runs out first). */
void rp_pmhold_give_up_in(struct rp_pmhold *h, int ms);
/* After a probe: how long its caller waits for a late answer (probe and punch alike) */
#define RP_PMHOLD_GRACE_MS 150
/* Wait for the answer: rp_portmap_request()'s result (0: mapped). Idempotent. */
int rp_pmhold_wait(struct rp_pmhold *h);
/* The request's figures (after rp_pmhold_wait). */
const struct rp_portmap *rp_pmhold_map(const struct rp_pmhold *h);
/* The pm_* fields of ni from the answer (after rp_pmhold_wait): what answered, what was granted, how
 * long it took, why not. ni's other fields are left alone. */
void rp_pmhold_fill(const struct rp_pmhold *h, struct rp_natinfo *ni);
/* Keep the granted mapping alive: refresh it at half its lifetime until rp_pmhold_release. 0, or
 * -ENOENT (nothing granted), -errno. */
int rp_pmhold_keep(struct rp_pmhold *h);
/* How many refreshes succeeded / the last refresh error (0 none). */
unsigned rp_pmhold_refreshes(const struct rp_pmhold *h, int *last_err);
/* Stop refreshing, delete the mapping (timeout_ms for the router's answer), free h. Returns the
 * delete's result (0 also when nothing was mapped). NULL is fine. */
int rp_pmhold_release(struct rp_pmhold *h, int timeout_ms);

/* A side seen through its mapping (ni->pm_port set): its public address and port are the granted
 * ones, its mapping endpoint-independent and its filtering open (the NAT forwards an inbound SYN to the
 * punch port), so rp_side_classify calls it easy. No-op without a mapping. Pure. */
void rp_natinfo_through_mapping(struct rp_natinfo *ni);

/* Copy the pm_* fields of from into ni (a re-probe from another port keeps what was asked). Pure. */
void rp_natinfo_keep_portmap(struct rp_natinfo *ni, const struct rp_natinfo *from);

#endif
