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
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

/* What every command does as root: enter with the two network capabilities. */
static int child_enter_net(void)
{
	cap_t c;
	if (unsetenv("SUDO_UID") || rp_privs_enter(NULL, RP_PRIV_NET))
		return 10;
	if (rp_privs_have() != RP_PRIV_NET)
		return 11;
	uid_t r, e, sv;
	if (getresuid(&r, &e, &sv) || r == 0 || e == 0 || sv == 0)
		return 12;                  /* root became nobody */
	if (setuid(0) == 0 || seteuid(0) == 0)
		return 13;
	cap_flag_value_t v;
	c = cap_get_proc();
	if (cap_get_flag(c, CAP_SYS_ADMIN, CAP_PERMITTED, &v) || v != CAP_CLEAR)
		return 14;
	if (cap_get_flag(c, CAP_SETUID, CAP_PERMITTED, &v) || v != CAP_CLEAR)
		return 15;
	if (cap_get_flag(c, CAP_NET_RAW, CAP_INHERITABLE, &v) || v != CAP_CLEAR)
		return 16;
	cap_free(c);
	if (CAP_IS_SUPPORTED(CAP_SYS_ADMIN) && cap_get_bound(CAP_SYS_ADMIN) != 0)
		return 17;                  /* the bounding set holds no other capability */
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 18;
	if (rp_privs_is_elevated())
		return 19;
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);   /* still allowed */
	if (fd < 0)
		return 20;
	close(fd);
	return 0;
}

/* The state a later exec inherits: a shell run after enter + drop_all has no way back to root. */
static int child_exec_cannot_regain(void)
{
	if (unsetenv("SUDO_UID") || rp_privs_enter(NULL, RP_PRIV_NET) || rp_privs_drop_caps())
		return 30;
	if (rp_privs_have() != 0 || rp_privs_is_elevated())
		return 31;
	/* /bin/sh as the user: its status says whether it found itself root or with capabilities */
	execl("/bin/sh", "sh", "-c",
	      "[ \"$(id -u)\" != 0 ] && grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status && "
	      "grep -q '^CapPrm:[[:space:]]*0*$' /proc/self/status && grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status",
	      (char *)NULL);
	return 32;
}

/* sudo: the invoking user is the default */
static int child_sudo_user(void)
{
	if (setenv("SUDO_UID", "4242", 1) || setenv("SUDO_GID", "4343", 1) || rp_privs_enter(NULL, 0))
		return 40;
	if (getuid() != 4242 || geteuid() != 4242 || getgid() != 4343 || rp_privs_have() != 0)
		return 41;
	return 0;
}

/* root only when asked by name: uid 0 stays, but exec gains nothing (securebits NOROOT, locked) */
static int child_root_by_name(void)
{
	if (rp_privs_enter("root", RP_PRIV_NET) || getuid() != 0 || rp_privs_have() != RP_PRIV_NET)
		return 50;
	if (rp_privs_drop_caps() || rp_privs_have() != 0)
		return 51;
	if (prctl(PR_SET_SECUREBITS, 0, 0, 0, 0) == 0)
		return 52;                  /* the bits are locked */
	execl("/bin/sh", "sh", "-c", "grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status", (char *)NULL);
	return 53;
}

static int child_bad_user(void)
{
	uid_t u;
	gid_t g;
	if (rp_privs_target("no-such-user-rawpunch", &u, &g, NULL, 0) != -ENOENT)
		return 60;
	if (rp_privs_enter("no-such-user-rawpunch", RP_PRIV_NET) != -ENOENT)
		return 61;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0)
		return 62;                  /* refused before anything irreversible */
	return 0;
}

static int child_target_names(void)
{
	uid_t u;
	gid_t g;
	char name[64];
	if (unsetenv("SUDO_UID") || rp_privs_target(NULL, &u, &g, name, sizeof(name)) || strcmp(name, "nobody"))
		return 70;
	if (rp_privs_target("12345", &u, &g, name, sizeof(name)) || u != 12345 || strcmp(name, "12345"))
		return 71;
	return 0;
}

static void require_root(void)
{
	if (geteuid() != 0)
		skip(); /* reported as SKIPPED by cmocka, never silent */
}

static void test_enter_net(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_enter_net), 0); }
static void test_exec_cannot_regain(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_exec_cannot_regain), 0); }
static void test_sudo_user(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_sudo_user), 0); }
static void test_root_by_name(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_root_by_name), 0); }
static void test_unknown_user(void **s) { (void)s; assert_int_equal(in_child(child_bad_user), 0); }
static void test_target_names(void **s) { (void)s; require_root(); assert_int_equal(in_child(child_target_names), 0); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enter_net),
		cmocka_unit_test(test_exec_cannot_regain),
		cmocka_unit_test(test_sudo_user),
		cmocka_unit_test(test_root_by_name),
		cmocka_unit_test(test_unknown_user),
		cmocka_unit_test(test_target_names),
	};
	return cmocka_run_group_tests_name("privs", tests, NULL, NULL);
}
