/* SPDX-License-Identifier: MIT */
/* The Internet checksum (RFC 1071) and its incremental update (RFC 1624): the one implementation
 * rawpunch uses to fill, re-stamp and verify IPv4, TCP and UDP checksums. Pure: no I/O, no globals.
 *
 * A checksum is built from a partial sum: a uint32_t holding the ones'-complement sum of 16-bit
 * big-endian words, not yet folded nor complemented. Partial sums add (+ or us_cksum_add*) as
 * long as they stay below 2^32, which every packet-sized sum here does by a wide margin (each
 * function returns its partial sum folded to 16 bits). us_cksum_finish() folds and complements:
 * that is the value stored in the header (as a host-order number, written big-endian).
 *
 * Checksums, words and addresses: checksums and 16/32-bit fields are host-order numbers of what
 * is on the wire big-endian; IPv4 addresses are uint32_t in network order (as in memory). */
#ifndef US_CKSUM_H
#define US_CKSUM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- partial sums ---- */

/* sum plus the big-endian 16-bit words of len bytes at data. An odd last byte counts as the high
 * byte of a word padded with zero, so only the last piece of a checksummed run may be odd. */
uint32_t us_cksum_add(uint32_t sum, const void *data, size_t len);

/* Partial sum of the IPv4 pseudo header (RFC 9293 §3.1, RFC 768): source, destination, protocol
 * and the transport length (header + data, in bytes). */
uint32_t us_cksum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto, uint32_t l4len);

/* A partial sum folded to 16 bits (end-around carry). */
static inline uint16_t us_cksum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The checksum a partial sum gives: folded and complemented. */
static inline uint16_t us_cksum_finish(uint32_t sum)
{
	return (uint16_t)~us_cksum_fold(sum);
}

/* ---- whole checksums ---- */

/* Checksum of len bytes. */
uint16_t us_cksum(const void *data, size_t len);

/* The IPv4 header checksum for the hlen (even) bytes at ip, as if bytes 10-11 (the checksum field)
 * were zero: the value that belongs there. */
uint16_t us_cksum_ipv4(const uint8_t *ip, size_t hlen);

/* The checksum of a transport segment over IPv4 (len bytes at l4, header and data), with the IPv4
 * pseudo header, as if the checksum field at csum_off (even; TCP 16, UDP 6) were zero. For UDP
 * (proto 17) a result of 0 is given as 0xffff, since 0 on the wire means "no checksum". */
uint16_t us_cksum_ipv4_l4(uint32_t saddr, uint32_t daddr, uint8_t proto, const uint8_t *l4, size_t len,
			  size_t csum_off);

/* Verification: the sum over the header (or pseudo header + segment) with the checksum as
 * received must fold to 0xffff. (A UDP checksum field of 0 means none was sent: test that first.) */
bool us_cksum_ipv4_ok(const uint8_t *ip, size_t hlen);
bool us_cksum_ipv4_l4_ok(uint32_t saddr, uint32_t daddr, uint8_t proto, const uint8_t *l4, size_t len);

/* ---- incremental updates (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')) ----
 * To change fields of a packet whose checksum is csum: start from us_cksum_reopen(csum), take every
 * old value out (us_cksum_sub16/32), put every new one in (us_cksum_add16/32), finish. When the
 * same packet is stamped many times, the reopened sum minus the old values is computed once. */

/* ~HC: the partial sum a stored checksum stands for. */
static inline uint32_t us_cksum_reopen(uint16_t csum)
{
	return (uint16_t)~csum;
}

static inline uint32_t us_cksum_sub16(uint32_t sum, uint16_t old)
{
	return sum + (uint16_t)~old;
}

static inline uint32_t us_cksum_sub32(uint32_t sum, uint32_t old)
{
	return sum + (uint16_t)~(old >> 16) + (uint16_t)~old;
}

static inline uint32_t us_cksum_add16(uint32_t sum, uint16_t v)
{
	return sum + v;
}

static inline uint32_t us_cksum_add32(uint32_t sum, uint32_t v)
{
	return sum + (v >> 16) + (v & 0xffff);
}

/* The new checksum after one 16-bit (32-bit) field went from old to new_. */
static inline uint16_t us_cksum_update16(uint16_t csum, uint16_t old, uint16_t new_)
{
	return us_cksum_finish(us_cksum_add16(us_cksum_sub16(us_cksum_reopen(csum), old), new_));
}

static inline uint16_t us_cksum_update32(uint16_t csum, uint32_t old, uint32_t new_)
{
	return us_cksum_finish(us_cksum_add32(us_cksum_sub32(us_cksum_reopen(csum), old), new_));
}

#endif
