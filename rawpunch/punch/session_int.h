/* SPDX-License-Identifier: MIT */
/* Private to the session module (session.c: open, handshake, results; session_exchange.c: the --raw
 * data exchange): the session's state and the loop helpers both files use. Not for other callers. */
#ifndef RP_SESSION_INT_H
#define RP_SESSION_INT_H
#include <stdbool.h>
#include <stdint.h>
#include "rawpunch/net/netif.h"
#include "rawpunch/punch/rawflow.h"
#include "rawpunch/punch/session.h"

struct rp_craft;
struct rp_guard;
struct rp_cap;

struct rp_session {
	struct rp_session_opts o;
	uint8_t key[US_COOKIE_KEYLEN];
	uint32_t laddr, raddr;
	uint16_t lport, rport;       /* rport: the one port given, or the one that answered; 0 before */
	uint16_t *ports;             /* port list (sorted not required) */
	size_t nports;
	uint16_t lo, hi;             /* range, or 0,0 = any (when nports == 0 and no single port) */
	bool released;
	struct rp_route route;
	struct rp_craft *craft;
	struct rp_guard *guard;
	struct rp_cap *cap;
	struct us_tcb *tcb;
	struct rp_rawflow flow;      /* drives tcb: checks, feed, sending (rawflow.h); flow.defined once rport answered */
	uint64_t next_multi_ns;      /* next round of SYNs to the port list */
	uint64_t t_first_syn;
	uint32_t ts_offset;          /* one timestamp clock for every SYN of the session */
	struct rp_session_stats st;
	uint8_t inbuf[16384], outbuf[16384];   /* rp_session_exchange() */
};

/* *o.stop is set. */
bool rp_sess_stopped(const struct rp_session *s);

/* Everything the capture holds into the flow (deadline: for a flow a reply defines). Returns the OR
 * of the US_N_* bits seen (>= 0) or -errno. */
int rp_sess_drain(struct rp_session *s, uint64_t deadline);

/* poll() timeout in ms from now until `until` (0 = none), at most 1000. */
int rp_sess_poll_ms(uint64_t now, uint64_t until);

#endif
