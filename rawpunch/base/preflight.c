/* SPDX-License-Identifier: MIT */
/* Pre-flight checks (preflight.h): one TCP connection to each server, all at once, before a command
 * sends anything else. */
#include "rawpunch/base/preflight.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"

#define PREFLIGHT_MAX 16

int rp_preflight_reach(const struct sockaddr_in *servers, unsigned n, int timeout_ms, int *err)
{
	struct pollfd p[PREFLIGHT_MAX];
	unsigned left = 0;
	int first = -1;
	if (!servers || !err || n > PREFLIGHT_MAX || timeout_ms <= 0)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		p[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		p[i].events = POLLOUT;
		p[i].revents = 0;
		err[i] = p[i].fd < 0 ? -errno : 0;
		if (!err[i] && connect(p[i].fd, (const struct sockaddr *)&servers[i], sizeof(servers[i])) < 0 &&
		    errno != EINPROGRESS)
			err[i] = -errno;
		if (err[i]) {
			if (p[i].fd >= 0)
				close(p[i].fd);
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
	return first;
}
