/* SPDX-License-Identifier: MIT */
/* STUN Binding over TCP (RFC 8489 §6.2.2), from a chosen local port.
 *
 * The socket is bound with SO_REUSEADDR and SO_REUSEPORT to the given local address/port, so the
 * punch port can open several connections at once to different servers or server ports (RFC 5780's
 * tests over TCP) while other sockets hold it too. Connect and the exchange have one deadline.
 *
 * Closing (RP_STUN_CLOSE_*): FIN is the default for the punch port: the NAT's conntrack entry moves
 * to TIME_WAIT (Linux: 120 s) and the mapping stays in place for the punch; the price is a local
 * TIME_WAIT (60 s) on that exact 4-tuple, so repeating a probe from the same port to the same server
 * within a minute fails with -EADDRNOTAVAIL. RST (SO_LINGER 0) is for throw-away sample flows: no
 * local TIME_WAIT, and the NAT frees the mapping about 10 s later (conntrack CLOSE).
 *
 * Two interfaces: rp_stun_binding() does one exchange and blocks (poll) until done or the deadline;
 * rp_stun_conn_*() is the same as a non-blocking state machine so a caller can keep many exchanges
 * in flight (the allocation sampler does). Functions return -errno and print nothing. */
#ifndef RP_STUN_H
#define RP_STUN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include "rawpunch/probe/stunmsg.h"

enum rp_stun_close {
	RP_STUN_CLOSE_FIN = 0,   /* orderly close: keeps the NAT mapping (conntrack TIME_WAIT) */
	RP_STUN_CLOSE_RST,       /* SO_LINGER 0: no local TIME_WAIT; the NAT drops the mapping soon */
};

struct rp_stun_opts {
	uint32_t local_addr;     /* network order; 0 = any */
	uint16_t local_port;     /* 0 = kernel's choice */
	int timeout_ms;          /* whole exchange (connect + request + response); <= 0: 3000 */
	uint32_t change_flags;   /* CHANGE-REQUEST (RFC 5780); over TCP servers ignore or refuse it */
	const char *software;    /* SOFTWARE attribute; NULL = none */
	bool no_fingerprint;     /* leave FINGERPRINT out of the request */
	enum rp_stun_close close;
};

struct rp_stun_result {
	struct sockaddr_in server;   /* asked */
	struct sockaddr_in local;    /* our end of the connection (getsockname) */
	bool has_mapped;
	struct sockaddr_in mapped;   /* XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS (IPv4 only) */
	bool has_other;
	struct sockaddr_in other;    /* OTHER-ADDRESS (RFC 5780) */
	bool has_origin;
	struct sockaddr_in origin;   /* RESPONSE-ORIGIN */
	int error_code;              /* STUN ERROR-CODE of an error response, else 0 */
	char error_reason[RP_STUN_TEXT_MAX];
	char software[RP_STUN_TEXT_MAX];
	unsigned n_unknown_required; /* comprehension-required attributes we do not know (ignored) */
	uint64_t t_start_ns;         /* CLOCK_MONOTONIC: connect() called (the SYN left) */
	uint64_t t_start_real_ns;    /* the same instant, CLOCK_REALTIME */
	uint64_t connect_ns;         /* time to connect (about one RTT) */
	uint64_t total_ns;           /* time to the response */
};

/* One Binding exchange. 0 with r->has_mapped or r->error_code set; -ETIMEDOUT, -ECONNREFUSED,
 * -EADDRINUSE / -EADDRNOTAVAIL (port or 4-tuple taken), -EBADMSG (not STUN / bad FINGERPRINT /
 * wrong transaction), -EPROTO (success response without an IPv4 mapped address), -errno. */
int rp_stun_binding(const struct sockaddr_in *server, const struct rp_stun_opts *o,
		    struct rp_stun_result *r);

/* Non-blocking state machine. */
struct rp_stun_conn {
	int fd;                      /* -1 when closed */
	int state;                   /* internal */
	enum rp_stun_close close;
	uint64_t deadline_ns;        /* CLOCK_MONOTONIC */
	uint8_t txid[RP_STUN_TXID_LEN];
	uint8_t req[256];
	size_t req_len, req_sent;
	uint8_t buf[RP_STUN_MAX_MSG];
	size_t have;
	struct rp_stun_result res;
};

/* Create the socket, bind, start connect(). 0 or -errno (then c->fd is -1). */
int rp_stun_conn_start(struct rp_stun_conn *c, const struct sockaddr_in *server,
		       const struct rp_stun_opts *o);
/* poll() events to wait for (POLLOUT while connecting/sending, POLLIN while reading). */
short rp_stun_conn_events(const struct rp_stun_conn *c);
/* Advance after poll() said the fd is ready (or at any time). 1 done (c->res valid), 0 in progress,
 * -errno failed (-ETIMEDOUT once the deadline passed). Does not close the socket. */
int rp_stun_conn_step(struct rp_stun_conn *c);
/* Close as chosen at start (FIN or RST). Safe to call twice. */
void rp_stun_conn_close(struct rp_stun_conn *c);

/* A connection to server from local_port (0.0.0.0) that is up already: the pre-flight's check of
 * the STUN server, made from the punch port so that it is the probe's first flow. The next
 * rp_stun_conn_start from that local port to that server takes it instead of connecting (its
 * connect_ns and t_start_* are the pre-flight's), and so the first binding costs one RTT, not two.
 * One slot, guarded (the probe's threads start connections at once); a second call replaces and
 * closes the first. rp_stun_preconnected_drop closes an unused one (the run's end). 0 or -EINVAL
 * (then fd is closed). */
int rp_stun_preconnected(int fd, uint16_t local_port, const struct sockaddr_in *server, uint64_t t_start_ns,
			 uint64_t connect_ns);
void rp_stun_preconnected_drop(void);

/* "ip:port" */
void rp_sin_str(const struct sockaddr_in *a, char *buf, size_t cap);

#endif
