/* SPDX-License-Identifier: MIT */
/* Rendezvous server: single-threaded epoll, non-blocking; pairs two peers per session id, forwards
 * their sealed boxes, answers clock samples and filter probes (protocol in rawpunch/rendezvous/proto.h).
 * Bounded per-connection buffers, idle/half-open timeouts, session expiry, per-client filter-probe
 * rate limit, per-address connection and session caps. Library code: prints nothing; events go to an
 * optional callback.
 *
 * Filter probes go only to the address the server sees the requester at, and never to one that would
 * turn the server into a port-state oracle for its own network: loopback (127/8), 0/8, link-local
 * (169.254/16), multicast and reserved (224/3, incl. broadcast), or any address of the server host
 * itself. Behind a reverse proxy or docker-proxy every client appears as such an address: the probe is
 * refused (error code "forbidden"). RFC 1918 and shared (100.64/10) addresses are refused too unless
 * probe_allow_private is set (a server on a LAN or in a lab behind CGNAT). */
#ifndef RP_RVSERVER_H
#define RP_RVSERVER_H
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>

struct rv_server_cfg {
	struct sockaddr_in listen;
	unsigned max_sessions;        /* default 4096 */
	unsigned max_conns;           /* default 2 * max_sessions + 64 */
	unsigned idle_timeout_s;      /* a connection with nothing received for this long is closed (60) */
	unsigned session_ttl_s;       /* an unpaired session expires after this long (300) */
	unsigned probe_burst;         /* filter probes per client address: bucket size (8) */
	unsigned probe_per_min;       /* and refill per minute (30) */
	unsigned max_conns_per_addr;  /* connections at once from one client address (64) */
	unsigned max_sessions_per_addr; /* sessions opened (first join) from one client address (32) */
	int probe_allow_private;      /* non-zero: filter-probe RFC 1918 and 100.64/10 requesters too */
	/* optional: called for each event ("join", "paired", "error", ...) with a one-line text */
	void (*log)(void *arg, const char *line);
	void *log_arg;
};

struct rv_server_stats {
	uint64_t conns, frames, pairs, errors, probes, sessions_now, conns_now;
};

struct rv_server;
/* Bind and listen. 0 or -errno (-EADDRINUSE, -EADDRNOTAVAIL, ...). */
int rv_server_open(const struct rv_server_cfg *cfg, struct rv_server **out);
/* Bound address (useful with port 0). */
void rv_server_addr(const struct rv_server *s, struct sockaddr_in *out);
/* Run until *stop becomes non-zero (checked at least every 200 ms). 0 or -errno. */
int rv_server_run(struct rv_server *s, volatile sig_atomic_t *stop);
void rv_server_stats(const struct rv_server *s, struct rv_server_stats *st);
void rv_server_close(struct rv_server *s);
/* Pure: may the server filter-probe this requester address (network order)? 0, or -EACCES for the
 * classes above (the server's own addresses are checked separately, at probe time). */
int rv_probe_target_ok(uint32_t addr_net, int allow_private);

#endif
