/* SPDX-License-Identifier: MIT */
/* rp-baseline: the classic TCP hole punch with kernel sockets only (the approach rawpunch is measured
 * against in tools/bench/matrix).
 *
 *   rp-baseline --me FILE --peer FILE [--stun IP:PORT] [--bind [IP:]PORT] [--session NAME]
 *               [--lead-ms MS] [--window-ms MS] [--retry-ms MS] [--wait-ms MS] [--payload BYTES]
 *
 * 1. Bind a port (SO_REUSEADDR|SO_REUSEPORT; port 0 = the kernel's choice) and learn its public
 *    address by a STUN Binding over TCP from that port (closed with FIN, so the mapping stays).
 * 2. Publish "MAPPED_IP:PORT REALTIME_NS" in --me (written atomically: tmp + rename) and wait for the
 *    peer's line in --peer (the caller exchanges the files; both sides on one machine share a clock).
 * 3. The agreed moment is max(both publish times) + --lead-ms (CLOCK_REALTIME). From then on, every
 *    --retry-ms, a fresh socket bound to the same port calls connect() to the peer's mapped address,
 *    until one connects or --window-ms has passed. A refused try (RST) waits for the next slot.
 * 4. On a connection each side sends --payload bytes derived from the session and its own mapped
 *    address (BLAKE2b), reads the peer's and checks them against what that peer must send, then
 *    closes in order (FIN both ways).
 *
 * Prints one JSON line: method, ok, error, local, mapped, peer, stun_ms, tries, refused, timeouts,
 * time_ms (agreed moment -> connected), verified_ms (-> payload checked), total_ms (process start ->
 * connected: STUN, the exchange and the lead included), start_real_ms.
 * Exit 0: connected and verified; 1: failed (the JSON says why); 2: bad usage (nothing sent). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/probe/stun.h"

#define PAYLOAD_MAX 65536

struct cfg {
	struct sockaddr_in stun, bind;
	const char *me_file, *peer_file, *session;
	unsigned long lead_ms, window_ms, retry_ms, wait_ms, payload;
};

struct outcome {
	const char *error;            /* NULL on success */
	char detail[160];
	struct sockaddr_in local, mapped, peer;
	bool have_local, have_mapped, have_peer;
	double stun_ms;
	unsigned tries, refused, timeouts, other_err;
	int last_errno;
	uint64_t t0_real_ns;          /* process start */
	uint64_t start_real_ns, t_conn_ns, t_verified_ns;
};

static void sleep_until_real(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull) };
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int ms_left(uint64_t until)
{
	uint64_t n = rp_real_ns();
	return n >= until ? 0 : (int)((until - n + 999999ull) / 1000000ull);
}

/* The bytes side `who` (its mapped address) must send: BLAKE2b keyed by H(session), counter blocks. */
static void payload_for(const char *session, const struct sockaddr_in *who, uint8_t *out, size_t len)
{
	uint8_t key[crypto_generichash_KEYBYTES];
	char id[64];
	crypto_generichash(key, sizeof(key), (const uint8_t *)session, strlen(session), NULL, 0);
	rp_sin_str(who, id, sizeof(id));
	for (uint32_t blk = 0; len > 0; blk++) {
		crypto_generichash_state st;
		uint8_t h[64], c[4] = { (uint8_t)(blk >> 24), (uint8_t)(blk >> 16), (uint8_t)(blk >> 8), (uint8_t)blk };
		size_t n = len < sizeof(h) ? len : sizeof(h);
		crypto_generichash_init(&st, key, sizeof(key), sizeof(h));
		crypto_generichash_update(&st, (const uint8_t *)"rp-baseline payload v1|", 23);
		crypto_generichash_update(&st, (const uint8_t *)id, strlen(id));
		crypto_generichash_update(&st, c, sizeof(c));
		crypto_generichash_final(&st, h, sizeof(h));
		memcpy(out, h, n);
		out += n;
		len -= n;
	}
}

static int publish(const char *file, const struct sockaddr_in *mapped, uint64_t t)
{
	char tmp[4096], a[64];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", file, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	rp_sin_str(mapped, a, sizeof(a));
	fprintf(f, "%s %llu\n", a, (unsigned long long)t);
	if (fclose(f) != 0 || rename(tmp, file) != 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

/* Poll for the peer's file: 0 and *addr, *t; -ETIMEDOUT; -EBADMSG when it is there but malformed. */
static int read_peer(const char *file, unsigned long wait_ms, struct sockaddr_in *addr, uint64_t *t)
{
	uint64_t until = rp_real_ns() + wait_ms * 1000000ull;
	for (;;) {
		FILE *f = fopen(file, "r");
		if (f) {
			char a[128];
			unsigned long long tt;
			int n = fscanf(f, "%127s %llu", a, &tt);
			fclose(f);
			if (n != 2 || rp_parse_hostport(a, 0, addr) != 0 || addr->sin_addr.s_addr == 0)
				return -EBADMSG;
			*t = tt;
			return 0;
		}
		if (errno != ENOENT)
			return -errno;
		if (rp_real_ns() >= until)
			return -ETIMEDOUT;
		usleep(5000);
	}
}

static int bound_socket(const struct sockaddr_in *local)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)local, sizeof(*local))) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* Wait for fd to be ready for `ev` until `until` (REALTIME ns). 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short ev, uint64_t until)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = ev };
		int r = poll(&p, 1, ms_left(until));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		return r > 0;
	}
}

static int send_all(int fd, const uint8_t *b, size_t len, uint64_t until)
{
	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n > 0) {
			b += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		int r = wait_fd(fd, POLLOUT, until);
		if (r <= 0)
			return r ? r : -ETIMEDOUT;
	}
	return 0;
}

/* Read exactly len bytes; -EPIPE on an early EOF. */
static int recv_all(int fd, uint8_t *b, size_t len, uint64_t until)
{
	while (len) {
		ssize_t n = recv(fd, b, len, 0);
		if (n > 0) {
			b += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		int r = wait_fd(fd, POLLIN, until);
		if (r <= 0)
			return r ? r : -ETIMEDOUT;
	}
	return 0;
}

/* Connected: send ours, check theirs, then an orderly close (our FIN, wait for theirs). */
static int exchange(int fd, const struct cfg *c, struct outcome *o)
{
	uint8_t *mine = malloc(c->payload), *want = malloc(c->payload), *got = malloc(c->payload);
	uint64_t until = rp_real_ns() + 5000000000ull;
	int r = -ENOMEM;
	if (!mine || !want || !got)
		goto out;
	payload_for(c->session, &o->mapped, mine, c->payload);
	payload_for(c->session, &o->peer, want, c->payload);
	if ((r = send_all(fd, mine, c->payload, until)) || (r = recv_all(fd, got, c->payload, until)))
		goto out;
	if (sodium_memcmp(got, want, c->payload) != 0) {
		r = -EBADMSG;
		goto out;
	}
	o->t_verified_ns = rp_real_ns();
	shutdown(fd, SHUT_WR);
	for (;;) {   /* the peer's FIN (it may still be reading ours) */
		uint8_t sink[256];
		ssize_t n = recv(fd, sink, sizeof(sink), 0);
		if (n == 0)
			break;
		if (n > 0) {
			r = -EPROTO;   /* more than the payload */
			break;
		}
		if (errno != EAGAIN && errno != EINTR)
			break;   /* a reset after our check passed does not undo the verified exchange */
		if (wait_fd(fd, POLLIN, until) <= 0)
			break;
	}
out:
	free(mine);
	free(want);
	free(got);
	return r;
}

static int punch(const struct cfg *c, struct outcome *o)
{
	uint64_t end = o->start_real_ns + c->window_ms * 1000000ull;
	sleep_until_real(o->start_real_ns);
	for (uint64_t slot = o->start_real_ns; slot < end; slot += c->retry_ms * 1000000ull) {
		if (rp_real_ns() < slot)
			sleep_until_real(slot);
		uint64_t next = slot + c->retry_ms * 1000000ull;
		if (next > end)
			next = end;
		int fd = bound_socket(&o->local);
		if (fd < 0) {
			o->last_errno = -fd;
			o->other_err++;
			continue;
		}
		o->tries++;
		int r = connect(fd, (const struct sockaddr *)&o->peer, sizeof(o->peer));
		int err = r == 0 ? 0 : errno;
		if (err == EINPROGRESS) {
			r = wait_fd(fd, POLLOUT, next);
			if (r < 0) {
				err = -r;
			} else if (r == 0) {
				err = ETIMEDOUT;
			} else {
				socklen_t l = sizeof(err);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l))
					err = errno;
			}
		}
		if (err == 0) {
			o->t_conn_ns = rp_real_ns();
			r = exchange(fd, c, o);
			close(fd);
			if (r) {
				o->error = "exchange";
				snprintf(o->detail, sizeof(o->detail), "%s", strerror(-r));
				return r;
			}
			return 0;
		}
		close(fd);
		o->last_errno = err;
		if (err == ECONNREFUSED)
			o->refused++;
		else if (err == ETIMEDOUT)
			o->timeouts++;
		else
			o->other_err++;
	}
	o->error = "window";
	snprintf(o->detail, sizeof(o->detail), "no connection in %lu ms (%u tries: %u refused, %u timed out, %u other; last %s)",
		 c->window_ms, o->tries, o->refused, o->timeouts, o->other_err,
		 o->last_errno ? strerror(o->last_errno) : "-");
	return -ETIMEDOUT;
}

static void add_addr(struct json_object *j, const char *k, bool have, const struct sockaddr_in *a)
{
	char b[64];
	if (!have) {
		json_object_object_add(j, k, NULL);
		return;
	}
	rp_sin_str(a, b, sizeof(b));
	json_object_object_add(j, k, json_object_new_string(b));
}

/* Milliseconds with microsecond precision, printed as such (not as the nearest binary double). */
static struct json_object *ms_json(double ms)
{
	char b[32];
	snprintf(b, sizeof(b), "%.3f", ms);
	return json_object_new_double_s(ms, b);
}

static struct json_object *ms_since(uint64_t t, uint64_t t0)
{
	return ms_json(((double)t - (double)t0) / 1e6);
}

static void report(const struct outcome *o)
{
	struct json_object *j = json_object_new_object();
	json_object_object_add(j, "method", json_object_new_string("baseline"));
	json_object_object_add(j, "ok", json_object_new_boolean(!o->error));
	json_object_object_add(j, "error", o->error ? json_object_new_string(o->error) : NULL);
	json_object_object_add(j, "detail", o->detail[0] ? json_object_new_string(o->detail) : NULL);
	add_addr(j, "local", o->have_local, &o->local);
	add_addr(j, "mapped", o->have_mapped, &o->mapped);
	add_addr(j, "peer", o->have_peer, &o->peer);
	json_object_object_add(j, "stun_ms", ms_json(o->stun_ms));
	json_object_object_add(j, "tries", json_object_new_int((int)o->tries));
	json_object_object_add(j, "refused", json_object_new_int((int)o->refused));
	json_object_object_add(j, "timeouts", json_object_new_int((int)o->timeouts));
	json_object_object_add(j, "other_errors", json_object_new_int((int)o->other_err));
	if (o->t_conn_ns)
		json_object_object_add(j, "time_ms", ms_since(o->t_conn_ns, o->start_real_ns));
	else
		json_object_object_add(j, "time_ms", NULL);
	if (o->t_verified_ns)
		json_object_object_add(j, "verified_ms", ms_since(o->t_verified_ns, o->start_real_ns));
	else
		json_object_object_add(j, "verified_ms", NULL);
	json_object_object_add(j, "total_ms", o->t_conn_ns ? ms_since(o->t_conn_ns, o->t0_real_ns) : NULL);
	json_object_object_add(j, "start_real_ms", o->start_real_ns ?
			       json_object_new_int64((int64_t)(o->start_real_ns / 1000000ull)) : NULL);
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(j);
}

static void usage(FILE *f)
{
	fputs("usage: rp-baseline --me FILE --peer FILE [--stun IP:PORT] [--bind [IP:]PORT] [--session NAME]\n"
	      "                   [--lead-ms MS] [--window-ms MS] [--retry-ms MS] [--wait-ms MS] [--payload BYTES]\n"
	      "  --stun       STUN server (TCP), default 198.18.3.2:3478\n"
	      "  --bind       local address/port to punch from (default 0.0.0.0:0, the kernel's choice)\n"
	      "  --me FILE    where to publish this side's mapped address; --peer FILE: where the peer's appears\n"
	      "  --session    names the pair; keys the payload each side must send (default \"rp-baseline\")\n"
	      "  --lead-ms    agreed moment = later publish time + this (default 300)\n"
	      "  --window-ms  keep trying this long from the agreed moment (default 8000)\n"
	      "  --retry-ms   a new connect() every this many ms (default 200)\n"
	      "  --wait-ms    how long to wait for the peer's file (default 15000)\n"
	      "  --payload    bytes each way, checked (default 64, max 65536)\n", f);
}

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
	va_list ap;
	fputs("rp-baseline: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nhint: rp-baseline --help\n", stderr);
	return 2;
}

static int parse_ms(const char *opt, const char *v, unsigned long lo, unsigned long hi, unsigned long *out)
{
	if (rp_parse_ulong(v, lo, hi, out))
		return usage_err("%s: want %lu..%lu, got '%s'", opt, lo, hi, v);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "stun", required_argument, NULL, 's' }, { "bind", required_argument, NULL, 'b' },
		{ "me", required_argument, NULL, 'm' }, { "peer", required_argument, NULL, 'p' },
		{ "session", required_argument, NULL, 'S' }, { "lead-ms", required_argument, NULL, 'l' },
		{ "window-ms", required_argument, NULL, 'w' }, { "retry-ms", required_argument, NULL, 'r' },
		{ "wait-ms", required_argument, NULL, 'W' }, { "payload", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	struct cfg c = { .session = "rp-baseline", .lead_ms = 300, .window_ms = 8000, .retry_ms = 200,
			 .wait_ms = 15000, .payload = 64 };
	struct outcome o = { .t0_real_ns = rp_real_ns() };
	int opt, r;
	rp_parse_hostport("198.18.3.2:3478", 0, &c.stun);
	c.bind.sin_family = AF_INET;
	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (rp_parse_hostport(optarg, 3478, &c.stun) || !c.stun.sin_addr.s_addr)
				return usage_err("--stun: want IP[:PORT], got '%s'", optarg);
			break;
		case 'b': {
			unsigned long p;
			if (strchr(optarg, ':')) {
				const char *col = strrchr(optarg, ':');
				if (col[1] == '0' && col[2] == 0) {   /* IP:0 — any port */
					char ip[64];
					snprintf(ip, sizeof(ip), "%.*s", (int)(col - optarg), optarg);
					if (rp_parse_ipv4(ip, &c.bind.sin_addr.s_addr))
						return usage_err("--bind: bad address '%s'", optarg);
					c.bind.sin_port = 0;
				} else if (rp_parse_hostport(optarg, 0, &c.bind)) {
					return usage_err("--bind: want [IP:]PORT, got '%s'", optarg);
				}
			} else {
				if (rp_parse_ulong(optarg, 0, 65535, &p))
					return usage_err("--bind: want [IP:]PORT, got '%s'", optarg);
				c.bind.sin_port = htons((uint16_t)p);
			}
			break;
		}
		case 'm': c.me_file = optarg; break;
		case 'p': c.peer_file = optarg; break;
		case 'S':
			if (!*optarg || strlen(optarg) > 255)
				return usage_err("--session: 1..255 bytes");
			c.session = optarg;
			break;
		case 'l': if ((r = parse_ms("--lead-ms", optarg, 0, 60000, &c.lead_ms))) return r; break;
		case 'w': if ((r = parse_ms("--window-ms", optarg, 1, 600000, &c.window_ms))) return r; break;
		case 'r': if ((r = parse_ms("--retry-ms", optarg, 10, 60000, &c.retry_ms))) return r; break;
		case 'W': if ((r = parse_ms("--wait-ms", optarg, 1, 600000, &c.wait_ms))) return r; break;
		case 'P': if ((r = parse_ms("--payload", optarg, 1, PAYLOAD_MAX, &c.payload))) return r; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	if (!c.me_file || !c.peer_file) {
		usage(stderr);
		return usage_err("--me and --peer are required");
	}
	if (!strcmp(c.me_file, c.peer_file))
		return usage_err("--me and --peer must be different files");
	if (sodium_init() < 0)
		return fprintf(stderr, "rp-baseline: libsodium failed to initialise\n"), 1;

	/* 1. STUN from the punch port */
	struct rp_stun_opts so = { .local_addr = c.bind.sin_addr.s_addr, .local_port = ntohs(c.bind.sin_port),
				   .timeout_ms = 3000, .software = "rp-baseline", .close = RP_STUN_CLOSE_FIN };
	struct rp_stun_result sr;
	r = rp_stun_binding(&c.stun, &so, &sr);
	if (r == 0 && !sr.has_mapped)
		r = -EPROTO;
	if (r) {
		o.error = "stun";
		snprintf(o.detail, sizeof(o.detail), "%s%s", strerror(-r), sr.error_code ? " (STUN error response)" : "");
		report(&o);
		return 1;
	}
	o.stun_ms = (double)sr.total_ns / 1e6;
	o.local = sr.local;
	o.have_local = true;
	o.mapped = sr.mapped;
	o.have_mapped = true;

	/* 2. exchange mapped addresses */
	uint64_t t_pub = rp_real_ns(), t_peer = 0;
	if ((r = publish(c.me_file, &o.mapped, t_pub))) {
		o.error = "publish";
		snprintf(o.detail, sizeof(o.detail), "%s: %s", c.me_file, strerror(-r));
		report(&o);
		return 1;
	}
	if ((r = read_peer(c.peer_file, c.wait_ms, &o.peer, &t_peer))) {
		o.error = "peer";
		snprintf(o.detail, sizeof(o.detail), "%s: %s", c.peer_file,
			 r == -EBADMSG ? "malformed (want \"IP:PORT REALTIME_NS\")" : strerror(-r));
		report(&o);
		return 1;
	}
	o.have_peer = true;

	/* 3./4. connect at the agreed moment, retrying; then the checked exchange */
	o.start_real_ns = (t_pub > t_peer ? t_pub : t_peer) + c.lead_ms * 1000000ull;
	r = punch(&c, &o);
	report(&o);
	return r ? 1 : 0;
}
