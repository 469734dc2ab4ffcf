/* SPDX-License-Identifier: MIT */
/* rawpunch/handoff/switch + fdmode: the hand-back of the direct fd to the data mode. Two switches
 * joined by a "relay" socketpair, each with a data mode (rp_relay_handback) between its local
 * socketpair and an "application" socket; writer and reader threads on the application sockets send
 * a pattern both ways and check the peer's. A direct socketpair handed to both switches in the middle
 * moves the streams; both switches then hand it back: the streams arrive whole and in order (the bytes
 * still in the local socketpair and in the switch's buffers first), only a part went through the
 * switches, half-closes pass (one side's input ending before, during or after the move). Plus the
 * marker seen by the data mode alone: bytes before it come first, nothing may follow it. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "rawpunch/handoff/fdmode.h"
#include "rawpunch/handoff/switch.h"
#include "stream_fixture.h"

struct dm {
	int app, sock;
	struct rp_relay_stats rs;
	int r;
};

static void *data_mode(void *arg)
{
	struct dm *m = arg;
	m->r = rp_relay_handback(m->app, m->app, m->sock, &m->rs);
	return NULL;
}

static void wait_sent(uint64_t *sent, uint64_t at)
{
	while (__atomic_load_n(sent, __ATOMIC_SEQ_CST) < at)
		usleep(500);
}

/* na and nb bytes each way; the direct pair goes to a once it sent move_at, to b 2 ms later.
 * a_back: b's stream reaches a partly on the direct connection, so a's switch must hand it back
 * (and carry less than all of it); b_back the same for b */
static void run(uint64_t na, uint64_t nb, uint64_t move_at, bool a_back, bool b_back)
{
	int la[2], lb[2], rl[2], dr[2], aa[2], ab[2];
	struct rp_switch *sa, *sb;
	struct rp_switch_stats st_a, st_b;
	uint64_t sent_a = 0, sent_b = 0;
	int *pairs[] = { la, lb, rl, dr, aa, ab };
	for (int i = 0; i < 6; i++)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]), 0);
	assert_int_equal(rp_switch_start(la[0], rl[0], NULL, NULL, &sa), 0);
	assert_int_equal(rp_switch_start(lb[0], rl[1], NULL, NULL, &sb), 0);
	rp_switch_allow_handback(sa);
	rp_switch_allow_handback(sb);
	struct dm ma = { .app = aa[0], .sock = la[1] }, mb = { .app = ab[0], .sock = lb[1] };
	struct end wa = { .fd = aa[1], .n = na, .salt = 1, .sent = &sent_a };
	struct end wb = { .fd = ab[1], .n = nb, .salt = 2, .sent = &sent_b };
	struct end ra = { .fd = aa[1], .peer_salt = 2, .pause_at = 2u << 20 };
	struct end rb = { .fd = ab[1], .peer_salt = 1, .pause_at = 2u << 20 };
	pthread_t t[6];
	pthread_create(&t[0], NULL, data_mode, &ma);
	pthread_create(&t[1], NULL, data_mode, &mb);
	pthread_create(&t[2], NULL, writer, &wa);
	pthread_create(&t[3], NULL, writer, &wb);
	pthread_create(&t[4], NULL, reader, &ra);
	pthread_create(&t[5], NULL, reader, &rb);
	wait_sent(&sent_a, move_at);
	assert_int_equal(rp_switch_direct(sa, dr[0]), 0);
	usleep(2000);   /* the two sides switch at different moments */
	assert_int_equal(rp_switch_direct(sb, dr[1]), 0);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(rp_switch_wait(sa, &st_a), 0);
	assert_int_equal(rp_switch_wait(sb, &st_b), 0);
	assert_int_equal(ma.r, 0);
	assert_int_equal(mb.r, 0);
	assert_int_equal(rb.got, na);
	assert_int_equal(ra.got, nb);
	assert_false(ra.bad);
	assert_false(rb.bad);
	assert_int_equal(ma.rs.a_to_b, na);   /* the data mode's counts are the stream's */
	assert_int_equal(ma.rs.b_to_a, nb);
	assert_int_equal(mb.rs.a_to_b, nb);
	assert_int_equal(mb.rs.b_to_a, na);
	assert_true(st_a.switched);
	assert_true(st_b.switched);
	assert_true(st_a.sent_relay > 0);
	if (a_back) {   /* the rest went by the data mode on the direct fd */
		assert_true(st_a.handed_back);
		assert_true(st_a.recv < nb);
	}
	if (b_back) {
		assert_true(st_b.handed_back);
		assert_true(st_b.recv < na);
	}
	for (int i = 0; i < 6; i++) {
		close(pairs[i][1]);
		if (i >= 4)
			close(pairs[i][0]);
	}
}

static void handback_both_ways(void **state)
{
	(void)state;
	run(32u << 20, 32u << 20, 4u << 20, true, true);
}

/* b's input ends (on the relay) before the move; a's moves and is handed back */
static void handback_after_peer_input_ended(void **state)
{
	(void)state;
	run(32u << 20, 64u << 10, 4u << 20, false, true);
}

/* a's input ends right as the move happens: its EOF takes the switch's path or the direct fd's */
static void handback_input_ends_at_move(void **state)
{
	(void)state;
	run(4u << 20, 32u << 20, 4u << 20, true, false);
}

/* the data mode alone: bytes before the marker first, then the fd's; its shutdown tells the switch
 * side to pass on what it holds; only after that side's EOF does the data mode write the fd */
static void marker_ordering(void **state)
{
	int sw[2], dr[2], app[2];
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sw), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, dr), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, app), 0);
	struct dm m = { .app = app[0], .sock = sw[1] };
	pthread_t t;
	pthread_create(&t, NULL, data_mode, &m);
	/* "before" through the switch, then the marker with dr[0]; "after" already waits on dr */
	assert_int_equal(write(dr[1], "after", 5), 5);
	assert_int_equal(write(sw[0], "before|", 7), 7);
	assert_int_equal(rp_switch_mark_send(sw[0], dr[0]), 0);
	close(dr[0]);
	char got[32] = { 0 };
	size_t n = 0;
	while (n < 12) {
		ssize_t k = read(app[1], got + n, sizeof(got) - 1 - n);
		assert_true(k > 0);
		n += (size_t)k;
	}
	assert_string_equal(got, "before|after");
	/* the application writes: the data mode first shuts the switch socket (the switch's turn to pass
	 * on what it read), and writes nothing to the direct fd before the switch's EOF */
	assert_int_equal(write(app[1], "up", 2), 2);
	char x;
	assert_int_equal(read(sw[0], &x, 1), 0);   /* its SHUT_WR */
	usleep(20000);
	assert_int_equal(recv(dr[1], &x, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(write(dr[1], "!", 1), 1);   /* the direct input flows meanwhile */
	assert_int_equal(read(app[1], &x, 1), 1);
	assert_int_equal(x, '!');
	shutdown(sw[0], SHUT_WR);   /* the switch's EOF: now the data mode writes the fd */
	assert_int_equal(read(dr[1], got, 2), 2);
	assert_memory_equal(got, "up", 2);
	shutdown(app[1], SHUT_WR);
	assert_int_equal(read(dr[1], got, 1), 0);   /* the FIN on the direct connection */
	shutdown(dr[1], SHUT_WR);
	assert_int_equal(read(app[1], got, 1), 0);
	pthread_join(t, NULL);
	assert_int_equal(m.r, 0);
	assert_int_equal(m.rs.a_to_b, 2);
	assert_int_equal(m.rs.b_to_a, 13);
	close(sw[0]);
	close(sw[1]);
	close(dr[1]);
	close(app[0]);
	close(app[1]);
}

/* a byte after the marker on the switch socket breaks the protocol */
static void data_after_marker(void **state)
{
	int sw[2], dr[2], app[2];
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sw), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, dr), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, app), 0);
	struct dm m = { .app = app[0], .sock = sw[1] };
	pthread_t t;
	pthread_create(&t, NULL, data_mode, &m);
	assert_int_equal(rp_switch_mark_send(sw[0], dr[0]), 0);
	close(dr[0]);
	assert_int_equal(write(sw[0], "x", 1), 1);
	pthread_join(t, NULL);
	assert_int_equal(m.r, -EPROTO);
	close(sw[0]);
	close(sw[1]);
	close(dr[1]);
	close(app[0]);
	close(app[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(handback_both_ways),
		cmocka_unit_test(handback_after_peer_input_ended),
		cmocka_unit_test(handback_input_ends_at_move),
		cmocka_unit_test(marker_ordering),
		cmocka_unit_test(data_after_marker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
