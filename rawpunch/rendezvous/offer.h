/* SPDX-License-Identifier: MIT */
/* Serverless offer/answer: a short text one side prints and the other pastes, carrying rp_natinfo,
 * candidate ports and a proposed start time, authenticated and encrypted under the shared secret.
 * Pure (libsodium). Text: "rpo1." (offer) or "rpa1." (answer) then URL-safe base64 (no padding) of
 *   nonce[24] || XChaCha20-Poly1305(key, ad = prefix, compact binary blob)
 * key = BLAKE2b-256(key = secret, "rawpunch-offer-v1"). The blob holds a random per-offer nonce; an
 * answer must echo the offer's nonce (so an old answer cannot be replayed) and the offer's start time
 * must lie in the future when it is accepted (checked by the caller with rp_offer_fresh). */
#ifndef RP_OFFER_H
#define RP_OFFER_H
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/probe/natinfo.h"

#define RP_OFFER_MAX_CAND 16
#define RP_OFFER_TEXT_MAX 400     /* longest text rp_offer_encode writes, NUL included */

enum rp_offer_kind { RP_OFFER = 1, RP_ANSWER = 2 };

struct rp_offer {
	enum rp_offer_kind kind;
	uint8_t nonce[16];            /* offer: random (rp_offer_init); answer: the offer's nonce */
	struct rp_natinfo ni;         /* the fields the punch needs: local/mapped endpoints, mapping, alloc,
	                                 delta, jitter, up to RP_OFFER_MAX_CAND predictions, confidence,
	                                 filtering, nat_ttl */
	uint16_t cand[RP_OFFER_MAX_CAND];
	unsigned n_cand;
	uint64_t start_ns;            /* proposed start (CLOCK_REALTIME); an answer may move it later */
	uint64_t created_ns;
};

/* Zero *o, set kind and created_ns, and for an offer a fresh random nonce. */
void rp_offer_init(struct rp_offer *o, enum rp_offer_kind kind, uint64_t now_ns);
/* Encode into text (cap >= RP_OFFER_TEXT_MAX recommended). Length written (without NUL) or
 * -ENOSPC, -EINVAL (empty secret, too many candidates, all-zero nonce). Predictions beyond
 * RP_OFFER_MAX_CAND are left out (the most likely come first). */
int rp_offer_encode(const struct rp_offer *o, const uint8_t *secret, size_t secret_len, char *text,
		    size_t cap);
/* Decode text (surrounding whitespace ignored). 0, -EINVAL (not an offer/answer text), -EBADMSG
 * (authentication failed: wrong secret or altered), -EPROTO (authentic but malformed blob). */
int rp_offer_decode(const char *text, const uint8_t *secret, size_t secret_len, struct rp_offer *o);
/* An answer matches an offer: same nonce. 0 or -EPERM. */
int rp_offer_match(const struct rp_offer *offer, const struct rp_offer *answer);
/* Freshness: created no more than max_age_s before now and start not before now. 0 or -ESTALE. */
int rp_offer_fresh(const struct rp_offer *o, uint64_t now_ns, unsigned max_age_s);
/* What an error of the calls above means, for a person (strerror for others). */
const char *rp_offer_strerror(int r);

#endif
