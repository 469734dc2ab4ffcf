/* SPDX-License-Identifier: MIT */
/* Rendezvous server connections (see server-internal.h): creating and freeing them, their epoll
 * interest and parking, the listener's pause, the bounded output queue and its flushing, JSON and
 * error frames, the exact per-address connection and session counts, and the event lines given to
 * cfg.log. */
#include "rawpunch/rendezvous/server-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"

void rvs_logf(struct rv_server *s, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	if (!s->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_arg, line);
}

const char *rvs_peer_str(const struct conn *c, char *buf, size_t n)
{
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &c->peer.sin_addr, ip, sizeof(ip));
	snprintf(buf, n, "%s:%u", ip, (unsigned)ntohs(c->peer.sin_port));
	return buf;
}

/* Per-address counts: exact (unlike the probe rate-limit slots, which may forget an address), so a
 * cap can neither be evaded by eviction nor leak. create: add the entry if missing (NULL: no memory). */
struct addrcount *rvs_addr_get(struct rv_server *s, uint32_t addr, bool create)
{
	unsigned h = (addr * 2654435761u) % NBUCKETS;
	for (struct addrcount *a = s->per_addr[h]; a; a = a->next)
		if (a->addr == addr)
			return a;
	if (!create)
		return NULL;
	struct addrcount *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->addr = addr;
	a->next = s->per_addr[h];
	s->per_addr[h] = a;
	return a;
}

void rvs_addr_put(struct rv_server *s, uint32_t addr, bool conn, bool sess)
{
	unsigned h = (addr * 2654435761u) % NBUCKETS;
	for (struct addrcount **pp = &s->per_addr[h]; *pp; pp = &(*pp)->next) {
		struct addrcount *a = *pp;
		if (a->addr != addr)
			continue;
		if (conn && a->conns)
			a->conns--;
		if (sess && a->sessions)
			a->sessions--;
		if (!a->conns && !a->sessions) {
			*pp = a->next;
			free(a);
		}
		return;
	}
}

void rvs_ep_update(struct rv_server *s, struct conn *c)
{
	uint32_t want;
	if (c->kind == C_PROBE)
		want = EPOLLOUT;
	else
		want = (c->parked && !c->closing ? 0 : EPOLLIN | EPOLLRDHUP) | (c->want_out ? EPOLLOUT : 0);
	if (want == c->ep_events)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = c };
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->ep_events = want;
}

void rvs_park(struct rv_server *s, struct conn *c, uint64_t ready_ms)
{
	c->ready_ms = ready_ms;
	if (c->parked)
		return;
	c->parked = true;
	c->pnext = s->parked;
	if (s->parked)
		s->parked->pprev = &c->pnext;
	c->pprev = &s->parked;
	s->parked = c;
}

void rvs_unpark(struct rv_server *s, struct conn *c)
{
	(void)s;
	if (!c->parked)
		return;
	*c->pprev = c->pnext;
	if (c->pnext)
		c->pnext->pprev = c->pprev;
	c->parked = false;
	c->pnext = NULL;
	c->pprev = NULL;
}

void rvs_listen_resume(struct rv_server *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->listen };
	if (!s->listen_paused)
		return;
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, s->lfd, &ev) == 0)
		s->listen_paused = false;
}

void rvs_flush(struct rv_server *s, struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->wlen = c->woff = 0;      /* peer gone: drop what is queued */
		c->closing = true;
		c->close_at_ms = 0;
		break;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->closing && c->wlen == 0 && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);         /* error sent: FIN, then wait for the peer to close */
		c->wr_shut = true;
	}
	c->want_out = c->wlen > 0;
	rvs_ep_update(s, c);
}

/* Queue one JSON frame; the object is consumed. false if the connection had to be cut off. */
bool rvs_queue_json(struct rv_server *s, struct conn *c, struct json_object *o)
{
	uint8_t *f = NULL;
	size_t n = 0;
	int r = o ? rv_frame_json(o, &f, &n) : -ENOMEM;
	json_object_put(o);
	if (r)
		return false;
	if (c->woff) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
	if (c->wlen + n > WBUF_CAP) {
		free(f);
		c->closing = true;             /* it does not read: cut it off */
		c->close_at_ms = 0;
		c->wlen = c->woff = 0;
		rvs_ep_update(s, c);
		return false;
	}
	memcpy(c->wbuf + c->wlen, f, n);
	c->wlen += n;
	free(f);
	rvs_flush(s, c);
	return true;
}

void rvs_send_type(struct rv_server *s, struct conn *c, const char *type)
{
	struct json_object *o = json_object_new_object();
	if (o)
		json_object_object_add(o, "t", json_object_new_string(type));
	rvs_queue_json(s, c, o);
}

void rvs_send_error(struct rv_server *s, struct conn *c, const char *code, const char *msg, bool fatal)
{
	char who[32];
	struct json_object *o = json_object_new_object();
	s->st.errors++;
	if (o) {
		json_object_object_add(o, "t", json_object_new_string("error"));
		json_object_object_add(o, "code", json_object_new_string(code));
		json_object_object_add(o, "msg", json_object_new_string(msg));
	}
	rvs_logf(s, "error %s %s: %s%s", rvs_peer_str(c, who, sizeof(who)), code, msg, fatal ? " (closing)" : "");
	rvs_queue_json(s, c, o);
	if (fatal && !c->closing) {
		c->closing = true;
		c->close_at_ms = rvs_now(s) + CLOSE_LINGER_MS;
		rvs_flush(s, c);
	}
}

void rvs_conn_free(struct rv_server *s, struct conn *c)
{
	char who[32];
	if (c->kind == C_CLIENT) {
		rvs_logf(s, "close %s", rvs_peer_str(c, who, sizeof(who)));
		rvs_leave_session(s, c, true);
		if (c->probe) {
			c->probe->owner = NULL;    /* the probe finishes on its own and is dropped */
			c->probe = NULL;
		}
	} else if (c->kind == C_PROBE) {
		if (c->owner)
			c->owner->probe = NULL;
		s->n_probes--;
	}
	if (c->kind == C_CLIENT) {
		rvs_addr_put(s, c->peer.sin_addr.s_addr, true, false);
		s->n_clients--;
	}
	rvs_unpark(s, c);
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	rvs_listen_resume(s);                     /* a descriptor is free again */
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->st.conns_now--;
	free(c->rbuf);
	free(c->wbuf);
	free(c);
}

struct conn *rvs_conn_new(struct rv_server *s, enum ckind kind, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (kind == C_CLIENT) {
		c->rbuf = malloc(RBUF_CAP);
		c->wbuf = malloc(WBUF_CAP);
		if (!c->rbuf || !c->wbuf) {
			free(c->rbuf);
			free(c->wbuf);
			free(c);
			return NULL;
		}
	}
	c->kind = kind;
	c->fd = fd;
	c->last_rx_ms = rvs_now(s);
	c->ep_events = kind == C_PROBE ? EPOLLOUT : EPOLLIN | EPOLLRDHUP;
	struct epoll_event ev = { .events = c->ep_events, .data.ptr = c };
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(c->rbuf);
		free(c->wbuf);
		free(c);
		return NULL;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->st.conns_now++;
	return c;
}
