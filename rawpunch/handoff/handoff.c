/* SPDX-License-Identifier: MIT */
#include "rawpunch/handoff/handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "userstack/seq.h"
#include "userstack/tcb.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"

#ifndef TCPOPT_MAXSEG
#define TCPOPT_MAXSEG 2
#endif
#ifndef TCPOPT_WINDOW
#define TCPOPT_WINDOW 3
#endif
#ifndef TCPOPT_SACK_PERMITTED
#define TCPOPT_SACK_PERMITTED 4
#endif
#ifndef TCPOPT_TIMESTAMP
#define TCPOPT_TIMESTAMP 8
#endif

#define RP_MAX_WSCALE 14

const char *rp_handoff_path_name(enum rp_handoff_path path)
{
	switch (path) {
	case RP_HANDOFF_REPAIR: return "repair";
	case RP_HANDOFF_CONNECT: return "connect";
	default: return "none";
	}
}

int rp_handoff_check(const struct rp_handoff_params *p)
{
	if (!p || !p->lport || !p->rport || !p->raddr)
		return -EINVAL;
	if ((p->unacked_len && !p->unacked) || (p->unsent_len && !p->unsent) ||
	    (p->unread_len && !p->unread))
		return -EINVAL;
	if (p->unacked_len > INT32_MAX || p->unsent_len > INT32_MAX || p->unread_len > INT32_MAX)
		return -ERANGE;
	/* the send queue continues from snd_una; what was sent must be exactly what is given */
	if ((uint32_t)(p->snd_nxt - p->snd_una) != (uint32_t)p->unacked_len)
		return -EINVAL;
	if (p->wscale_ok && (p->snd_wscale > RP_MAX_WSCALE || p->rcv_wscale > RP_MAX_WSCALE))
		return -EFBIG;
	if (!p->wscale_ok && (p->snd_wnd > 65535 || p->rcv_wnd > 65535 || p->max_window > 65535))
		return -ERANGE;
	/* the kernel's own checks (tcp_repair_set_window) */
	if (p->max_window < p->snd_wnd)
		return -EINVAL;
	if (seq_gt(p->snd_wl1, p->rcv_nxt + p->rcv_wnd))
		return -EINVAL;
	if (seq_gt(p->rcv_wup, p->rcv_nxt))
		return -EINVAL;
	if (p->mss && p->mss < 64)
		return -ERANGE;
	return 0;
}

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) ? -errno : 0;
}

/* write all of buf in repair mode into the selected queue (send/recv) */
static int repair_fill(int fd, int queue, const uint8_t *buf, size_t len, size_t mss)
{
	int r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue);
	if (r)
		return r;
	/* the send queue is cut into segments as written: keep each write within one MSS so the
	 * retransmissions look like ordinary segments */
	size_t chunk = queue == TCP_SEND_QUEUE && mss ? mss : 65536;
	while (len) {
		size_t n = len < chunk ? len : chunk;
		ssize_t w = send(fd, buf, n, 0);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static bool repair_refused(int e)
{
	return e == EPERM || e == EACCES || e == ENOPROTOOPT || e == EOPNOTSUPP;
}

/* Returns the fd, or -errno. *refused is set when the very first TCP_REPAIR=1 failed. */
static int handoff_repair(const struct rp_handoff_params *p, const struct rp_handoff_opts *o, int *refused)
{
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons(p->lport),
				  .sin_addr.s_addr = p->laddr };
	struct sockaddr_in ra = { .sin_family = AF_INET, .sin_port = htons(p->rport),
				  .sin_addr.s_addr = p->raddr };
	int r, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	*refused = 0;
	if (fd < 0)
		return -errno;
	r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON);
	if (r) {
		*refused = -r;
		goto fail;
	}
	if ((r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)))
		goto fail;
	if (bind(fd, (struct sockaddr *)&la, sizeof(la))) {
		r = -errno;
		goto fail;
	}
	/* sequence numbers of both queues: recv starts at the first unread byte, send at snd_una */
	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)(p->rcv_nxt - (uint32_t)p->unread_len))) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)p->snd_una)))
		goto fail;
	/* in repair mode connect() sends no SYN: the socket goes straight to ESTABLISHED */
	if (connect(fd, (struct sockaddr *)&ra, sizeof(ra))) {
		r = -errno;
		goto fail;
	}
	struct tcp_repair_opt ro[4];
	unsigned n = 0;
	if (p->mss)
		ro[n++] = (struct tcp_repair_opt){ TCPOPT_MAXSEG, p->mss };
	if (p->wscale_ok)
		ro[n++] = (struct tcp_repair_opt){ TCPOPT_WINDOW,
						   (uint32_t)p->snd_wscale | (uint32_t)p->rcv_wscale << 16 };
	if (p->sack_ok)
		ro[n++] = (struct tcp_repair_opt){ TCPOPT_SACK_PERMITTED, 0 };
	if (p->ts_ok)
		ro[n++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	if (n && setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, ro, (socklen_t)(n * sizeof(ro[0])))) {
		r = -errno;
		goto fail;
	}
	if (p->ts_ok && (r = set_int(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)p->ts_now)))
		goto fail;
	/* data: sent-but-unacked into the send queue (marked sent, retransmitted on RTO), unread
	 * bytes into the receive queue (read() returns them first) */
	if (p->unacked_len &&
	    (r = repair_fill(fd, TCP_SEND_QUEUE, p->unacked, p->unacked_len, p->mss ? p->mss : 536)))
		goto fail;
	if (p->unread_len && (r = repair_fill(fd, TCP_RECV_QUEUE, p->unread, p->unread_len, 0)))
		goto fail;
	struct tcp_repair_window w = {
		.snd_wl1 = p->snd_wl1, .snd_wnd = p->snd_wnd, .max_window = p->max_window,
		.rcv_wnd = p->rcv_wnd, .rcv_wup = p->rcv_wup,
	};
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w))) {
		r = -errno;
		goto fail;
	}
	/* Re-sync the send MSS: connect() sized it from the default mss_clamp (536) and max_window 0;
	 * now that TCP_REPAIR_OPTIONS set the peer's MSS and TCP_REPAIR_WINDOW the windows, the MSS
	 * must become min(path MTU, peer MSS, half the largest window) as after a real handshake, or
	 * the socket sends 524-byte segments, or segments that never fit a small window. Setting
	 * (empty) IP options is what makes the kernel call tcp_sync_mss() on an established socket. */
	if (setsockopt(fd, IPPROTO_IP, IP_OPTIONS, NULL, 0)) {
		r = -errno;
		goto fail;
	}
	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE)))
		goto fail;
	r = set_int(fd, IPPROTO_TCP, TCP_REPAIR,
		    (o->flags & RP_HO_NO_WINDOW_PROBE) ? TCP_REPAIR_OFF_NO_WP : TCP_REPAIR_OFF);
	if (r)
		goto fail;
	/* from here the kernel owns the flow; new data continues at snd_nxt */
	if (p->unsent_len && (r = rp_io_write_all(fd, p->unsent, p->unsent_len, rp_mono_ns() + 10000000000ull))) {
		close(fd);   /* no longer in repair: this close is an ordinary one */
		return r;
	}
	return fd;
fail:
	/* still in repair mode (or never got there): close() sends nothing */
	close(fd);
	return r;
}

static int connect_deadline(int fd, const struct sockaddr_in *ra, uint64_t deadline)
{
	if (connect(fd, (const struct sockaddr *)ra, sizeof(*ra)) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	for (;;) {
		uint64_t now = rp_mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int ms = (int)((deadline - now) / 1000000u) + 1;
		int pr = poll(&pfd, 1, ms);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pr == 0)
			continue;
		int err = 0;
		socklen_t sl = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl))
			return -errno;
		return err ? -err : 0;
	}
}

static int handoff_connect(const struct rp_handoff_params *p, const struct rp_handoff_opts *o,
			   uint64_t start, struct rp_handoff_result *res)
{
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons(p->lport),
				  .sin_addr.s_addr = p->laddr };
	struct sockaddr_in ra = { .sin_family = AF_INET, .sin_port = htons(p->rport),
				  .sin_addr.s_addr = p->raddr };
	uint64_t deadline = start + (uint64_t)(o->connect_timeout_ms ? o->connect_timeout_ms : 8000) * 1000000u;
	uint64_t pause = (uint64_t)(o->retry_ms ? o->retry_ms : 200) * 1000000u;
	int r = -ETIMEDOUT;
	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
		if (fd < 0)
			return -errno;
		if ((r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)) == 0 &&
		    (r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) == 0 &&
		    (r = bind(fd, (struct sockaddr *)&la, sizeof(la)) ? -errno : 0) == 0) {
			res->connect_attempts++;
			r = connect_deadline(fd, &ra, deadline);
			if (r == 0)
				return fd;
		}
		close(fd);
		/* refused / unreachable: the peer's side may not be open yet (simultaneous open
		 * needs both SYNs in flight); try again until the deadline */
		if (r != -ECONNREFUSED && r != -ECONNRESET && r != -EHOSTUNREACH && r != -ENETUNREACH &&
		    r != -EADDRINUSE && r != -EADDRNOTAVAIL)
			return r;
		uint64_t now = rp_mono_ns();
		if (now + pause >= deadline)
			return r == -EADDRINUSE || r == -EADDRNOTAVAIL ? r : -ETIMEDOUT;
		struct timespec ts = { .tv_sec = (time_t)(pause / 1000000000u),
				       .tv_nsec = (long)(pause % 1000000000u) };
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
}

int rp_handoff(const struct rp_handoff_params *p, const struct rp_handoff_opts *opts,
	       struct rp_handoff_result *res)
{
	static const struct rp_handoff_opts defaults;
	struct rp_handoff_result dummy;
	const struct rp_handoff_opts *o = opts ? opts : &defaults;
	uint64_t start = rp_mono_ns();
	int fd, refused = 0, r = rp_handoff_check(p);

	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	if (r)
		return r;
	if ((o->flags & RP_HO_NO_FALLBACK) && (o->flags & RP_HO_ONLY_FALLBACK))
		return -EINVAL;
	if (!(o->flags & RP_HO_ONLY_FALLBACK)) {
		fd = handoff_repair(p, o, &refused);
		if (fd >= 0) {
			res->path = RP_HANDOFF_REPAIR;
			goto done;
		}
		if (!refused || !repair_refused(refused) || (o->flags & RP_HO_NO_FALLBACK)) {
			res->repair_errno = refused;
			res->elapsed_ns = rp_mono_ns() - start;
			return fd;
		}
		res->repair_errno = refused;
	}
	fd = handoff_connect(p, o, start, res);
	if (fd < 0) {
		res->elapsed_ns = rp_mono_ns() - start;
		return fd;
	}
	res->path = RP_HANDOFF_CONNECT;
done:
	{
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, (o->flags & RP_HO_NONBLOCK) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK)) {
			r = -errno;
			close(fd);
			return r;
		}
	}
	res->elapsed_ns = rp_mono_ns() - start;
	return fd;
}

int rp_handoff_from_tcb(const struct us_tcb *t, uint32_t laddr, uint16_t lport, uint32_t raddr,
			uint16_t rport, uint64_t now_ns, struct rp_handoff_params *p)
{
	if (!t || !p)
		return -EINVAL;
	if (t->state != US_ESTABLISHED || t->fin_sent || t->fin_rcvd || t->close_pending)
		return -ENOTCONN;
	uint32_t inflight = t->snd_nxt - t->snd_una;
	if (inflight > t->snd_len || t->snd_len > US_SNDBUF || t->rcv_len > US_RCVBUF)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->laddr = laddr;
	p->raddr = raddr;
	p->lport = lport;
	p->rport = rport;
	p->snd_una = t->snd_una;
	p->snd_nxt = t->snd_nxt;
	p->rcv_nxt = t->rcv_nxt;
	p->snd_wl1 = t->snd_wl1;
	p->snd_wnd = t->snd_wnd;
	p->max_window = t->max_window > t->snd_wnd ? t->max_window : t->snd_wnd;
	p->rcv_wnd = t->rcv_wnd;
	p->rcv_wup = t->rcv_wup;
	p->mss = t->peer_mss;
	p->wscale_ok = t->wscale_ok;
	p->snd_wscale = t->wscale_ok ? t->snd_wscale : 0;
	p->rcv_wscale = t->wscale_ok ? t->rcv_wscale : 0;
	p->sack_ok = t->sack_ok;
	p->ts_ok = t->ts_ok;
	/* our clock: tsval = now_ms + ts_offset; +1 so it never goes back from the last one sent */
	p->ts_now = t->ts_ok ? (uint32_t)(now_ns / 1000000u) + t->ts_offset + 1 : 0;
	p->unacked = inflight ? t->sndbuf : NULL;
	p->unacked_len = inflight;
	p->unsent = t->snd_len > inflight ? t->sndbuf + inflight : NULL;
	p->unsent_len = t->snd_len - inflight;
	p->unread = t->rcv_len ? t->rcvbuf : NULL;
	p->unread_len = t->rcv_len;
	return rp_handoff_check(p);
}

static int get_int(int fd, int level, int opt, int *v)
{
	socklen_t sl = sizeof(*v);
	return getsockopt(fd, level, opt, v, &sl) ? -errno : 0;
}

static int peek_queue(int fd, int queue, uint8_t *buf, size_t len)
{
	int r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue);
	if (r || !len)
		return r;
	ssize_t n = recv(fd, buf, len, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int rp_handoff_freeze(int fd, struct rp_handoff_params *p, uint8_t *buf, size_t cap)
{
	struct sockaddr_in la, ra;
	socklen_t sl = sizeof(la);
	struct tcp_info ti;
	struct tcp_repair_window w;
	int r, v, outq = 0, notsent = 0, inq = 0, write_seq = 0, rcv_nxt = 0, mss = 0, tsv = 0;

	if (!p || (!buf && cap))
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	if (getsockname(fd, (struct sockaddr *)&la, &sl))
		return -errno;
	sl = sizeof(ra);
	if (getpeername(fd, (struct sockaddr *)&ra, &sl))
		return -errno;
	if (la.sin_family != AF_INET)
		return -EAFNOSUPPORT;
	sl = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl))
		return -errno;
	if (ti.tcpi_state != TCP_ESTABLISHED)
		return -ENOTCONN;
	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON)))
		return r;
	/* frozen: from now on the socket neither sends nor processes timers' transmissions */
	if (ioctl(fd, SIOCOUTQ, &outq) || ioctl(fd, SIOCOUTQNSD, &notsent) || ioctl(fd, SIOCINQ, &inq)) {
		r = -errno;
		goto fail;
	}
	if (outq < notsent || inq < 0) {
		r = -EIO;
		goto fail;
	}
	if ((size_t)outq + (size_t)inq > cap) {
		r = -ENOBUFS;
		goto fail;
	}
	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)) ||
	    (r = get_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &write_seq)) ||
	    (r = peek_queue(fd, TCP_SEND_QUEUE, buf, (size_t)outq)) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) ||
	    (r = get_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &rcv_nxt)) ||
	    (r = peek_queue(fd, TCP_RECV_QUEUE, buf + outq, (size_t)inq)) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE)))
		goto fail;
	sl = sizeof(w);
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &sl)) {
		r = -errno;
		goto fail;
	}
	if ((r = get_int(fd, IPPROTO_TCP, TCP_MAXSEG, &mss)))
		goto fail;
	/* TCP_INFO again now that nothing moves */
	sl = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl)) {
		r = -errno;
		goto fail;
	}
	p->ts_ok = !!(ti.tcpi_options & TCPI_OPT_TIMESTAMPS);
	if (p->ts_ok && (r = get_int(fd, IPPROTO_TCP, TCP_TIMESTAMP, &tsv)))
		goto fail;
	p->laddr = la.sin_addr.s_addr;
	p->raddr = ra.sin_addr.s_addr;
	p->lport = ntohs(la.sin_port);
	p->rport = ntohs(ra.sin_port);
	uint32_t unacked = (uint32_t)(outq - notsent);
	p->snd_nxt = (uint32_t)write_seq - (uint32_t)notsent;
	p->snd_una = p->snd_nxt - unacked;
	p->rcv_nxt = (uint32_t)rcv_nxt;
	p->snd_wl1 = w.snd_wl1;
	p->snd_wnd = w.snd_wnd;
	p->max_window = w.max_window;
	p->rcv_wnd = w.rcv_wnd;
	p->rcv_wup = w.rcv_wup;
	/* in repair mode TCP_MAXSEG reads mss_clamp: the MSS the peer advertised */
	v = mss;
	p->mss = (uint16_t)(v > 65535 ? 65535 : v);
	p->wscale_ok = !!(ti.tcpi_options & TCPI_OPT_WSCALE);
	p->snd_wscale = p->wscale_ok ? ti.tcpi_snd_wscale : 0;
	p->rcv_wscale = p->wscale_ok ? ti.tcpi_rcv_wscale : 0;
	p->sack_ok = !!(ti.tcpi_options & TCPI_OPT_SACK);
	p->ts_now = (uint32_t)tsv;
	p->unacked = unacked ? buf : NULL;
	p->unacked_len = unacked;
	p->unsent = notsent ? buf + unacked : NULL;
	p->unsent_len = (size_t)notsent;
	p->unread = inq ? buf + outq : NULL;
	p->unread_len = (size_t)inq;
	return 0;
fail:
	set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
	return r;
}

int rp_handoff_unfreeze(int fd)
{
	int r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	return r ? r : set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF);
}
