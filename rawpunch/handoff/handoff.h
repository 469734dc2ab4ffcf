/* SPDX-License-Identifier: MIT */
/* Handoff: turn a TCP connection whose handshake was done elsewhere (rawpunch's userspace stack, or a
 * frozen kernel socket) into an ordinary kernel socket, so data runs at kernel speed.
 *
 * Primary path, TCP_REPAIR (Linux >= 3.5; CAP_NET_ADMIN in the socket's network namespace):
 *   socket; TCP_REPAIR=1; SO_REUSEADDR; bind laddr:lport; queue seqs (recv = rcv_nxt - unread,
 *   send = snd_una); connect (no SYN leaves: the socket is ESTABLISHED); TCP_REPAIR_OPTIONS (MSS,
 *   WINDOW = snd_wscale | rcv_wscale << 16, SACK_PERM, TIMESTAMP); TCP_TIMESTAMP; sent-but-unacked
 *   bytes into the send queue and received-but-unread bytes into the receive queue; TCP_REPAIR_WINDOW;
 *   TCP_REPAIR=0 (window probe) or -1 (TCP_REPAIR_OFF_NO_WP); then the not-yet-sent bytes are written
 *   normally, so the kernel's first new byte is exactly snd_nxt.
 * Fallback, when the kernel refuses TCP_REPAIR (EPERM without CAP_NET_ADMIN, ENOPROTOOPT on an old
 *   kernel): a kernel connect() from the same laddr:lport to raddr:rport, retried until a deadline.
 *   If the peer does the same at the same time this is a TCP simultaneous open through both NATs
 *   (RFC 5382 REQ-2a); if only this side does it, it is a plain connect that succeeds only when the
 *   peer's NAT lets the SYN in (an existing mapping with endpoint-independent filtering) and something
 *   listens there. The fallback starts a NEW connection: bytes carried by the userspace stack before
 *   the handoff are not part of it (the result says which path was taken).
 *
 * Ordering with the nft guard (rawpunch/net/guard.h): keep the guard (it drops the kernel's RSTs for the
 * flow) until rp_handoff() has returned, then remove it: from that moment the kernel owns the flow.
 *
 * Library code: returns -errno, prints nothing. Addresses network order, ports/seq/windows host order. */
#ifndef RP_HANDOFF_H
#define RP_HANDOFF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct us_tcb;

/* Everything the kernel needs to own an ESTABLISHED connection. Plain fields, no userstack types. */
struct rp_handoff_params {
	uint32_t laddr, raddr;      /* network order; laddr may be 0 (INADDR_ANY) for bind */
	uint16_t lport, rport;      /* host order */

	uint32_t snd_una;           /* oldest unacknowledged sequence number we sent */
	uint32_t snd_nxt;           /* next sequence number to send; snd_nxt - snd_una == unacked_len */
	uint32_t rcv_nxt;           /* next sequence number expected from the peer (unread bytes included) */

	/* window state (bytes, already scaled), as in struct tcp_repair_window */
	uint32_t snd_wl1;           /* seq of the segment that last updated snd_wnd */
	uint32_t snd_wnd;           /* peer's current window */
	uint32_t max_window;        /* largest snd_wnd seen; >= snd_wnd */
	uint32_t rcv_wnd;           /* window we last advertised */
	uint32_t rcv_wup;           /* rcv_nxt when we advertised it; must not be after rcv_nxt */

	/* negotiated options */
	uint16_t mss;               /* the peer's MSS (largest segment we may send); 0 = kernel default */
	bool wscale_ok;             /* both SYNs carried window scale */
	uint8_t snd_wscale;         /* peer's shift (scales windows it sends us), 0..14 */
	uint8_t rcv_wscale;         /* our shift (scales windows we send), 0..14 */
	bool sack_ok;               /* both SYNs carried SACK-permitted */
	bool ts_ok;                 /* both SYNs carried timestamps */
	uint32_t ts_now;            /* ts_ok: the TSval to send now (our clock continues from here) */

	/* data in flight (may be NULL when the length is 0); copied before rp_handoff() returns */
	const uint8_t *unacked;     /* bytes [snd_una, snd_nxt): sent, not acknowledged */
	size_t unacked_len;
	const uint8_t *unsent;      /* bytes queued after snd_nxt, never sent */
	size_t unsent_len;
	const uint8_t *unread;      /* bytes [rcv_nxt - unread_len, rcv_nxt): received, not read */
	size_t unread_len;
};

enum rp_handoff_path {
	RP_HANDOFF_NONE = 0,
	RP_HANDOFF_REPAIR,          /* TCP_REPAIR: the same connection, continued by the kernel */
	RP_HANDOFF_CONNECT,         /* fallback: kernel connect() (simultaneous open) from the same port */
};

/* Flags for rp_handoff_opts.flags */
#define RP_HO_NO_FALLBACK     0x01   /* TCP_REPAIR or fail (return its -errno) */
#define RP_HO_ONLY_FALLBACK   0x02   /* skip TCP_REPAIR (e.g. a fresh simultaneous open wanted) */
#define RP_HO_NO_WINDOW_PROBE 0x04   /* leave repair with TCP_REPAIR_OFF_NO_WP: nothing is sent */
#define RP_HO_NONBLOCK        0x08   /* returned fd is O_NONBLOCK (default: blocking) */

struct rp_handoff_opts {
	unsigned flags;             /* RP_HO_* */
	uint32_t connect_timeout_ms;/* fallback: give up after this long [8000] */
	uint32_t retry_ms;          /* fallback: pause between connect() attempts after a refusal [200] */
};

struct rp_handoff_result {
	enum rp_handoff_path path;
	int repair_errno;           /* why TCP_REPAIR was not used (EPERM, ENOPROTOOPT, ...); 0 if it was */
	unsigned connect_attempts;  /* fallback: connect() calls made */
	uint64_t elapsed_ns;        /* time spent in rp_handoff() */
};

/* Check params against what the kernel accepts (TCP_REPAIR_WINDOW rules, shifts <= 14, lengths
 * consistent with snd_una/snd_nxt). Pure. 0 or -EINVAL / -ERANGE / -EFBIG. */
int rp_handoff_check(const struct rp_handoff_params *p);

/* Hand the connection to the kernel. opts may be NULL (defaults). On success returns a connected
 * kernel TCP socket fd (the caller owns it) and fills *res (may be NULL); on failure -errno and no
 * fd is left open; nothing was sent on the repair path if it failed before TCP_REPAIR=0. */
int rp_handoff(const struct rp_handoff_params *p, const struct rp_handoff_opts *opts,
	       struct rp_handoff_result *res);

/* Fill *p from an ESTABLISHED userstack tcb (userstack/tcb.h) and the 4-tuple; now_ns is the same
 * clock the tcb was driven with (for the timestamp clock). The data pointers point into *t, which
 * must outlive the rp_handoff() call. -ENOTCONN unless ESTABLISHED (a FIN already exchanged
 * cannot be expressed with TCP_REPAIR), -EINVAL on inconsistent state. */
int rp_handoff_from_tcb(const struct us_tcb *t, uint32_t laddr, uint16_t lport, uint32_t raddr,
			uint16_t rport, uint64_t now_ns, struct rp_handoff_params *p);

/* The mirror image, CRIU-style: put an ESTABLISHED kernel socket into repair mode and read its full
 * state into *p. The queued bytes are copied into buf (cap bytes; -ENOBUFS if they do not fit) and
 * p's data pointers point into it. The socket STAYS in repair mode: close() it then and nothing is
 * sent (no FIN, no RST); or rp_handoff_unfreeze() it. Needs CAP_NET_ADMIN. */
int rp_handoff_freeze(int fd, struct rp_handoff_params *p, uint8_t *buf, size_t cap);
int rp_handoff_unfreeze(int fd);

const char *rp_handoff_path_name(enum rp_handoff_path path);

#endif
