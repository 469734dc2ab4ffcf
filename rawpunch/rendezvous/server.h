/* SPDX-License-Identifier: MIT */
/* Rendezvous server: single-threaded epoll, non-blocking; up to RV_MEMBERS_MAX connections wait under
 * one session id and each one's sealed boxes go to all the others (the peers themselves tell their
 * partner from an intruder: proto.h), answers clock samples and filter probes (protocol in
 * rawpunch/rendezvous/proto.h). Library code: prints nothing; events go to an optional callback.
 *
 * Limits, so that no client can starve others or hold what it does not use:
 *   - per connection: bounded buffers; at most ROUND_FRAMES frames and one read per wakeup (the rest
 *     waits for the next round, after everyone else's turn); a message rate (token bucket: msg_burst
 *     frames at once, then msg_per_s a second; past it the connection is simply not read, so TCP's own
 *     flow control holds the sender back); idle and half-open (incomplete frame) timeouts;
 *   - per member of a session: an unpaired member leaves after session_ttl_s, a paired one
 *     paired_ttl_s after it first had company; fwd at most fwd_max_msgs boxes and fwd_max_bytes bytes
 *     (then an error "quota" and close);
 *   - per address: connections and sessions opened; filter probes (rate limit);
 *   - per process: max_conns, clamped to the descriptors RLIMIT_NOFILE leaves (rv_server_fd_budget);
 *     if accept still fails for want of descriptors, the listener is paused until one is freed
 *     (or LISTEN_RETRY_MS passed) instead of spinning on a level-triggered event.
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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rv_server_cfg {
	struct sockaddr_in listen;
	unsigned max_sessions;        /* default 4096 */
	unsigned max_conns;           /* default 2 * max_sessions + 64, clamped to the fd limit */
	unsigned idle_timeout_s;      /* a connection with nothing received for this long is closed (60) */
	unsigned session_ttl_s;       /* an unpaired member leaves its session after this long (300) */
	unsigned paired_ttl_s;        /* a paired member leaves this long after it first had company (120) */
	unsigned msg_burst;           /* frames a connection may send at once (32) */
	unsigned msg_per_s;           /* and then a second (20) */
	unsigned fwd_max_msgs;        /* boxes one member may forward in its session (2000) */
	unsigned fwd_max_bytes;       /* box bytes one member may forward in its session (256 KiB) */
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
	uint64_t throttled;           /* times a connection's message rate held it back */
	uint64_t listen_pauses;       /* times accept ran out of descriptors and the listener paused */
	unsigned max_conns, max_probes; /* in force (after the fd clamp) */
};

struct rv_server;
/* Descriptors the server keeps for itself (stdio, epoll, listener, getifaddrs' netlink socket...). */
#define RV_FD_RESERVE 16
/* Pure: split nofile descriptors (RLIMIT_NOFILE) into client connections (at most want_conns) and
 * concurrent filter probes (at most 128, an eighth of what is left), keeping RV_FD_RESERVE: so that
 * accept never meets EMFILE while the caps hold. At least one connection. */
void rv_server_fd_budget(unsigned long nofile, unsigned want_conns, unsigned *conns, unsigned *probes);
/* Pure: may a member that has forwarded msgs boxes of bytes bytes in its session forward one more
 * of len bytes, under the caps max_msgs and max_bytes? */
bool rv_fwd_quota_ok(unsigned msgs, uint64_t bytes, size_t len, unsigned max_msgs, unsigned max_bytes);
/* Bind and listen (max_conns clamped to RLIMIT_NOFILE). 0 or -errno (-EADDRINUSE, ...). */
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
