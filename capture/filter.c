/* SPDX-License-Identifier: MIT */
/* BPF filter-expression builder (pure; see filter.h). */
#include "capture/filter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The quoted IPv4 header starts at icmp[8]; its TCP header at icmp[8 + IHL*4]. */
#define QIHL "((icmp[8] & 0xf) << 2)"
#define QSPORT "icmp[8 + " QIHL ":2]"
#define QDPORT "icmp[10 + " QIHL ":2]"

/* Per-flow clause lengths are bounded; this is generous. */
#define FIXED_LEN 256
#define PER_FLOW_LEN 480

size_t rp_filter_maxlen(size_t n)
{
	return FIXED_LEN + n * PER_FLOW_LEN;
}

struct sb {
	char *buf;
	size_t cap, len;
	bool overflow;
};

__attribute__((format(printf, 2, 3)))
static void sb_add(struct sb *s, const char *fmt, ...)
{
	va_list ap;
	if (s->overflow)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= s->cap - s->len) {
		s->overflow = true;
		return;
	}
	s->len += (size_t)n;
}

static bool flow_ok(const struct rp_flow *f)
{
	if ((f->rport_lo == 0) != (f->rport_hi == 0))
		return false;
	return f->rport_lo <= f->rport_hi;
}

static bool tcp_wild(const struct rp_flow *f)
{
	return !f->laddr && !f->lport && !f->raddr && !f->rport_lo;
}

/* Inbound TCP of the flow: raddr:rport -> laddr:lport. */
static void tcp_clause(struct sb *s, const struct rp_flow *f)
{
	char a[INET_ADDRSTRLEN];
	const char *sep = "";
	sb_add(s, "(");
	if (f->raddr) {
		inet_ntop(AF_INET, &f->raddr, a, sizeof(a));
		sb_add(s, "%ssrc host %s", sep, a);
		sep = " and ";
	}
	if (f->laddr) {
		inet_ntop(AF_INET, &f->laddr, a, sizeof(a));
		sb_add(s, "%sdst host %s", sep, a);
		sep = " and ";
	}
	if (f->lport) {
		sb_add(s, "%sdst port %u", sep, f->lport);
		sep = " and ";
	}
	if (f->rport_lo && f->rport_lo == f->rport_hi)
		sb_add(s, "%ssrc port %u", sep, f->rport_lo);
	else if (f->rport_lo)
		sb_add(s, "%ssrc portrange %u-%u", sep, f->rport_lo, f->rport_hi);
	sb_add(s, ")");
}

/* ICMP error quoting our segment of the flow: inner laddr:lport -> raddr:rport. */
static void icmp_clause(struct sb *s, const struct rp_flow *f)
{
	const char *sep = "";
	sb_add(s, "(");
	if (f->laddr) {
		sb_add(s, "%sicmp[20:4] = 0x%08x", sep, ntohl(f->laddr));
		sep = " and ";
	}
	if (f->raddr) {
		sb_add(s, "%sicmp[24:4] = 0x%08x", sep, ntohl(f->raddr));
		sep = " and ";
	}
	if (f->lport) {
		sb_add(s, "%s" QSPORT " = %u", sep, f->lport);
		sep = " and ";
	}
	if (f->rport_lo && f->rport_lo == f->rport_hi)
		sb_add(s, "%s" QDPORT " = %u", sep, f->rport_lo);
	else if (f->rport_lo)
		sb_add(s, "%s" QDPORT " >= %u and " QDPORT " <= %u", sep, f->rport_lo, f->rport_hi);
	sb_add(s, ")");
}

int rp_filter_build(const struct rp_flow *flows, size_t n, char *buf, size_t cap)
{
	if (!flows || n == 0 || n > RP_FILTER_MAX_FLOWS || !buf || cap == 0)
		return -EINVAL;
	bool wild = false;
	for (size_t i = 0; i < n; i++) {
		if (!flow_ok(&flows[i]))
			return -EINVAL;
		wild |= tcp_wild(&flows[i]);
	}
	struct sb s = { buf, cap, 0, false };
	buf[0] = 0;

	/* TCP from the peers */
	if (wild) {
		sb_add(&s, "tcp");
	} else {
		sb_add(&s, "(tcp and (");
		for (size_t i = 0; i < n; i++) {
			if (i)
				sb_add(&s, " or ");
			tcp_clause(&s, &flows[i]);
		}
		sb_add(&s, "))");
	}
	/* ICMP errors (unreachable, source quench, time exceeded, parameter problem) quoting an
	 * unfragmented-or-first-fragment IPv4 header of a TCP segment we sent. */
	sb_add(&s, " or (icmp and (icmp[0] = 3 or icmp[0] = 4 or icmp[0] = 11 or icmp[0] = 12)"
		   " and icmp[17] = 6 and (icmp[14:2] & 0x1fff) = 0");
	if (!wild) {
		sb_add(&s, " and (");
		for (size_t i = 0; i < n; i++) {
			if (i)
				sb_add(&s, " or ");
			icmp_clause(&s, &flows[i]);
		}
		sb_add(&s, ")");
	}
	sb_add(&s, ")");
	if (s.overflow) {
		buf[0] = 0;
		return -ENOSPC;
	}
	return (int)s.len;
}
