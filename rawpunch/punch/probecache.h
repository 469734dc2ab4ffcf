/* SPDX-License-Identifier: MIT */
/* The probe cache: the punch's first probe (NAT mapping, allocation, filtering, NAT TTL) kept for a few
 * minutes, keyed by the local address, the gateway (the route to the STUN server) and the STUN
 * server, so that a punch minutes later from the same network skips the filter probe, the TTL search,
 * the mapping tests and the allocation samples. It is trusted only after one round of STUN Bindings
 * (rp_probe_recheck, rawpunch/probe/probe.h) shows the NAT still fits it: the same public address,
 * and a port that fits the cached allocation -- the punch port kept (preserving), or not kept and in
 * the range seen (random; sequential behind an endpoint-independent mapping, whose mapping is what
 * the peer meets), or for a predicted sequential side a second Binding from a fresh port in flight
 * beside the punch port's, the step between the two a multiple of delta within the prediction
 * window; the prediction then starts from the fresher. Kept: a NAT behind which that check can run
 * (mapping and allocation known; sequential with its delta) and whose filtering is known. Files:
 * $XDG_CACHE_HOME/rawpunch/, else /run/rawpunch/ for root, else ~/.cache/rawpunch/ — one JSON file
 * per key (probe-<hex>.json, mode 0644; a write removes entries older than the cache keeps);
 * deleting the probe-*.json files clears it, --fresh-probe ignores it.
 * Library code: prints nothing; 0 or -errno. */
#ifndef RP_PROBECACHE_H
#define RP_PROBECACHE_H
#include <netinet/in.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

#define RP_PROBECACHE_MAX_AGE_S 300

/* The cache folder (see above) in buf. 0 or -ENAMETOOLONG / -ENOENT (no HOME for a user). */
int rp_probecache_dir(char *buf, size_t cap);

/* A fresh natinfo from the cache for a probe from local_port via stun: 0 with *ni (local and mapped
 * port the punch port's, the prediction from the check's fresh flows, probed_at now) after the
 * check (above) passed; -ENOENT (no entry, too old, or not a behaviour the cache keeps), -ESTALE
 * (the NAT no longer fits the entry: it is removed), or an exchange's -errno. */
int rp_probecache_get(const struct sockaddr_in *stun, uint16_t local_port, int timeout_ms, struct rp_natinfo *ni);

/* Keep ni (a full first probe) for later punches, if it is a behaviour the cache keeps (above).
 * 0, -ENOTSUP (not kept), -errno (the folder or file could not be written). */
int rp_probecache_put(const struct sockaddr_in *stun, const struct rp_natinfo *ni);

#endif
