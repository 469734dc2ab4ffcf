/* SPDX-License-Identifier: MIT */
/* Reading and writing big-endian (network order) fields: the one place rawpunch turns bytes into
 * numbers and back. Pure, header-only (every function is small and inline).
 *
 * Reads go through a cursor, in the style of tcpdump's GET_BE_U_2(): the bounds check is inside
 * the read, so a parser cannot read a byte without it being checked. A cursor is a window
 * [p, p + len) and the offset of the next byte. A read that would pass the end of the window
 * returns 0 (NULL for bytes), reads nothing, and latches the cursor's error; every later read on
 * that cursor fails too. A parser reads a whole header, then tests us_ok() once. A cursor is a
 * small value: copy it to look ahead without moving the original.
 *
 * Writes (us_put_be*) are plain stores for builders that have sized their buffer already. */
#ifndef US_EXTRACT_H
#define US_EXTRACT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct us_cur {
	const uint8_t *p;   /* the window: p[0 .. len) */
	size_t len;
	size_t off;         /* next byte to read, <= len */
	bool err;           /* latched: a read asked for more than was left */
};

/* A cursor over len bytes at p (p may be NULL only when len is 0). */
static inline struct us_cur us_cur_make(const void *p, size_t len)
{
	struct us_cur c = { (const uint8_t *)p, p ? len : 0, 0, false };
	return c;
}

/* False once a read has failed. */
static inline bool us_ok(const struct us_cur *c)
{
	return !c->err;
}

/* Bytes left to read (0 after a failure). */
static inline size_t us_left(const struct us_cur *c)
{
	return c->err ? 0 : c->len - c->off;
}

/* Whether n more bytes are there. Only asks: neither reads nor latches. */
static inline bool us_has(const struct us_cur *c, size_t n)
{
	return !c->err && n <= c->len - c->off;
}

/* The next n bytes (their address in the window), or NULL and the error latched. n == 0 succeeds
 * and gives the current position (NULL only for a cursor made over NULL): test us_ok(). */
static inline const uint8_t *us_get_bytes(struct us_cur *c, size_t n)
{
	const uint8_t *q;
	if (!us_has(c, n)) {
		c->err = true;
		return NULL;
	}
	q = c->p ? c->p + c->off : NULL;
	c->off += n;
	return q;
}

/* Skip n bytes; false (and the error latched) if they are not there. */
static inline bool us_skip(struct us_cur *c, size_t n)
{
	(void)us_get_bytes(c, n);
	return !c->err;
}

/* Copy the next n bytes to dst; on failure dst gets n zero bytes. Returns us_ok(). */
static inline bool us_get_copy(struct us_cur *c, void *dst, size_t n)
{
	const uint8_t *q = us_get_bytes(c, n);
	if (q)
		memcpy(dst, q, n);
	else if (n)
		memset(dst, 0, n);
	return !c->err;
}

static inline uint8_t us_get_u8(struct us_cur *c)
{
	const uint8_t *q = us_get_bytes(c, 1);
	return q ? q[0] : 0;
}

static inline uint16_t us_get_be16(struct us_cur *c)
{
	const uint8_t *q = us_get_bytes(c, 2);
	return q ? (uint16_t)((uint16_t)q[0] << 8 | q[1]) : 0;
}

static inline uint32_t us_get_be32(struct us_cur *c)
{
	const uint8_t *q = us_get_bytes(c, 4);
	return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] : 0;
}

static inline uint64_t us_get_be64(struct us_cur *c)
{
	const uint8_t *q = us_get_bytes(c, 8);
	uint64_t v = 0;
	if (q)
		for (int i = 0; i < 8; i++)
			v = v << 8 | q[i];
	return v;
}

/* The next n bytes as a cursor of their own, and skip them here. If they are not all there, this
 * cursor's error is latched and the one returned is empty and failed as well. */
static inline struct us_cur us_sub(struct us_cur *c, size_t n)
{
	const uint8_t *q = us_get_bytes(c, n);
	struct us_cur s = us_cur_make(q, n);
	s.err = c->err;
	if (s.err)
		s.len = 0;
	return s;
}

/* Everything left, as a cursor of its own (this cursor is then at its end). */
static inline struct us_cur us_rest(struct us_cur *c)
{
	return us_sub(c, us_left(c));
}

/* Stores for builders: the caller has checked there is room. */
static inline void us_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void us_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void us_put_be64(uint8_t *p, uint64_t v)
{
	us_put_be32(p, (uint32_t)(v >> 32));
	us_put_be32(p + 4, (uint32_t)v);
}

#endif
