/* SPDX-License-Identifier: MIT */
/* rv-load: load and abuse checks for a rawpunch rendezvous server (used by tests/lab/rendezvous_*.sh).
 *
 *   rv-load SERVER[:PORT] pairs N          N sessions at once (2N client threads); every client must get
 *                                          its own partner's natinfo and both the same start time, then
 *                                          one sealed round trip (rv_send/rv_recv) must carry the pair id
 *   rv-load SERVER[:PORT] forge SESSION SECRET_FILE
 *                                          join SESSION with the right session id (what the server and
 *                                          the path see) but a box key that is not derived from the
 *                                          secret: exits 0 if the join was refused as unauthenticated
 *   rv-load SERVER[:PORT] flood SECONDS    pipeline "time" frames as fast as the socket takes them (and
 *                                          read the answers), for SECONDS; prints what went through
 *   rv-load SERVER[:PORT] joins PAIRS ROUNDS
 *                                          PAIRS pairs of peers, ROUNDS joins each (connect, 16 clock
 *                                          samples at once, join, hello, info; 5 s timeout), every round
 *                                          a new session; prints the join latencies (p50, p99, max) and
 *                                          exits 0 if every join succeeded
 *   rv-load SERVER[:PORT] hold N SECONDS   open N connections one after the other, send a "time" frame
 *                                          on each, count the answers (1 s), hold them SECONDS, close
 *   rv-load SERVER[:PORT] squat SESSION SECRET_FILE SECONDS
 *                                          join SESSION's id (what anyone who saw it can do) and send a
 *                                          garbage box every 100 ms for SECONDS; prints what it saw
 * Exit 0 on success, 1 on failure (details on stderr). */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/rendezvous/client.h"
#include "rawpunch/rendezvous/proto.h"

struct job {
	struct sockaddr_in srv;
	unsigned pair, side;
	char session[64];
	uint8_t secret[32];
	struct rv_keys keys;        /* derived once per pair (Argon2id is the peers' cost, not the server's) */
	int rc;
	struct rv_join_res res;
};

/* A later round over the sealed channel: the initiator sends "miss" {pair, round}, the other answers
 * "got" with the same pair; both check what they receive. */
static int exchange(struct rv_client *c, struct job *j)
{
	struct json_object *o = json_object_new_object(), *in, *v;
	const char *t;
	int r;
	json_object_object_add(o, "pair", json_object_new_int((int)j->pair));
	if (j->res.initiator) {
		json_object_object_add(o, "round", json_object_new_int(1));
		r = rv_send(c, "miss", o);
		if (!r && !(r = rv_recv(c, 10000, &in, &t))) {
			if (strcmp(t, "got") || !json_object_object_get_ex(in, "pair", &v) ||
			    json_object_get_int(v) != (int)j->pair)
				r = -EPROTO;
			json_object_put(in);
		}
	} else if (!(r = rv_recv(c, 10000, &in, &t))) {
		if (strcmp(t, "miss") || !json_object_object_get_ex(in, "pair", &v) ||
		    json_object_get_int(v) != (int)j->pair)
			r = -EPROTO;
		json_object_put(in);
		if (!r)
			r = rv_send(c, "got", o);
	}
	json_object_put(o);
	return r;
}

static void *run_one(void *arg)
{
	struct job *j = arg;
	struct rv_client *c;
	struct rv_join_req req = { .session = j->session, .secret = j->secret, .secret_len = sizeof(j->secret),
				   .timeout_ms = 30000, .clock_rounds = 4 };
	req.me.behind_nat = true;
	req.me.local_port = (uint16_t)(10000 + j->pair * 2 + j->side);  /* identifies the sender */
	inet_pton(AF_INET, j->side ? "198.18.2.2" : "198.18.1.2", &req.me.mapped_addr);
	req.me.mapped_port = req.me.local_port;
	req.cand[0] = (uint16_t)(j->pair + 1);
	req.n_cand = 1;
	j->rc = rv_connect(&j->srv, 10000, &c);
	if (j->rc)
		return NULL;
	j->rc = rv_join_keys(c, &j->keys, &req, &j->res);
	if (j->rc == 0)
		j->rc = exchange(c, j);
	rv_close(c);
	return NULL;
}

static int pairs(const struct sockaddr_in *srv, unsigned n)
{
	struct job *jobs = calloc(2 * n, sizeof(*jobs));
	pthread_t *th = calloc(2 * n, sizeof(*th));
	pthread_attr_t at;
	uint8_t secret[32];
	unsigned ok = 0, bad = 0;
	struct timespec t0, t1;
	if (!jobs || !th)
		return 1;
	randombytes_buf(secret, sizeof(secret));
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 256 * 1024);
	for (unsigned i = 0; i < 2 * n; i++) {
		struct job *j = &jobs[i];
		j->srv = *srv;
		j->pair = i / 2;
		j->side = i % 2;
		snprintf(j->session, sizeof(j->session), "load-%u-%u", (unsigned)getpid(), j->pair);
		memcpy(j->secret, secret, sizeof(secret));
		if (j->side == 0 && rv_keys_derive(secret, sizeof(secret), j->session, &j->keys)) {
			fprintf(stderr, "rv-load: key derivation failed\n");
			return 1;
		}
		if (j->side == 1)
			j->keys = jobs[i - 1].keys;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < 2 * n; i++) {
		if (pthread_create(&th[i], &at, run_one, &jobs[i])) {
			fprintf(stderr, "rv-load: pthread_create failed at %u\n", i);
			return 1;
		}
	}
	for (unsigned i = 0; i < 2 * n; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (unsigned p = 0; p < n; p++) {
		struct job *a = &jobs[2 * p], *b = &jobs[2 * p + 1];
		const char *why = NULL;
		if (a->rc || b->rc)
			why = strerror(-(a->rc ? a->rc : b->rc));
		else if (a->res.peer.local_port != 10000 + 2 * p + 1 || b->res.peer.local_port != 10000 + 2 * p)
			why = "got another session's natinfo";
		else if (a->res.n_peer_cand != 1 || a->res.peer_cand[0] != p + 1)
			why = "candidates lost";
		else if (a->res.start_server_ns != b->res.start_server_ns)
			why = "start times differ";
		else if (a->res.initiator == b->res.initiator)
			why = "both sides have the same role";
		if (why) {
			if (bad++ < 5)
				fprintf(stderr, "rv-load: pair %u: %s\n", p, why);
		} else {
			ok++;
		}
	}
	printf("rv-load: %u/%u sessions paired correctly in %.2f s\n", ok, n,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(jobs);
	free(th);
	return ok == n ? 0 : 1;
}

static int read_secret(const char *path, uint8_t *secret, size_t cap, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	*n = fread(secret, 1, cap, f);
	fclose(f);
	if (*n && secret[*n - 1] == '\n')
		(*n)--;
	return 0;
}

static int forge(const struct sockaddr_in *srv, const char *session, const char *secret_file)
{
	uint8_t secret[4096];
	struct rv_keys k;
	struct rv_client *c;
	struct rv_join_req req = { .session = session, .timeout_ms = 4000 };
	struct rv_join_res res;
	size_t n;
	if (read_secret(secret_file, secret, sizeof(secret), &n) || rv_keys_derive(secret, n, session, &k))
		return 1;
	randombytes_buf(k.kbox, sizeof(k.kbox));     /* knows the id, not the key */
	inet_pton(AF_INET, "198.18.1.2", &req.me.mapped_addr);
	if (rv_connect(srv, 5000, &c))
		return 1;
	int r = rv_join_keys(c, &k, &req, &res);
	rv_close(c);
	printf("rv-load: forger's join: %s\n", r ? strerror(-r) : "ACCEPTED");
	return r == -EACCES ? 0 : 1;
}

/* ---- raw protocol helpers for the abuse modes */

static int dial(const struct sockaddr_in *srv)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		return -1;
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)srv, sizeof(*srv)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static size_t put_frame(uint8_t *out, const char *body)
{
	size_t n = strlen(body);
	rv_frame_hdr(out, n);
	memcpy(out + RV_HDR, body, n);
	return RV_HDR + n;
}

static int send_frame(int fd, const char *body)
{
	uint8_t b[RV_HDR + 1024];
	size_t n = put_frame(b, body);
	return send(fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static int flood(const struct sockaddr_in *srv, unsigned secs)
{
	static uint8_t buf[65536];
	uint8_t junk[65536];
	size_t n = 0, off = 0;
	unsigned long long sent = 0, back = 0;
	while (n + 64 < sizeof(buf))
		n += put_frame(buf + n, "{\"t\":\"time\",\"t1\":1}");
	size_t flen = put_frame(junk, "{\"t\":\"time\",\"t1\":1}");
	int fd = dial(srv);
	if (fd < 0) {
		fprintf(stderr, "rv-load: flood: cannot connect\n");
		return 1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	uint64_t t0 = rp_mono_ms(), end = t0 + secs * 1000ull;
	const char *how = "time up";
	while (rp_mono_ms() < end) {
		struct pollfd p = { fd, POLLIN | POLLOUT, 0 };
		if (poll(&p, 1, 100) < 0)
			break;
		if (p.revents & POLLIN) {
			ssize_t k = recv(fd, junk, sizeof(junk), 0);
			if (k == 0 || (k < 0 && errno != EAGAIN)) {
				how = "the server closed the connection";
				break;
			}
			if (k > 0)
				back += (unsigned long long)k;
		}
		if (p.revents & POLLOUT) {
			ssize_t k = send(fd, buf + off, n - off, MSG_NOSIGNAL);
			if (k < 0 && errno != EAGAIN) {
				how = "send failed";
				break;
			}
			if (k > 0) {
				sent += (unsigned long long)k;
				off = (off + (size_t)k) % n;
				if (off % flen)
					continue;
			}
		}
	}
	double dt = (double)(rp_mono_ms() - t0) / 1000.0;
	printf("rv-load: flood: %llu time frames sent in %.1f s (%.0f/s), %llu bytes of answers (%s)\n",
	       sent / flen, dt, (double)(sent / flen) / dt, back, how);
	close(fd);
	return 0;
}

struct jjob {
	struct sockaddr_in srv;
	unsigned pair, side, rounds;
	struct rv_keys *keys;          /* one per round, shared by the pair */
	pthread_barrier_t *bar;
	double *lat_ms;                /* per round; < 0: failed */
	int *err;
};

static void *join_rounds(void *arg)
{
	struct jjob *j = arg;
	for (unsigned r = 0; r < j->rounds; r++) {
		struct rv_client *c;
		struct rv_join_req req = { .session = "x", .timeout_ms = 5000, .clock_rounds = 16 };
		struct rv_join_res res;
		req.me.local_port = (uint16_t)(1000 + j->side);
		pthread_barrier_wait(j->bar);
		uint64_t t0 = rp_mono_ns();
		int e = rv_connect(&j->srv, 5000, &c);
		if (!e) {
			e = rv_join_keys(c, &j->keys[r], &req, &res);
			if (!e && res.peer.local_port != 1000 + (1 - j->side))
				e = -EPROTO;
			rv_close(c);
		}
		j->lat_ms[r] = e ? -1.0 : (double)(rp_mono_ns() - t0) / 1e6;
		if (e)
			j->err[r] = e;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int joins(const struct sockaddr_in *srv, unsigned pairs, unsigned rounds)
{
	unsigned n = 2 * pairs * rounds, ok = 0, bad = 0;
	struct jjob *jobs = calloc(2 * pairs, sizeof(*jobs));
	pthread_t *th = calloc(2 * pairs, sizeof(*th));
	pthread_barrier_t *bars = calloc(pairs, sizeof(*bars));
	struct rv_keys *keys = calloc((size_t)pairs * rounds, sizeof(*keys));
	double *lat = calloc(n, sizeof(*lat)), *okl = calloc(n, sizeof(*okl));
	int *err = calloc(n, sizeof(*err));
	uint8_t secret[32];
	if (!jobs || !th || !bars || !keys || !lat || !okl || !err)
		return 1;
	randombytes_buf(secret, sizeof(secret));
	for (unsigned i = 0; i < pairs * rounds; i++) {     /* Argon2id before the clock starts */
		char session[64];
		snprintf(session, sizeof(session), "joins-%u-%u", (unsigned)getpid(), i);
		if (rv_keys_derive(secret, sizeof(secret), session, &keys[i]))
			return 1;
	}
	for (unsigned p = 0; p < pairs; p++)
		pthread_barrier_init(&bars[p], NULL, 2);
	for (unsigned i = 0; i < 2 * pairs; i++) {
		struct jjob *j = &jobs[i];
		j->srv = *srv;
		j->pair = i / 2;
		j->side = i % 2;
		j->rounds = rounds;
		j->keys = &keys[j->pair * rounds];
		j->bar = &bars[j->pair];
		j->lat_ms = &lat[i * rounds];
		j->err = &err[i * rounds];
		if (pthread_create(&th[i], NULL, join_rounds, j))
			return 1;
	}
	for (unsigned i = 0; i < 2 * pairs; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = 0; i < n; i++) {
		if (lat[i] >= 0) {
			okl[ok++] = lat[i];
		} else if (bad++ < 5) {
			fprintf(stderr, "rv-load: join %u failed: %s\n", i, strerror(-err[i]));
		}
	}
	/* a failed join counts as the 5 s it waited */
	for (unsigned i = 0; i < bad; i++)
		okl[ok + i] = 5000.0;
	qsort(okl, n, sizeof(*okl), cmp_double);
	printf("rv-load: joins: %u ok, %u failed; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", ok, bad,
	       okl[n / 2], okl[(size_t)((n - 1) * 0.99)], okl[n - 1]);
	return bad ? 1 : 0;
}

static int hold(const struct sockaddr_in *srv, unsigned n, unsigned secs)
{
	int *fd = calloc(n, sizeof(*fd));
	unsigned conn = 0, answered = 0;
	if (!fd)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		fd[i] = dial(srv);
		if (fd[i] >= 0) {
			conn++;
			if (send_frame(fd[i], "{\"t\":\"time\",\"t1\":1}")) {
				close(fd[i]);
				fd[i] = -1;
			}
		}
	}
	uint64_t end = rp_mono_ms() + 1500;
	for (unsigned i = 0; i < n; i++) {
		uint8_t b[256];
		if (fd[i] < 0)
			continue;
		uint64_t now = rp_mono_ms();
		struct pollfd p = { fd[i], POLLIN, 0 };
		if (poll(&p, 1, now < end ? (int)(end - now) : 0) == 1 && recv(fd[i], b, sizeof(b), 0) > 0)
			answered++;
	}
	printf("rv-load: hold: %u/%u connected, %u answered\n", conn, n, answered);
	fflush(stdout);
	sleep(secs);
	for (unsigned i = 0; i < n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	free(fd);
	return 0;
}

static int squat(const struct sockaddr_in *srv, const char *session, const char *secret_file, unsigned secs)
{
	uint8_t secret[4096], rb[65536], garbage[96];
	size_t sn, rl = 0;
	struct rv_keys k;
	char body[512], b64[256];
	unsigned sent = 0, boxes = 0, paired = 0;
	if (read_secret(secret_file, secret, sizeof(secret), &sn) || rv_keys_derive(secret, sn, session, &k))
		return 1;
	int fd = dial(srv);
	if (fd < 0)
		return 1;
	snprintf(body, sizeof(body), "{\"t\":\"join\",\"v\":1,\"id\":\"%s\"}", k.id_hex);
	if (send_frame(fd, body))
		return 1;
	uint64_t end = rp_mono_ms() + secs * 1000ull, next = 0;
	const char *how = "time up";
	while (rp_mono_ms() < end) {
		uint64_t now = rp_mono_ms();
		if (paired && now >= next) {
			randombytes_buf(garbage, sizeof(garbage));
			sodium_bin2base64(b64, sizeof(b64), garbage, sizeof(garbage), sodium_base64_VARIANT_ORIGINAL);
			snprintf(body, sizeof(body), "{\"t\":\"fwd\",\"box\":\"%s\"}", b64);
			if (send_frame(fd, body)) {
				how = "send failed";
				break;
			}
			sent++;
			next = now + 100;
		}
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 20) != 1)
			continue;
		ssize_t m = recv(fd, rb + rl, sizeof(rb) - rl, 0);
		if (m <= 0) {
			how = "the server closed the connection";
			break;
		}
		rl += (size_t)m;
		const uint8_t *fb;
		size_t fbl;
		long fl;
		while ((fl = rv_frame_scan(rb, rl, &fb, &fbl)) > 0) {
			if (memmem(fb, fbl, "\"paired\"", 8))
				paired++;
			else if (memmem(fb, fbl, "\"fwd\"", 5))
				boxes++;
			memmove(rb, rb + fl, rl - (size_t)fl);
			rl -= (size_t)fl;
		}
		if (fl < 0)
			break;
	}
	printf("rv-load: squat: %u paired notes, %u garbage boxes sent, %u boxes of others seen (%s)\n", paired, sent,
	       boxes, how);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in srv;
	unsigned long n;
	static const char usage[] = "usage: rv-load SERVER[:PORT] pairs N | forge SESSION SECRET_FILE | flood SECONDS |\n"
				    "       joins PAIRS ROUNDS | hold N SECONDS | squat SESSION SECRET_FILE SECONDS\n";
	if (argc < 3 || rp_parse_hostport(argv[1], RV_DEFAULT_PORT, &srv)) {
		fprintf(stderr, "%s", usage);
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	if (!strcmp(argv[2], "pairs") && argc == 4 && !rp_parse_ulong(argv[3], 1, 2000, &n))
		return pairs(&srv, (unsigned)n);
	if (!strcmp(argv[2], "forge") && argc == 5)
		return forge(&srv, argv[3], argv[4]);
	unsigned long a, b;
	if (!strcmp(argv[2], "flood") && argc == 4 && !rp_parse_ulong(argv[3], 1, 600, &a))
		return flood(&srv, (unsigned)a);
	if (!strcmp(argv[2], "joins") && argc == 5 && !rp_parse_ulong(argv[3], 1, 100, &a) &&
	    !rp_parse_ulong(argv[4], 1, 1000, &b))
		return joins(&srv, (unsigned)a, (unsigned)b);
	if (!strcmp(argv[2], "hold") && argc == 5 && !rp_parse_ulong(argv[3], 1, 10000, &a) &&
	    !rp_parse_ulong(argv[4], 0, 600, &b))
		return hold(&srv, (unsigned)a, (unsigned)b);
	if (!strcmp(argv[2], "squat") && argc == 6 && !rp_parse_ulong(argv[5], 1, 600, &a))
		return squat(&srv, argv[3], argv[4], (unsigned)a);
	fprintf(stderr, "%s", usage);
	return 2;
}
