/* SPDX-License-Identifier: MIT */
/* Port pair sets of a burst: their size and the pair of an index (see pairset.h). */
#include "rawpunch/net/pairset.h"

#include <string.h>

static uint32_t plist_n(const struct rp_portlist *l)
{
	if (l->list)
		return l->n;
	return l->lo <= l->hi ? (uint32_t)(l->hi - l->lo) + 1 : 0;
}

static uint64_t pairs_per_pass(const struct rp_pairset *s)
{
	if (s->pairs)
		return s->n_pairs;
	return (uint64_t)plist_n(&s->dports) * plist_n(&s->sports);
}

uint64_t rp_pairset_total(const struct rp_pairset *s)
{
	uint64_t p = pairs_per_pass(s), r = s->repeat ? s->repeat : 1;
	if (p == 0 || p > (1ull << 32) || r > UINT64_MAX / p)
		return 0;
	return p * r;
}

void rp_pairwalk_init(struct rp_pairwalk *w, const struct rp_pairset *s)
{
	memset(w, 0, sizeof(*w));
	w->s = s;
	w->per_pass = pairs_per_pass(s);
	w->ns = s->pairs ? 1 : plist_n(&s->sports);
}

void rp_pairset_at(const struct rp_pairset *s, uint64_t i, uint16_t *sport, uint16_t *dport)
{
	struct rp_pairwalk w;
	rp_pairwalk_init(&w, s);
	if (w.per_pass == 0) {
		*sport = *dport = 0;
		return;
	}
	rp_pairwalk_at(&w, i, sport, dport);
}

static bool plist_has(const struct rp_portlist *l, uint16_t port)
{
	if (!l->list)
		return l->lo <= port && port <= l->hi;
	for (uint32_t k = 0; k < l->n; k++)
		if (l->list[k] == port)
			return true;
	return false;
}

bool rp_pairset_has(const struct rp_pairset *s, uint16_t sport, uint16_t dport)
{
	if (!s->pairs)
		return plist_has(&s->sports, sport) && plist_has(&s->dports, dport);
	for (uint32_t k = 0; k < s->n_pairs; k++)
		if (s->pairs[k].sport == sport && s->pairs[k].dport == dport)
			return true;
	return false;
}
