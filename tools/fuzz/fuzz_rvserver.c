/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the rendezvous server's frame handlers and event handling: one in-process
 * server (rawpunch/rendezvous/server*.c) is fed by four clients over socketpairs, attached with
 * rvs_client_add as if accepted from made-up addresses (loopback and private ones: a filter probe is
 * refused before any socket is made, so nothing leaves the process). The input is a script:
 *   0x00-0x7f  write the next (byte) bytes to client (op & 3)
 *   0x80       one turn of the server loop (rvs_step, no wait)
 *   0x81       move the server's clock on by (next byte) seconds, then a turn (timeouts, lifetimes,
 *              rate buckets)
 *   0x82       client (next byte & 3) closes      0x83  client (next byte & 3) shuts down its writes
 *   0x84       every client reads what the server sent it
 *   other      ignored
 * After the script: a few turns, then every connection is freed; the server must then hold no
 * session, connection, parked connection or per-address count (a leak of state aborts). Corpus:
 * tests/corpus/rvserver/. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/rendezvous/server-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCLI 4

static struct rv_server *srv;

static void read_all(int fd)
{
	uint8_t b[65536];
	if (fd >= 0)
		while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
			;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int cli[NCLI];
	if (!srv) {
		struct rv_server_cfg cfg = { .msg_burst = 8, .msg_per_s = 20, .fwd_max_msgs = 6, .fwd_max_bytes = 2048,
					     .max_conns_per_addr = 3, .max_sessions_per_addr = 2 };
		cfg.listen.sin_family = AF_INET;
		cfg.listen.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (rv_server_open(&cfg, &srv))
			abort();
	}
	for (int i = 0; i < NCLI; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			abort();
		fcntl(sv[0], F_SETFL, O_NONBLOCK);
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		cli[i] = sv[0];
		struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(40000 + i)) };
		/* clients 0 and 1 share an address (per-address caps), 2 is loopback, 3 private */
		peer.sin_addr.s_addr = htonl(i < 2 ? 0x0a000001u : i == 2 ? 0x7f000001u : 0xc0a80001u);
		rvs_client_add(srv, sv[1], &peer);
	}
	size_t off = 0;
	while (off < size) {
		uint8_t op = data[off++];
		if (op < 0x80) {
			size_t n = off < size ? data[off++] : 0;
			if (n > size - off)
				n = size - off;
			if (cli[op & 3] >= 0 && n)
				(void)!send(cli[op & 3], data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			off += n;
		} else if (op == 0x80) {
			rvs_step(srv, 0);
		} else if (op == 0x81) {
			srv->skew_ms += (off < size ? data[off++] : 1) * 1000ull;
			rvs_step(srv, 0);
		} else if (op == 0x82 || op == 0x83) {
			int i = (off < size ? data[off++] : 0) & 3;
			if (cli[i] >= 0 && op == 0x82) {
				close(cli[i]);
				cli[i] = -1;
			} else if (cli[i] >= 0) {
				shutdown(cli[i], SHUT_WR);
			}
		} else if (op == 0x84) {
			for (int i = 0; i < NCLI; i++)
				read_all(cli[i]);
		}
	}
	for (int k = 0; k < 3; k++)
		rvs_step(srv, 0);
	for (int i = 0; i < NCLI; i++) {
		read_all(cli[i]);
		if (cli[i] >= 0)
			close(cli[i]);
	}
	while (srv->conns)
		rvs_conn_free(srv, srv->conns);
	if (srv->st.sessions_now || srv->st.conns_now || srv->n_clients || srv->n_probes || srv->parked)
		abort();
	for (unsigned i = 0; i < NBUCKETS; i++)
		if (srv->buckets[i] || srv->per_addr[i])
			abort();
	return 0;
}
