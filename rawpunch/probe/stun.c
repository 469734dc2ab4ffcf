/* SPDX-License-Identifier: MIT */
#include "rawpunch/probe/stun.h"
#include "rawpunch/base/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING = 1, ST_SENDING, ST_READING, ST_DONE, ST_FAILED };

void rp_sin_str(const struct sockaddr_in *a, char *buf, size_t cap)
{
	char ip[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
}

static void to_sin(const struct rp_stun_addr *a, struct sockaddr_in *s)
{
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = a->v4;
	s->sin_port = htons(a->port);
}

static struct {
	pthread_mutex_t mu;
	int fd;                      /* -1 none */
	uint16_t lport;
	uint32_t laddr;              /* the address it is bound to (getsockname) */
	struct sockaddr_in server;
	uint64_t t_start_ns, connect_ns;
} pre = { PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, { 0 }, 0, 0 };

int rp_stun_preconnected(int fd, uint16_t local_port, const struct sockaddr_in *server, uint64_t t_start_ns,
			 uint64_t connect_ns)
{
	if (fd < 0 || !local_port || !server) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	struct sockaddr_in l = { 0 };
	socklen_t ll = sizeof(l);
	getsockname(fd, (struct sockaddr *)&l, &ll);
	rp_stun_preconnected_drop();
	pthread_mutex_lock(&pre.mu);
	pre.fd = fd;
	pre.laddr = l.sin_addr.s_addr;
	pre.lport = local_port;
	pre.server = *server;
	pre.t_start_ns = t_start_ns;
	pre.connect_ns = connect_ns;
	pthread_mutex_unlock(&pre.mu);
	return 0;
}

void rp_stun_preconnected_drop(void)
{
	pthread_mutex_lock(&pre.mu);
	if (pre.fd >= 0)
		close(pre.fd);
	pre.fd = -1;
	pthread_mutex_unlock(&pre.mu);
}

/* The pre-connected socket for (local_addr (0: any), local_port, server), taken out of the slot; -1
 * none. */
static int take_pre(uint32_t local_addr, uint16_t local_port, const struct sockaddr_in *server, uint64_t *t_start_ns,
		    uint64_t *connect_ns)
{
	int fd = -1;
	pthread_mutex_lock(&pre.mu);
	if (pre.fd >= 0 && local_port && pre.lport == local_port && (!local_addr || local_addr == pre.laddr) &&
	    pre.server.sin_addr.s_addr == server->sin_addr.s_addr &&
	    pre.server.sin_port == server->sin_port) {
		fd = pre.fd;
		*t_start_ns = pre.t_start_ns;
		*connect_ns = pre.connect_ns;
		pre.fd = -1;
	}
	pthread_mutex_unlock(&pre.mu);
	return fd;
}

int rp_stun_conn_start(struct rp_stun_conn *c, const struct sockaddr_in *server,
		       const struct rp_stun_opts *o)
{
	static const struct rp_stun_opts defaults = { 0 };
	int one = 1, r;
	if (!o)
		o = &defaults;
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (!server || server->sin_family != AF_INET || !server->sin_port)
		return -EINVAL;
	c->close = o->close;
	c->res.server = *server;
	if (getrandom(c->txid, sizeof(c->txid), 0) != (ssize_t)sizeof(c->txid))
		return errno ? -errno : -EIO;
	struct rp_stun_build b = { .change_flags = o->change_flags, .software = o->software,
				   .fingerprint = !o->no_fingerprint };
	r = rp_stun_build_binding(c->req, sizeof(c->req), c->txid, &b);
	if (r < 0)
		return r;
	c->req_len = (size_t)r;

	int tmo = o->timeout_ms > 0 ? o->timeout_ms : 3000;
	uint64_t t_pre, connect_pre;
	int fd = take_pre(o->local_addr, o->local_port, server, &t_pre, &connect_pre);
	if (fd >= 0) {
		/* up already: the request goes out now; the times are the handshake's */
		uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
		c->res.t_start_ns = t_pre;
		c->res.t_start_real_ns = rp_clock_ns(CLOCK_REALTIME) - (now - t_pre);
		c->res.connect_ns = connect_pre;
		c->deadline_ns = now + (uint64_t)tmo * 1000000ull;
		socklen_t ll = sizeof(c->res.local);
		getsockname(fd, (struct sockaddr *)&c->res.local, &ll);
		c->state = ST_SENDING;
		c->fd = fd;
		return 0;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* The punch port is shared: several connections from it at once, other sockets holding it. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		r = -errno;
		close(fd);
		return r;
	}
	if (o->local_addr || o->local_port) {
		struct sockaddr_in l = { .sin_family = AF_INET, .sin_port = htons(o->local_port),
					 .sin_addr.s_addr = o->local_addr };
		if (bind(fd, (struct sockaddr *)&l, sizeof(l))) {
			r = -errno;
			close(fd);
			return r;
		}
	}
	c->res.t_start_real_ns = rp_clock_ns(CLOCK_REALTIME);
	c->res.t_start_ns = rp_clock_ns(CLOCK_MONOTONIC);
	c->deadline_ns = c->res.t_start_ns + (uint64_t)tmo * 1000000ull;
	if (connect(fd, (const struct sockaddr *)server, sizeof(*server)) == 0) {
		c->state = ST_SENDING;
	} else if (errno == EINPROGRESS) {
		c->state = ST_CONNECTING;
	} else {
		r = -errno;
		close(fd);
		return r;
	}
	c->fd = fd;
	return 0;
}

short rp_stun_conn_events(const struct rp_stun_conn *c)
{
	switch (c->state) {
	case ST_CONNECTING:
	case ST_SENDING:
		return POLLOUT;
	case ST_READING:
		return POLLIN;
	default:
		return 0;
	}
}

static int failed(struct rp_stun_conn *c, int err)
{
	c->state = ST_FAILED;
	return err;
}

/* Fill c->res from a parsed response; 1 if it answers our request, 0 to keep reading. */
static int take_response(struct rp_stun_conn *c, const struct rp_stun_msg *m)
{
	struct rp_stun_result *r = &c->res;
	if (memcmp(m->txid, c->txid, sizeof(c->txid)) || m->method != RP_STUN_METHOD_BINDING ||
	    (m->cls != RP_STUN_SUCCESS && m->cls != RP_STUN_ERROR))
		return 0;   /* not ours (an indication, a stray): RFC 8489 says discard */
	r->total_ns = rp_clock_ns(CLOCK_MONOTONIC) - r->t_start_ns;
	r->n_unknown_required = m->n_unknown_required;
	if (m->has_software)
		memcpy(r->software, m->software, sizeof(r->software));
	if (m->cls == RP_STUN_ERROR) {
		r->error_code = m->has_error ? m->error_code : 500;
		if (m->has_error)
			memcpy(r->error_reason, m->error_reason, sizeof(r->error_reason));
		return 1;
	}
	if (m->has_xor_mapped && m->xor_mapped.family == RP_STUN_AF_INET) {
		to_sin(&m->xor_mapped, &r->mapped);
		r->has_mapped = true;
	} else if (m->has_mapped && m->mapped.family == RP_STUN_AF_INET) {
		to_sin(&m->mapped, &r->mapped);
		r->has_mapped = true;
	}
	if (m->has_other && m->other.family == RP_STUN_AF_INET) {
		to_sin(&m->other, &r->other);
		r->has_other = true;
	} else if (m->has_changed && m->changed.family == RP_STUN_AF_INET) {
		to_sin(&m->changed, &r->other);   /* an RFC 3489 server's name for the same thing */
		r->has_other = true;
	}
	if (m->has_origin && m->origin.family == RP_STUN_AF_INET) {
		to_sin(&m->origin, &r->origin);
		r->has_origin = true;
	}
	return 1;
}

int rp_stun_conn_step(struct rp_stun_conn *c)
{
	if (c->state == ST_DONE)
		return 1;
	if (c->state == ST_FAILED || c->fd < 0)
		return -EBADF;
	uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
	if (c->state == ST_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		if (poll(&p, 1, 0) <= 0)
			return now >= c->deadline_ns ? failed(c, -ETIMEDOUT) : 0;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el))
			return failed(c, -errno);
		if (err)
			return failed(c, -err);
		c->res.connect_ns = now - c->res.t_start_ns;
		socklen_t ll = sizeof(c->res.local);
		getsockname(c->fd, (struct sockaddr *)&c->res.local, &ll);
		c->state = ST_SENDING;
	}
	if (c->state == ST_SENDING) {
		while (c->req_sent < c->req_len) {
			ssize_t n = send(c->fd, c->req + c->req_sent, c->req_len - c->req_sent, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return now >= c->deadline_ns ? failed(c, -ETIMEDOUT) : 0;
				if (errno == EINTR)
					continue;
				return failed(c, -errno);
			}
			c->req_sent += (size_t)n;
		}
		if (!c->res.local.sin_family) {
			socklen_t ll = sizeof(c->res.local);
			getsockname(c->fd, (struct sockaddr *)&c->res.local, &ll);
		}
		c->state = ST_READING;
	}
	for (;;) {
		/* Frame every complete message in the buffer. */
		while (c->have >= RP_STUN_HDR_LEN) {
			long fl = rp_stun_frame_len(c->buf, c->have, sizeof(c->buf));
			if (fl < 0)
				return failed(c, fl == -EMSGSIZE ? -EMSGSIZE : -EBADMSG);
			if ((size_t)fl > c->have)
				break;
			struct rp_stun_msg m;
			if (rp_stun_parse(c->buf, (size_t)fl, &m))
				return failed(c, -EBADMSG);
			int mine = take_response(c, &m);
			memmove(c->buf, c->buf + fl, c->have - (size_t)fl);
			c->have -= (size_t)fl;
			if (mine) {
				c->state = ST_DONE;
				if (!c->res.error_code && !c->res.has_mapped)
					return failed(c, -EPROTO);
				return 1;
			}
		}
		ssize_t n = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return now >= c->deadline_ns ? failed(c, -ETIMEDOUT) : 0;
			if (errno == EINTR)
				continue;
			return failed(c, -errno);
		}
		if (n == 0)
			return failed(c, -ECONNRESET);   /* closed before answering */
		c->have += (size_t)n;
	}
}

void rp_stun_conn_close(struct rp_stun_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->close == RP_STUN_CLOSE_RST) {
		struct linger l = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(c->fd);
	c->fd = -1;
}

int rp_stun_binding(const struct sockaddr_in *server, const struct rp_stun_opts *o,
		    struct rp_stun_result *r)
{
	struct rp_stun_conn *c = calloc(1, sizeof(*c));
	int ret;
	if (!c)
		return -ENOMEM;
	ret = rp_stun_conn_start(c, server, o);
	while (ret == 0) {
		ret = rp_stun_conn_step(c);
		if (ret)
			break;
		uint64_t now = rp_clock_ns(CLOCK_MONOTONIC);
		int wait = now >= c->deadline_ns ? 0 : (int)((c->deadline_ns - now) / 1000000ull) + 1;
		struct pollfd p = { .fd = c->fd, .events = rp_stun_conn_events(c) };
		if (poll(&p, 1, wait) < 0 && errno != EINTR) {
			ret = -errno;
			break;
		}
	}
	if (r)
		*r = c->res;
	rp_stun_conn_close(c);
	free(c);
	return ret == 1 ? 0 : ret;
}
