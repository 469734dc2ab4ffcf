/* SPDX-License-Identifier: MIT */
/* Pre-flight checks (preflight.h): one TCP connection to each server, all at once, before a command
 * sends anything else (kept on request). */
#include "rawpunch/base/preflight.h"

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"

#define PREFLIGHT_MAX 16

/* A connection to s->addr (from s->lport) begun, its SYN's time noted: the fd, or -errno. */
static int start(struct rp_preflight_srv *s)
{
	s->t_start_ns = rp_mono_ns();
	return rp_io_connect_start(&s->addr, s->lport);
}

int rp_preflight_check(struct rp_preflight_srv *s, unsigned n, int timeout_ms, int hedge_ms, int *err)
{
	/* p[i]: server i's connection, p[n + i]: its hedge (from an ephemeral port) once hedge_ms passed */
	struct pollfd p[2 * PREFLIGHT_MAX];
	bool done[PREFLIGHT_MAX];
	uint64_t hedge_t0[PREFLIGHT_MAX];
	unsigned left = 0;
	int first = -1;
	if (!s || !err || n > PREFLIGHT_MAX || timeout_ms <= 0)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		s[i].fd = -1;
		s[i].ms = 0;
		p[n + i] = (struct pollfd){ .fd = -1, .events = POLLOUT };
		p[i] = (struct pollfd){ .fd = start(&s[i]), .events = POLLOUT };
		done[i] = p[i].fd < 0;
		if (p[i].fd < 0) {
			err[i] = p[i].fd;
			p[i].fd = -1;          /* poll skips it */
		} else {
			err[i] = -ETIMEDOUT;   /* until it answers */
			left++;
		}
	}
	uint64_t t0 = rp_mono_ms(), end = t0 + (uint64_t)timeout_ms;
	uint64_t hedge = hedge_ms > 0 && hedge_ms < timeout_ms ? t0 + (uint64_t)hedge_ms : 0;
	while (left) {
		uint64_t now = rp_mono_ms();
		if (now >= end)
			break;
		if (hedge && now >= hedge) {
			/* a lost SYN waits the kernel's 1 s: a second connection to each server not up yet */
			hedge = 0;
			for (unsigned i = 0; i < n; i++) {
				/* (not from a given port: its own connection is the one wanted, and one closed
				 * while connecting would leave its 4-tuple half-open at the server) */
				if (done[i] || s[i].lport)
					continue;
				struct rp_preflight_srv h = { .addr = s[i].addr };
				int fd = start(&h);
				if (fd >= 0) {
					p[n + i].fd = fd;
					hedge_t0[i] = h.t_start_ns;
				}
			}
		}
		int r = poll(p, 2 * n, (int)((hedge ? hedge : end) - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		for (unsigned k = 0; k < 2 * n; k++) {
			unsigned i = k % n;
			int e = 0;
			socklen_t el = sizeof(e);
			if (p[k].fd < 0 || !p[k].revents || done[i])
				continue;
			if (getsockopt(p[k].fd, SOL_SOCKET, SO_ERROR, &e, &el))
				e = errno;
			bool other_pending = p[k < n ? n + i : i].fd >= 0;
			if (e && other_pending) {   /* the other connection may still make it */
				close(p[k].fd);
				p[k].fd = -1;
				continue;
			}
			err[i] = -e;
			done[i] = true;
			left--;
			if (!e && k >= n) {
				/* the hedge is up: the server is reached, and its connection is the one kept */
				int t = p[i].fd;
				p[i].fd = p[k].fd;
				p[k].fd = t;
				s[i].t_start_ns = hedge_t0[i];
			}
			s[i].ms = (double)(rp_mono_ns() - s[i].t_start_ns) / 1e6;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (!done[i] || err[i]) {
			if (first < 0)
				first = (int)i;
		}
		if (p[n + i].fd >= 0)
			close(p[n + i].fd);
	}
	for (unsigned i = 0; i < n; i++) {
		if (done[i] && !err[i] && p[i].fd >= 0 && first < 0 && s[i].keep) {
			s[i].fd = p[i].fd;   /* up: the one that connected */
			continue;
		}
		if (p[i].fd >= 0)
			close(p[i].fd);
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
	return rp_preflight_check(s, n, timeout_ms, 0, err);
}
