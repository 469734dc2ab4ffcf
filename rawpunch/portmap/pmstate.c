/* SPDX-License-Identifier: MIT */
/* Port mapping records on disk and the sweep after a killed holder (see pmstate.h). */
#include "rawpunch/portmap/pmstate.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/io.h"

static atomic_uint record_seq;

static const char *const proto_names[RP_PM_NPROTO] = { "pcp", "natpmp", "upnp" };

const char *rp_pm_proto_name(enum rp_pm_proto p)
{
	return (unsigned)p < RP_PM_NPROTO ? proto_names[p] : "?";
}

int rp_pm_proto_parse(const char *s, enum rp_pm_proto *p)
{
	for (unsigned i = 0; s && i < RP_PM_NPROTO; i++)
		if (!strcmp(s, proto_names[i])) {
			*p = (enum rp_pm_proto)i;
			return 0;
		}
	return -EINVAL;
}

static const char *ip(uint32_t a, char *b)
{
	struct in_addr in = { .s_addr = a };
	return inet_ntop(AF_INET, &in, b, INET_ADDRSTRLEN);
}

int rp_pm_record_format(const struct rp_pm_record *r, char *buf, size_t cap)
{
	char g[INET_ADDRSTRLEN], i[INET_ADDRSTRLEN], e[INET_ADDRSTRLEN], p[INET_ADDRSTRLEN], nonce[25];
	int n;
	if (!r || !buf || (unsigned)r->proto >= RP_PM_NPROTO)
		return -EINVAL;
	if (strpbrk(r->upnp_control, "\n\r") || strpbrk(r->upnp_service, "\n\r"))
		return -EINVAL;
	for (unsigned k = 0; k < sizeof(r->nonce); k++)
		snprintf(nonce + 2 * k, 3, "%02x", r->nonce[k]);
	n = snprintf(buf, cap,
		     "rawpunch-portmap 1\n"
		     "pid=%ld\nstart=%llu\nnetns=%llu\nproto=%s\nipproto=%u\ngateway=%s\n"
		     "internal=%s:%u\nexternal=%s:%u\npeer=%s:%u\nnonce=%s\nexpires=%" PRIu64 "\n"
		     "upnp_control=%s\nupnp_service=%s\n",
		     r->pid, r->start, r->netns, proto_names[r->proto], r->ipproto, ip(r->gateway, g),
		     ip(r->internal_addr, i), r->internal_port, ip(r->external_addr, e), r->external_port,
		     ip(r->peer_addr, p), r->peer_port, nonce, r->expires, r->upnp_control, r->upnp_service);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}

static int parse_ulong(const char *v, unsigned long long max, unsigned long long *out)
{
	char *end;
	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end || x > max)
		return -1;
	*out = x;
	return 0;
}

static int parse_addr_port(const char *v, uint32_t *addr, uint16_t *port)
{
	char a[INET_ADDRSTRLEN];
	const char *c = strrchr(v, ':');
	unsigned long long p;
	struct in_addr in;
	if (!c || (size_t)(c - v) >= sizeof(a))
		return -1;
	memcpy(a, v, (size_t)(c - v));
	a[c - v] = 0;
	if (inet_pton(AF_INET, a, &in) != 1 || parse_ulong(c + 1, 65535, &p))
		return -1;
	*addr = in.s_addr;
	*port = (uint16_t)p;
	return 0;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One "key=value" line. Returns 0, or -1 when the line is bad. *have gets a bit per key. */
static int parse_line(char *line, struct rp_pm_record *r, unsigned *have)
{
	char *eq = strchr(line, '=');
	unsigned long long x;
	struct in_addr in;
	if (!eq)
		return -1;
	*eq = 0;
	const char *k = line, *v = eq + 1;
	if (!strcmp(k, "pid")) {
		if (parse_ulong(v, 0x7fffffff, &x) || !x)
			return -1;
		r->pid = (long)x;
		*have |= 1;
	} else if (!strcmp(k, "start")) {
		if (parse_ulong(v, ~0ull, &r->start))
			return -1;
		*have |= 2;
	} else if (!strcmp(k, "netns")) {
		if (parse_ulong(v, ~0ull, &r->netns))
			return -1;
		*have |= 4;
	} else if (!strcmp(k, "proto")) {
		if (rp_pm_proto_parse(v, &r->proto))
			return -1;
		*have |= 8;
	} else if (!strcmp(k, "ipproto")) {
		if (parse_ulong(v, 255, &x))
			return -1;
		r->ipproto = (uint8_t)x;
		*have |= 16;
	} else if (!strcmp(k, "gateway")) {
		if (inet_pton(AF_INET, v, &in) != 1)
			return -1;
		r->gateway = in.s_addr;
		*have |= 32;
	} else if (!strcmp(k, "internal")) {
		if (parse_addr_port(v, &r->internal_addr, &r->internal_port))
			return -1;
		*have |= 64;
	} else if (!strcmp(k, "external")) {
		if (parse_addr_port(v, &r->external_addr, &r->external_port))
			return -1;
		*have |= 128;
	} else if (!strcmp(k, "peer")) {
		if (parse_addr_port(v, &r->peer_addr, &r->peer_port))
			return -1;
	} else if (!strcmp(k, "nonce")) {
		if (strlen(v) != 2 * sizeof(r->nonce))
			return -1;
		for (unsigned i = 0; i < sizeof(r->nonce); i++) {
			int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return -1;
			r->nonce[i] = (uint8_t)(hi << 4 | lo);
		}
	} else if (!strcmp(k, "expires")) {
		if (parse_ulong(v, ~0ull, &x))
			return -1;
		r->expires = x;
		*have |= 256;
	} else if (!strcmp(k, "upnp_control")) {
		if (strlen(v) >= sizeof(r->upnp_control))
			return -1;
		strcpy(r->upnp_control, v);
	} else if (!strcmp(k, "upnp_service")) {
		if (strlen(v) >= sizeof(r->upnp_service))
			return -1;
		strcpy(r->upnp_service, v);
	}   /* unknown keys: a later version's; ignored */
	return 0;
}

int rp_pm_record_parse(const char *buf, size_t len, struct rp_pm_record *r)
{
	static const char magic[] = "rawpunch-portmap 1\n";
	char text[2048], *save = NULL, *line;
	unsigned have = 0;
	if (!buf || !r)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	if (len >= sizeof(text) || len < sizeof(magic) - 1 || memcmp(buf, magic, sizeof(magic) - 1) ||
	    memchr(buf, 0, len))
		return -EBADMSG;
	memcpy(text, buf + sizeof(magic) - 1, len - (sizeof(magic) - 1));
	text[len - (sizeof(magic) - 1)] = 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (parse_line(line, r, &have))
			return -EBADMSG;
	if (have != 511 || !r->internal_port)
		return -EBADMSG;
	if (r->proto == RP_PM_UPNP && (strncmp(r->upnp_control, "http://", 7) || !r->upnp_service[0]))
		return -EBADMSG;
	return 0;
}

int rp_pm_state_dir(char *dir, size_t cap)
{
	const char *x = getenv("XDG_RUNTIME_DIR"), *rd = getenv("RAWPUNCH_RUNTIME_DIR");
	int n;
	if (rd && rd[0] == '/')          /* the CLI made it for the user the command runs as */
		n = snprintf(dir, cap, "%s", rd);
	else if (geteuid() == 0)
		n = snprintf(dir, cap, "/run/rawpunch");
	else if (x && x[0] == '/')
		n = snprintf(dir, cap, "%s/rawpunch", x);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

unsigned long long rp_pm_netns(void)
{
	/* The namespace's cookie (Linux >= 5.14) is never reused until reboot (and /run is emptied then);
	 * an inode number is, once the namespace is gone, so it is only the fallback. Bit 63 tells
	 * them apart. */
	uint64_t cookie = 0;
	socklen_t l = sizeof(cookie);
	struct stat st;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		int r = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &l);
		close(fd);
		if (!r && l == sizeof(cookie) && cookie && !(cookie >> 63))
			return cookie;
	}
	return stat("/proc/self/ns/net", &st) ? 0 : (unsigned long long)st.st_ino | 1ull << 63;
}

int rp_pm_proc_start(long pid, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	/* after "pid (comm) ": state is field 3, starttime field 22 */
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	if (sscanf(p, " %llu", &v) != 1)
		return -EIO;
	if (start)
		*start = v;
	return 0;
}

bool rp_pm_holder_alive(const struct rp_pm_record *r)
{
	unsigned long long st;
	if (!r || r->pid <= 0)
		return false;
	if (kill((pid_t)r->pid, 0) && errno == ESRCH)
		return false;
	if (rp_pm_proc_start(r->pid, &st))
		return false;
	return st == r->start;
}

static int write_atomic(const char *path, const struct rp_pm_record *r)
{
	char text[2048];
	int n = rp_pm_record_format(r, text, sizeof(text));
	return n < 0 ? n : rp_io_write_file_atomic(path, text, (size_t)n, 0600);
}

int rp_pm_record_save(const char *dir, const struct rp_pm_record *r, char *path, size_t cap)
{
	struct stat st;
	if (!dir || !r || !path)
		return -EINVAL;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	for (int tries = 0; tries < 1000; tries++) {
		unsigned k = atomic_fetch_add(&record_seq, 1u);
		int n = snprintf(path, cap, "%s/pm-%llu-%ld-%u.map", dir, r->netns, r->pid, k);
		if (n < 0 || (size_t)n >= cap)
			return -ENAMETOOLONG;
		if (access(path, F_OK) == 0)
			continue;            /* a record of an earlier process with this pid: keep it */
		return write_atomic(path, r);
	}
	return -EEXIST;
}

int rp_pm_record_update(const char *path, const struct rp_pm_record *r)
{
	if (!path || !path[0] || !r)
		return -EINVAL;
	return write_atomic(path, r);
}

static int read_file(int dfd, const char *name, char *buf, size_t cap, size_t *len)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;
	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap);
	close(fd);
	if (n < 0)
		return -errno;
	*len = (size_t)n;
	return 0;
}

int rp_pm_sweep_dir(const char *dir, unsigned long long netns, uint16_t only_port, rp_pm_undo_fn undo,
		    void *arg, struct rp_pm_sweep *st)
{
	struct rp_pm_sweep local;
	struct dirent *de;
	DIR *d;
	int removed = 0;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!dir)
		return -EINVAL;
	if (!netns)
		netns = rp_pm_netns();
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	uint64_t now = (uint64_t)time(NULL);
	while ((de = readdir(d))) {
		unsigned long long ns;
		long pid;
		unsigned k;
		int used = 0;
		char buf[2048];
		size_t len = 0;
		struct rp_pm_record r;
		if (sscanf(de->d_name, "pm-%llu-%ld-%u.map%n", &ns, &pid, &k, &used) != 3 || de->d_name[used] != 0)
			continue;           /* not a record */
		if (ns != netns) {
			/* another namespace's (perhaps one deleted since): only an expired record of a dead
			 * holder may go, which needs nothing from its gateway */
			if (!read_file(dirfd(d), de->d_name, buf, sizeof(buf), &len) && !rp_pm_record_parse(buf, len, &r) &&
			    r.expires <= now && !rp_pm_holder_alive(&r) && !unlinkat(dirfd(d), de->d_name, 0)) {
				st->expired++;
				removed++;
			}
			continue;
		}
		if (read_file(dirfd(d), de->d_name, buf, sizeof(buf), &len) ||
		    rp_pm_record_parse(buf, len, &r) || r.pid != pid || r.netns != ns) {
			/* unreadable: remove it only when the pid in its name is gone */
			if (kill((pid_t)pid, 0) && errno == ESRCH && !unlinkat(dirfd(d), de->d_name, 0)) {
				st->bad++;
				removed++;
			}
			continue;
		}
		if (only_port && r.internal_port != only_port)
			continue;
		st->seen++;
		if (rp_pm_holder_alive(&r)) {
			st->live++;
			st->live_pid = r.pid;
			continue;
		}
		if (r.expires <= now) {
			if (!unlinkat(dirfd(d), de->d_name, 0)) {
				st->expired++;
				removed++;
			}
			continue;
		}
		int e = undo ? undo(&r, arg) : -ENOSYS;
		if (e == 0 || e == -ENOENT) {
			if (!unlinkat(dirfd(d), de->d_name, 0)) {
				st->undone++;
				removed++;
			}
		} else {
			st->failed++;
			st->last_err = e;
		}
	}
	closedir(d);
	return removed;
}
