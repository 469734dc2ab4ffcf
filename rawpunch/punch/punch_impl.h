/* SPDX-License-Identifier: MIT */
/* Inside the punch executor (punch.h): the context and the round's sender its files share. Private to
 * rawpunch/punch/ (not a public header):
 *   context.c     open / close, the RST guard, keys and ISNs, totals
 *   sender.c      a round's phases (strategy.h's rp_exec) made into SYN templates and port sets, and
 *                 the thread that sends them
 *   punch.c       the round: receiving, validation, the userspace handshake; the handoff
 *   round_json.c  a round's figures as JSON */
#ifndef RP_PUNCH_IMPL_H
#define RP_PUNCH_IMPL_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rawpunch/base/trace.h"
#include "rawpunch/net/burst.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/punch/punch.h"
#include "rawpunch/punch/rawflow.h"
#include "rawpunch/strategy/strategy.h"
#include "userstack/tcb.h"

struct phase {
	const char *name;            /* "prime", "burst" */
	bool prime;                  /* counts as primes_sent */
	uint8_t ttl;
	struct rp_tmpl tmpl;
	struct rp_pairset set;
	uint64_t at_ns;              /* monotonic: first pass */
	uint64_t repeat_ns;          /* 0: once */
	uint64_t until_ns;           /* repeats start before this */
	uint16_t *own_sports, *own_dports;   /* port lists made for this round (fresh / random), freed with it */
	struct rp_portpair *own_pairs;       /* zip: the i-th source with the i-th destination, freed with it */
};

struct sender {
	struct rp_punch *p;
	struct rp_exec x;            /* the round's phases as the strategy gave them */
	struct phase ph[RP_EXEC_MAX_PHASES];
	unsigned n;
	uint32_t rate;
	pthread_t th;
	bool running;
	atomic_int stop;
	atomic_int cur;              /* index of the phase being sent, -1 before the first */
	atomic_uint_fast64_t sent_prime, sent_syn, errors, cur_sent, cur_total;
	atomic_int last_err;
	atomic_bool done;
	uint64_t first_tx_ns;        /* monotonic; written by the sender before done */
	uint64_t start_ns;           /* monotonic: the sender thread started */
};

struct rp_punch {
	struct rp_punch_opts o;
	uint8_t key[RP_PUNCH_KEYLEN];
	uint32_t laddr, raddr;
	struct rp_route route;
	struct rp_craft *craft;
	struct rp_guard *guard;
	struct rp_cap *cap;
	bool released;
	uint32_t ts_offset;
	/* round state */
	uint8_t lport_set[65536 / 8];
	uint16_t punch_port;
	uint32_t isn_mine, isn_peer;
	uint64_t t0;                 /* T, monotonic */
	/* the round's explicit pairs (a zip phase, e.g. block-pairs), owned by its sender; NULL when
	 * its SYNs go out as products (a port to a list or range): a SYN or SYN-ACK defines the flow
	 * only on one of these tuples, the ones this round's own SYNs opened at both NATs */
	const struct rp_pairset *sent_pairs;
	uint8_t reprime_ttl;         /* the round's primes' TTL (0: it sends none): a RST from the peer's
	                                NAT deleted the entry the prime made in ours, which a prime again
	                                puts back (rp_punch_reprime) */
	unsigned reprimes;           /* sent this round (at most REPRIME_MAX) */
	struct rp_punch_round_stats *st;
	/* the flow */
	bool defined;
	uint16_t lport, rport;
	struct us_tcb *tcb;
	struct rp_rawflow flow;      /* drives tcb (rawflow.h); defined, lport, rport copy its flow */
	uint64_t packets_sent;       /* all rounds */
	uint16_t *guarded;           /* local ports already in the guard (with their remote range) */
	size_t n_guarded, cap_guarded;
};

/* One prime again, from the punch port to dport with the round's ISN and the primes' TTL, sent by the
 * caller's thread through p->craft (sender.c). 0 or -errno. */
int rp_punch_reprime(struct rp_punch *p, uint16_t dport);

/* trace(x, fmt, ...): one line to the caller's trace callback, if any */
#define trace(x, ...) rp_trace((x)->o.trace, (x)->o.trace_arg, __VA_ARGS__)

static inline double since_t0_ms(const struct rp_punch *p, uint64_t now)
{
	return ((double)(int64_t)(now - p->t0)) / 1e6;
}

/* the round's local ports: replies to any of them are ours */
static inline bool lport_in(const struct rp_punch *p, uint16_t port)
{
	return p->lport_set[port >> 3] & (1u << (port & 7));
}

static inline void lport_add(struct rp_punch *p, uint16_t port)
{
	p->lport_set[port >> 3] |= (uint8_t)(1u << (port & 7));
}

/* context.c */
/* Guard (lport, whole remote address, any remote port): a local port is added once per context. */
int rp_punch_guard_port(struct rp_punch *p, uint16_t lport);
/* Guard, capture and raw socket off (the kernel owns the flow, or nobody does). */
void rp_punch_release(struct rp_punch *p);

/* sender.c */
/* A sender for p with s->x to be filled (rp_plan_exec); NULL on ENOMEM. */
struct sender *rp_punch_sender_new(struct rp_punch *p);
/* s->x made into phases from T (p->t0): fresh local ports picked and guarded, random ports drawn,
 * SYN templates with the round's ISN; fills the round's action figures in p->st. *end_ns: when the
 * plan's sending ends (monotonic). 0 or -errno. */
int rp_punch_sender_build(struct sender *s, uint64_t *end_ns);
int rp_punch_sender_start(struct sender *s);     /* 0 or -EAGAIN */
void rp_punch_sender_stop(struct sender *s);     /* joins the thread (no-op when not running) */
void rp_punch_sender_free(struct sender *s);

#endif
