/* SPDX-License-Identifier: MIT */
/* Rendezvous client: meet a peer by session name and shared secret through a rawpunch rendezvous
 * server (protocol and trust model in rawpunch/rendezvous/proto.h), exchange rp_natinfo + candidates, agree
 * on a start time and measure the clock offset and RTTs; then exchange sealed messages. Also the
 * unauthenticated filter-probe request. Blocking calls with deadlines; library code: prints nothing,
 * returns -errno. */
#ifndef RP_RENDEZVOUS_H
#define RP_RENDEZVOUS_H
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

struct json_object;
struct rv_client;

/* Ask the server at *server to open a TCP connection from a port of its own to THIS host's public
 * address (the source address the server sees) at public_port and say what came back:
 * RP_FILTER_RST (refused by RST), RP_FILTER_ICMP (an ICMP error), RP_FILTER_DROP (nothing within the
 * server's timeout), RP_FILTER_OPEN (it connected). timeout_ms: the server's connect timeout,
 * 100..5000 (the call itself waits timeout_ms + 2 s). 0, -ETIMEDOUT, -ECONNREFUSED (no server),
 * -EAGAIN (server's per-client rate limit), -EPROTO (server error), -EINVAL. */
int rv_filter_probe(const struct sockaddr_in *server, uint16_t public_port, int timeout_ms, enum rp_filter *out);
/* The same as the probe's filter_probe callback (rawpunch/probe/probe.h): arg is the server's
 * const struct sockaddr_in *. */
int rv_filter_probe_cb(void *arg, uint16_t public_port, int timeout_ms, enum rp_filter *out);
/* The same from the server's port server_port (1024..65535) instead of one of its choosing: after a
 * SYN from our public_port to the server's address:server_port, the server's SYN is the other half
 * of a simultaneous open and passes every NAT that took a mapping from ours (rawpunch/probe confirms
 * nat_ttl with it). -EOPNOTSUPP from a server that cannot choose its port (an older one ignores the
 * request's "sport" and does not echo it); else as rv_filter_probe(). */
int rv_connect_back(const struct sockaddr_in *server, uint16_t public_port, uint16_t server_port, int timeout_ms,
		    enum rp_filter *out);
/* The probe's connect_back callback (rawpunch/probe/probe.h): arg is the server's const struct
 * sockaddr_in *, and the probe's connect_back_addr its address. arg is read only to connect (the
 * call may outlive the probe, and arg with it, once its request has left). */
int rv_connect_back_cb(void *arg, uint16_t public_port, uint16_t server_port, int timeout_ms, enum rp_filter *out);

#define RV_MAX_CAND 32

struct rv_join_req {
	const char *session;            /* 1..255 bytes */
	const uint8_t *secret;
	size_t secret_len;
	struct rp_natinfo me;
	uint16_t cand[RV_MAX_CAND];     /* extra candidate ports (host order), e.g. more predictions */
	unsigned n_cand;
	int timeout_ms;                 /* whole join, waiting for the peer included (default 30000) */
	int clock_rounds;               /* NTP samples with the server (default 8) */
	uint32_t lead_ms;               /* minimum time from now to the proposed start (default 500) */
	struct sockaddr_in relayed;     /* this side's TURN relayed address (sin_addr 0: none) */
	bool lead_auto;                 /* instead of lead_ms: the lead from what is measured (rv_lead_auto_ns) */
	uint32_t setup_ms;              /* lead_auto: the set-up allowance after the meeting (default RV_SETUP_MS) */
	/* Optional: me and relayed are not known yet when the join starts (the probe runs beside the
	 * clock sync, the pairing and the hellos). Called once the peer's hello is here (with the pairing,
	 * from a server that keeps hellos), right before the info goes out (and its start is proposed):
	 * it waits for them and fills both in (they start as
	 * me and relayed). 0, or -errno: the join ends with it. It may be called again on another
	 * server (rv_join_any); it runs on a thread of rv_join_any's there. */
	int (*ready)(void *arg, struct rp_natinfo *me, struct sockaddr_in *relayed);
	void *ready_arg;
};

struct rv_join_res {
	struct rp_natinfo peer;
	uint16_t peer_cand[RV_MAX_CAND];
	unsigned n_peer_cand;
	int initiator;                  /* 1: this side is "A" (the smaller nonce), 0: "B" */
	uint64_t start_ns;              /* agreed start, THIS host's CLOCK_REALTIME (both fire together) */
	uint64_t start_server_ns;       /* the same instant on the server's clock */
	int64_t offset_ns;              /* server clock - this clock (min-RTT sample) */
	int64_t rtt_ns;                 /* this host <-> server, min over the samples */
	int64_t peer_offset_ns;         /* as the peer measured it */
	int64_t peer_rtt_ns;            /* peer <-> server */
	int64_t relay_rtt_ns;           /* this host <-> peer through the server (sum of the two) */
	int64_t clock_err_ns;           /* the start-time disagreement: both sides' estimate uncertainty
	                                   (rv_clock_estimate's err_ns, this side's + the peer's) */
	int64_t clock_bound_ns;         /* its hard bound whatever the path asymmetry: (rtt + peer_rtt) / 2 */
	unsigned bad_boxes;             /* boxes skipped because they did not authenticate (other members
	                                   of the session: squatters, forgers) */
	uint8_t run_nonce[16];          /* BLAKE2b-128 of both sides' fresh per-join nonces, the same on both
	                                   sides and new every run (mixed into the punch ISNs) */
	struct sockaddr_in peer_relayed;/* the peer's TURN relayed address (sin_addr 0: it has none) */
	int64_t lead_ns;                /* the lead of this side's proposal, the peer's share included (the agreed
	                                   start is the later proposal) */
	int64_t clock_sync_ns;          /* how long the clock sync took (0: synced before the join) */
};

/* The lead from the proposal to the start when it is computed (rv_join_req.lead_auto), in ns: the
 * proposal must reach the peer through the server (half of each side's RTT to it), both sides' clock
 * errors may shift the two views of T apart, and the peer needs setup_ns to plan and open its punch
 * context after the proposal arrives; an eighth of the relay RTT more (at least RV_LEAD_SLACK_MS)
 * absorbs jitter. Negative peer values count as this side's rtt and the hard bound rtt / 2. In the
 * join the hellos go out before the clock sync, so each side proposes a base with its own share
 * (its half of the path, its error, setup_ns) and both add the other's share (its half of the path,
 * its error, the slack) from the two infos' rtt and err alike: the same start on both sides, sized
 * from measured values. The info's "start" (the whole lead from the hello: the connect's RTT, no err)
 * is for an older peer, which takes the later "start". */
/* PLAN + SETUP: 0.2 ms once the punch context is opened early (rp_punch_open_early), 13 ms without it
 * (--pcap) on a quiet host, 12..77 ms on a loaded one; a side later than the allowance still primes
 * before the peer's SYN has crossed to its NAT (the plan's early margin and the one-way delay), and a
 * later one costs a re-send (again_ms), not the round */
#define RV_SETUP_MS 15
#define RV_SETUP_SLOW_MS 60   /* the same where SETUP still opens the capture (punch --pcap) */
#define RV_LEAD_SLACK_MS 10
uint64_t rv_lead_auto_ns(int64_t rtt_ns, int64_t peer_rtt_ns, int64_t err_ns, int64_t peer_err_ns, uint64_t setup_ns);

/* Connect to the server (TCP, deadline timeout_ms). 0 or -errno; *out freed with rv_close. */
int rv_connect(const struct sockaddr_in *server, int timeout_ms, struct rv_client **out);
/* A client on fd, a TCP connection to the server that is already up (e.g. the pre-flight's: the
 * handshake is not paid twice), whose handshake took connect_rtt_ns (the RTT the early hello
 * carries; 0: unknown); the client owns fd from here on, also on failure. 0 or -errno. */
int rv_client_from_fd(int fd, int64_t connect_rtt_ns, struct rv_client **out);
/* rv_connect, and a second connection (another local port) if the first has not connected after
 * hedge_ms (0: never): the first to connect is kept. A lost SYN costs the kernel's 1 s retransmission;
 * the second connection takes one more NAT mapping. */
int rv_connect_hedged(const struct sockaddr_in *server, int timeout_ms, int hedge_ms, struct rv_client **out);
#define RV_CONNECT_HEDGE_MS 250   /* the punch's connection: hedged after 250 ms (5 RTTs of 50 ms) */
/* Measure the offset to the server's clock: rounds samples (1..64) sent at once, the min-RTT one kept
 * (rv_clock_estimate). -ERANGE: the server's clock is more than RV_CLOCK_OFFSET_MAX away. */
int rv_clock_sync(struct rv_client *c, int rounds, int64_t *offset_ns, int64_t *rtt_ns);
/* Join: clock samples, join by id and hello in one flight (the peer's hello comes with the pairing),
 * then the info exchange. Boxes that do not authenticate (anyone who saw
 * the id may wait under it too: proto.h) are skipped and counted, never fatal: the exchange goes on
 * with the member whose boxes do. 0, -ETIMEDOUT (no peer came), -EBUSY (the session has its
 * RV_MEMBERS_MAX members, or the server is busy), -EACCES (at the deadline: boxes came but none
 * authenticated: a wrong box key, or only intruders), -ERANGE (the server clock or the agreed start
 * further than 60 s away), -EPROTO, -errno. */
int rv_join(struct rv_client *c, const struct rv_join_req *req, struct rv_join_res *res);
/* After a join: send a sealed message of type (1..31 chars) with obj's members (may be NULL). */
int rv_send(struct rv_client *c, const char *type, const struct json_object *obj);
/* Receive the next sealed message: a box that fails authentication is skipped and counted
 * (rv_bad_boxes), one that authenticates but is a replay or addressed to another run's nonce is
 * skipped (rawpunch/rendezvous/proto.h). *obj is a new reference the caller puts; *type points into
 * it. -ETIMEDOUT, -EPIPE (the peer left: the server's "gone" for the member whose box we accepted). */
int rv_recv(struct rv_client *c, int timeout_ms, struct json_object **obj, const char **type);
/* Boxes skipped so far because they did not authenticate. */
unsigned rv_bad_boxes(const struct rv_client *c);
/* Make every later wait of c (join, recv, send) end with -EINTR once *stop is non-zero: set it from a
 * signal handler installed without SA_RESTART, so Ctrl-C does not wait out a 30 s join. NULL: off. */
void rv_set_stop(struct rv_client *c, volatile sig_atomic_t *stop);
/* Another thread's way to end the client's waits: once *cancel is non-zero (looked at every 50 ms), a
 * wait ends with -ECANCELED (the punch pipeline's probe failing beside the join). NULL: none. */
void rv_set_cancel(struct rv_client *c, volatile sig_atomic_t *cancel);
/* This side's server-clock time (CLOCK_REALTIME + offset). */
uint64_t rv_server_now_ns(const struct rv_client *c);
void rv_close(struct rv_client *c);

/* ---- Several servers ------------------------------------------------------------------------------
 * With a list of servers, both peers order it the same way for their session: rendezvous hashing,
 * descending BLAKE2b-64(id || "/" || "ADDR:PORT"), so they meet at the first server both can reach,
 * and a server that is gone moves only its own sessions. rv_connect_first connects to the first one
 * that answers (a refused or silent one costs at most RV_CONNECT_MS). rv_join_any joins there and,
 * while unpaired, also at the next server after each RV_HEDGE_MS (the peer may not reach the first);
 * a server that fails before the pairing is left at once for the next. The first pairing wins and
 * finishes the join; the other slots are given up. A server that dies after the pairing (the
 * connection breaks during the exchange) is marked dead and both peers meet again at the next one. */
#define RV_MAX_SERVERS 8
#define RV_CONNECT_MS 1000
#define RV_HEDGE_MS 1000
struct rv_keys;
/* order[] receives the indices of servers[] (n <= RV_MAX_SERVERS) in the session's order. */
void rv_server_order(const struct rv_keys *k, const struct sockaddr_in *servers, unsigned n, unsigned *order);
/* Connect to the first server in the order that accepts within connect_ms (<= 0: RV_CONNECT_MS).
 * 0 with *out and *which (its index in servers[]), or the last server's error, -EINTR on *stop. */
int rv_connect_first(const struct sockaddr_in *servers, unsigned n, const struct rv_keys *k, int connect_ms,
		     volatile sig_atomic_t *stop, struct rv_client **out, unsigned *which);
/* Join over servers[] as above. *io may hold a client from rv_connect_first (with *which): it is used
 * (and the servers before it in the order count as unreachable). On success *io is the joined client
 * (rv_send / rv_recv / rv_close as after rv_join) and *which its server; res as rv_join's. Errors as
 * rv_join's; -EHOSTUNREACH or the last connect error when no server could be reached; -EINTR on *stop.
 * A client passed in is consumed either way. */
int rv_join_any(const struct sockaddr_in *servers, unsigned n, const struct rv_keys *k,
		const struct rv_join_req *req, volatile sig_atomic_t *stop, struct rv_client **io,
		unsigned *which, struct rv_join_res *res);

/* Test hook (rendezvous lab test, load tool): join with explicitly given keys instead of deriving
 * them, so a client holding the right id but a wrong box key can be shown unable to inject. */
int rv_join_keys(struct rv_client *c, const struct rv_keys *k, const struct rv_join_req *req,
		 struct rv_join_res *res);

#endif
