/* SPDX-License-Identifier: MIT */
/* rawpunch/handoff/switch: two switches joined by a "relay" socketpair carry a stream both ways; the
 * data mode's side writes a pattern and reads the peer's; a direct socketpair handed to both in the
 * middle moves the streams (nothing lost, duplicated or reordered, the relay closed and its done
 * callback run); half-closes pass through the relay as EOF frames; a forged SWITCH count is a
 * protocol error; a DATA frame's payload is passed on while the frame arrives, and a relay that ends
 * inside a frame is a break; no DATA leaves before the peer's first CREDIT. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "rawpunch/handoff/switch.h"
#include "stream_fixture.h"

static int relay_done_count;
static void on_done(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&relay_done_count, 1, __ATOMIC_SEQ_CST);
}

/* n bytes each way; with_direct: hand a direct pair over once a has sent a third */
static void run(uint64_t na, uint64_t nb, bool with_direct)
{
	int la[2], lb[2], rl[2], dr[2];
	struct rp_switch *sa, *sb;
	struct rp_switch_stats st_a, st_b;
	int go = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, la), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, lb), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, rl), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, dr), 0);
	relay_done_count = 0;
	assert_int_equal(rp_switch_start(la[0], rl[0], on_done, NULL, &sa), 0);
	assert_int_equal(rp_switch_start(lb[0], rl[1], on_done, NULL, &sb), 0);
	struct end wa = { .fd = la[1], .n = na, .salt = 1, .switch_at = with_direct ? na / 3 : 0, .go = &go };
	struct end wb = { .fd = lb[1], .n = nb, .salt = 2 };
	struct end ra = { .fd = la[1], .peer_salt = 2 }, rb = { .fd = lb[1], .peer_salt = 1 };
	pthread_t t[4];
	pthread_create(&t[0], NULL, writer, &wa);
	pthread_create(&t[1], NULL, writer, &wb);
	pthread_create(&t[2], NULL, reader, &ra);
	pthread_create(&t[3], NULL, reader, &rb);
	if (with_direct) {
		while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST))
			usleep(1000);
		assert_int_equal(rp_switch_direct(sa, dr[0]), 0);
		usleep(2000);   /* the two sides switch at different moments */
		assert_int_equal(rp_switch_direct(sb, dr[1]), 0);
		assert_int_equal(rp_switch_direct(sb, dup(dr[1])), -EALREADY);   /* and closes that one */
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(rp_switch_wait(sa, &st_a), 0);
	assert_int_equal(rp_switch_wait(sb, &st_b), 0);
	close(la[1]);
	close(lb[1]);
	assert_int_equal(rb.got, na);
	assert_int_equal(ra.got, nb);
	assert_false(ra.bad);
	assert_false(rb.bad);
	assert_int_equal(st_a.sent, na);
	assert_int_equal(st_a.recv, nb);
	assert_int_equal(st_b.recv, na);
	assert_int_equal(relay_done_count, 2);
	if (with_direct) {
		assert_true(st_a.switched);
		assert_true(st_b.switched);
		assert_true(st_a.sent_relay < na);   /* part of it went direct */
		assert_true(st_a.sent_relay > 0);
	} else {
		assert_false(st_a.switched);
		assert_int_equal(st_a.sent_relay, na);
	}
}

static void relay_only_both_ways(void **state)
{
	(void)state;
	run(3u << 20, 5u << 20, false);
}

static void relay_one_side_empty(void **state)
{
	(void)state;
	run(1u << 20, 0, false);
}

static void move_to_direct_mid_stream(void **state)
{
	(void)state;
	run(16u << 20, 16u << 20, true);
}

/* b's whole stream ends on the relay (EOF frame) before the move; a's moves */
static void move_after_peer_eof(void **state)
{
	(void)state;
	run(16u << 20, 64u << 10, true);
}

static void forged_switch_count(void **state)
{
	int la[2], rl[2];
	struct rp_switch *s;
	struct rp_switch_stats st;
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, la), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, rl), 0);
	assert_int_equal(rp_switch_start(la[0], rl[0], NULL, NULL, &s), 0);
	/* DATA "ab", then SWITCH claiming 3 bytes */
	static const uint8_t f[] = { 1, 0, 0, 0, 2, 'a', 'b', 4, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3 };
	assert_int_equal(write(rl[1], f, sizeof(f)), (ssize_t)sizeof(f));
	assert_int_equal(rp_switch_wait(s, &st), -EPROTO);
	close(la[1]);
	close(rl[1]);
}

/* the first bytes of a 64 KiB DATA frame reach the data mode before the rest of the frame was sent
 * (the first byte of a relayed stream must not wait for a whole frame to cross a slow relay); the
 * relay then closes inside the frame, without an EOF or SWITCH: a break */
static void partial_frame_passes_on(void **state)
{
	int la[2], rl[2];
	struct rp_switch *s;
	struct rp_switch_stats st;
	uint8_t got[16];
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, la), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, rl), 0);
	assert_int_equal(rp_switch_start(la[0], rl[0], NULL, NULL, &s), 0);
	static const uint8_t f[] = { 1, 0, 1, 0, 0, 'f', 'i', 'r', 's', 't' };   /* DATA, 65536 bytes: 5 of them */
	assert_int_equal(write(rl[1], f, sizeof(f)), (ssize_t)sizeof(f));
	struct pollfd p = { .fd = la[1], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(la[1], got, sizeof(got)), 5);
	assert_memory_equal(got, "first", 5);
	close(rl[1]);
	assert_int_equal(rp_switch_wait(s, &st), -ECONNRESET);
	assert_int_equal(st.recv, 5);
	assert_true(st.t_first_rx_ns > 0);
	close(la[1]);
}

/* a switch grants the peer its window first (CREDIT 256 KiB) and sends no DATA until the peer's
 * CREDIT came: data from the local side waits (coturn drops what a not yet bound peer cannot take) */
static void no_data_before_peer_credit(void **state)
{
	int la[2], rl[2];
	struct rp_switch *s;
	struct rp_switch_stats st;
	uint8_t got[64];
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, la), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, rl), 0);
	assert_int_equal(rp_switch_start(la[0], rl[0], NULL, NULL, &s), 0);
	assert_int_equal(write(la[1], "hello", 5), 5);
	struct pollfd p = { .fd = rl[1], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 2000), 1);
	static const uint8_t credit[] = { 2, 0, 4, 0, 0 };   /* CREDIT 262144 */
	assert_int_equal(read(rl[1], got, sizeof(got)), 5);
	assert_memory_equal(got, credit, 5);
	assert_int_equal(poll(&p, 1, 200), 0);   /* no DATA without the peer's credit */
	assert_int_equal(write(rl[1], credit, 5), 5);
	assert_int_equal(poll(&p, 1, 2000), 1);
	static const uint8_t data[] = { 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o' };
	assert_int_equal(read(rl[1], got, sizeof(got)), 10);
	assert_memory_equal(got, data, 10);
	close(rl[1]);
	assert_int_equal(rp_switch_wait(s, &st), -ECONNRESET);
	assert_int_equal(st.sent_relay, 5);
	close(la[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(relay_only_both_ways),
		cmocka_unit_test(relay_one_side_empty),
		cmocka_unit_test(move_to_direct_mid_stream),
		cmocka_unit_test(move_after_peer_eof),
		cmocka_unit_test(forged_switch_count),
		cmocka_unit_test(partial_frame_passes_on),
		cmocka_unit_test(no_data_before_peer_credit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
