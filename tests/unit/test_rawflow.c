/* SPDX-License-Identifier: MIT */
/* rawflow: the validation rules both the connect session and the punch executor rely on (replies
 * must acknowledge our ISN for their tuple, bare SYNs need simultaneous open and the peer's ISN,
 * RSTs must fall inside the window, ICMP errors must quote our sequence number), forged packets are
 * counted and never reach the tcb, valid ones drive it, and what the tcb emits is what goes out.
 * The craft context renders only (RP_CRAFT_NOSEND): the sent hook records every segment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/punch/rawflow.h"

#define ISN 1000000u           /* ours (punch-like: one for every port) */
#define PEER_ISN 7000000u
#define LPORT 40000
#define RPORT 7000

struct h {
	struct rp_rawflow f;
	struct us_tcb *tcb;
	struct rp_craft *craft;
	uint32_t forged;
	bool per_port;              /* cookie-like: our ISN depends on the remote port */
	unsigned n;
	struct us_out_seg seg[32];
	uint16_t rport[32];
	int err[32];
	unsigned notified;
};

static uint32_t ip(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static uint32_t iss_of(void *arg, uint16_t lport, uint16_t rport)
{
	struct h *h = arg;
	assert_int_equal(lport, LPORT);
	return h->per_port ? ISN + rport : ISN;
}

static void on_sent(void *arg, const struct us_out_seg *seg, uint16_t rport, int err)
{
	struct h *h = arg;
	assert_true(h->n < 32);
	h->seg[h->n] = *seg;
	h->rport[h->n] = rport;
	h->err[h->n] = err;
	h->n++;
}

static void on_notify(void *arg, const struct us_out *out)
{
	struct h *h = arg;
	(void)out;
	h->notified++;
}

static int setup(void **state)
{
	struct h *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->tcb = malloc(sizeof(*h->tcb));
	assert_non_null(h->tcb);
	assert_int_equal(rp_craft_open(&h->craft, RP_CRAFT_NOSEND, NULL, 0), 0);
	h->f = (struct rp_rawflow){
		.craft = h->craft, .tcb = h->tcb, .laddr = ip("10.0.1.2"), .raddr = ip("198.18.3.2"),
		.accept_syn = true, .peer_isn_known = true, .peer_isn = PEER_ISN,
		.iss = iss_of, .sent = on_sent, .notify = on_notify, .arg = h, .forged = &h->forged,
	};
	rp_rawflow_reset(&h->f);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct h *h = *state;
	rp_craft_close(h->craft);
	free(h->tcb);
	free(h);
	return 0;
}

/* A segment from the peer's rport to our LPORT. */
static struct rp_event seg(struct h *h, uint16_t rport, uint8_t flags, uint32_t seq, uint32_t ack)
{
	struct rp_event ev = { .kind = RP_EV_TCP, .ip_src = h->f.raddr, .ip_dst = h->f.laddr, .ttl = 60,
			       .seq = seq, .ack = ack, .flags = flags, .win = 65535 };
	ev.tuple.saddr = h->f.raddr;
	ev.tuple.daddr = h->f.laddr;
	ev.tuple.sport = rport;
	ev.tuple.dport = LPORT;
	return ev;
}

/* An ICMP error from a router quoting our segment LPORT -> rport with sequence number seq. */
static struct rp_event icmp(struct h *h, uint16_t rport, uint8_t type, uint8_t code, uint32_t seq)
{
	struct rp_event ev = { .kind = RP_EV_ICMP_ERR, .ip_src = ip("198.18.0.1"), .ip_dst = h->f.laddr,
			       .seq = seq, .icmp_type = type, .icmp_code = code };
	ev.tuple.saddr = h->f.laddr;
	ev.tuple.daddr = h->f.raddr;
	ev.tuple.sport = LPORT;
	ev.tuple.dport = rport;
	return ev;
}

static void open_flow(struct h *h, bool syn_sent, bool persist)
{
	struct us_config c;
	struct us_out out;
	rp_rawflow_config(&c, h->per_port ? ISN + RPORT : ISN, 0, 12345, 250000000ull, persist,
			  rp_mono_ns() + 3000000000ull);
	assert_true(rp_rawflow_open(&h->f, LPORT, RPORT, &c, syn_sent, &out) >= 0);
	assert_true(h->f.defined);
	assert_int_equal(h->tcb->state, US_SYN_SENT);
	assert_true(h->f.timer_ns != 0);          /* the SYN retransmission is armed either way */
}

/* SYN-SENT -> ESTABLISHED by the peer's valid SYN-ACK. */
static void establish(struct h *h)
{
	struct us_out out;
	open_flow(h, true, true);
	struct rp_event ev = seg(h, RPORT, RP_TH_SYN | RP_TH_ACK, PEER_ISN, h->tcb->iss + 1);
	assert_true(rp_rawflow_acceptable(&h->f, &ev));
	int r = rp_rawflow_feed(&h->f, &ev, &out);
	assert_true(r >= 0);
	assert_true(r & US_N_ESTABLISHED);
	assert_int_equal(h->tcb->state, US_ESTABLISHED);
}

static void test_config(void **state)
{
	(void)state;
	struct us_config c;
	rp_rawflow_config(&c, 42, 0, 7, 250000000ull, true, 99);
	assert_int_equal(c.iss, 42);
	assert_int_equal(c.mss, 1460);
	assert_true(c.wscale_ok && c.sack_ok && c.ts_ok && c.syn_no_backoff && c.persist);
	assert_int_equal(c.wscale, 7);
	assert_int_equal(c.ts_offset, 7);
	assert_int_equal(c.syn_rto_ns, 250000000ull);
	assert_int_equal(c.deadline_ns, 99);
	assert_int_equal(c.time_wait_ns, 500000000ull);
	rp_rawflow_config(&c, 42, 1200, 7, 1, false, 0);
	assert_int_equal(c.mss, 1200);
	assert_false(c.persist);
}

/* Before the flow exists: sorted by the expected values, nothing counted yet. */
static void test_classify(void **state)
{
	struct h *h = *state;
	const char *why;
	struct rp_event ev;

	ev = seg(h, RPORT, RP_TH_SYN | RP_TH_ACK, 5, ISN + 1);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_SYNACK);
	/* a forged SYN-ACK: one off */
	ev = seg(h, RPORT, RP_TH_SYN | RP_TH_ACK, 5, ISN + 2);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_FORGED);
	assert_non_null(strstr(why, "SYN-ACK"));
	ev = seg(h, RPORT, RP_TH_SYN | RP_TH_ACK, 5, ISN);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, NULL), RP_RF_FORGED);
	/* simultaneous open: the peer's SYN with the peer's ISN, and only that */
	ev = seg(h, RPORT, RP_TH_SYN, PEER_ISN, 0);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_SYN);
	ev = seg(h, RPORT, RP_TH_SYN, PEER_ISN + 1, 0);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_FORGED);
	assert_non_null(strstr(why, "peer's ISN"));
	/* refusals: an RST acknowledging our ISN; any other RST is forged */
	ev = seg(h, RPORT, RP_TH_RST | RP_TH_ACK, 0, ISN + 1);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_REFUSED);
	ev = seg(h, RPORT, RP_TH_RST | RP_TH_ACK, 0, ISN + 7);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_FORGED);
	ev = seg(h, RPORT, RP_TH_RST, 0, ISN + 1);                 /* no ACK bit: nothing to check */
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_FORGED);
	ev = seg(h, RPORT, RP_TH_RST | RP_TH_SYN, PEER_ISN, 0);    /* RST wins over SYN */
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_FORGED);
	/* neither SYN nor RST */
	ev = seg(h, RPORT, RP_TH_ACK, 5, ISN + 1);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_ACK);
	ev = seg(h, RPORT, RP_TH_ACK | RP_TH_PSH, 5, ISN + 9);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_OTHER);
	assert_non_null(why);
	ev = seg(h, RPORT, RP_TH_FIN, 5, 0);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_OTHER);
	/* classifying counts and sends nothing */
	assert_int_equal(h->forged, 0);
	assert_int_equal(h->n, 0);
	/* the counter moves with rp_rawflow_forged */
	rp_rawflow_forged(&h->f, &ev, why);
	assert_int_equal(h->forged, 1);
}

/* Cookie ISNs (per tuple) and no simultaneous open: the connect session's rules. */
static void test_classify_cookie(void **state)
{
	struct h *h = *state;
	const char *why;
	struct rp_event ev;
	h->per_port = true;
	h->f.accept_syn = false;
	h->f.peer_isn_known = false;

	ev = seg(h, 7001, RP_TH_SYN | RP_TH_ACK, 5, ISN + 7001 + 1);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_SYNACK);
	/* the cookie of another port does not validate a reply from this one */
	ev = seg(h, 7002, RP_TH_SYN | RP_TH_ACK, 5, ISN + 7001 + 1);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_FORGED);
	ev = seg(h, 7002, RP_TH_RST | RP_TH_ACK, 0, ISN + 7002 + 1);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_REFUSED);
	/* a bare SYN: refused without simultaneous open, any ISN with it (the peer's is unknown) */
	ev = seg(h, 7001, RP_TH_SYN, 12345, 0);
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_FORGED);
	assert_non_null(strstr(why, "not accepted"));
	h->f.accept_syn = true;
	assert_int_equal(rp_rawflow_classify(&h->f, &ev, &why), RP_RF_SYN);
}

/* Our SYN is not sent twice; a valid simultaneous-open SYN is answered with a SYN-ACK; forged
 * segments in SYN-RECEIVED are counted and ignored; the valid ACK establishes. */
static void test_simultaneous_open(void **state)
{
	struct h *h = *state;
	struct us_out out;
	struct rp_event ev;

	open_flow(h, true, true);
	assert_int_equal(h->n, 0);               /* the burst sent our SYN: not again */
	ev = seg(h, RPORT, RP_TH_SYN, PEER_ISN, 0);
	assert_true(rp_rawflow_acceptable(&h->f, &ev));
	assert_true(rp_rawflow_feed(&h->f, &ev, &out) >= 0);
	assert_int_equal(h->tcb->state, US_SYN_RECEIVED);
	assert_int_equal(h->n, 1);
	assert_int_equal(h->seg[0].flags, US_TH_SYN | US_TH_ACK);
	assert_int_equal(h->seg[0].seq, ISN);
	assert_int_equal(h->seg[0].ack, PEER_ISN + 1);
	assert_int_equal(h->rport[0], RPORT);
	assert_int_equal(h->err[0], -EOPNOTSUPP); /* render-only craft: the hook still sees the error */

	/* SYN-RECEIVED: a SYN with another ISN, an ack beyond what we sent, an RST outside the window */
	ev = seg(h, RPORT, RP_TH_SYN, PEER_ISN + 100, 0);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	ev = seg(h, RPORT, RP_TH_ACK, PEER_ISN + 1, ISN + 2);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	ev = seg(h, RPORT, RP_TH_RST, PEER_ISN + 1 + 200000, 0);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	assert_int_equal(h->forged, 3);
	assert_int_equal(h->tcb->state, US_SYN_RECEIVED);
	/* the peer's retransmitted SYN (same ISN) is fine */
	ev = seg(h, RPORT, RP_TH_SYN, PEER_ISN, 0);
	assert_true(rp_rawflow_acceptable(&h->f, &ev));

	ev = seg(h, RPORT, RP_TH_ACK, PEER_ISN + 1, ISN + 1);
	assert_true(rp_rawflow_acceptable(&h->f, &ev));
	int r = rp_rawflow_feed(&h->f, &ev, &out);
	assert_true(r >= 0 && (r & US_N_ESTABLISHED));
	assert_int_equal(h->tcb->state, US_ESTABLISHED);
	assert_int_equal(h->forged, 3);
}

/* Without syn_sent the tcb's SYN goes out, and it is the SYN rp_rawflow_syn describes; in SYN-SENT a
 * SYN-ACK with a wrong ack and an RST without ACK are forged; the real SYN-ACK establishes. */
static void test_syn_sent(void **state)
{
	struct h *h = *state;
	struct us_out out;
	struct us_out_seg want;
	struct rp_event ev;

	uint64_t t = rp_mono_ns();
	open_flow(h, false, true);
	assert_int_equal(h->n, 1);
	rp_rawflow_syn(&want, &h->f.cfg, ISN, t);
	assert_int_equal(h->seg[0].flags, want.flags);
	assert_int_equal(h->seg[0].seq, want.seq);
	assert_int_equal(h->seg[0].win, want.win);
	assert_int_equal(h->seg[0].opts.mss, want.opts.mss);
	assert_int_equal(h->seg[0].opts.has_wscale, want.opts.has_wscale);
	assert_int_equal(h->seg[0].opts.wscale, want.opts.wscale);
	assert_int_equal(h->seg[0].opts.sack_perm, want.opts.sack_perm);
	assert_int_equal(h->seg[0].opts.has_ts, want.opts.has_ts);
	assert_true(h->seg[0].opts.tsval - want.opts.tsval < 1000);   /* the same ms clock + offset */

	ev = seg(h, RPORT, RP_TH_SYN | RP_TH_ACK, PEER_ISN, ISN + 2);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	ev = seg(h, RPORT, RP_TH_RST, 0, 0);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	ev = seg(h, RPORT, RP_TH_ACK | RP_TH_FIN, 0, 0);               /* no SYN, no valid ack */
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	ev = seg(h, RPORT, RP_TH_SYN, PEER_ISN - 1, 0);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	assert_int_equal(h->forged, 4);
	assert_int_equal(h->tcb->state, US_SYN_SENT);

	/* a refusal acknowledging our ISN may reach the tcb (persist: soft, the SYN goes on) */
	ev = seg(h, RPORT, RP_TH_RST | RP_TH_ACK, 0, ISN + 1);
	assert_true(rp_rawflow_acceptable(&h->f, &ev));
	int r = rp_rawflow_feed(&h->f, &ev, &out);
	assert_true(r >= 0 && (r & US_N_SOFT_ERROR));
	assert_int_equal(h->tcb->state, US_SYN_SENT);

	ev = seg(h, RPORT, RP_TH_SYN | RP_TH_ACK, PEER_ISN, ISN + 1);
	assert_true(rp_rawflow_acceptable(&h->f, &ev));
	unsigned before = h->n;
	r = rp_rawflow_feed(&h->f, &ev, &out);
	assert_true(r >= 0 && (r & US_N_ESTABLISHED));
	assert_int_equal(h->n, before + 1);
	assert_int_equal(h->seg[before].flags, US_TH_ACK);
	assert_int_equal(h->seg[before].ack, PEER_ISN + 1);
	assert_true(h->notified >= 3);
}

/* ESTABLISHED: RSTs outside the window and acks of data never sent are forged; an RST in the window
 * resets the connection (a negative result). */
static void test_established(void **state)
{
	struct h *h = *state;
	struct us_out out;
	struct rp_event ev;

	establish(h);
	uint32_t nxt = h->tcb->rcv_nxt;
	ev = seg(h, RPORT, RP_TH_RST, nxt + h->tcb->rcv_wnd + 10, 0);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	ev = seg(h, RPORT, RP_TH_RST | RP_TH_ACK, nxt - 1, ISN + 1);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	ev = seg(h, RPORT, RP_TH_ACK, nxt, h->tcb->snd_max + 5);
	assert_false(rp_rawflow_acceptable(&h->f, &ev));
	assert_int_equal(h->forged, 3);
	assert_int_equal(h->tcb->state, US_ESTABLISHED);

	/* data is fine (the tcb has it, the ACK goes out) */
	static const uint8_t data[] = "hello";
	ev = seg(h, RPORT, RP_TH_ACK | RP_TH_PSH, nxt, ISN + 1);
	ev.payload = data;
	ev.paylen = ev.paylen_wire = 5;
	assert_true(rp_rawflow_acceptable(&h->f, &ev));
	assert_true(rp_rawflow_feed(&h->f, &ev, &out) & US_N_READABLE);
	assert_int_equal(h->tcb->rcv_len, 5);

	ev = seg(h, RPORT, RP_TH_RST, h->tcb->rcv_nxt, 0);
	assert_true(rp_rawflow_acceptable(&h->f, &ev));
	assert_int_equal(rp_rawflow_feed(&h->f, &ev, &out), -ECONNRESET);
	assert_int_equal(h->tcb->state, US_CLOSED);
}

/* ICMP errors count only when they quote our sequence number: before the flow the ISN of the quoted
 * tuple, on the flow in SYN-SENT the ISN. Only the flow's reach the tcb. */
static void test_icmp(void **state)
{
	struct h *h = *state;
	struct us_out out;
	struct rp_event ev;

	ev = icmp(h, RPORT, 11, 0, ISN);
	assert_true(rp_rawflow_icmp_ok(&h->f, &ev));
	ev = icmp(h, RPORT, 3, 3, 0xdeadbeef);           /* a foreign ISN */
	assert_false(rp_rawflow_icmp_ok(&h->f, &ev));
	assert_int_equal(h->forged, 1);
	/* before the flow: valid, but nothing to feed */
	ev = icmp(h, RPORT, 3, 3, ISN);
	assert_int_equal(rp_rawflow_icmp(&h->f, &ev, &out), 0);
	assert_int_equal(out.notify, 0);

	h->per_port = true;
	ev = icmp(h, 9000, 3, 1, ISN);                  /* cookie-like: 9000's ISN is ISN + 9000 */
	assert_false(rp_rawflow_icmp_ok(&h->f, &ev));
	ev = icmp(h, 9000, 3, 1, ISN + 9000);
	assert_true(rp_rawflow_icmp_ok(&h->f, &ev));
	h->per_port = false;

	open_flow(h, true, true);
	ev = icmp(h, RPORT, 3, 3, ISN + 1);              /* nothing with ISN + 1 left yet */
	assert_false(rp_rawflow_icmp_ok(&h->f, &ev));
	assert_int_equal(h->forged, 3);
	ev = icmp(h, RPORT, 3, 3, ISN);
	assert_true(rp_rawflow_icmp_ok(&h->f, &ev));
	int r = rp_rawflow_icmp(&h->f, &ev, &out);       /* persist: port unreachable is soft */
	assert_true(r >= 0 && (r & US_N_SOFT_ERROR));
	assert_int_equal(h->tcb->state, US_SYN_SENT);
	/* another tuple's (valid) error does not touch the flow */
	ev = icmp(h, RPORT + 1, 3, 3, ISN);
	assert_true(rp_rawflow_icmp_ok(&h->f, &ev));
	assert_int_equal(rp_rawflow_icmp(&h->f, &ev, &out), 0);

	/* without persist a hard error closes it: the errno comes back */
	rp_rawflow_reset(&h->f);
	assert_false(h->f.defined);
	open_flow(h, true, false);
	ev = icmp(h, RPORT, 3, 3, ISN);
	assert_int_equal(rp_rawflow_icmp(&h->f, &ev, &out), -ECONNREFUSED);
	assert_int_equal(h->tcb->state, US_CLOSED);
}

/* The timer fires only when due; the step's result: notify bits, the error of a close. */
static void test_timer(void **state)
{
	struct h *h = *state;
	struct us_out out;

	open_flow(h, true, true);
	unsigned before = h->n;
	assert_int_equal(rp_rawflow_timer(&h->f, h->f.timer_ns - 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(h->n, before);
	/* the tcb runs on the real clock: wait for the SYN retransmission time (250 ms) */
	while (rp_mono_ns() < h->f.timer_ns) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 10000000 };
		nanosleep(&ts, NULL);
	}
	assert_true(rp_rawflow_timer(&h->f, rp_mono_ns(), &out) >= 0);
	assert_int_equal(h->n, before + 1);                /* the SYN retransmission */
	assert_int_equal(h->seg[before].flags, US_TH_SYN);
	assert_int_equal(h->seg[before].seq, ISN);

	/* an orderly close (CLOSE in SYN-SENT): not an error, US_N_CLOSED in the result */
	struct us_event ev = { .type = US_EV_CLOSE };
	int r = rp_rawflow_step(&h->f, &ev, &out);
	assert_true(r >= 0 && (r & US_N_CLOSED));
	assert_int_equal(h->tcb->state, US_CLOSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test_setup_teardown(test_classify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_classify_cookie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simultaneous_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syn_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_established, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
