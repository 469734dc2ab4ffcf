/* SPDX-License-Identifier: MIT */
/* rawpunch/fdmode: the relay (both directions at once, half-close passed on, pipes and sockets),
 * --exec (the socket is the command's stdin+stdout, exit status returned), and -L forwarding
 * (several clients at once, each over its own dialled connection; dial failures; stop). The relay
 * and forward tests use AF_UNIX sockets and pipes; rp_forward_listen() binds TCP in a private
 * network namespace. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/netns_fixture.h"

#include "rawpunch/handoff/fdmode.h"

static uint8_t pat(uint64_t i, uint8_t salt)
{
	return (uint8_t)((i * 151) ^ (i >> 11) ^ salt);
}

struct writer {
	int fd;
	size_t n;
	uint8_t salt;
	int err;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[8192];
	size_t off = 0;
	while (off < w->n) {
		size_t k = w->n - off < sizeof(buf) ? w->n - off : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = pat(off + i, w->salt);
		ssize_t r = write(w->fd, buf, k);
		if (r <= 0) {
			w->err = errno ? errno : EIO;
			return NULL;
		}
		off += (size_t)r;
	}
	/* EOF: shutdown for a socket, close for a pipe */
	if (shutdown(w->fd, SHUT_WR) && errno == ENOTSOCK)
		close(w->fd);
	return NULL;
}

/* read to EOF; -2 on a byte that breaks the pattern */
static long long read_check(int fd, uint8_t salt)
{
	uint8_t buf[16384];
	long long off = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0)
			return -1;
		if (r == 0)
			return off;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pat((uint64_t)off + (uint64_t)i, salt))
				return -2;
		off += r;
	}
}

struct relay_job {
	int in_a, out_a, in_b, out_b;
	int ret;
	struct rp_relay_stats st;
};

static void *relay_main(void *arg)
{
	struct relay_job *j = arg;
	j->ret = rp_relay(j->in_a, j->out_a, j->in_b, j->out_b, &j->st);
	return NULL;
}

static void relay_sockets_full_duplex(void **state)
{
	(void)state;
	int a[2], b[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	struct relay_job j = { .in_a = a[1], .out_a = a[1], .in_b = b[1], .out_b = b[1] };
	struct writer wa = { .fd = a[0], .n = 3u << 20, .salt = 1 }, wb = { .fd = b[0], .n = (3u << 20) + 7, .salt = 2 };
	pthread_t tr, t1, t2;
	assert_int_equal(pthread_create(&tr, NULL, relay_main, &j), 0);
	assert_int_equal(pthread_create(&t1, NULL, writer_main, &wa), 0);
	assert_int_equal(pthread_create(&t2, NULL, writer_main, &wb), 0);
	/* a's bytes come out at b and the other way round, both at once; each ends with EOF */
	assert_int_equal(read_check(b[0], 1), (long long)wa.n);
	assert_int_equal(read_check(a[0], 2), (long long)wb.n);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	pthread_join(tr, NULL);
	assert_int_equal(wa.err, 0);
	assert_int_equal(wb.err, 0);
	assert_int_equal(j.ret, 0);
	assert_int_equal(j.st.a_to_b, wa.n);
	assert_int_equal(j.st.b_to_a, wb.n);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

static void relay_half_close(void **state)
{
	(void)state;
	int a[2], b[2];
	char buf[16];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	struct relay_job j = { .in_a = a[1], .out_a = a[1], .in_b = b[1], .out_b = b[1], .ret = 99 };
	pthread_t tr;
	assert_int_equal(pthread_create(&tr, NULL, relay_main, &j), 0);
	/* a says "ping" and closes its direction ... */
	assert_int_equal(write(a[0], "ping", 4), 4);
	assert_int_equal(shutdown(a[0], SHUT_WR), 0);
	assert_int_equal(read(b[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(read(b[0], buf, sizeof(buf)), 0);       /* ... b sees EOF ... */
	/* ... and b can still answer: the relay keeps the other direction open */
	usleep(20000);
	assert_int_equal(j.ret, 99);                              /* still running */
	assert_int_equal(write(b[0], "pong", 4), 4);
	assert_int_equal(read(a[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	assert_int_equal(shutdown(b[0], SHUT_WR), 0);
	assert_int_equal(read(a[0], buf, sizeof(buf)), 0);
	pthread_join(tr, NULL);                                   /* both done: it returns */
	assert_int_equal(j.ret, 0);
	assert_int_equal(j.st.a_to_b, 4);
	assert_int_equal(j.st.b_to_a, 4);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

/* what --stdio does: pipes on one side (stdin/stdout), a socket on the other */
static void relay_pipes_like_stdio(void **state)
{
	(void)state;
	int in[2], out[2], s[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	struct relay_job j = { .in_a = in[0], .out_a = out[1], .in_b = s[1], .out_b = s[1] };
	struct writer wi = { .fd = in[1], .n = 1u << 20, .salt = 3 }, ws = { .fd = s[0], .n = 1u << 20, .salt = 4 };
	pthread_t tr, t1, t2;
	assert_int_equal(pthread_create(&tr, NULL, relay_main, &j), 0);
	assert_int_equal(pthread_create(&t1, NULL, writer_main, &wi), 0);
	assert_int_equal(pthread_create(&t2, NULL, writer_main, &ws), 0);
	assert_int_equal(read_check(s[0], 3), (long long)wi.n);   /* stdin EOF -> socket shutdown */
	assert_int_equal(read_check(out[0], 4), (long long)ws.n); /* socket EOF -> stdout closed */
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	pthread_join(tr, NULL);
	assert_int_equal(j.ret, 0);
	/* the output descriptor number stays valid (now /dev/null): nothing else can take it over */
	assert_true(fcntl(out[1], F_GETFD) >= 0);
	assert_int_equal(write(out[1], "x", 1), 1);
	close(in[0]);
	close(out[0]);
	close(out[1]);
	close(s[0]);
	close(s[1]);
}

static void relay_reader_gone(void **state)
{
	(void)state;
	int in[2], out[2], s[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	close(out[0]);   /* nobody reads "stdout": EPIPE, not a SIGPIPE death */
	assert_int_equal(write(s[0], "data", 4), 4);
	assert_int_equal(rp_relay(in[0], out[1], s[1], s[1], NULL), -EPIPE);
	assert_int_equal(rp_relay(-1, 1, 2, 3, NULL), -EBADF);
	close(in[0]);
	close(in[1]);
	close(out[1]);
	close(s[0]);
	close(s[1]);
}

struct exec_job {
	int sock;
	const char *cmd;
	int ret;
};

static void *exec_main(void *arg)
{
	struct exec_job *j = arg;
	j->ret = rp_fd_exec(j->sock, j->cmd);
	return NULL;
}

static void exec_command(void **state)
{
	(void)state;
	int s[2];
	char buf[64];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	struct exec_job j = { .sock = s[1], .cmd = "tr a-z A-Z; echo done; exit 3" };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, exec_main, &j), 0);
	assert_int_equal(write(s[0], "hello\n", 6), 6);
	assert_int_equal(shutdown(s[0], SHUT_WR), 0);            /* the command's stdin hits EOF */
	pthread_join(th, NULL);   /* the command ran to its end ... */
	assert_int_equal(j.ret, 3);
	close(s[1]);              /* ... so this was the last copy: EOF follows its output */
	size_t got = 0;
	for (;;) {
		ssize_t r = read(s[0], buf + got, sizeof(buf) - 1 - got);
		assert_true(r >= 0);
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = 0;
	assert_string_equal(buf, "HELLO\ndone\n");
	close(s[0]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	assert_int_equal(rp_fd_exec(s[1], "kill -TERM $$"), 128 + 15);
	assert_int_equal(rp_fd_exec(s[1], "exit 0"), 0);
	assert_int_equal(rp_fd_exec(s[1], ""), -EINVAL);
	assert_int_equal(rp_fd_exec(-1, "true"), -EINVAL);
	close(s[0]);
	close(s[1]);
}

/* ---- -L forwarding over AF_UNIX (abstract names: no files) ---- */

static int unix_listen(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", name);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sl), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static int unix_connect(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", name);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sl)) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* the "remote server": echoes each connection, one thread per connection */
static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t buf[8192];
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)r) != r)
			break;
	shutdown(fd, SHUT_WR);
	close(fd);
	return NULL;
}

static void *echo_server(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd;
	while ((fd = accept(lfd, NULL, NULL)) >= 0) {
		pthread_t th;
		pthread_create(&th, NULL, echo_conn, (void *)(intptr_t)fd);
		pthread_detach(th);
	}
	return NULL;
}

struct dialer {
	const char *name;
	pthread_mutex_t mu;
	int calls;
	int fail_first;   /* fail this many dials with -ECONNREFUSED */
};

static int dial_unix(void *ctx)
{
	struct dialer *d = ctx;
	pthread_mutex_lock(&d->mu);
	int n = d->calls++;
	pthread_mutex_unlock(&d->mu);
	if (n < d->fail_first)
		return -ECONNREFUSED;
	return unix_connect(d->name);
}

struct client {
	const char *name;
	size_t n;
	uint8_t salt;
	long long echoed;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	int fd = unix_connect(c->name);
	if (fd < 0) {
		c->echoed = -3;
		return NULL;
	}
	struct writer w = { .fd = fd, .n = c->n, .salt = c->salt };
	pthread_t th;
	pthread_create(&th, NULL, writer_main, &w);
	c->echoed = read_check(fd, c->salt);
	pthread_join(th, NULL);
	close(fd);
	return NULL;
}

struct fwd_job {
	int lfd;
	struct dialer *d;
	struct rp_forward_opts o;
	struct rp_forward_stats st;
	int ret;
};

static void *forward_main(void *arg)
{
	struct fwd_job *j = arg;
	j->ret = rp_forward(j->lfd, dial_unix, j->d, &j->o, &j->st);
	return NULL;
}

static void forward_parallel_clients(void **state)
{
	(void)state;
	char local[64], remote[64];
	snprintf(local, sizeof(local), "rp-ho-test-local-%d", (int)getpid());
	snprintf(remote, sizeof(remote), "rp-ho-test-remote-%d", (int)getpid());
	int rl = unix_listen(remote), ll = unix_listen(local);
	pthread_t es, fw, cl[6];
	assert_int_equal(pthread_create(&es, NULL, echo_server, (void *)(intptr_t)rl), 0);
	struct dialer d = { .name = remote, .mu = PTHREAD_MUTEX_INITIALIZER, .fail_first = 1 };
	struct fwd_job j = { .lfd = ll, .d = &d, .o = { .max_clients = 7, .max_parallel = 4, .stop_fd = -1 } };
	assert_int_equal(pthread_create(&fw, NULL, forward_main, &j), 0);

	/* the first client's dial fails: it is closed at once (EOF, nothing echoed; had it sent
	 * bytes that were never read, it would see a reset) */
	struct client c0 = { .name = local, .n = 0, .salt = 9 };
	client_main(&c0);
	assert_int_equal(c0.echoed, 0);
	/* then six at once, 512 KiB each, each over its own dialled connection (4 relayed at a time) */
	struct client c[6];
	for (int i = 0; i < 6; i++) {
		c[i] = (struct client){ .name = local, .n = (512u << 10) + (size_t)i, .salt = (uint8_t)(10 + i) };
		assert_int_equal(pthread_create(&cl[i], NULL, client_main, &c[i]), 0);
	}
	uint64_t total = 0;
	for (int i = 0; i < 6; i++) {
		pthread_join(cl[i], NULL);
		assert_int_equal(c[i].echoed, (long long)c[i].n);
		total += c[i].n;
	}
	pthread_join(fw, NULL);   /* max_clients reached: it returns once the relays are done */
	assert_int_equal(j.ret, 0);
	assert_int_equal(j.st.accepted, 7);
	assert_int_equal(j.st.dial_failed, 1);
	assert_int_equal(j.st.completed, 6);
	assert_int_equal(j.st.failed, 0);
	assert_int_equal(j.st.up_bytes, total);
	assert_int_equal(j.st.down_bytes, total);
	assert_int_equal(d.calls, 7);
	shutdown(rl, SHUT_RDWR);
	close(rl);
	pthread_join(es, NULL);
	close(ll);
}

static void forward_stop_fd(void **state)
{
	(void)state;
	char local[64];
	int p[2];
	snprintf(local, sizeof(local), "rp-ho-test-stop-%d", (int)getpid());
	int ll = unix_listen(local);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct dialer d = { .name = "rp-ho-nobody", .mu = PTHREAD_MUTEX_INITIALIZER };
	struct fwd_job j = { .lfd = ll, .d = &d, .o = { .stop_fd = p[0] }, .ret = 99 };
	pthread_t fw;
	assert_int_equal(pthread_create(&fw, NULL, forward_main, &j), 0);
	usleep(20000);
	assert_int_equal(j.ret, 99);
	assert_int_equal(write(p[1], "q", 1), 1);
	pthread_join(fw, NULL);
	assert_int_equal(j.ret, 0);
	assert_int_equal(j.st.accepted, 0);
	assert_int_equal(rp_forward(-1, dial_unix, &d, NULL, NULL), -EINVAL);
	assert_int_equal(rp_forward(ll, NULL, &d, NULL, NULL), -EINVAL);
	close(p[0]);
	close(p[1]);
	close(ll);
}

static void forward_listen_spec_errors(void **state)
{
	(void)state;
	static const char *bad[] = { "", "0", "65536", "abc", ":80", "1.2.3:80", "1.2.3.4:", "1.2.3.4:x",
				     "localhost:80", "-5", "1.2.3.4:80:90" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (rp_forward_listen(bad[i], 8) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
	assert_int_equal(rp_forward_listen(NULL, 8), -EINVAL);
}

static int netns_setup(void **state)
{
	(void)state;
	return rp_test_netns_lo_up("test_handoff_fdmode");
}

static void forward_listen_tcp(void **state)
{
	(void)state;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = rp_forward_listen("34567", 8);   /* default address: loopback only */
	assert_true(fd >= 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(sa.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(ntohs(sa.sin_port), 34567);
	int fd2 = rp_forward_listen("127.0.0.1:34567", 8);
	assert_int_equal(fd2, -EADDRINUSE);
	close(fd);
	fd = rp_forward_listen("0.0.0.0:34568", 8);
	assert_true(fd >= 0);
	sl = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(sa.sin_addr.s_addr, htonl(INADDR_ANY));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(relay_sockets_full_duplex),
		cmocka_unit_test(relay_half_close),
		cmocka_unit_test(relay_pipes_like_stdio),
		cmocka_unit_test(relay_reader_gone),
		cmocka_unit_test(exec_command),
		cmocka_unit_test(forward_parallel_clients),
		cmocka_unit_test(forward_stop_fd),
		cmocka_unit_test(forward_listen_spec_errors),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(forward_listen_tcp),
	};
	int r = cmocka_run_group_tests_name("fdmode", tests, NULL, NULL);
	return r | cmocka_run_group_tests_name("fdmode-netns", live, netns_setup, NULL);
}
