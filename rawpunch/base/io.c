/* SPDX-License-Identifier: MIT */
#include "rawpunch/base/io.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"

int rp_io_write_all(int fd, const void *buf, size_t len, uint64_t deadline_ns)
{
	const uint8_t *p = buf;
	bool sock = true;              /* until send() says ENOTSOCK */
	while (len) {
		ssize_t w = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
		if (w < 0 && sock && errno == ENOTSOCK) {
			sock = false;
			continue;
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			int ms = -1;
			if (deadline_ns) {
				uint64_t now = rp_mono_ns();
				if (now >= deadline_ns)
					return -ETIMEDOUT;
				uint64_t left = (deadline_ns - now + 999999u) / 1000000u;
				ms = left > 60000 ? 60000 : (int)left;   /* re-checked after each wake-up */
			}
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			if (poll(&pf, 1, ms) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int rp_io_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;
	int err;
	if (!f)
		return -errno;
	b = malloc(max + 1);
	if (!b) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(b, 1, max + 1, f);
	err = ferror(f) ? (errno ? -errno : -EIO) : 0;
	fclose(f);
	if (!err && n > max)
		err = -EFBIG;
	if (err) {
		free(b);
		return err;
	}
	b[n] = 0;
	*out = b;
	*len = n;
	return 0;
}

int rp_io_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[4096];
	int fd, e;
	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	e = rp_io_write_all(fd, buf, len, 0);
	if (!e && fsync(fd))
		e = -errno;
	if (close(fd) && !e)
		e = -errno;
	if (!e && rename(tmp, path))
		e = -errno;
	if (e)
		unlink(tmp);
	return e;
}

int rp_io_connect_start(const struct sockaddr_in *to, uint16_t lport)
{
	int one = 1, e, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (lport) {
		struct sockaddr_in l = { .sin_family = AF_INET, .sin_port = htons(lport) };
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
		    bind(fd, (const struct sockaddr *)&l, sizeof(l)))
			goto fail;
	}
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	e = -errno;
	close(fd);
	return e;
}
