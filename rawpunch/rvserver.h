/* SPDX-License-Identifier: MIT */
/* Rendezvous server: single-threaded epoll, non-blocking; pairs two peers per session id, forwards
 * their sealed boxes, answers clock samples and filter probes (protocol in rawpunch/rvproto.h).
 * Bounded per-connection buffers, idle/half-open timeouts, session expiry, per-client filter-probe
 * rate limit. Library code: prints nothing; events go to an optional callback. */
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

#endif
