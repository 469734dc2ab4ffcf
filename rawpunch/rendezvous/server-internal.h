/* SPDX-License-Identifier: MIT */
/* Rendezvous server internals, shared by its files and by nothing else (the API is server.h):
 * the connection, session and server structs, and what each file offers the others.
 *   server.c          life cycle and the epoll loop: accept, read and dispatch frames, timeouts
 *   server-conn.c     connections: create/free, output queue and flushing, error frames, the
 *                     per-address counts, event lines
 *   server-session.c  the session table and pairing: join, fwd, leaving a session
 *   server-fprobe.c   filter probes: who may be probed, the rate limit, the probe connection */
#ifndef RP_RVSERVER_INTERNAL_H
#define RP_RVSERVER_INTERNAL_H
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/rendezvous/server.h"

#define RBUF_CAP (RV_HDR + RV_FRAME_MAX)
#define WBUF_CAP (4 * (RV_HDR + RV_FRAME_MAX))   /* a peer that does not read is cut off past this */
#define CLOSE_LINGER_MS 2000                     /* flush an error frame at most this long */
#define NBUCKETS 4096
#define RL_SLOTS 1024

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
	uint64_t last_rx_ms, frame_start_ms, close_at_ms;
	struct session *sess;
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
	struct conn *peer[2];
	uint32_t owner_addr;            /* the address that opened it (per-address session cap) */
	uint64_t created_ms;
	struct session *hnext;
};

struct ratelimit {
	uint32_t addr;
	double tokens;
	uint64_t last_ms;
};

struct rv_server {
	struct rv_server_cfg cfg;
	int ep, lfd;
	struct conn listen;
	struct conn *conns;
	struct session *buckets[NBUCKETS];
	struct ratelimit rl[RL_SLOTS];
	struct addrcount *per_addr[NBUCKETS];   /* exact counts; an entry lives while a count is non-zero */
	unsigned n_probes;
	struct rv_server_stats st;
};

/* server-conn.c */
__attribute__((format(printf, 2, 3))) void rvs_logf(struct rv_server *s, const char *fmt, ...);
const char *rvs_peer_str(const struct conn *c, char *buf, size_t n);
struct addrcount *rvs_addr_get(struct rv_server *s, uint32_t addr, bool create);
void rvs_addr_put(struct rv_server *s, uint32_t addr, bool conn, bool sess);
void rvs_flush(struct rv_server *s, struct conn *c);
bool rvs_queue_json(struct rv_server *s, struct conn *c, struct json_object *o);
void rvs_send_type(struct rv_server *s, struct conn *c, const char *type);
void rvs_send_error(struct rv_server *s, struct conn *c, const char *code, const char *msg, bool fatal);
struct conn *rvs_conn_new(struct rv_server *s, enum ckind kind, int fd);
void rvs_conn_free(struct rv_server *s, struct conn *c);

/* server-session.c */
void rvs_sess_remove(struct rv_server *s, struct session *x);
void rvs_leave_session(struct rv_server *s, struct conn *c, bool notify);
void rvs_handle_join(struct rv_server *s, struct conn *c, struct json_object *o);
void rvs_handle_fwd(struct rv_server *s, struct conn *c, struct json_object *o);

/* server-fprobe.c */
void rvs_handle_fprobe(struct rv_server *s, struct conn *c, struct json_object *o);
void rvs_probe_event(struct rv_server *s, struct conn *p);
void rvs_probe_report(struct rv_server *s, struct conn *p, const char *result);

#endif
