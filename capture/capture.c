/* SPDX-License-Identifier: MIT */
/* Live capture with libpcap (see capture.h). */
#include "capture/capture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <poll.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SNAPLEN 256
#define DEFAULT_BUFSIZE (4 << 20)

struct rp_cap {
	pcap_t *p;
	pcap_dumper_t *dump;
	int linktype;
	int fd;
	bool offline;                 /* reading a file: no selectable fd, EOF at the end */
	bool eof;
	uint64_t frames, decoded, ignored, malformed, bad_csum, dumped;
	bool verify_csum;
	char err[PCAP_ERRBUF_SIZE];
};

static void seterr(struct rp_cap *c, const char *what, const char *msg)
{
	snprintf(c->err, sizeof(c->err), "%s: %s", what, msg && *msg ? msg : "failed");
}

static void copyerr(char *dst, size_t len, const char *src)
{
	if (dst && len)
		snprintf(dst, len, "%s", src);
}

/* pcap_activate()'s status -> -errno */
static int activate_errno(int st)
{
	switch (st) {
	case PCAP_ERROR_PERM_DENIED:
	case PCAP_ERROR_PROMISC_PERM_DENIED:
		return -EPERM;
	case PCAP_ERROR_NO_SUCH_DEVICE:
		return -ENODEV;
	case PCAP_ERROR_IFACE_NOT_UP:
		return -ENETDOWN;
	case PCAP_ERROR_RFMON_NOTSUP:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

static int dump_header(struct rp_cap *c, const char *what)
{
	/* Write the file header now: the file is valid (if empty) even if we die before a packet. */
	if (pcap_dump_flush(c->dump) < 0) {
		seterr(c, what, "flush failed");
		return -EIO;
	}
	return 0;
}

/* *took: the caller's dump_file is ours (closed by us) from here on, whatever happens */
static int open_dump(struct rp_cap *c, const struct rp_cap_opts *o, bool *took)
{
	if (o->dump_file) {
		*took = true;
		c->dump = pcap_dump_fopen(c->p, o->dump_file);   /* owns the FILE from here on */
		if (!c->dump) {
			fclose(o->dump_file);
			seterr(c, "dump", pcap_geterr(c->p));
			return -EIO;
		}
		return dump_header(c, "dump");
	}
	return o->dump_path ? rp_cap_dump_open(c, o->dump_path) : 0;
}

/* A pcap file as the source: the same events, timestamps and filter language as a live capture. */
static int open_offline(struct rp_cap *c, const struct rp_cap_opts *o, struct rp_cap **out, char *err,
			size_t errlen, bool *took)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	int r;
	errno = 0;
	c->p = pcap_open_offline_with_tstamp_precision(o->read_path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
	if (!c->p) {
		int e = errno;
		copyerr(err, errlen, ebuf);
		free(c);
		return e == ENOENT || e == EACCES || e == EISDIR ? -e : -EINVAL;   /* else: not a pcap file */
	}
	c->offline = true;
	c->linktype = pcap_datalink(c->p);
	if (o->filter && *o->filter && (r = rp_cap_set_filter(c, o->filter)) < 0) {
		copyerr(err, errlen, c->err);
		goto fail;
	}
	if ((r = open_dump(c, o, took)) < 0) {
		copyerr(err, errlen, c->err);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c->dump)
		pcap_dump_close(c->dump);
	pcap_close(c->p);
	free(c);
	return r;
}

static int cap_open(const struct rp_cap_opts *o, struct rp_cap **out, char *err, size_t errlen, bool *took)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	int r;

	if (o->snaplen < 0 || o->buffer_bytes < 0 || o->dir < RP_CAP_IN || o->dir > RP_CAP_INOUT) {
		copyerr(err, errlen, "bad capture options");
		return -EINVAL;
	}
	struct rp_cap *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->verify_csum = o->verify_csum;
	if (o->read_path)
		return open_offline(c, o, out, err, errlen, took);
	const char *dev = o->iface && *o->iface ? o->iface : "any";
	c->p = pcap_create(dev, ebuf);
	if (!c->p) {
		copyerr(err, errlen, ebuf);
		free(c);
		return -ENODEV;
	}
	if (pcap_set_snaplen(c->p, o->snaplen ? o->snaplen : DEFAULT_SNAPLEN) ||
	    pcap_set_buffer_size(c->p, o->buffer_bytes ? o->buffer_bytes : DEFAULT_BUFSIZE) ||
	    pcap_set_immediate_mode(c->p, 1) ||
	    pcap_set_promisc(c->p, o->promisc ? 1 : 0)) {
		copyerr(err, errlen, "pcap_set_*: cannot configure the handle");
		r = -EINVAL;
		goto fail;
	}
	/* Nanosecond stamps where the platform has them (Linux does); fall back silently. */
	(void)pcap_set_tstamp_precision(c->p, PCAP_TSTAMP_PRECISION_NANO);

	int st = pcap_activate(c->p);
	if (st < 0) {
		const char *m = pcap_geterr(c->p);
		char msg[PCAP_ERRBUF_SIZE + 64];
		snprintf(msg, sizeof(msg), "%s: %s", dev,
			 st == PCAP_ERROR_NO_SUCH_DEVICE ? "no such interface" : (m && *m ? m : pcap_statustostr(st)));
		copyerr(err, errlen, msg);
		r = activate_errno(st);
		goto fail;
	}
	/* libpcap's packet socket is not close-on-exec: a command a data mode runs (--exec) must not get
	 * a socket that sees the host's traffic */
	{
		int pfd = pcap_fileno(c->p), fl = pfd >= 0 ? fcntl(pfd, F_GETFD) : -1;
		if (fl < 0 || fcntl(pfd, F_SETFD, fl | FD_CLOEXEC) < 0) {
			copyerr(err, errlen, "packet socket: cannot set close-on-exec");
			r = -EIO;
			goto fail;
		}
	}
	pcap_direction_t d = o->dir == RP_CAP_OUT ? PCAP_D_OUT : o->dir == RP_CAP_INOUT ? PCAP_D_INOUT : PCAP_D_IN;
	if (pcap_setdirection(c->p, d) < 0) {
		copyerr(err, errlen, pcap_geterr(c->p));
		r = -EOPNOTSUPP;
		goto fail;
	}
	if (pcap_setnonblock(c->p, 1, ebuf) < 0) {
		copyerr(err, errlen, ebuf);
		r = -EIO;
		goto fail;
	}
	/* On "any", prefer SLL2 (it carries the interface index); SLL is the fallback. */
	if (!strcmp(dev, "any"))
		(void)pcap_set_datalink(c->p, DLT_LINUX_SLL2);
	c->linktype = pcap_datalink(c->p);
	c->fd = pcap_get_selectable_fd(c->p);
	if (c->fd < 0) {
		copyerr(err, errlen, "no selectable fd for this capture device");
		r = -EOPNOTSUPP;
		goto fail;
	}
	if (o->filter && *o->filter) {
		r = rp_cap_set_filter(c, o->filter);
		if (r < 0) {
			copyerr(err, errlen, c->err);
			goto fail;
		}
	}
	if ((r = open_dump(c, o, took)) < 0) {
		copyerr(err, errlen, c->err);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c->dump)
		pcap_dump_close(c->dump);   /* the header flush failed after the file was opened */
	pcap_close(c->p);
	free(c);
	return r;
}

int rp_cap_open(const struct rp_cap_opts *o, struct rp_cap **out, char *err, size_t errlen)
{
	static const struct rp_cap_opts defaults = { 0 };
	bool took = false;
	int r;
	if (!o)
		o = &defaults;
	if (!out)
		r = -EINVAL;
	else {
		*out = NULL;
		r = cap_open(o, out, err, errlen, &took);
	}
	if (r < 0 && o->dump_file && !took)
		fclose(o->dump_file);   /* the stream was given to us: closed on every failure too */
	return r;
}

void rp_cap_close(struct rp_cap *c)
{
	if (!c)
		return;
	if (c->dump) {
		pcap_dump_flush(c->dump);
		pcap_dump_close(c->dump);
	}
	if (c->p)
		pcap_close(c->p);
	free(c);
}

int rp_cap_set_filter(struct rp_cap *c, const char *expr)
{
	struct bpf_program prog;
	if (!c)
		return -EINVAL;
	if (!expr)
		expr = "";
	if (pcap_compile(c->p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		seterr(c, "bad filter", pcap_geterr(c->p));
		return -EINVAL;
	}
	int r = pcap_setfilter(c->p, &prog);
	pcap_freecode(&prog);
	if (r < 0) {
		seterr(c, "pcap_setfilter", pcap_geterr(c->p));
		return -EIO;
	}
	return 0;
}

int rp_cap_set_flows(struct rp_cap *c, const struct rp_flow *flows, size_t n)
{
	if (!c || !flows || n == 0 || n > RP_FILTER_MAX_FLOWS)
		return -EINVAL;
	size_t cap = rp_filter_maxlen(n);
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	int r = rp_filter_build(flows, n, buf, cap);
	if (r >= 0)
		r = rp_cap_set_filter(c, buf);
	else
		seterr(c, "filter", strerror(-r));
	free(buf);
	return r < 0 ? r : 0;
}

int rp_cap_set_tuple(struct rp_cap *c, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport)
{
	char expr[320], la[INET_ADDRSTRLEN], ra[INET_ADDRSTRLEN];
	if (!inet_ntop(AF_INET, &laddr, la, sizeof(la)) || !inet_ntop(AF_INET, &raddr, ra, sizeof(ra)))
		return -EINVAL;
	snprintf(expr, sizeof(expr), "tcp and ((src host %s and src port %u and dst host %s and dst port %u) or "
		 "(src host %s and src port %u and dst host %s and dst port %u))", la, lport, ra, rport, ra, rport, la,
		 lport);
	return rp_cap_set_filter(c, expr);
}

int rp_cap_dump_open(struct rp_cap *c, const char *path)
{
	if (!c)
		return -EINVAL;
	if (c->dump) {
		pcap_dump_flush(c->dump);
		pcap_dump_close(c->dump);
		c->dump = NULL;
	}
	if (!path)
		return 0;
	if (!*path)
		return -EINVAL;
	errno = 0;
	c->dump = pcap_dump_open(c->p, path);
	if (!c->dump) {
		int e = errno ? errno : EIO;
		seterr(c, path, pcap_geterr(c->p));
		return -e;
	}
	return dump_header(c, path);
}

int rp_cap_fd(const struct rp_cap *c)
{
	return c ? c->fd : -EINVAL;
}

int rp_cap_wait(struct rp_cap *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	if (c->offline)
		return c->eof ? -ENODATA : 1;   /* a file is always ready, until its end */
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	int r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return -errno;
	if (r > 0 && (pfd.revents & (POLLERR | POLLNVAL)))
		return -EIO;
	return r > 0 ? 1 : 0;
}

int rp_cap_next_raw(struct rp_cap *c, const uint8_t **frame, size_t *caplen, size_t *wirelen,
		    uint64_t *ts_ns)
{
	struct pcap_pkthdr *h;
	const u_char *data;
	if (!c || !frame || !caplen)
		return -EINVAL;
	int r = pcap_next_ex(c->p, &h, &data);
	if (r == 0)
		return 0;
	if (r == PCAP_ERROR_BREAK && c->offline) {
		c->eof = true;
		return -ENODATA;
	}
	if (r == PCAP_ERROR_BREAK)
		return -EINTR;
	if (r < 0) {
		seterr(c, "pcap_next_ex", pcap_geterr(c->p));
		return -EIO;
	}
	c->frames++;
	if (c->dump) {
		pcap_dump((u_char *)c->dump, h, data);
		/* flushed per packet: a crash loses nothing already seen */
		pcap_dump_flush(c->dump);
		c->dumped++;
	}
	*frame = data;
	*caplen = h->caplen;
	if (wirelen)
		*wirelen = h->len;
	if (ts_ns) {
		/* with PCAP_TSTAMP_PRECISION_NANO, tv_usec holds nanoseconds */
		uint64_t frac = (uint64_t)h->ts.tv_usec;
		if (pcap_get_tstamp_precision(c->p) != PCAP_TSTAMP_PRECISION_NANO)
			frac *= 1000;
		*ts_ns = (uint64_t)h->ts.tv_sec * 1000000000ull + frac;
	}
	return 1;
}

int rp_cap_next(struct rp_cap *c, struct rp_event *ev)
{
	if (!c || !ev)
		return -EINVAL;
	for (;;) {
		const uint8_t *frame;
		size_t caplen;
		uint64_t ts;
		int r = rp_cap_next_raw(c, &frame, &caplen, NULL, &ts);
		if (r <= 0)
			return r;
		r = rp_decode_ex(c->linktype, frame, caplen, c->verify_csum ? RP_DECODE_CSUM : 0, ev);
		if (r == 0 && (ev->ip_csum == RP_CSUM_BAD || ev->tcp_csum == RP_CSUM_BAD)) {
			c->bad_csum++;       /* the kernel would drop it: so do we */
			continue;
		}
		if (r == 0) {
			ev->ts_ns = ts;
			c->decoded++;
			return 1;
		}
		if (r == -ENOMSG)
			c->ignored++;
		else
			c->malformed++;
	}
}

int rp_cap_stats(struct rp_cap *c, struct rp_cap_stats *st)
{
	struct pcap_stat ps;
	if (!c || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	if (c->offline) {
		ps.ps_recv = (u_int)c->frames;   /* a file has no kernel counters: what we read */
		ps.ps_drop = ps.ps_ifdrop = 0;
	} else if (pcap_stats(c->p, &ps) < 0) {
		seterr(c, "pcap_stats", pcap_geterr(c->p));
		return -EIO;
	}
	st->received = ps.ps_recv;
	st->dropped = ps.ps_drop;
	st->ifdropped = ps.ps_ifdrop;
	st->frames = c->frames;
	st->decoded = c->decoded;
	st->ignored = c->ignored;
	st->malformed = c->malformed;
	st->bad_csum = c->bad_csum;
	st->dumped = c->dumped;
	return 0;
}

int rp_cap_linktype(const struct rp_cap *c)
{
	return c ? c->linktype : -EINVAL;
}

const char *rp_cap_errmsg(const struct rp_cap *c)
{
	return c ? c->err : "no capture handle";
}
