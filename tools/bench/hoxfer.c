/* SPDX-License-Identifier: MIT */
/* hoxfer: traffic endpoint for the handoff lab tests and tools/bench/handoff.
 *
 *   hoxfer serve --port P [--bind ADDR] [--mode xfer|sink|rtt] [--bytes N] [--pre N] [--count K] [--size S]
 *   hoxfer client --to ADDR:PORT [--lport P] [--handoff none|freeze|fresh] [--no-fallback]
 *                 [--mode xfer|sink|rtt] [--bytes N] [--pre N] [--count K] [--size S] [--timeout-ms T]
 *                 [--role client|server] [--wait-first]
 *
 * --handoff freeze: connect with the kernel, exchange the first --pre bytes each way (the server's
 *   stay UNREAD in our receive queue), freeze the socket with TCP_REPAIR (rp_handoff_freeze), close it
 *   silently, rebuild it with rp_handoff() from the plain-field state, and go on with the same stream.
 * --handoff fresh: no kernel connection first: rp_handoff() from --lport towards --to with made-up
 *   sequence state; TCP_REPAIR gives a socket the server has never heard of, so this is meant for
 *   the fallback (run it without CAP_NET_ADMIN: the kernel refuses TCP_REPAIR, a connect() from the
 *   same port follows).
 * Modes: xfer: both sides send --bytes of a seeded PRNG stream at once and SHA-256 both directions;
 *   then FIN both ways. sink: client -> server --bytes, server answers one byte when it has it all;
 *   the client times it. rtt: --count ping-pongs of --size bytes (TCP_NODELAY), median and p99.
 *   hoxfer forward --listen [ADDR:]PORT --to ADDR:PORT [--handoff none|raw] [--clients N]
 *   ssh -L style (rawpunch/handoff/fdmode.h rp_forward): every local client is carried over its OWN new
 *   connection to --to: with --handoff raw a raw handshake from a fresh port (session.h, guard),
 *   rp_handoff_from_tcb() + rp_handoff(), then the guard goes; with none a plain connect().
 *   Exits after --clients clients were served.
 * Prints one line of key=value on stdout. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/handoff/fdmode.h"
#include "rawpunch/handoff/handoff.h"
#include "rawpunch/punch/session.h"
#include "rawpunch/base/clock.h"

#define CHUNK 65536

struct cfg {
	const char *mode;
	uint64_t bytes, pre;
	unsigned count, size;
	unsigned timeout_ms;
	bool no_fallback;
	bool wait_first;          /* server, xfer: send nothing before the client's first byte */
	bool as_server;           /* client: after connecting, play the server's part (both sides of a
	                             simultaneous open run 'client') */
};

/* xorshift64* stream: deterministic, fast, different per side */
struct stream {
	uint64_t s;
	uint8_t left[8];          /* unused bytes of the last 64-bit word: the stream is byte-exact */
	unsigned nleft;
	crypto_hash_sha256_state h;
};

static void stream_init(struct stream *st, uint64_t seed)
{
	st->s = seed * 0x9E3779B97F4A7C15ull + 1;
	st->nleft = 0;
	crypto_hash_sha256_init(&st->h);
}

static void stream_fill(struct stream *st, uint8_t *buf, size_t n)
{
	size_t i = 0;
	while (i < n && st->nleft) {
		buf[i++] = st->left[8 - st->nleft];
		st->nleft--;
	}
	for (; i < n; i += 8) {
		st->s ^= st->s >> 12;
		st->s ^= st->s << 25;
		st->s ^= st->s >> 27;
		uint64_t v = st->s * 2685821657736338717ull;
		if (n - i >= 8) {
			memcpy(buf + i, &v, 8);
		} else {
			memcpy(st->left, &v, 8);
			memcpy(buf + i, st->left, n - i);
			st->nleft = (unsigned)(8 - (n - i));
		}
	}
}

static void hexdigest(crypto_hash_sha256_state *h, char out[65])
{
	uint8_t d[32];
	crypto_hash_sha256_final(h, d);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static int send_all(int fd, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_all(int fd, uint8_t *b, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, b, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- xfer: full duplex, both streams hashed ---- */
struct sender {
	int fd;
	uint64_t seed, bytes, skip;   /* skip: first bytes already sent before the thread started */
	bool gated;                   /* server: hold after `skip` bytes until the peer sent more than gate */
	uint64_t gate;
	_Atomic uint64_t *peer_rcvd;
	crypto_hash_sha256_state *pre_h;
	int err;
	char sha[65];
	struct stream st;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	uint8_t *buf = malloc(CHUNK);
	uint64_t off = s->skip;
	if (!buf) {
		s->err = -ENOMEM;
		return NULL;
	}
	while (s->gated && atomic_load(s->peer_rcvd) <= s->gate)
		usleep(200);
	while (off < s->bytes) {
		size_t n = s->bytes - off < CHUNK ? (size_t)(s->bytes - off) : CHUNK;
		stream_fill(&s->st, buf, n);
		crypto_hash_sha256_update(&s->st.h, buf, n);
		if ((s->err = send_all(s->fd, buf, n)))
			break;
		off += n;
	}
	if (!s->err)
		shutdown(s->fd, SHUT_WR);
	hexdigest(&s->st.h, s->sha);
	free(buf);
	return NULL;
}

/* send the first n bytes of the stream (used for --pre before the handoff) */
static int stream_send(int fd, struct stream *st, uint64_t n)
{
	uint8_t buf[4096];
	while (n) {
		size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
		stream_fill(st, buf, k);
		crypto_hash_sha256_update(&st->h, buf, k);
		int r = send_all(fd, buf, k);
		if (r)
			return r;
		n -= k;
	}
	return 0;
}

/* receive to EOF; hash; check the content against the expected stream */
static int recv_stream(int fd, uint64_t seed, uint64_t expect, _Atomic uint64_t *rcvd, char sha[65],
		       uint64_t *got, bool *content_ok)
{
	struct stream ref;
	crypto_hash_sha256_state h;
	uint8_t *buf = malloc(CHUNK), *rb = malloc(CHUNK);
	int err = 0;
	stream_init(&ref, seed);
	crypto_hash_sha256_init(&h);
	*got = 0;
	*content_ok = true;
	if (!buf || !rb) {
		free(buf);
		free(rb);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t r = recv(fd, buf, CHUNK, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		crypto_hash_sha256_update(&h, buf, (size_t)r);
		if (*got + (uint64_t)r <= expect) {
			stream_fill(&ref, rb, (size_t)r);
			if (*content_ok && memcmp(rb, buf, (size_t)r))
				*content_ok = false;
		} else {
			*content_ok = false;
		}
		*got += (uint64_t)r;
		if (rcvd)
			atomic_store(rcvd, *got);
	}
	hexdigest(&h, sha);
	free(buf);
	free(rb);
	return err;
}

static int run_xfer(int fd, bool server, const struct cfg *c, struct stream *mine, uint64_t already_sent,
		    uint64_t t0, const char *prefix)
{
	_Atomic uint64_t rcvd = 0;
	struct sender s = { .fd = fd, .seed = server ? 2 : 1, .bytes = c->bytes, .skip = already_sent,
			    .peer_rcvd = &rcvd, .st = *mine };
	pthread_t th;
	char rsha[65];
	uint64_t got;
	bool ok;
	if (server && c->pre) {
		/* the server's first --pre bytes go out at once; the rest only after the client sent
		 * more than its --pre bytes, i.e. after its handoff: nothing arrives while it is frozen */
		if ((s.err = stream_send(fd, &s.st, c->pre)))
			return s.err;
		s.skip = c->pre;
		s.gate = c->pre;
		s.gated = true;
	}
	if (server && c->wait_first)
		s.gated = true;   /* gate = pre (0): wait for the client's first byte */
	if (pthread_create(&th, NULL, sender_main, &s))
		return -EAGAIN;
	int r = recv_stream(fd, server ? 1 : 2, c->bytes, &rcvd, rsha, &got, &ok);
	pthread_join(th, NULL);
	double secs = (double)(rp_mono_ns() - t0) / 1e9;
	printf("%srole=%s mode=xfer sent=%llu sent_sha=%s recv=%llu recv_sha=%s content_ok=%d send_err=%d recv_err=%d secs=%.3f\n",
	       prefix, server ? "server" : "client", (unsigned long long)c->bytes, s.sha,
	       (unsigned long long)got, rsha, ok && got == c->bytes, s.err, r, secs);
	fflush(stdout);
	return s.err ? s.err : r ? r : (ok && got == c->bytes) ? 0 : -EIO;
}

/* ---- sink: one-way throughput ---- */
static int run_sink(int fd, bool server, const struct cfg *c, const char *prefix)
{
	uint8_t *buf = malloc(CHUNK);
	int r = 0;
	if (!buf)
		return -ENOMEM;
	if (server) {
		uint64_t got = 0;
		while (got < c->bytes) {
			ssize_t n = recv(fd, buf, CHUNK, 0);
			if (n <= 0) {
				r = n < 0 ? -errno : -EPIPE;
				break;
			}
			got += (uint64_t)n;
		}
		if (!r)
			r = send_all(fd, (const uint8_t *)"K", 1);
		shutdown(fd, SHUT_WR);
		printf("%srole=server mode=sink recv=%llu err=%d\n", prefix, (unsigned long long)got, r);
	} else {
		memset(buf, 0x5a, CHUNK);
		uint64_t t0 = rp_mono_ns(), off = 0;
		while (off < c->bytes && !r) {
			size_t n = c->bytes - off < CHUNK ? (size_t)(c->bytes - off) : CHUNK;
			r = send_all(fd, buf, n);
			off += n;
		}
		uint8_t k = 0;
		if (!r)
			r = recv_all(fd, &k, 1);
		double secs = (double)(rp_mono_ns() - t0) / 1e9;
		shutdown(fd, SHUT_WR);
		printf("%srole=client mode=sink bytes=%llu secs=%.4f mbit_s=%.1f err=%d\n", prefix,
		       (unsigned long long)c->bytes, secs, (double)c->bytes * 8 / secs / 1e6, r);
	}
	/* drain to the peer's FIN */
	while (recv(fd, buf, CHUNK, 0) > 0)
		;
	free(buf);
	fflush(stdout);
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- rtt: ping-pong ---- */
static int run_rtt(int fd, bool server, const struct cfg *c, const char *prefix)
{
	uint8_t buf[65536];
	int one = 1, r = 0;
	size_t sz = c->size ? c->size : 64;
	if (sz > sizeof(buf))
		return -EINVAL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(buf, 0x33, sz);
	if (server) {
		unsigned n = 0;
		while ((r = recv_all(fd, buf, sz)) == 0 && (r = send_all(fd, buf, sz)) == 0)
			n++;
		shutdown(fd, SHUT_WR);
		printf("%srole=server mode=rtt echoed=%u\n", prefix, n);
		fflush(stdout);
		return r == -EPIPE ? 0 : r;
	}
	uint64_t *t = calloc(c->count, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (unsigned i = 0; i < c->count && !r; i++) {
		uint64_t a = rp_mono_ns();
		if (!(r = send_all(fd, buf, sz)))
			r = recv_all(fd, buf, sz);
		t[i] = rp_mono_ns() - a;
	}
	shutdown(fd, SHUT_WR);
	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	qsort(t, c->count, sizeof(*t), cmp_u64);
	printf("%srole=client mode=rtt count=%u size=%zu median_us=%.1f p99_us=%.1f err=%d\n", prefix, c->count,
	       sz, (double)t[c->count / 2] / 1e3, (double)t[(c->count * 99) / 100] / 1e3, r);
	fflush(stdout);
	free(t);
	return r;
}

static int run_mode(int fd, bool server, const struct cfg *c, struct stream *mine, uint64_t sent, uint64_t t0,
		    const char *prefix)
{
	if (!strcmp(c->mode, "xfer"))
		return run_xfer(fd, server, c, mine, sent, t0, prefix);
	if (c->pre) {
		/* the preamble of sink/rtt: --pre bytes each way, checked, before the measurement */
		uint8_t *a = malloc(c->pre), *b = malloc(c->pre);
		struct stream peer;
		int r = a && b ? 0 : -ENOMEM;
		stream_init(&peer, server ? 1 : 2);
		if (!r && server)
			r = stream_send(fd, mine, c->pre);
		if (!r)
			r = recv_all(fd, a, c->pre);
		if (!r) {
			stream_fill(&peer, b, c->pre);
			if (memcmp(a, b, c->pre))
				r = -EBADMSG;
		}
		free(a);
		free(b);
		if (r)
			return r;
	}
	if (!strcmp(c->mode, "sink"))
		return run_sink(fd, server, c, prefix);
	return run_rtt(fd, server, c, prefix);
}

static int do_serve(const char *bind_s, unsigned long port, const struct cfg *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bind_s && rp_parse_ipv4(bind_s, &sa.sin_addr.s_addr))
		return rp_usage_err("hoxfer", "--bind: not an IPv4 address: %s", bind_s);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 16))
		return rp_err_errno(-errno, "listen");
	printf("listening port=%lu\n", port);
	fflush(stdout);
	struct sockaddr_in pa;
	socklen_t pl = sizeof(pa);
	int fd = accept4(lfd, (struct sockaddr *)&pa, &pl, SOCK_CLOEXEC);
	if (fd < 0)
		return rp_err_errno(-errno, "accept");
	close(lfd);
	char peer[64];
	snprintf(peer, sizeof(peer), "peer=%s:%u ", inet_ntoa(pa.sin_addr), ntohs(pa.sin_port));
	struct stream mine;
	stream_init(&mine, 2);
	int r = run_mode(fd, true, c, &mine, 0, rp_mono_ns(), peer);
	close(fd);
	return r ? rp_err_errno(r, "serve") : 0;
}

/* wait until the send queue is acknowledged and want bytes wait unread, then a little more so our
 * ACKs have left: the frozen socket must not have anything in flight the peer would answer */
static int quiesce(int fd, uint64_t want_inq, unsigned timeout_ms)
{
	uint64_t end = rp_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	for (;;) {
		int outq = 0, inq = 0;
		if (ioctl(fd, SIOCOUTQ, &outq) || ioctl(fd, SIOCINQ, &inq))
			return -errno;
		if (outq == 0 && (uint64_t)inq >= want_inq)
			break;
		if (rp_mono_ns() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
	usleep(100000);
	return 0;
}

static int do_client(const char *to, unsigned long lport, const char *ho, const struct cfg *c)
{
	struct sockaddr_in ra;
	struct rp_handoff_params p = { 0 };
	struct rp_handoff_result res = { 0 };
	struct rp_handoff_opts o = { .flags = c->no_fallback ? RP_HO_NO_FALLBACK : 0,
				     .connect_timeout_ms = c->timeout_ms };
	struct stream mine;
	uint8_t *qbuf = NULL;
	uint64_t t0 = rp_mono_ns(), sent = 0;
	int fd = -1, r;
	unsigned mss_before = 0;
	char prefix[320] = "";

	if (rp_parse_hostport(to, 0, &ra))
		return rp_usage_err("hoxfer", "--to: want ADDR:PORT, got '%s'", to);
	stream_init(&mine, 1);
	if (strcmp(ho, "fresh") && strcmp(ho, "raw")) {
		struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons((uint16_t)lport) };
		int one = 1;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    (lport && bind(fd, (struct sockaddr *)&la, sizeof(la))) ||
		    connect(fd, (struct sockaddr *)&ra, sizeof(ra)))
			return rp_err_errno(-errno, "connect");
	}
	if (fd >= 0 && c->pre) {
		if ((r = stream_send(fd, &mine, c->pre)))
			return rp_err_errno(r, "send --pre");
		sent = c->pre;
	}
	if (!strcmp(ho, "freeze")) {
		if ((r = quiesce(fd, c->pre, 10000)))
			return rp_err_errno(r, "waiting for the pre-handoff exchange");
		struct tcp_info ti;
		socklen_t tl = sizeof(ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl))
			return rp_err_errno(-errno, "TCP_INFO");
		mss_before = ti.tcpi_snd_mss;
		size_t cap = 8u << 20;
		qbuf = malloc(cap);
		if (!qbuf)
			return rp_err_errno(-ENOMEM, "malloc");
		if ((r = rp_handoff_freeze(fd, &p, qbuf, cap)))
			return rp_err_errno(r, "freeze (TCP_REPAIR)");
		close(fd);   /* in repair mode: silent */
		fd = -1;
		snprintf(prefix, sizeof(prefix),
			 "frozen_snd_nxt=%u frozen_rcv_nxt=%u unread=%zu unacked=%zu mss=%u wscale=%u/%u sack=%d ts=%d ",
			 p.snd_nxt, p.rcv_nxt, p.unread_len, p.unacked_len, p.mss, p.snd_wscale, p.rcv_wscale,
			 p.sack_ok, p.ts_ok);
	} else if (!strcmp(ho, "fresh")) {
		/* made-up but consistent state: only the fallback can turn this into a connection */
		p.lport = (uint16_t)lport;
		p.raddr = ra.sin_addr.s_addr;
		p.rport = ntohs(ra.sin_port);
		p.snd_una = p.snd_nxt = 1000;
		p.rcv_nxt = p.rcv_wup = p.snd_wl1 = 2000;
		p.snd_wnd = p.max_window = p.rcv_wnd = 65535;
		p.mss = 1460;
	} else if (!strcmp(ho, "raw")) {
		/* the real thing: handshake with raw packets (rawpunch/punch/session.h, RST guard on), then
		 * hand the tcb to the kernel, and only then drop the guard */
		struct rp_session_opts so = { .raddr = ra.sin_addr.s_addr, .rport = ntohs(ra.sin_port),
					      .lport = (uint16_t)lport,
					      .timeout_ns = (uint64_t)c->timeout_ms * 1000000u };
		struct rp_session *ss;
		char err[256] = "";
		uint32_t la4, ra4;
		uint16_t lp, rp;
		if ((r = rp_session_open_err(&so, &ss, err, sizeof(err))))
			return rp_err("session: %s: %s", err, strerror(-r));
		if ((r = rp_session_handshake(ss))) {
			rp_session_why(ss, err, sizeof(err));
			rp_session_close(ss);
			return rp_err("raw handshake: %s (%s)", strerror(-r), err);
		}
		rp_session_tuple(ss, &la4, &lp, &ra4, &rp);
		if ((r = rp_handoff_from_tcb(rp_session_tcb(ss), la4, lp, ra4, rp, rp_mono_ns(), &p))) {
			rp_session_close(ss);
			return rp_err_errno(r, "handoff state from the tcb");
		}
		const struct us_tcb *t = rp_session_tcb(ss);
		snprintf(prefix, sizeof(prefix), "raw_iss=%u raw_irs=%u wscale=%u/%u sack=%d ts=%d ", t->iss, t->irs,
			 p.snd_wscale, p.rcv_wscale, p.sack_ok, p.ts_ok);
		fd = rp_handoff(&p, &o, &res);
		struct rp_session_stats sst;
		rp_session_release(ss);   /* the guard goes once the kernel owns the flow */
		rp_session_stats(ss, &sst);
		rp_session_close(ss);
		size_t l = strlen(prefix);
		if (sst.guard_dropped >= 0)
			snprintf(prefix + l, sizeof(prefix) - l, "guard_dropped=%lld ", (long long)sst.guard_dropped);
		else
			snprintf(prefix + l, sizeof(prefix) - l, "guard_dropped=unknown ");
		if (fd < 0) {
			printf("handoff=failed err=%d repair_errno=%d\n", fd, res.repair_errno);
			return rp_err_errno(fd, "handoff");
		}
		goto handed_off;
	} else if (strcmp(ho, "none")) {
		return rp_usage_err("hoxfer", "--handoff: none, freeze, fresh or raw, not '%s'", ho);
	}
	if (fd < 0) {
		fd = rp_handoff(&p, &o, &res);
		if (fd < 0) {
			fprintf(stdout, "handoff=failed err=%d repair_errno=%d attempts=%u\n", fd,
				res.repair_errno, res.connect_attempts);
			fflush(stdout);
			return rp_err_errno(fd, "handoff");
		}
handed_off:;
		size_t l = strlen(prefix);
		struct tcp_info ti;
		socklen_t tl = sizeof(ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl))
			ti.tcpi_snd_mss = 0;
		snprintf(prefix + l, sizeof(prefix) - l,
			 "path=%s repair_errno=%d attempts=%u handoff_us=%llu snd_mss_before=%u snd_mss_after=%u ",
			 rp_handoff_path_name(res.path), res.repair_errno, res.connect_attempts,
			 (unsigned long long)(res.elapsed_ns / 1000), mss_before, ti.tcpi_snd_mss);
		if (res.path == RP_HANDOFF_CONNECT) {
			/* a new connection: the streams start over */
			stream_init(&mine, 1);
			sent = 0;
		}
	} else {
		snprintf(prefix, sizeof(prefix), "path=plain ");
	}
	{
		struct sockaddr_in la;
		socklen_t sl = sizeof(la);
		getsockname(fd, (struct sockaddr *)&la, &sl);
		size_t l = strlen(prefix);
		snprintf(prefix + l, sizeof(prefix) - l, "lport=%u ", ntohs(la.sin_port));
	}
	free(qbuf);   /* rp_handoff() copied what it needed */
	if (c->as_server) {
		if (sent)
			return rp_usage_err("hoxfer", "--role server: no --pre");
		stream_init(&mine, 2);
	}
	r = run_mode(fd, c->as_server, c, &mine, sent, t0, prefix);
	close(fd);
	return r ? rp_err_errno(r, "client") : 0;
}

struct fwd_ctx {
	struct sockaddr_in ra;
	bool raw;
	unsigned timeout_ms;
	pthread_mutex_t mu;       /* one handshake at a time (the relays run in parallel) */
	unsigned repair, other;
};

static int fwd_dial(void *arg)
{
	struct fwd_ctx *f = arg;
	int fd, r;
	pthread_mutex_lock(&f->mu);
	if (!f->raw) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&f->ra, sizeof(f->ra))) {
			r = -errno;
			close(fd);
			fd = r;
		} else if (fd < 0) {
			fd = -errno;
		}
		pthread_mutex_unlock(&f->mu);
		return fd;
	}
	struct rp_session_opts so = { .raddr = f->ra.sin_addr.s_addr, .rport = ntohs(f->ra.sin_port),
				      .timeout_ns = (uint64_t)f->timeout_ms * 1000000u };
	struct rp_session *ss;
	struct rp_handoff_params p;
	struct rp_handoff_result res;
	uint32_t la4, ra4;
	uint16_t lp, rp;
	if ((r = rp_session_open(&so, &ss))) {
		pthread_mutex_unlock(&f->mu);
		return r;
	}
	if ((r = rp_session_handshake(ss)) == 0) {
		rp_session_tuple(ss, &la4, &lp, &ra4, &rp);
		r = rp_handoff_from_tcb(rp_session_tcb(ss), la4, lp, ra4, rp, rp_mono_ns(), &p);
	}
	fd = r ? r : rp_handoff(&p, NULL, &res);
	rp_session_close(ss);   /* guard off: the kernel owns the flow (or the attempt failed) */
	if (fd >= 0) {
		if (res.path == RP_HANDOFF_REPAIR)
			f->repair++;
		else
			f->other++;
	}
	pthread_mutex_unlock(&f->mu);
	return fd;
}

static int do_forward(const char *spec, const char *to, const char *ho, unsigned clients, unsigned timeout_ms)
{
	struct fwd_ctx f = { .raw = !strcmp(ho, "raw"), .timeout_ms = timeout_ms, .mu = PTHREAD_MUTEX_INITIALIZER };
	struct rp_forward_opts fo = { .max_clients = clients, .stop_fd = -1 };
	struct rp_forward_stats st;
	if (!spec || !to)
		return rp_usage_err("hoxfer", "forward needs --listen [ADDR:]PORT and --to ADDR:PORT");
	if (strcmp(ho, "raw") && strcmp(ho, "none"))
		return rp_usage_err("hoxfer", "forward: --handoff raw or none");
	if (rp_parse_hostport(to, 0, &f.ra))
		return rp_usage_err("hoxfer", "--to: want ADDR:PORT, got '%s'", to);
	int lfd = rp_forward_listen(spec, 16);
	if (lfd < 0)
		return lfd == -EINVAL ? rp_usage_err("hoxfer", "--listen: want [ADDR:]PORT, got '%s'", spec)
				      : rp_err_errno(lfd, "listen");
	printf("listening %s\n", spec);
	fflush(stdout);
	int r = rp_forward(lfd, fwd_dial, &f, &fo, &st);
	close(lfd);
	printf("forward accepted=%u completed=%u failed=%u dial_failed=%u up=%llu down=%llu repair=%u other=%u\n",
	       st.accepted, st.completed, st.failed, st.dial_failed, (unsigned long long)st.up_bytes,
	       (unsigned long long)st.down_bytes, f.repair, f.other);
	fflush(stdout);
	if (r)
		return rp_err_errno(r, "forward");
	return st.completed == st.accepted ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", 1, 0, 'p' }, { "bind", 1, 0, 'b' }, { "mode", 1, 0, 'm' }, { "bytes", 1, 0, 'n' },
		{ "pre", 1, 0, 'P' }, { "count", 1, 0, 'c' }, { "size", 1, 0, 's' }, { "to", 1, 0, 't' },
		{ "lport", 1, 0, 'l' }, { "handoff", 1, 0, 'H' }, { "no-fallback", 0, 0, 'F' },
		{ "timeout-ms", 1, 0, 'T' }, { "wait-first", 0, 0, 'W' }, { "role", 1, 0, 'R' },
		{ "listen", 1, 0, 'L' }, { "clients", 1, 0, 'C' }, { 0, 0, 0, 0 } };
	struct cfg c = { .mode = "xfer", .bytes = 1u << 20, .count = 1000, .size = 64, .timeout_ms = 8000 };
	const char *bind_s = NULL, *to = NULL, *ho = "none", *listen_s = NULL;
	unsigned clients = 1;
	unsigned long port = 0, lport = 0, v;
	int opt;

	if (argc < 2 || (strcmp(argv[1], "serve") && strcmp(argv[1], "client") && strcmp(argv[1], "forward")))
		return rp_usage_err("hoxfer", "first argument: serve, client or forward");
	if (sodium_init() < 0)
		return rp_err("libsodium init failed");
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'p': if (rp_parse_ulong(optarg, 1, 65535, &port)) return rp_usage_err("hoxfer", "bad --port"); break;
		case 'l': if (rp_parse_ulong(optarg, 1, 65535, &lport)) return rp_usage_err("hoxfer", "bad --lport"); break;
		case 'b': bind_s = optarg; break;
		case 'm':
			if (strcmp(optarg, "xfer") && strcmp(optarg, "sink") && strcmp(optarg, "rtt"))
				return rp_usage_err("hoxfer", "--mode: xfer, sink or rtt");
			c.mode = optarg;
			break;
		case 'n': if (rp_parse_ulong(optarg, 1, 1ul << 40, &v)) return rp_usage_err("hoxfer", "bad --bytes"); c.bytes = v; break;
		case 'P': if (rp_parse_ulong(optarg, 0, 1u << 20, &v)) return rp_usage_err("hoxfer", "bad --pre (0..1 MiB)"); c.pre = v; break;
		case 'c': if (rp_parse_ulong(optarg, 1, 10000000, &v)) return rp_usage_err("hoxfer", "bad --count"); c.count = (unsigned)v; break;
		case 's': if (rp_parse_ulong(optarg, 1, 65536, &v)) return rp_usage_err("hoxfer", "bad --size"); c.size = (unsigned)v; break;
		case 'T': if (rp_parse_ulong(optarg, 1, 600000, &v)) return rp_usage_err("hoxfer", "bad --timeout-ms"); c.timeout_ms = (unsigned)v; break;
		case 't': to = optarg; break;
		case 'H': ho = optarg; break;
		case 'F': c.no_fallback = true; break;
		case 'W': c.wait_first = true; break;
		case 'L': listen_s = optarg; break;
		case 'C': if (rp_parse_ulong(optarg, 1, 100000, &v)) return rp_usage_err("hoxfer", "bad --clients"); clients = (unsigned)v; break;
		case 'R':
			if (strcmp(optarg, "server") && strcmp(optarg, "client"))
				return rp_usage_err("hoxfer", "--role: client or server");
			c.as_server = !strcmp(optarg, "server");
			break;
		default: return rp_usage_err("hoxfer", "unknown option");
		}
	}
	if (c.pre > c.bytes)
		return rp_usage_err("hoxfer", "--pre may not exceed --bytes");
	if (!strcmp(argv[1], "forward"))
		return do_forward(listen_s, to, ho, clients, c.timeout_ms);
	if (!strcmp(argv[1], "serve")) {
		if (!port)
			return rp_usage_err("hoxfer", "serve needs --port");
		return do_serve(bind_s, port, &c);
	}
	if (!to)
		return rp_usage_err("hoxfer", "client needs --to ADDR:PORT");
	if (!strcmp(ho, "freeze") && !c.pre)
		return rp_usage_err("hoxfer", "--handoff freeze needs --pre > 0 (the server holds its stream until then)");
	if (!strcmp(ho, "fresh") && !lport)
		return rp_usage_err("hoxfer", "--handoff fresh needs --lport");
	return do_client(to, lport, ho, &c);
}
