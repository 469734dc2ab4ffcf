/* SPDX-License-Identifier: MIT */
/* Pre-flight checks (preflight.h): one TCP connection to each server, all at once, before a command
 * sends anything else (kept on request). */
#include "rawpunch/base/preflight.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"

#define PREFLIGHT_MAX 16

/* A non-blocking socket connecting to s->addr (from s->lport): the fd, or -errno. */
static int start(struct rp_preflight_srv *s)
{
	int one = 1, e, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->lport) {
		struct sockaddr_in l = { .sin_family = AF_INET, .sin_port = htons(s->lport) };
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
		    bind(fd, (const struct sockaddr *)&l, sizeof(l)))
			goto fail;
	}
	s->t_start_ns = rp_mono_ns();
	if (connect(fd, (const struct sockaddr *)&s->addr, sizeof(s->addr)) < 0 && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	e = -errno;
	close(fd);
	return e;
}

int rp_preflight_check(struct rp_preflight_srv *s, unsigned n, int timeout_ms, int *err)
{
	struct pollfd p[PREFLIGHT_MAX];
	int kept[PREFLIGHT_MAX];
	unsigned left = 0;
	int first = -1;
	if (!s || !err || n > PREFLIGHT_MAX || timeout_ms <= 0)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		s[i].fd = kept[i] = -1;
		s[i].ms = 0;
		p[i].fd = start(&s[i]);
		p[i].events = POLLOUT;
		p[i].revents = 0;
		if (p[i].fd < 0) {
			err[i] = p[i].fd;
			p[i].fd = -1;       /* poll skips it */
		} else {
			err[i] = -ETIMEDOUT;   /* until it answers */
			left++;
		}
	}
	uint64_t end = rp_mono_ms() + (uint64_t)timeout_ms;
	while (left) {
		uint64_t now = rp_mono_ms();
		if (now >= end)
			break;
		int r = poll(p, n, (int)(end - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (unsigned i = 0; i < n; i++) {
			int e = 0;
			socklen_t el = sizeof(e);
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			if (getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &e, &el))
				e = errno;
			err[i] = -e;
			s[i].ms = (double)(rp_mono_ns() - s[i].t_start_ns) / 1e6;
			if (!e && s[i].keep)
				kept[i] = p[i].fd;   /* handed out below if every server accepted */
			else
				close(p[i].fd);
			p[i].fd = -1;
			left--;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (p[i].fd >= 0)
			close(p[i].fd);
		if (err[i] && first < 0)
			first = (int)i;
	}
	for (unsigned i = 0; i < n; i++) {
		if (kept[i] >= 0 && first < 0)
			s[i].fd = kept[i];
		else if (kept[i] >= 0)
			close(kept[i]);
	}
	return first;
}

int rp_preflight_reach(const struct sockaddr_in *servers, unsigned n, int timeout_ms, int *err)
{
	struct rp_preflight_srv s[PREFLIGHT_MAX];
	if (!servers || n > PREFLIGHT_MAX)
		return -EINVAL;
	memset(s, 0, sizeof(s));
	for (unsigned i = 0; i < n; i++)
		s[i].addr = servers[i];
	return rp_preflight_check(s, n, timeout_ms, err);
}
