/* SPDX-License-Identifier: MIT */
/* TCP options codec. Every length byte is checked against the remaining buffer before use; every
 * read goes through a bounds-checked cursor (extract.h). */
#include "userstack/tcpopt.h"

#include <errno.h>
#include <string.h>

#include "userstack/extract.h"

enum {
	OPT_EOL = 0, OPT_NOP = 1, OPT_MSS = 2, OPT_WSCALE = 3, OPT_SACK_PERM = 4, OPT_SACK = 5,
	OPT_TS = 8,
};

int tcpopt_parse(const uint8_t *p, size_t len, struct tcp_opts *o)
{
	struct us_cur c = us_cur_make(p, len);

	memset(o, 0, sizeof(*o));
	if (len && !p)
		return -EINVAL;
	while (us_left(&c)) {
		uint8_t kind = us_get_u8(&c);
		if (kind == OPT_EOL)
			return 0;            /* the rest is padding */
		if (kind == OPT_NOP)
			continue;
		uint8_t olen = us_get_u8(&c);
		if (!us_ok(&c))
			return -EINVAL;      /* kind without a length byte at the end */
		if (olen < 2 || !us_has(&c, olen - 2u))
			return -EINVAL;      /* 0/1 would loop or overlap; longer runs past the end */
		struct us_cur v = us_sub(&c, olen - 2u);
		switch (kind) {
		case OPT_MSS:
			if (olen != 4)
				return -EINVAL;
			o->has_mss = true;
			o->mss = us_get_be16(&v);
			break;
		case OPT_WSCALE:
			if (olen != 3)
				return -EINVAL;
			o->has_wscale = true;
			o->wscale = us_get_u8(&v);
			if (o->wscale > 14)
				o->wscale = 14;
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
			o->tsval = us_get_be32(&v);
			o->tsecr = us_get_be32(&v);
			break;
		default:
			if (o->n_unknown < UINT8_MAX)
				o->n_unknown++;
			break;
		}
	}
	return 0;
}

int tcpopt_build(const struct tcp_opts *o, uint8_t *buf, size_t cap)
{
	uint8_t tmp[TCPOPT_MAXLEN];
	size_t n = 0;

	if (o->has_mss) {
		tmp[n++] = OPT_MSS; tmp[n++] = 4;
		us_put_be16(tmp + n, o->mss); n += 2;
	}
	if (o->has_ts) {
		if (o->sack_perm) {
			tmp[n++] = OPT_SACK_PERM; tmp[n++] = 2;
		} else {
			tmp[n++] = OPT_NOP; tmp[n++] = OPT_NOP;
		}
		tmp[n++] = OPT_TS; tmp[n++] = 10;
		us_put_be32(tmp + n, o->tsval); us_put_be32(tmp + n + 4, o->tsecr); n += 8;
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
