/* SPDX-License-Identifier: MIT */
/* The userspace TCP state machine (userstack/tcb.h): every transition, the bad ones too, and two
 * tcbs driven against each other over an in-test wire that can drop chosen segments. Segments
 * cross the wire through tcpopt_build/tcpopt_parse, so options are checked as encoded. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "userstack/seq.h"
#include "userstack/tcb.h"

#define S 1000000000ull
#define MS 1000000ull
#define T0 (100 * S)

static struct us_tcb *A, *B;

static struct us_config cfg_default(uint32_t iss)
{
	struct us_config c = {
		.iss = iss, .mss = 1460, .wscale_ok = true, .wscale = 7, .sack_ok = true, .ts_ok = true,
		.ts_offset = 1000, .syn_rto_ns = 1 * S, .rto_ns = 1 * S, .rto_max_ns = 60 * S,
		.max_retries = 6, .time_wait_ns = 2 * S,
	};
	return c;
}

static int setup(void **state)
{
	(void)state;
	A = malloc(sizeof(*A));
	B = malloc(sizeof(*B));
	assert_non_null(A);
	assert_non_null(B);
	memset(A, 0xa5, sizeof(*A));         /* us_tcb_init must not rely on zeroed memory */
	memset(B, 0x5a, sizeof(*B));
	us_tcb_init(A);
	us_tcb_init(B);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(A);
	free(B);
	return 0;
}

/* ---- event helpers ---- */

static void open_active(struct us_tcb *t, const struct us_config *c, uint64_t now, struct us_out *o)
{
	struct us_event ev = { .type = US_EV_OPEN_ACTIVE, .cfg = c };
	assert_int_equal(us_step(t, &ev, now, o), 0);
}

static void open_passive(struct us_tcb *t, const struct us_config *c, uint64_t now, struct us_out *o)
{
	struct us_event ev = { .type = US_EV_OPEN_PASSIVE, .cfg = c };
	assert_int_equal(us_step(t, &ev, now, o), 0);
}

static void seg_in(struct us_tcb *t, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
		   const struct tcp_opts *opts, const void *data, size_t len, uint64_t now,
		   struct us_out *o)
{
	struct us_event ev = { .type = US_EV_SEGMENT };
	ev.seg.seq = seq;
	ev.seg.ack = ack;
	ev.seg.flags = flags;
	ev.seg.win = win;
	if (opts)
		ev.seg.opts = *opts;
	ev.seg.payload = data;
	ev.seg.len = len;
	assert_int_equal(us_step(t, &ev, now, o), 0);
}

static void timer(struct us_tcb *t, uint64_t now, struct us_out *o)
{
	struct us_event ev = { .type = US_EV_TIMER };
	assert_int_equal(us_step(t, &ev, now, o), 0);
}

static int send_data(struct us_tcb *t, const void *p, size_t n, uint64_t now, struct us_out *o)
{
	struct us_event ev = { .type = US_EV_SEND, .data = p, .len = n };
	return us_step(t, &ev, now, o);
}

static int recv_data(struct us_tcb *t, void *p, size_t cap, uint64_t now, struct us_out *o)
{
	struct us_event ev = { .type = US_EV_RECV, .buf = p, .cap = cap };
	int rc = us_step(t, &ev, now, o);
	return rc < 0 ? rc : (int)o->nread;
}

static void close_ev(struct us_tcb *t, uint64_t now, struct us_out *o)
{
	struct us_event ev = { .type = US_EV_CLOSE };
	assert_int_equal(us_step(t, &ev, now, o), 0);
}

static void icmp_in(struct us_tcb *t, uint8_t type, uint8_t code, uint32_t seq, uint64_t now,
		    struct us_out *o)
{
	struct us_event ev = { .type = US_EV_ICMP_ERROR };
	ev.icmp.type = type;
	ev.icmp.code = code;
	ev.icmp.seq = seq;
	assert_int_equal(us_step(t, &ev, now, o), 0);
}

static const struct tcp_opts linux_syn_opts = {
	.has_mss = true, .mss = 1400, .has_wscale = true, .wscale = 9, .sack_perm = true,
	.has_ts = true, .tsval = 5000, .tsecr = 0,
};

/* A in ESTABLISHED after an active open against a scripted peer (irs 5000, wscale 9, ts). */
static void est_active(struct us_tcb *t, uint32_t iss, struct us_out *o)
{
	struct us_config c = cfg_default(iss);
	open_active(t, &c, T0, o);
	struct tcp_opts po = linux_syn_opts;
	po.tsecr = o->seg[0].opts.tsval;
	seg_in(t, 5000, iss + 1, US_TH_SYN | US_TH_ACK, 65535, &po, NULL, 0, T0 + 10 * MS, o);
	assert_int_equal(t->state, US_ESTABLISHED);
}

/* ---- active open ---- */

static void test_active_open_syn(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(0x11223344);
	open_active(A, &c, T0, &o);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_SYN);
	assert_int_equal(o.seg[0].seq, 0x11223344u);
	assert_int_equal(o.seg[0].ack, 0);
	assert_int_equal(o.seg[0].win, 32768);          /* unscaled in a SYN */
	assert_true(o.seg[0].opts.has_mss);
	assert_int_equal(o.seg[0].opts.mss, 1460);
	assert_true(o.seg[0].opts.has_wscale);
	assert_int_equal(o.seg[0].opts.wscale, 7);
	assert_true(o.seg[0].opts.sack_perm);
	assert_true(o.seg[0].opts.has_ts);
	assert_int_equal(o.seg[0].opts.tsval, (uint32_t)(T0 / MS) + 1000);
	assert_int_equal(o.seg[0].opts.tsecr, 0);
	assert_true(o.timer_ns == T0 + 1 * S);
	assert_int_equal(A->snd_una, 0x11223344u);
	assert_int_equal(A->snd_nxt, 0x11223345u);
	assert_int_equal(A->syn_tx, 1);
}

static void test_active_open_established(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 0xfffffffeu, &o);                 /* ISS near the wrap */
	assert_true(o.notify & US_N_ESTABLISHED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 0xffffffffu);
	assert_int_equal(o.seg[0].ack, 5001);
	assert_int_equal(o.seg[0].win, 32768 >> 7);     /* scaled now */
	assert_true(o.seg[0].opts.has_ts);
	assert_int_equal(o.seg[0].opts.tsecr, 5000);
	assert_false(o.seg[0].opts.has_mss);
	assert_true(o.timer_ns == 0);
	/* what the TCP_REPAIR handoff reads */
	assert_int_equal(A->iss, 0xfffffffeu);
	assert_int_equal(A->irs, 5000);
	assert_int_equal(A->snd_una, 0xffffffffu);
	assert_int_equal(A->snd_nxt, 0xffffffffu);
	assert_int_equal(A->rcv_nxt, 5001);
	assert_int_equal(A->snd_wnd, 65535);            /* SYN-ACK window is never scaled */
	assert_int_equal(A->max_window, 65535);
	assert_int_equal(A->snd_wl1, 5000);
	assert_int_equal(A->snd_wl2, 0xffffffffu);
	assert_int_equal(A->snd_wscale, 9);
	assert_int_equal(A->rcv_wscale, 7);
	assert_int_equal(A->rcv_wnd, 32768);
	assert_int_equal(A->rcv_wup, 5001);
	assert_int_equal(A->peer_mss, 1400);
	assert_true(A->wscale_ok && A->sack_ok && A->ts_ok);
	assert_int_equal(A->ts_recent, 5000);
	assert_int_equal(A->ts_offset, 1000);
}

static void test_negotiation_peer_without_options(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(100);
	open_active(A, &c, T0, &o);
	seg_in(A, 7000, 101, US_TH_SYN | US_TH_ACK, 8192, NULL, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_false(A->wscale_ok);
	assert_false(A->sack_ok);
	assert_false(A->ts_ok);
	assert_int_equal(A->snd_wscale, 0);
	assert_int_equal(A->rcv_wscale, 0);                 /* we offered 7, the peer did not agree */
	assert_int_equal(A->peer_mss, 536);
	assert_int_equal(A->eff_mss, 536);
	assert_false(o.seg[0].opts.has_ts);
	assert_int_equal(o.seg[0].win, 32768);               /* unscaled: no agreement */
}

static void test_negotiation_we_offer_nothing(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = { .iss = 100, .mss = 1200 };
	open_active(A, &c, T0, &o);
	assert_true(o.seg[0].opts.has_mss);
	assert_false(o.seg[0].opts.has_wscale || o.seg[0].opts.sack_perm || o.seg[0].opts.has_ts);
	seg_in(A, 7000, 101, US_TH_SYN | US_TH_ACK, 8192, &linux_syn_opts, NULL, 0, T0, &o);
	assert_false(A->wscale_ok || A->sack_ok || A->ts_ok);
	assert_int_equal(A->snd_wscale, 0);
	assert_int_equal(A->eff_mss, 1200);
}

static void test_syn_sent_unacceptable_ack(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	open_active(A, &c, T0, &o);
	/* ack == iss (acks nothing) and ack beyond snd_nxt: RST <SEQ=SEG.ACK>, stay in SYN-SENT */
	seg_in(A, 50, 1000, US_TH_SYN | US_TH_ACK, 100, NULL, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_RST);
	assert_int_equal(o.seg[0].seq, 1000);
	seg_in(A, 50, 1002, US_TH_ACK, 100, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_RST);
	assert_int_equal(o.seg[0].seq, 1002);
	/* an RST with a bad ACK is dropped silently (RFC 5961 §3) */
	seg_in(A, 0, 1002, US_TH_RST | US_TH_ACK, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	/* an RST without ACK too */
	seg_in(A, 0, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(A->state, US_SYN_SENT);
	/* neither SYN nor RST: dropped */
	seg_in(A, 50, 1001, US_TH_ACK, 100, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_int_equal(A->dropped, 5);
}

static void test_syn_sent_rst_refused(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	open_active(A, &c, T0, &o);
	seg_in(A, 0, 1001, US_TH_RST | US_TH_ACK, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_CLOSED);
	assert_true(o.notify & US_N_CLOSED);
	assert_int_equal(o.error, -ECONNREFUSED);
	assert_int_equal(A->error, -ECONNREFUSED);
	assert_int_equal(o.n, 0);
	assert_true(o.timer_ns == 0);
	/* a CLOSED tcb ignores everything that arrives */
	seg_in(A, 0, 1001, US_TH_SYN | US_TH_ACK, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(A->state, US_CLOSED);
}

static void test_persist_rst_and_icmp_are_soft(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	c.persist = true;
	c.syn_no_backoff = true;
	c.syn_rto_ns = 200 * MS;
	c.deadline_ns = T0 + 1 * S;
	open_active(A, &c, T0, &o);
	/* NAT answers RST: counted, remembered, nothing sent, SYN timer unchanged */
	seg_in(A, 0, 1001, US_TH_RST | US_TH_ACK, 0, NULL, NULL, 0, T0 + 1 * MS, &o);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_true(o.notify & US_N_SOFT_ERROR);
	assert_int_equal(A->rst_rcvd, 1);
	assert_int_equal(A->soft_error, -ECONNREFUSED);
	assert_int_equal(o.n, 0);
	assert_true(o.timer_ns == T0 + 200 * MS);
	/* port unreachable is soft too */
	icmp_in(A, 3, 3, 1000, T0 + 2 * MS, &o);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_int_equal(A->icmp_rcvd, 1);
	assert_int_equal(A->soft_error, -ECONNREFUSED);
	/* an unacceptable ACK gets no RST in persist mode */
	seg_in(A, 9, 5000, US_TH_ACK, 0, NULL, NULL, 0, T0 + 3 * MS, &o);
	assert_int_equal(o.n, 0);
	/* the SYN keeps going at a fixed interval with the same ISS, beyond max_retries (6) */
	uint64_t now = T0;
	for (int i = 1; i <= 4; i++) {
		now += 200 * MS;
		timer(A, now, &o);
		assert_int_equal(o.n, 1);
		assert_int_equal(o.seg[0].flags, US_TH_SYN);
		assert_int_equal(o.seg[0].seq, 1000);
		uint64_t want = now + 200 * MS < c.deadline_ns ? now + 200 * MS : c.deadline_ns;
		assert_true(o.timer_ns == want);
	}
	/* time exceeded from a low-TTL SYN: remembered as the last soft error */
	icmp_in(A, 11, 0, 1000, now, &o);
	assert_int_equal(A->soft_error, -EHOSTUNREACH);
	assert_int_equal(A->state, US_SYN_SENT);
	/* a late SYN-ACK from the peer still completes */
	seg_in(A, 777, 1001, US_TH_SYN | US_TH_ACK, 1000, &linux_syn_opts, NULL, 0, now + 1 * MS, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(A->syn_tx, 5);
}

static void test_persist_deadline(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	c.persist = true;
	c.syn_no_backoff = true;
	c.syn_rto_ns = 300 * MS;
	c.deadline_ns = T0 + 1 * S;
	c.max_retries = 1;
	open_active(A, &c, T0, &o);
	seg_in(A, 0, 1001, US_TH_RST | US_TH_ACK, 0, NULL, NULL, 0, T0 + 1 * MS, &o);
	uint64_t now = T0;
	int syns = 0;
	while (A->state == US_SYN_SENT) {
		assert_true(o.timer_ns > now);
		now = o.timer_ns;
		timer(A, now, &o);
		syns += o.n;
	}
	assert_true(now == c.deadline_ns);
	assert_int_equal(syns, 3);                      /* at 300, 600, 900 ms: not limited by max_retries */
	assert_int_equal(o.error, -ECONNREFUSED);       /* the soft error explains the timeout */
	assert_true(o.notify & US_N_CLOSED);
}

static void test_icmp_syn_sent(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	open_active(A, &c, T0, &o);
	/* quoted seq not ours: ignored */
	icmp_in(A, 3, 3, 999, T0, &o);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_int_equal(A->dropped, 1);
	/* fragmentation needed, source quench: not errors */
	icmp_in(A, 3, 4, 1000, T0, &o);
	icmp_in(A, 4, 0, 1000, T0, &o);
	assert_int_equal(A->soft_error, 0);
	/* host unreachable and time exceeded are soft (RFC 1122 §4.2.3.9) */
	icmp_in(A, 3, 1, 1000, T0, &o);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_int_equal(A->soft_error, -EHOSTUNREACH);
	assert_true(o.notify & US_N_SOFT_ERROR);
	icmp_in(A, 3, 0, 1000, T0, &o);
	assert_int_equal(A->soft_error, -ENETUNREACH);
	/* port unreachable is hard */
	icmp_in(A, 3, 3, 1000, T0, &o);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -ECONNREFUSED);
	assert_int_equal(A->icmp_rcvd, 6);
}

static void test_icmp_admin_prohibited_and_timeout_reports_soft(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	c.max_retries = 1;
	open_active(A, &c, T0, &o);
	icmp_in(A, 11, 0, 1000, T0, &o);
	timer(A, T0 + 1 * S, &o);
	assert_int_equal(o.n, 1);
	timer(A, T0 + 3 * S, &o);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -EHOSTUNREACH);       /* not a bare ETIMEDOUT */

	us_tcb_init(B);
	open_active(B, &c, T0, &o);
	icmp_in(B, 3, 13, 1000, T0, &o);
	assert_int_equal(B->state, US_CLOSED);
	assert_int_equal(o.error, -EHOSTUNREACH);
}

static void test_syn_backoff_timing(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	c.syn_rto_ns = 1 * S;
	c.rto_max_ns = 4 * S;
	c.max_retries = 4;
	open_active(A, &c, T0, &o);
	assert_true(o.timer_ns == T0 + 1 * S);
	/* an early (spurious) timer does nothing */
	timer(A, T0 + 500 * MS, &o);
	assert_int_equal(o.n, 0);
	assert_true(o.timer_ns == T0 + 1 * S);
	const uint64_t at[] = { 1, 3, 7, 11 };          /* +1, +2, +4, +4 (capped) */
	const uint64_t next[] = { 3, 7, 11, 15 };
	for (int i = 0; i < 4; i++) {
		timer(A, T0 + at[i] * S, &o);
		assert_int_equal(o.n, 1);
		assert_int_equal(o.seg[0].flags, US_TH_SYN);
		assert_int_equal(o.seg[0].seq, 1000);
		assert_true(o.timer_ns == T0 + next[i] * S);
		assert_int_equal(A->rtx_count, (uint32_t)i + 1);
	}
	timer(A, T0 + 15 * S, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -ETIMEDOUT);
	assert_int_equal(A->syn_tx, 5);
}

static void test_deadline_non_persist(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	c.deadline_ns = T0 + 2500 * MS;
	open_active(A, &c, T0, &o);
	timer(A, T0 + 1 * S, &o);
	assert_true(o.timer_ns == T0 + 2500 * MS);      /* next RTO (3 s) is past the deadline */
	timer(A, T0 + 2500 * MS, &o);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -ETIMEDOUT);
}

/* ---- passive open ---- */

static void test_passive_open(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(9000);
	c.wscale = 3;
	open_passive(B, &c, T0, &o);
	assert_int_equal(B->state, US_LISTEN);
	assert_int_equal(o.n, 0);
	assert_true(o.timer_ns == 0);
	/* peer offers MSS and wscale only: our SYN-ACK carries no TS and no SACK_PERM */
	struct tcp_opts po = { .has_mss = true, .mss = 1000, .has_wscale = true, .wscale = 2 };
	seg_in(B, 300, 0, US_TH_SYN, 4000, &po, NULL, 0, T0, &o);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_SYN | US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 9000);
	assert_int_equal(o.seg[0].ack, 301);
	assert_true(o.seg[0].opts.has_mss && o.seg[0].opts.has_wscale);
	assert_int_equal(o.seg[0].opts.wscale, 3);
	assert_false(o.seg[0].opts.has_ts || o.seg[0].opts.sack_perm);
	assert_true(o.timer_ns == T0 + 1 * S);
	/* the third ACK; its window is scaled by the peer's shift 2 */
	seg_in(B, 301, 9001, US_TH_ACK, 1000, NULL, NULL, 0, T0 + 1 * MS, &o);
	assert_int_equal(B->state, US_ESTABLISHED);
	assert_true(o.notify & US_N_ESTABLISHED);
	assert_int_equal(o.n, 0);
	assert_true(o.timer_ns == 0);
	assert_int_equal(B->snd_wnd, 4000);
	assert_int_equal(B->snd_una, 9001);
	assert_int_equal(B->peer_mss, 1000);
	assert_int_equal(B->snd_wscale, 2);
	assert_int_equal(B->rcv_wscale, 3);
}

static void test_listen_bad_segments(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(9000);
	open_passive(B, &c, T0, &o);
	seg_in(B, 1, 2, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	seg_in(B, 1, 77, US_TH_ACK, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_RST);
	assert_int_equal(o.seg[0].seq, 77);
	seg_in(B, 1, 0, US_TH_FIN, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(B->state, US_LISTEN);
}

static void test_syn_received_transitions(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(9000);
	open_passive(B, &c, T0, &o);
	seg_in(B, 300, 0, US_TH_SYN, 4000, &linux_syn_opts, NULL, 0, T0, &o);
	/* peer's SYN retransmitted (our SYN-ACK was lost): SYN-ACK again, same ISS */
	seg_in(B, 300, 0, US_TH_SYN, 4000, &linux_syn_opts, NULL, 0, T0 + 5 * MS, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_SYN | US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 9000);
	assert_int_equal(o.seg[0].ack, 301);
	/* ACK that acks nothing we sent: RST <SEQ=SEG.ACK> */
	seg_in(B, 301, 9005, US_TH_ACK, 100, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_RST);
	assert_int_equal(o.seg[0].seq, 9005);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	/* a different SYN (not the peer's ISN) in the window: challenge ACK */
	uint32_t ca = B->challenge_acks;
	seg_in(B, 302, 0, US_TH_SYN, 4000, NULL, NULL, 0, T0, &o);
	assert_int_equal(B->challenge_acks, ca + 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	/* RST in window but not exact: challenge ACK, state kept */
	seg_in(B, 305, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(B->challenge_acks, ca + 2);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	/* SYN-ACK retransmission timer with backoff */
	timer(B, T0 + 1 * S, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_SYN | US_TH_ACK);
	assert_true(o.timer_ns == T0 + 3 * S);
	/* exact RST: back to LISTEN (passive open) */
	seg_in(B, 301, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(B->state, US_LISTEN);
	assert_true(o.timer_ns == 0);
	/* and a new SYN is served from LISTEN again */
	seg_in(B, 8000, 0, US_TH_SYN, 4000, NULL, NULL, 0, T0, &o);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	assert_int_equal(o.seg[0].ack, 8001);
	/* closed by the app while in SYN-RECEIVED: FIN waits for ESTABLISHED; an RST now closes */
	close_ev(B, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	seg_in(B, 8001, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(B->state, US_CLOSED);
	assert_int_equal(o.error, 0);
}

static void test_close_in_syn_received_sends_fin_when_established(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(9000);
	open_passive(B, &c, T0, &o);
	seg_in(B, 300, 0, US_TH_SYN, 4000, NULL, NULL, 0, T0, &o);
	close_ev(B, T0, &o);
	seg_in(B, 301, 9001, US_TH_ACK, 4000, NULL, NULL, 0, T0, &o);
	assert_int_equal(B->state, US_FIN_WAIT_1);
	assert_true(o.notify & US_N_ESTABLISHED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_FIN | US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 9001);
}

/* ---- simultaneous open, scripted ---- */

static void test_simultaneous_open_scripted(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	open_active(A, &c, T0, &o);
	/* the peer's SYN crosses ours */
	seg_in(A, 7000, 0, US_TH_SYN, 29200, &linux_syn_opts, NULL, 0, T0 + 1 * MS, &o);
	assert_int_equal(A->state, US_SYN_RECEIVED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_SYN | US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 1000);           /* same ISS */
	assert_int_equal(o.seg[0].ack, 7001);
	assert_true(o.seg[0].opts.has_wscale && o.seg[0].opts.has_ts && o.seg[0].opts.sack_perm);
	assert_int_equal(o.seg[0].opts.tsecr, 5000);
	assert_true(o.timer_ns == T0 + 1 * MS + 1 * S);  /* SYN-ACK timer restarted */
	assert_int_equal(A->snd_wnd, 29200);
	/* the peer's SYN-ACK (its answer to our SYN) completes; we ACK it */
	struct tcp_opts po = linux_syn_opts;
	po.tsval = 5010;
	seg_in(A, 7000, 1001, US_TH_SYN | US_TH_ACK, 29200, &po, NULL, 0, T0 + 2 * MS, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_true(o.notify & US_N_ESTABLISHED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 1001);
	assert_int_equal(o.seg[0].ack, 7001);
	assert_int_equal(A->ts_recent, 5010);
	assert_true(o.timer_ns == 0);
	/* a further duplicate SYN-ACK in ESTABLISHED: ACK again, no state change */
	seg_in(A, 7000, 1001, US_TH_SYN | US_TH_ACK, 29200, &po, NULL, 0, T0 + 3 * MS, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(o.seg[0].ack, 7001);
}

static void test_simultaneous_open_completed_by_ack(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	open_active(A, &c, T0, &o);
	seg_in(A, 7000, 0, US_TH_SYN, 29200, &linux_syn_opts, NULL, 0, T0, &o);
	struct tcp_opts po = { .has_ts = true, .tsval = 5001, .tsecr = 1 };
	seg_in(A, 7001, 1001, US_TH_ACK, 100, &po, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(A->snd_wnd, 100u << 9);
	assert_int_equal(o.n, 0);
}

/* The ACK completing a simultaneous open arrives with data and FIN (the peer's kernel already owns
 * its side, wrote and closed): us_handshake_only keeps only the handshake, so the tcb is ESTABLISHED
 * with nothing received and no FIN (what the TCP_REPAIR handoff needs), and the peer retransmits the
 * rest to the kernel socket. Without it the same segment leaves the tcb in CLOSE-WAIT. */
static void test_handshake_only_strips_data_and_fin(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	static const char data[] = "early bytes";
	struct tcp_opts po = { .has_ts = true, .tsval = 5001, .tsecr = 1 };
	struct us_event ev = { .type = US_EV_SEGMENT };

	open_active(A, &c, T0, &o);
	seg_in(A, 7000, 0, US_TH_SYN, 29200, &linux_syn_opts, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_SYN_RECEIVED);
	ev.seg.seq = 7001;
	ev.seg.ack = 1001;
	ev.seg.flags = US_TH_ACK | US_TH_PSH | US_TH_FIN;
	ev.seg.win = 100;
	ev.seg.opts = po;
	ev.seg.payload = (const uint8_t *)data;
	ev.seg.len = sizeof(data) - 1;
	us_handshake_only(A, &ev.seg);
	assert_int_equal(ev.seg.len, 0);
	assert_null(ev.seg.payload);
	assert_int_equal(ev.seg.flags, US_TH_ACK);
	assert_int_equal(us_step(A, &ev, T0, &o), 0);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(A->rcv_nxt, 7001);
	assert_int_equal(A->rcv_len, 0);

	/* once synchronized it changes nothing */
	ev.seg.flags = US_TH_ACK | US_TH_FIN;
	ev.seg.payload = (const uint8_t *)data;
	ev.seg.len = 4;
	us_handshake_only(A, &ev.seg);
	assert_int_equal(ev.seg.flags, US_TH_ACK | US_TH_FIN);
	assert_int_equal(ev.seg.len, 4);

	/* the same segment fed whole to a fresh tcb: CLOSE-WAIT, which a handoff cannot restore */
	us_tcb_init(B);
	open_active(B, &c, T0, &o);
	seg_in(B, 7000, 0, US_TH_SYN, 29200, &linux_syn_opts, NULL, 0, T0, &o);
	seg_in(B, 7001, 1001, US_TH_ACK | US_TH_PSH | US_TH_FIN, 100, &po, data, sizeof(data) - 1, T0, &o);
	assert_int_equal(B->state, US_CLOSE_WAIT);
}

static void test_simultaneous_open_rst(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	c.syn_validated = true;              /* the caller vouched for the SYN (punch) */
	open_active(A, &c, T0, &o);
	seg_in(A, 7000, 0, US_TH_SYN, 100, NULL, NULL, 0, T0, &o);
	seg_in(A, 7001, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -ECONNREFUSED);
	/* persist: the same RST is soft */
	us_tcb_init(B);
	c.persist = true;
	open_active(B, &c, T0, &o);
	seg_in(B, 7000, 0, US_TH_SYN, 100, NULL, NULL, 0, T0, &o);
	seg_in(B, 7001, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	assert_int_equal(B->rst_rcvd, 1);
	assert_true(o.notify & US_N_SOFT_ERROR);
}

/* A blind spray: a spoofed bare SYN (the attacker's ISN) reaches a connecting tcb whose caller cannot
 * validate SYNs (connect to an ordinary server). It is answered as simultaneous open wants, but an RST
 * in its window, further SYNs and bare ACKs cannot end or take the attempt; the retransmission is our
 * bare SYN again, and the server's SYN-ACK that acks our ISN wins with its own ISN. */
static void test_spoofed_syn_is_tentative(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	open_active(A, &c, T0, &o);
	seg_in(A, 666000, 0, US_TH_SYN, 1000, NULL, NULL, 0, T0 + 1 * MS, &o);      /* spoofed */
	assert_int_equal(A->state, US_SYN_RECEIVED);
	assert_true(A->irs_tentative);
	seg_in(A, 666001, 0, US_TH_RST, 0, NULL, NULL, 0, T0 + 2 * MS, &o);         /* in its window */
	assert_int_equal(A->state, US_SYN_RECEIVED);
	assert_int_equal(A->soft_error, -ECONNREFUSED);
	seg_in(A, 777000, 0, US_TH_SYN, 1000, NULL, NULL, 0, T0 + 3 * MS, &o);      /* another spoof */
	assert_int_equal(o.n, 0);                                                   /* not answered */
	assert_int_equal(A->irs, 666000);
	/* the retransmission is our bare SYN, which a server answers with its SYN-ACK */
	timer(A, T0 + 1 * MS + 1 * S, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_SYN);
	assert_int_equal(o.seg[0].seq, 1000);
	struct tcp_opts po = linux_syn_opts;
	seg_in(A, 5000, 1001, US_TH_SYN | US_TH_ACK, 29200, &po, NULL, 0, T0 + 2 * S, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_false(A->irs_tentative);
	assert_int_equal(A->irs, 5000);
	assert_int_equal(A->rcv_nxt, 5001);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(o.seg[0].ack, 5001);
	/* with a caller that validates SYNs (punch), a SYN-RECEIVED retransmits its SYN-ACK as before */
	us_tcb_init(B);
	c.syn_validated = true;
	open_active(B, &c, T0, &o);
	seg_in(B, 7000, 0, US_TH_SYN, 1000, NULL, NULL, 0, T0 + 1 * MS, &o);
	assert_false(B->irs_tentative);
	timer(B, T0 + 1 * MS + 1 * S, &o);
	assert_int_equal(o.seg[0].flags, US_TH_SYN | US_TH_ACK);
}

/* ---- ESTABLISHED: the bad segments ---- */

static void test_established_bad_acks(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 1000, &o);
	struct tcp_opts ts = { .has_ts = true, .tsval = 5001 };
	/* ACK for data never sent: ACK back, drop */
	seg_in(A, 5001, 1500, US_TH_ACK, 100, &ts, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 1001);
	assert_int_equal(o.seg[0].ack, 5001);
	assert_int_equal(A->snd_una, 1001);
	/* far too old (below snd_una - max_window): challenge ACK (RFC 5961 §5.2) */
	uint32_t ca = A->challenge_acks;
	seg_in(A, 5001, 1001 - 70000, US_TH_ACK, 100, &ts, NULL, 0, T0, &o);
	assert_int_equal(A->challenge_acks, ca + 1);
	assert_int_equal(o.n, 1);
	/* a merely old duplicate ACK is fine and quiet */
	seg_in(A, 5001, 1001, US_TH_ACK, 100, &ts, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(A->snd_wnd, 100u << 9);         /* window updated by it */
	/* segment outside the receive window: ACK, drop */
	seg_in(A, 5001 + 40000, 1001, US_TH_ACK, 100, &ts, "x", 1, T0, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].ack, 5001);
	assert_int_equal(A->rcv_len, 0);
	/* segment without ACK: dropped silently */
	seg_in(A, 5001, 0, 0, 100, &ts, "x", 1, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(A->rcv_len, 0);
}

static void test_established_rst_checks(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 1000, &o);
	/* outside the window: silently dropped, no reply to an RST */
	seg_in(A, 4000, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(A->state, US_ESTABLISHED);
	/* in the window, not exact: challenge ACK with the exact numbers */
	seg_in(A, 5100, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 1001);
	assert_int_equal(o.seg[0].ack, 5001);
	assert_int_equal(A->challenge_acks, 1);
	/* exact: reset */
	seg_in(A, 5001, 0, US_TH_RST, 0, NULL, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -ECONNRESET);
	assert_true(o.notify & US_N_CLOSED);
}

static void test_established_duplicate_and_late_syn(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 1000, &o);
	/* the peer's original SYN again (duplicate): below the window -> plain ACK */
	seg_in(A, 5000, 0, US_TH_SYN, 100, &linux_syn_opts, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_ACK);
	assert_int_equal(o.seg[0].ack, 5001);
	/* a late SYN with an in-window sequence number: challenge ACK, never a reset */
	struct tcp_opts ts = { .has_ts = true, .tsval = 6000 };
	seg_in(A, 5200, 0, US_TH_SYN, 100, &ts, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(A->challenge_acks, 1);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].seq, 1001);
	assert_int_equal(o.seg[0].ack, 5001);
	/* SYN exactly at rcv_nxt too */
	seg_in(A, 5001, 0, US_TH_SYN, 100, &ts, NULL, 0, T0, &o);
	assert_int_equal(A->challenge_acks, 2);
	assert_int_equal(A->state, US_ESTABLISHED);
}

static void test_paws(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 1000, &o);
	struct tcp_opts newer = { .has_ts = true, .tsval = 6000 }, old = { .has_ts = true, .tsval = 4000 };
	seg_in(A, 5001, 1001, US_TH_ACK | US_TH_PSH, 100, &newer, "ab", 2, T0, &o);
	assert_int_equal(A->rcv_len, 2);
	assert_int_equal(A->ts_recent, 6000);
	/* older timestamp: rejected (RFC 7323 §5), ACK sent, no data taken */
	seg_in(A, 5003, 1001, US_TH_ACK | US_TH_PSH, 100, &old, "cd", 2, T0, &o);
	assert_int_equal(A->rcv_len, 2);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].ack, 5003);
	assert_int_equal(A->ts_recent, 6000);
}

static void test_out_of_order_dropped_and_reacked(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 1000, &o);
	struct tcp_opts ts = { .has_ts = true, .tsval = 6000 };
	seg_in(A, 5011, 1001, US_TH_ACK, 100, &ts, "later", 5, T0, &o);
	assert_int_equal(A->rcv_len, 0);
	assert_int_equal(A->rcv_nxt, 5001);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].ack, 5001);           /* duplicate ACK */
	assert_false(o.notify & US_N_READABLE);
	/* partial overlap: only the new bytes are taken */
	seg_in(A, 5001, 1001, US_TH_ACK, 100, &ts, "0123456789", 10, T0, &o);
	assert_int_equal(A->rcv_nxt, 5011);
	seg_in(A, 5006, 1001, US_TH_ACK, 100, &ts, "56789ABCDE", 10, T0, &o);
	assert_int_equal(A->rcv_nxt, 5016);
	assert_true(o.notify & US_N_READABLE);
	char buf[64];
	assert_int_equal(recv_data(A, buf, sizeof(buf), T0, &o), 15);
	assert_memory_equal(buf, "0123456789ABCDE", 15);
	/* an entirely old retransmission: re-ACKed, nothing taken */
	seg_in(A, 5001, 1001, US_TH_ACK, 100, &ts, "0123456789", 10, T0, &o);
	assert_int_equal(A->rcv_nxt, 5016);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].ack, 5016);
}

static void test_api_errors(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1);
	struct us_event ev = { .type = US_EV_OPEN_ACTIVE, .cfg = NULL };
	assert_int_equal(us_step(A, &ev, T0, &o), -EINVAL);
	assert_int_equal(send_data(A, "x", 1, T0, &o), -ENOTCONN);
	char b[4];
	assert_int_equal(recv_data(A, b, sizeof(b), T0, &o), -ENOTCONN);
	struct us_event cl = { .type = US_EV_CLOSE };
	assert_int_equal(us_step(A, &cl, T0, &o), -ENOTCONN);
	struct us_config bad = c;
	bad.mss = 10;
	ev.cfg = &bad;
	assert_int_equal(us_step(A, &ev, T0, &o), -EINVAL);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.n, 0);
	open_active(A, &c, T0, &o);
	ev.cfg = &c;
	assert_int_equal(us_step(A, &ev, T0, &o), -EINVAL);       /* already open */
	struct us_event junk = { .type = (enum us_ev_type)99 };
	assert_int_equal(us_step(A, &junk, T0, &o), -EINVAL);
	struct us_event seg = { .type = US_EV_SEGMENT };
	seg.seg.len = 5;                                           /* len without payload */
	assert_int_equal(us_step(A, &seg, T0, &o), -EINVAL);
	assert_int_equal(send_data(A, NULL, 3, T0, &o), -EINVAL);
	assert_int_equal(us_step(A, &junk, T0, NULL), -EINVAL);
	assert_int_equal(us_step(NULL, &junk, T0, &o), -EINVAL);
	assert_int_equal(us_step(A, NULL, T0, &o), -EINVAL);
	assert_string_equal(us_state_name(US_SYN_RECEIVED), "SYN-RECEIVED");
	assert_string_equal(us_state_name((enum us_state)42), "?");
}

static void test_abort(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 1000, &o);
	struct us_event ev = { .type = US_EV_ABORT };
	assert_int_equal(us_step(A, &ev, T0, &o), 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].flags, US_TH_RST);
	assert_int_equal(o.seg[0].seq, 1001);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -ECONNABORTED);
	/* close from SYN-SENT: no packet */
	struct us_config c = cfg_default(5);
	open_active(B, &c, T0, &o);
	close_ev(B, T0, &o);
	assert_int_equal(B->state, US_CLOSED);
	assert_int_equal(o.n, 0);
	assert_true(o.notify & US_N_CLOSED);
}

/* ---- two tcbs on a wire ---- */

struct pkt {
	int to;
	struct us_segment s;
	uint8_t data[2048];
};

static struct pkt q[512];
static unsigned qh, qt;
static uint64_t timers[2];
static uint32_t notes[2];
static int errs[2];
static unsigned tx_count[2], tx_data[2];
/* drop the nth segment (0-based) of side `from` whose flags match; -1 = off */
static int drop_from = -1, drop_nth = -1;
static uint8_t drop_flags;
static unsigned drop_seen;
static unsigned dropped_on_wire;

static struct us_tcb *side(int i) { return i ? B : A; }

static void wire_reset(void)
{
	qh = qt = 0;
	timers[0] = timers[1] = 0;
	notes[0] = notes[1] = 0;
	errs[0] = errs[1] = 0;
	tx_count[0] = tx_count[1] = tx_data[0] = tx_data[1] = 0;
	drop_from = drop_nth = -1;
	drop_seen = dropped_on_wire = 0;
}

static void drop_next(int from, uint8_t flags_all, int nth)
{
	drop_from = from;
	drop_flags = flags_all;
	drop_nth = nth;
	drop_seen = 0;
}

static void put(int from, const struct us_out *o)
{
	timers[from] = o->timer_ns;
	notes[from] |= o->notify;
	if (o->notify & US_N_CLOSED)
		errs[from] = o->error;
	for (unsigned i = 0; i < o->n; i++) {
		const struct us_out_seg *s = &o->seg[i];
		tx_count[from]++;
		tx_data[from] += (unsigned)s->len;
		if (drop_from == from && (s->flags & drop_flags) == drop_flags) {
			if ((int)drop_seen++ == drop_nth) {
				dropped_on_wire++;
				continue;
			}
		}
		assert_true(qt - qh < sizeof(q) / sizeof(q[0]));
		struct pkt *p = &q[qt++ % (sizeof(q) / sizeof(q[0]))];
		uint8_t ob[TCPOPT_MAXLEN];
		int n = tcpopt_build(&s->opts, ob, sizeof(ob));
		assert_true(n >= 0);
		memset(&p->s, 0, sizeof(p->s));
		assert_int_equal(tcpopt_parse(ob, (size_t)n, &p->s.opts), 0);
		p->to = !from;
		p->s.seq = s->seq;
		p->s.ack = s->ack;
		p->s.flags = s->flags;
		p->s.win = s->win;
		assert_true(s->len <= sizeof(p->data));
		if (s->len)
			memcpy(p->data, s->payload, s->len);
		p->s.payload = s->len ? p->data : NULL;
		p->s.len = s->len;
	}
}

/* deliver until the wire is empty */
static void pump(uint64_t now)
{
	struct us_out o;
	while (qh != qt) {
		struct pkt *p = &q[qh++ % (sizeof(q) / sizeof(q[0]))];
		struct us_event ev = { .type = US_EV_SEGMENT, .seg = p->s };
		assert_int_equal(us_step(side(p->to), &ev, now, &o), 0);
		put(p->to, &o);
	}
}

static void fire(int i, uint64_t now)
{
	struct us_out o;
	assert_true(timers[i] != 0 && timers[i] <= now);
	timer(side(i), now, &o);
	put(i, &o);
}

static void wire_send(int i, const void *d, size_t n, uint64_t now)
{
	struct us_out o;
	assert_int_equal(send_data(side(i), d, n, now, &o), 0);
	assert_int_equal(o.accepted, n);
	put(i, &o);
}

static void wire_close(int i, uint64_t now)
{
	struct us_out o;
	close_ev(side(i), now, &o);
	put(i, &o);
}

static size_t wire_recv(int i, uint8_t *buf, size_t cap, uint64_t now)
{
	struct us_out o;
	int n = recv_data(side(i), buf, cap, now, &o);
	assert_true(n >= 0);
	put(i, &o);
	return (size_t)n;
}

static void connect_pair(uint64_t now)
{
	struct us_out o;
	struct us_config ca = cfg_default(0xfffff000u), cb = cfg_default(0x7000);
	cb.wscale = 2;
	cb.ts_offset = 99999;
	open_passive(B, &cb, now, &o);
	put(1, &o);
	open_active(A, &ca, now, &o);
	put(0, &o);
	pump(now);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(B->state, US_ESTABLISHED);
}

static void assert_consistent(void)
{
	assert_int_equal(A->snd_nxt, B->rcv_nxt);
	assert_int_equal(B->snd_nxt, A->rcv_nxt);
	assert_int_equal(A->snd_una, A->snd_nxt);
	assert_int_equal(B->snd_una, B->snd_nxt);
	assert_int_equal(A->snd_wscale, B->rcv_wscale);
	assert_int_equal(B->snd_wscale, A->rcv_wscale);
	assert_int_equal(A->irs, B->iss);
	assert_int_equal(B->irs, A->iss);
}

static void test_pair_active_passive(void **state)
{
	(void)state;
	wire_reset();
	connect_pair(T0);
	assert_consistent();
	assert_int_equal(tx_count[0], 2);               /* SYN, ACK */
	assert_int_equal(tx_count[1], 1);               /* SYN-ACK */
	assert_true(notes[0] & US_N_ESTABLISHED);
	assert_true(notes[1] & US_N_ESTABLISHED);
	assert_int_equal(A->snd_wscale, 2);
	assert_int_equal(A->rcv_wscale, 7);
	assert_true(A->ts_ok && B->ts_ok && A->sack_ok && B->sack_ok);
	/* each side echoes the other's clock */
	assert_int_equal(B->ts_recent, (uint32_t)(T0 / MS) + 1000);
	assert_int_equal(A->ts_recent, (uint32_t)(T0 / MS) + 99999);
	assert_int_equal(A->snd_wnd, B->rcv_wnd);
	assert_int_equal(B->snd_wnd, A->rcv_wnd);
	assert_true(timers[0] == 0 && timers[1] == 0);
}

static void test_pair_simultaneous_open(void **state)
{
	(void)state;
	struct us_out o;
	wire_reset();
	struct us_config ca = cfg_default(111), cb = cfg_default(0xffffffffu);
	ca.persist = cb.persist = true;
	ca.deadline_ns = cb.deadline_ns = T0 + 10 * S;
	open_active(A, &ca, T0, &o);
	put(0, &o);
	open_active(B, &cb, T0, &o);
	put(1, &o);
	pump(T0);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(B->state, US_ESTABLISHED);
	assert_consistent();
	assert_int_equal(A->iss, 111);
	assert_int_equal(B->iss, 0xffffffffu);
	assert_int_equal(B->snd_nxt, 0);                 /* wrapped */
	/* both SYNs then both SYN-ACKs crossed; no RST anywhere */
	assert_int_equal(A->rst_rcvd + B->rst_rcvd, 0);
	assert_int_equal(A->syn_tx, 2);
	assert_int_equal(B->syn_tx, 2);
	assert_true(timers[0] == 0 && timers[1] == 0);
	/* data both ways over it */
	wire_send(0, "ping", 4, T0 + 1 * MS);
	pump(T0 + 1 * MS);
	wire_send(1, "pong!", 5, T0 + 2 * MS);
	pump(T0 + 2 * MS);
	uint8_t buf[16];
	assert_int_equal(wire_recv(1, buf, sizeof(buf), T0), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(wire_recv(0, buf, sizeof(buf), T0), 5);
	assert_memory_equal(buf, "pong!", 5);
	pump(T0);
	assert_consistent();
}

static void test_pair_simultaneous_open_synack_lost(void **state)
{
	(void)state;
	struct us_out o;
	wire_reset();
	struct us_config ca = cfg_default(111), cb = cfg_default(222);
	open_active(A, &ca, T0, &o);
	put(0, &o);
	open_active(B, &cb, T0, &o);
	put(1, &o);
	drop_next(0, US_TH_SYN | US_TH_ACK, 0);         /* A's SYN-ACK is lost */
	pump(T0);
	assert_int_equal(dropped_on_wire, 1);
	/* A got B's SYN-ACK and ACKed it; B, which saw only A's SYN, is completed by that ACK */
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(B->state, US_ESTABLISHED);
	assert_int_equal(A->syn_tx, 2);
	assert_int_equal(B->syn_tx, 2);
	assert_true(timers[0] == 0 && timers[1] == 0);
	assert_consistent();
}

static void test_pair_lost_syn(void **state)
{
	(void)state;
	struct us_out o;
	wire_reset();
	struct us_config ca = cfg_default(1), cb = cfg_default(2);
	open_passive(B, &cb, T0, &o);
	put(1, &o);
	drop_next(0, US_TH_SYN, 0);
	open_active(A, &ca, T0, &o);
	put(0, &o);
	pump(T0);
	assert_int_equal(B->state, US_LISTEN);
	assert_true(timers[0] == T0 + 1 * S);
	fire(0, T0 + 1 * S);
	pump(T0 + 1 * S);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(B->state, US_ESTABLISHED);
	assert_int_equal(A->syn_tx, 2);
	assert_consistent();
}

static void test_pair_lost_synack(void **state)
{
	(void)state;
	struct us_out o;
	wire_reset();
	struct us_config ca = cfg_default(1), cb = cfg_default(2);
	cb.syn_rto_ns = 3 * S;                            /* B's own retry comes after A's */
	open_passive(B, &cb, T0, &o);
	put(1, &o);
	drop_next(1, US_TH_SYN | US_TH_ACK, 0);
	open_active(A, &ca, T0, &o);
	put(0, &o);
	pump(T0);
	assert_int_equal(A->state, US_SYN_SENT);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	/* A retransmits its SYN; B answers it with the same SYN-ACK right away */
	fire(0, T0 + 1 * S);
	pump(T0 + 1 * S);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(B->state, US_ESTABLISHED);
	assert_int_equal(B->syn_tx, 2);
	assert_int_equal(B->iss, 2);
	assert_consistent();
}

static void test_pair_lost_third_ack_synack_rtx(void **state)
{
	(void)state;
	struct us_out o;
	wire_reset();
	struct us_config ca = cfg_default(1), cb = cfg_default(2);
	open_passive(B, &cb, T0, &o);
	put(1, &o);
	drop_next(0, US_TH_ACK, 0);                      /* A's third ACK */
	open_active(A, &ca, T0, &o);
	put(0, &o);
	pump(T0);
	assert_int_equal(A->state, US_ESTABLISHED);
	assert_int_equal(B->state, US_SYN_RECEIVED);
	fire(1, T0 + 1 * S);                              /* B's SYN-ACK again ... */
	pump(T0 + 1 * S);                                 /* ... A re-ACKs it */
	assert_int_equal(B->state, US_ESTABLISHED);
	assert_consistent();
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + seed + (i >> 8));
}

static void test_pair_data_both_ways(void **state)
{
	(void)state;
	static uint8_t a2b[20000], b2a[7000], got[20000];
	fill(a2b, sizeof(a2b), 1);
	fill(b2a, sizeof(b2a), 2);
	wire_reset();
	connect_pair(T0);
	uint32_t a_una0 = A->snd_una;
	wire_send(0, a2b, sizeof(a2b), T0);
	wire_send(1, b2a, sizeof(b2a), T0);
	pump(T0);
	assert_true(notes[1] & US_N_READABLE);
	assert_true(notes[0] & US_N_WRITABLE);
	assert_int_equal(B->rcv_len, sizeof(a2b));
	assert_int_equal(A->rcv_len, sizeof(b2a));
	assert_int_equal(wire_recv(1, got, sizeof(got), T0), sizeof(a2b));
	assert_memory_equal(got, a2b, sizeof(a2b));
	assert_int_equal(wire_recv(0, got, sizeof(got), T0), sizeof(b2a));
	assert_memory_equal(got, b2a, sizeof(b2a));
	pump(T0);
	assert_int_equal(A->snd_una - a_una0, sizeof(a2b));
	assert_int_equal(A->snd_len, 0);
	assert_int_equal(B->snd_len, 0);
	assert_consistent();
	/* no segment larger than the negotiated MSS (1460 - 12 for timestamps) */
	assert_int_equal(A->eff_mss, 1448);
	assert_true(timers[0] == 0 && timers[1] == 0);
	assert_int_equal(A->rtx_total + B->rtx_total, 0);
}

static void test_pair_receive_window_limits_sender(void **state)
{
	(void)state;
	struct us_out o;
	static uint8_t d[12000], got[12000];
	fill(d, sizeof(d), 3);
	wire_reset();
	struct us_config ca = cfg_default(10), cb = cfg_default(20);
	cb.rcv_wnd = 4096;
	cb.wscale_ok = ca.wscale_ok = false;
	open_passive(B, &cb, T0, &o);
	put(1, &o);
	open_active(A, &ca, T0, &o);
	put(0, &o);
	pump(T0);
	assert_int_equal(A->snd_wnd, 4096);
	wire_send(0, d, sizeof(d), T0);
	pump(T0);
	assert_int_equal(B->rcv_len, 4096);               /* never more than advertised */
	assert_int_equal(A->snd_wnd, 0);
	size_t total = 0;
	uint64_t now = T0;
	while (total < sizeof(d)) {
		now += 1 * MS;
		size_t n = wire_recv(1, got + total, sizeof(got) - total, now);
		assert_true(n > 0);
		total += n;
		pump(now);                                /* window update -> more data */
	}
	assert_memory_equal(got, d, sizeof(d));
	assert_consistent();
}

static void test_pair_data_loss_retransmission_backoff(void **state)
{
	(void)state;
	static uint8_t d[4000], got[4000];
	fill(d, sizeof(d), 4);
	wire_reset();
	connect_pair(T0);
	/* lose the first data segment (and later its first retransmission) */
	drop_next(0, US_TH_ACK, 0);
	wire_send(0, d, sizeof(d), T0);
	uint32_t una0 = A->snd_una;
	pump(T0);
	assert_int_equal(dropped_on_wire, 1);
	assert_int_equal(B->rcv_len, 0);                  /* the rest was out of order */
	assert_true(B->dropped >= 2);
	assert_int_equal(A->snd_una, una0);
	assert_true(timers[0] == T0 + 1 * S);
	drop_next(0, US_TH_ACK, 0);
	fire(0, T0 + 1 * S);
	assert_int_equal(tx_data[0], 4000 + 1448);        /* only the head is resent */
	pump(T0 + 1 * S);
	assert_int_equal(dropped_on_wire, 2);
	assert_true(timers[0] == T0 + 3 * S);             /* backed off: 2 s */
	fire(0, T0 + 3 * S);
	pump(T0 + 3 * S);
	assert_int_equal(B->rcv_len, sizeof(d));
	assert_int_equal(wire_recv(1, got, sizeof(got), T0 + 3 * S), sizeof(d));
	assert_memory_equal(got, d, sizeof(d));
	pump(T0 + 3 * S);
	assert_int_equal(A->snd_una, una0 + sizeof(d));
	assert_true(timers[0] == 0);                      /* all acked, RTO reset */
	assert_int_equal(A->rto_cur, 1 * S);
	assert_consistent();
}

static void test_pair_data_retries_exhausted(void **state)
{
	(void)state;
	wire_reset();
	connect_pair(T0);
	A->cfg.max_retries = 2;
	drop_next(0, US_TH_ACK, 0);
	wire_send(0, "abc", 3, T0);
	pump(T0);
	uint64_t now = T0;
	for (int i = 0; i < 2; i++) {
		now = timers[0];
		drop_next(0, US_TH_ACK, 0);
		fire(0, now);
		pump(now);
	}
	fire(0, timers[0]);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(errs[0], -ETIMEDOUT);
}

static void test_pair_fin_close(void **state)
{
	(void)state;
	wire_reset();
	connect_pair(T0);
	wire_send(0, "bye", 3, T0);
	wire_close(0, T0);
	assert_int_equal(A->state, US_FIN_WAIT_1);
	assert_int_equal(send_data(A, "x", 1, T0, &(struct us_out){ 0 }), -EPIPE);
	pump(T0);
	assert_int_equal(A->state, US_FIN_WAIT_2);
	assert_int_equal(B->state, US_CLOSE_WAIT);
	assert_true(notes[1] & US_N_PEER_FIN);
	assert_int_equal(B->rcv_len, 3);
	wire_send(1, "ok", 2, T0);                        /* half-close: B may still send */
	wire_close(1, T0);
	assert_int_equal(B->state, US_LAST_ACK);
	pump(T0);
	assert_int_equal(B->state, US_CLOSED);
	assert_int_equal(errs[1], 0);
	assert_true(notes[1] & US_N_CLOSED);
	assert_int_equal(A->state, US_TIME_WAIT);
	assert_true(notes[0] & US_N_PEER_FIN);
	assert_true(timers[0] == T0 + 2 * S);
	uint8_t buf[8];
	assert_int_equal(wire_recv(0, buf, sizeof(buf), T0), 2);
	assert_memory_equal(buf, "ok", 2);
	fire(0, T0 + 2 * S);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(errs[0], 0);
	/* read after close still drains what was received */
	assert_int_equal(wire_recv(1, buf, sizeof(buf), T0), 3);
	assert_memory_equal(buf, "bye", 3);
}

static void test_pair_simultaneous_close(void **state)
{
	(void)state;
	wire_reset();
	connect_pair(T0);
	wire_close(0, T0);
	wire_close(1, T0);
	pump(T0);
	assert_int_equal(A->state, US_TIME_WAIT);
	assert_int_equal(B->state, US_TIME_WAIT);
	fire(0, timers[0]);
	fire(1, timers[1]);
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(B->state, US_CLOSED);
}

static void test_closing_state(void **state)
{
	(void)state;
	struct us_out o;
	est_active(A, 1000, &o);
	close_ev(A, T0, &o);
	assert_int_equal(A->state, US_FIN_WAIT_1);
	assert_int_equal(o.seg[0].flags, US_TH_FIN | US_TH_ACK);
	assert_int_equal(o.seg[0].seq, 1001);
	struct tcp_opts ts = { .has_ts = true, .tsval = 6000 };
	/* peer's FIN that does not ack ours: CLOSING */
	seg_in(A, 5001, 1001, US_TH_FIN | US_TH_ACK, 100, &ts, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_CLOSING);
	assert_int_equal(o.seg[0].ack, 5002);
	seg_in(A, 5002, 1002, US_TH_ACK, 100, &ts, NULL, 0, T0, &o);
	assert_int_equal(A->state, US_TIME_WAIT);
	/* retransmitted FIN in TIME-WAIT: re-ACK and restart the 2 s */
	seg_in(A, 5001, 1002, US_TH_FIN | US_TH_ACK, 100, &ts, NULL, 0, T0 + 1 * S, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].ack, 5002);
	assert_true(o.timer_ns == T0 + 3 * S);
	timer(A, T0 + 2 * S, &o);
	assert_int_equal(A->state, US_TIME_WAIT);
	timer(A, T0 + 3 * S, &o);
	assert_int_equal(A->state, US_CLOSED);
}

static void test_pair_fin_lost(void **state)
{
	(void)state;
	wire_reset();
	connect_pair(T0);
	drop_next(0, US_TH_FIN, 0);
	wire_close(0, T0);
	pump(T0);
	assert_int_equal(B->state, US_ESTABLISHED);
	assert_int_equal(A->state, US_FIN_WAIT_1);
	assert_true(timers[0] == T0 + 1 * S);
	fire(0, T0 + 1 * S);
	pump(T0 + 1 * S);
	assert_int_equal(A->state, US_FIN_WAIT_2);
	assert_int_equal(B->state, US_CLOSE_WAIT);
	assert_true(timers[0] == 0);
}

static void test_send_before_established(void **state)
{
	(void)state;
	struct us_out o;
	wire_reset();
	struct us_config ca = cfg_default(1), cb = cfg_default(2);
	open_passive(B, &cb, T0, &o);
	put(1, &o);
	open_active(A, &ca, T0, &o);
	put(0, &o);
	wire_send(0, "early", 5, T0);                     /* queued in SYN-SENT */
	assert_int_equal(tx_data[0], 0);
	pump(T0);
	assert_int_equal(B->rcv_len, 5);
	assert_memory_equal(B->rcvbuf, "early", 5);
	assert_consistent();
}

static void test_pair_zero_window_probe(void **state)
{
	(void)state;
	struct us_out o;
	static uint8_t d[5000], got[5000];
	fill(d, sizeof(d), 5);
	wire_reset();
	struct us_config ca = cfg_default(10), cb = cfg_default(20);
	cb.rcv_wnd = 2000;
	ca.rto_max_ns = 4 * S;
	ca.max_retries = 3;
	ca.wscale_ok = cb.wscale_ok = false;
	open_passive(B, &cb, T0, &o);
	put(1, &o);
	open_active(A, &ca, T0, &o);
	put(0, &o);
	pump(T0);
	wire_send(0, d, sizeof(d), T0);
	pump(T0);
	assert_int_equal(B->rcv_len, 2000);
	assert_int_equal(A->snd_wnd, 0);
	assert_int_equal(A->snd_una, A->snd_max);          /* nothing in flight ... */
	assert_true(timers[0] == T0 + 1 * S);               /* ... but the probe timer runs */
	/* the peer stays alive with a zero window: probes go on well past max_retries (3) */
	uint64_t now = T0, prev_gap = 0;
	for (int i = 0; i < 8; i++) {
		uint64_t gap = timers[0] - now;
		assert_true(gap >= prev_gap && gap <= 4 * S);    /* backed off, capped at rto_max */
		prev_gap = gap;
		now = timers[0];
		unsigned before = tx_count[0], data_before = tx_data[0];
		fire(0, now);
		assert_int_equal(tx_count[0], before + 1);
		assert_int_equal(tx_data[0], data_before);       /* a probe carries no data */
		pump(now);
		assert_int_equal(A->state, US_ESTABLISHED);
		assert_int_equal(A->rtx_count, 0);               /* answered */
	}
	assert_true(prev_gap == 4 * S);
	assert_int_equal(B->rcv_len, 2000);
	/* the reader frees space: window update, the rest flows */
	size_t total = 0;
	while (total < sizeof(d)) {
		now += 1 * MS;
		size_t n = wire_recv(1, got + total, sizeof(got) - total, now);
		assert_true(n > 0);
		total += n;
		pump(now);
	}
	assert_memory_equal(got, d, sizeof(d));
	assert_consistent();
	assert_int_equal(A->snd_len, 0);
}

static void test_zero_window_dead_peer(void **state)
{
	(void)state;
	struct us_out o;
	struct us_config c = cfg_default(1000);
	c.max_retries = 2;
	open_active(A, &c, T0, &o);
	seg_in(A, 5000, 1001, US_TH_SYN | US_TH_ACK, 0, NULL, NULL, 0, T0, &o);   /* window 0 */
	assert_int_equal(send_data(A, "abc", 3, T0, &o), 0);
	assert_int_equal(o.n, 0);
	assert_true(o.timer_ns == T0 + 1 * S);
	timer(A, T0 + 1 * S, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.seg[0].seq, 1000);                 /* snd_una - 1 */
	assert_int_equal(o.seg[0].len, 0);
	timer(A, T0 + 3 * S, &o);
	assert_int_equal(o.n, 1);
	timer(A, T0 + 7 * S, &o);                              /* no answers: give up */
	assert_int_equal(A->state, US_CLOSED);
	assert_int_equal(o.error, -ETIMEDOUT);
}

/* xorshift64*: deterministic, so a failure reproduces */
static uint64_t rng_state;
static uint32_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static void check_invariants(const struct us_tcb *t, const struct us_out *o)
{
	assert_true(o->n <= US_OUT_MAX);
	assert_true(t->snd_len <= US_SNDBUF);
	assert_true(t->rcv_len <= US_RCVBUF);
	assert_true((unsigned)t->state <= US_TIME_WAIT);
	if (t->state == US_CLOSED) {
		assert_true(o->timer_ns == 0);
		return;
	}
	assert_true(seq_le(t->snd_una, t->snd_nxt));
	assert_true(seq_le(t->snd_nxt, t->snd_max));
	if (us_synchronized(t)) {
		/* every unacknowledged sequence number is backed by a queued byte (or our FIN) */
		uint32_t out = t->snd_max - t->snd_una - (t->fin_sent && seq_ge(t->fin_seq, t->snd_una));
		assert_true(out <= t->snd_len);
	}
	for (unsigned i = 0; i < o->n; i++) {
		const struct us_out_seg *s = &o->seg[i];
		assert_true(s->len <= t->eff_mss || s->len == 0);
		if (s->len) {
			assert_true(s->payload >= t->sndbuf && s->payload + s->len <= t->sndbuf + US_SNDBUF);
		}
	}
}

/* Random (mostly plausible) segments and events against one tcb: ASan/UBSan watch memory, the
 * invariants watch the state. Segments are drawn near the tcb's own numbers so that the
 * interesting branches (in-window RST, SYN, data, FIN, acks) are actually reached. */
static void test_random_events_keep_invariants(void **state)
{
	(void)state;
	static uint8_t junk[3000];
	uint8_t rb[4096];
	unsigned states_seen = 0;
	unsigned long steps = 0;
	rng_state = 0x9e3779b97f4a7c15ull;
	fill(junk, sizeof(junk), 7);
	for (int run = 0; run < 2000; run++) {
		struct us_out o;
		struct us_config c = cfg_default(rnd());
		c.persist = rnd() & 1;
		c.wscale = (uint8_t)(rnd() % 16);
		c.rcv_wnd = rnd() % 40000;
		c.deadline_ns = (rnd() & 1) ? T0 + (rnd() % 20) * S : 0;
		us_tcb_init(A);
		if (rnd() & 1)
			open_active(A, &c, T0, &o);
		else
			open_passive(A, &c, T0, &o);
		uint64_t now = T0;
		uint32_t peer_seq = rnd();
		for (int i = 0; i < 300 && A->state != US_CLOSED; i++) {
			struct us_event ev = { .type = US_EV_SEGMENT };
			uint32_t r = rnd();
			now += rnd() % (300 * MS);
			switch (r % 10) {
			case 0:
				ev.type = US_EV_TIMER;
				break;
			case 1:
				ev.type = US_EV_SEND;
				ev.data = junk;
				ev.len = rnd() % sizeof(junk);
				break;
			case 2:
				ev.type = US_EV_RECV;
				ev.buf = rb;
				ev.cap = rnd() % sizeof(rb);
				break;
			case 3:
				ev.type = US_EV_ICMP_ERROR;
				ev.icmp.type = (uint8_t)(rnd() % 13);
				ev.icmp.code = (uint8_t)(rnd() % 16);
				ev.icmp.seq = A->snd_una + rnd() % 3;
				break;
			case 4:
				ev.type = (rnd() % 8) ? US_EV_SEGMENT : ((rnd() & 1) ? US_EV_CLOSE : US_EV_ABORT);
				/* fall through to build a segment anyway (ignored by CLOSE/ABORT) */
				/* FALLTHRU */
			default: {
				struct us_segment *s = &ev.seg;
				bool synced = A->state >= US_SYN_RECEIVED;
				uint32_t base = synced ? A->rcv_nxt : peer_seq;
				s->seq = base + (uint32_t)((int32_t)(rnd() % 4000) - 1000);
				if (rnd() % 4 == 0)
					s->seq = rnd();
				s->ack = A->snd_una + (uint32_t)((int32_t)(rnd() % 6000) - 2000);
				const uint8_t fl[] = { US_TH_ACK, US_TH_ACK, US_TH_ACK | US_TH_PSH, US_TH_SYN,
						       US_TH_SYN | US_TH_ACK, US_TH_RST, US_TH_RST | US_TH_ACK,
						       US_TH_FIN | US_TH_ACK, 0, (uint8_t)rnd() };
				s->flags = fl[rnd() % sizeof(fl)];
				if (!synced && (s->flags & US_TH_SYN) && (rnd() & 1)) {
					s->seq = peer_seq;
					s->ack = A->iss + 1;
				}
				s->win = (uint16_t)rnd();
				if (rnd() & 1) {
					s->opts.has_ts = true;
					s->opts.tsval = (uint32_t)(now / MS) + (rnd() % 3) - 1;
				}
				if (rnd() & 1) {
					s->opts.has_wscale = true;
					s->opts.wscale = (uint8_t)(rnd() % 15);
				}
				s->opts.has_mss = rnd() & 1;
				s->opts.mss = (uint16_t)rnd();
				s->len = (rnd() & 1) ? rnd() % 2000 : 0;
				s->payload = s->len ? junk : NULL;
				break;
			}
			}
			int rc = us_step(A, &ev, now, &o);
			assert_true(rc == 0 || rc == -EINVAL || rc == -ENOTCONN || rc == -EPIPE);
			check_invariants(A, &o);
			steps++;
			states_seen |= 1u << A->state;
			if (o.notify & US_N_CLOSED)
				assert_int_equal(A->state, US_CLOSED);
		}
	}
	/* the walk really reached the states it claims to exercise */
	assert_true(states_seen & (1u << US_SYN_SENT));
	assert_true(states_seen & (1u << US_SYN_RECEIVED));
	assert_true(states_seen & (1u << US_ESTABLISHED));
	assert_true(states_seen & (1u << US_CLOSE_WAIT));
	assert_true(states_seen & (1u << US_FIN_WAIT_1));
	assert_true(states_seen & (1u << US_LAST_ACK));
	assert_true(steps > 100000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_active_open_syn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_active_open_established, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negotiation_peer_without_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negotiation_we_offer_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_sent_unacceptable_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_sent_rst_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_rst_and_icmp_are_soft, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_syn_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_admin_prohibited_and_timeout_reports_soft, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_backoff_timing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_non_persist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passive_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_bad_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_received_transitions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_in_syn_received_sends_fin_when_established, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simultaneous_open_scripted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simultaneous_open_completed_by_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spoofed_syn_is_tentative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_only_strips_data_and_fin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simultaneous_open_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_established_bad_acks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_established_rst_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_established_duplicate_and_late_syn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paws, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_dropped_and_reacked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_active_passive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_simultaneous_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_simultaneous_open_synack_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_lost_syn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_lost_synack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_lost_third_ack_synack_rtx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_data_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_receive_window_limits_sender, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_data_loss_retransmission_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_data_retries_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_fin_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_simultaneous_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closing_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_fin_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_before_established, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pair_zero_window_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_window_dead_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_events_keep_invariants, setup, teardown),
	};
	return cmocka_run_group_tests_name("tcb", tests, NULL, NULL);
}
