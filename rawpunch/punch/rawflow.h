/* SPDX-License-Identifier: MIT */
/* One TCP flow driven by raw packets: the glue between a capture (capture/capture.h events), the
 * userspace TCP state machine (userstack/tcb.h) and the raw socket (rawpunch/net/craft.h), shared by
 * the connect session (session.h: one known 4-tuple, cookie ISNs) and the punch executor (punch.h:
 * the flow is whichever of many candidate ports first answers validly, round ISNs).
 *
 * What it does:
 *   - validation: before the flow exists, rp_rawflow_classify() sorts a captured segment by the
 *     expected values (a SYN-ACK or RST must acknowledge our ISN for its tuple, a bare SYN is valid only
 *     where simultaneous open is accepted and, if the peer's ISN is known, only with it); once the flow
 *     exists, rp_rawflow_acceptable() checks each segment against the tcb (ISN + 1 in SYN-SENT, acks
 *     within what we sent, RSTs inside the receive window, no ack of data never sent);
 *     rp_rawflow_icmp_ok() accepts an ICMP error only if it quotes our sequence number. Whatever
 *     fails is counted as forged (*forged) and traced, and never reaches the tcb;
 *   - the feed: a captured segment (rp_event) becomes a US_EV_SEGMENT (handshake part only until
 *     synchronized, us_handshake_only()), an ICMP error a US_EV_ICMP_ERROR;
 *   - sending: every segment us_step() emits goes out through craft on the flow's tuple (bare SYNs
 *     with syn_ttl, the rest with ttl), and the tcb's next timer is kept in timer_ns.
 * What the callers keep: which packets are theirs (addresses, port sets), their counters (through
 * the sent / notify hooks and the forged counter), what a refusal or a pre-flow ICMP error means, and
 * when a classified segment defines the flow (rp_rawflow_open()).
 *
 * Library code: returns -errno, prints nothing. Addresses network order, ports host order. */
#ifndef RP_RAWFLOW_H
#define RP_RAWFLOW_H
#include <stdbool.h>
#include <stdint.h>
#include "capture/capture.h"
#include "userstack/tcb.h"

struct rp_craft;

struct rp_rawflow {
	/* set by the caller (all of it, before the first call; rp_rawflow_reset() keeps it) */
	struct rp_craft *craft;      /* sends every segment (borrowed) */
	struct us_tcb *tcb;          /* the connection (borrowed: about 65 KiB, the caller allocates it) */
	uint32_t laddr, raddr;
	uint8_t syn_ttl, ttl;        /* IP TTL of bare SYNs / of everything else; 0 = 64 */
	bool accept_syn;             /* a bare SYN from the peer is valid (simultaneous open) ... */
	bool peer_isn_known;         /* ... and then, if set, only with sequence number peer_isn */
	uint32_t peer_isn;
	/* our ISN on a tuple (the cookie of the 4-tuple, the round's ISN): what replies must acknowledge */
	uint32_t (*iss)(void *arg, uint16_t lport, uint16_t rport);
	/* after every segment sent (err: 0 or rp_craft_send's -errno); may be NULL */
	void (*sent)(void *arg, const struct us_out_seg *seg, uint16_t rport, int err);
	/* after every step's segments went out (out->notify, out->error); may be NULL */
	void (*notify)(void *arg, const struct us_out *out);
	void *arg;                   /* for iss, sent, notify */
	uint32_t *forged;            /* incremented for every segment / ICMP error that fails; may be NULL */
	void (*trace)(void *arg, const char *line);   /* one line per event; NULL = none */
	void *trace_arg;

	/* the flow, kept by rp_rawflow_open() / rp_rawflow_reset() */
	bool defined;                /* the tuple is chosen and the tcb open */
	uint16_t lport, rport;
	struct us_config cfg;
	uint64_t timer_ns;           /* the tcb's next timer (absolute, rp_mono_ns clock), 0 = none */
};

/* Forget the flow: not defined, no timer, the tcb back to CLOSED (us_tcb_init). */
void rp_rawflow_reset(struct rp_rawflow *f);

/* The handshake configuration both callers use: iss, MSS (0 = 1460), window scale 7, SACK-permitted,
 * timestamps with ts_offset, the SYN (SYN-ACK) repeated every syn_rto_ns without backoff, persist,
 * deadline_ns (absolute), TIME-WAIT 0.5 s. */
void rp_rawflow_config(struct us_config *c, uint32_t iss, uint16_t mss, uint32_t ts_offset, uint64_t syn_rto_ns,
		       bool persist, uint64_t deadline_ns);

/* The SYN the tcb sends for configuration c (same window, options and timestamp clock), sequence
 * number iss, for SYNs sent outside the tcb (a port list). now_ns: rp_mono_ns(). */
void rp_rawflow_syn(struct us_out_seg *o, const struct us_config *c, uint32_t iss, uint64_t now_ns);

/* What a segment from the peer is before the flow exists. */
enum rp_rawflow_kind {
	RP_RF_FORGED = 0,   /* fails the checks (why says which) */
	RP_RF_REFUSED,      /* an RST acknowledging our ISN: the port (or the peer's NAT) refused */
	RP_RF_SYN,          /* a valid bare SYN: simultaneous open */
	RP_RF_SYNACK,       /* a SYN-ACK acknowledging our ISN */
	RP_RF_ACK,          /* neither SYN nor RST, acknowledging our ISN */
	RP_RF_OTHER,        /* neither SYN nor RST, without an ACK of our ISN (why says so) */
};

/* Classify a TCP segment from the peer (ev->tuple: its port -> ours) by the expected values: the ISN
 * iss() gives for the tuple and, for bare SYNs, accept_syn / peer_isn. Counts nothing; *why (may be
 * NULL) gets a static reason for RP_RF_FORGED and RP_RF_OTHER. */
enum rp_rawflow_kind rp_rawflow_classify(const struct rp_rawflow *f, const struct rp_event *ev, const char **why);

/* Count (*forged) and trace a segment that failed a check. */
void rp_rawflow_forged(struct rp_rawflow *f, const struct rp_event *ev, const char *why);

/* Define the flow lport <-> rport and open the tcb actively with cfg (copied). syn_sent: our SYN
 * for this tuple already left (a burst, a port list), so the tcb's first SYN is not sent again.
 * Returns as rp_rawflow_step(). */
int rp_rawflow_open(struct rp_rawflow *f, uint16_t lport, uint16_t rport, const struct us_config *cfg,
		    bool syn_sent, struct us_out *out);

/* Once the flow is defined: may this segment of the flow reach the tcb? Checked against the tcb's
 * state: SYN-SENT wants ack == ISN + 1 (an RST too), or a valid bare SYN (as classify); SYN-RECEIVED
 * an ack within what we sent, a bare SYN with the peer's ISN (if known), an RST without ACK inside
 * the window; later states an RST inside the window and no ack beyond what we sent. false: counted
 * as forged and traced. */
bool rp_rawflow_acceptable(struct rp_rawflow *f, const struct rp_event *ev);

/* The segment into the tcb (payload and FIN kept out until synchronized, us_handshake_only).
 * Returns as rp_rawflow_step(). */
int rp_rawflow_feed(struct rp_rawflow *f, const struct rp_event *ev, struct us_out *out);

/* An ICMP error quoting one of our segments (ev->tuple: the quoted header, our port -> theirs): does
 * it quote our sequence number? On the defined flow's tuple the ISN in SYN-SENT, else anything in
 * [ISN, snd_max]; on another tuple the ISN iss() gives for it. false: counted as forged and traced. */
bool rp_rawflow_icmp_ok(struct rp_rawflow *f, const struct rp_event *ev);

/* A valid ICMP error into the tcb when it quotes the defined flow (else nothing: out is cleared and 0
 * returned). Returns as rp_rawflow_step(). */
int rp_rawflow_icmp(struct rp_rawflow *f, const struct rp_event *ev, struct us_out *out);

/* The tcb's timer if it is due at now_ns (rp_mono_ns(); else nothing: out cleared, 0). Returns as
 * rp_rawflow_step(). */
int rp_rawflow_timer(struct rp_rawflow *f, uint64_t now_ns, struct us_out *out);

/* us_step() on the flow's tcb at rp_mono_ns(), then every segment it emits is sent on the flow's
 * tuple and the timer remembered, then the notify hook. Returns us_step()'s -errno; when the step
 * closed the tcb with an error, that error; else out->notify (>= 0; US_N_CLOSED for an orderly close). */
int rp_rawflow_step(struct rp_rawflow *f, const struct us_event *ev, struct us_out *out);

/* Send one segment from lport to rport (bare SYN: syn_ttl, else ttl), count it (sent hook) and trace
 * it. Returns 0 or rp_craft_send's -errno. */
int rp_rawflow_send(struct rp_rawflow *f, const struct us_out_seg *seg, uint16_t lport, uint16_t rport);

#endif
