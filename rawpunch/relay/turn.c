/* SPDX-License-Identifier: MIT */
/* TURN client over TCP with TCP allocations: see turn.h. */
#include "rawpunch/relay/turn.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 10000
#define MAX_CHALLENGES 3            /* 401/438 answered per request before giving up */
#define PERMIT_REFRESH_NS (240ull * 1000000000ull)   /* permissions last 300 s (RFC 8656 §9) */

struct attempt {
	uint32_t id;
	struct sockaddr_in peer;
};

struct rp_turn {
	struct sockaddr_in server;
	struct rp_turn_cred cred;
	char software[256];
	bool has_software;
	int timeout_ms;
	uint32_t lifetime_s, refresh_s;

	int fd;                                  /* control connection */
	int pre_fd;                              /* rp_turn_predial: the next ConnectionBind's, connecting */
	uint8_t rbuf[RP_STUN_MAX_MSG];           /* control bytes read, not yet framed */
	size_t have;

	bool challenged;                         /* realm/nonce/key known */
	char realm[RP_STUN_REALM_MAX + 1], nonce[RP_STUN_NONCE_MAX + 1];
	uint16_t realm_len, nonce_len;
	uint8_t key[RP_STUN_LT_KEY_LEN];

	bool allocated;
	uint64_t refreshed_ns;                   /* CLOCK_MONOTONIC of the last Allocate/Refresh */
	struct rp_turn_info info;
	struct rp_turn_error err;

	struct sockaddr_in permits[RP_TURN_MAX_PERMITS];
	unsigned n_permits;
	uint64_t permitted_ns;                   /* last CreatePermission for all of them */

	struct attempt attempts[RP_TURN_MAX_ATTEMPTS];
	unsigned n_attempts;

	bool keeper_on;
	pthread_t keeper;
	int stop_pipe[2];
	int keeper_err;
};

/* A request as the caller means it; credentials and the transaction ID are added per attempt. */
struct req {
	uint16_t method;
	bool has_lifetime, has_transport, has_peer, has_id;
	uint32_t lifetime, id;
	struct sockaddr_in peer;
};

/* --- credentials ---------------------------------------------------------------------------------- */

int rp_turn_rest_cred(const uint8_t *secret, size_t secret_len, uint64_t expiry, const char *name,
		      struct rp_turn_cred *out)
{
	uint8_t mac[RP_STUN_MI_LEN];
	int n;
	if (!secret || !secret_len || !out || (name && strchr(name, ':')))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (name && *name)
		n = snprintf(out->username, sizeof(out->username), "%llu:%s", (unsigned long long)expiry, name);
	else
		n = snprintf(out->username, sizeof(out->username), "%llu", (unsigned long long)expiry);
	if (n < 0 || (size_t)n >= sizeof(out->username))
		return -EINVAL;
	rp_stun_hmac_sha1(secret, secret_len, (const uint8_t *)out->username, (size_t)n, mac);
	sodium_bin2base64(out->password, sizeof(out->password), mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

/* --- errors --------------------------------------------------------------------------------------- */

const char *rp_turn_method_name(uint16_t method)
{
	switch (method) {
	case RP_STUN_METHOD_BINDING: return "Binding";
	case RP_STUN_METHOD_ALLOCATE: return "Allocate";
	case RP_STUN_METHOD_REFRESH: return "Refresh";
	case RP_STUN_METHOD_CREATE_PERMISSION: return "CreatePermission";
	case RP_STUN_METHOD_CONNECT: return "Connect";
	case RP_STUN_METHOD_CONNECTION_BIND: return "ConnectionBind";
	case RP_STUN_METHOD_CONNECTION_ATTEMPT: return "ConnectionAttempt";
	default: return "an unknown method";
	}
}

int rp_turn_code_errno(uint16_t method, int code)
{
	switch (code) {
	case 300: return -EREMCHG;
	case 400: return method == RP_STUN_METHOD_CONNECTION_BIND ? -ENOENT : -EINVAL;
	case 401: case 441: return -EACCES;
	case 403: return -EPERM;
	case 420: return -EOPNOTSUPP;
	case 437: return -EEXIST;
	case 438: return -EAGAIN;
	case 442: return -EPROTONOSUPPORT;
	case 443: return -EAFNOSUPPORT;
	case 446: return -EALREADY;
	case 447: return -ECONNREFUSED;
	case 486: return -EDQUOT;
	case 508: return -ENOSPC;
	default: return -EPROTO;
	}
}

static int stun_error(struct rp_turn *t, uint16_t method, const struct rp_stun_msg *m)
{
	t->err.method = method;
	t->err.code = m->has_error ? m->error_code : 500;
	snprintf(t->err.reason, sizeof(t->err.reason), "%s", m->has_error ? m->error_reason : "(no ERROR-CODE)");
	return rp_turn_code_errno(method, t->err.code);
}

/* --- handle --------------------------------------------------------------------------------------- */

int rp_turn_new(const struct rp_turn_cfg *cfg, struct rp_turn **out)
{
	struct rp_turn *t;
	if (!cfg || !out || !cfg->cred || cfg->server.sin_family != AF_INET || !cfg->server.sin_port ||
	    !cfg->cred->username[0] || strnlen(cfg->cred->username, sizeof(cfg->cred->username)) >= sizeof(cfg->cred->username) ||
	    strnlen(cfg->cred->password, sizeof(cfg->cred->password)) >= sizeof(cfg->cred->password) ||
	    (cfg->software && strlen(cfg->software) >= sizeof(t->software)))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->server = cfg->server;
	t->cred = *cfg->cred;
	if (cfg->software) {
		strcpy(t->software, cfg->software);
		t->has_software = true;
	}
	t->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	t->lifetime_s = cfg->lifetime_s;
	t->refresh_s = cfg->refresh_s;
	t->fd = t->pre_fd = -1;
	t->stop_pipe[0] = t->stop_pipe[1] = -1;
	t->info.server = cfg->server;
	*out = t;
	return 0;
}

void rp_turn_get_info(const struct rp_turn *t, struct rp_turn_info *info)
{
	*info = t->info;
}

const struct rp_turn_error *rp_turn_last_error(const struct rp_turn *t)
{
	return &t->err;
}

int rp_turn_fd(const struct rp_turn *t)
{
	return t->fd;
}

/* --- sockets -------------------------------------------------------------------------------------- */

static uint64_t deadline_in(int ms)
{
	return rp_mono_ns() + (uint64_t)ms * 1000000ull;
}

static int ms_left(uint64_t deadline)
{
	uint64_t now = rp_mono_ns();
	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000ull);
}

/* poll one fd for ev until deadline: 1 ready, -ETIMEDOUT, -errno */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = ev };
		int left = ms_left(deadline);
		int r = poll(&p, 1, left);
		if (r > 0)
			return 1;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* wait for rp_io_connect_start's connection: the fd, or -errno (and fd closed) */
static int dial_finish(int fd, uint64_t deadline)
{
	int err = 0, r;
	socklen_t el = sizeof(err);
	r = wait_fd(fd, POLLOUT, deadline);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el))
		err = errno;
	if (err) {
		close(fd);
		return -err;
	}
	return fd;
}

static int dial(const struct sockaddr_in *server, uint64_t deadline)
{
	int fd = rp_io_connect_start(server, 0);
	return fd < 0 ? fd : dial_finish(fd, deadline);
}

/* Read what fd has, up to n bytes, waiting for some until deadline: the count (> 0), -ETIMEDOUT,
 * -ECONNRESET (EOF), -errno. */
static ssize_t recv_some(int fd, uint8_t *buf, size_t n, uint64_t deadline)
{
	for (;;) {
		ssize_t k = recv(fd, buf, n, 0);
		if (k > 0)
			return k;
		if (k == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/* Read exactly n bytes before deadline: 0, -ETIMEDOUT, -ECONNRESET (EOF), -errno. */
static int read_exact(int fd, uint8_t *buf, size_t n, uint64_t deadline)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = recv_some(fd, buf + got, n - got, deadline);
		if (k < 0)
			return (int)k;
		got += (size_t)k;
	}
	return 0;
}

/* --- messages ------------------------------------------------------------------------------------- */

static void to_stun_addr(const struct sockaddr_in *s, struct rp_stun_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = RP_STUN_AF_INET;
	a->port = ntohs(s->sin_port);
	a->v4 = s->sin_addr.s_addr;
}

static bool from_stun_addr(const struct rp_stun_addr *a, struct sockaddr_in *s)
{
	memset(s, 0, sizeof(*s));
	if (a->family != RP_STUN_AF_INET)
		return false;
	s->sin_family = AF_INET;
	s->sin_port = htons(a->port);
	s->sin_addr.s_addr = a->v4;
	return true;
}

static int build(const struct rp_turn *t, const struct req *q, const uint8_t txid[RP_STUN_TXID_LEN],
		 uint8_t *buf, size_t cap)
{
	struct rp_stun_wr w;
	struct rp_stun_addr a;
	rp_stun_wr_start(&w, buf, cap, rp_stun_type(q->method, RP_STUN_REQUEST), txid);
	if (q->has_transport)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_REQUESTED_TRANSPORT, (uint32_t)RP_STUN_TRANSPORT_TCP << 24);
	if (q->has_lifetime)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_LIFETIME, q->lifetime);
	if (q->has_peer) {
		to_stun_addr(&q->peer, &a);
		rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_PEER_ADDRESS, &a);
	}
	if (q->has_id)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_CONNECTION_ID, q->id);
	if (t->has_software)
		rp_stun_wr_attr(&w, RP_STUN_ATTR_SOFTWARE, t->software, strlen(t->software));
	if (t->challenged) {
		rp_stun_wr_attr(&w, RP_STUN_ATTR_USERNAME, t->cred.username, strlen(t->cred.username));
		rp_stun_wr_attr(&w, RP_STUN_ATTR_REALM, t->realm, t->realm_len);
		rp_stun_wr_attr(&w, RP_STUN_ATTR_NONCE, t->nonce, t->nonce_len);
		rp_stun_wr_integrity(&w, t->key, sizeof(t->key));
	}
	return rp_stun_wr_end(&w);
}

/* Take REALM and NONCE from a 401/438; the key follows the realm. */
static void take_challenge(struct rp_turn *t, const struct rp_stun_msg *m)
{
	if (m->has_realm) {
		memcpy(t->realm, m->realm, m->realm_len + 1u);
		t->realm_len = m->realm_len;
		memcpy(t->info.realm, m->realm, m->realm_len + 1u);
	}
	memcpy(t->nonce, m->nonce, m->nonce_len + 1u);
	t->nonce_len = m->nonce_len;
	rp_stun_lt_key(t->cred.username, strlen(t->cred.username), t->realm, t->realm_len, t->cred.password,
		       strlen(t->cred.password), t->key);
	t->challenged = true;
}

/* An indication on the control connection: ConnectionAttempts are queued (while there is room). */
static void take_indication(struct rp_turn *t, const struct rp_stun_msg *m)
{
	struct attempt a;
	if (m->method != RP_STUN_METHOD_CONNECTION_ATTEMPT || !m->has_connection_id || !m->has_peer ||
	    !from_stun_addr(&m->peer, &a.peer) || t->n_attempts >= RP_TURN_MAX_ATTEMPTS)
		return;
	a.id = m->connection_id;
	t->attempts[t->n_attempts++] = a;
}

/* Next whole message on the control connection into out (its length in *len), reading until deadline.
 * 0, -ETIMEDOUT, -ECONNRESET, -EBADMSG (not STUN: the stream cannot be resynchronised), -EMSGSIZE. */
static int ctl_next(struct rp_turn *t, uint8_t *out, size_t *len, uint64_t deadline)
{
	for (;;) {
		long fl = rp_stun_frame_len(t->rbuf, t->have, sizeof(t->rbuf));
		if (fl < 0)
			return (int)fl;
		if (fl > 0 && (size_t)fl <= t->have) {
			memcpy(out, t->rbuf, (size_t)fl);
			*len = (size_t)fl;
			memmove(t->rbuf, t->rbuf + fl, t->have - (size_t)fl);
			t->have -= (size_t)fl;
			return 0;
		}
		ssize_t k = recv_some(t->fd, t->rbuf + t->have, sizeof(t->rbuf) - t->have, deadline);
		if (k < 0)
			return (int)k;
		t->have += (size_t)k;
	}
}

/* Read what the control connection has now (no waiting): indications are taken, stray responses
 * (to a request we stopped waiting for) dropped. 0 or the connection's error. */
static int ctl_pump(struct rp_turn *t)
{
	uint8_t msg[RP_STUN_MAX_MSG];
	size_t len;
	struct rp_stun_msg m;
	for (;;) {
		int r = ctl_next(t, msg, &len, 0);
		if (r == -ETIMEDOUT)
			return 0;
		if (r)
			return r;
		if (rp_stun_parse(msg, len, &m))
			return -EBADMSG;
		if (m.cls == RP_STUN_INDICATION)
			take_indication(t, &m);
	}
}

/* Check a success response to an authenticated request. */
static int check_success(struct rp_turn *t, bool authed, const uint8_t *msg, size_t len, const struct rp_stun_msg *m)
{
	if (m->n_unknown_required)
		return -EPROTO;       /* RFC 8489 §6.3.3: a success with what we do not understand failed */
	if (authed && rp_stun_check_integrity(msg, len, m, t->key, sizeof(t->key)))
		return -EBADMSG;      /* missing or wrong: not from the server we share the key with */
	return 0;
}

/* One request on the control connection and its response (in msg/len, parsed in *m), answering
 * 401/438 challenges. Indications that arrive meanwhile are taken. 0 (success response), or -errno
 * (an error response: t->err says which). */
static int transact(struct rp_turn *t, const struct req *q, uint8_t *msg, size_t *len, struct rp_stun_msg *m)
{
	uint8_t req[RP_STUN_MAX_MSG], txid[RP_STUN_TXID_LEN];
	if (t->fd < 0)
		return -ENOTCONN;
	for (int round = 0; round <= MAX_CHALLENGES; round++) {
		bool authed = t->challenged;
		uint64_t deadline = deadline_in(t->timeout_ms);
		int n, r;
		if (getrandom(txid, sizeof(txid), 0) != (ssize_t)sizeof(txid))
			return -EIO;
		n = build(t, q, txid, req, sizeof(req));
		if (n < 0)
			return n;
		r = rp_io_write_all(t->fd, req, (size_t)n, deadline);
		if (r)
			return r;
		for (;;) {
			r = ctl_next(t, msg, len, deadline);
			if (r)
				return r;
			if (rp_stun_parse(msg, *len, m))
				return -EBADMSG;
			if (m->cls == RP_STUN_INDICATION) {
				take_indication(t, m);
				continue;
			}
			if (m->cls == RP_STUN_REQUEST || memcmp(m->txid, txid, sizeof(txid)))
				continue;     /* a late answer to an earlier request, or nonsense: not ours */
			break;
		}
		if (m->method != q->method)
			return -EPROTO;
		if (m->cls == RP_STUN_SUCCESS) {
			r = check_success(t, authed, msg, *len, m);
			if (!r)
				memset(&t->err, 0, sizeof(t->err));
			return r;
		}
		/* error response */
		int code = m->has_error ? m->error_code : 500;
		if (m->has_nonce && (m->has_realm || t->realm_len) && (code == 438 || (code == 401 && !authed))) {
			take_challenge(t, m);
			continue;
		}
		return stun_error(t, q->method, m);
	}
	return stun_error(t, q->method, m);   /* challenged again and again */
}

/* --- requests ------------------------------------------------------------------------------------- */

static void set_lifetime(struct rp_turn *t, uint32_t lifetime)
{
	t->info.lifetime_s = lifetime;
	t->refreshed_ns = rp_mono_ns();
}

int rp_turn_allocate(struct rp_turn *t)
{
	struct req q = { .method = RP_STUN_METHOD_ALLOCATE, .has_transport = true,
			 .has_lifetime = t->lifetime_s != 0, .lifetime = t->lifetime_s };
	uint8_t msg[RP_STUN_MAX_MSG];
	size_t len;
	struct rp_stun_msg m;
	socklen_t sl = sizeof(t->info.local);
	int r;
	if (t->allocated || t->keeper_on)
		return -EALREADY;
	if (t->fd < 0) {
		r = dial(&t->server, deadline_in(t->timeout_ms));
		if (r < 0)
			return r;
		t->fd = r;
		t->have = 0;
		getsockname(t->fd, (struct sockaddr *)&t->info.local, &sl);
	}
	r = transact(t, &q, msg, &len, &m);
	if (r)
		return r;
	if (!m.has_relayed || !from_stun_addr(&m.relayed, &t->info.relayed) || !m.has_lifetime)
		return -EPROTO;
	if (m.has_xor_mapped)
		from_stun_addr(&m.xor_mapped, &t->info.mapped);
	set_lifetime(t, m.lifetime);
	t->allocated = true;
	return 0;
}

int rp_turn_refresh(struct rp_turn *t, uint32_t lifetime_s)
{
	struct req q = { .method = RP_STUN_METHOD_REFRESH, .has_lifetime = true, .lifetime = lifetime_s };
	uint8_t msg[RP_STUN_MAX_MSG];
	size_t len;
	struct rp_stun_msg m;
	int r;
	if (!t->allocated)
		return -ENOTCONN;
	r = transact(t, &q, msg, &len, &m);
	if (r)
		return r;
	set_lifetime(t, m.has_lifetime ? m.lifetime : lifetime_s);
	t->info.refreshes++;
	if (!lifetime_s)
		t->allocated = false;
	return 0;
}

int rp_turn_release(struct rp_turn *t)
{
	return rp_turn_refresh(t, 0);
}

static int permit(struct rp_turn *t, const struct sockaddr_in *peer)
{
	struct req q = { .method = RP_STUN_METHOD_CREATE_PERMISSION, .has_peer = true, .peer = *peer };
	uint8_t msg[RP_STUN_MAX_MSG];
	size_t len;
	struct rp_stun_msg m;
	return transact(t, &q, msg, &len, &m);
}

int rp_turn_permit(struct rp_turn *t, const struct sockaddr_in *peer)
{
	unsigned i;
	int r;
	if (!peer || peer->sin_family != AF_INET)
		return -EINVAL;
	if (!t->allocated)
		return -ENOTCONN;
	for (i = 0; i < t->n_permits; i++)
		if (t->permits[i].sin_addr.s_addr == peer->sin_addr.s_addr)
			break;
	if (i == t->n_permits && t->n_permits == RP_TURN_MAX_PERMITS)
		return -ENOSPC;
	r = permit(t, peer);
	if (r)
		return r;
	if (i == t->n_permits)
		t->permits[t->n_permits++] = *peer;
	if (t->n_permits == 1)
		t->permitted_ns = rp_mono_ns();
	return 0;
}

int rp_turn_connect(struct rp_turn *t, const struct sockaddr_in *peer, uint32_t *id)
{
	struct req q = { .method = RP_STUN_METHOD_CONNECT, .has_peer = true };
	uint8_t msg[RP_STUN_MAX_MSG];
	size_t len;
	struct rp_stun_msg m;
	int r;
	if (!peer || peer->sin_family != AF_INET || !id)
		return -EINVAL;
	if (!t->allocated)
		return -ENOTCONN;
	q.peer = *peer;
	r = transact(t, &q, msg, &len, &m);
	if (r)
		return r;
	if (!m.has_connection_id)
		return -EPROTO;
	*id = m.connection_id;
	return 0;
}

int rp_turn_wait_attempt(struct rp_turn *t, int timeout_ms, uint32_t *id, struct sockaddr_in *peer)
{
	uint64_t deadline = deadline_in(timeout_ms > 0 ? timeout_ms : 0);
	uint8_t msg[RP_STUN_MAX_MSG];
	size_t len;
	struct rp_stun_msg m;
	if (!t->allocated)
		return -ENOTCONN;
	while (!t->n_attempts) {
		int r = ctl_next(t, msg, &len, deadline);
		if (r)
			return r;
		if (rp_stun_parse(msg, len, &m))
			return -EBADMSG;
		if (m.cls == RP_STUN_INDICATION)
			take_indication(t, &m);
	}
	*id = t->attempts[0].id;
	if (peer)
		*peer = t->attempts[0].peer;
	memmove(t->attempts, t->attempts + 1, --t->n_attempts * sizeof(t->attempts[0]));
	return 0;
}

int rp_turn_bind(struct rp_turn *t, uint32_t id, int *fdp)
{
	struct req q = { .method = RP_STUN_METHOD_CONNECTION_BIND, .has_id = true, .id = id };
	uint8_t req[RP_STUN_MAX_MSG], txid[RP_STUN_TXID_LEN], msg[RP_STUN_MAX_MSG];
	uint64_t deadline = deadline_in(t->timeout_ms);
	struct rp_stun_msg m;
	long fl;
	int fd, n, r;
	if (!fdp)
		return -EINVAL;
	if (!t->allocated || !t->challenged)
		return -ENOTCONN;
	if (getrandom(txid, sizeof(txid), 0) != (ssize_t)sizeof(txid))
		return -EIO;
	n = build(t, &q, txid, req, sizeof(req));
	if (n < 0)
		return n;
	fd = -1;
	if (t->pre_fd >= 0) {   /* connected meanwhile (or not: then a new one) */
		fd = dial_finish(t->pre_fd, deadline);
		t->pre_fd = -1;
	}
	if (fd < 0)
		fd = dial(&t->server, deadline);
	if (fd < 0)
		return fd;
	r = rp_io_write_all(fd, req, (size_t)n, deadline);
	/* The server sends the peer's bytes right after the response: read exactly the response. */
	if (!r)
		r = read_exact(fd, msg, RP_STUN_HDR_LEN, deadline);
	if (!r) {
		fl = rp_stun_frame_len(msg, RP_STUN_HDR_LEN, sizeof(msg));
		r = fl < 0 ? (int)fl : read_exact(fd, msg + RP_STUN_HDR_LEN, (size_t)fl - RP_STUN_HDR_LEN, deadline);
	}
	if (!r && rp_stun_parse(msg, (size_t)fl, &m))
		r = -EBADMSG;
	if (!r && (m.cls == RP_STUN_REQUEST || m.cls == RP_STUN_INDICATION || memcmp(m.txid, txid, sizeof(txid)) ||
		   m.method != RP_STUN_METHOD_CONNECTION_BIND))
		r = -EPROTO;
	if (!r && m.cls == RP_STUN_ERROR) {
		if (m.has_nonce && m.error_code == 438)
			take_challenge(t, &m);   /* the next request on the control connection uses it */
		r = stun_error(t, q.method, &m);
	}
	if (!r)
		r = check_success(t, true, msg, (size_t)fl, &m);
	if (!r && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK))
		r = -errno;
	if (r) {
		close(fd);
		return r;
	}
	memset(&t->err, 0, sizeof(t->err));
	*fdp = fd;
	return 0;
}

/* --- keeper --------------------------------------------------------------------------------------- */

/* When the allocation is due for a refresh (CLOCK_MONOTONIC). */
static uint64_t refresh_due(const struct rp_turn *t)
{
	uint64_t life = (uint64_t)t->info.lifetime_s, after;
	if (t->refresh_s)
		after = t->refresh_s;
	else
		after = life > 120 ? life - 60 : life / 2;
	return t->refreshed_ns + after * 1000000000ull;
}

static void *keeper_main(void *arg)
{
	struct rp_turn *t = arg;
	int r = 0;
	while (!r) {
		uint64_t now = rp_mono_ns(), next = refresh_due(t);
		if (t->n_permits && t->permitted_ns + PERMIT_REFRESH_NS < next)
			next = t->permitted_ns + PERMIT_REFRESH_NS;
		struct pollfd p[2] = { { .fd = t->stop_pipe[0], .events = POLLIN }, { .fd = t->fd, .events = POLLIN } };
		int wait = next > now ? (int)((next - now) / 1000000ull) + 1 : 0;
		if (poll(p, 2, wait) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents) {
			r = ctl_pump(t);
			t->n_attempts = 0;   /* nobody takes them now: the server times them out */
			if (r)
				break;
		}
		now = rp_mono_ns();
		if (now >= refresh_due(t)) {
			r = rp_turn_refresh(t, t->lifetime_s ? t->lifetime_s : t->info.lifetime_s);
			if (r)
				break;
		}
		if (t->n_permits && now >= t->permitted_ns + PERMIT_REFRESH_NS) {
			for (unsigned i = 0; i < t->n_permits && !r; i++)
				r = permit(t, &t->permits[i]);
			t->permitted_ns = now;
			t->info.permit_refreshes++;
		}
	}
	t->keeper_err = r;
	return NULL;
}

int rp_turn_keeper_start(struct rp_turn *t)
{
	int r;
	if (t->keeper_on)
		return -EALREADY;
	if (!t->allocated)
		return -ENOTCONN;
	if (pipe2(t->stop_pipe, O_CLOEXEC))
		return -errno;
	t->keeper_err = 0;
	r = pthread_create(&t->keeper, NULL, keeper_main, t);
	if (r) {
		close(t->stop_pipe[0]);
		close(t->stop_pipe[1]);
		t->stop_pipe[0] = t->stop_pipe[1] = -1;
		return -r;
	}
	t->keeper_on = true;
	return 0;
}

int rp_turn_keeper_stop(struct rp_turn *t)
{
	if (!t->keeper_on)
		return 0;
	while (write(t->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(t->keeper, NULL);
	close(t->stop_pipe[0]);
	close(t->stop_pipe[1]);
	t->stop_pipe[0] = t->stop_pipe[1] = -1;
	t->keeper_on = false;
	return t->keeper_err;
}

int rp_turn_predial(struct rp_turn *t)
{
	if (t->pre_fd >= 0)
		return 0;
	t->pre_fd = rp_io_connect_start(&t->server, 0);
	return t->pre_fd < 0 ? t->pre_fd : 0;
}

void rp_turn_close(struct rp_turn *t)
{
	if (!t)
		return;
	rp_turn_keeper_stop(t);
	if (t->pre_fd >= 0)
		close(t->pre_fd);
	if (t->fd >= 0)
		close(t->fd);
	sodium_memzero(&t->cred, sizeof(t->cred));
	sodium_memzero(t->key, sizeof(t->key));
	free(t);
}
