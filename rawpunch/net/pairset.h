/* SPDX-License-Identifier: MIT */
/* Which (source port, destination port) pairs a burst (rawpunch/net/burst.h) sends, and in what
 * order. Either an explicit list of pairs, or the product destination ports x source ports. Each
 * side is a list, or (list == NULL) the inclusive range lo..hi. Pair j of the product is
 * (sport[j % n_sports], dport[j / n_sports]): all source ports for the first destination port,
 * then the next. The whole set is sent `repeat` times (0 counts as 1). With random_order, each
 * pass goes through the set in the order of a keyed permutation (seed + pass number,
 * rawpunch/net/permute.h). The walker that maps a packet index to its pair is per-packet work,
 * so it is inline here. Pure: no I/O. Ports host order. */
#ifndef RP_PAIRSET_H
#define RP_PAIRSET_H
#include <stdbool.h>
#include <stdint.h>
#include "rawpunch/net/permute.h"

struct rp_portlist {
	const uint16_t *list;  /* n ports, host order; NULL: the range lo..hi */
	uint32_t n;
	uint16_t lo, hi;
};
struct rp_portpair { uint16_t sport, dport; };
struct rp_pairset {
	const struct rp_portpair *pairs;   /* explicit pairs (n_pairs of them); NULL: product below */
	uint32_t n_pairs;
	struct rp_portlist dports, sports;
	uint64_t repeat;
	bool random_order;
	uint64_t seed;
};

/* Total packets a pair set describes (pairs x repeat); 0 if empty or invalid. */
uint64_t rp_pairset_total(const struct rp_pairset *s);
/* The (sport, dport) of packet index i (< total). */
void rp_pairset_at(const struct rp_pairset *s, uint64_t i, uint16_t *sport, uint16_t *dport);
/* Is (sport, dport) one of the set's pairs? (explicit pairs: that very pair; a product: sport among
 * the source ports and dport among the destination ports). Linear in the set's size. */
bool rp_pairset_has(const struct rp_pairset *s, uint16_t sport, uint16_t dport);

/* Walks a pair set by packet index; caches the current pass (no division while the index stays
 * in it) and its permutation. Cheapest when the indexes come in increasing order. */
struct rp_pairwalk {
	const struct rp_pairset *s;
	uint64_t per_pass;
	uint32_t ns;
	uint64_t pass, pass_lo;   /* current pass and its first index */
	bool have_pass;
	struct rp_perm perm;
};

/* Set w up for s (s must outlive w). */
void rp_pairwalk_init(struct rp_pairwalk *w, const struct rp_pairset *s);

static inline uint16_t rp_portlist_at(const struct rp_portlist *l, uint32_t k)
{
	return l->list ? l->list[k] : (uint16_t)(l->lo + k);
}

/* The pair of packet index i (< rp_pairset_total()). */
static inline void rp_pairwalk_at(struct rp_pairwalk *w, uint64_t i, uint16_t *sport, uint16_t *dport)
{
	const struct rp_pairset *s = w->s;
	uint64_t j;

	if (!w->have_pass || i < w->pass_lo || i - w->pass_lo >= w->per_pass) {
		w->pass = i / w->per_pass;
		w->pass_lo = w->pass * w->per_pass;
		w->have_pass = true;
		if (s->random_order)
			rp_perm_init(&w->perm, w->per_pass, s->seed + w->pass);
	}
	j = i - w->pass_lo;
	if (s->random_order)
		j = rp_perm_at(&w->perm, j);
	if (s->pairs) {
		*sport = s->pairs[j].sport;
		*dport = s->pairs[j].dport;
	} else if (w->ns == 1) {
		*sport = rp_portlist_at(&s->sports, 0);
		*dport = rp_portlist_at(&s->dports, (uint32_t)j);
	} else {
		*sport = rp_portlist_at(&s->sports, (uint32_t)(j % w->ns));
		*dport = rp_portlist_at(&s->dports, (uint32_t)(j / w->ns));
	}
}

#endif
