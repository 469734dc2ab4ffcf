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
#include <sys/resource.h>
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

/* A connection's input for one round: the frames already buffered, then at most one recv, within
 * ROUND_FRAMES frames and the connection's message rate. Whatever is left waits, parked, for the
 * next round (budget spent) or for the bucket to refill (rate): so one client pipelining requests
 * as fast as it can gets its share of each round and its rate, never the whole server. false: c was
 * freed. The caller updates c's epoll interest (rvs_ep_update). */
static bool client_input(struct rv_server *s, struct conn *c)
{
	unsigned frames = 0;
	bool received = false;
	for (;;) {
		size_t off = 0;
		uint64_t now = rvs_now(s);
		while (!c->closing && !c->parked) {
			const uint8_t *body;
			size_t blen;
			long fl = rv_frame_scan(c->rbuf + off, c->rlen - off, &body, &blen);
			if (fl < 0) {
				c->rlen = 0;
				rvs_send_error(s, c, "oversize", "frame length is 0 or above 16384", true);
				return true;
			}
			if (fl == 0)
				break;
			if (frames >= ROUND_FRAMES) {
				rvs_park(s, c, now);
				break;
			}
			if (!rp_tb_take(&c->tb, s->cfg.msg_burst, s->cfg.msg_per_s * 60u, now)) {
				s->st.throttled++;
				rvs_park(s, c, now + rp_tb_wait_ms(&c->tb, s->cfg.msg_burst, s->cfg.msg_per_s * 60u, now));
				break;
			}
			handle_frame(s, c, body, blen, rp_real_ns());
			off += (size_t)fl;
			frames++;
		}
		if (c->closing)
			return true;
		if (off) {
			memmove(c->rbuf, c->rbuf + off, c->rlen - off);
			c->rlen -= off;
			c->frame_start_ms = now;
		}
		if (c->parked || received)
			return true;   /* more in the socket: level-triggered epoll reports it next round */
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			rvs_conn_free(s, c);
			return false;
		}
		if (n < 0)
			return true;
		received = true;
		if (c->rlen == 0)
			c->frame_start_ms = now;
		c->rlen += (size_t)n;
		c->last_rx_ms = now;
	}
}

/* A connection being closed: discard what it still sends (so close() does not reset the error
 * frame away) until it closes its side or the linger time runs out; ROUND_DRAIN reads a round. */
static void drain(struct rv_server *s, struct conn *c)
{
	uint8_t junk[4096];
	for (int i = 0; i < ROUND_DRAIN; i++) {
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

struct conn *rvs_client_add(struct rv_server *s, int fd, const struct sockaddr_in *peer)
{
	char ip[INET_ADDRSTRLEN];
	if (s->n_clients >= s->cfg.max_conns) {
		close(fd);
		s->st.errors++;
		inet_ntop(AF_INET, &peer->sin_addr, ip, sizeof(ip));
		rvs_logf(s, "refused %s:%u: connection limit (%u, within the fd limit)", ip,
			 (unsigned)ntohs(peer->sin_port), s->cfg.max_conns);
		return NULL;
	}
	struct addrcount *ac = rvs_addr_get(s, peer->sin_addr.s_addr, true);
	if (!ac || ac->conns >= s->cfg.max_conns_per_addr) {
		close(fd);
		s->st.errors++;
		inet_ntop(AF_INET, &peer->sin_addr, ip, sizeof(ip));
		rvs_logf(s, "refused %s:%u: %s", ip, (unsigned)ntohs(peer->sin_port),
			 ac ? "per-address connection limit (--max-per-addr)" : "out of memory");
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct conn *c = rvs_conn_new(s, C_CLIENT, fd);
	if (!c) {
		close(fd);
		if (!ac->conns && !ac->sessions)
			rvs_addr_put(s, peer->sin_addr.s_addr, false, false);
		return NULL;
	}
	ac->conns++;
	s->n_clients++;
	c->peer = *peer;
	socklen_t al = sizeof(c->local);
	getsockname(fd, (struct sockaddr *)&c->local, &al);
	rp_tb_init(&c->tb, s->cfg.msg_burst, rvs_now(s));
	s->st.conns++;
	char who[32];
	rvs_logf(s, "accept %s", rvs_peer_str(c, who, sizeof(who)));
	return c;
}

static void listen_pause(struct rv_server *s, int err)
{
	struct epoll_event ev = { .events = 0, .data.ptr = &s->listen };
	if (!s->listen_paused) {
		epoll_ctl(s->ep, EPOLL_CTL_MOD, s->lfd, &ev);
		s->listen_paused = true;
		s->st.listen_pauses++;
		rvs_logf(s, "accept: %s: listener paused until a descriptor is free",
			 err == EMFILE ? "out of descriptors (RLIMIT_NOFILE)" : err == ENFILE ?
			 "out of descriptors (system-wide)" : "out of memory");
	}
	s->listen_retry_ms = rvs_now(s) + LISTEN_RETRY_MS;
}

static void accept_some(struct rv_server *s)
{
	for (int i = 0; i < ROUND_ACCEPTS && !s->listen_paused; i++) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		int fd = accept4(s->lfd, (struct sockaddr *)&a, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* out of descriptors or buffers: the connection stays queued and the level-triggered
			 * listener would wake us at once, again and again: stop listening until one is freed */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				listen_pause(s, errno);
			return;
		}
		rvs_client_add(s, fd, &a);
	}
}

/* The filter probes past their deadline: "drop" (nothing came back); the next deadline kept. */
static void probe_expire(struct rv_server *s)
{
	uint64_t now = rvs_now(s), next = UINT64_MAX;
	struct conn *c = s->conns, *nx;
	for (; c; c = nx) {
		nx = c->next;
		if (c->kind != C_PROBE)
			continue;
		if (now >= c->probe_deadline_ms)
			rvs_probe_report(s, c, "drop");   /* frees only c (nx stays valid) */
		else if (c->probe_deadline_ms < next)
			next = c->probe_deadline_ms;
	}
	s->next_probe_ms = next;
}

static void sweep(struct rv_server *s)
{
	uint64_t now = rvs_now(s);
	struct conn *c = s->conns, *nx;
	for (; c; c = nx) {
		nx = c->next;
		if (c->kind == C_PROBE)
			continue;   /* probe_expire */
		if (c->closing) {
			if (now >= c->close_at_ms)
				rvs_conn_free(s, c);
			continue;
		}
		if (now - c->last_rx_ms > (uint64_t)s->cfg.idle_timeout_s * 1000u) {
			rvs_send_error(s, c, "idle", "idle timeout", true);
		} else if (c->rlen && !c->parked && now - c->frame_start_ms > FRAME_DEADLINE_MS) {
			rvs_send_error(s, c, "slow", "incomplete frame for too long", true);
		} else if (c->sess && !c->paired_ms && now - c->joined_ms > (uint64_t)s->cfg.session_ttl_s * 1000u) {
			rvs_leave_session(s, c, false);
			rvs_send_error(s, c, "expired", "no peer joined in time", true);
		} else if (c->sess && c->paired_ms && now - c->paired_ms > (uint64_t)s->cfg.paired_ttl_s * 1000u) {
			rvs_leave_session(s, c, true);
			rvs_send_error(s, c, "expired", "session lifetime over (--paired-ttl)", true);
		}
	}
}

void rv_server_fd_budget(unsigned long nofile, unsigned want_conns, unsigned *conns, unsigned *probes)
{
	unsigned long avail = nofile > RV_FD_RESERVE ? nofile - RV_FD_RESERVE : 0;
	unsigned long p = avail / 8;
	if (p > PROBE_GLOBAL_MAX)
		p = PROBE_GLOBAL_MAX;
	unsigned long n = avail - p;
	if (n > want_conns)
		n = want_conns;
	*conns = n ? (unsigned)n : 1;
	*probes = (unsigned)p;
}

bool rv_fwd_quota_ok(unsigned msgs, uint64_t bytes, size_t len, unsigned max_msgs, unsigned max_bytes)
{
	return msgs < max_msgs && bytes <= max_bytes && len <= max_bytes - bytes;
}

int rv_server_open(const struct rv_server_cfg *cfg, struct rv_server **out)
{
	struct rv_server *s = calloc(1, sizeof(*s));
	int one = 1, e;
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->next_probe_ms = UINT64_MAX;
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
	if (!s->cfg.paired_ttl_s)
		s->cfg.paired_ttl_s = 120;
	if (!s->cfg.msg_burst)
		s->cfg.msg_burst = 32;
	if (!s->cfg.msg_per_s)
		s->cfg.msg_per_s = 20;
	if (!s->cfg.fwd_max_msgs)
		s->cfg.fwd_max_msgs = 2000;
	if (!s->cfg.fwd_max_bytes)
		s->cfg.fwd_max_bytes = 256u << 10;
	struct rlimit rl;
	unsigned long nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ?
			       (unsigned long)rl.rlim_cur : 1048576ul;
	rv_server_fd_budget(nofile, s->cfg.max_conns, &s->cfg.max_conns, &s->max_probes);
	s->st.max_conns = s->cfg.max_conns;
	s->st.max_probes = s->max_probes;
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

uint64_t rvs_now(const struct rv_server *s)
{
	return rp_mono_ms() + s->skew_ms;
}

/* The parked connections whose time has come get their round (each at most one per step; a
 * connection parks itself again at the head, behind the iterator). */
static void run_parked(struct rv_server *s)
{
	uint64_t now = rvs_now(s);
	for (struct conn *c = s->parked, *nx; c; c = nx) {
		nx = c->pnext;
		if (c->ready_ms > now)
			continue;
		rvs_unpark(s, c);
		if (client_input(s, c))
			rvs_ep_update(s, c);
	}
}

/* How long the next epoll_wait may sleep: not past a parked connection's turn or a paused
 * listener's retry. */
static int wait_ms(const struct rv_server *s, int timeout_ms)
{
	uint64_t now = rvs_now(s), until = now + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (const struct conn *c = s->parked; c; c = c->pnext)
		if (c->ready_ms < until)
			until = c->ready_ms;
	if (s->listen_paused && s->listen_retry_ms < until)
		until = s->listen_retry_ms;
	if (s->next_probe_ms < until)
		until = s->next_probe_ms;
	return until > now ? (int)(until - now) : 0;
}

int rvs_step(struct rv_server *s, int timeout_ms)
{
	struct epoll_event evs[64];
	int n = epoll_wait(s->ep, evs, 64, wait_ms(s, timeout_ms));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct conn *c = evs[i].data.ptr;
		if (c->kind == C_LISTEN) {
			accept_some(s);
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
		if (c->parked) {
			/* not read now (its interest is off); HUP or ERR: the peer is gone both ways and
			 * can take no answer: free it rather than be woken for it again and again */
			if (evs[i].events & (EPOLLHUP | EPOLLERR))
				rvs_conn_free(s, c);
			continue;
		}
		if ((evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && client_input(s, c))
			rvs_ep_update(s, c);
	}
	run_parked(s);
	uint64_t now = rvs_now(s);
	if (s->listen_paused && now >= s->listen_retry_ms)
		rvs_listen_resume(s);
	if (now >= s->next_probe_ms)
		probe_expire(s);
	if (now - s->last_sweep_ms >= 100) {
		sweep(s);
		s->last_sweep_ms = now;
	}
	return 0;
}

int rv_server_run(struct rv_server *s, volatile sig_atomic_t *stop)
{
	s->last_sweep_ms = rvs_now(s);
	while (!stop || !*stop) {
		int r = rvs_step(s, 100);
		if (r)
			return r;
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
