/* SPDX-License-Identifier: MIT */
/* Rendezvous server (server.h): its life cycle and the epoll loop: accepting connections, reading
 * frames and dispatching them, the clock sample ("time"), and the periodic sweep of timeouts and
 * expired sessions. Connections, sessions and filter probes live in server-conn.c,
 * server-session.c and server-fprobe.c (server-internal.h ties them together). */
#include "rawpunch/rendezvous/server-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"

#define FRAME_DEADLINE_MS 10000                  /* a started frame must complete within this */

static void handle_time(struct rv_server *s, struct conn *c, struct json_object *o, uint64_t t2)
{
	struct json_object *j1, *out;
	if (!json_object_object_get_ex(o, "t1", &j1) || !json_object_is_type(j1, json_type_int)) {
		rvs_send_error(s, c, "bad-request", "time needs \"t1\" (ns)", false);
		return;
	}
	out = json_object_new_object();
	if (out) {
		json_object_object_add(out, "t", json_object_new_string("time"));
		json_object_object_add(out, "t1", json_object_get(j1));
		json_object_object_add(out, "t2", json_object_new_int64((int64_t)t2));
		json_object_object_add(out, "t3", json_object_new_int64((int64_t)rp_real_ns()));
	}
	rvs_queue_json(s, c, out);
}

static void handle_frame(struct rv_server *s, struct conn *c, const uint8_t *body, size_t len, uint64_t t2)
{
	struct json_object *o;
	const char *t;
	s->st.frames++;
	if (rv_body_parse(body, len, &o, &t)) {
		rvs_send_error(s, c, "malformed", "frame body is not a JSON object with a string \"t\"", true);
		return;
	}
	if (!strcmp(t, "time"))
		handle_time(s, c, o, t2);
	else if (!strcmp(t, "join"))
		rvs_handle_join(s, c, o);
	else if (!strcmp(t, "fwd"))
		rvs_handle_fwd(s, c, o);
	else if (!strcmp(t, "fprobe"))
		rvs_handle_fprobe(s, c, o);
	else if (!strcmp(t, "bye")) {
		rvs_leave_session(s, c, true);
		c->closing = true;
		c->close_at_ms = rp_mono_ms() + CLOSE_LINGER_MS;
		rvs_flush(s, c);
	} else
		rvs_send_error(s, c, "unknown-type", "unknown message type", false);
	json_object_put(o);
}

static void client_read(struct rv_server *s, struct conn *c)
{
	for (;;) {
		if (c->closing)
			return;
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			rvs_conn_free(s, c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		uint64_t now = rp_mono_ms(), t2 = rp_real_ns();
		if (c->rlen == 0)
			c->frame_start_ms = now;
		c->rlen += (size_t)n;
		c->last_rx_ms = now;
		size_t off = 0;
		for (;;) {
			const uint8_t *body;
			size_t blen;
			long fl = rv_frame_scan(c->rbuf + off, c->rlen - off, &body, &blen);
			if (fl < 0) {
				c->rlen = 0;
				rvs_send_error(s, c, "oversize", "frame length is 0 or above 16384", true);
				return;
			}
			if (fl == 0)
				break;
			handle_frame(s, c, body, blen, t2);
			off += (size_t)fl;
			if (c->closing)
				return;
		}
		if (off) {
			memmove(c->rbuf, c->rbuf + off, c->rlen - off);
			c->rlen -= off;
			c->frame_start_ms = now;
		}
	}
}

/* A connection being closed: discard what it still sends (so close() does not reset the error
 * frame away) until it closes its side or the linger time runs out. */
static void drain(struct rv_server *s, struct conn *c)
{
	uint8_t junk[4096];
	for (;;) {
		ssize_t n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			rvs_conn_free(s, c);
		return;
	}
}

static void accept_all(struct rv_server *s)
{
	for (;;) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		int fd = accept4(s->lfd, (struct sockaddr *)&a, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (s->st.conns_now >= s->cfg.max_conns) {
			close(fd);
			continue;
		}
		struct addrcount *ac = rvs_addr_get(s, a.sin_addr.s_addr, true);
		if (!ac || ac->conns >= s->cfg.max_conns_per_addr) {
			char ip[INET_ADDRSTRLEN];
			close(fd);
			s->st.errors++;
			inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
			rvs_logf(s, "refused %s:%u: %s", ip, (unsigned)ntohs(a.sin_port),
			      ac ? "per-address connection limit (--max-per-addr)" : "out of memory");
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = rvs_conn_new(s, C_CLIENT, fd);
		if (!c) {
			close(fd);
			if (!ac->conns && !ac->sessions)
				rvs_addr_put(s, a.sin_addr.s_addr, false, false);
			continue;
		}
		ac->conns++;
		c->peer = a;
		al = sizeof(c->local);
		getsockname(fd, (struct sockaddr *)&c->local, &al);
		s->st.conns++;
		char who[32];
		rvs_logf(s, "accept %s", rvs_peer_str(c, who, sizeof(who)));
	}
}

static void sweep(struct rv_server *s)
{
	uint64_t now = rp_mono_ms();
	struct conn *c = s->conns, *nx;
	for (; c; c = nx) {
		nx = c->next;
		if (c->kind == C_PROBE) {
			if (now >= c->probe_deadline_ms)
				rvs_probe_report(s, c, "drop");   /* frees only c (nx stays valid) */
			continue;
		}
		if (c->closing) {
			if (now >= c->close_at_ms)
				rvs_conn_free(s, c);
			continue;
		}
		if (now - c->last_rx_ms > (uint64_t)s->cfg.idle_timeout_s * 1000u) {
			rvs_send_error(s, c, "idle", "idle timeout", true);
		} else if (c->rlen && now - c->frame_start_ms > FRAME_DEADLINE_MS) {
			rvs_send_error(s, c, "slow", "incomplete frame for too long", true);
		} else if (c->sess && !(c->sess->peer[0] && c->sess->peer[1]) &&
			   now - c->sess->created_ms > (uint64_t)s->cfg.session_ttl_s * 1000u) {
			rvs_leave_session(s, c, false);
			rvs_send_error(s, c, "expired", "no peer joined in time", true);
		}
	}
}

int rv_server_open(const struct rv_server_cfg *cfg, struct rv_server **out)
{
	struct rv_server *s = calloc(1, sizeof(*s));
	int one = 1, e;
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (!s->cfg.max_sessions)
		s->cfg.max_sessions = 4096;
	if (!s->cfg.max_conns)
		s->cfg.max_conns = 2 * s->cfg.max_sessions + 64;
	if (!s->cfg.idle_timeout_s)
		s->cfg.idle_timeout_s = 60;
	if (!s->cfg.session_ttl_s)
		s->cfg.session_ttl_s = 300;
	if (!s->cfg.probe_burst)
		s->cfg.probe_burst = 8;
	if (!s->cfg.probe_per_min)
		s->cfg.probe_per_min = 30;
	if (!s->cfg.max_conns_per_addr)
		s->cfg.max_conns_per_addr = 64;
	if (!s->cfg.max_sessions_per_addr)
		s->cfg.max_sessions_per_addr = 32;
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->ep < 0 || s->lfd < 0)
		goto fail;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, (const struct sockaddr *)&cfg->listen, sizeof(cfg->listen)) < 0 || listen(s->lfd, 1024) < 0)
		goto fail;
	s->listen.kind = C_LISTEN;
	s->listen.fd = s->lfd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->listen };
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	e = -errno;
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->ep >= 0)
		close(s->ep);
	free(s);
	return e ? e : -EIO;
}

void rv_server_addr(const struct rv_server *s, struct sockaddr_in *out)
{
	socklen_t l = sizeof(*out);
	getsockname(s->lfd, (struct sockaddr *)out, &l);
}

int rv_server_run(struct rv_server *s, volatile sig_atomic_t *stop)
{
	struct epoll_event evs[64];
	uint64_t last_sweep = rp_mono_ms();
	while (!stop || !*stop) {
		int n = epoll_wait(s->ep, evs, 64, 100);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->kind == C_LISTEN) {
				accept_all(s);
				continue;
			}
			/* handlers only ever free the connection they were called for, so the other
			 * pointers of this batch stay valid */
			if (c->kind == C_PROBE) {
				rvs_probe_event(s, c);
				continue;
			}
			if (evs[i].events & EPOLLOUT)
				rvs_flush(s, c);
			if (c->closing) {
				drain(s, c);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				client_read(s, c);
		}
		uint64_t now = rp_mono_ms();
		if (now - last_sweep >= 100) {
			sweep(s);
			last_sweep = now;
		}
	}
	return 0;
}

void rv_server_stats(const struct rv_server *s, struct rv_server_stats *st)
{
	*st = s->st;
}

void rv_server_close(struct rv_server *s)
{
	if (!s)
		return;
	while (s->conns)
		rvs_conn_free(s, s->conns);
	for (unsigned i = 0; i < NBUCKETS; i++)
		while (s->buckets[i])
			rvs_sess_remove(s, s->buckets[i]);
	for (unsigned i = 0; i < NBUCKETS; i++)
		while (s->per_addr[i]) {
			struct addrcount *a = s->per_addr[i];
			s->per_addr[i] = a->next;
			free(a);
		}
	close(s->lfd);
	close(s->ep);
	free(s);
}
