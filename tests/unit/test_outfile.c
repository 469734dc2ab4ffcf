/* SPDX-License-Identifier: MIT */
/* rp_out_open: pipes, symlinks, FIFOs, directories, other people's and hard-linked files are refused;
 * a created file belongs to the user; an own file is truncated only after the checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rawpunch/base/outfile.h"

static char dir[64];

static int setup(void **s)
{
	(void)s;
	snprintf(dir, sizeof(dir), "/tmp/rp-outfile.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **s)
{
	(void)s;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *p(const char *name)
{
	static char buf[4][128];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_refuses_names(void **s)
{
	(void)s;
	assert_int_equal(rp_out_open("|cat > /tmp/x", getuid(), getgid()), -EINVAL);
	assert_int_equal(rp_out_open("-", getuid(), getgid()), -EINVAL);
	assert_int_equal(rp_out_open("", getuid(), getgid()), -EINVAL);
	assert_int_equal(rp_out_open(NULL, getuid(), getgid()), -EINVAL);
	assert_int_equal(rp_out_open("/nonexistent-dir-rp/x.json", getuid(), getgid()), -ENOENT);
}

static void test_refuses_symlink(void **s)
{
	(void)s;
	write_file(p("target"), "precious");
	assert_int_equal(symlink(p("target"), p("link")), 0);
	assert_int_equal(rp_out_open(p("link"), getuid(), getgid()), -ELOOP);
	/* the target is untouched */
	char buf[16] = "";
	FILE *f = fopen(p("target"), "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "precious");
	/* a dangling symlink is not created through either */
	assert_int_equal(symlink(p("nowhere"), p("dangling")), 0);
	assert_int_equal(rp_out_open(p("dangling"), getuid(), getgid()), -ELOOP);
	assert_int_equal(access(p("nowhere"), F_OK), -1);
}

static void test_refuses_special(void **s)
{
	(void)s;
	assert_int_equal(mkfifo(p("fifo"), 0600), 0);
	assert_int_equal(rp_out_open(p("fifo"), getuid(), getgid()), -ENOTSUP);   /* and did not block */
	assert_int_equal(rp_out_open(dir, getuid(), getgid()), -EISDIR);
	assert_int_equal(rp_out_open("/dev/null", getuid(), getgid()), -ENOTSUP);
}

static void test_refuses_hardlink(void **s)
{
	(void)s;
	write_file(p("orig"), "x");
	assert_int_equal(link(p("orig"), p("hard")), 0);
	assert_int_equal(rp_out_open(p("hard"), getuid(), getgid()), -EEXIST);
}

static void test_truncates_own(void **s)
{
	(void)s;
	write_file(p("own"), "old content");
	int fd = rp_out_open(p("own"), getuid(), getgid());
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "new", 3), 3);
	close(fd);
	struct stat st;
	assert_int_equal(stat(p("own"), &st), 0);
	assert_int_equal(st.st_size, 3);
	assert_true(fcntl(fd, F_GETFD) < 0);    /* closed */
}

static void test_creates_for_user(void **s)
{
	(void)s;
	if (geteuid() != 0)
		skip();   /* reported as SKIPPED, never silent */
	int fd = rp_out_open(p("new.json"), 4242, 4343);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	struct stat st;
	assert_int_equal(stat(p("new.json"), &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_gid, 4343);
	/* someone else's file (not the target user's, not ours) is not overwritten */
	write_file(p("theirs"), "theirs");
	assert_int_equal(chown(p("theirs"), 5555, 5555), 0);
	assert_int_equal(rp_out_open(p("theirs"), 4242, 4343), -EEXIST);
	assert_int_equal(stat(p("theirs"), &st), 0);
	assert_int_equal(st.st_size, 6);
	/* the target user's own file is */
	assert_int_equal(chown(p("theirs"), 4242, 4343), 0);
	fd = rp_out_open(p("theirs"), 4242, 4343);
	assert_true(fd >= 0);
	close(fd);
}

static void test_fopen(void **s)
{
	(void)s;
	FILE *f = rp_out_fopen(p("stream"), getuid(), getgid());
	assert_non_null(f);
	fputs("{}\n", f);
	assert_int_equal(fclose(f), 0);
	errno = 0;
	assert_null(rp_out_fopen("|x", getuid(), getgid()));
	assert_int_equal(errno, EINVAL);
	assert_string_equal(rp_out_strerror(-ELOOP), "is a symbolic link (not followed)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refuses_names),
		cmocka_unit_test(test_refuses_symlink),
		cmocka_unit_test(test_refuses_special),
		cmocka_unit_test(test_refuses_hardlink),
		cmocka_unit_test(test_truncates_own),
		cmocka_unit_test(test_creates_for_user),
		cmocka_unit_test(test_fopen),
	};
	return cmocka_run_group_tests_name("outfile", tests, setup, teardown);
}
