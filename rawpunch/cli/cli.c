/* SPDX-License-Identifier: MIT */
#include "rawpunch/cli/cli.h"
#include "rawpunch/base/privs.h"
#include "rawpunch/rendezvous/proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int rp_err(const char *fmt, ...)
{
	va_list ap;
	fputs("rawpunch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int rp_usage_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "rawpunch %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nhint: rawpunch %s --help\n", cmd);
	return 2;
}

void rp_hint(const char *fmt, ...)
{
	va_list ap;
	fputs("hint: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int rp_err_errno(int neg_errno, const char *what)
{
	int e = neg_errno < 0 ? -neg_errno : neg_errno;
	rp_err("%s: %s", what, strerror(e));
	if (e == EPERM || e == EACCES)
		rp_hint("raw sockets, capture and nftables need CAP_NET_RAW and CAP_NET_ADMIN: run as root, or "
			"'sudo setcap cap_net_raw,cap_net_admin+ep $(command -v rawpunch)'");
	return 1;
}

int rp_secret_read(const char *cmd, const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;
	if (!f)
		return rp_usage_err(cmd, "--secret-file %s: %s", path, strerror(errno));
	if (!(b = malloc(4097))) {
		fclose(f);
		return rp_err("out of memory");
	}
	n = fread(b, 1, 4097, f);
	fclose(f);
	if (n > 4096) {
		rp_secret_free(b, n);
		return rp_usage_err(cmd, "--secret-file %s: larger than 4096 bytes", path);
	}
	if (n && b[n - 1] == '\n')
		n--;
	unsigned bits = rv_secret_bits(b, n);
	if (n < RV_SECRET_MIN || bits < RV_SECRET_BITS) {
		rp_secret_free(b, n);
		if (n < RV_SECRET_MIN)
			rp_err("%s: --secret-file %s: %zu bytes; want at least %u random bytes", cmd, path, n, RV_SECRET_MIN);
		else
			rp_err("%s: --secret-file %s: about %u bits of entropy; want at least %u (random bytes, not a "
			       "passphrase)", cmd, path, bits, RV_SECRET_BITS);
		rp_hint("whoever sees the session id, like the rendezvous server, can search a weak secret offline; "
			"make a good one with 'rawpunch secret NEWFILE'");
		return 2;
	}
	*out = b;
	*len = n;
	return 0;
}

void rp_secret_free(uint8_t *s, size_t len)
{
	if (!s)
		return;
	sodium_memzero(s, len);
	free(s);
}

int rp_user_check(const char *cmd, const char *user, uid_t *uid, gid_t *gid)
{
	uid_t u;
	gid_t g;
	int r = rp_privs_target(user, &u, &g, NULL, 0);
	if (r == -ENOENT)
		return rp_usage_err(cmd, "--user: no such user '%s'", user);
	if (r == -EPERM)
		return rp_usage_err(cmd, "--user %s: only root can become another user", user);
	if (r)
		return rp_err_errno(r, "--user");
	if (uid)
		*uid = u;
	if (gid)
		*gid = g;
	return 0;
}
