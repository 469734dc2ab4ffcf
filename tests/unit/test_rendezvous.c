/* SPDX-License-Identifier: MIT */
/* rendezvous client: a signal that sets the stop flag (rv_set_stop) ends a blocked wait at once,
 * instead of after the deadline. Loopback only: a listener that accepts and never answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/rendezvous/client.h"

static volatile sig_atomic_t stop;
static void on_alarm(int sig) { (void)sig; stop = 1; }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* a silent server: listens on 127.0.0.1, never reads or answers */
static int silent_server(struct sockaddr_in *a)
{
	socklen_t al = sizeof(*a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(l, (struct sockaddr *)a, sizeof(*a)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)a, &al), 0);
	return l;
}

static int wait_with_alarm(bool use_stop, double *took)
{
	struct sockaddr_in a;
	struct rv_client *c = NULL;
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval it = { .it_value = { .tv_usec = 200000 } }, off = { 0 };
	int l = silent_server(&a), r;
	sigemptyset(&sa.sa_mask);            /* no SA_RESTART, as the commands install theirs */
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(rv_connect(&a, 2000, &c), 0);
	stop = 0;
	if (use_stop)
		rv_set_stop(c, &stop);
	double t0 = now_s();
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	r = rv_clock_sync(c, 1, NULL, NULL);   /* waits up to 6 s for a "time" answer */
	*took = now_s() - t0;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	assert_int_equal(stop, 1);
	rv_close(c);
	close(l);
	return r;
}

static void test_stop_ends_wait(void **st)
{
	(void)st;
	double took;
	assert_int_equal(wait_with_alarm(true, &took), -EINTR);
	assert_true(took < 2.0);
}

static void test_without_stop_waits_for_deadline(void **st)
{
	(void)st;
	double took;
	/* the same signal without rv_set_stop is retried: the wait runs to its deadline */
	assert_int_equal(wait_with_alarm(false, &took), -ETIMEDOUT);
	assert_true(took > 5.0);
}

static void test_null_client(void **st)
{
	(void)st;
	rv_set_stop(NULL, &stop);   /* no crash */
}

#define MS (INT64_C(1000000))

/* The computed lead: half of each side's RTT to the server (the proposal's way to the peer), both
 * clock errors, the set-up allowance and an eighth of the relay RTT (at least RV_LEAD_SLACK_MS). */
static void test_lead_auto(void **st)
{
	(void)st;
	/* 50 ms RTT between the peers, 25 ms each to the server, 2 ms clock error each, 40 ms set-up:
	 * 25 + 4 + 40 + 10 (an eighth of 50 is below the floor) */
	assert_int_equal(rv_lead_auto_ns(25 * MS, 25 * MS, 2 * MS, 2 * MS, 40 * MS), (uint64_t)(79 * MS));
	/* 200 ms each to the server: 200 + 4 + 40 + 50 */
	assert_int_equal(rv_lead_auto_ns(200 * MS, 200 * MS, 2 * MS, 2 * MS, 40 * MS), (uint64_t)(294 * MS));
	/* a LAN: the slack's floor */
	assert_int_equal(rv_lead_auto_ns(MS / 10, MS / 10, 0, 0, 40 * MS),
			 (uint64_t)(MS / 10 + 40 * MS + RV_LEAD_SLACK_MS * MS));
	/* an older peer sends neither rtt nor err: taken as this side's RTT and its hard bound rtt / 2 */
	assert_int_equal(rv_lead_auto_ns(100 * MS, -1, 5 * MS, -1, 40 * MS),
			 rv_lead_auto_ns(100 * MS, 100 * MS, 5 * MS, 50 * MS, 40 * MS));
	/* it grows with every input */
	uint64_t base = rv_lead_auto_ns(20 * MS, 30 * MS, 1 * MS, 1 * MS, 40 * MS);
	assert_true(rv_lead_auto_ns(60 * MS, 30 * MS, 1 * MS, 1 * MS, 40 * MS) > base);
	assert_true(rv_lead_auto_ns(20 * MS, 30 * MS, 9 * MS, 1 * MS, 40 * MS) > base);
	assert_true(rv_lead_auto_ns(20 * MS, 30 * MS, 1 * MS, 1 * MS, 90 * MS) > base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stop_ends_wait),
		cmocka_unit_test(test_without_stop_waits_for_deadline),
		cmocka_unit_test(test_null_client),
		cmocka_unit_test(test_lead_auto),
	};
	return cmocka_run_group_tests_name("rendezvous", tests, NULL, NULL);
}
