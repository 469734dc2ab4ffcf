/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <sys/capability.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rawpunch/base/privs.h"

/* Runs fn in a child so the test runner keeps its own privileges; returns the child's status. */
static int in_child(int (*fn)(void))
{
	pid_t p = fork();
	int st;
	if (p == 0)
		_exit(fn());
	assert_true(p > 0);
	assert_int_equal(waitpid(p, &st, 0), p);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int child_limit(void)
{
	cap_t c;
	cap_flag_value_t v;
	if (rp_privs_limit())
		return 10;
	if (rp_privs_have() != (RP_PRIV_NET_RAW | RP_PRIV_NET_ADMIN))
		return 11;
	c = cap_get_proc();
	if (cap_get_flag(c, CAP_SYS_ADMIN, CAP_PERMITTED, &v) || v != CAP_CLEAR)
		return 12;
	if (cap_get_flag(c, CAP_NET_RAW, CAP_INHERITABLE, &v) || v != CAP_CLEAR)
		return 13;
	cap_free(c);
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);   /* still allowed */
	if (fd < 0)
		return 14;
	close(fd);
	return 0;
}

static int child_drop(void)
{
	if (rp_privs_limit() || rp_privs_drop_all(NULL))
		return 20;
	if (rp_privs_have() != 0)
		return 21;
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
	if (fd >= 0 || errno != EPERM)
		return 22;
	return 0;
}

static int child_drop_to_nobody(void)
{
	if (rp_privs_drop_all("nobody"))
		return 30;
	if (getuid() == 0 || geteuid() == 0 || setuid(0) == 0)
		return 31;
	return 0;
}

/* What punch and connect do: limit at start, switch to --user after the handoff. */
static int child_limit_then_user(void)
{
	if (rp_privs_limit())
		return 50;
	if (rp_privs_drop_all("nobody"))
		return 51;
	if (getuid() == 0 || geteuid() == 0 || setuid(0) == 0 || rp_privs_have() != 0)
		return 52;
	cap_t c = cap_get_proc();
	cap_flag_value_t v;
	if (!c || cap_get_flag(c, CAP_SETUID, CAP_PERMITTED, &v) || v != CAP_CLEAR)
		return 53;
	cap_free(c);
	return 0;
}

static int child_bad_user(void)
{
	return rp_privs_drop_all("no-such-user-rawpunch") == -ENOENT ? 0 : 40;
}

static void require_root(void)
{
	if (geteuid() != 0)
		skip(); /* reported as SKIPPED by cmocka, never silent */
}

static void test_limit_keeps_only_net_caps(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_limit), 0); }
static void test_drop_all(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_drop), 0); }
static void test_drop_to_user(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_drop_to_nobody), 0); }
static void test_limit_then_user(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_limit_then_user), 0); }
static void test_unknown_user(void **s) { (void)s; assert_int_equal(in_child(child_bad_user), 0); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_keeps_only_net_caps),
		cmocka_unit_test(test_drop_all),
		cmocka_unit_test(test_drop_to_user),
		cmocka_unit_test(test_limit_then_user),
		cmocka_unit_test(test_unknown_user),
	};
	return cmocka_run_group_tests_name("privs", tests, NULL, NULL);
}
