/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the offer/answer blob after authentication (rawpunch/rendezvous/offer.c): the
 * input's first byte picks offer or answer, the rest is handed to the blob parser as if it had just
 * opened under the key (rp_offer_blob_parse_), which is where a peer holding the secret could reach.
 * What it accepts must round-trip: encoded again (rp_offer_encode) and decoded (rp_offer_decode), it
 * gives the same offer. The whole input is also tried as a pasted text (rp_offer_decode). Corpus:
 * tests/corpus/offer/. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/rendezvous/offer-internal.h"
#include "rawpunch/rendezvous/offer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t secret[] = "fuzz-secret";

static int same(const struct rp_offer *a, const struct rp_offer *b)
{
	const struct rp_natinfo *x = &a->ni, *y = &b->ni;
	return a->kind == b->kind && !memcmp(a->nonce, b->nonce, 16) && a->start_ns == b->start_ns &&
	       a->created_ns == b->created_ns && a->n_cand == b->n_cand &&
	       !memcmp(a->cand, b->cand, a->n_cand * sizeof(a->cand[0])) && x->local_addr == y->local_addr &&
	       x->local_port == y->local_port && x->mapped_addr == y->mapped_addr && x->mapped_port == y->mapped_port &&
	       x->behind_nat == y->behind_nat && x->has_delta == y->has_delta && x->delta == y->delta &&
	       x->mapping == y->mapping && x->alloc == y->alloc && x->filtering == y->filtering &&
	       x->nat_ttl == y->nat_ttl && x->n_predicted == y->n_predicted &&
	       !memcmp(x->predicted, y->predicted, x->n_predicted * sizeof(x->predicted[0]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum rp_offer_kind kind = data[0] & 1 ? RP_ANSWER : RP_OFFER;
	uint8_t *blob = malloc(size - 1 ? size - 1 : 1);       /* exactly sized: ASan sees any overread */
	if (!blob)
		return 0;
	memcpy(blob, data + 1, size - 1);
	struct rp_offer a, b;
	int r = rp_offer_blob_parse_(blob, size - 1, kind, &a);
	free(blob);
	if (r != 0 && r != -EPROTO)
		abort();
	if (r == 0) {
		char text[RP_OFFER_TEXT_MAX];
		if (a.kind != kind || a.n_cand > RP_OFFER_MAX_CAND || a.ni.n_predicted > RP_OFFER_MAX_CAND)
			abort();
		int n = rp_offer_encode(&a, secret, sizeof(secret) - 1, text, sizeof(text));
		/* an all-zero nonce is refused by the encoder (never made by rp_offer_init) */
		if (n > 0) {
			if (rp_offer_decode(text, secret, sizeof(secret) - 1, &b) || !same(&a, &b))
				abort();
		}
	}
	char t[1024];
	size_t n = size < sizeof(t) - 1 ? size : sizeof(t) - 1;
	memcpy(t, data, n);
	t[n] = 0;
	(void)rp_offer_decode(t, secret, sizeof(secret) - 1, &b);
	return 0;
}
