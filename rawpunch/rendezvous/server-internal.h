/* SPDX-License-Identifier: MIT */
/* Rendezvous server internals, shared by its files and by nothing else (the API is server.h):
 * the connection, session and server structs, and what each file offers the others.
 *   server.c          life cycle and the epoll loop: accept (paused at the fd limit), read and
 *                     dispatch frames within a per-wakeup budget and a per-connection message rate,
 *                     timeouts
 *   server-conn.c     connections: create/free, epoll interest, parking (budget spent or rate
 *                     exceeded), output queue and flushing, error frames, the per-address counts,
 *                     event lines
 *   server-session.c  the session table and its members: join, fwd (to every other member, within
 *                     a per-member quota), each member's hello kept for later members, leaving a
 *                     session
 *   server-fprobe.c   filter probes: who may be probed, the rate limit, the probe connection */
#ifndef RP_RVSERVER_INTERNAL_H
#define RP_RVSERVER_INTERNAL_H
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rawpunch/base/tbucket.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/rendezvous/server.h"

#define RBUF_CAP (RV_HDR + RV_FRAME_MAX)
#define WBUF_CAP (4 * (RV_HDR + RV_FRAME_MAX))   /* a peer that does not read is cut off past this */
#define CLOSE_LINGER_MS 2000                     /* flush an error frame at most this long */
#define NBUCKETS 4096
#define RL_SLOTS 1024
#define ROUND_FRAMES 16         /* frames handled per connection per wakeup (and one recv of <= RBUF_CAP) */
#define ROUND_ACCEPTS 64        /* connections accepted per wakeup */
#define ROUND_DRAIN 16          /* recv calls per wakeup on a closing connection */
#define PROBE_GLOBAL_MAX 128    /* filter probes at once, at most (fewer under a low fd limit) */
#define LISTEN_RETRY_MS 1000    /* a listener paused by EMFILE/ENFILE is tried again after this */

enum ckind { C_LISTEN = 1, C_CLIENT, C_PROBE };

struct session;

struct conn {
	enum ckind kind;
	int fd;
	struct conn *prev, *next;       /* all client/probe connections */
	struct sockaddr_in peer, local;
	uint8_t *rbuf;
	size_t rlen;
	uint8_t *wbuf;
	size_t wlen, woff;
	bool want_out, closing, wr_shut;
	uint32_t ep_events;             /* the interest registered with epoll */
	uint64_t last_rx_ms, frame_start_ms, close_at_ms;
	/* input pacing: a parked connection is not read (EPOLLIN off) until ready_ms; it waits there
	 * when its round's budget is spent (ready_ms = now: the next round) or its rate bucket is empty */
	struct rp_tbucket tb;
	bool parked;
	uint64_t ready_ms;
	struct conn *pnext, **pprev;
	/* membership: the session, this member's number in it, when it joined and when it first had
	 * company (0: never), and what it has forwarded */
	struct session *sess;
	uint32_t member_no;
	uint64_t joined_ms, paired_ms;
	uint64_t fwd_bytes;
	unsigned fwd_msgs;
	/* this member's latest hello box (a json string of at most RV_HELLO_BOX_MAX chars, NULL: none),
	 * handed to every member that joins after it; freed when it leaves */
	struct json_object *hello;
	/* C_CLIENT: its outstanding probe; C_PROBE: the client that asked, the port and the deadline */
	struct conn *probe, *owner;
	uint16_t probe_port;
	uint64_t probe_deadline_ms;
};

struct addrcount {
	uint32_t addr;
	unsigned conns, sessions;
	struct addrcount *next;
};

struct session {
	char id[2 * RV_ID_LEN + 1];
	struct conn *member[RV_MEMBERS_MAX];   /* NULL: a free slot */
	unsigned n_members;
	uint32_t next_no;               /* member numbers ("m" on forwarded frames) are never reused */
	uint32_t owner_addr;            /* the address that opened it (per-address session cap) */
	uint64_t created_ms;
	struct session *hnext;
};

struct ratelimit {
	uint32_t addr;                  /* valid while tb.last_ms != 0 */
	struct rp_tbucket tb;
};

struct rv_server {
	struct rv_server_cfg cfg;
	int ep, lfd;
	struct conn listen;
	struct conn *conns;
	struct conn *parked;            /* connections with input waiting for their turn */
	bool listen_paused;             /* accept failed for want of descriptors: EPOLLIN off */
	uint64_t listen_retry_ms;
	unsigned max_probes;            /* filter probes at once (within the fd budget) */
	unsigned n_clients;
	uint64_t last_sweep_ms;
	uint64_t skew_ms;               /* added to the monotonic clock (tests and the fuzzer move time) */
	struct session *buckets[NBUCKETS];
	struct ratelimit rl[RL_SLOTS];
	struct addrcount *per_addr[NBUCKETS];   /* exact counts; an entry lives while a count is non-zero */
	unsigned n_probes;
	uint64_t next_probe_ms;         /* the earliest filter-probe deadline (UINT64_MAX: none): the loop
	                                   wakes for it, a "drop" verdict is not held for the 100 ms sweep */
	struct rv_server_stats st;
};

/* server.c */
uint64_t rvs_now(const struct rv_server *s);
/* Take an accepted (or, in the fuzzer, any stream) socket as a client seen at *peer: the
 * connection caps apply (refused: fd closed, NULL). */
struct conn *rvs_client_add(struct rv_server *s, int fd, const struct sockaddr_in *peer);
/* One turn of the loop: wait up to timeout_ms for events, handle them and the parked connections,
 * sweep timeouts when due. 0 or -errno from epoll_wait. */
int rvs_step(struct rv_server *s, int timeout_ms);

/* server-conn.c */
__attribute__((format(printf, 2, 3))) void rvs_logf(struct rv_server *s, const char *fmt, ...);
const char *rvs_peer_str(const struct conn *c, char *buf, size_t n);
struct addrcount *rvs_addr_get(struct rv_server *s, uint32_t addr, bool create);
void rvs_addr_put(struct rv_server *s, uint32_t addr, bool conn, bool sess);
/* Register c's interest with epoll if it changed: input unless parked (or closing: drained),
 * output while something is queued; a probe: its connect. */
void rvs_ep_update(struct rv_server *s, struct conn *c);
/* Park c until ready_ms / take it off the parked list (flags only: then rvs_ep_update). */
void rvs_park(struct rv_server *s, struct conn *c, uint64_t ready_ms);
void rvs_unpark(struct rv_server *s, struct conn *c);
void rvs_listen_resume(struct rv_server *s);
void rvs_flush(struct rv_server *s, struct conn *c);
bool rvs_queue_json(struct rv_server *s, struct conn *c, struct json_object *o);
void rvs_send_type(struct rv_server *s, struct conn *c, const char *type);
void rvs_send_error(struct rv_server *s, struct conn *c, const char *code, const char *msg, bool fatal);
struct conn *rvs_conn_new(struct rv_server *s, enum ckind kind, int fd);
void rvs_conn_free(struct rv_server *s, struct conn *c);

/* server-session.c */
void rvs_sess_remove(struct rv_server *s, struct session *x);
/* Leave c's session; notify: the other members get {"t":"gone","m":c's number}. */
void rvs_leave_session(struct rv_server *s, struct conn *c, bool notify);
void rvs_handle_join(struct rv_server *s, struct conn *c, struct json_object *o);
void rvs_handle_fwd(struct rv_server *s, struct conn *c, struct json_object *o);

/* server-fprobe.c */
void rvs_handle_fprobe(struct rv_server *s, struct conn *c, struct json_object *o);
void rvs_probe_event(struct rv_server *s, struct conn *p);
void rvs_probe_report(struct rv_server *s, struct conn *p, const char *result);

#endif
