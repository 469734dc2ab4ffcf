/* SPDX-License-Identifier: MIT */
/* Keyed permutation of [0, n): balanced Feistel network with cycle walking (see permute.h). */
#include "rawpunch/net/permute.h"

#include <errno.h>

#define ROUNDS 4

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Round function: a 64-bit finaliser of (half, round key). */
static inline uint32_t round_f(uint32_t r, uint64_t k, uint32_t mask)
{
	uint64_t z = (uint64_t)r ^ k;
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
	z ^= z >> 33;
	return (uint32_t)z & mask;
}

int rp_perm_init(struct rp_perm *p, uint64_t n, uint64_t seed)
{
	unsigned bits = 0;
	uint64_t s = seed;

	if (n == 0 || n > (1ull << 32))
		return -EINVAL;
	while (bits < 64 && (1ull << bits) < n)
		bits++;
	p->n = n;
	p->half_bits = (bits + 1) / 2;
	if (p->half_bits == 0)
		p->half_bits = 1;
	p->half_mask = (uint32_t)((1ull << p->half_bits) - 1);
	for (int i = 0; i < ROUNDS; i++)
		p->key[i] = splitmix64(&s);
	return 0;
}

static inline uint64_t feistel(const struct rp_perm *p, uint64_t x)
{
	uint32_t l = (uint32_t)(x >> p->half_bits) & p->half_mask;
	uint32_t r = (uint32_t)x & p->half_mask;
	for (int i = 0; i < ROUNDS; i++) {
		uint32_t t = l ^ round_f(r, p->key[i], p->half_mask);
		l = r;
		r = t;
	}
	return (uint64_t)l << p->half_bits | r;
}

uint32_t rp_perm_at(const struct rp_perm *p, uint64_t i)
{
	/* Cycle walking: the Feistel network permutes [0, 4^half_bits) and n > 4^half_bits / 4, so
	 * the walk from i < n returns into [0, n) after fewer than 4 steps on average; it cannot loop
	 * forever because the cycle through i contains i itself. */
	uint64_t x = i;
	do
		x = feistel(p, x);
	while (x >= p->n);
	return (uint32_t)x;
}
