/* SPDX-License-Identifier: MIT */
/* Fast SYN bursts. A packet is built ONCE (by libnet, rawpunch/net/craft.h) into a template
 * (rawpunch/net/tmpl.h); every packet of a burst is that template re-stamped in place: source port,
 * destination port (the burst's pair set, rawpunch/net/pairset.h), sequence number (an ISN cookie
 * per 4-tuple, userstack/cookie.h, or a fixed ISN) and IP ID, with the IPv4 and TCP checksums
 * updated incrementally (RFC 1624, userstack/cksum.h). Packets go out in batches through AF_PACKET
 * (sendmmsg, PACKET_QDISC_BYPASS), optionally from several sender threads each with its own socket,
 * or one by one through libnet's raw IPv4 write (the simple path). Pacing: a token bucket per thread
 * (rawpunch/net/pace.h) holding the asked rate, or as fast as possible (rate 0). Port order can be a
 * keyed permutation (rawpunch/net/permute.h). Library code: returns -errno, prints nothing.
 *
 * Conventions: addresses uint32_t network order; ports, seq, IP ID host order. */
#ifndef RP_BURST_H
#define RP_BURST_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/net/craft.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/net/pairset.h"
#include "rawpunch/net/tmpl.h"
#include "userstack/cookie.h"

enum rp_burst_engine {
	RP_ENGINE_AFPACKET = 0,  /* AF_PACKET + PACKET_QDISC_BYPASS + sendmmsg batches (needs ifindex, MACs) */
	RP_ENGINE_LIBNET,        /* libnet raw IPv4 write, one packet per call (kernel routes it) */
};
enum rp_seq_mode {
	RP_SEQ_COOKIE = 0,       /* seq = us_cookie(key, saddr, sport, daddr, dport) */
	RP_SEQ_FIXED,            /* the template's sequence number for every packet */
};
enum rp_ipid_mode {
	RP_IPID_FIXED = 0,       /* the template's IP ID for every packet */
	RP_IPID_INC,             /* template IP ID + packet index (mod 2^16) */
	RP_IPID_RANDOM,          /* a keyed hash of the packet index */
};

struct rp_burst_stats {
	uint64_t total;          /* packets this burst is to send (pairs x repeat) */
	uint64_t sent;           /* accepted by the kernel so far */
	uint64_t errors;         /* send failures (packets not sent) */
	int last_err;            /* -errno of the last failure, 0 if none */
	uint64_t elapsed_ns;     /* since the first packet was due */
	bool done;               /* final call: all sent, stopped or failed */
	bool stopped;            /* ended early by the stop flag or the callback */
};

struct rp_burst_cfg {
	const struct rp_tmpl *tmpl;        /* with an Ethernet header for RP_ENGINE_AFPACKET */
	struct rp_pairset set;
	enum rp_burst_engine engine;
	int ifindex;                       /* egress interface (AF_PACKET) */
	uint64_t rate;                     /* total packets per second; 0 = as fast as possible */
	unsigned threads;                  /* sender threads (0 = 1); each gets rate / threads */
	unsigned batch;                    /* packets per sendmmsg (0 = 64, max 1024) */
	enum rp_seq_mode seq_mode;
	uint8_t cookie_key[US_COOKIE_KEYLEN];
	enum rp_ipid_mode ipid_mode;
	uint64_t ipid_seed;                /* RP_IPID_RANDOM */
	/* Called from the calling thread about every progress_ns (0 = 250 ms) while senders run, and
	 * once more at the end with st->done set. Return non-zero to stop the burst. May be NULL. */
	int (*progress)(const struct rp_burst_stats *st, void *arg);
	void *arg;
	uint64_t progress_ns;
	atomic_int *stop;                  /* optional: set non-zero (any thread, signal handler) to stop */
};

/* Render packet index i of the burst (IPv4 bytes, no Ethernet header) into buf, exactly as
 * rp_burst_run() would send it. Returns its length, -ENOSPC, or -EINVAL (i >= total, bad cfg). */
int rp_burst_render(const struct rp_burst_cfg *c, uint64_t i, uint8_t *buf, size_t cap);

/* Send the burst; blocks until done, stopped, or a fatal error. *st (may be NULL) gets the final
 * figures. 0 when everything was sent (or stopped on request); -EINVAL for a bad config;
 * -EPERM/-EACCES without CAP_NET_RAW; other -errno when sockets cannot be set up (nothing sent);
 * -EIO if some packets could not be sent (st->errors, st->last_err tell more). */
int rp_burst_run(const struct rp_burst_cfg *c, struct rp_burst_stats *st);

/* ---- setting a burst up (what 'rawpunch syn' does; for the punch strategies too) ----
 * 1. rp_burst_route(): where packets to daddr go (source address, interface, MTU) - no packet.
 * 2. rp_tmpl_from_seg() (tmpl.h): render the SYN once with libnet (craft, no privileges) as the template.
 * 3. rp_burst_attach(): for RP_ENGINE_AFPACKET, the next hop's MAC and the Ethernet header. */

/* Route to daddr (rawpunch/net/netif.h); with iface, send out of that interface instead, taking the
 * destination as on-link. Sends nothing. -ENETUNREACH/-EHOSTUNREACH, -ENODEV for an unknown iface. */
int rp_burst_route(uint32_t daddr, const char *iface, struct rp_route *rt);

/* Make c ready for RP_ENGINE_AFPACKET out of rt: the next-hop MAC is dst_mac if non-NULL, else
 * from the neighbour table (when prime is true, one empty UDP datagram to the next hop's discard
 * port makes the kernel resolve it; only prime towards hosts you may send to). Puts the Ethernet
 * header on t and sets c->tmpl = t, c->ifindex. -EHOSTUNREACH if the MAC did not resolve. */
int rp_burst_attach(struct rp_burst_cfg *c, struct rp_tmpl *t, struct rp_route *rt, const uint8_t *dst_mac,
		    bool prime);

/* Monotonic clock in ns (CLOCK_MONOTONIC). */
uint64_t rp_burst_now_ns(void);

#endif
