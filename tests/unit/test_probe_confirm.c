/* SPDX-License-Identifier: MIT */
/* rawpunch/probe: nat_ttl's confirmation (probe-confirm.c) against a fake server, in a private network
 * namespace (the test unshares one; needs root): our low-TTL SYNs and the "server's" SYN go over
 * loopback, where every TTL passes. The fake connect-back sends its SYN from the server port to
 * the punch port at once and gives its verdict only later, as the rendezvous server does a round
 * trip after our RST. A pass that settles nat_ttl must not wait for that verdict: the run returns
 * well before it, with the test's verdict unknown, and the call, left on its thread, must touch
 * nothing of the run's (the run's state is freed at once: ASan would see a late write) and leak
 * nothing (LSan). A pass that does not settle, and a test that is filtered, still wait for it. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/netns_fixture.h"

#include "rawpunch/base/clock.h"
#include "rawpunch/probe/probe-internal.h"

#define LPORT 40123

/* The fake server: its SYN (when syn), then the verdict after verdict_ms. Static: the call may end
 * after the run returned, and its arg must outlive it (probe.h). */
struct fake {
	bool syn;
	int verdict_ms;
	enum rp_filter verdict;
	atomic_int calls, ended;
	atomic_int capeff_nonzero;    /* calls whose thread still had an effective capability */
};
static struct fake fake;

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A kernel SYN from 127.0.0.1:sport to 127.0.0.1:dport (nothing listens there: it draws a RST) */
static void syn_from(uint16_t sport, uint16_t dport)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(sport),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in dst = src;
	dst.sin_port = htons(dport);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
	    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0 || errno == EINPROGRESS)) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		(void)poll(&p, 1, 100);   /* refused at once */
	}
	close(fd);
}

static int fake_connect_back(void *arg, uint16_t public_port, uint16_t server_port, int timeout_ms, enum rp_filter *out)
{
	struct fake *f = arg;
	(void)timeout_ms;
	atomic_fetch_add(&f->calls, 1);
	/* the call's thread may outlive the probe: it must hold no capability (it needs none) */
	char line[256];
	FILE *st = fopen("/proc/thread-self/status", "r");
	while (st && fgets(line, sizeof(line), st))
		if (!strncmp(line, "CapEff:", 7) && strtoull(line + 7, NULL, 16) != 0)
			atomic_fetch_add(&f->capeff_nonzero, 1);
	if (st)
		fclose(st);
	if (f->syn)
		syn_from(server_port, public_port);
	sleep_ms(f->verdict_ms);
	*out = f->verdict;
	atomic_fetch_add(&f->ended, 1);
	return 0;
}

static int netns_setup(void **state)
{
	(void)state;
	return rp_test_netns_lo_up("test_probe_confirm");
}

/* The run with the fake as it is set, on heap state freed as soon as it returns (what the run
 * found is copied to *out); its duration in ms. */
static double run(unsigned first, bool from_hops, unsigned max_ttl, struct probe_confirm *out)
{
	struct rp_probe_opts *o = calloc(1, sizeof(*o));
	struct probe_confirm *pc = calloc(1, sizeof(*pc));
	assert_non_null(o);
	assert_non_null(pc);
	o->connect_back = fake_connect_back;
	o->connect_back_arg = &fake;
	o->connect_back_addr = htonl(INADDR_LOOPBACK);
	*pc = (struct probe_confirm){ .o = o, .ifname = "lo", .laddr = htonl(INADDR_LOOPBACK), .lport = LPORT,
				      .public_port = LPORT, .first = first, .max_ttl = max_ttl,
				      .first_from_hops = from_hops, .ms = 150 };
	atomic_store(&fake.calls, 0);
	atomic_store(&fake.ended, 0);
	atomic_store(&fake.capeff_nonzero, 0);
	uint64_t t0 = rp_clock_ns(CLOCK_MONOTONIC);
	probe_confirm_run(pc);
	double ms = (double)(rp_clock_ns(CLOCK_MONOTONIC) - t0) / 1e6;
	assert_null(pc->cap);   /* everything closed or handed over */
	assert_null(pc->cr);
	*out = *pc;
	memset(pc, 0x5a, sizeof(*pc));
	free(pc);
	free(o);
	return ms;
}

/* Every call of the run ended (the fake's, on their threads), and a moment for them to clean up. */
static void calls_end(int want)
{
	for (int i = 0; i < 300 && atomic_load(&fake.ended) < want; i++)
		sleep_ms(10);
	assert_int_equal(atomic_load(&fake.ended), want);
	assert_int_equal(atomic_load(&fake.calls), want);
	assert_int_equal(atomic_load(&fake.capeff_nonzero), 0);   /* the calls' threads held no capability */
	sleep_ms(50);
}

/* The hops' candidate passes: nat_ttl is settled as the server's SYN comes in, the verdict (500 ms
 * later) is not waited for. */
static void settle_early(void **state)
{
	(void)state;
	struct probe_confirm pc;
	fake = (struct fake){ .syn = true, .verdict_ms = 500, .verdict = RP_FILTER_RST };
	double ms = run(2, true, 8, &pc);
	assert_int_equal(pc.err, 0);
	assert_int_equal(pc.ttl, 2);
	assert_int_equal(pc.n, 1);
	assert_true(pc.tests[0].passed);
	assert_int_equal(pc.tests[0].err, 0);
	assert_int_equal(pc.tests[0].verdict, RP_FILTER_UNKNOWN);
	if (ms >= 350)
		fail_msg("the run took %.0f ms: it waited for the server's verdict (500 ms)", ms);
	calls_end(1);
}

/* TTL 2 passes but does not settle (no candidate from the hops): its verdict is waited for; TTL 1
 * passes too, which ends the run (-EALREADY) without waiting. */
static void pass_then_settle(void **state)
{
	(void)state;
	struct probe_confirm pc;
	fake = (struct fake){ .syn = true, .verdict_ms = 300, .verdict = RP_FILTER_RST };
	double ms = run(2, false, 8, &pc);
	assert_int_equal(pc.err, -EALREADY);
	assert_int_equal(pc.ttl, 0);
	assert_int_equal(pc.n, 2);
	assert_int_equal(pc.tests[0].ttl, 2);
	assert_true(pc.tests[0].passed);
	assert_int_equal(pc.tests[0].verdict, RP_FILTER_RST);
	assert_int_equal(pc.tests[1].ttl, 1);
	assert_true(pc.tests[1].passed);
	assert_int_equal(pc.tests[1].verdict, RP_FILTER_UNKNOWN);
	if (ms < 300 || ms >= 550)
		fail_msg("the run took %.0f ms: want one verdict (300 ms) waited for, not two", ms);
	calls_end(2);
}

/* No SYN gets in: every test waits for the verdict, which tells the filtering. */
static void filtered(void **state)
{
	(void)state;
	struct probe_confirm pc;
	fake = (struct fake){ .syn = false, .verdict_ms = 30, .verdict = RP_FILTER_DROP };
	(void)run(2, true, 3, &pc);
	assert_int_equal(pc.err, -ENOENT);
	assert_int_equal(pc.n, 2);
	assert_false(pc.tests[0].passed);
	assert_false(pc.tests[1].passed);
	assert_int_equal(pc.tests[0].verdict, RP_FILTER_DROP);
	assert_int_equal(pc.filter_err, 0);
	assert_int_equal(pc.filtering, RP_FILTER_DROP);
	calls_end(2);
}

int main(void)
{
	const struct CMUnitTest live[] = {
		cmocka_unit_test(settle_early),
		cmocka_unit_test(pass_then_settle),
		cmocka_unit_test(filtered),
	};
	return cmocka_run_group_tests_name("probe-confirm-netns", live, netns_setup, NULL);
}
