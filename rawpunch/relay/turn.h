/* SPDX-License-Identifier: MIT */
/* TURN client over TCP (RFC 8656) with TCP allocations (RFC 6062): when no direct path between two
 * peers exists, each allocates a relayed address at a TURN server and the server carries one TCP
 * byte stream between them.
 *
 * One handle is one control connection to the server and the allocation made on it:
 *   active side:   rp_turn_allocate -> rp_turn_permit(peer) -> rp_turn_connect(peer) -> id
 *   passive side:  rp_turn_allocate -> rp_turn_permit(peer) -> rp_turn_wait_attempt() -> id
 *   both:          rp_turn_bind(id) -> fd: a new TCP connection to the server which, after the
 *                  ConnectionBind succeeded, carries the peer's bytes both ways, unframed
 * "peer" is the other side's relayed address when both sides use relays (exchanged out of band); the
 * passive side must have its permission installed before the active side's Connect reaches it (the
 * server refuses an inbound connection without one), and it accepts only an attempt from the peer
 * it was given (other allocations on the same server share the relay's IP address).
 *
 * The allocation lives while the control connection is open and refreshed: rp_turn_keeper_start()
 * refreshes the allocation and the permissions from a thread while the data connection is used;
 * rp_turn_release() (Refresh with LIFETIME 0) ends it, and so does closing the control connection
 * (rp_turn_close()); either way the server closes the data connections. Through coturn a half-close
 * is a close: EOF from either side ends the whole relayed connection, and bytes the server still
 * holds for the other side may be lost, so a protocol on top must finish its exchange before
 * either side closes (as request/response protocols do).
 *
 * Authentication is the long-term credential mechanism (RFC 8489 §9.2): the first request goes
 * without credentials, the server's 401 brings REALM and NONCE, the request is repeated with
 * USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (HMAC-SHA1 under MD5(username:realm:password)); a 438
 * (stale nonce) brings a new NONCE and the request is repeated; a 401 to an authenticated request
 * means the credentials are wrong (-EACCES). Every success response to an authenticated request must
 * carry a MESSAGE-INTEGRITY that verifies. rp_turn_rest_cred() makes coturn's time-limited
 * credentials (--use-auth-secret) from the shared secret.
 *
 * Library code: returns -errno and prints nothing; every step has a deadline (cfg.timeout_ms); reads
 * are bounded (RP_STUN_MAX_MSG per message, the parser is the fuzzed STUN codec). A STUN error
 * response is mapped to an errno (rp_turn_code_errno) and kept with its reason (rp_turn_last_error).
 * IPv4 only. Not thread-safe: one thread uses a handle at a time (while the keeper runs, it does). */
#ifndef RP_TURN_H
#define RP_TURN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include "rawpunch/probe/stunmsg.h"

#define RP_TURN_DEFAULT_PORT 3478
#define RP_TURN_MAX_PERMITS 8        /* peers with a permission per allocation */
#define RP_TURN_MAX_ATTEMPTS 8       /* ConnectionAttempt indications queued */

/* Long-term credentials. */
struct rp_turn_cred {
	char username[RP_STUN_USERNAME_MAX + 1];
	char password[256];
};

/* coturn's TURN REST API credentials (--use-auth-secret): username "EXPIRY" or "EXPIRY:NAME" (EXPIRY:
 * unix time after which the server refuses them), password base64(HMAC-SHA1(secret, username)).
 * name may be NULL or empty; it may not contain ':'. 0 or -EINVAL. */
int rp_turn_rest_cred(const uint8_t *secret, size_t secret_len, uint64_t expiry, const char *name,
		      struct rp_turn_cred *out);

struct rp_turn_cfg {
	struct sockaddr_in server;   /* TURN server (TCP) */
	const struct rp_turn_cred *cred; /* copied */
	int timeout_ms;              /* connect and each request/response; <= 0: 10000 */
	uint32_t lifetime_s;         /* LIFETIME asked in Allocate and in refreshes; 0: the server's default */
	uint32_t refresh_s;          /* keeper: refresh the allocation every refresh_s seconds; 0: one
	                                minute before it expires (half its lifetime if that is short) */
	const char *software;        /* SOFTWARE in requests; NULL: none (copied) */
};

struct rp_turn_info {
	struct sockaddr_in server;   /* the server */
	struct sockaddr_in local;    /* our end of the control connection */
	struct sockaddr_in relayed;  /* XOR-RELAYED-ADDRESS: where the peer reaches us */
	struct sockaddr_in mapped;   /* XOR-MAPPED-ADDRESS: how the server sees us (0 if not sent) */
	uint32_t lifetime_s;         /* as granted by the last Allocate/Refresh */
	char realm[RP_STUN_REALM_MAX + 1]; /* the server's REALM (raw bytes) */
	uint64_t refreshes;          /* successful Refresh requests (keeper and rp_turn_refresh) */
	uint64_t permit_refreshes;   /* CreatePermission requests the keeper repeated */
};

/* The STUN error response that made the last request fail. */
struct rp_turn_error {
	uint16_t method;             /* RP_STUN_METHOD_* of the request, 0: none failed with a response */
	int code;                    /* 300..699 */
	char reason[RP_STUN_TEXT_MAX]; /* printable */
};

struct rp_turn;

/* A handle (no I/O yet). 0, -EINVAL (no server, no credentials, too long a username/password/software)
 * or -ENOMEM. */
int rp_turn_new(const struct rp_turn_cfg *cfg, struct rp_turn **out);
/* Open the control connection and Allocate a TCP relay (REQUESTED-TRANSPORT 6), authenticating.
 * 0, -ECONNREFUSED / -ETIMEDOUT / ... (the connection), -EACCES (credentials refused: 401),
 * -EDQUOT (486 quota), -EPROTONOSUPPORT (442: no TCP relay), -EPROTO (a response we cannot use),
 * -EALREADY (already allocated). */
int rp_turn_allocate(struct rp_turn *t);
/* CreatePermission for peer's IP address (the port is not part of a permission); the keeper repeats
 * it before it expires (5 min). -EPERM: the server forbids that peer (403). */
int rp_turn_permit(struct rp_turn *t, const struct sockaddr_in *peer);
/* Connect (RFC 6062 §4.3): the server opens a TCP connection from our relayed address to peer.
 * 0 and *id, -ECONNREFUSED (447: the server could not connect), -EPERM (403), -EALREADY (446). */
int rp_turn_connect(struct rp_turn *t, const struct sockaddr_in *peer, uint32_t *id);
/* Wait up to timeout_ms for a ConnectionAttempt indication (RFC 6062 §4.4: someone connected to our
 * relayed address). 0 with *id and *peer (who connected), -ETIMEDOUT, -ECONNRESET (control closed). */
int rp_turn_wait_attempt(struct rp_turn *t, int timeout_ms, uint32_t *id, struct sockaddr_in *peer);
/* ConnectionBind (RFC 6062 §4.4) on a new TCP connection to the server: 0 and *fd (blocking,
 * close-on-exec), carrying the peer's bytes from now on; -EACCES, -ENOENT (400: no such connection,
 * or it timed out: the server waits 30 s), -errno. */
int rp_turn_bind(struct rp_turn *t, uint32_t id, int *fd);
/* Start the TCP connection the next rp_turn_bind will use (non-blocking), so that its handshake runs
 * while the Connect or the wait for the attempt does: the bind then costs one round trip to the
 * server, not two. 0 or -errno (rp_turn_bind then dials as usual). */
int rp_turn_predial(struct rp_turn *t);
/* Refresh the allocation for lifetime_s seconds (0: release it). */
int rp_turn_refresh(struct rp_turn *t, uint32_t lifetime_s);
/* Refresh with LIFETIME 0: the server removes the allocation and its relayed connections. */
int rp_turn_release(struct rp_turn *t);

/* Keep the allocation alive from a thread: it refreshes the allocation (cfg.refresh_s, or one minute
 * before it expires) and the permissions (every 4 min), and answers for the control connection
 * (ConnectionAttempts that arrive meanwhile are dropped: the server times them out). Until
 * rp_turn_keeper_stop() the handle belongs to the thread. 0 or -errno. */
int rp_turn_keeper_start(struct rp_turn *t);
/* Stop and join the keeper. Returns what stopped it early (-ECONNRESET: the server closed the
 * control connection; a failed refresh's error), 0 if it was still keeping. */
int rp_turn_keeper_stop(struct rp_turn *t);

void rp_turn_get_info(const struct rp_turn *t, struct rp_turn_info *info);
const struct rp_turn_error *rp_turn_last_error(const struct rp_turn *t);
/* The control connection's fd (-1 before rp_turn_allocate), for callers that poll it. */
int rp_turn_fd(const struct rp_turn *t);
/* Close the control connection (the server then drops the allocation) and free. NULL is fine. */
void rp_turn_close(struct rp_turn *t);

/* STUN error code -> -errno: 401/441 -EACCES, 403 -EPERM, 437 -EEXIST, 438 -EAGAIN, 442
 * -EPROTONOSUPPORT, 443 -EAFNOSUPPORT, 446 -EALREADY, 447 -ECONNREFUSED, 486 -EDQUOT, 508 -ENOSPC,
 * 400 -ENOENT (for ConnectionBind) / -EINVAL, 420 -EOPNOTSUPP, 300 -EREMCHG, others -EPROTO. */
int rp_turn_code_errno(uint16_t method, int code);
/* "Allocate", "Refresh", "CreatePermission", "Connect", "ConnectionBind", ... or "method 0x..." */
const char *rp_turn_method_name(uint16_t method);

#endif
