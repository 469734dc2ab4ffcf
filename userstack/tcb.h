/* SPDX-License-Identifier: MIT */
/* Event-driven userspace TCP connection state machine (RFC 9293 §3.10, RFC 5961, RFC 7323, RFC 6298).
 * Pure: no I/O, no globals, no malloc. The caller owns the struct us_tcb (about 65 KiB with the
 * buffers), feeds it events through ONE entry point, us_step(), and turns the segments it returns
 * into packets (libnet); captured segments go back in as US_EV_SEGMENT.
 *
 * Covers active open, passive open and simultaneous open (SYN-SENT + SYN -> SYN-RECEIVED, SYN-ACK
 * with the same ISS), RST and ICMP errors (RFC 5961 checks; "persist" mode for punching where they
 * are soft in SYN-SENT), retransmission with exponential backoff, a minimal in-order data path with
 * cumulative ACKs, and the FIN close in both directions (FIN-WAIT-1/2, CLOSING, TIME-WAIT, CLOSE-WAIT,
 * LAST-ACK). SACK is negotiated but not used: the state is meant to be handed to the kernel with
 * TCP_REPAIR once ESTABLISHED.
 *
 * ICMP errors (US_EV_ICMP_ERROR) count only when the quoted seq is in [snd_una, snd_max) (RFC 5927).
 * Before ESTABLISHED, hard ones (port/protocol unreachable, administratively prohibited, parameter
 * problem) close the tcb with their errno unless cfg.persist; soft ones (net/host unreachable, time
 * exceeded, ...) are kept in soft_error and reported if the open times out. After ESTABLISHED all
 * are soft (RFC 1122 §4.2.3.9). Fragmentation-needed and source quench are ignored.
 *
 * Not implemented (the kernel takes over after the handoff): RTT estimation (the RTO is the
 * configured initial one, doubled per retransmission, reset on progress), congestion control,
 * delayed ACKs (every data segment is ACKed), out-of-order queueing, SACK blocks, urgent data.
 *
 * Numbers: seq/ack/ports/windows host order. Times are absolute nanoseconds of any monotonic clock
 * the caller picks (now_ns); the timestamp option clock is ms: tsval = now_ns / 1e6 + ts_offset. */
#ifndef US_TCB_H
#define US_TCB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "userstack/tcpopt.h"

/* TCP flag bits as on the wire (same values as RP_TH_* in capture/decode.h). */
#define US_TH_FIN 0x01
#define US_TH_SYN 0x02
#define US_TH_RST 0x04
#define US_TH_PSH 0x08
#define US_TH_ACK 0x10
#define US_TH_URG 0x20
#define US_TH_ECE 0x40
#define US_TH_CWR 0x80

#define US_SNDBUF 32768u         /* in-tcb send buffer: bytes written but not yet acknowledged */
#define US_RCVBUF 32768u         /* in-tcb receive buffer: in-order bytes not yet read */
#define US_OUT_MAX 8             /* segments one us_step() may emit */

enum us_state {
	US_CLOSED = 0,
	US_LISTEN,
	US_SYN_SENT,
	US_SYN_RECEIVED,
	US_ESTABLISHED,
	US_FIN_WAIT_1,
	US_FIN_WAIT_2,
	US_CLOSE_WAIT,
	US_CLOSING,
	US_LAST_ACK,
	US_TIME_WAIT,
};

/* Given at OPEN_ACTIVE / OPEN_PASSIVE (copied into the tcb). Zero fields take the default shown. */
struct us_config {
	uint32_t iss;            /* initial send sequence number (e.g. us_cookie() of the tuple) */
	uint16_t mss;            /* MSS we advertise and the most we accept per segment [1460] */
	bool wscale_ok;          /* offer window scaling ... */
	uint8_t wscale;          /* ... with this shift (our rcv_wscale), clamped to 14 */
	bool sack_ok;            /* offer SACK-permitted (negotiated only; no SACK blocks are sent) */
	bool ts_ok;              /* offer timestamps */
	uint32_t ts_offset;      /* tsval = (uint32_t)(now_ns / 1000000) + ts_offset */
	uint32_t rcv_wnd;        /* receive window in bytes [US_RCVBUF], capped at US_RCVBUF */
	uint64_t syn_rto_ns;     /* first SYN / SYN-ACK retransmission interval [1 s] */
	uint64_t rto_ns;         /* initial RTO for data and FIN [1 s] */
	uint64_t rto_max_ns;     /* backoff (x2 per retransmission) is capped here [60 s] */
	bool syn_no_backoff;     /* SYN retransmitted at a fixed syn_rto_ns (punching) */
	uint32_t max_retries;    /* retransmissions of one segment before -ETIMEDOUT [6];
	                            in persist mode SYN-SENT ignores it when a deadline is set */
	uint64_t deadline_ns;    /* absolute: not ESTABLISHED by then -> CLOSED [none]. Giving up
	                            (deadline or retries) reports the last soft error (RST/ICMP
	                            seen, e.g. -ECONNREFUSED, -EHOSTUNREACH) or else -ETIMEDOUT */
	uint64_t time_wait_ns;   /* TIME-WAIT length [1 s] (short on purpose: no port reuse here) */
	bool persist;            /* punching: before ESTABLISHED (SYN-SENT, and SYN-RECEIVED reached by
	                            simultaneous open) RST and ICMP errors are soft: counted, remembered
	                            in soft_error, the SYN (SYN-ACK) keeps going with the same ISS until
	                            the deadline. Unacceptable ACKs are dropped without the RST RFC 9293
	                            would send (an RST through the NAT would close its mapping). */
	bool syn_validated;      /* the caller validated every bare SYN it feeds (punch: the peer's round
	                            ISN). Otherwise anyone can send the SYN that takes SYN-SENT to
	                            SYN-RECEIVED (a blind spray over our port range), so that SYN only
	                            counts tentatively: it is answered with a SYN-ACK as simultaneous
	                            open wants, but retransmissions stay bare SYNs, RSTs must ack our SYN,
	                            other bare SYNs are ignored, and a SYN-ACK that acks our ISN wins
	                            with its own sequence number, until the peer proves it saw our ISN */
};

enum us_ev_type {
	US_EV_OPEN_ACTIVE = 1,   /* ev->cfg: send SYN, go SYN-SENT */
	US_EV_OPEN_PASSIVE,      /* ev->cfg: go LISTEN (a SYN there -> SYN-RECEIVED, SYN-ACK with cfg.iss) */
	US_EV_SEGMENT,           /* ev->seg: a segment that arrived for this connection */
	US_EV_TIMER,             /* the deadline the last out->timer_ns named has passed (spurious ok) */
	US_EV_ICMP_ERROR,        /* ev->icmp: an ICMP error quoting one of our segments */
	US_EV_SEND,              /* ev->data/len: queue app data (out->accepted says how much fit) */
	US_EV_RECV,              /* ev->buf/cap: read in-order data (out->nread); may emit a window update */
	US_EV_CLOSE,             /* app close: FIN after queued data (LISTEN/SYN-SENT: straight to CLOSED) */
	US_EV_ABORT,             /* app abort: RST if synchronized, then CLOSED */
};

/* A decoded TCP segment (from capture/decode.h struct rp_event: seq, ack, flags, win, opts,
 * payload, paylen). win is the 16-bit field as on the wire (unscaled). */
struct us_segment {
	uint32_t seq, ack;
	uint8_t flags;           /* US_TH_* */
	uint16_t win;
	struct tcp_opts opts;
	const uint8_t *payload;  /* may be NULL when len == 0 */
	size_t len;
};

struct us_event {
	enum us_ev_type type;
	const struct us_config *cfg;     /* OPEN_* */
	struct us_segment seg;           /* SEGMENT */
	struct {
		uint8_t type, code;      /* ICMP type/code (3 = unreachable, 11 = time exceeded, ...) */
		uint32_t seq;            /* sequence number of the quoted TCP header */
	} icmp;                          /* ICMP_ERROR */
	const uint8_t *data;             /* SEND */
	size_t len;                      /* SEND */
	uint8_t *buf;                    /* RECV */
	size_t cap;                      /* RECV */
};

/* One segment to put on the wire. win is the 16-bit field to write (already scaled down);
 * opts the options to encode (tcpopt_build); payload points into the tcb's send buffer and is
 * valid until the next us_step() on this tcb. */
struct us_out_seg {
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	struct tcp_opts opts;
	const uint8_t *payload;
	size_t len;
};

/* Notification bits in out->notify */
#define US_N_ESTABLISHED 0x01    /* entered ESTABLISHED in this step */
#define US_N_READABLE    0x02    /* new in-order data is waiting (US_EV_RECV reads it) */
#define US_N_PEER_FIN    0x04    /* the peer closed its direction (EOF after the buffered data) */
#define US_N_CLOSED      0x08    /* entered CLOSED; out->error says why (0 = orderly) */
#define US_N_WRITABLE    0x10    /* send buffer space was freed by an ACK */
#define US_N_SOFT_ERROR  0x20    /* persist mode: an RST or ICMP error was absorbed (see counters) */

struct us_out {
	unsigned n;                      /* segments in seg[] */
	struct us_out_seg seg[US_OUT_MAX];
	uint64_t timer_ns;               /* absolute time for the next US_EV_TIMER, 0 = none */
	uint32_t notify;                 /* US_N_* */
	int error;                       /* with US_N_CLOSED: 0 or -ECONNREFUSED, -ECONNRESET,
	                                    -ETIMEDOUT, -EHOSTUNREACH, -ENETUNREACH, -EPROTO, ... */
	size_t accepted;                 /* SEND: bytes taken into the send buffer */
	size_t nread;                    /* RECV: bytes copied out */
};

/* The connection. Every field is readable; none is to be written by the caller (us_step() does).
 * After ESTABLISHED these are what a TCP_REPAIR handoff needs (see /work/shared/notes/facts.md):
 *   TCP_QUEUE_SEQ recv = rcv_nxt - rcv_len (unread bytes in rcvbuf go into the recv queue),
 *   TCP_QUEUE_SEQ send = snd_una (+ the snd_len bytes in sndbuf in the send queue; all of them
 *                        from snd_una on are unacknowledged),
 *   TCP_REPAIR_OPTIONS: MAXSEG = peer_mss, WINDOW = snd_wscale | rcv_wscale << 16 (only if
 *                        wscale_ok), SACK_PERM if sack_ok, TIMESTAMP if ts_ok,
 *   TCP_TIMESTAMP: so that the kernel's ms clock + offset continues our tsval,
 *   TCP_REPAIR_WINDOW: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup. */
struct us_tcb {
	enum us_state state;
	struct us_config cfg;    /* as given at open (defaults filled in) */

	uint32_t iss;            /* our initial sequence number */
	uint32_t irs;            /* peer's initial sequence number (valid once a SYN was accepted) */
	uint32_t snd_una;        /* oldest unacknowledged sequence number */
	uint32_t snd_nxt;        /* next sequence number to send */
	uint32_t snd_max;        /* highest sequence number sent (snd_nxt can rewind on RTO) */
	uint32_t snd_wnd;        /* peer's window in BYTES (already scaled by snd_wscale) */
	uint32_t snd_wl1;        /* seq of the segment that last updated snd_wnd */
	uint32_t snd_wl2;        /* ack of the segment that last updated snd_wnd */
	uint32_t max_window;     /* largest snd_wnd seen (bytes) */
	uint32_t rcv_nxt;        /* next sequence number expected */
	uint32_t rcv_wnd;        /* window we last advertised, in bytes */
	uint32_t rcv_wup;        /* rcv_nxt at the time of that advertisement (right edge = wup + wnd) */
	uint8_t snd_wscale;      /* peer's shift (scales the windows it sends); 0 unless wscale_ok */
	uint8_t rcv_wscale;      /* our shift (scales the windows we send); 0 unless wscale_ok */
	uint16_t peer_mss;       /* from the peer's SYN; 536 if it had none (RFC 9293 §3.7.1) */
	uint16_t eff_mss;        /* min(peer_mss, cfg.mss): payload bytes per segment we send */
	bool wscale_ok;          /* both SYNs carried window scale */
	bool sack_ok;            /* both SYNs carried SACK-permitted */
	bool ts_ok;              /* both SYNs carried timestamps */
	uint32_t ts_recent;      /* last tsval from the peer (RFC 7323 §4.3), echoed as tsecr */
	uint32_t ts_offset;      /* our tsval = now_ms + ts_offset */
	bool fin_sent;           /* our FIN occupies sequence number fin_seq */
	uint32_t fin_seq;
	bool fin_rcvd;           /* peer's FIN consumed (rcv_nxt is past it) */
	bool close_pending;      /* CLOSE requested: FIN goes after the queued data */
	bool syn_rcvd_from_listen; /* SYN-RECEIVED came from LISTEN (RST -> back to LISTEN) */
	bool irs_tentative;      /* SYN-RECEIVED from SYN-SENT on a bare SYN nobody validated (see
	                            us_config.syn_validated): irs may be anyone's */

	/* timers (absolute ns, 0 = off) */
	uint64_t rtx_at;         /* retransmission (SYN, SYN-ACK, data, FIN) */
	uint64_t rto_cur;        /* current RTO including backoff */
	uint32_t rtx_count;      /* retransmissions of the oldest outstanding segment */
	uint64_t tw_at;          /* TIME-WAIT expiry */
	uint64_t last_now;       /* now_ns of the latest step */

	/* counters, for diagnostics and the punching logic */
	uint32_t syn_tx;         /* SYNs / SYN-ACKs sent, retransmissions included */
	uint32_t rtx_total;      /* all retransmitted segments */
	uint32_t rst_rcvd;       /* RSTs that arrived (soft ones in persist mode included) */
	uint32_t icmp_rcvd;      /* ICMP errors that arrived */
	uint8_t last_icmp_type, last_icmp_code;
	int soft_error;          /* last soft error in persist mode (-ECONNREFUSED, -EHOSTUNREACH, ...) */
	uint32_t challenge_acks; /* RFC 5961 challenge ACKs sent */
	uint32_t dropped;        /* segments dropped (unacceptable, out of order, bad ACK, ...) */
	int error;               /* why the tcb is CLOSED (0 = never opened or orderly) */

	size_t snd_len;          /* bytes in sndbuf; sndbuf[0] is sequence snd_una (after the SYN) */
	size_t rcv_len;          /* in-order bytes in rcvbuf, not yet read */
	uint8_t sndbuf[US_SNDBUF];
	uint8_t rcvbuf[US_RCVBUF];
};

/* The single entry point. Clears *out, applies ev at time now_ns, fills *out.
 * Returns 0, or -EINVAL (bad event/config, e.g. OPEN on a tcb that is not CLOSED, SEND before
 * open or after CLOSE), -ENOTCONN (RECV/SEND on a CLOSED tcb). A segment that is dropped is not
 * an error (0 is returned; t->dropped counts it). */
int us_step(struct us_tcb *t, const struct us_event *ev, uint64_t now_ns, struct us_out *out);

/* Before the handshake completes (t not synchronized), reduce seg to its handshake part: payload,
 * FIN and PSH are removed, so they stay unacknowledged and the peer retransmits them. Used when the
 * connection is to be handed to the kernel right after ESTABLISHED: data and a FIN riding on the ACK
 * that completes the handshake (the peer's kernel owns its side and may write and close at once) then
 * reach the kernel socket instead of a tcb that TCP_REPAIR could not restore half-closed. A no-op once
 * synchronized. */
void us_handshake_only(const struct us_tcb *t, struct us_segment *seg);

/* Put t in CLOSED with zeroed state (call once on a fresh tcb; OPEN requires CLOSED). */
void us_tcb_init(struct us_tcb *t);

const char *us_state_name(enum us_state s);

/* True once the three-way handshake completed (ESTABLISHED or any later state). */
bool us_synchronized(const struct us_tcb *t);

#endif
