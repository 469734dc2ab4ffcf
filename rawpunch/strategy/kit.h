/* SPDX-License-Identifier: MIT */
/* What the strategy files (simopen.c, predict.c, ...) share: small facts about a side that several
 * plans use. Internal to rawpunch/strategy/ (and its unit tests); callers use strategy.h. Pure. */
#ifndef RP_STRATEGY_KIT_H
#define RP_STRATEGY_KIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

#define RP_DEF_RATE 2000u
#define RP_KIT_RANGE_CONF 0.5    /* a range believed at least this much is a block to aim at */
#define RP_DEF_LOW_TTL 2u         /* NAT hops + 1 for a host right behind its NAT */

/* Why the side is of its kind (rp_side_classify), in a few words for the plan's kind_why. */
void rp_kit_kind_why(const struct rp_natinfo *ni, char *buf, size_t len);
/* The external port a new flow from the punch port gets, for an easy side (0: unknown). */
uint16_t rp_kit_easy_port(const struct rp_natinfo *ni);
/* TTL for this side's primes and low-TTL mappings: it must pass every NAT of ours (open the outermost
 * one's mapping) and die before the peer's NAT (no RST, no mapping there). nat_ttl when it was
 * confirmed or shown by the hops (or came from an older peer without a method); a "fallback" nat_ttl
 * is a guess, weighed against where the peer's NAT is (rp_kit_peer_nat_hop): kept when it dies
 * before it, else lowered to the hop before it; no nat_ttl: RP_DEF_LOW_TTL. how (NULL: not wanted)
 * gets a few words on which, for the plan's ttl_how. */
uint8_t rp_kit_low_ttl(const struct rp_natinfo *self, const struct rp_natinfo *peer, char *how, size_t hlen);
/* Estimated hop (TTL that reaches it, counted from self) of the peer's outermost NAT, assuming both
 * paths to the STUN server meet at its last router: (self.server_hops - 1) + (peer.server_hops -
 * peer.nat_ttl), peer.nat_ttl 2 when unknown. 0 when a server_hops is unknown or the figures do not
 * fit. An estimate: paths that meet earlier put the peer's NAT nearer. */
unsigned rp_kit_peer_nat_hop(const struct rp_natinfo *self, const struct rp_natinfo *peer);
/* The side's new flows take ports in a known block (natinfo's range, believed: confidence >= 0.5,
 * narrower than 1024..65535): its bounds in *lo, *hi and true; else false. */
bool rp_kit_block(const struct rp_natinfo *ni, uint16_t *lo, uint16_t *hi);
/* Its size in ports (0: no block). */
unsigned rp_kit_block_size(const struct rp_natinfo *ni);
/* Behind a NAT that answers a SYN it has no mapping for (RST or ICMP), i.e. not open, not drop. */
bool rp_kit_answers_unsolicited(const struct rp_natinfo *ni);
/* May side i's first full SYN go at c->early_ms (the clocks' estimate) rather than the bound? A SYN
 * that reaches the peer's NAT before the peer's prime draws that NAT's answer; a RST (or an unknown
 * filter) as the only reply deletes this side's own NAT entry (Linux conntrack does), so the peer's SYN
 * then meets no mapping and its reset deletes the peer's: each side's re-sends keep meeting the
 * other's hole gone. Early is safe where the peer's NAT drops, answers with ICMP or is open, and where
 * both sides keep their port (preserving allocation: the executor re-primes when a RST shows its entry
 * gone, and the mapping comes back at the same port). */
struct rp_plan_ctx;
bool rp_kit_early_ok(const struct rp_plan_ctx *c, int i);
/* Milliseconds to send n packets at rate per second, rounded up (0 when rate is 0). */
uint32_t rp_kit_ms_for(uint64_t n, uint32_t rate);

#endif
