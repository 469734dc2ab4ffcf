/* SPDX-License-Identifier: MIT */
/* The raw handshake driver: one TCP connection whose handshake (and, for --raw, whole life) runs in
 * userspace. Ties together
 *   ISN = us_cookie(tuple) (key from getrandom, or the caller's), the RST guard (guard.h) for the
 *   attempt's flows, a capture (capture/capture.h) on the egress interface with a BPF for the flows,
 *   userstack's us_step() fed with captured segments, timers and ICMP errors, and craft.h sending
 *   every segment us_step() emits.
 * Every SYN-ACK / ACK / RST is validated by cookie (ack == cookie + 1) and sequence BEFORE it reaches
 * the state machine; forged ones are counted and ignored.
 *
 * The remote port may be one port, a list, a range or any (rport_lo = rport_hi = 0): the first
 * cookie-valid reply (or, with accept_syn, the first bare SYN: simultaneous open) defines the flow.
 * With several ports the session sends one SYN per listed port each syn_interval (each with its own
 * cookie ISN) unless no_syn is set (the caller's burst sends them, with the same key and tuple
 * cookies). The completed tcb is handed back for the TCP_REPAIR handoff.
 * Library code: returns -errno, prints nothing (the trace callback gets one line per event). */
#ifndef RP_SESSION_H
#define RP_SESSION_H
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include "userstack/cookie.h"
#include "userstack/tcb.h"

struct rp_session_opts {
	uint32_t raddr;            /* remote address (network order), required */
	uint16_t rport;            /* one remote port (host order) ... */
	const uint16_t *rports;    /* ... or a list (n_rports > 0 overrides rport) ... */
	size_t n_rports;
	uint16_t rport_lo, rport_hi; /* ... or a range; with rport == 0, n_rports == 0 and 0,0: any port */
	uint32_t laddr;            /* 0 = the route's source address */
	uint16_t lport;            /* 0 = a free port (netif.h rp_free_port) */
	const char *iface;         /* capture interface; NULL = the route's egress interface */
	uint8_t syn_ttl;           /* TTL of our SYNs; 0 = 64 */
	uint8_t ttl;               /* TTL of everything else; 0 = 64 */
	uint64_t timeout_ns;       /* handshake deadline from rp_session_handshake(); 0 = 10 s */
	uint64_t syn_interval_ns;  /* SYN retransmission interval; 0 = 1 s (fixed, no backoff, persist) */
	bool persist;              /* RST / ICMP in SYN-SENT are soft: keep sending SYNs until the deadline */
	bool accept_syn;           /* a bare SYN from the peer may define the flow (simultaneous open) */
	bool no_syn;               /* port list / range / any: do not send SYNs, only listen */
	const uint8_t *key;        /* 16-byte cookie key; NULL = random (getrandom) */
	FILE *pcap_file;           /* dump everything captured (and what we send) to this stream (opened by
	                              the caller, rawpunch/base/outfile.h); rp_session_open takes it over:
	                              closed with the session, or on failure. NULL = none */
	uint16_t mss;              /* 0 = 1460 */
	bool no_guard;             /* do not install the RST guard (tests / caller guards itself) */
	volatile sig_atomic_t *stop; /* when it becomes non-zero the loops return -EINTR */
	void (*trace)(void *arg, const char *line); /* per-packet events (verbose); NULL = none */
	void *trace_arg;
};

struct rp_session_stats {
	uint32_t syns_sent;        /* SYNs (and SYN-ACKs) we sent, retransmissions included */
	uint32_t replies;          /* TCP segments captured on the attempt's flows */
	uint32_t rsts;             /* cookie-valid RSTs received */
	uint32_t icmps;            /* ICMP errors quoting our segments */
	uint32_t forged;           /* SYN-ACK / ACK / RST that failed cookie or sequence checks, ignored */
	uint32_t syns_rcvd;        /* bare SYNs from the peer (simultaneous open) */
	uint8_t last_icmp_type, last_icmp_code;
	uint32_t last_icmp_from;   /* network order */
	uint64_t t_established_ns; /* time from the first SYN to ESTABLISHED; 0 if not reached */
	uint64_t bytes_out, bytes_in; /* data exchanged (rp_session_exchange) */
	int64_t guard_dropped;     /* kernel RSTs the guard dropped (-1 unknown) */
};

struct rp_session;

/* Resolve the route and port, open craft, guard (flow added) and capture. Sends nothing yet.
 * -EINVAL for bad options; -EPERM without privileges; other -errno from the parts. */
int rp_session_open(const struct rp_session_opts *o, struct rp_session **out);
/* Same, with what failed in err ("capture: eth0: ...", "nftables RST guard: ..."). */
int rp_session_open_err(const struct rp_session_opts *o, struct rp_session **out, char *err, size_t errlen);

/* Run the handshake until ESTABLISHED (0), the deadline (-ETIMEDOUT), a hard error (-ECONNREFUSED,
 * -EHOSTUNREACH, ... when not persisting) or *stop (-EINTR). */
int rp_session_handshake(struct rp_session *s);

/* --raw data exchange after the handshake: what arrives on in_fd (until EOF) goes to the peer, what
 * the peer sends is written to out_fd; our FIN after in_fd's EOF (or as soon as the peer's FIN has
 * arrived: in_fd is not read after that), until the peer's FIN and ours are both acknowledged and
 * TIME-WAIT (0.5 s) is over (0). Waits for input without limit while the connection is idle; once
 * our FIN is out, idle_timeout_ns without progress ends it (-ETIMEDOUT; 0 = 30 s). Lost segments
 * are retransmitted by the tcb, which gives up with -ETIMEDOUT after its retries.
 * -ECONNRESET if the peer resets; -EINTR on *stop and the write error if out_fd fails (-EPIPE, ...),
 * both after sending an RST (abort). */
int rp_session_exchange(struct rp_session *s, int in_fd, int out_fd, uint64_t idle_timeout_ns);

/* The connection as it stands (ESTABLISHED after a successful handshake): for the handoff. */
const struct us_tcb *rp_session_tcb(const struct rp_session *s);
/* The flow (from our side). rport is the remote port that answered. */
void rp_session_tuple(const struct rp_session *s, uint32_t *laddr, uint16_t *lport,
		      uint32_t *raddr, uint16_t *rport);
void rp_session_stats(const struct rp_session *s, struct rp_session_stats *st);

/* With a pcap_file, after a successful handshake and before rp_session_close(): the capture, its filter
 * narrowed to the connection's 4-tuple in both directions, taken out of the session (which neither
 * reads nor closes it from then on), so that it can go on writing the data after the handoff
 * (capture/capdump.h). What it holds of the handshake is written as it is read. 0, -ENOENT without a
 * pcap_file (or when already taken), -errno if the filter does not take. */
struct rp_cap;
int rp_session_take_dump(struct rp_session *s, struct rp_cap **out);

/* Stop sending and capturing; remove the guard now (the kernel owns the flow after a handoff). */
void rp_session_release(struct rp_session *s);

/* Free everything; removes the guard (NULL ok). */
void rp_session_close(struct rp_session *s);

/* Human-readable summary of why a handshake failed ("3 RSTs", "ICMP 11/0 from ...", "silence"). */
void rp_session_why(const struct rp_session *s, char *buf, size_t cap);

#endif
