/* SPDX-License-Identifier: MIT */
/* Pre-flight checks: what a command can find out before its first packet (privileges are in privs.h,
 * a local port free to bind in rawpunch/net/netif.h): do these TCP servers (rendezvous, STUN) accept a
 * connection. Library code: prints nothing, returns -errno. */
#ifndef RP_PREFLIGHT_H
#define RP_PREFLIGHT_H
#include <netinet/in.h>

/* Connect to each of the n servers at once (non-blocking TCP, one SYN each from an ephemeral port,
 * closed again at once), waiting at most timeout_ms in all. err[i]: 0 (it accepted), -ECONNREFUSED,
 * -EHOSTUNREACH, -ENETUNREACH, -ETIMEDOUT (no answer), other -errno. Returns the index of the first
 * server that failed, -1 when all accepted, or -EINVAL (more than 16 servers, no time). The connections are made before anything else so
 * they are over before a probe begins: a NAT that allocates ports in sequence sees them as flows
 * before the probe's samples, not among them. */
int rp_preflight_reach(const struct sockaddr_in *servers, unsigned n, int timeout_ms, int *err);

#endif
