/* SPDX-License-Identifier: MIT */
/* Output files opened the safe way (see outfile.h). */
#include "rawpunch/base/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rp_out_open(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;
	bool created = false;
	int fd;
	if (!path || !*path || !strcmp(path, "-") || path[0] == '|')
		return -EINVAL;
	/* O_NONBLOCK: a FIFO must not block the open; O_NOFOLLOW: a symlink fails with ELOOP */
	fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
		created = fd >= 0;
		if (fd < 0 && errno == EEXIST)   /* lost a race with whoever made it: check that one */
			fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	}
	if (fd < 0) {
		int e = errno;
		if (e == ENXIO)                  /* a FIFO with no reader */
			return -ENOTSUP;
		return -e;
	}
	if (fstat(fd, &st)) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -ENOTSUP;
	}
	if (!created) {
		if ((st.st_uid != uid && st.st_uid != geteuid()) || st.st_nlink != 1) {
			close(fd);
			return -EEXIST;
		}
		if (ftruncate(fd, 0)) {
			int e = errno;
			close(fd);
			return -e;
		}
	} else if (geteuid() == 0 && uid != 0 && fchown(fd, uid, gid)) {
		int e = errno;
		close(fd);
		unlink(path);
		return -e;
	}
	/* blocking from here on, like any file */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

FILE *rp_out_fopen(const char *path, uid_t uid, gid_t gid)
{
	int fd = rp_out_open(path, uid, gid);
	FILE *f;
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	if (!(f = fdopen(fd, "w"))) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return f;
}

const char *rp_out_strerror(int neg_errno)
{
	switch (-neg_errno) {
	case EINVAL: return "want a file name (no '-', no '|command')";
	case ELOOP: return "is a symbolic link (not followed)";
	case EISDIR: return "is a directory";
	case ENOTSUP: return "is not a regular file (FIFO, device or socket)";
	case EEXIST: return "exists and belongs to someone else (or has several links): not overwritten";
	case ENOENT: return "no such directory";
	default: return strerror(-neg_errno);
	}
}
