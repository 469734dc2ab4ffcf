/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the userspace TCP state machine (userstack/tcb.c).
 *
 * Input: a script. Byte 0 picks the open (active/passive, persist, option offers); then records of
 * 16 bytes, each one event: [0] kind, [1] flags, [2..5] seq offset, [6..9] ack offset (both
 * relative to the tcb's own rcv_nxt / snd_una so the interesting branches are reached), [10..11]
 * window, [12] payload length / 8, [13] option bits, [14..15] time step in ms. Payload bytes come
 * from the rest of the input. Checks after every step: return codes, sequence invariants, output
 * bounds, payload pointers inside the send buffer, and CLOSED <=> no timer. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "userstack/extract.h"
#include "userstack/seq.h"
#include "userstack/tcb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct us_tcb *t, const struct us_out *o, int rc)
{
	if (rc != 0 && rc != -EINVAL && rc != -ENOTCONN && rc != -EPIPE)
		abort();
	if (o->n > US_OUT_MAX || t->snd_len > US_SNDBUF || t->rcv_len > US_RCVBUF)
		abort();
	if (t->state == US_CLOSED) {
		if (o->timer_ns)
			abort();
		return;
	}
	if (seq_gt(t->snd_una, t->snd_nxt) || seq_gt(t->snd_nxt, t->snd_max))
		abort();
	for (unsigned i = 0; i < o->n; i++) {
		const struct us_out_seg *s = &o->seg[i];
		if (s->len && (s->payload < t->sndbuf || s->payload + s->len > t->sndbuf + US_SNDBUF))
			abort();
		if (s->len > 65535)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct us_tcb t;
	static uint8_t rb[4096];
	struct us_out o;
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	struct us_config c = {
		.iss = 0xfffff000u, .mss = 1460, .wscale_ok = mode & 2, .wscale = 7,
		.sack_ok = mode & 4, .ts_ok = mode & 8, .persist = mode & 16,
		.deadline_ns = (mode & 32) ? 30000000000ull : 0, .rcv_wnd = (mode & 64) ? 3000 : 0,
		.syn_no_backoff = mode & 128,
	};
	us_tcb_init(&t);
	struct us_event ev = { .type = (mode & 1) ? US_EV_OPEN_ACTIVE : US_EV_OPEN_PASSIVE, .cfg = &c };
	uint64_t now = 1000000000ull;
	check(&t, &o, us_step(&t, &ev, now, &o));

	size_t nrec = (size - 1) / 16;
	const uint8_t *rec = data + 1, *pay = data + 1 + nrec * 16, *end = data + size;
	for (size_t i = 0; i < nrec; i++, rec += 16) {
		struct us_event e = { .type = US_EV_SEGMENT };
		struct us_cur r = us_cur_make(rec, 16);
		us_skip(&r, 2);
		uint32_t seq_off = us_get_be32(&r), ack_off = us_get_be32(&r);
		uint16_t win = us_get_be16(&r);
		us_skip(&r, 2);
		now += (uint64_t)us_get_be16(&r) * 1000000ull;
		switch (rec[0] % 12) {
		case 0: e.type = US_EV_TIMER; break;
		case 1: e.type = US_EV_SEND; e.data = pay; e.len = (size_t)(end - pay) > rec[12] * 8u ? rec[12] * 8u : (size_t)(end - pay); break;
		case 2: e.type = US_EV_RECV; e.buf = rb; e.cap = rec[12] * 16u; break;
		case 3: e.type = US_EV_ICMP_ERROR; e.icmp.type = rec[1]; e.icmp.code = rec[12]; e.icmp.seq = t.snd_una + seq_off % 4; break;
		case 4: e.type = US_EV_CLOSE; break;
		case 5: e.type = (rec[1] & 1) ? US_EV_ABORT : US_EV_SEGMENT; break;
		default: break;
		}
		if (e.type == US_EV_SEGMENT) {
			struct us_segment *s = &e.seg;
			uint32_t base = t.state >= US_SYN_RECEIVED ? t.rcv_nxt : 0x10000u;
			s->seq = base + seq_off;
			s->ack = t.snd_una + ack_off;
			s->flags = rec[1];
			s->win = win;
			s->opts.has_mss = rec[13] & 1;
			s->opts.mss = (uint16_t)(rec[10] << 8 | rec[13]);
			s->opts.has_wscale = rec[13] & 2;
			s->opts.wscale = rec[13] >> 4 > 14 ? 14 : rec[13] >> 4;
			s->opts.sack_perm = rec[13] & 4;
			s->opts.has_ts = rec[13] & 8;
			s->opts.tsval = (uint32_t)(now / 1000000u) + rec[12];
			size_t want = rec[12] * 8u, have = (size_t)(end - pay);
			s->len = want < have ? want : have;
			s->payload = s->len ? pay : NULL;
		}
		int rc = us_step(&t, &e, now, &o);
		check(&t, &o, rc);
	}
	return 0;
}
