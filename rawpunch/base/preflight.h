/* SPDX-License-Identifier: MIT */
/* Pre-flight checks: what a command can find out before its first packet (privileges are in privs.h,
 * a local port free to bind in rawpunch/net/netif.h): do these TCP servers (rendezvous, STUN) accept a
 * connection. A check's connection may be kept for the command's first real exchange with that
 * server, which then pays no second handshake. Library code: prints nothing, returns -errno. */
#ifndef RP_PREFLIGHT_H
#define RP_PREFLIGHT_H
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

struct rp_preflight_srv {
	struct sockaddr_in addr;   /* the server */
	uint16_t lport;            /* 0: from an ephemeral port; else from this one (SO_REUSEADDR and
	                              SO_REUSEPORT: a port this process holds, e.g. the punch port) */
	bool keep;                 /* keep the connection when every server accepted */
	int fd;                    /* out, keep: the connection (non-blocking, TCP_NODELAY, close-on-exec),
	                              -1 when not kept */
	double ms;                 /* out: the handshake's time (about one RTT) */
	uint64_t t_start_ns;       /* out: CLOCK_MONOTONIC when its SYN left */
};

/* Connect to each of the n servers at once (non-blocking TCP, one SYN each), waiting at most
 * timeout_ms in all; close each again at once unless kept. hedge_ms > 0: a server not connected by
 * then gets a second connection from an ephemeral port (a lost SYN would wait the kernel's 1 s), and
 * the first of the two that connects answers for it and is the one kept; not where lport was given
 * (its own connection is the one wanted). err[i]: 0 (it accepted),
 * -ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH, -ETIMEDOUT (no answer), -EADDRINUSE (lport), other
 * -errno. Returns the index of the first server that failed, -1 when all accepted, or -EINVAL (more
 * than 16 servers, no time). The connections are made before anything else so they are over before a
 * probe begins: a NAT that allocates ports in sequence sees them as flows before the probe's samples,
 * not among them (a kept one from the punch port is the probe's own first flow). */
int rp_preflight_check(struct rp_preflight_srv *s, unsigned n, int timeout_ms, int hedge_ms, int *err);
/* The same for plain addresses, nothing kept. */
int rp_preflight_reach(const struct sockaddr_in *servers, unsigned n, int timeout_ms, int *err);

#endif
