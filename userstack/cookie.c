/* SPDX-License-Identifier: MIT */
/* ISN cookies: SipHash-2-4 through libsodium (a pure function; no sodium_init() needed for it), and
 * the set-up of the precomputed inline variant (cookie.h). */
#include "userstack/cookie.h"

#include <string.h>
#include <sodium/crypto_shorthash_siphash24.h>

#include "userstack/extract.h"

_Static_assert(crypto_shorthash_siphash24_KEYBYTES == US_COOKIE_KEYLEN, "SipHash key is 16 bytes");

uint64_t us_hash64(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len)
{
	static const unsigned char empty[1];
	unsigned char tag[crypto_shorthash_siphash24_BYTES];

	crypto_shorthash_siphash24(tag, data ? data : empty, len, key);
	return us_sip_le64(tag);
}

uint32_t us_hash32(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len)
{
	return (uint32_t)us_hash64(key, data, len);
}

uint32_t us_cookie(const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr, uint16_t lport,
		   uint32_t raddr, uint16_t rport)
{
	uint8_t m[12];

	memcpy(m, &laddr, 4);          /* network order as in memory */
	us_put_be16(m + 4, lport);
	memcpy(m + 6, &raddr, 4);
	us_put_be16(m + 10, rport);
	return us_hash32(key, m, sizeof(m));
}

bool us_cookie_check_ack(const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr, uint16_t lport,
			 uint32_t raddr, uint16_t rport, uint32_t ack)
{
	return ack - 1u == us_cookie(key, laddr, lport, raddr, rport);
}

bool us_hash_check_ack(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len, uint32_t ack)
{
	return ack - 1u == us_hash32(key, data, len);
}

void us_cookie_pre_init(struct us_cookie_pre *cp, const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr,
			uint32_t raddr)
{
	uint64_t k0 = us_sip_le64(key), k1 = us_sip_le64(key + 8);

	memset(cp, 0, sizeof(*cp));
	/* SipHash's initial state: "somepseudorandomlygeneratedbytes" xor the key */
	cp->k[0] = k0 ^ 0x736f6d6570736575ull;
	cp->k[1] = k1 ^ 0x646f72616e646f6dull;
	cp->k[2] = k0 ^ 0x6c7967656e657261ull;
	cp->k[3] = k1 ^ 0x7465646279746573ull;
	cp->laddr = laddr;
	cp->raddr = raddr;
}
