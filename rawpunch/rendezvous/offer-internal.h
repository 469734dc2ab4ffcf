/* SPDX-License-Identifier: MIT */
/* Private to the offer codec (offer.c) and its fuzzer (tools/fuzz/fuzz_offer.c): the parser of the
 * blob inside an offer/answer once it has authenticated, so that it can be fuzzed without the key. */
#ifndef RP_OFFER_INTERNAL_H
#define RP_OFFER_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/rendezvous/offer.h"

/* Parse an opened blob of n bytes for a text of the given kind: 0 with *o, or -EPROTO (malformed:
 * wrong version or kind, a field out of range, short or trailing bytes). */
int rp_offer_blob_parse_(const uint8_t *blob, size_t n, enum rp_offer_kind kind, struct rp_offer *o);

#endif
