/* SPDX-License-Identifier: MIT */
#include "rawpunch/base/trace.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void rp_trace(rp_trace_fn fn, void *arg, const char *fmt, ...)
{
	char line[RP_TRACE_LINE_MAX];
	va_list ap;
	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fn(arg, line);
}

const char *rp_ip_str(uint32_t addr_net, char buf[INET_ADDRSTRLEN])
{
	struct in_addr in = { .s_addr = addr_net };
	if (!inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN))
		buf[0] = 0;
	return buf;
}

const char *rp_tcp_flags_str(uint8_t flags, char buf[RP_TCP_FLAGS_STRLEN])
{
	static const char names[] = "FSRPAUEC";
	int n = 0;
	for (int i = 0; i < 8; i++)
		if (flags & (1u << i))
			buf[n++] = names[i];
	buf[n] = 0;
	return buf;
}

const char *rp_trace_stamp(char buf[RP_TRACE_STAMP_LEN])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, RP_TRACE_STAMP_LEN, "%lld.%06ld", (long long)ts.tv_sec, ts.tv_nsec / 1000);
	return buf;
}
