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

/* ---- many cookies from one address pair, fast (the burst sender's per-packet ISN) ----
 * us_cookie() computed inline, with what does not change precomputed: the key schedule once (in
 * us_cookie_pre_init), the first 8-byte block (laddr, lport, raddr[0..1]) once per local port, so
 * a cookie costs one compression of the last block and the finalisation. Equal to us_cookie() for
 * every input (test_cookie, test_burst check it). */
struct us_cookie_pre {
	uint64_t k[4];            /* v0..v3 after the key */
	uint16_t lport;           /* the local port b[] is for */
	bool have;                /* b[] is valid */
	uint64_t b[4];            /* v0..v3 after the first block, for lport */
	uint32_t laddr, raddr;    /* network order */
};

void us_cookie_pre_init(struct us_cookie_pre *cp, const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr,
			uint32_t raddr);

/* 8 bytes read as a little-endian number (SipHash's order); p is a fixed-size array of ours. */
static inline uint64_t us_sip_le64(const uint8_t p[8])
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define US_SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define US_SIPROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = US_SIP_ROTL(v1, 13); v1 ^= v0; v0 = US_SIP_ROTL(v0, 32); \
	v2 += v3; v3 = US_SIP_ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = US_SIP_ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = US_SIP_ROTL(v1, 17); v1 ^= v2; v2 = US_SIP_ROTL(v2, 32); \
	} while (0)

/* us_cookie(key, laddr, lport, raddr, rport) for the key and addresses cp was set up with. */
static inline uint32_t us_cookie_pre_at(struct us_cookie_pre *cp, uint16_t lport, uint16_t rport)
{
	const uint8_t *la = (const uint8_t *)&cp->laddr, *ra = (const uint8_t *)&cp->raddr;
	uint64_t v0, v1, v2, v3, m;

	if (!cp->have || cp->lport != lport) {
		uint8_t blk[8] = { la[0], la[1], la[2], la[3], (uint8_t)(lport >> 8), (uint8_t)lport, ra[0], ra[1] };
		m = us_sip_le64(blk);
		v0 = cp->k[0]; v1 = cp->k[1]; v2 = cp->k[2]; v3 = cp->k[3];
		v3 ^= m;
		US_SIPROUND(v0, v1, v2, v3);
		US_SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
		cp->b[0] = v0; cp->b[1] = v1; cp->b[2] = v2; cp->b[3] = v3;
		cp->lport = lport;
		cp->have = true;
	}
	v0 = cp->b[0]; v1 = cp->b[1]; v2 = cp->b[2]; v3 = cp->b[3];
	/* last block: ra[2], ra[3], rport (big-endian), 4 zero bytes, then the length 12 in the top byte */
	m = (uint64_t)ra[2] | (uint64_t)ra[3] << 8 | (uint64_t)(rport >> 8) << 16 | (uint64_t)(rport & 0xff) << 24 |
	    (uint64_t)12 << 56;
	v3 ^= m;
	US_SIPROUND(v0, v1, v2, v3);
	US_SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	US_SIPROUND(v0, v1, v2, v3);
	US_SIPROUND(v0, v1, v2, v3);
	US_SIPROUND(v0, v1, v2, v3);
	US_SIPROUND(v0, v1, v2, v3);
	return (uint32_t)(v0 ^ v1 ^ v2 ^ v3);
}
#undef US_SIPROUND
#undef US_SIP_ROTL

#endif
