/* SPDX-License-Identifier: MIT */
/* The Internet checksum (see cksum.h). */
#include "userstack/cksum.h"

#define PROTO_UDP 17

uint32_t us_cksum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t s = sum;

	while (len > 1) {
		s += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		s += (uint32_t)p[0] << 8;
	s = (s & 0xffffffffu) + (s >> 32);   /* 2^32 - 1 is a multiple of 0xffff: the sum is unchanged */
	s = (s & 0xffffffffu) + (s >> 32);
	return us_cksum_fold((uint32_t)s);
}

uint32_t us_cksum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto, uint32_t l4len)
{
	uint32_t s = us_cksum_add(0, &saddr, 4);   /* network order as in memory: the wire bytes */
	s = us_cksum_add(s, &daddr, 4);
	return us_cksum_add32(us_cksum_add16(s, proto), l4len);
}

uint16_t us_cksum(const void *data, size_t len)
{
	return us_cksum_finish(us_cksum_add(0, data, len));
}

/* Partial sum of len bytes at p without the 16-bit field at off (even, off + 2 <= len). */
static uint32_t sum_without(uint32_t sum, const uint8_t *p, size_t len, size_t off)
{
	sum = us_cksum_add(sum, p, off);
	return us_cksum_add(sum, p + off + 2, len - off - 2);
}

uint16_t us_cksum_ipv4(const uint8_t *ip, size_t hlen)
{
	return us_cksum_finish(sum_without(0, ip, hlen, 10));
}

uint16_t us_cksum_ipv4_l4(uint32_t saddr, uint32_t daddr, uint8_t proto, const uint8_t *l4, size_t len,
			  size_t csum_off)
{
	uint16_t c = us_cksum_finish(sum_without(us_cksum_pseudo4(saddr, daddr, proto, (uint32_t)len), l4, len,
						 csum_off));
	return proto == PROTO_UDP && c == 0 ? 0xffff : c;
}

bool us_cksum_ipv4_ok(const uint8_t *ip, size_t hlen)
{
	return us_cksum_fold(us_cksum_add(0, ip, hlen)) == 0xffff;
}

bool us_cksum_ipv4_l4_ok(uint32_t saddr, uint32_t daddr, uint8_t proto, const uint8_t *l4, size_t len)
{
	return us_cksum_fold(us_cksum_add(us_cksum_pseudo4(saddr, daddr, proto, (uint32_t)len), l4, len)) == 0xffff;
}
