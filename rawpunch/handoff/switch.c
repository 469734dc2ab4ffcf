/* SPDX-License-Identifier: MIT */
/* switch (switch.h): the thread that carries one byte stream between the data mode's local socket
 * and the peer, framed over the relay, then (after SWITCH markers both ways) unframed over a direct
 * connection. One poll loop; each direction is a small state machine. */
#include "rawpunch/handoff/switch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

enum { F_DATA = 1, F_CREDIT, F_EOF, F_SWITCH, F_ACK };
#define HDR 5
#define CHUNK (64u * 1024u)            /* largest DATA frame */
#define RELAY_OUT_CAP (RP_SWITCH_WINDOW + 4 * CHUNK)
#define BIG (1024u * 1024u)            /* the direct path's buffers */
#define CTRL_RESERVE 256               /* room kept in the relay output for control frames (CREDITs at most
                                          every W/4 bytes, one SWITCH, one EOF, one ACK) */

/* the state of one direction */
enum out_state { OUT_RELAY, OUT_DIRECT, OUT_END };   /* local -> peer */
enum in_state { IN_RELAY, IN_WAIT_DIRECT, IN_DIRECT, IN_HANDED, IN_END };   /* peer -> local */
/* the hand-back (switch.h): off, allowed, the marker with the direct fd sent, done (local closed) */
enum hb_state { HB_OFF, HB_ALLOWED, HB_SENT, HB_DONE };

struct buf {
	uint8_t *b;
	size_t off, len, cap;
};

struct rp_switch {
	int local, relay, direct, wake[2];
	pthread_t th;
	pthread_mutex_t mu;
	int given;                     /* a direct fd handed over, not yet taken by the thread; -1 */
	bool given_once, finished, handback;   /* handback: rp_switch_allow_handback (under mu) */
	rp_switch_relay_done_fn done;
	void *done_arg;
	enum out_state out;
	enum in_state in;
	enum hb_state hb;
	struct buf out_r, out_d, in_r, to_local;
	uint64_t credit, unacked;
	uint32_t data_left;            /* bytes of the DATA frame being read that are still to come */
	bool relay_eof, end_sent, peer_end, ack_sent, ack_rcvd, d_shut, local_shut;
	struct rp_switch_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int buf_init(struct buf *b, size_t cap)
{
	b->b = malloc(cap);
	b->off = b->len = 0;
	b->cap = cap;
	return b->b ? 0 : -ENOMEM;
}

static size_t buf_room(struct buf *b)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->off && b->cap - b->len < b->cap / 2) {   /* compact */
		memmove(b->b, b->b + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	return b->cap - b->len;
}

static size_t buf_used(const struct buf *b)
{
	return b->len - b->off;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* a control frame onto the relay's output (room is always kept for them) */
static void frame(struct rp_switch *s, uint8_t type, uint32_t len, const void *payload, size_t plen)
{
	struct buf *b = &s->out_r;
	buf_room(b);
	b->b[b->len] = type;
	put_be32(b->b + b->len + 1, len);
	if (plen)
		memcpy(b->b + b->len + HDR, payload, plen);
	b->len += HDR + plen;
}

/* write what b holds to fd; 0 (maybe partly), -errno */
static int flush(int fd, struct buf *b)
{
	while (buf_used(b)) {
		ssize_t n = send(fd, b->b + b->off, buf_used(b), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, b->b + b->off, buf_used(b));
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno == EINTR ? 0 : -errno;
		b->off += (size_t)n;
	}
	b->off = b->len = 0;
	return 0;
}

/* read into b; bytes read, 0 at EOF, -EAGAIN, -errno */
static ssize_t fill(int fd, struct buf *b, size_t max)
{
	size_t room = buf_room(b);
	if (room > max)
		room = max;
	ssize_t n = read(fd, b->b + b->len, room);
	if (n < 0)
		return errno == EINTR || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	b->len += (size_t)n;
	return n;
}

/* local -> relay as a DATA frame, within the credit */
static int local_to_relay(struct rp_switch *s)
{
	struct buf *b = &s->out_r;
	size_t room = buf_room(b);
	size_t want = s->credit < CHUNK ? (size_t)s->credit : CHUNK;
	if (room < HDR + want + CTRL_RESERVE)
		return 0;
	ssize_t n = read(s->local, b->b + b->len + HDR, want);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0) {
		frame(s, F_EOF, 0, NULL, 0);
		s->end_sent = true;
		s->out = OUT_END;
		return 0;
	}
	b->b[b->len] = F_DATA;
	put_be32(b->b + b->len + 1, (uint32_t)n);
	b->len += HDR + (size_t)n;
	s->credit -= (uint64_t)n;
	s->st.sent += (uint64_t)n;
	s->st.sent_relay += (uint64_t)n;
	return 0;
}

/* a DATA frame's payload as far as it has arrived and the local output has room: a frame is passed on
 * while it arrives, not once it is whole (a 64 KiB frame takes several round trips of a new relayed
 * connection's slow start: waiting for it delayed the first byte by as many). 0, or 1 when stuck */
static int relay_data(struct rp_switch *s)
{
	struct buf *b = &s->in_r;
	size_t n = buf_used(b), room = buf_room(&s->to_local);
	if (n > s->data_left)
		n = s->data_left;
	if (n > room)
		n = room;
	if (!n)
		return 1;
	memcpy(s->to_local.b + s->to_local.len, b->b + b->off, n);
	s->to_local.len += n;
	b->off += n;
	s->data_left -= (uint32_t)n;
	s->st.recv += n;
	s->st.recv_relay += n;
	if (!s->st.t_first_rx_ns)
		s->st.t_first_rx_ns = now_ns();
	return 0;
}

/* the frames in in_r, as far as the local output has room for their data */
static int parse_relay(struct rp_switch *s)
{
	struct buf *b = &s->in_r;
	while (s->data_left || buf_used(b) >= HDR) {
		if (s->data_left) {
			if (relay_data(s))
				return 0;
			continue;
		}
		const uint8_t *p = b->b + b->off;
		uint32_t len = get_be32(p + 1);
		switch (p[0]) {
		case F_DATA:
			if (s->peer_end || len == 0 || len > CHUNK)
				return -EPROTO;
			s->data_left = len;
			b->off += HDR;
			break;
		case F_CREDIT:
			s->credit += len;
			if (s->credit > RP_SWITCH_WINDOW)
				return -EPROTO;
			b->off += HDR;
			break;
		case F_EOF:
			if (s->peer_end)
				return -EPROTO;
			s->peer_end = true;
			s->in = IN_END;
			b->off += HDR;
			break;
		case F_SWITCH: {
			if (s->peer_end || len != 8)
				return -EPROTO;
			if (buf_used(b) < HDR + 8)
				return 0;
			uint64_t cnt = (uint64_t)get_be32(p + HDR) << 32 | get_be32(p + HDR + 4);
			if (cnt != s->st.recv_relay)
				return -EPROTO;   /* a frame lost or invented on the way: never guess */
			s->peer_end = true;
			s->in = s->direct >= 0 ? IN_DIRECT : IN_WAIT_DIRECT;
			b->off += HDR + 8;
			break;
		}
		case F_ACK:
			s->ack_rcvd = true;
			b->off += HDR;
			break;
		default:
			return -EPROTO;
		}
	}
	return 0;
}

/* The relay is no longer needed: both ends exchanged and acknowledged (or the peer closed it). */
static void relay_close(struct rp_switch *s)
{
	close(s->relay);
	s->relay = -1;
	if (s->done)
		s->done(s->done_arg);
}

static int step_relay_in(struct rp_switch *s)
{
	ssize_t n = fill(s->relay, &s->in_r, s->in_r.cap);
	if (n == -EAGAIN)
		return 0;
	if (n == 0 || n == -ECONNRESET)
		s->relay_eof = true;   /* judged once what came before it is parsed */
	else if (n < 0)
		return (int)n;
	return 0;
}

/* in still holds something to pass on (data that waits for room on the local side, or a whole frame) */
static bool more_input(const struct rp_switch *s)
{
	const struct buf *b = &s->in_r;
	if (s->data_left)
		return buf_used(b) > 0;
	if (buf_used(b) < HDR)
		return false;
	return b->b[b->off] != F_SWITCH || buf_used(b) >= HDR + 8;
}

/* the relay's bookkeeping after any progress: credits back, the ACK, closing */
static int relay_housekeeping(struct rp_switch *s)
{
	if (s->relay < 0)
		return 0;
	if (s->relay_eof && (s->peer_end || !more_input(s))) {
		/* the peer closes only after it had our end and sent its own: anything else is a break */
		if (!s->peer_end || !s->end_sent)
			return -ECONNRESET;
		relay_close(s);
		return 0;
	}
	if (!s->peer_end && s->unacked >= RP_SWITCH_WINDOW / 4) {
		frame(s, F_CREDIT, (uint32_t)s->unacked, NULL, 0);
		s->unacked = 0;
	}
	if (s->peer_end && !s->ack_sent) {
		frame(s, F_ACK, 0, NULL, 0);
		s->ack_sent = true;
	}
	if (s->end_sent && s->ack_sent && s->ack_rcvd && !buf_used(&s->out_r))
		relay_close(s);
	return 0;
}

/* the direct connection arrived: our direction moves (unless it already ended on the relay) */
static void take_direct(struct rp_switch *s, int fd)
{
	s->direct = fd;
	pthread_mutex_lock(&s->mu);
	if (s->handback)
		s->hb = HB_ALLOWED;
	pthread_mutex_unlock(&s->mu);
	if (s->out == OUT_RELAY) {
		uint8_t c[8];
		put_be32(c, (uint32_t)(s->st.sent_relay >> 32));
		put_be32(c + 4, (uint32_t)s->st.sent_relay);
		frame(s, F_SWITCH, 8, c, 8);
		s->end_sent = true;
		s->out = OUT_DIRECT;
	}
	if (s->in == IN_WAIT_DIRECT)
		s->in = IN_DIRECT;
}

/* Both directions are on the direct connection and nothing from it waits for the local side: the
 * data mode may take the direct fd (allowed, the peer's SWITCH in, ours out, the relay drained). */
static bool handback_ready(const struct rp_switch *s)
{
	return s->hb == HB_ALLOWED && s->in == IN_DIRECT && s->out != OUT_RELAY && s->direct >= 0 &&
	       !s->data_left && !buf_used(&s->to_local) && !s->local_shut;
}

int rp_switch_mark_send(int local, int direct)
{
	uint8_t mark = RP_SWITCH_HANDBACK_MARK;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { .iov_base = &mark, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
	memset(&cm, 0, sizeof(cm));
	cm.h.cmsg_level = SOL_SOCKET;
	cm.h.cmsg_type = SCM_RIGHTS;
	cm.h.cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(&cm.h), &direct, sizeof(int));
	if (sendmsg(local, &m, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
		return 0;
	return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
}

/* the marker with a duplicate of the direct fd attached. From then on the direct fd's input is the
 * data mode's; ours stops. 0 (sent or not yet room), -errno */
static int handback_send(struct rp_switch *s)
{
	int r = rp_switch_mark_send(s->local, s->direct);
	if (r == -EAGAIN)
		return 0;
	if (r)
		return r;
	s->hb = HB_SENT;
	s->in = IN_HANDED;
	s->st.handed_back = true;
	return 0;
}

/* after the marker, the local EOF means the data mode writes the direct fd itself: once what we read
 * before it is on the direct connection, our duplicate goes (no FIN: the data mode holds the
 * connection) and the local EOF tells the data mode it may write */
static void handback_finish(struct rp_switch *s)
{
	if (s->hb != HB_SENT || s->out != OUT_END || buf_used(&s->out_d))
		return;
	close(s->direct);
	s->direct = -1;
	shutdown(s->local, SHUT_WR);
	s->local_shut = true;
	s->in = IN_END;
	s->hb = HB_DONE;
}

static bool finished(const struct rp_switch *s)
{
	return s->out == OUT_END && s->in == IN_END && s->local_shut && s->relay < 0 &&
	       (s->direct < 0 || s->d_shut) && !buf_used(&s->out_d);
}

static int loop(struct rp_switch *s)
{
	int r = 0;
	while (!finished(s)) {
		struct pollfd p[4] = {
			{ .fd = s->wake[0], .events = POLLIN },
			{ .fd = s->local, .events = 0 },
			{ .fd = s->relay, .events = 0 },
			{ .fd = s->direct, .events = 0 },
		};
		if ((s->out == OUT_RELAY && s->credit > 0 && buf_room(&s->out_r) >= HDR + CHUNK + CTRL_RESERVE) ||
		    (s->out == OUT_DIRECT && !buf_used(&s->out_d)))
			p[1].events |= POLLIN;
		if (buf_used(&s->to_local) || handback_ready(s))
			p[1].events |= POLLOUT;
		if (s->relay >= 0) {
			if (!s->relay_eof && buf_room(&s->in_r) > 0)
				p[2].events |= POLLIN;
			if (buf_used(&s->out_r))
				p[2].events |= POLLOUT;
		}
		if (s->direct >= 0) {
			if (s->in == IN_DIRECT && !buf_used(&s->to_local))
				p[3].events |= POLLIN;
			if (buf_used(&s->out_d))
				p[3].events |= POLLOUT;
		}
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents) {
			uint8_t x[16];
			(void)!read(s->wake[0], x, sizeof(x));
			pthread_mutex_lock(&s->mu);
			int fd = s->given;
			s->given = -1;
			pthread_mutex_unlock(&s->mu);
			if (fd >= 0)
				take_direct(s, fd);
		}
		/* local -> peer */
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (s->out == OUT_RELAY && (p[1].events & POLLIN)) {
				if ((r = local_to_relay(s)))
					return r;
			} else if (s->out == OUT_DIRECT && (p[1].events & POLLIN)) {
				ssize_t n = fill(s->local, &s->out_d, s->out_d.cap);
				if (n == 0)
					s->out = OUT_END;
				else if (n > 0)
					s->st.sent += (uint64_t)n;
				else if (n != -EAGAIN)
					return (int)n;
			}
		}
		if (s->relay >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP)) && (r = flush(s->relay, &s->out_r))) {
			if (r != -EPIPE && r != -ECONNRESET)
				return r;
			s->relay_eof = true;   /* the peer closed it: judged like its EOF */
			s->out_r.off = s->out_r.len = 0;
		}
		if (s->direct >= 0 && (r = flush(s->direct, &s->out_d)))
			return r;
		handback_finish(s);
		if (s->direct >= 0 && s->hb != HB_SENT && s->out == OUT_END && !s->d_shut && !buf_used(&s->out_d)) {
			shutdown(s->direct, SHUT_WR);
			s->d_shut = true;
		}
		/* peer -> local */
		if (s->relay >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR)) && (r = step_relay_in(s)))
			return r;
		if ((r = parse_relay(s)))
			return r;
		if (s->in == IN_DIRECT && (p[3].revents & (POLLIN | POLLHUP | POLLERR)) && (p[3].events & POLLIN)) {
			ssize_t n = fill(s->direct, &s->to_local, s->to_local.cap);
			if (n == 0)
				s->in = IN_END;
			else if (n > 0) {
				s->st.recv += (uint64_t)n;
				if (!s->st.t_first_rx_ns)
					s->st.t_first_rx_ns = now_ns();
			} else if (n != -EAGAIN)
				return (int)n;
		}
		size_t before = buf_used(&s->to_local);
		if ((r = flush(s->local, &s->to_local)))
			return r;
		if (!s->peer_end)   /* relay bytes: credit them back */
			s->unacked += before - buf_used(&s->to_local);
		if (s->in == IN_END && !s->local_shut && !buf_used(&s->to_local)) {
			shutdown(s->local, SHUT_WR);
			s->local_shut = true;
		}
		if (!s->st.t_switch_ns && s->out != OUT_RELAY && s->in != IN_RELAY && s->in != IN_WAIT_DIRECT &&
		    s->direct >= 0 && s->end_sent) {
			/* both directions off the relay (one may have ended on it) */
			s->st.t_switch_ns = now_ns();
			s->st.switched = true;
		}
		if (handback_ready(s)) {
			if ((r = handback_send(s)))
				return r;
			handback_finish(s);   /* our direction may have ended already */
		}
		if ((r = relay_housekeeping(s)))
			return r;
	}
	return 0;
}

static void *thread_main(void *arg)
{
	struct rp_switch *s = arg;
	s->st.error = loop(s);
	pthread_mutex_lock(&s->mu);
	s->finished = true;
	if (s->given >= 0) {
		close(s->given);
		s->given = -1;
	}
	pthread_mutex_unlock(&s->mu);
	if (s->relay >= 0)
		relay_close(s);
	if (s->direct >= 0)
		close(s->direct);
	close(s->local);
	s->relay = s->direct = s->local = -1;
	return NULL;
}

static void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void sw_free(struct rp_switch *s)
{
	free(s->out_r.b);
	free(s->out_d.b);
	free(s->in_r.b);
	free(s->to_local.b);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int rp_switch_start(int local, int relay, rp_switch_relay_done_fn done, void *done_arg, struct rp_switch **out)
{
	struct rp_switch *s;
	int e;
	if (local < 0 || relay < 0 || !out)
		return -EBADF;
	if (!(s = calloc(1, sizeof(*s))))
		return -ENOMEM;
	s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	if (buf_init(&s->out_r, RELAY_OUT_CAP) || buf_init(&s->out_d, BIG) || buf_init(&s->in_r, RELAY_OUT_CAP) ||
	    buf_init(&s->to_local, BIG)) {
		sw_free(s);
		return -ENOMEM;
	}
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK)) {
		e = -errno;
		sw_free(s);
		return e;
	}
	s->local = local;
	s->relay = relay;
	s->direct = s->given = -1;
	s->done = done;
	s->done_arg = done_arg;
	/* Nothing goes out before the peer's first CREDIT, which grants the window: a peer that sends
	 * anything is bound to its relayed connection. coturn buffers little for a connection whose
	 * ConnectionBind has not come yet and drops the rest: captured at a failure, it passed the first
	 * 64 KiB of a 256 KiB burst and dropped the next 196628 bytes (the stream then failed its framing
	 * or its SWITCH count). */
	s->credit = 0;
	frame(s, F_CREDIT, RP_SWITCH_WINDOW, NULL, 0);
	nonblock(local);
	nonblock(relay);
	if ((e = pthread_create(&s->th, NULL, thread_main, s))) {
		sw_free(s);
		return -e;
	}
	*out = s;
	return 0;
}

void rp_switch_allow_handback(struct rp_switch *s)
{
	pthread_mutex_lock(&s->mu);
	s->handback = true;
	pthread_mutex_unlock(&s->mu);
}

int rp_switch_direct(struct rp_switch *s, int direct)
{
	int r = 0;
	if (!s || direct < 0)
		return -EBADF;
	nonblock(direct);
	pthread_mutex_lock(&s->mu);
	if (s->given_once)
		r = -EALREADY;
	else if (s->finished)
		r = -EPIPE;
	else {
		s->given = direct;
		s->given_once = true;
	}
	pthread_mutex_unlock(&s->mu);
	if (r) {
		close(direct);
		return r;
	}
	(void)!write(s->wake[1], "d", 1);
	return 0;
}

int rp_switch_wait(struct rp_switch *s, struct rp_switch_stats *st)
{
	int e;
	if (!s)
		return -EINVAL;
	pthread_join(s->th, NULL);
	e = s->st.error;
	if (st)
		*st = s->st;
	sw_free(s);
	return e;
}
