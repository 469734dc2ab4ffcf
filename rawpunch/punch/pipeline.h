/* SPDX-License-Identifier: MIT */
/* The punch pipeline as one call: rp_punch_run() goes from a session name and a secret to a kernel
 * socket connected to the peer through both NATs, stage by stage (each stage's failure is the
 * report's "stage"):
 *
 *   CONNECT   the rendezvous server connection, first: its NAT mapping is taken  "rendezvous"
 *             before the probe's samples (so the prediction is not off by one flow),
 *             and its RTT sizes the filter probe. Serverless: skipped.
 *   PROBE     this side's NAT, from the punch port (rawpunch/probe/probe.h)       "probe"
 *   JOIN      the session at the server: sealed natinfo exchange, roles, clock    "rendezvous"
 *             offset and RTTs, the start instant T (rawpunch/rendezvous/client.h)
 *   OFFER     serverless instead of JOIN: print an offer and read the answer, or  "offer"
 *             answer an offer (rawpunch/rendezvous/offer.h)
 *   PLAN      both sides make the same plan from the same natinfos               "plan"
 *             (rawpunch/strategy/strategy.h); a refusal ends here
 *   SETUP     the punch context: route, raw socket, RST guard, capture (punch.h)  "setup"
 *   PUNCH     round after round at T (rp_punch_round); after a miss: tell the     "punch"
 *             peer, re-probe from a fresh port, exchange natinfos, agree on the
 *             next T, re-plan (wider). Serverless: one round (no channel to agree)
 *   HANDOFF   the connection to a kernel socket (TCP_REPAIR, else connect())      "handoff"
 *
 * A callback sees every stage begin and end, every round, each re-plan, progress and trace lines,
 * with the result filled so far; the result holds what a report needs (timings per stage, both
 * natinfos, the plans, the rounds, the handoff, the fd). The stages run behind struct rp_punch_ops:
 * rp_punch_run uses the network ones (stages.c); rp_punch_run_ops takes others (tests, or a later
 * transport). Later stages (a relay fallback, port mapping) go in here as further stages.
 * Library code: prints nothing; 0 or -errno. */
#ifndef RP_PIPELINE_H
#define RP_PIPELINE_H
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/handoff/handoff.h"
#include "rawpunch/probe/natinfo.h"
#include "rawpunch/punch/punch.h"
#include "rawpunch/strategy/strategy.h"

#define RP_PUNCH_MAX_ROUNDS 8
#define RP_PUNCH_WHY_LEN 400

enum rp_punch_stage {
	RP_STAGE_CONNECT = 0,
	RP_STAGE_PROBE,
	RP_STAGE_JOIN,
	RP_STAGE_OFFER,
	RP_STAGE_PLAN,
	RP_STAGE_SETUP,
	RP_STAGE_PUNCH,
	RP_STAGE_HANDOFF,
	RP_STAGE_DONE,            /* not a stage: where a run that connected ends */
};
#define RP_STAGE_N RP_STAGE_DONE

/* The report's name of a stage: "rendezvous" (CONNECT, JOIN), "probe", "offer", "plan", "setup",
 * "punch", "handoff", "done". */
const char *rp_punch_stage_str(enum rp_punch_stage s);

struct rp_offer;

struct rp_punch_run_opts {
	struct sockaddr_in rendezvous;   /* the server (unless serverless) */
	struct sockaddr_in stun;         /* STUN server (TCP) */
	const char *session;             /* 1..255 bytes */
	const uint8_t *secret;
	size_t secret_len;
	const uint8_t *key;              /* RP_PUNCH_KEYLEN bytes: rp_punch_key_derive(secret, session) */
	uint16_t local_port;             /* the punch port; 0: a free one */
	unsigned samples;                /* the probe's allocation samples */
	bool fresh_probe;                /* ignore the probe cache (probecache.h); a full probe refreshes it */
	struct rp_plan_params plan;      /* rate, rounds, max_open, max_probes; rtt and clock error come from JOIN */
	int join_timeout_ms;             /* wait for the peer at the server */
	uint32_t lead_ms;                /* from the meeting (and from each re-plan) to T; 0: from what is
	                                    measured (the RTTs to the server, both clock errors and a set-up
	                                    allowance: rv_lead_auto_ns) */
	const char *pcap_path;           /* every packet of the punch; NULL: none */
	/* serverless (no server): offer = print an offer (RP_PUNCH_EV_TEXT), then read the answer;
	 * answer_to = answer this offer (decoded and checked by the caller before anything is sent) */
	bool offer;
	const struct rp_offer *answer_to;
	int start_in_s;                  /* answer: T this long after answering */
	int (*read_answer)(void *arg, char *line, size_t cap); /* one line: its length, -ENODATA at the end, -errno */
	void *read_arg;
	const char *answer_source;       /* what read_answer reads, for the why ("stdin") */
	volatile sig_atomic_t *stop;     /* non-zero: waits and rounds end with -EINTR */
	bool trace;                      /* per-packet trace lines (RP_PUNCH_EV_TRACE) */
	uint64_t t_start_ns;             /* CLOCK_MONOTONIC the timings count from; 0: this call */
};

/* What the meeting (JOIN or OFFER) settled. */
struct rp_punch_meeting {
	struct rp_natinfo peer;
	int me;                          /* 0: this side is plan side a (initiator, offerer), 1: side b */
	uint64_t start_ns;               /* T of round 0, this host's CLOCK_REALTIME */
	bool via_server;                 /* the figures below were measured (JOIN) */
	int64_t rtt_ns, peer_rtt_ns, relay_rtt_ns, clock_err_ns, offset_ns;   /* rawpunch/rendezvous/client.h */
	int64_t lead_ns;                 /* the lead this side proposed (JOIN; the agreed T is the later proposal) */
	int64_t clock_sync_ns;           /* the clock sync's share of JOIN */
	uint64_t met_ns;                 /* CLOCK_REALTIME when the meeting ended (T - met_ns: the wait it left) */
};

struct rp_punch_round_record {
	struct rp_punch_round_stats st;  /* as the round returned it */
	struct rp_plan plan;             /* the plan it ran */
};

struct rp_punch_result {
	enum rp_punch_stage stage;       /* the stage that failed (or is running), RP_STAGE_DONE when connected */
	int error;                       /* 0, or that stage's -errno (-ENOTSUP: the plan refused) */
	char why[RP_PUNCH_WHY_LEN];      /* a failure in one line (the report's why) */
	char detail[256];                /* SETUP: what failed, as the punch context said it */
	bool serverless;
	double stage_ms[RP_STAGE_N];     /* each stage's duration; < 0: not run */
	double t_connected_ms;           /* from the start to the established round; < 0: not reached */
	double t_end_ms;                 /* from the start to the end of the run (failure or handoff) */
	bool have_self, have_peer, have_plan;
	struct rp_natinfo self;          /* as probed first (the report's "self") */
	struct rp_punch_meeting meet;    /* meet.peer: as met (the report's "peer") */
	struct rp_natinfo self_now, peer_now;   /* the latest round's (re-probed after a miss) */
	struct rp_plan plan;             /* round 0's plan (the report's "plan") */
	struct rp_plan plan_now;         /* the latest plan made (a failed re-plan included) */
	unsigned n_rounds;
	struct rp_punch_round_record rounds[RP_PUNCH_MAX_ROUNDS];
	struct rp_punch_totals totals;   /* at the end of PUNCH */
	uint32_t laddr, raddr;           /* the connection (HANDOFF) */
	uint16_t lport, rport;
	struct rp_handoff_result handoff;
	int fd;                          /* >= 0: the kernel socket, the caller's to close; else -1 */
};

enum rp_punch_event_kind {
	RP_PUNCH_EV_STAGE_BEGIN,
	RP_PUNCH_EV_STAGE_END,           /* error: 0 or the stage's -errno; its results are in result */
	RP_PUNCH_EV_TEXT,                /* serverless: text for the other side (the offer, or the answer) */
	RP_PUNCH_EV_ROUND,               /* round `round` ended: result->rounds[round] */
	RP_PUNCH_EV_REPLAN,              /* after a miss: re-probed (self_now) and re-planned (plan_now) for `round` */
	RP_PUNCH_EV_PROGRESS,            /* progress of the running round, ~every 100 ms */
	RP_PUNCH_EV_TRACE,               /* text: one per-packet event (opts.trace) */
};

struct rp_punch_event {
	enum rp_punch_event_kind kind;
	enum rp_punch_stage stage;
	int error;
	unsigned round;
	const char *text;
	const struct rp_punch_progress *progress;
	const struct rp_punch_result *result;   /* everything so far */
};

typedef void (*rp_punch_event_fn)(const struct rp_punch_event *ev, void *arg);

/* Run the pipeline. res is reset first. 0: connected, res->fd is the kernel socket; else the failed
 * stage's -errno with res->stage and res->why (-ENOTSUP for a refused plan, -EINVAL for bad opts). */
int rp_punch_run(const struct rp_punch_run_opts *o, rp_punch_event_fn cb, void *cb_arg, struct rp_punch_result *res);

/* The stages the pipeline sequences. st is the ops' own state. Each returns 0 or -errno and, where it
 * has one, writes a one-line why on failure. */
struct rp_punch_ops {
	/* CONNECT: the rendezvous connection; *rtt_ms: how long connecting took */
	int (*connect)(void *st, double *rtt_ms, char *why, size_t wlen);
	/* a free local port (for the punch port, and the re-probe after a miss) */
	int (*free_port)(void *st, uint16_t *port);
	/* PROBE from port; first: the full probe (filtering with filter_ms, nat_ttl), else a re-probe */
	int (*probe)(void *st, uint16_t port, bool first, int filter_ms, struct rp_natinfo *ni, char *why, size_t wlen);
	/* JOIN with this side's natinfo */
	int (*join)(void *st, const struct rp_natinfo *self, struct rp_punch_meeting *m, char *why, size_t wlen);
	/* OFFER: text for the other side goes to say(); *self may come back changed (the codec's view) */
	int (*serverless)(void *st, struct rp_natinfo *self, struct rp_punch_meeting *m,
			  void (*say)(void *arg, const char *text), void *say_arg, char *why, size_t wlen);
	/* SETUP towards the peer's public address; trace gets per-packet lines (may be NULL) */
	int (*open)(void *st, uint32_t peer_pub, void (*trace)(void *arg, const char *line), void *trace_arg,
		    char *detail, size_t dlen);
	/* one round (rp_punch_round) */
	int (*round)(void *st, const struct rp_punch_round_opts *ro, struct rp_punch_round_stats *rs);
	/* tell the peer (no-op without a channel): "miss" (round, why), "abort", "done" (round < 0: no body) */
	void (*tell)(void *st, const char *type, int round, const char *why);
	/* after a miss: send our re-probed natinfo for `round`, receive the peer's */
	int (*exchange)(void *st, unsigned round, const struct rp_natinfo *self, struct rp_natinfo *peer);
	/* agree on T of `round` (side a proposes, side b accepts) */
	int (*schedule)(void *st, unsigned round, uint64_t *start_ns);
	void (*totals)(void *st, struct rp_punch_totals *t);
	/* HANDOFF: fills res's connection and handoff figures; the socket fd or -errno */
	int (*handoff)(void *st, struct rp_punch_result *res);
	/* release everything (called once, at the end of every run) */
	void (*close)(void *st);
};

int rp_punch_run_ops(const struct rp_punch_run_opts *o, const struct rp_punch_ops *ops, void *st, rp_punch_event_fn cb,
		     void *cb_arg, struct rp_punch_result *res);

#endif
