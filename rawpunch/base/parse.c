/* SPDX-License-Identifier: MIT */
#include "rawpunch/base/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rp_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;
	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int rp_parse_ipv4(const char *s, uint32_t *addr_net)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*addr_net = a.s_addr;
	return 0;
}

/* A host whose last label is a number ("1.2.3", "3232235777", "0x7f.1", "010.0.0.1") is an address
 * (no top-level domain is all digits, RFC 3696 2): getaddrinfo() would read it with inet_aton(), which
 * takes shorthand, octal and hex, and send to an address nobody typed. Such a host must be a dotted quad. */
static bool numeric_host(const char *host)
{
	size_t n = strlen(host), i;
	if (n && host[n - 1] == '.')
		n--;                                   /* "example.com." is a name: its last label counts */
	i = n;
	while (i && host[i - 1] != '.')
		i--;
	const char *l = host + i;                  /* the last label, n - i characters */
	size_t len = n - i;
	bool hex = len >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X');
	if (!len)
		return false;
	for (size_t k = hex ? 2 : 0; k < len; k++)
		if (!(hex ? isxdigit((unsigned char)l[k]) : isdigit((unsigned char)l[k])))
			return false;
	return true;
}

int rp_parse_hostport(const char *s, uint16_t default_port, struct sockaddr_in *out)
{
	char host[256];
	const char *colon = strrchr(s, ':');
	unsigned long port = default_port;
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = 0;
	if (colon) {
		if (rp_parse_ulong(colon + 1, 1, 65535, &port))
			return -EINVAL;
	} else if (!default_port) {
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &out->sin_addr) == 1)
		return 0;
	if (numeric_host(host))
		return -EINVAL;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return -EHOSTUNREACH;
	out->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
	freeaddrinfo(res);
	return 0;
}

int rp_parse_ports(const char *s, uint16_t *ports, int cap)
{
	int n = 0;
	const char *p = s;
	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		char *end;
		unsigned long lo, hi;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		lo = strtoul(p, &end, 10);
		hi = lo;
		if (*end == '-') {
			p = end + 1;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			hi = strtoul(p, &end, 10);
		}
		if (lo < 1 || hi > 65535 || lo > hi)
			return -ERANGE;
		for (unsigned long v = lo; v <= hi; v++) {
			if (n >= cap)
				return -E2BIG;
			ports[n++] = (uint16_t)v;
		}
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		p = end;
	}
	return n;
}
