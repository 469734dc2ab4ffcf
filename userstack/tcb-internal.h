/* SPDX-License-Identifier: MIT */
/* Userspace TCP state machine internals, shared by tcb*.c and nothing else (the API is tcb.h):
 * the per-step scratch and what each file offers the others.
 *   tcb.c         the entry point us_step(): state transitions, timers, application events
 *   tcb-input.c   a segment or an ICMP error arriving: the RFC 9293 §3.10.7 checks, option
 *                 negotiation from the peer's SYN
 *   tcb-output.c  building the segments to send: window, options, data and FIN within the window
 * Section numbers refer to RFC 9293 unless noted. */
#ifndef US_TCB_INTERNAL_H
#define US_TCB_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userstack/tcb.h"

#define DEF_PEER_MSS 536          /* §3.7.1: no MSS option -> 536 */

/* per-step scratch */
struct ctx {
	struct us_tcb *t;
	struct us_out *out;
	uint64_t now;
	bool need_ack;            /* an ACK must go out unless a segment with ACK already did */
	bool acked_out;           /* a segment carrying ACK was emitted in this step */
};

/* tcb.c */
void tcb_do_close(struct us_tcb *t, struct us_out *out, int err);
void tcb_enter_time_wait(struct ctx *c);
void tcb_arm_syn_timer(struct ctx *c);
void tcb_become_established(struct ctx *c);

/* tcb-input.c */
void tcb_on_icmp(struct ctx *c, const struct us_event *ev);
void tcb_on_segment(struct ctx *c, const struct us_segment *s);

/* tcb-output.c */
uint32_t tcb_buf_seq(const struct us_tcb *t);
uint32_t tcb_rcv_space(const struct us_tcb *t);
struct us_out_seg *tcb_emit(struct ctx *c, uint32_t seq, uint32_t ack, uint8_t flags,
			    const uint8_t *payload, size_t len);
void tcb_send_ack(struct ctx *c);
void tcb_challenge_ack(struct ctx *c);
void tcb_send_rst_for(struct ctx *c, const struct us_segment *s);
void tcb_send_syn(struct ctx *c, bool with_ack);
void tcb_try_send(struct ctx *c, unsigned limit);

#endif
