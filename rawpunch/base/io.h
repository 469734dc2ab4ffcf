/* SPDX-License-Identifier: MIT */
/* Small I/O helpers shared by the handoff, the session's data mode, probe's gnuplot feed, the CLI's
 * secret and credential files, and the clients' TCP connections to their servers. */
#ifndef RP_IO_H
#define RP_IO_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sockaddr_in;

/* Write all len bytes to fd (socket, pipe, file or tty; blocking or not). Sockets are written with
 * MSG_NOSIGNAL (a closed peer is -EPIPE, never SIGPIPE); EINTR is retried; EAGAIN waits for POLLOUT
 * until deadline_ns (CLOCK_MONOTONIC, see rawpunch/base/clock.h; 0 = no deadline). 0, -ETIMEDOUT, or -errno
 * of the failing write (what was written before stays written). */
int rp_io_write_all(int fd, const void *buf, size_t len, uint64_t deadline_ns);

/* Read a whole small file (a secret, a credential or JSON file) into a new buffer of up to max bytes
 * plus a terminating NUL (free() it; wipe it first if it held a secret). 0 with *out and *len, -EFBIG
 * if the file has more than max bytes, -ENOMEM, or -errno of open/read. */
int rp_io_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* Replace path with len bytes at once: they go to "PATH.PID.tmp" (created with mode, less the umask;
 * never through a symlink), which is synced and renamed over path, so a reader sees the old file or
 * the whole new one. 0, or -errno (the temporary file is removed then). */
int rp_io_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

/* A TCP connection to `to` begun: a non-blocking, close-on-exec socket with TCP_NODELAY, bound to
 * local port lport first when it is not 0 (SO_REUSEADDR and SO_REUSEPORT: a port this process holds,
 * e.g. the punch port), its connect() under way (poll for POLLOUT, then SO_ERROR). The fd, or -errno
 * (nothing left open). */
int rp_io_connect_start(const struct sockaddr_in *to, uint16_t lport);

#endif
