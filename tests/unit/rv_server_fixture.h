/* SPDX-License-Identifier: MIT */
/* For unit tests: a rendezvous server on 127.0.0.1 (an ephemeral port) run by its own thread, as the
 * rendezvous tests drive it. Header-only; include after <cmocka.h>. */
#ifndef RP_TEST_RV_SERVER_FIXTURE_H
#define RP_TEST_RV_SERVER_FIXTURE_H
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "rawpunch/rendezvous/server.h"

struct srv {
	struct rv_server *s;
	struct sockaddr_in a; /* where it listens */
	volatile sig_atomic_t stop;
	pthread_t th;
};

static void *srv_main(void *arg)
{
	struct srv *v = arg;
	rv_server_run(v->s, &v->stop);
	return NULL;
}

/* cfg with its listen address set to 127.0.0.1:0; fails the test if the server cannot open */
static inline void srv_start_cfg(struct srv *v, struct rv_server_cfg cfg)
{
	memset(v, 0, sizeof(*v));
	cfg.listen.sin_family = AF_INET;
	cfg.listen.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(rv_server_open(&cfg, &v->s), 0);
	rv_server_addr(v->s, &v->a);
	assert_int_equal(pthread_create(&v->th, NULL, srv_main, v), 0);
}

/* stop the thread and close the server; a second call does nothing */
static inline void srv_stop(struct srv *v)
{
	if (!v->s)
		return;
	v->stop = 1;
	pthread_join(v->th, NULL);
	rv_server_close(v->s);
	v->s = NULL;
}
#endif
