/* SPDX-License-Identifier: MIT */
/* Ask the NAT for a port mapping: PCP (RFC 6887, MAP and PEER; rawpunch's own codec, pcpmsg.h), NAT-PMP
 * (RFC 6886, libnatpmp) and UPnP-IGD (libminiupnpc, after rawpunch's own short SSDP search, ssdp.h),
 * behind one API.
 *
 * rp_portmap_request() works in two steps:
 *   1. find: every protocol asked for is tried at once, at the gateway of the default route (or
 *      o->gateway): a PCP ANNOUNCE, a NAT-PMP public-address request, an SSDP M-SEARCH (to the
 *      multicast group and to the gateway). None of these changes anything on the router. It ends
 *      when the most preferred protocol that answered has no more preferred one still pending, or after
 *      o->timeout_ms (250 ms by default): a network without any of them costs that much, or less when
 *      the gateway says "port unreachable". An IGD may delay its SSDP answer by up to 1 s (MX): that
 *      long is waited only when the gateway is known to be alive (it refused PCP / NAT-PMP) and did
 *      not refuse SSDP, or when UPnP is all that was asked for.
 *   2. map: with the answering protocols in the order PCP, NAT-PMP, UPnP, until one grants the mapping
 *      (PCP MAP, or PEER when o->peer_port is set; NAT-PMP and UPnP have no PEER and make a plain
 *      mapping). Only one mapping is ever made.
 * m->att[] tells for each protocol whether it was tried, answered, mapped, how long it took, and why
 * not. The mapping is recorded on disk (pmstate.h) so that a later run deletes it if this process is
 * killed; every request first deletes what killed holders in this network namespace left.
 *
 * A mapping lives for its granted lifetime: call rp_portmap_refresh() once rp_portmap_due_ms() is 0
 * (half the lifetime) while it is in use, and rp_portmap_delete() when done (also on SIGTERM: the caller
 * turns signals into a normal exit). Not thread-safe per mapping; IPv4 only. Every function returns
 * -errno and prints nothing (libminiupnpc itself may print a line on stderr when an HTTP connection to
 * an IGD it was pointed at fails). */
#ifndef RP_PORTMAP_H
#define RP_PORTMAP_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rawpunch/portmap/pmstate.h"

#define RP_PM_F(p) (1u << (p))
#define RP_PM_ALL (RP_PM_F(RP_PM_PCP) | RP_PM_F(RP_PM_NATPMP) | RP_PM_F(RP_PM_UPNP))
#define RP_PM_DEFAULT_LIFETIME 120u      /* seconds */
#define RP_PM_DEFAULT_TIMEOUT_MS 250
#define RP_PM_DEFAULT_MAP_TIMEOUT_MS 2000

struct rp_portmap_opts {
	unsigned protocols;        /* RP_PM_F(...) set; 0 = all three */
	uint8_t ipproto;           /* IPPROTO_TCP (0 means TCP) or IPPROTO_UDP */
	uint16_t internal_port;    /* required: the local port to map */
	uint16_t external_port;    /* external port wished for; 0 = the internal port */
	uint32_t lifetime_s;       /* asked for; 0 = RP_PM_DEFAULT_LIFETIME */
	int timeout_ms;            /* step 1 (find); 0 = RP_PM_DEFAULT_TIMEOUT_MS */
	int map_timeout_ms;        /* step 2, per protocol; 0 = RP_PM_DEFAULT_MAP_TIMEOUT_MS */
	uint32_t gateway;          /* network order; 0 = the default route's gateway */
	uint32_t peer_addr;        /* PCP PEER: the remote end of the outbound flow (network order) ... */
	uint16_t peer_port;        /* ... and its port; 0 = MAP */
	const char *state_dir;     /* NULL = rp_pm_state_dir(); "" = record nothing (and sweep nothing) */
	/* non-NULL and non-zero (CLOCK_MONOTONIC ns, may be set by another thread while step 1 runs):
	 * past timeout_ms, step 1 stops waiting for a late SSDP answer at this instant (a caller whose
	 * own work is done, like the probe beside it, caps what asking adds) */
	const _Atomic uint64_t *give_up_ns;
};

struct rp_pm_attempt {
	bool tried;                /* asked for */
	bool present;              /* answered step 1 */
	bool mapped;               /* granted the mapping */
	int err;                   /* -errno why it did not map (0 if it did, or was not reached) */
	int code;                  /* the protocol's own result / error code when it sent one, else 0 */
	char why[160];             /* the reason in words ("" if none) */
	double found_ms;           /* when step 1 heard it, since the start; < 0: never */
	double map_ms;             /* how long step 2 took with it; < 0: not tried */
};

struct rp_portmap {
	struct rp_pm_record rec;   /* what is mapped: protocol, addresses, ports, nonce, ... */
	uint32_t lifetime_s;       /* granted */
	uint64_t granted_ns;       /* CLOCK_MONOTONIC of the last grant */
	struct rp_pm_attempt att[RP_PM_NPROTO];
	double total_ms;           /* rp_portmap_request(), start to end */
	unsigned swept;            /* leftovers of killed holders deleted first */
	char state_path[512];      /* the record's file, "" if none */
	int state_err;             /* why it is not recorded (0 when it is, or was not asked to be) */
	bool active;               /* mapped and not deleted */
};

/* Map o->internal_port. 0 and *m filled; or -errno: -EINVAL (bad options), -ENETUNREACH (no default
 * gateway), -ENOENT (no protocol answered), or the last answering protocol's refusal. m->att says
 * more in every case. */
int rp_portmap_request(const struct rp_portmap_opts *o, struct rp_portmap *m);

/* Milliseconds until the mapping should be refreshed (half its lifetime after the grant); 0 = now. */
int64_t rp_portmap_due_ms(const struct rp_portmap *m);

/* Ask again for the same mapping (same nonce, same external port wished); m is updated (the external
 * port may change: check it) and so is the record. 0 or -errno. */
int rp_portmap_refresh(struct rp_portmap *m, int timeout_ms);

/* Delete the mapping and its record. 0, or -errno (the record is kept when the router did not
 * confirm, so a later run tries again). Safe on an inactive m (0). */
int rp_portmap_delete(struct rp_portmap *m, int timeout_ms);

/* Delete what killed holders in this network namespace left (only internal port only_port, or all for 0):
 * see rp_pm_sweep_dir(). dir NULL = rp_pm_state_dir(). Returns the number of records removed or -errno. */
int rp_portmap_sweep(const char *dir, uint16_t only_port, int timeout_ms, struct rp_pm_sweep *st);

/* "pcp,natpmp,upnp" (any subset, any order, "all") -> RP_PM_F set. 0 or -EINVAL. */
int rp_pm_parse_protocols(const char *s, unsigned *mask);

/* The default IPv4 gateway from /proc/net/route text (the route to 0.0.0.0/0 with the lowest metric
 * that is up and has RTF_GATEWAY): 0 and *gw (network order), or -ENOENT. Pure. */
int rp_pm_parse_route(const char *text, uint32_t *gw);
/* The same from this namespace's /proc/net/route. */
int rp_pm_default_gateway(uint32_t *gw);

#endif
