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
 * Exit 0 on success, 1 on failure (details on stderr). */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

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

static int forge(const struct sockaddr_in *srv, const char *session, const char *secret_file)
{
	uint8_t secret[4096];
	struct rv_keys k;
	struct rv_client *c;
	struct rv_join_req req = { .session = session, .timeout_ms = 15000 };
	struct rv_join_res res;
	FILE *f = fopen(secret_file, "rb");
	size_t n;
	if (!f)
		return 1;
	n = fread(secret, 1, sizeof(secret), f);
	fclose(f);
	if (n && secret[n - 1] == '\n')
		n--;
	if (rv_keys_derive(secret, n, session, &k))
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

int main(int argc, char **argv)
{
	struct sockaddr_in srv;
	unsigned long n;
	if (argc < 3 || rp_parse_hostport(argv[1], RV_DEFAULT_PORT, &srv)) {
		fprintf(stderr, "usage: rv-load SERVER[:PORT] pairs N | forge SESSION SECRET_FILE\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	if (!strcmp(argv[2], "pairs") && argc == 4 && !rp_parse_ulong(argv[3], 1, 2000, &n))
		return pairs(&srv, (unsigned)n);
	if (!strcmp(argv[2], "forge") && argc == 5)
		return forge(&srv, argv[3], argv[4]);
	fprintf(stderr, "usage: rv-load SERVER[:PORT] pairs N | forge SESSION SECRET_FILE\n");
	return 2;
}
