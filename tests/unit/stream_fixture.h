/* SPDX-License-Identifier: MIT */
/* For unit tests: a byte stream each way between two ends, as the switch tests drive it. A writer
 * thread sends n bytes of a salted pattern then half-closes; a reader thread checks every byte it
 * gets against the peer's pattern. Header-only; include after <cmocka.h>. */
#ifndef RP_TEST_STREAM_FIXTURE_H
#define RP_TEST_STREAM_FIXTURE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

static uint8_t pat(uint64_t i, uint8_t salt)
{
	return (uint8_t)((i * 2654435761u >> 13) ^ salt);
}

struct end {
	int fd;              /* the socket this end writes and reads */
	uint64_t n;          /* bytes to send */
	uint8_t salt, peer_salt;
	uint64_t got;        /* bytes received */
	bool bad;            /* a received byte differs from the peer's pattern */
	uint64_t switch_at;  /* 0, or after sending this many, set *go */
	int *go;
	uint64_t *sent;      /* NULL, or the progress, for the test to pick the moment of the move */
	uint64_t pause_at;   /* 0, or stop reading for 100 ms once this many arrived (the switch's
	                        buffers and the local socketpair fill up around the move) */
};

static void *writer(void *arg)
{
	struct end *e = arg;
	uint8_t b[8192];
	uint64_t off = 0;
	while (off < e->n) {
		size_t k = e->n - off < sizeof(b) ? (size_t)(e->n - off) : sizeof(b);
		for (size_t i = 0; i < k; i++)
			b[i] = pat(off + i, e->salt);
		ssize_t w = write(e->fd, b, k);
		if (w <= 0)
			return NULL;
		off += (uint64_t)w;
		if (e->sent)
			__atomic_store_n(e->sent, off, __ATOMIC_SEQ_CST);
		if (e->switch_at && off >= e->switch_at)
			__atomic_store_n(e->go, 1, __ATOMIC_SEQ_CST);
	}
	shutdown(e->fd, SHUT_WR);
	return NULL;
}

static void *reader(void *arg)
{
	struct end *e = arg;
	uint8_t b[8192];
	for (;;) {
		ssize_t r = read(e->fd, b, sizeof(b));
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if (b[i] != pat(e->got + (uint64_t)i, e->peer_salt))
				e->bad = true;
		e->got += (uint64_t)r;
		if (e->pause_at && e->got >= e->pause_at) {
			e->pause_at = 0;
			usleep(100000);
		}
	}
	return NULL;
}
#endif
