/* SPDX-License-Identifier: MIT */
/* SSDP M-SEARCH and its answers (see ssdp.h). */
#include "rawpunch/portmap/ssdp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int rp_ssdp_msearch(char *buf, size_t cap, const char *st, unsigned mx)
{
	int n;
	if (!buf || !st || !*st || strlen(st) > 256 || strpbrk(st, "\r\n") || mx < 1 || mx > 5)
		return -EINVAL;
	n = snprintf(buf, cap,
		     "M-SEARCH * HTTP/1.1\r\n"
		     "HOST: " RP_SSDP_GROUP ":%d\r\n"
		     "MAN: \"ssdp:discover\"\r\n"
		     "MX: %u\r\n"
		     "ST: %s\r\n"
		     "\r\n", RP_SSDP_PORT, mx, st);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}

static int fail(const char **why, const char *w)
{
	if (why)
		*why = w;
	return -EBADMSG;
}

/* Copy value v[0..n) trimmed of spaces/tabs into out (cap). */
static int copy_value(const char *v, size_t n, char *out, size_t cap)
{
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= cap)
		return -ENOSPC;
	memcpy(out, v, n);
	out[n] = 0;
	return 0;
}

int rp_ssdp_parse(const char *buf, size_t len, char *location, size_t loc_cap, char *st, size_t st_cap,
		  const char **why)
{
	static const char status[] = "HTTP/1.1 200";
	size_t off = 0;
	bool have_loc = false, end = false;
	if (why)
		*why = NULL;
	if (!buf || !location || !loc_cap)
		return -EINVAL;
	location[0] = 0;
	if (st && st_cap)
		st[0] = 0;
	if (len > RP_SSDP_MAX_MSG)
		return fail(why, "longer than an SSDP answer may be");
	if (len < sizeof(status) - 1 || memcmp(buf, status, sizeof(status) - 1))
		return fail(why, "not an HTTP/1.1 200 answer");
	/* skip the status line */
	while (off + 1 < len && !(buf[off] == '\r' && buf[off + 1] == '\n'))
		off++;
	if (off + 1 >= len)
		return fail(why, "status line without CRLF");
	off += 2;
	while (off < len) {
		size_t s = off, colon = 0, e;
		while (off + 1 < len && !(buf[off] == '\r' && buf[off + 1] == '\n')) {
			if ((unsigned char)buf[off] < 0x20 && buf[off] != '\t')
				return fail(why, "control character in a header");
			if (!colon && buf[off] == ':')
				colon = off;
			off++;
		}
		if (off + 1 >= len)
			return fail(why, "header line without CRLF");
		e = off;
		off += 2;
		if (e == s) {
			end = true;
			break;
		}
		if (!colon)
			return fail(why, "header line without a colon");
		size_t nl = colon - s;
		const char *v = buf + colon + 1;
		size_t vl = e - colon - 1;
		if (nl == 8 && !strncasecmp(buf + s, "LOCATION", 8)) {
			if (have_loc)
				continue;          /* the first one counts */
			int r = copy_value(v, vl, location, loc_cap);
			if (r)
				return r;
			have_loc = true;
		} else if (nl == 2 && !strncasecmp(buf + s, "ST", 2) && st && st_cap) {
			if (!st[0]) {
				int r = copy_value(v, vl, st, st_cap);
				if (r)
					return r;
			}
		}
	}
	if (!end)
		return fail(why, "no empty line after the headers");
	if (!have_loc)
		return fail(why, "no LOCATION header");
	if (strncmp(location, "http://", 7) || !location[7]) {
		location[0] = 0;
		return fail(why, "LOCATION is not an http:// URL");
	}
	for (const char *p = location; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f) {
			location[0] = 0;
			return fail(why, "LOCATION has spaces or non-ASCII bytes");
		}
	return 0;
}
