/* SPDX-License-Identifier: MIT */
/* extract: the bounds-checked cursor reads big-endian values exactly, every getter succeeds at the
 * end and fails one byte short of it without reading, the error latches (later reads fail even
 * where they would fit), zero-length reads and cursors, sub-cursors cannot see past their window,
 * and the stores write the bytes the reads take back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "userstack/extract.h"

static const uint8_t B[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };

/* A heap copy of exactly n bytes, so ASan sees any read past the window. */
static uint8_t *exact(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	memcpy(p, B, n);
	return p;
}

static void values_are_big_endian(void **st)
{
	(void)st;
	struct us_cur c = us_cur_make(B, sizeof(B));
	assert_int_equal(us_get_u8(&c), 0x01);
	assert_int_equal(us_get_be16(&c), 0x2345);
	assert_int_equal(c.off, 3);
	c = us_cur_make(B, sizeof(B));
	assert_int_equal(us_get_be32(&c), 0x01234567u);
	assert_int_equal(us_get_be32(&c), 0x89abcdefu);
	c = us_cur_make(B, sizeof(B));
	assert_true(us_get_be64(&c) == 0x0123456789abcdefull);
	assert_true(us_ok(&c));
	assert_int_equal(us_left(&c), 0);
}

/* Each getter of width w on a window of exactly w bytes succeeds; on w - 1 bytes it returns 0,
 * latches, consumes nothing, and a 1-byte read that would fit fails afterwards. */
static void every_getter_at_and_past_the_end(void **st)
{
	(void)st;
	for (size_t w = 1; w <= 8; w *= 2) {
		for (size_t have = w - 1; have <= w; have++) {
			uint8_t *p = exact(have);
			struct us_cur c = us_cur_make(p, have);
			uint64_t v = 0;
			switch (w) {
			case 1: v = us_get_u8(&c); break;
			case 2: v = us_get_be16(&c); break;
			case 4: v = us_get_be32(&c); break;
			case 8: v = us_get_be64(&c); break;
			}
			if (have == w) {
				uint64_t want = 0;
				for (size_t i = 0; i < w; i++)
					want = want << 8 | B[i];
				assert_true(us_ok(&c));
				assert_true(v == want);
				assert_int_equal(c.off, w);
				assert_int_equal(us_left(&c), 0);
			} else {
				assert_false(us_ok(&c));
				assert_true(v == 0);
				assert_int_equal(c.off, 0);          /* nothing consumed */
				assert_int_equal(us_left(&c), 0);
				if (have > 0)
					assert_int_equal(us_get_u8(&c), 0);   /* would fit: latched */
				assert_false(us_ok(&c));
			}
			free(p);
		}
	}
}

static void bytes_copy_skip_at_and_past_the_end(void **st)
{
	(void)st;
	uint8_t *p = exact(5), out[6];
	struct us_cur c = us_cur_make(p, 5);

	const uint8_t *q = us_get_bytes(&c, 5);
	assert_ptr_equal(q, p);
	assert_true(us_ok(&c));
	assert_null(us_get_bytes(&c, 1));
	assert_false(us_ok(&c));

	c = us_cur_make(p, 5);
	assert_null(us_get_bytes(&c, 6));
	assert_false(us_ok(&c));

	c = us_cur_make(p, 5);
	assert_true(us_get_copy(&c, out, 5));
	assert_memory_equal(out, B, 5);
	memset(out, 0xaa, sizeof(out));
	c = us_cur_make(p, 5);
	assert_false(us_get_copy(&c, out, 6));       /* dst zeroed on failure */
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(out[i], 0);

	c = us_cur_make(p, 5);
	assert_true(us_skip(&c, 4));
	assert_int_equal(us_get_u8(&c), B[4]);
	assert_true(us_skip(&c, 0));                 /* at the end: nothing to skip is fine */
	assert_false(us_skip(&c, 1));
	assert_false(us_ok(&c));
	c = us_cur_make(p, 5);
	assert_false(us_skip(&c, 6));
	free(p);
}

static void error_latches(void **st)
{
	(void)st;
	struct us_cur c = us_cur_make(B, 3);
	assert_int_equal(us_get_be32(&c), 0);         /* 4 wanted, 3 there */
	assert_false(us_ok(&c));
	/* everything after fails, although each of these would have fitted */
	assert_int_equal(us_get_u8(&c), 0);
	assert_int_equal(us_get_be16(&c), 0);
	assert_null(us_get_bytes(&c, 1));
	assert_null(us_get_bytes(&c, 0));
	assert_false(us_skip(&c, 0));
	assert_false(us_has(&c, 0));
	struct us_cur s = us_sub(&c, 0);
	assert_false(us_ok(&s));
	assert_int_equal(us_left(&s), 0);
	assert_int_equal(c.off, 0);
}

static void has_only_asks(void **st)
{
	(void)st;
	struct us_cur c = us_cur_make(B, 2);
	assert_true(us_has(&c, 2));
	assert_false(us_has(&c, 3));
	assert_true(us_ok(&c));                       /* asking does not latch */
	assert_int_equal(c.off, 0);
	assert_int_equal(us_get_be16(&c), 0x0123);
	assert_true(us_has(&c, 0));
	assert_false(us_has(&c, 1));
}

static void zero_length(void **st)
{
	(void)st;
	uint8_t *p = exact(0);
	struct us_cur c = us_cur_make(p, 0);
	assert_int_equal(us_left(&c), 0);
	assert_true(us_has(&c, 0));
	assert_ptr_equal(us_get_bytes(&c, 0), p);     /* zero bytes: success, the current position */
	assert_true(us_skip(&c, 0));
	assert_true(us_ok(&c));
	assert_int_equal(us_get_u8(&c), 0);
	assert_false(us_ok(&c));
	free(p);

	/* a cursor over NULL is empty whatever length it is given */
	c = us_cur_make(NULL, 16);
	assert_int_equal(us_left(&c), 0);
	assert_null(us_get_bytes(&c, 0));
	assert_true(us_ok(&c));
	assert_int_equal(us_get_be16(&c), 0);
	assert_false(us_ok(&c));

	/* the rest of an exhausted cursor is an empty, healthy cursor */
	c = us_cur_make(B, 2);
	us_skip(&c, 2);
	struct us_cur r = us_rest(&c);
	assert_true(us_ok(&r));
	assert_int_equal(us_left(&r), 0);
}

static void sub_cursor_is_a_window(void **st)
{
	(void)st;
	uint8_t *p = exact(8);
	struct us_cur c = us_cur_make(p, 8);
	us_skip(&c, 1);
	struct us_cur s = us_sub(&c, 3);              /* bytes 1..3 */
	assert_true(us_ok(&c));
	assert_int_equal(c.off, 4);
	assert_int_equal(us_left(&s), 3);
	assert_int_equal(us_get_be16(&s), 0x2345);
	assert_int_equal(us_get_be16(&s), 0);         /* byte 4 is past the window */
	assert_false(us_ok(&s));
	assert_true(us_ok(&c));                       /* the parent is not affected */
	assert_int_equal(us_get_u8(&c), B[4]);

	struct us_cur bad = us_sub(&c, 4);            /* 3 left */
	assert_false(us_ok(&bad));
	assert_int_equal(us_left(&bad), 0);
	assert_false(us_ok(&c));

	c = us_cur_make(p, 8);
	us_skip(&c, 6);
	struct us_cur r = us_rest(&c);
	assert_int_equal(us_left(&c), 0);
	assert_true(us_ok(&c));
	assert_int_equal(us_get_be16(&r), 0xcdef);
	assert_true(us_ok(&r));
	free(p);
}

static void stores_round_trip(void **st)
{
	(void)st;
	uint8_t b[14];
	memset(b, 0, sizeof(b));
	us_put_be16(b, 0x0123);
	us_put_be32(b + 2, 0x456789abu);
	us_put_be64(b + 6, 0xcdef0123456789abull);
	static const uint8_t want[14] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
					  0x01, 0x23, 0x45, 0x67, 0x89, 0xab };
	assert_memory_equal(b, want, sizeof(want));
	struct us_cur c = us_cur_make(b, sizeof(b));
	assert_int_equal(us_get_be16(&c), 0x0123);
	assert_int_equal(us_get_be32(&c), 0x456789abu);
	assert_true(us_get_be64(&c) == 0xcdef0123456789abull);
	assert_true(us_ok(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(values_are_big_endian),
		cmocka_unit_test(every_getter_at_and_past_the_end),
		cmocka_unit_test(bytes_copy_skip_at_and_past_the_end),
		cmocka_unit_test(error_latches),
		cmocka_unit_test(has_only_asks),
		cmocka_unit_test(zero_length),
		cmocka_unit_test(sub_cursor_is_a_window),
		cmocka_unit_test(stores_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
