/* SPDX-License-Identifier: MIT */
/* Keyed pseudo-random permutation of [0, n) with random access: rp_perm_at(p, i) is the i-th
 * element of the order, computed in O(1) expected time without any table (a 4-round balanced
 * Feistel network over the smallest even-bit power of two >= n, with cycle walking; the same
 * construction format-preserving encryption uses). Deterministic per (n, seed); a bijection by
 * construction for every n in [1, 2^32]. Used for random port order: threads can split the index
 * space and each compute its own share. Pure: no I/O, no globals. */
#ifndef RP_PERMUTE_H
#define RP_PERMUTE_H
#include <stdint.h>

struct rp_perm {
	uint64_t n;          /* domain size, 1 .. 2^32 */
	unsigned half_bits;  /* each Feistel half has this many bits (domain 2^(2*half_bits) >= n) */
	uint32_t half_mask;
	uint64_t key[4];     /* round keys derived from the seed */
};

/* 0, or -EINVAL when n == 0 or n > 2^32. */
int rp_perm_init(struct rp_perm *p, uint64_t n, uint64_t seed);

/* The element at position i (i < n) of the permutation; its value is < n. */
uint32_t rp_perm_at(const struct rp_perm *p, uint64_t i);

#endif
