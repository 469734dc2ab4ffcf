/* SPDX-License-Identifier: MIT */
/* ISN cookies and keyed 32-bit hashes: SipHash-2-4 (libsodium crypto_shorthash_siphash24) under a
 * 16-byte key the CALLER supplies (fill it once per run with getrandom(2); userstack does no I/O).
 * A SYN's ISN = cookie(4-tuple), so a SYN-ACK validates statelessly: its ack - 1 must equal the
 * cookie of the tuple it came back on (seen from our side). Pure, reentrant, no allocation.
 *
 * Tuple convention (as in capture/decode.h): addresses uint32_t NETWORK order, ports HOST order.
 * The hashed message is fixed, endian-independent bytes: laddr(4, as in memory = network order),
 * lport(2, big-endian), raddr(4), rport(2, big-endian), so both byte orders of hosts agree. */
#ifndef US_COOKIE_H
#define US_COOKIE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define US_COOKIE_KEYLEN 16

/* SipHash-2-4 of len bytes of data under key; the low 32 bits of the little-endian 64-bit tag.
 * data may be NULL when len == 0. Use this for fields both peers of a punch know (their tuples
 * differ through NATs), under a key both derive from a shared secret. */
uint32_t us_hash32(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len);
/* The full 64-bit tag (little-endian interpretation of libsodium's 8 output bytes). */
uint64_t us_hash64(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len);

/* ISN cookie for the connection (laddr:lport -> raddr:rport) as seen from OUR side. */
uint32_t us_cookie(const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr, uint16_t lport,
		   uint32_t raddr, uint16_t rport);

/* A segment that acknowledges our cookie SYN: true iff ack - 1 == us_cookie(tuple). The tuple is
 * the reply's tuple mirrored, i.e. laddr/lport = its destination, raddr/rport = its source. */
bool us_cookie_check_ack(const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr, uint16_t lport,
			 uint32_t raddr, uint16_t rport, uint32_t ack);

/* Same, over an arbitrary message (e.g. fields both punch peers see): ack - 1 == us_hash32(msg). */
bool us_hash_check_ack(const uint8_t key[US_COOKIE_KEYLEN], const void *data, size_t len, uint32_t ack);

#endif
