/* SPDX-License-Identifier: MIT */
/* TCP options codec. Every length byte is checked against the remaining buffer before use. */
#include "userstack/tcpopt.h"

#include <errno.h>
#include <string.h>

enum {
	OPT_EOL = 0, OPT_NOP = 1, OPT_MSS = 2, OPT_WSCALE = 3, OPT_SACK_PERM = 4, OPT_SACK = 5,
	OPT_TS = 8,
};

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int tcpopt_parse(const uint8_t *p, size_t len, struct tcp_opts *o)
{
	size_t i = 0;

	memset(o, 0, sizeof(*o));
	if (len && !p)
		return -EINVAL;
	while (i < len) {
		uint8_t kind = p[i];
		if (kind == OPT_EOL)
			return 0;            /* the rest is padding */
		if (kind == OPT_NOP) {
			i++;
			continue;
		}
		if (len - i < 2)
			return -EINVAL;      /* kind without a length byte at the end */
		uint8_t olen = p[i + 1];
		if (olen < 2 || olen > len - i)
			return -EINVAL;      /* 0/1 would loop or overlap; longer runs past the end */
		const uint8_t *v = p + i + 2;
		switch (kind) {
		case OPT_MSS:
			if (olen != 4)
				return -EINVAL;
			o->has_mss = true;
			o->mss = get16(v);
			break;
		case OPT_WSCALE:
			if (olen != 3)
				return -EINVAL;
			o->has_wscale = true;
			o->wscale = v[0] > 14 ? 14 : v[0];
			break;
		case OPT_SACK_PERM:
			if (olen != 2)
				return -EINVAL;
			o->sack_perm = true;
			break;
		case OPT_SACK:
			/* SACK blocks: recognised and length-checked, not used */
			if (olen < 10 || (olen - 2) % 8 != 0)
				return -EINVAL;
			break;
		case OPT_TS:
			if (olen != 10)
				return -EINVAL;
			o->has_ts = true;
			o->tsval = get32(v);
			o->tsecr = get32(v + 4);
			break;
		default:
			if (o->n_unknown < UINT8_MAX)
				o->n_unknown++;
			break;
		}
		i += olen;
	}
	return 0;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

int tcpopt_build(const struct tcp_opts *o, uint8_t *buf, size_t cap)
{
	uint8_t tmp[TCPOPT_MAXLEN];
	size_t n = 0;

	if (o->has_mss) {
		tmp[n++] = OPT_MSS; tmp[n++] = 4;
		put16(tmp + n, o->mss); n += 2;
	}
	if (o->has_ts) {
		if (o->sack_perm) {
			tmp[n++] = OPT_SACK_PERM; tmp[n++] = 2;
		} else {
			tmp[n++] = OPT_NOP; tmp[n++] = OPT_NOP;
		}
		tmp[n++] = OPT_TS; tmp[n++] = 10;
		put32(tmp + n, o->tsval); put32(tmp + n + 4, o->tsecr); n += 8;
	}
	if (o->has_wscale) {
		tmp[n++] = OPT_NOP; tmp[n++] = OPT_WSCALE; tmp[n++] = 3;
		tmp[n++] = o->wscale > 14 ? 14 : o->wscale;
	}
	if (o->sack_perm && !o->has_ts) {
		tmp[n++] = OPT_NOP; tmp[n++] = OPT_NOP;
		tmp[n++] = OPT_SACK_PERM; tmp[n++] = 2;
	}
	while (n % 4)
		tmp[n++] = OPT_EOL;          /* not reached with the layouts above; kept for safety */
	if (n > cap)
		return -ENOSPC;
	if (n)
		memcpy(buf, tmp, n);
	return (int)n;
}
