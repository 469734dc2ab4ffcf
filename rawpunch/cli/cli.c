/* SPDX-License-Identifier: MIT */
#include "rawpunch/cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
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
