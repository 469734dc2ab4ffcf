/* SPDX-License-Identifier: MIT */
/* ISN cookies: SipHash-2-4 through libsodium (a pure function; no sodium_init() needed for it). */
#include "userstack/cookie.h"

#include <sodium/crypto_shorthash_siphash24.h>

_Static_assert(crypto_shorthash_siphash24_KEYBYTES == US_COOKIE_KEYLEN, "SipHash key is 16 bytes");

uint64_t us_hash64(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len)
{
	static const unsigned char empty[1];
	unsigned char tag[crypto_shorthash_siphash24_BYTES];
	uint64_t v = 0;

	crypto_shorthash_siphash24(tag, data ? data : empty, len, key);
	for (int i = 7; i >= 0; i--)
		v = v << 8 | tag[i];
	return v;
}

uint32_t us_hash32(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len)
{
	return (uint32_t)us_hash64(key, data, len);
}

uint32_t us_cookie(const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr, uint16_t lport,
		   uint32_t raddr, uint16_t rport)
{
	const uint8_t *la = (const uint8_t *)&laddr, *ra = (const uint8_t *)&raddr;
	uint8_t m[12] = {
		la[0], la[1], la[2], la[3], (uint8_t)(lport >> 8), (uint8_t)lport,
		ra[0], ra[1], ra[2], ra[3], (uint8_t)(rport >> 8), (uint8_t)rport,
	};
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
