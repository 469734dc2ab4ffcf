/* SPDX-License-Identifier: MIT */
/* Crafting IPv4+TCP segments with libnet: SYN, SYN-ACK, ACK, RST, FIN and data segments with a chosen
 * source port, ISN, TTL, IP ID, window and options. The IPv4 and TCP pblocks are built once and
 * re-stamped per packet through their libnet ptags (a shape change -- option or payload length --
 * rebuilds them). Injection is LIBNET_RAW4 (IP_HDRINCL raw socket through the kernel's routing; the
 * kernel does not rewrite raw-socket output beyond filling a zero IP ID and the IP checksum).
 *
 * rp_craft_render() produces the complete packet (IPv4 header first, checksums filled) in a caller
 * buffer without sending: the template of the AF_PACKET burst engine and what 'syn --dry-run' prints.
 *
 * Packets sent here carry the socket mark RP_CRAFT_MARK (SO_MARK on libnet's raw socket), so the RST
 * guard (rawpunch/net/guard.h) can tell rawpunch's own RSTs from the kernel's.
 * Every function returns -errno and prints nothing; rp_craft_errmsg() has libnet's text. */
#ifndef RP_CRAFT_H
#define RP_CRAFT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "userstack/tcpopt.h"
#include "userstack/tcb.h"

#define RP_CRAFT_MARK 0x72700001u     /* SO_MARK of crafted packets ("rp" 0001) */
#define RP_CRAFT_MAXPAY 65495u        /* payload bound: 65535 - 20 (IP) - 20 (TCP) */
#define RP_CRAFT_MAXLEN (20u + 20u + TCPOPT_MAXLEN + RP_CRAFT_MAXPAY)

/* One segment. Addresses network order; ports, seq, ack, window, IP ID host order. */
struct rp_seg {
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;           /* RP_TH_* / US_TH_* bits */
	uint16_t win;            /* the 16-bit field as written on the wire */
	uint16_t urp;            /* urgent pointer (normally 0) */
	uint8_t ttl;             /* 0 = 64 */
	uint8_t tos;
	uint16_t ip_id;          /* 0 when sending = the kernel picks one; rendered as given */
	bool no_df;              /* clear DF (default: DF set, as Linux TCP does) */
	struct tcp_opts opts;    /* encoded with tcpopt_build(); all-false = no options */
	const uint8_t *raw_opts; /* if non-NULL: these option bytes instead of opts (padded to 4 by us) */
	size_t raw_opts_len;     /* <= TCPOPT_MAXLEN */
	const uint8_t *payload;  /* may be NULL when paylen == 0 */
	size_t paylen;
};

struct rp_craft;

/* Flags for rp_craft_open() */
#define RP_CRAFT_NOSEND 0x1   /* render only: no raw socket, works without privileges */

/* Open a context. Without RP_CRAFT_NOSEND this opens the raw socket (-EPERM without CAP_NET_RAW) and
 * sets SO_MARK = RP_CRAFT_MARK on it (needs CAP_NET_ADMIN; -EPERM otherwise). */
int rp_craft_open(struct rp_craft **out, unsigned flags, char *err, size_t errlen);
void rp_craft_close(struct rp_craft *c);

/* Send one segment. Returns the IP packet length written, or -errno (-EINVAL for a bad segment:
 * options too long, payload too large, zero address/port; -EMSGSIZE; the sendto errno). */
int rp_craft_send(struct rp_craft *c, const struct rp_seg *s);

/* Render the packet (IPv4 + TCP + options + payload, both checksums filled) into buf without
 * sending. Returns its length, -ENOSPC if cap is too small, -EINVAL for a bad segment. */
int rp_craft_render(struct rp_craft *c, const struct rp_seg *s, uint8_t *buf, size_t cap);

/* Length rp_craft_render() will produce for s, or -EINVAL. */
int rp_craft_len(const struct rp_seg *s);

/* Fill s from one of userstack's output segments on the given tuple (from our side). TTL, TOS,
 * IP ID are set to 0 (defaults); the payload pointer is borrowed from o. */
void rp_seg_from_us(struct rp_seg *s, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport,
		    const struct us_out_seg *o);

/* The raw socket (for poll/SO_* tweaks), -1 with RP_CRAFT_NOSEND. */
int rp_craft_fd(const struct rp_craft *c);

struct rp_craft_stats {
	uint64_t sent;           /* packets written */
	uint64_t bytes;          /* IP bytes written */
	uint64_t errors;         /* failed writes */
	uint64_t rendered;       /* rp_craft_render() calls that succeeded */
	uint64_t rebuilds;       /* pblock rebuilds on a shape change */
};
void rp_craft_stats(const struct rp_craft *c, struct rp_craft_stats *st);

const char *rp_craft_errmsg(const struct rp_craft *c);

#endif
