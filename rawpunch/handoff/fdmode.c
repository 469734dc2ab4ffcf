/* SPDX-License-Identifier: MIT */
/* fdmode (fdmode.h): the relay loop (with the switch's hand-back of the direct fd, switch.h), the
 * stdio, exec and -L data modes. */
#include "rawpunch/handoff/fdmode.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/parse.h"
#include "rawpunch/handoff/switch.h"

#define RELAY_BUF 65536
#define PIPE_CHUNK 4096   /* a pipe reporting POLLOUT takes this much without blocking */

static bool is_socket(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

struct dir {
	int in, out;
	bool in_sock, out_sock;
	bool eof, done;          /* eof: input ended; done: and everything was written + shut down */
	size_t off, len;
	uint64_t total;
	uint8_t *buf;
	int *handback;           /* non-NULL: in is a switch's local socket; the direct fd lands here */
};

/* recvmsg that takes an fd the switch hands back: the byte it comes with (the marker, always the
 * last one read then: a read stops after a message that carries fds) is dropped. Bytes, -errno */
static ssize_t recv_handback(int fd, uint8_t *b, size_t cap, int *got)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = b, .iov_len = cap };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int nfd = -1;
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int x;
			memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfd < 0)
				nfd = x;
			else
				close(x);
		}
	}
	if (nfd < 0)
		return (m.msg_flags & MSG_CTRUNC) ? -EPROTO : n;
	if (n < 1 || b[n - 1] != RP_SWITCH_HANDBACK_MARK || (m.msg_flags & MSG_CTRUNC)) {
		close(nfd);
		return -EPROTO;
	}
	*got = nfd;
	return n - 1;
}

/* read what is available (poll said readable): never blocks */
static int dir_read(struct dir *d)
{
	ssize_t n;
	int got = -1;
	for (;;) {
		if (d->handback)
			n = recv_handback(d->in, d->buf, RELAY_BUF, &got);
		else
			n = d->in_sock ? recv(d->in, d->buf, RELAY_BUF, MSG_DONTWAIT) : read(d->in, d->buf, RELAY_BUF);
		if (n < 0 && d->handback)
			errno = (int)-n;
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
	if (got >= 0) {   /* the rest of this direction comes from the direct fd */
		*d->handback = got;
		d->handback = NULL;
		d->in = got;
		d->in_sock = true;
	} else if (n == 0) {
		d->eof = true;
	}
	d->off = 0;
	d->len = (size_t)n;
	return 0;
}

/* write what fits now (poll said writable): never blocks */
static int dir_write(struct dir *d)
{
	ssize_t n;
	for (;;) {
		if (d->out_sock) {
			n = send(d->out, d->buf + d->off, d->len - d->off, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			size_t want = d->len - d->off;
			n = write(d->out, d->buf + d->off, want < PIPE_CHUNK ? want : PIPE_CHUNK);
			if (n < 0 && errno == EPIPE) {
				/* consume the SIGPIPE this raised (blocked in rp_relay) */
				sigset_t s;
				struct timespec zero = { 0, 0 };
				sigemptyset(&s);
				sigaddset(&s, SIGPIPE);
				sigtimedwait(&s, NULL, &zero);
				errno = EPIPE;
			}
		}
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		return -errno;
	}
	d->off += (size_t)n;
	d->total += (uint64_t)n;
	if (d->off == d->len)
		d->off = d->len = 0;
	return 0;
}

/* input ended and all was written: pass the EOF on */
static void dir_finish(struct dir *d, int other_in)
{
	d->done = true;
	if (d->out_sock) {
		shutdown(d->out, SHUT_WR);
	} else if (d->out != other_in) {
		/* release the write end (the reader sees EOF) but keep the descriptor number valid */
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, d->out);
			close(nul);
		}
	}
}

/* the hand-back seen from the data mode: none yet, the direct fd came (our bytes for the switch
 * still go out), waiting for the switch's EOF (it is writing what it read from us), done */
enum hb { HB_NONE, HB_GOT, HB_WAIT, HB_DONE };

/* the switch's EOF after the marker: our direction now writes the direct fd. 0, -EAGAIN, -errno */
static int handback_eof(int sock, struct dir *up, int direct)
{
	uint8_t x;
	ssize_t n = recv(sock, &x, 1, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	if (n > 0)
		return -EPROTO;   /* nothing may follow the marker */
	up->out = direct;
	up->out_sock = true;
	if (up->done)   /* our input had ended: the switch left the FIN to us */
		shutdown(direct, SHUT_WR);
	return 0;
}

static int relay_loop(int in_a, int out_a, int in_b, int out_b, bool handback, struct rp_relay_stats *stats)
{
	struct dir d[2] = {
		{ .in = in_a, .out = out_b },
		{ .in = in_b, .out = out_a },
	};
	sigset_t pipe_set, old_set;
	int r = 0, direct = -1;
	enum hb hb = HB_NONE;

	if (in_a < 0 || out_a < 0 || in_b < 0 || out_b < 0)
		return -EBADF;
	if (handback)
		d[1].handback = &direct;
	for (int i = 0; i < 2; i++) {
		d[i].in_sock = is_socket(d[i].in);
		d[i].out_sock = is_socket(d[i].out);
		d[i].buf = malloc(RELAY_BUF);
	}
	if (!d[0].buf || !d[1].buf) {
		free(d[0].buf);
		free(d[1].buf);
		return -ENOMEM;
	}
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

	while (!d[0].done || !d[1].done || hb == HB_GOT || hb == HB_WAIT) {
		struct pollfd pfd[5];
		int idx[5], nfd = 0;
		if (hb == HB_NONE && direct >= 0)
			hb = HB_GOT;
		if (hb == HB_GOT && !d[0].len) {
			/* all we read before the marker is with the switch: it passes it on, then its EOF */
			if (!d[0].done)
				shutdown(in_b, SHUT_WR);
			hb = HB_WAIT;
		}
		if (hb == HB_WAIT) {
			pfd[nfd] = (struct pollfd){ .fd = in_b, .events = POLLIN };
			idx[nfd++] = 4;
		}
		for (int i = 0; i < 2; i++) {
			if (d[i].done || (i == 0 && hb == HB_WAIT))
				continue;
			if (d[i].len) {
				pfd[nfd] = (struct pollfd){ .fd = d[i].out, .events = POLLOUT };
				idx[nfd++] = i * 2 + 1;
			} else if (!d[i].eof) {
				pfd[nfd] = (struct pollfd){ .fd = d[i].in, .events = POLLIN };
				idx[nfd++] = i * 2;
			}
		}
		int pr = poll(pfd, (nfds_t)nfd, -1);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		for (int k = 0; k < nfd && !r; k++) {
			struct dir *x = &d[idx[k] / 2];
			if (!pfd[k].revents)
				continue;
			if (pfd[k].revents & POLLNVAL) {
				r = -EBADF;
				break;
			}
			if (idx[k] == 4) {
				if ((r = handback_eof(in_b, &d[0], direct)) == -EAGAIN)
					r = 0;
				else if (!r)
					hb = HB_DONE;
				continue;
			}
			r = (idx[k] & 1) ? dir_write(x) : dir_read(x);
			if (!r && x->eof && !x->len && !x->done)
				dir_finish(x, d[idx[k] / 2 ^ 1].in);
		}
		if (r)
			break;
	}
	if (stats) {
		stats->a_to_b = d[0].total;
		stats->b_to_a = d[1].total;
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	free(d[0].buf);
	free(d[1].buf);
	if (direct >= 0)
		close(direct);
	return r;
}

int rp_relay(int in_a, int out_a, int in_b, int out_b, struct rp_relay_stats *stats)
{
	return relay_loop(in_a, out_a, in_b, out_b, false, stats);
}

int rp_relay_handback(int in_a, int out_a, int sock, struct rp_relay_stats *stats)
{
	return relay_loop(in_a, out_a, sock, sock, true, stats);
}

int rp_fd_stdio(int sock, struct rp_relay_stats *stats)
{
	return rp_relay(STDIN_FILENO, STDOUT_FILENO, sock, sock, stats);
}

int rp_fd_exec(int sock, const char *cmd)
{
	int st;
	pid_t pid;
	if (sock < 0 || !cmd || !*cmd)
		return -EINVAL;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (dup2(sock, STDIN_FILENO) < 0 || dup2(sock, STDOUT_FILENO) < 0)
			_exit(127);
		if (sock > STDERR_FILENO)
			close(sock);
		/* the child gets a blocking socket whatever the caller used */
		int fl = fcntl(STDIN_FILENO, F_GETFL);
		if (fl >= 0)
			fcntl(STDIN_FILENO, F_SETFL, fl & ~O_NONBLOCK);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -ECHILD;
}

int rp_forward_listen(const char *spec, int backlog)
{
	char host[64] = "127.0.0.1";
	const char *colon, *port_s = spec;
	unsigned long port;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, one = 1;

	if (!spec || !*spec)
		return -EINVAL;
	colon = strrchr(spec, ':');
	if (colon) {
		size_t hl = (size_t)(colon - spec);
		if (hl == 0 || hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, spec, hl);
		host[hl] = 0;
		port_s = colon + 1;
	}
	if (rp_parse_ulong(port_s, 1, 65535, &port) || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, backlog > 0 ? backlog : 64)) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

struct fwd {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned running;
	struct rp_forward_stats st;
	rp_dial_fn dial;
	void *ctx;
	bool handback;
};

struct fwd_job {
	struct fwd *f;
	int cfd;
};

static void *fwd_thread(void *arg)
{
	struct fwd_job *j = arg;
	struct fwd *f = j->f;
	struct rp_relay_stats rs = { 0 };
	int r, rfd = f->dial(f->ctx);
	if (rfd >= 0) {
		r = relay_loop(j->cfd, j->cfd, rfd, rfd, f->handback, &rs);
		close(rfd);
	} else {
		r = rfd;
	}
	close(j->cfd);
	pthread_mutex_lock(&f->mu);
	if (rfd < 0)
		f->st.dial_failed++;
	else if (r)
		f->st.failed++;
	else
		f->st.completed++;
	f->st.up_bytes += rs.a_to_b;
	f->st.down_bytes += rs.b_to_a;
	f->running--;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	free(j);
	return NULL;
}

int rp_forward(int lfd, rp_dial_fn dial, void *ctx, const struct rp_forward_opts *opts,
	       struct rp_forward_stats *stats)
{
	static const struct rp_forward_opts defaults = { .stop_fd = -1 };
	const struct rp_forward_opts *o = opts ? opts : &defaults;
	unsigned maxpar = o->max_parallel ? o->max_parallel : 64;
	struct fwd f = { .dial = dial, .ctx = ctx, .handback = o->handback };
	pthread_attr_t attr;
	int r = 0;

	if (lfd < 0 || !dial)
		return -EINVAL;
	pthread_mutex_init(&f.mu, NULL);
	pthread_cond_init(&f.cv, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

	for (;;) {
		if (o->max_clients && f.st.accepted >= o->max_clients)
			break;
		pthread_mutex_lock(&f.mu);
		while (f.running >= maxpar)
			pthread_cond_wait(&f.cv, &f.mu);
		pthread_mutex_unlock(&f.mu);

		struct pollfd pfd[2] = { { .fd = lfd, .events = POLLIN }, { .fd = o->stop_fd, .events = POLLIN } };
		int pr = poll(pfd, o->stop_fd >= 0 ? 2 : 1, -1);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (o->stop_fd >= 0 && pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN)) {
			if (pfd[0].revents & (POLLERR | POLLNVAL)) {
				r = -EBADF;
				break;
			}
			continue;
		}
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* out of resources: wait for a relay to finish instead of spinning */
				pthread_mutex_lock(&f.mu);
				if (f.running)
					pthread_cond_wait(&f.cv, &f.mu);
				pthread_mutex_unlock(&f.mu);
				continue;
			}
			r = -errno;
			break;
		}
		struct fwd_job *j = malloc(sizeof(*j));
		pthread_t th;
		if (!j) {
			close(cfd);
			continue;
		}
		*j = (struct fwd_job){ .f = &f, .cfd = cfd };
		pthread_mutex_lock(&f.mu);
		f.st.accepted++;
		f.running++;
		pthread_mutex_unlock(&f.mu);
		if (pthread_create(&th, &attr, fwd_thread, j)) {
			close(cfd);
			free(j);
			pthread_mutex_lock(&f.mu);
			f.running--;
			f.st.failed++;
			pthread_mutex_unlock(&f.mu);
		}
	}
	pthread_mutex_lock(&f.mu);
	while (f.running)
		pthread_cond_wait(&f.cv, &f.mu);
	pthread_mutex_unlock(&f.mu);
	if (stats)
		*stats = f.st;
	pthread_attr_destroy(&attr);
	pthread_cond_destroy(&f.cv);
	pthread_mutex_destroy(&f.mu);
	return r;
}
