/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the rendezvous client's frame and box handling (rawpunch/rendezvous/client.c):
 * the input becomes what a server sends a client that was just paired, over a socketpair that then
 * reaches its end (so no wait ever blocks); the client runs the rest of the join (hello, info: every
 * box through recv_box and rv_msg_check), and if that succeeds, rv_recv until the stream ends. The
 * input is a list of records, [kind][len:2][payload]:
 *   kind 0  raw bytes of the stream (frames, or garbage)
 *   kind 1  a plaintext sealed under the harness key, in {"t":"fwd","box":...,"m":1}; "@ME@" in it
 *           becomes the client's nonce in hex, so boxes can be addressed to it, and "@NOW@" the time
 *           a second from now (ns), so a proposed start can be acceptable
 *   kind 2  a frame around the payload (a server message body)
 *   else    a "paired" note (a newcomer)
 * Corpus: tests/corpus/rvclient/. */
#include <fcntl.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/rendezvous/client-internal.h"
#include "rawpunch/rendezvous/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rv_keys keys;

struct out {
	uint8_t b[196608];
	size_t n;
};

static void add(struct out *o, const void *p, size_t n)
{
	if (n > sizeof(o->b) - o->n)
		n = sizeof(o->b) - o->n;
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void add_frame(struct out *o, const char *body, size_t n)
{
	uint8_t h[RV_HDR];
	if (rv_frame_hdr(h, n))
		return;
	add(o, h, sizeof(h));
	add(o, body, n);
}

static void add_box(struct out *o, const uint8_t *pt, size_t n, const char *me_hex)
{
	char text[8192], *b64, body[20000], now[24];
	size_t tl = 0;
	snprintf(now, sizeof(now), "%llu", (unsigned long long)rp_real_ns() + 1000000000ull);
	for (size_t i = 0; i < n && tl + 33 < sizeof(text); i++) {
		if (i + 4 <= n && !memcmp(pt + i, "@ME@", 4)) {
			memcpy(text + tl, me_hex, 32);
			tl += 32;
			i += 3;
		} else if (i + 5 <= n && !memcmp(pt + i, "@NOW@", 5)) {
			memcpy(text + tl, now, strlen(now));
			tl += strlen(now);
			i += 4;
		} else {
			text[tl++] = (char)pt[i];
		}
	}
	if (tl > RV_BOX_MAX || rv_box_seal(&keys, (const uint8_t *)text, tl, &b64))
		return;
	int bl = snprintf(body, sizeof(body), "{\"t\":\"fwd\",\"box\":\"%s\",\"m\":1}", b64);
	free(b64);
	if (bl > 0 && (size_t)bl < sizeof(body))
		add_frame(o, body, (size_t)bl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct out o;
	static int init;
	int sv[2];
	if (!init) {
		if (rv_keys_derive((const uint8_t *)"fuzz-secret", 11, "fuzz", &keys))
			abort();
		init = 1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct rv_client *c = rv_client_adopt_(sv[1], &keys);
	if (!c)
		abort();
	char me[2 * RV_NONCE_LEN + 1];
	sodium_bin2hex(me, sizeof(me), rv_client_nonce_(c), RV_NONCE_LEN);
	o.n = 0;
	for (size_t off = 0; off + 3 <= size;) {
		uint8_t kind = data[off];
		size_t n = (size_t)data[off + 1] << 8 | data[off + 2];
		off += 3;
		if (n > size - off)
			n = size - off;
		if (kind == 0)
			add(&o, data + off, n);
		else if (kind == 1)
			add_box(&o, data + off, n, me);
		else if (kind == 2)
			add_frame(&o, (const char *)data + off, n);
		else
			add_frame(&o, "{\"t\":\"paired\",\"m\":2}", 20);
		off += n;
	}
	(void)!send(sv[0], o.b, o.n, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(sv[0], SHUT_WR);
	struct rv_join_req req = { .session = "fuzz" };
	struct rv_join_res res;
	memset(&res, 0, sizeof(res));
	int r = rv_join_finish_(c, &req, &res, 0);
	if (getenv("FUZZ_RVCLIENT_SHOW"))
		fprintf(stderr, "join: %d, bad boxes %u\n", r, res.bad_boxes);
	if (r == 0) {
		if (res.n_peer_cand > RV_MAX_CAND)
			abort();
		rv_client_set_joined_(c);
		for (int i = 0; i < 64; i++) {
			struct json_object *m;
			const char *t;
			if (rv_recv(c, 0, &m, &t))
				break;
			if (!t || !*t)
				abort();
			json_object_put(m);
		}
	}
	rv_close(c);                                  /* closes sv[1] */
	close(sv[0]);
	return 0;
}
