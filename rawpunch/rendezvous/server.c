/* SPDX-License-Identifier: MIT */
#include "rawpunch/rendezvous/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <json-c/json.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/base/clock.h"

#define RBUF_CAP (RV_HDR + RV_FRAME_MAX)
#define WBUF_CAP (4 * (RV_HDR + RV_FRAME_MAX))   /* a peer that does not read is cut off past this */
#define FRAME_DEADLINE_MS 10000                  /* a started frame must complete within this */
#define CLOSE_LINGER_MS 2000                     /* flush an error frame at most this long */
#define PROBE_MIN_MS 100
#define PROBE_MAX_MS 5000
#define PROBE_DEFAULT_MS 1500
#define PROBE_GLOBAL_MAX 128
#define NBUCKETS 4096
#define RL_SLOTS 1024

enum ckind { C_LISTEN = 1, C_CLIENT, C_PROBE };

struct session;

struct conn {
	enum ckind kind;
	int fd;
	struct conn *prev, *next;       /* all client/probe connections */
	struct sockaddr_in peer, local;
	uint8_t *rbuf;
	size_t rlen;
	uint8_t *wbuf;
	size_t wlen, woff;
	bool want_out, closing, wr_shut;
	uint64_t last_rx_ms, frame_start_ms, close_at_ms;
	struct session *sess;
	/* C_CLIENT: its outstanding probe; C_PROBE: the client that asked, the port and the deadline */
	struct conn *probe, *owner;
	uint16_t probe_port;
	uint64_t probe_deadline_ms;
};

struct addrcount {
	uint32_t addr;
	unsigned conns, sessions;
	struct addrcount *next;
};

struct session {
	char id[2 * RV_ID_LEN + 1];
	struct conn *peer[2];
	uint32_t owner_addr;            /* the address that opened it (per-address session cap) */
	uint64_t created_ms;
	struct session *hnext;
};

struct ratelimit {
	uint32_t addr;
	double tokens;
	uint64_t last_ms;
};

struct rv_server {
	struct rv_server_cfg cfg;
	int ep, lfd;
	struct conn listen;
	struct conn *conns;
	struct session *buckets[NBUCKETS];
	struct ratelimit rl[RL_SLOTS];
	struct addrcount *per_addr[NBUCKETS];   /* exact counts; an entry lives while a count is non-zero */
	unsigned n_probes;
	struct rv_server_stats st;
};

__attribute__((format(printf, 2, 3))) static void logf_(struct rv_server *s, const char *fmt, ...)
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

static const char *peer_str(const struct conn *c, char *buf, size_t n)
{
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &c->peer.sin_addr, ip, sizeof(ip));
	snprintf(buf, n, "%s:%u", ip, (unsigned)ntohs(c->peer.sin_port));
	return buf;
}

static unsigned id_hash(const char *id)
{
	unsigned h = 0;
	for (int i = 0; i < 8; i++)
		h = h * 16 + (unsigned)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	return h % NBUCKETS;
}

/* Per-address counts: exact (unlike the probe rate-limit slots, which may forget an address), so a
 * cap can neither be evaded by eviction nor leak. create: add the entry if missing (NULL: no memory). */
static struct addrcount *addr_get(struct rv_server *s, uint32_t addr, bool create)
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

static void addr_put(struct rv_server *s, uint32_t addr, bool conn, bool sess)
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

static struct session *sess_find(struct rv_server *s, const char *id)
{
	for (struct session *x = s->buckets[id_hash(id)]; x; x = x->hnext)
		if (!strcmp(x->id, id))
			return x;
	return NULL;
}

static void sess_remove(struct rv_server *s, struct session *x)
{
	struct session **pp = &s->buckets[id_hash(x->id)];
	while (*pp && *pp != x)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = x->hnext;
	for (int i = 0; i < 2; i++)
		if (x->peer[i])
			x->peer[i]->sess = NULL;
	s->st.sessions_now--;
	addr_put(s, x->owner_addr, false, true);
	free(x);
}

static void ep_update(struct rv_server *s, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	if (c->kind == C_PROBE)
		ev.events = EPOLLOUT;
	else if (c->want_out)
		ev.events |= EPOLLOUT;
	epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_free(struct rv_server *s, struct conn *c);

static void flush(struct rv_server *s, struct conn *c)
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
	bool want = c->wlen > 0;
	if (want != c->want_out || c->closing) {
		c->want_out = want;
		ep_update(s, c);
	}
}

/* Queue one JSON frame; the object is consumed. false if the connection had to be cut off. */
static bool queue_json(struct rv_server *s, struct conn *c, struct json_object *o)
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
		ep_update(s, c);
		return false;
	}
	memcpy(c->wbuf + c->wlen, f, n);
	c->wlen += n;
	free(f);
	flush(s, c);
	return true;
}

static void send_type(struct rv_server *s, struct conn *c, const char *type)
{
	struct json_object *o = json_object_new_object();
	if (o)
		json_object_object_add(o, "t", json_object_new_string(type));
	queue_json(s, c, o);
}

static void send_error(struct rv_server *s, struct conn *c, const char *code, const char *msg, bool fatal)
{
	char who[32];
	struct json_object *o = json_object_new_object();
	s->st.errors++;
	if (o) {
		json_object_object_add(o, "t", json_object_new_string("error"));
		json_object_object_add(o, "code", json_object_new_string(code));
		json_object_object_add(o, "msg", json_object_new_string(msg));
	}
	logf_(s, "error %s %s: %s%s", peer_str(c, who, sizeof(who)), code, msg, fatal ? " (closing)" : "");
	queue_json(s, c, o);
	if (fatal && !c->closing) {
		c->closing = true;
		c->close_at_ms = rp_mono_ms() + CLOSE_LINGER_MS;
		flush(s, c);
	}
}

static void leave_session(struct rv_server *s, struct conn *c, bool notify)
{
	struct session *x = c->sess;
	if (!x)
		return;
	for (int i = 0; i < 2; i++) {
		struct conn *o = x->peer[i];
		if (o && o != c && notify)
			send_type(s, o, "gone");
	}
	sess_remove(s, x);
}

static void conn_free(struct rv_server *s, struct conn *c)
{
	char who[32];
	if (c->kind == C_CLIENT) {
		logf_(s, "close %s", peer_str(c, who, sizeof(who)));
		leave_session(s, c, true);
		if (c->probe) {
			c->probe->owner = NULL;    /* the probe finishes on its own and is dropped */
			c->probe = NULL;
		}
	} else if (c->kind == C_PROBE) {
		if (c->owner)
			c->owner->probe = NULL;
		s->n_probes--;
	}
	if (c->kind == C_CLIENT)
		addr_put(s, c->peer.sin_addr.s_addr, true, false);
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
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

static struct conn *conn_new(struct rv_server *s, enum ckind kind, int fd)
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
	c->last_rx_ms = rp_mono_ms();
	struct epoll_event ev = { .events = kind == C_PROBE ? EPOLLOUT : EPOLLIN | EPOLLRDHUP, .data.ptr = c };
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

/* ------------------------------------------------------------------ filter probe */

static bool rl_take(struct rv_server *s, uint32_t addr)
{
	uint64_t now = rp_mono_ms();
	struct ratelimit *slot = NULL, *oldest = NULL;
	unsigned h = (addr * 2654435761u) % RL_SLOTS;
	for (unsigned i = 0; i < 8; i++) {
		struct ratelimit *r = &s->rl[(h + i) % RL_SLOTS];
		if (r->last_ms && r->addr == addr) {
			slot = r;
			break;
		}
		if (!oldest || r->last_ms < oldest->last_ms)
			oldest = r;
	}
	if (!slot) {
		slot = oldest;
		slot->addr = addr;
		slot->tokens = s->cfg.probe_burst;
		slot->last_ms = now;
	}
	slot->tokens += (double)(now - slot->last_ms) * s->cfg.probe_per_min / 60000.0;
	if (slot->tokens > s->cfg.probe_burst)
		slot->tokens = s->cfg.probe_burst;
	slot->last_ms = now ? now : 1;
	if (slot->tokens < 1.0)
		return false;
	slot->tokens -= 1.0;
	return true;
}

int rv_probe_target_ok(uint32_t addr_net, int allow_private)
{
	uint32_t a = ntohl(addr_net);
	if ((a >> 24) == 0 || (a >> 24) == 127 ||      /* 0/8 "this network", loopback */
	    (a >> 16) == 0xa9fe ||                     /* 169.254/16 link-local */
	    (a >> 29) == 7)                            /* 224/4 multicast, 240/4 reserved + broadcast */
		return -EACCES;
	if (allow_private)
		return 0;
	if ((a >> 24) == 10 || (a >> 20) == 0xac1 ||   /* 10/8, 172.16/12 */
	    (a >> 16) == 0xc0a8 ||                     /* 192.168/16 */
	    (a >> 22) == (0x64400000u >> 22))          /* 100.64/10 shared (CGNAT) */
		return -EACCES;
	return 0;
}

/* Is addr one of this host's own addresses (a proxy on the server host shows clients as one)? */
static bool is_own_addr(uint32_t addr_net)
{
	struct ifaddrs *ifa, *i;
	bool own = false;
	if (getifaddrs(&ifa) < 0)
		return true;                           /* cannot tell: refuse */
	for (i = ifa; i && !own; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == addr_net)
			own = true;
	freeifaddrs(ifa);
	return own;
}

static void probe_report(struct rv_server *s, struct conn *p, const char *result)
{
	char who[32];
	if (p->owner) {
		struct json_object *o = json_object_new_object();
		if (o) {
			json_object_object_add(o, "t", json_object_new_string("fprobe"));
			json_object_object_add(o, "port", json_object_new_int(p->probe_port));
			json_object_object_add(o, "result", json_object_new_string(result));
		}
		logf_(s, "fprobe %s port %u: %s", peer_str(p->owner, who, sizeof(who)), (unsigned)p->probe_port,
		      result);
		queue_json(s, p->owner, o);
	}
	conn_free(s, p);
}

static void probe_event(struct rv_server *s, struct conn *p)
{
	int err = 0;
	socklen_t el = sizeof(err);
	bool icmp = false;
	uint8_t cbuf[512], dbuf[64];
	struct iovec iov = { dbuf, sizeof(dbuf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	/* ICMP errors sit on the error queue with their origin (IP_RECVERR); an RST leaves none */
	while (recvmsg(p->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0) {
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) {
				struct sock_extended_err ee;
				memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
				if (ee.ee_origin == SO_EE_ORIGIN_ICMP)
					icmp = true;
			}
		mh.msg_controllen = sizeof(cbuf);
	}
	getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (icmp) {
		probe_report(s, p, "icmp");
	} else if (err == 0) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		if (getpeername(p->fd, (struct sockaddr *)&a, &al) == 0)
			probe_report(s, p, "open");
		/* else: not finished yet (spurious wake-up) */
	} else if (err == ECONNREFUSED) {
		probe_report(s, p, "rst");
	} else if (err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == ENETDOWN ||
		   err == ENOPROTOOPT || err == EACCES || err == EPERM) {
		probe_report(s, p, "icmp");
	} else if (err == ETIMEDOUT) {
		probe_report(s, p, "drop");
	} else {
		probe_report(s, p, "error");
	}
}

static void handle_fprobe(struct rv_server *s, struct conn *c, struct json_object *o)
{
	struct json_object *jp, *jm;
	int64_t port, ms = PROBE_DEFAULT_MS;
	int fd, one = 1;
	if (!json_object_object_get_ex(o, "port", &jp) || !json_object_is_type(jp, json_type_int) ||
	    (port = json_object_get_int64(jp)) < 1 || port > 65535) {
		send_error(s, c, "bad-request", "fprobe needs \"port\" 1..65535", false);
		return;
	}
	if (json_object_object_get_ex(o, "ms", &jm)) {
		if (!json_object_is_type(jm, json_type_int) || (ms = json_object_get_int64(jm)) < PROBE_MIN_MS ||
		    ms > PROBE_MAX_MS) {
			send_error(s, c, "bad-request", "fprobe \"ms\" must be 100..5000", false);
			return;
		}
	}
	if (c->probe) {
		send_error(s, c, "busy", "one filter probe at a time per connection", false);
		return;
	}
	if (rv_probe_target_ok(c->peer.sin_addr.s_addr, s->cfg.probe_allow_private) ||
	    c->peer.sin_addr.s_addr == c->local.sin_addr.s_addr || is_own_addr(c->peer.sin_addr.s_addr)) {
		send_error(s, c, "forbidden",
			   "filter probes go to public requester addresses only (this one is loopback, "
			   "link-local, private, multicast or the server's own: behind a proxy?)", false);
		return;
	}
	if (s->n_probes >= PROBE_GLOBAL_MAX || !rl_take(s, c->peer.sin_addr.s_addr)) {
		send_error(s, c, "rate", "filter-probe rate limit: try again later", false);
		return;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		send_error(s, c, "internal", "no socket for the probe", false);
		return;
	}
	setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
	/* from our own address (the one the client reached), a fresh port; to the REQUESTER's own
	 * address only: never anywhere else, so the service cannot be aimed at third parties */
	struct sockaddr_in src = c->local, dst = c->peer;
	src.sin_port = 0;
	dst.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)) {
		close(fd);
		send_error(s, c, "internal", "probe connect failed", false);
		return;
	}
	struct conn *p = conn_new(s, C_PROBE, fd);
	if (!p) {
		close(fd);
		send_error(s, c, "internal", "out of memory", false);
		return;
	}
	p->peer = dst;
	p->owner = c;
	p->probe_port = (uint16_t)port;
	p->probe_deadline_ms = rp_mono_ms() + (uint64_t)ms;
	c->probe = p;
	s->n_probes++;
	s->st.probes++;
}

/* ------------------------------------------------------------------ client messages */

static void handle_join(struct rv_server *s, struct conn *c, struct json_object *o)
{
	struct json_object *jid, *jv;
	const char *id;
	char who[32];
	if (!json_object_object_get_ex(o, "v", &jv) || !json_object_is_type(jv, json_type_int) ||
	    json_object_get_int64(jv) != 1) {
		send_error(s, c, "version", "unsupported protocol version (want v 1)", true);
		return;
	}
	if (!json_object_object_get_ex(o, "id", &jid) || !json_object_is_type(jid, json_type_string) ||
	    rv_id_hex_valid(id = json_object_get_string(jid))) {
		send_error(s, c, "bad-request", "join needs \"id\": 32 lower-case hex characters", true);
		return;
	}
	if (c->sess) {
		send_error(s, c, "already", "this connection already joined a session", false);
		return;
	}
	struct session *x = sess_find(s, id);
	if (!x) {
		if (s->st.sessions_now >= s->cfg.max_sessions) {
			send_error(s, c, "busy", "server is at --max-sessions", true);
			return;
		}
		struct addrcount *ac = addr_get(s, c->peer.sin_addr.s_addr, false);
		if (ac && ac->sessions >= s->cfg.max_sessions_per_addr) {
			send_error(s, c, "busy", "too many sessions from this address (--max-per-addr)", true);
			return;
		}
		x = calloc(1, sizeof(*x));
		if (!x || !ac) {
			free(x);
			send_error(s, c, "internal", "out of memory", true);
			return;
		}
		ac->sessions++;
		x->owner_addr = c->peer.sin_addr.s_addr;
		memcpy(x->id, id, sizeof(x->id));
		x->created_ms = rp_mono_ms();
		unsigned h = id_hash(id);
		x->hnext = s->buckets[h];
		s->buckets[h] = x;
		s->st.sessions_now++;
	}
	if (x->peer[0] && x->peer[1]) {
		send_error(s, c, "full", "session already has two peers", true);
		return;
	}
	x->peer[x->peer[0] ? 1 : 0] = c;
	c->sess = x;
	if (x->peer[0] && x->peer[1]) {
		s->st.pairs++;
		logf_(s, "paired %.8s… %s", id, peer_str(c, who, sizeof(who)));
		send_type(s, x->peer[0], "paired");
		send_type(s, x->peer[1], "paired");
	} else {
		logf_(s, "join %.8s… %s", id, peer_str(c, who, sizeof(who)));
		send_type(s, c, "wait");
	}
}

static void handle_fwd(struct rv_server *s, struct conn *c, struct json_object *o)
{
	struct json_object *jb, *out;
	struct session *x = c->sess;
	struct conn *other;
	if (!json_object_object_get_ex(o, "box", &jb) || !json_object_is_type(jb, json_type_string) ||
	    json_object_get_string_len(jb) == 0) {
		send_error(s, c, "bad-request", "fwd needs a \"box\" string", false);
		return;
	}
	if (!x || !x->peer[0] || !x->peer[1]) {
		send_error(s, c, "unpaired", "no peer to forward to yet", false);
		return;
	}
	other = x->peer[0] == c ? x->peer[1] : x->peer[0];
	out = json_object_new_object();
	if (out) {
		json_object_object_add(out, "t", json_object_new_string("fwd"));
		json_object_object_add(out, "box", json_object_get(jb));
	}
	queue_json(s, other, out);
}

static void handle_time(struct rv_server *s, struct conn *c, struct json_object *o, uint64_t t2)
{
	struct json_object *j1, *out;
	if (!json_object_object_get_ex(o, "t1", &j1) || !json_object_is_type(j1, json_type_int)) {
		send_error(s, c, "bad-request", "time needs \"t1\" (ns)", false);
		return;
	}
	out = json_object_new_object();
	if (out) {
		json_object_object_add(out, "t", json_object_new_string("time"));
		json_object_object_add(out, "t1", json_object_get(j1));
		json_object_object_add(out, "t2", json_object_new_int64((int64_t)t2));
		json_object_object_add(out, "t3", json_object_new_int64((int64_t)rp_real_ns()));
	}
	queue_json(s, c, out);
}

static void handle_frame(struct rv_server *s, struct conn *c, const uint8_t *body, size_t len, uint64_t t2)
{
	struct json_object *o;
	const char *t;
	s->st.frames++;
	if (rv_body_parse(body, len, &o, &t)) {
		send_error(s, c, "malformed", "frame body is not a JSON object with a string \"t\"", true);
		return;
	}
	if (!strcmp(t, "time"))
		handle_time(s, c, o, t2);
	else if (!strcmp(t, "join"))
		handle_join(s, c, o);
	else if (!strcmp(t, "fwd"))
		handle_fwd(s, c, o);
	else if (!strcmp(t, "fprobe"))
		handle_fprobe(s, c, o);
	else if (!strcmp(t, "bye")) {
		leave_session(s, c, true);
		c->closing = true;
		c->close_at_ms = rp_mono_ms() + CLOSE_LINGER_MS;
		flush(s, c);
	} else
		send_error(s, c, "unknown-type", "unknown message type", false);
	json_object_put(o);
}

static void client_read(struct rv_server *s, struct conn *c)
{
	for (;;) {
		if (c->closing)
			return;
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			conn_free(s, c);
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
				send_error(s, c, "oversize", "frame length is 0 or above 16384", true);
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
			conn_free(s, c);
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
		struct addrcount *ac = addr_get(s, a.sin_addr.s_addr, true);
		if (!ac || ac->conns >= s->cfg.max_conns_per_addr) {
			char ip[INET_ADDRSTRLEN];
			close(fd);
			s->st.errors++;
			inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
			logf_(s, "refused %s:%u: %s", ip, (unsigned)ntohs(a.sin_port),
			      ac ? "per-address connection limit (--max-per-addr)" : "out of memory");
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = conn_new(s, C_CLIENT, fd);
		if (!c) {
			close(fd);
			if (!ac->conns && !ac->sessions)
				addr_put(s, a.sin_addr.s_addr, false, false);
			continue;
		}
		ac->conns++;
		c->peer = a;
		al = sizeof(c->local);
		getsockname(fd, (struct sockaddr *)&c->local, &al);
		s->st.conns++;
		char who[32];
		logf_(s, "accept %s", peer_str(c, who, sizeof(who)));
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
				probe_report(s, c, "drop");   /* frees only c (nx stays valid) */
			continue;
		}
		if (c->closing) {
			if (now >= c->close_at_ms)
				conn_free(s, c);
			continue;
		}
		if (now - c->last_rx_ms > (uint64_t)s->cfg.idle_timeout_s * 1000u) {
			send_error(s, c, "idle", "idle timeout", true);
		} else if (c->rlen && now - c->frame_start_ms > FRAME_DEADLINE_MS) {
			send_error(s, c, "slow", "incomplete frame for too long", true);
		} else if (c->sess && !(c->sess->peer[0] && c->sess->peer[1]) &&
			   now - c->sess->created_ms > (uint64_t)s->cfg.session_ttl_s * 1000u) {
			leave_session(s, c, false);
			send_error(s, c, "expired", "no peer joined in time", true);
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
				probe_event(s, c);
				continue;
			}
			if (evs[i].events & EPOLLOUT)
				flush(s, c);
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
		conn_free(s, s->conns);
	for (unsigned i = 0; i < NBUCKETS; i++)
		while (s->buckets[i])
			sess_remove(s, s->buckets[i]);
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
