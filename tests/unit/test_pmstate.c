/* SPDX-License-Identifier: MIT */
/* Port mapping records and the sweep after a killed holder (rawpunch/portmap/pmstate.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/portmap/pmstate.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/rp-pmstate.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	return rmdir(dir);
}

static unsigned files(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static uint32_t ip(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

/* A pid that certainly is not running any more: a child that has exited and been reaped. */
static long dead_pid(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return (long)p;
}

static void rec(struct rp_pm_record *r, long pid, unsigned long long start, uint16_t port, enum rp_pm_proto proto)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	r->start = start;
	r->netns = rp_pm_netns();
	r->proto = proto;
	r->ipproto = IPPROTO_TCP;
	r->gateway = ip("10.0.1.1");
	r->internal_addr = ip("10.0.1.2");
	r->internal_port = port;
	r->external_addr = ip("198.18.1.2");
	r->external_port = (uint16_t)(port + 1);
	for (unsigned i = 0; i < sizeof(r->nonce); i++)
		r->nonce[i] = (uint8_t)(i * 17);
	r->expires = (uint64_t)time(NULL) + 600;
	if (proto == RP_PM_UPNP) {
		strcpy(r->upnp_control, "http://10.0.1.1:2869/ctl/IPConn");
		strcpy(r->upnp_service, "urn:schemas-upnp-org:service:WANIPConnection:2");
	}
}

static void test_format_parse_roundtrip(void **state)
{
	(void)state;
	struct rp_pm_record a, b;
	char text[2048];
	rec(&a, 1234, 99, 40000, RP_PM_UPNP);
	a.peer_addr = ip("198.18.3.2");
	a.peer_port = 7000;
	int n = rp_pm_record_format(&a, text, sizeof(text));
	assert_true(n > 0);
	assert_int_equal(rp_pm_record_parse(text, (size_t)n, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(rp_pm_record_format(&a, text, 50), -ENOSPC);
	/* missing key, bad nonce, garbage, not ours */
	static const char *const bad[] = {
		"rawpunch-portmap 1\npid=1\n",
		"rawpunch-portmap 2\n",
		"hello\n",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rp_pm_record_parse(bad[i], strlen(bad[i]), &b), -EBADMSG);
	n = rp_pm_record_format(&a, text, sizeof(text));
	char *p = strstr(text, "nonce=");
	assert_non_null(p);
	p[6] = 'x';
	assert_int_equal(rp_pm_record_parse(text, (size_t)n, &b), -EBADMSG);
	/* UPnP needs its control URL */
	rec(&a, 1234, 99, 40000, RP_PM_UPNP);
	a.upnp_control[0] = 0;
	n = rp_pm_record_format(&a, text, sizeof(text));
	assert_int_equal(rp_pm_record_parse(text, (size_t)n, &b), -EBADMSG);
	/* a newline in a field could forge keys: refused */
	rec(&a, 1234, 99, 40000, RP_PM_UPNP);
	strcpy(a.upnp_service, "x\npid=1");
	assert_int_equal(rp_pm_record_format(&a, text, sizeof(text)), -EINVAL);
}

struct undo_log {
	unsigned calls;
	uint16_t ports[8];
	int ret;
};

static int undo(const struct rp_pm_record *r, void *arg)
{
	struct undo_log *l = arg;
	if (l->calls < 8)
		l->ports[l->calls] = r->internal_port;
	l->calls++;
	return l->ret;
}

static void test_sweep_removes_only_dead_holders(void **state)
{
	(void)state;
	struct rp_pm_record r;
	struct rp_pm_sweep st;
	struct undo_log log = { 0 };
	char path[512];
	unsigned long long me_start;
	long dead = dead_pid();
	assert_int_equal(rp_pm_proc_start((long)getpid(), &me_start), 0);
	assert_int_equal(rp_pm_proc_start(dead, NULL), -ESRCH);

	rec(&r, (long)getpid(), me_start, 1001, RP_PM_PCP);    /* live holder (this process) */
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	assert_true(rp_pm_holder_alive(&r));
	rec(&r, (long)getpid(), me_start + 1, 1002, RP_PM_NATPMP); /* this pid, another start time: reused pid */
	assert_false(rp_pm_holder_alive(&r));
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	rec(&r, dead, 5, 1003, RP_PM_UPNP);                    /* a killed holder */
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	rec(&r, dead, 5, 1004, RP_PM_PCP);                     /* killed, but expired on the router */
	r.expires = (uint64_t)time(NULL) - 1;
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	rec(&r, dead, 5, 1005, RP_PM_PCP);                     /* another namespace's: not ours */
	r.netns = rp_pm_netns() + 1;
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	assert_int_equal(files(), 5);

	/* only port 1003 */
	assert_int_equal(rp_pm_sweep_dir(dir, 0, 1003, undo, &log, &st), 1);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.ports[0], 1003);
	assert_int_equal(st.undone, 1);
	assert_int_equal(files(), 4);

	/* all: 1002 undone, 1004 expired (no undo call), 1001 live, 1005 foreign */
	memset(&log, 0, sizeof(log));
	assert_int_equal(rp_pm_sweep_dir(dir, 0, 0, undo, &log, &st), 2);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.ports[0], 1002);
	assert_int_equal(st.undone, 1);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.live, 1);
	assert_int_equal(st.live_pid, (long)getpid());
	assert_int_equal(files(), 2);

	/* another namespace's expired record of a dead holder goes; an unexpired one stays (above) */
	rec(&r, dead, 5, 1006, RP_PM_PCP);
	r.netns = rp_pm_netns() + 2;
	r.expires = (uint64_t)time(NULL) - 1;
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	memset(&log, 0, sizeof(log));
	assert_int_equal(rp_pm_sweep_dir(dir, 0, 0, undo, &log, &st), 1);
	assert_int_equal(log.calls, 0);
	assert_int_equal(st.expired, 1);
	assert_int_equal(files(), 2);

	/* a sweep from "the other namespace" sees 1005 (its holder is dead) */
	memset(&log, 0, sizeof(log));
	assert_int_equal(rp_pm_sweep_dir(dir, rp_pm_netns() + 1, 0, undo, &log, &st), 1);
	assert_int_equal(log.ports[0], 1005);
	assert_int_equal(files(), 1);
}

static void test_sweep_keeps_what_undo_failed(void **state)
{
	(void)state;
	struct rp_pm_record r;
	struct rp_pm_sweep st;
	struct undo_log log = { .ret = -ETIMEDOUT };
	char path[512];
	long dead = dead_pid();
	rec(&r, dead, 5, 2001, RP_PM_NATPMP);
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	assert_int_equal(rp_pm_sweep_dir(dir, 0, 0, undo, &log, &st), 0);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.last_err, -ETIMEDOUT);
	assert_int_equal(files(), 1);                       /* kept for the next run */
	log.ret = -ENOENT;                                  /* the router says it is gone: fine */
	assert_int_equal(rp_pm_sweep_dir(dir, 0, 0, undo, &log, &st), 1);
	assert_int_equal(files(), 0);
}

static void test_update_and_unreadable(void **state)
{
	(void)state;
	struct rp_pm_record r, back;
	char path[512], text[2048], bogus[600];
	long dead = dead_pid();
	rec(&r, (long)getpid(), 0, 3001, RP_PM_PCP);
	assert_int_equal(rp_pm_record_save(dir, &r, path, sizeof(path)), 0);
	r.external_port = 3333;
	assert_int_equal(rp_pm_record_update(path, &r), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof(text), f);
	fclose(f);
	assert_int_equal(rp_pm_record_parse(text, n, &back), 0);
	assert_int_equal(back.external_port, 3333);
	unlink(path);
	/* garbage under a record's name: removed only when the pid in the name is dead */
	snprintf(bogus, sizeof(bogus), "%s/pm-%llu-%ld-0.map", dir, rp_pm_netns(), dead);
	f = fopen(bogus, "w");
	fputs("garbage", f);
	fclose(f);
	snprintf(bogus, sizeof(bogus), "%s/pm-%llu-%ld-0.map", dir, rp_pm_netns(), (long)getpid());
	f = fopen(bogus, "w");
	fputs("garbage", f);
	fclose(f);
	struct rp_pm_sweep st;
	assert_int_equal(rp_pm_sweep_dir(dir, 0, 0, undo, &(struct undo_log){ 0 }, &st), 1);
	assert_int_equal(st.bad, 1);
	assert_int_equal(files(), 1);
	/* a missing directory is an empty one */
	assert_int_equal(rp_pm_sweep_dir("/nonexistent/rawpunch", 0, 0, undo, NULL, &st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_parse_roundtrip),
		cmocka_unit_test_setup_teardown(test_sweep_removes_only_dead_holders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_keeps_what_undo_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_and_unreadable, setup, teardown),
	};
	return cmocka_run_group_tests_name("pmstate", tests, NULL, NULL);
}
