/* SPDX-License-Identifier: MIT */
/* Rendezvous client (client.h): connecting, the clock samples, the join (its two halves for multi.c),
 * sealed messages to and from the peer among the other members of the session; the filter-probe
 * request is in client-fprobe.c. */
#include "rawpunch/rendezvous/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/rendezvous/client-internal.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"

struct rv_client {
	int fd;
	uint8_t rbuf[RV_HDR + RV_FRAME_MAX];
	size_t rlen;
	struct rv_keys keys;
	struct rv_peerstate ps;
	bool joined;
	int64_t offset_ns, rtt_ns, clock_err_ns;
	int64_t clock_sync_ns;         /* how long the join's clock sync took */
	int64_t connect_rtt_ns;        /* the TCP connect's time (rv_connect_hedged; 0: unknown) */
	bool synced;
	bool hello_kept;               /* the server keeps our hello for newcomers (its join answer said so) */
	unsigned bad_boxes;            /* fwd boxes that did not open under kbox (skipped) */
	unsigned good_boxes;           /* ... that did */
	int64_t peer_m;                /* the server's member number of the sender of the last box accepted */
	bool have_peer_m;
	volatile sig_atomic_t *stop;   /* rv_set_stop: a signal that sets it ends a wait with -EINTR */
	volatile sig_atomic_t *cancel; /* rv_set_cancel: another thread that sets it ends a wait with -ECANCELED */
};

static int wait_fd(int fd, short ev, uint64_t deadline_ms, volatile sig_atomic_t *stop, volatile sig_atomic_t *cancel)
{
	for (;;) {
		uint64_t now = rp_mono_ms();
		if (stop && *stop)
			return -EINTR;
		if (cancel && *cancel)
			return -ECANCELED;
		if (now >= deadline_ms)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = ev };
		/* with a stop flag, look at it every 50 ms: another thread may set it (rv_join_any gives
		 * up the other servers' slots that way), and a thread gets no EINTR from that */
		uint64_t slice = deadline_ms - now;
		if ((stop || cancel) && slice > 50)
			slice = 50;
		int r = poll(&p, 1, (int)slice);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
	}
}

int rv_client_from_fd(int fd, int64_t connect_rtt_ns, struct rv_client **out)
{
	struct rv_client *c;
	if (fd < 0 || !out)
		return -EINVAL;
	if (!(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->connect_rtt_ns = connect_rtt_ns > 0 ? connect_rtt_ns : 0;
	*out = c;
	return 0;
}

int rv_connect_hedged(const struct sockaddr_in *server, int timeout_ms, int hedge_ms, struct rv_client **out)
{
	int fd[2] = { -1, -1 }, won = -1, r = -ETIMEDOUT;
	if (!server || !out || timeout_ms <= 0)
		return -EINVAL;
	if ((fd[0] = rp_io_connect_start(server, 0)) < 0)
		return fd[0];
	uint64_t t0 = rp_mono_ms(), deadline = t0 + (uint64_t)timeout_ms, began[2] = { rp_mono_ns(), 0 };
	uint64_t hedge = hedge_ms > 0 && hedge_ms < timeout_ms ? t0 + (uint64_t)hedge_ms : 0;
	while (won < 0) {
		uint64_t now = rp_mono_ms();
		if (now >= deadline)
			break;
		if (hedge && now >= hedge) {   /* a lost SYN waits the kernel's 1 s: a second connection */
			hedge = 0;
			fd[1] = rp_io_connect_start(server, 0);
			began[1] = rp_mono_ns();
		}
		struct pollfd p[2];
		int np = 0;
		for (int i = 0; i < 2; i++)
			if (fd[i] >= 0)
				p[np++] = (struct pollfd){ .fd = fd[i], .events = POLLOUT };
		uint64_t until = hedge ? hedge : deadline;
		int w = poll(p, (nfds_t)np, (int)(until - now));
		if (w < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		for (int k = 0; k < np && won < 0; k++) {
			if (!p[k].revents)
				continue;
			int i = p[k].fd == fd[0] ? 0 : 1, err = 0;
			socklen_t el = sizeof(err);
			getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &err, &el);
			if (!err) {
				won = i;
			} else {   /* refused: so is the other (the same server) */
				r = -err;
				close(fd[i]);
				fd[i] = -1;
			}
		}
		if (won < 0 && fd[0] < 0 && fd[1] < 0)
			break;   /* refused */
	}
	for (int i = 0; i < 2; i++)
		if (i != won && fd[i] >= 0)
			close(fd[i]);
	if (won < 0)
		return r;
	return rv_client_from_fd(fd[won], (int64_t)(rp_mono_ns() - began[won]), out);   /* SYN to SYN-ACK: about one RTT */
}

int rv_connect(const struct sockaddr_in *server, int timeout_ms, struct rv_client **out)
{
	return rv_connect_hedged(server, timeout_ms, 0, out);
}

struct rv_client *rv_client_adopt_(int fd, const struct rv_keys *k)
{
	struct rv_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = fd;
	c->keys = *k;
	rv_peerstate_init(&c->ps);
	c->synced = true;
	return c;
}

const uint8_t *rv_client_nonce_(const struct rv_client *c)
{
	return c->ps.mine;
}

void rv_client_set_joined_(struct rv_client *c)
{
	c->joined = true;
}

void rv_set_stop(struct rv_client *c, volatile sig_atomic_t *stop)
{
	if (c)
		c->stop = stop;
}

void rv_set_cancel(struct rv_client *c, volatile sig_atomic_t *cancel)
{
	if (c)
		c->cancel = cancel;
}

void rv_close(struct rv_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		static const char bye[] = "\0\0\0\x0b{\"t\":\"bye\"}";   /* best effort */
		(void)!send(c->fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(c->fd);
	}
	rv_keys_wipe(&c->keys);
	sodium_memzero(&c->ps, sizeof(c->ps));
	free(c);
}

int rvc_send_json(struct rv_client *c, struct json_object *o, uint64_t deadline_ms)
{
	uint8_t *f;
	size_t n, off = 0;
	int r = o ? rv_frame_json(o, &f, &n) : -ENOMEM;
	json_object_put(o);
	if (r)
		return r;
	while (off < n) {
		ssize_t w = send(c->fd, f + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(c->fd, POLLOUT, deadline_ms, c->stop, c->cancel)))
				break;
			continue;
		}
		r = -errno;
		break;
	}
	free(f);
	return r;
}

/* Map a server error frame to -errno. */
static int server_error(struct json_object *o)
{
	struct json_object *jc;
	const char *code = json_object_object_get_ex(o, "code", &jc) ? json_object_get_string(jc) : "";
	if (!code)
		return -EPROTO;
	if (!strcmp(code, "full") || !strcmp(code, "busy"))
		return -EBUSY;
	if (!strcmp(code, "rate"))
		return -EAGAIN;
	if (!strcmp(code, "forbidden"))
		return -EACCES;
	if (!strcmp(code, "expired") || !strcmp(code, "idle"))
		return -ETIMEDOUT;
	return -EPROTO;
}

/* The next frame; an error frame is returned as such when raw_errors, else as server_error's -errno. */
static int recv_frame(struct rv_client *c, uint64_t deadline_ms, struct json_object **o, const char **type,
		      bool raw_errors)
{
	for (;;) {
		const uint8_t *body;
		size_t blen;
		long fl = rv_frame_scan(c->rbuf, c->rlen, &body, &blen);
		if (fl < 0)
			return -EPROTO;
		if (fl > 0) {
			int r = rv_body_parse(body, blen, o, type);
			memmove(c->rbuf, c->rbuf + fl, c->rlen - (size_t)fl);
			c->rlen -= (size_t)fl;
			if (r)
				return -EPROTO;
			if (!raw_errors && !strcmp(*type, "error")) {
				r = server_error(*o);
				json_object_put(*o);
				return r;
			}
			return 0;
		}
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, MSG_DONTWAIT);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = wait_fd(c->fd, POLLIN, deadline_ms, c->stop, c->cancel);
		if (r)
			return r;
	}
}

int rvc_recv_json(struct rv_client *c, uint64_t deadline_ms, struct json_object **o, const char **type)
{
	return recv_frame(c, deadline_ms, o, type, false);
}

/* All samples are sent at once and answered in order: one round trip, not one per sample. The first
 * answer waits behind nothing; later ones may queue behind their predecessors on either path, which
 * raises their RTT and lets the minimum-RTT filter (rv_clock_estimate) pass them over. The sending
 * and the reading are apart so that the join can go out between them, in the same round trip. */
static int clock_send(struct rv_client *c, int rounds, uint64_t *t1s, uint64_t deadline)
{
	for (int i = 0; i < rounds; i++) {
		struct json_object *o = json_object_new_object();
		if (!o)
			return -ENOMEM;
		t1s[i] = rp_real_ns() + (uint64_t)i;   /* distinct even within one clock tick */
		json_object_object_add(o, "t", json_object_new_string("time"));
		json_object_object_add(o, "t1", json_object_new_int64((int64_t)t1s[i]));
		int e = rvc_send_json(c, o, deadline);
		if (e)
			return e;
	}
	return 0;
}

static int clock_recv(struct rv_client *c, int rounds, const uint64_t *t1s, uint64_t deadline)
{
	struct rv_clock_sample smp[64];
	int n = 0, e;
	for (int i = 0; i < rounds; i++) {
		struct json_object *r, *j;
		const char *t;
		uint64_t t2, t3, t4;
		/* the answers come first: the server answers in order (a join sent after them too) */
		if ((e = rvc_recv_json(c, deadline, &r, &t)))
			return e;
		t4 = rp_real_ns();
		if (strcmp(t, "time") || !json_object_object_get_ex(r, "t1", &j) ||
		    (uint64_t)json_object_get_int64(j) != t1s[i] || !json_object_object_get_ex(r, "t2", &j) ||
		    !(t2 = (uint64_t)json_object_get_int64(j)) || !json_object_object_get_ex(r, "t3", &j) ||
		    !(t3 = (uint64_t)json_object_get_int64(j))) {
			json_object_put(r);
			return -EPROTO;
		}
		json_object_put(r);
		if (rv_clock_sample(t1s[i], t2, t3, t4, &smp[n]) == 0)
			n++;
	}
	struct rv_clock_est est;
	if (!n)
		return -EPROTO;
	if ((e = rv_clock_estimate(smp, n, &est)))
		return e;
	c->offset_ns = est.offset_ns;
	c->rtt_ns = est.rtt_ns;
	c->clock_err_ns = est.err_ns;
	c->synced = true;
	return 0;
}

int rv_clock_sync(struct rv_client *c, int rounds, int64_t *offset_ns, int64_t *rtt_ns)
{
	uint64_t t1s[64];
	uint64_t deadline = rp_mono_ms() + 5000u;
	int e;
	if (!c || rounds < 1 || rounds > 64)
		return -EINVAL;
	if ((e = clock_send(c, rounds, t1s, deadline)) || (e = clock_recv(c, rounds, t1s, deadline)))
		return e;
	if (offset_ns)
		*offset_ns = c->offset_ns;
	if (rtt_ns)
		*rtt_ns = c->rtt_ns;
	return 0;
}

uint64_t rv_server_now_ns(const struct rv_client *c)
{
	return (uint64_t)((int64_t)rp_real_ns() + c->offset_ns);
}

static int send_box(struct rv_client *c, const char *type, const struct json_object *obj, uint64_t deadline)
{
	struct json_object *m = rv_msg_wrap(&c->ps, type, obj), *f;
	char *b64;
	size_t n;
	int r;
	if (!m)
		return -EINVAL;
	const char *s = json_object_to_json_string_length(m, JSON_C_TO_STRING_PLAIN, &n);
	r = s ? rv_box_seal(&c->keys, (const uint8_t *)s, n, &b64) : -ENOMEM;
	json_object_put(m);
	if (r)
		return r;
	f = json_object_new_object();
	if (!f) {
		free(b64);
		return -ENOMEM;
	}
	json_object_object_add(f, "t", json_object_new_string("fwd"));
	json_object_object_add(f, "box", json_object_new_string(b64));
	if (!strcmp(type, "hello"))   /* the server keeps it for members that come later (proto.h) */
		json_object_object_add(f, "hello", json_object_new_boolean(1));
	free(b64);
	return rvc_send_json(c, f, deadline);
}

/* This side's hello: its fresh nonce, and its RTT to the server and clock error, so that the peer can
 * size the lead (rv_lead_auto_ns) before it proposes. The hello that goes out with the join precedes
 * the clock sync (unless the client synced before): it carries the connect's RTT and no error, and the
 * peer takes the error's hard bound, rtt / 2. */
static int send_hello(struct rv_client *c, uint64_t deadline)
{
	struct json_object *hi = json_object_new_object();
	if (!hi)
		return -ENOMEM;
	if (c->synced) {
		json_object_object_add(hi, "rtt", json_object_new_int64(c->rtt_ns));
		json_object_object_add(hi, "err", json_object_new_int64(c->clock_err_ns));
	} else if (c->connect_rtt_ns > 0) {
		json_object_object_add(hi, "rtt", json_object_new_int64(c->connect_rtt_ns));
	}
	int r = send_box(c, "hello", hi, deadline);
	json_object_put(hi);
	return r;
}

#define RB_NEWCOMER 1
#define HELLO_RESENDS (2 * RV_MEMBERS_MAX)   /* recv_box: the server says another member joined the session */

/* Next sealed message from the peer. Server frames other than fwd: "paired" (another member joined)
 * returns RB_NEWCOMER when newcomer is asked for, else is skipped like "wait"; "gone" is -EPIPE when
 * it names the member whose box we accepted last (or names none: a server that does not number
 * members), else skipped: a squatter leaving is not our peer leaving.
 * Boxes are skipped, never fatal, when
 *   - they do not authenticate (counted in bad_boxes): the server forwards every member's boxes to
 *     every other member, and anyone who saw the id may be a member (proto.h); only at the deadline,
 *     if nothing authentic ever came, is that reported: -EACCES (a wrong key, or only intruders);
 *   - they authenticate but rv_msg_check refuses them (replays, boxes addressed to another run's
 *     nonce, a stale hello): only a key holder made them, so they are old traffic a server replays or
 *     our peer's answer to a superseded hello; dropping them gives a server no power it lacks. */
static int recv_box(struct rv_client *c, uint64_t deadline, struct json_object **obj, const char **type,
		    bool newcomer)
{
	for (;;) {
		struct json_object *o, *jb, *jm;
		const char *t;
		uint8_t *pt;
		size_t pl;
		int r = rvc_recv_json(c, deadline, &o, &t);
		if (r == -ETIMEDOUT && c->bad_boxes && !c->good_boxes)
			return -EACCES;
		if (r)
			return r;
		bool has_m = json_object_object_get_ex(o, "m", &jm) && json_object_is_type(jm, json_type_int);
		int64_t m = has_m ? json_object_get_int64(jm) : 0;
		if (!strcmp(t, "gone")) {
			json_object_put(o);
			if (!has_m || (c->have_peer_m && m == c->peer_m))
				return -EPIPE;
			continue;
		}
		if (!strcmp(t, "paired") && newcomer) {
			json_object_put(o);
			return RB_NEWCOMER;
		}
		if (strcmp(t, "fwd")) {
			json_object_put(o);
			continue;
		}
		if (!json_object_object_get_ex(o, "box", &jb) || !json_object_is_type(jb, json_type_string)) {
			json_object_put(o);
			return -EPROTO;
		}
		r = rv_box_open(&c->keys, json_object_get_string(jb), &pt, &pl);
		json_object_put(o);
		if (r == -EBADMSG) {
			c->bad_boxes++;
			continue;
		}
		if (r)
			return r;
		c->good_boxes++;
		r = rv_msg_check(&c->ps, pt, pl, obj, type);
		sodium_memzero(pt, pl);
		free(pt);
		if (r == -EPERM || r == -EALREADY)
			continue;
		if (r == 0) {
			c->have_peer_m = has_m;
			c->peer_m = m;
		}
		return r;
	}
}

static int get_i64(struct json_object *o, const char *k, int64_t *v)
{
	struct json_object *j;
	if (!json_object_object_get_ex(o, k, &j) || !json_object_is_type(j, json_type_int))
		return -EPROTO;
	*v = json_object_get_int64(j);
	return 0;
}

/* Clock sync, join by id and hello in one flight; wait until the server pairs us (a peer with the same
 * id came). A server that keeps hellos (its answer to the join says "hello":true) hands ours to the
 * members there and to every later one, and theirs to us right after "paired": the peer's nonce is
 * here one round trip after the join, and the info can go out as soon as this side's natinfo is
 * ready. An older server forwards the hello only if a member is there already, else answers it
 * "unpaired" (skipped): rv_join_finish_ says hello again then. */
int rv_join_begin_(struct rv_client *c, const struct rv_keys *k, const struct rv_join_req *req,
		      uint64_t deadline)
{
	int rounds = req->clock_rounds > 0 ? req->clock_rounds : 8;
	struct json_object *o;
	const char *t;
	uint64_t t1s[64], t0 = rp_mono_ns();
	bool sync = !c->synced;
	int r;
	if (rounds > 64)
		rounds = 64;
	c->keys = *k;
	c->hello_kept = false;
	rv_peerstate_init(&c->ps);
	/* the clock samples, the join and the hello in one round trip: the samples' answers come back
	 * first */
	if (sync && (r = clock_send(c, rounds, t1s, deadline)))
		return r;
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "t", json_object_new_string("join"));
	json_object_object_add(o, "v", json_object_new_int(1));
	json_object_object_add(o, "id", json_object_new_string(c->keys.id_hex));
	if ((r = rvc_send_json(c, o, deadline)) || (r = send_hello(c, deadline)))
		return r;
	if (sync) {
		if ((r = clock_recv(c, rounds, t1s, deadline)))
			return r;
		c->clock_sync_ns = (int64_t)(rp_mono_ns() - t0);
	}
	for (;;) {
		struct json_object *j;
		if ((r = recv_frame(c, deadline, &o, &t, true)))
			return r;
		if (!strcmp(t, "error")) {
			/* an older server refuses a hello before the pairing: nothing else is wrong */
			bool unpaired = json_object_object_get_ex(o, "code", &j) && json_object_is_type(j, json_type_string) &&
					!strcmp(json_object_get_string(j), "unpaired");
			r = unpaired ? 0 : server_error(o);
			json_object_put(o);
			if (r)
				return r;
			continue;
		}
		bool paired = !strcmp(t, "paired");
		if ((paired || !strcmp(t, "wait")) && json_object_object_get_ex(o, "hello", &j) &&
		    json_object_is_type(j, json_type_boolean) && json_object_get_boolean(j))
			c->hello_kept = true;
		json_object_put(o);
		if (paired)
			break;
	}
	c->joined = true;
	return 0;
}

/* A clock error as the lead counts it: a missing (negative) or impossible one (above the hard bound
 * rtt / 2) is the hard bound. */
static int64_t err_or_bound(int64_t err_ns, int64_t rtt_ns)
{
	return err_ns < 0 || err_ns > rtt_ns / 2 ? rtt_ns / 2 : err_ns;
}

/* rv_lead_auto_ns in two shares: the proposer's own (its half of the relay path, its clock error, the
 * set-up allowance) and the peer's (the peer's half of the path and clock error, and the slack, an
 * eighth of the relay RTT, at least RV_LEAD_SLACK_MS), which needs the peer's measurements: in
 * the join both sides add it to an "auto" base once both infos are there. rtt_ns >= 0. */
static uint64_t lead_own_ns(int64_t rtt_ns, int64_t err_ns, uint64_t setup_ns)
{
	return (uint64_t)rtt_ns / 2 + (uint64_t)err_ns + setup_ns;
}

static uint64_t lead_share_ns(int64_t rtt_ns, int64_t peer_rtt_ns, int64_t peer_err_ns)
{
	uint64_t slack = ((uint64_t)rtt_ns + (uint64_t)peer_rtt_ns) / 8;
	if (slack < (uint64_t)RV_LEAD_SLACK_MS * 1000000u)
		slack = (uint64_t)RV_LEAD_SLACK_MS * 1000000u;
	return (uint64_t)peer_rtt_ns / 2 + (uint64_t)peer_err_ns + slack;
}

/* "IP:PORT" (a relayed address in the info), port 1..65535. 0 or -EINVAL. */
static int parse_relayed(const char *s, struct sockaddr_in *out)
{
	char ip[INET_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	char *end;
	if (!colon || (size_t)(colon - s) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, ip, &out->sin_addr) != 1 || !out->sin_addr.s_addr)
		return -EINVAL;
	out->sin_port = htons((uint16_t)port);
	return 0;
}

/* The next accepted box during the join. A member that joins after our hello went out (the server
 * says "paired" again) gets it from a server that keeps hellos; from an older one it has not seen it:
 * say it again, for at most HELLO_RESENDS newcomers in all (the server admits RV_MEMBERS_MAX members
 * at once; squatters coming and going get no more). */
static int join_recv(struct rv_client *c, uint64_t deadline, unsigned *hellos, struct json_object **o,
		     const char **t)
{
	int r;
	while ((r = recv_box(c, deadline, o, t, true)) == RB_NEWCOMER)
		if (!c->hello_kept && ++*hellos <= HELLO_RESENDS && (r = send_hello(c, deadline)))
			return r;
	return r;
}

/* Paired: hello both ways, then natinfo, candidates, clocks and the start. Boxes from other members
 * that do not authenticate are skipped (recv_box): the exchange goes on with the one that does. */
int rv_join_finish_(struct rv_client *c, const struct rv_join_req *req, struct rv_join_res *res,
		       uint64_t deadline)
{
	struct json_object *info = NULL;
	const char *t;
	unsigned hellos = 0;
	int r;
	/* 2. the peer's hello: its fresh nonce. Ours went out with the join (rv_join_begin_); a server
	 * that does not keep hellos needs it again now, for the members it paired us with. The first box
	 * accepted may also be the peer's info, if the peer saw our hello but we missed its own (it was
	 * sent before we joined, and an older server's hello resends for newcomers ran out): it names the
	 * peer as well. */
	if (!c->hello_kept && (r = send_hello(c, deadline)))
		return r;
	if ((r = join_recv(c, deadline, &hellos, &info, &t)))
		return r == -EPROTO ? -EACCES : r;
	int64_t hello_rtt = -1, hello_err = -1;
	if (!strcmp(t, "hello")) {
		/* absent or out of range: rv_lead_auto_ns assumes (a hello sent before the clock sync has
		 * the connect's RTT and no error) */
		if (get_i64(info, "rtt", &hello_rtt) || hello_rtt < 0 || hello_rtt > RV_CLOCK_OFFSET_MAX)
			hello_rtt = -1;
		if (hello_rtt < 0 || get_i64(info, "err", &hello_err) || hello_err < 0 || hello_err > hello_rtt / 2)
			hello_err = -1;
		json_object_put(info);
		info = NULL;
	} else if (strcmp(t, "info")) {
		json_object_put(info);
		return -EPROTO;
	}
	/* 3. info: natinfo, candidates, clock, proposed start (server clock), as soon as this side's
	 * natinfo is known */
	struct rp_natinfo me = req->me;
	struct sockaddr_in relayed = req->relayed;
	if (req->ready && (r = req->ready(req->ready_arg, &me, &relayed))) {
		json_object_put(info);
		return r;
	}
	/* The proposal: "base", the start this side needs (a fixed lead, or with lead_auto this side's
	 * share of rv_lead_auto_ns), and "auto": whether the peer's share is still to be added. Both
	 * sides add it from the two infos' rtt and err alike (below), so the lead is sized from the
	 * peer's measured clock without waiting for it. "start" is the whole lead from the peer's hello,
	 * for an older peer (it takes the later "start"; so does this side when the peer sends no base). */
	uint64_t lead_ns, now_srv = rv_server_now_ns(c), base;
	int64_t my_err = err_or_bound(c->clock_err_ns, c->rtt_ns);
	if (req->lead_auto) {
		uint64_t setup_ns = (uint64_t)(req->setup_ms ? req->setup_ms : RV_SETUP_MS) * 1000000u;
		lead_ns = rv_lead_auto_ns(c->rtt_ns, hello_rtt, c->clock_err_ns, hello_err, setup_ns);
		base = now_srv + lead_own_ns(c->rtt_ns, my_err, setup_ns);
	} else {
		lead_ns = (uint64_t)(req->lead_ms ? req->lead_ms : 500) * 1000000u;
		if ((uint64_t)c->rtt_ns * 4 > lead_ns)
			lead_ns = (uint64_t)c->rtt_ns * 4;
		base = now_srv + lead_ns;
	}
	uint64_t propose = now_srv + lead_ns;
	struct json_object *mi = json_object_new_object(), *cand = json_object_new_array();
	struct json_object *ni = rp_natinfo_to_json(&me);
	if (!mi || !cand || !ni) {
		json_object_put(mi);
		json_object_put(cand);
		json_object_put(ni);
		json_object_put(info);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < req->n_cand; i++)
		json_object_array_add(cand, json_object_new_int(req->cand[i]));
	json_object_object_add(mi, "natinfo", ni);
	json_object_object_add(mi, "cand", cand);
	json_object_object_add(mi, "offset", json_object_new_int64(c->offset_ns));
	json_object_object_add(mi, "rtt", json_object_new_int64(c->rtt_ns));
	json_object_object_add(mi, "err", json_object_new_int64(my_err));
	json_object_object_add(mi, "start", json_object_new_int64((int64_t)propose));
	json_object_object_add(mi, "base", json_object_new_int64((int64_t)base));
	json_object_object_add(mi, "auto", json_object_new_boolean(req->lead_auto));
	if (relayed.sin_addr.s_addr) {   /* optional: a TURN relayed address, "IP:PORT" */
		char ra[INET_ADDRSTRLEN + 8];
		inet_ntop(AF_INET, &relayed.sin_addr, ra, INET_ADDRSTRLEN);
		snprintf(ra + strlen(ra), 8, ":%u", ntohs(relayed.sin_port));
		json_object_object_add(mi, "relay", json_object_new_string(ra));
	}
	/* A newer hello before the peer's info means the first one was a replay (rv_msg_check let the
	 * newest hello name the peer): address the info again, to the real peer (at most 8 times; later
	 * hellos are only skipped and the deadline ends the wait). The real peer skips the info we
	 * addressed to the replayed nonce. So does it when a replayed hello came after the real one:
	 * then the peer's info (addressed to our nonce: it pins the peer) names another sender than the
	 * one ours went to, and ours goes again, to it. */
	uint8_t sent_to[RV_NONCE_LEN];
	memcpy(sent_to, c->ps.theirs, sizeof(sent_to));
	if ((r = send_box(c, "info", mi, deadline))) {
		json_object_put(mi);
		json_object_put(info);
		return r;
	}
	for (int resent = 0; !info;) {
		if ((r = join_recv(c, deadline, &hellos, &info, &t))) {
			json_object_put(mi);
			return r;
		}
		if (strcmp(t, "hello"))
			break;
		json_object_put(info);
		info = NULL;
		memcpy(sent_to, c->ps.theirs, sizeof(sent_to));
		if (++resent <= 8 && (r = send_box(c, "info", mi, deadline))) {
			json_object_put(mi);
			return r;
		}
	}
	if (!strcmp(t, "info") && c->ps.pinned && memcmp(sent_to, c->ps.theirs, sizeof(sent_to)) &&
	    (r = send_box(c, "info", mi, deadline))) {
		json_object_put(mi);
		json_object_put(info);
		return r;
	}
	json_object_put(mi);
	int64_t peer_start = 0;
	struct json_object *jn, *jc;
	if (strcmp(t, "info") || !json_object_object_get_ex(info, "natinfo", &jn) ||
	    rp_natinfo_from_json(jn, &res->peer) || get_i64(info, "offset", &res->peer_offset_ns) ||
	    get_i64(info, "rtt", &res->peer_rtt_ns) || get_i64(info, "start", &peer_start) || peer_start <= 0 ||
	    !json_object_object_get_ex(info, "cand", &jc) || !json_object_is_type(jc, json_type_array) ||
	    json_object_array_length(jc) > RV_MAX_CAND) {
		json_object_put(info);
		return -EPROTO;
	}
	for (size_t i = 0; i < json_object_array_length(jc); i++) {
		struct json_object *p = json_object_array_get_idx(jc, i);
		int64_t v = json_object_get_int64(p);
		if (!json_object_is_type(p, json_type_int) || v < 1 || v > 65535) {
			json_object_put(info);
			return -EPROTO;
		}
		res->peer_cand[res->n_peer_cand++] = (uint16_t)v;
	}
	struct json_object *jr;
	if (json_object_object_get_ex(info, "relay", &jr) &&
	    (!json_object_is_type(jr, json_type_string) || parse_relayed(json_object_get_string(jr), &res->peer_relayed))) {
		json_object_put(info);
		return -EPROTO;
	}
	/* the peer's clock uncertainty; a peer that does not send it gets the hard bound */
	int64_t peer_err = -1, peer_base = 0;
	(void)get_i64(info, "err", &peer_err);
	peer_err = err_or_bound(peer_err, res->peer_rtt_ns);
	struct json_object *ja;
	bool has_base = json_object_object_get_ex(info, "base", NULL);
	bool peer_auto = json_object_object_get_ex(info, "auto", &ja) && json_object_is_type(ja, json_type_boolean) &&
			 json_object_get_boolean(ja);
	if (has_base && (get_i64(info, "base", &peer_base) || peer_base <= 0)) {
		json_object_put(info);
		return -EPROTO;
	}
	json_object_put(info);
	if (res->peer_rtt_ns < 0 || res->peer_rtt_ns > RV_CLOCK_OFFSET_MAX || res->peer_offset_ns > RV_CLOCK_OFFSET_MAX ||
	    res->peer_offset_ns < -RV_CLOCK_OFFSET_MAX)
		return -ERANGE;
	/* both sides hold both proposals: the later one is the agreed start, on the server's clock (each
	 * side's base with the other's share of the lead when it asked for it: both compute the same
	 * from the same two infos; an older peer's "start" against ours); it must lie ahead, and not
	 * further than RV_START_MAX_NS (a lying server's clock samples could otherwise push it anywhere) */
	uint64_t start;
	if (has_base) {
		uint64_t mine = base + (req->lead_auto ? lead_share_ns(c->rtt_ns, res->peer_rtt_ns, peer_err) : 0);
		uint64_t theirs = (uint64_t)peer_base + (peer_auto ? lead_share_ns(res->peer_rtt_ns, c->rtt_ns, my_err) : 0);
		start = mine > theirs ? mine : theirs;
		lead_ns = mine - now_srv;
	} else {
		start = propose > (uint64_t)peer_start ? propose : (uint64_t)peer_start;
	}
	if (start > rv_server_now_ns(c) + RV_START_MAX_NS)
		return -ERANGE;
	res->start_server_ns = start;
	res->start_ns = (uint64_t)((int64_t)start - c->offset_ns);
	res->offset_ns = c->offset_ns;
	res->rtt_ns = c->rtt_ns;
	res->relay_rtt_ns = c->rtt_ns + res->peer_rtt_ns;
	res->clock_err_ns = my_err + peer_err;   /* what the peer adds too: both plans see the same sum */
	res->clock_bound_ns = (c->rtt_ns + res->peer_rtt_ns) / 2;
	res->lead_ns = (int64_t)lead_ns;
	res->clock_sync_ns = c->clock_sync_ns;
	res->initiator = memcmp(c->ps.mine, c->ps.theirs, RV_NONCE_LEN) < 0;
	/* this run's nonce, the same on both sides: both fresh per-join nonces, the smaller first */
	{
		crypto_generichash_state hs;
		const uint8_t *first = res->initiator ? c->ps.mine : c->ps.theirs;
		const uint8_t *second = res->initiator ? c->ps.theirs : c->ps.mine;
		crypto_generichash_init(&hs, NULL, 0, sizeof(res->run_nonce));
		crypto_generichash_update(&hs, first, RV_NONCE_LEN);
		crypto_generichash_update(&hs, second, RV_NONCE_LEN);
		crypto_generichash_final(&hs, res->run_nonce, sizeof(res->run_nonce));
	}
	res->bad_boxes = c->bad_boxes;
	return 0;
}

uint64_t rv_lead_auto_ns(int64_t rtt_ns, int64_t peer_rtt_ns, int64_t err_ns, int64_t peer_err_ns, uint64_t setup_ns)
{
	if (rtt_ns < 0)
		rtt_ns = 0;
	if (err_ns < 0)
		err_ns = rtt_ns / 2;
	if (peer_rtt_ns < 0)
		peer_rtt_ns = rtt_ns;
	if (peer_err_ns < 0)
		peer_err_ns = peer_rtt_ns / 2;
	return lead_own_ns(rtt_ns, err_ns, setup_ns) + lead_share_ns(rtt_ns, peer_rtt_ns, peer_err_ns);
}

int rv_join_keys(struct rv_client *c, const struct rv_keys *k, const struct rv_join_req *req,
		 struct rv_join_res *res)
{
	int timeout = req && req->timeout_ms > 0 ? req->timeout_ms : 30000;
	uint64_t deadline = rp_mono_ms() + (uint64_t)timeout;
	int r;
	if (!c || !k || !req || !res || c->joined || req->n_cand > RV_MAX_CAND)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	if ((r = rv_join_begin_(c, k, req, deadline)))
		return r;
	return rv_join_finish_(c, req, res, deadline);
}

int rv_join(struct rv_client *c, const struct rv_join_req *req, struct rv_join_res *res)
{
	struct rv_keys k;
	int r;
	if (!req)
		return -EINVAL;
	if ((r = rv_keys_derive(req->secret, req->secret_len, req->session, &k)))
		return r;
	r = rv_join_keys(c, &k, req, res);
	rv_keys_wipe(&k);
	return r;
}

int rv_send(struct rv_client *c, const char *type, const struct json_object *obj)
{
	if (!c || !c->joined)
		return -ENOTCONN;
	return send_box(c, type, obj, rp_mono_ms() + 10000u);
}

int rv_recv(struct rv_client *c, int timeout_ms, struct json_object **obj, const char **type)
{
	if (!c || !c->joined)
		return -ENOTCONN;
	int r = recv_box(c, rp_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), obj, type, false);
	return r == -EBADMSG ? -EACCES : r;
}

unsigned rv_bad_boxes(const struct rv_client *c)
{
	return c ? c->bad_boxes : 0;
}
