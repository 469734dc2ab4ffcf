/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the rendezvous wire codec and the offer codec: a byte stream is scanned
 * into frames exactly as the server does (rv_frame_scan, rv_body_parse), each body is also tried as a
 * peer's sealed box (rv_box_open) and as an opened plaintext (rv_msg_check), and the whole input as an
 * offer/answer text (rp_offer_decode). Corpus: tests/corpus/rv/. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/rendezvous/offer.h"
#include "rawpunch/rendezvous/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rv_keys k;
	static int init;
	if (!init) {
		rv_keys_derive((const uint8_t *)"fuzz-secret", 11, "fuzz", &k);
		init = 1;
	}
	size_t off = 0;
	while (off < size) {
		const uint8_t *body;
		size_t blen;
		long fl = rv_frame_scan(data + off, size - off, &body, &blen);
		if (fl <= 0)
			break;
		if ((size_t)fl > size - off || body + blen > data + size)
			abort();                       /* the scanner may never point past the input */
		struct json_object *o;
		const char *t;
		if (rv_body_parse(body, blen, &o, &t) == 0) {
			struct json_object *jb;
			if (json_object_object_get_ex(o, "box", &jb) && json_object_is_type(jb, json_type_string)) {
				uint8_t *pt;
				size_t pl;
				if (rv_box_open(&k, json_object_get_string(jb), &pt, &pl) == 0)
					free(pt);
			}
			json_object_put(o);
		}
		/* the body as a decrypted peer message */
		struct rv_peerstate ps;
		rv_peerstate_init(&ps);
		if (rv_msg_check(&ps, body, blen, &o, &t) == 0)
			json_object_put(o);
		off += (size_t)fl;
	}
	/* the whole input as a pasted offer/answer */
	char text[1024];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = 0;
	struct rp_offer of;
	(void)rp_offer_decode(text, (const uint8_t *)"fuzz-secret", 11, &of);
	return 0;
}
