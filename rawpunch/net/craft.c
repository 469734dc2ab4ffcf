/* SPDX-License-Identifier: MIT */
/* Segment crafting with libnet (see craft.h). */
#include "rawpunch/net/craft.h"

#include <errno.h>
#include <fcntl.h>
#include <libnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "userstack/cksum.h"
#include "userstack/extract.h"

struct rp_craft {
	libnet_t *l;
	bool nosend;
	libnet_ptag_t t_opts, t_tcp, t_ip;
	size_t cur_optlen, cur_paylen;   /* shape the ptags were built for */
	bool built;
	struct rp_craft_stats st;
	char err[LIBNET_ERRBUF_SIZE + 64];
};

static void set_err(struct rp_craft *c, const char *what)
{
	snprintf(c->err, sizeof(c->err), "%s: %s", what, c->l ? libnet_geterror(c->l) : "");
}

int rp_craft_open(struct rp_craft **out, unsigned flags, char *err, size_t errlen)
{
	char ebuf[LIBNET_ERRBUF_SIZE] = "";
	struct rp_craft *c;
	int e;

	if (!out)
		return -EINVAL;
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->nosend = flags & RP_CRAFT_NOSEND;
	errno = 0;
	c->l = libnet_init(c->nosend ? LIBNET_NONE : LIBNET_RAW4_ADV, NULL, ebuf);
	if (!c->l) {
		/* libnet's cleanup clobbers errno; its message says what happened */
		size_t n = strlen(ebuf);
		while (n && (ebuf[n - 1] == '\n' || ebuf[n - 1] == ' '))
			ebuf[--n] = 0;
		e = strstr(ebuf, "not permitted") ? EPERM : strstr(ebuf, "ermission denied") ? EACCES
		    : errno ? errno : EIO;
		if (err && errlen)
			snprintf(err, errlen, "libnet_init: %s", ebuf);
		free(c);
		return -e;
	}
	if (!c->nosend) {
		uint32_t mark = RP_CRAFT_MARK;
		int fd = libnet_getfd(c->l);
		/* (libnet's raw socket is not close-on-exec: no command a data mode runs may inherit it) */
		if (fd < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
			e = fd < 0 ? EBADF : errno;
			if (err && errlen)
				snprintf(err, errlen, "SO_MARK on the raw socket: %s", strerror(e));
			libnet_destroy(c->l);
			free(c);
			return -e;
		}
	}
	*out = c;
	return 0;
}

void rp_craft_close(struct rp_craft *c)
{
	if (!c)
		return;
	if (c->l)
		libnet_destroy(c->l);
	free(c);
}

int rp_craft_fd(const struct rp_craft *c)
{
	return c && !c->nosend ? libnet_getfd(c->l) : -1;
}

const char *rp_craft_errmsg(const struct rp_craft *c)
{
	return c ? c->err : "";
}

void rp_craft_stats(const struct rp_craft *c, struct rp_craft_stats *st)
{
	if (c && st)
		*st = c->st;
}

/* Option bytes for s into buf (padded to 4 with EOL); length or -EINVAL. */
static int seg_opts(const struct rp_seg *s, uint8_t *buf)
{
	int n;
	if (s->raw_opts) {
		if (s->raw_opts_len > TCPOPT_MAXLEN)
			return -EINVAL;
		memcpy(buf, s->raw_opts, s->raw_opts_len);
		n = (int)s->raw_opts_len;
		while (n % 4)
			buf[n++] = 0;    /* EOL padding */
		return n;
	}
	n = tcpopt_build(&s->opts, buf, TCPOPT_MAXLEN);
	return n < 0 ? -EINVAL : n;
}

static int seg_check(const struct rp_seg *s)
{
	if (!s || !s->saddr || !s->daddr || !s->sport || !s->dport)
		return -EINVAL;
	if (s->paylen > RP_CRAFT_MAXPAY || (s->paylen && !s->payload))
		return -EINVAL;
	return 0;
}

int rp_craft_len(const struct rp_seg *s)
{
	uint8_t ob[TCPOPT_MAXLEN];
	int e = seg_check(s), ol;
	if (e)
		return e;
	ol = seg_opts(s, ob);
	if (ol < 0)
		return ol;
	if (20u + 20u + (size_t)ol + s->paylen > 65535u)
		return -EINVAL;
	return 40 + ol + (int)s->paylen;
}

/* Build or re-stamp the pblocks for s. libnet 1.1.x order: options, TCP, IPv4. */
static int stamp(struct rp_craft *c, const struct rp_seg *s)
{
	uint8_t ob[TCPOPT_MAXLEN];
	int ol, e = seg_check(s);
	size_t tcplen, iplen;

	if (e)
		return e;
	ol = seg_opts(s, ob);
	if (ol < 0)
		return ol;
	tcplen = 20u + (size_t)ol + s->paylen;
	iplen = 20u + tcplen;
	if (iplen > 65535u)
		return -EINVAL;
	if (c->built && ((size_t)ol != c->cur_optlen || s->paylen != c->cur_paylen)) {
		/* Shape change: libnet 1.1.6 does not reliably resize an options pblock in place. */
		libnet_clear_packet(c->l);
		c->t_opts = c->t_tcp = c->t_ip = 0;
		c->built = false;
		c->st.rebuilds++;
	}
	if (ol > 0) {
		c->t_opts = libnet_build_tcp_options(ob, (uint32_t)ol, c->l, c->t_opts);
		if (c->t_opts == -1)
			goto fail;
	}
	c->t_tcp = libnet_build_tcp(s->sport, s->dport, s->seq, s->ack, s->flags, s->win, 0, s->urp,
				    (uint16_t)tcplen, s->paylen ? s->payload : NULL, (uint32_t)s->paylen,
				    c->l, c->t_tcp);
	if (c->t_tcp == -1)
		goto fail;
	c->t_ip = libnet_build_ipv4((uint16_t)iplen, s->tos, s->ip_id, s->no_df ? 0 : IP_DF,
				    s->ttl ? s->ttl : 64, IPPROTO_TCP, 0, s->saddr, s->daddr, NULL, 0,
				    c->l, c->t_ip);
	if (c->t_ip == -1)
		goto fail;
	c->built = true;
	c->cur_optlen = (size_t)ol;
	c->cur_paylen = s->paylen;
	return (int)iplen;
fail:
	set_err(c, "libnet build");
	libnet_clear_packet(c->l);
	c->t_opts = c->t_tcp = c->t_ip = 0;
	c->built = false;
	return -EINVAL;
}

int rp_craft_send(struct rp_craft *c, const struct rp_seg *s)
{
	int n, w;
	if (!c)
		return -EINVAL;
	if (c->nosend)
		return -EOPNOTSUPP;
	n = stamp(c, s);
	if (n < 0)
		return n;
	errno = 0;
	w = libnet_write(c->l);
	if (w < 0) {
		int e = errno ? errno : EIO;
		set_err(c, "libnet_write");
		c->st.errors++;
		return -e;
	}
	c->st.sent++;
	c->st.bytes += (uint64_t)w;
	return w;
}

int rp_craft_render(struct rp_craft *c, const struct rp_seg *s, uint8_t *buf, size_t cap)
{
	uint8_t *pkt = NULL;
	uint32_t len = 0;
	int n;
	if (!c || !buf)
		return -EINVAL;
	n = stamp(c, s);
	if (n < 0)
		return n;
	if ((size_t)n > cap)
		return -ENOSPC;
	/* libnet_adv_cull_packet() wants LIBNET_LINK_ADV in 1.1.6; coalescing is what it does inside
	 * and works in every mode (checksums included). */
	if (libnet_pblock_coalesce(c->l, &pkt, &len) == -1 || !pkt) {
		set_err(c, "libnet_pblock_coalesce");
		return -EIO;
	}
	if (len != (uint32_t)n) {
		snprintf(c->err, sizeof(c->err), "libnet rendered %u bytes, expected %d", len, n);
		free(pkt - c->l->aligner);
		return -EIO;
	}
	memcpy(buf, pkt, len);
	free(pkt - c->l->aligner);
	/* Fill the IPv4 checksum ourselves whatever libnet's mode did: a rendered packet is complete. */
	us_put_be16(buf + 10, us_cksum_ipv4(buf, 20));
	c->st.rendered++;
	return n;
}

void rp_seg_from_us(struct rp_seg *s, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport,
		    const struct us_out_seg *o)
{
	memset(s, 0, sizeof(*s));
	s->saddr = laddr;
	s->daddr = raddr;
	s->sport = lport;
	s->dport = rport;
	s->seq = o->seq;
	s->ack = o->ack;
	s->flags = o->flags;
	s->win = o->win;
	s->opts = o->opts;
	s->payload = o->payload;
	s->paylen = o->len;
}
