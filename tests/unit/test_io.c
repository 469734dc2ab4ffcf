/* SPDX-License-Identifier: MIT */
/* rp_io_write_all: whole buffers through a full non-blocking socket and pipe, the deadline, EPIPE
 * without SIGPIPE, a plain file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"

#define BIG (4u << 20)

struct reader {
	int fd;
	size_t got;
	uint32_t sum;
};

static void *drain(void *arg)
{
	struct reader *r = arg;
	uint8_t b[65536];
	usleep(100 * 1000);            /* let the writer fill the buffer and wait first */
	for (;;) {
		ssize_t n = read(r->fd, b, sizeof(b));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			r->sum = r->sum * 31 + b[i];
		r->got += (size_t)n;
	}
	return NULL;
}

static void through(int wfd, int rfd)
{
	uint8_t *buf = malloc(BIG);
	uint32_t sum = 0;
	assert_non_null(buf);
	for (size_t i = 0; i < BIG; i++) {
		buf[i] = (uint8_t)(i * 7 + (i >> 11));
		sum = sum * 31 + buf[i];
	}
	fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
	struct reader r = { .fd = rfd };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, drain, &r), 0);
	assert_int_equal(rp_io_write_all(wfd, buf, BIG, rp_mono_ns() + 10000000000ull), 0);
	close(wfd);
	pthread_join(th, NULL);
	close(rfd);
	assert_int_equal(r.got, BIG);
	assert_int_equal(r.sum, sum);
	free(buf);
}

static void test_nonblocking_socket(void **st)
{
	(void)st;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	through(sv[0], sv[1]);
}

static void test_nonblocking_pipe(void **st)
{
	(void)st;
	int p[2];
	assert_int_equal(pipe(p), 0);
	through(p[1], p[0]);
}

static void test_deadline_and_epipe(void **st)
{
	(void)st;
	int sv[2];
	static uint8_t buf[BIG];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	uint64_t t0 = rp_mono_ns();
	assert_int_equal(rp_io_write_all(sv[0], buf, sizeof(buf), t0 + 200000000ull), -ETIMEDOUT);
	uint64_t took = rp_mono_ns() - t0;
	assert_true(took >= 190000000ull && took < 2000000000ull);
	close(sv[1]);                                   /* nobody reads: EPIPE, and no SIGPIPE kills us */
	assert_int_equal(rp_io_write_all(sv[0], buf, 10, 0), -EPIPE);
	close(sv[0]);
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	/* a pipe is not a socket: write() there would raise SIGPIPE, so the caller decides; here it is
	 * ignored to show the error comes back */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(rp_io_write_all(p[1], buf, 10, 0), -EPIPE);
	close(p[1]);
	assert_int_equal(rp_io_write_all(-1, buf, 10, 0), -EBADF);
}

static void test_file(void **st)
{
	(void)st;
	char path[] = "/tmp/rp-io-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(rp_io_write_all(fd, "hello, world", 12, 0), 0);
	assert_int_equal(rp_io_write_all(fd, "", 0, 0), 0);
	char b[32] = { 0 };
	assert_int_equal(pread(fd, b, sizeof(b), 0), 12);
	assert_string_equal(b, "hello, world");
	close(fd);
}

static void test_read_file(void **st)
{
	(void)st;
	char path[] = "/tmp/rp-io-read-XXXXXX";
	uint8_t *b = NULL;
	size_t n = 0;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(rp_io_write_all(fd, "secret\n", 7, 0), 0);
	close(fd);
	assert_int_equal(rp_io_read_file(path, 7, &b, &n), 0);
	assert_int_equal(n, 7);
	assert_memory_equal(b, "secret\n", 8);   /* NUL-terminated */
	free(b);
	assert_int_equal(rp_io_read_file(path, 6, &b, &n), -EFBIG);
	unlink(path);
	assert_int_equal(rp_io_read_file(path, 100, &b, &n), -ENOENT);
	assert_int_equal(rp_io_read_file("/", 100, &b, &n), -EISDIR);
	/* an empty file */
	char empty[] = "/tmp/rp-io-empty-XXXXXX";
	fd = mkstemp(empty);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(rp_io_read_file(empty, 0, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(b[0], 0);
	free(b);
	unlink(empty);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonblocking_socket),
		cmocka_unit_test(test_nonblocking_pipe),
		cmocka_unit_test(test_deadline_and_epipe),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_read_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
