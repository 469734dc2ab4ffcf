/* SPDX-License-Identifier: MIT */
/* The punch pipeline as one call: rp_punch_run() goes from a session name and a secret to a kernel
 * socket connected to the peer through both NATs, stage by stage (each stage's failure is the
 * report's "stage"):
 *
 *   CONNECT   the rendezvous server connection, first: its NAT mapping is taken  "rendezvous"
 *             before the probe's samples (so the prediction is not off by one flow),
 *             and its RTT sizes the filter probe. Serverless: skipped.
 *   PROBE     this side's NAT, from the punch port (rawpunch/probe/probe.h)       "probe"
 *   PORTMAP   beside the probe (a thread started with it): ask the NAT to map the "portmap"
 *             punch port (PCP, NAT-PMP, UPnP-IGD; rawpunch/punch/pmhold.h); the
 *             stage waits for the answer after the probe. A granted mapping makes
 *             this side easy (its natinfo seen through the mapping, pm_* fields)
 *             and is refreshed until the run ends, then deleted; a refusal or
 *             silence only leaves pm_error. Never fails the run. Skipped when
 *             serverless (the offer codec carries no mapping) or no_portmap.
 *   JOIN      the session at the server: sealed natinfo exchange, roles, clock    "rendezvous"
 *             offset and RTTs, the start instant T (rawpunch/rendezvous/client.h).
 *             With a server it runs beside PROBE (a thread from the probe's start):
 *             the clock samples, the pairing and the hellos go on while the probe
 *             runs, the natinfo goes out the moment the probe (and PORTMAP, RELAY's
 *             allocation) has it, and a failed probe ends the join at once (the
 *             run fails in PROBE). Serverless: after PROBE, as the offer needs it.
 *   OFFER     serverless instead of JOIN: print an offer and read the answer, or  "offer"
 *             answer an offer (rawpunch/rendezvous/offer.h)
 *   PLAN      both sides make the same plan from the same natinfos               "plan"
 *             (rawpunch/strategy/strategy.h); a refusal ends here
 *   SETUP     the punch context: route, raw socket, RST guard, capture (punch.h)  "setup"
 *   PUNCH     round after round at T (rp_punch_round); after a miss: tell the     "punch"
 *             peer, re-probe from a fresh port, exchange natinfos, agree on the
 *             next T, re-plan (wider). Serverless: one round (no channel to agree)
 *             A run that fails after the meeting (any stage, an interruption too)
 *             tells the peer why in a sealed "abort" before it ends; the peer's
 *             abort ends a round or a wait of this side at once (peer_why).
 *   HANDOFF   the connection to a kernel socket (TCP_REPAIR, else connect())      "handoff"
 *   RELAY     with TURN servers (opts.relay): a TCP allocation is made before JOIN  "relay"
 *             and its relayed address goes into the sealed exchange. When no plan
 *             applies or every round failed, the session goes on through the relay
 *             (side a Connects to the peer's relayed address, side b accepts and
 *             binds): res.path RP_PATH_RELAY, res.fd the relayed stream (framed by
 *             rawpunch/handoff/switch.h), res.turn the allocation (kept alive).
 *             relay_first: RELAY runs from JOIN on beside the punch, in its own thread
 *             (the punch keeps its T); the relayed stream goes to the callback the
 *             moment it is up (RP_PUNCH_EV_RELAY_UP, called from that thread); when
 *             the punch connects, res.fd is the direct socket (RP_PATH_RELAY_DIRECT)
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
#include <stdio.h>
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
	RP_STAGE_RELAY,
	RP_STAGE_PORTMAP,         /* runs beside PROBE, ends after it (numbered last: stage numbers are stable) */
	RP_STAGE_DONE,            /* not a stage: where a run that connected ends */
};
#define RP_STAGE_N RP_STAGE_DONE

/* The report's name of a stage: "rendezvous" (CONNECT, JOIN), "probe", "portmap", "offer", "plan", "setup",
 * "punch", "handoff", "relay", "done". */
const char *rp_punch_stage_str(enum rp_punch_stage s);

struct rp_offer;
struct rp_turn;
struct rp_turn_cred;

enum rp_punch_path {
	RP_PATH_NONE = 0,
	RP_PATH_DIRECT,                  /* punched, handed off */
	RP_PATH_RELAY,                   /* through the TURN relay */
	RP_PATH_RELAY_DIRECT,            /* relay first, the punch connected later: move to it */
};
/* "none", "direct", "relay", "relay->direct" */
const char *rp_punch_path_str(enum rp_punch_path p);

#define RP_PUNCH_MAX_RV 8               /* rendezvous servers (RV_MAX_SERVERS) */
#define RP_PUNCH_MAX_RELAYS 8

struct rv_keys;

struct rp_punch_run_opts {
	struct sockaddr_in rendezvous;   /* the server (unless serverless) */
	const struct sockaddr_in *rendezvous_list; /* n_rendezvous > 1: several servers (rendezvous unused): */
	unsigned n_rendezvous;           /* both meet at the first both reach (rv_join_any) */
	const struct sockaddr_in *relay; /* TURN servers (TCP), tried in order for the allocation; n_relay 0: none */
	unsigned n_relay;
	const struct rp_turn_cred *relay_cred;
	bool relay_first;                /* the data starts over the relay, the punch goes on behind it */
	struct sockaddr_in stun;         /* STUN server (TCP) */
	const char *session;             /* 1..255 bytes */
	const uint8_t *secret;
	size_t secret_len;
	const uint8_t *key;              /* RP_PUNCH_KEYLEN bytes: rp_punch_key_derive(secret, session) */
	const struct rv_keys *rv_keys;   /* optional: rv_keys_derive(secret, session), derived by the caller
	                                    (beside its pre-flight): the run does not stretch the secret again */
	int rendezvous_fd;               /* have_rendezvous_fd: a connection to `rendezvous` already up (the
	                                    pre-flight's, rp_preflight_check), which CONNECT adopts: no */
	bool have_rendezvous_fd;         /* second handshake; the run owns it (closes it, whatever happens) */
	double rendezvous_rtt_ms;        /* its handshake's time (the filter probe's timeout is sized by it) */
	uint16_t local_port;             /* the punch port; 0: a free one */
	unsigned samples;                /* the probe's allocation samples */
	bool fresh_probe;                /* ignore the probe cache (probecache.h); a full probe refreshes it */
	struct rp_plan_params plan;      /* rate, rounds, max_open, max_probes; rtt and clock error come from JOIN */
	int join_timeout_ms;             /* wait for the peer at the server */
	uint32_t lead_ms;                /* from the meeting (and from each re-plan) to T; 0: from what is
	                                    measured (the RTTs to the server, both clock errors and a set-up
	                                    allowance: rv_lead_auto_ns) */
	FILE *pcap_file;                 /* every packet of the punch, to this stream (opened by the caller
	                                    before it gave up its privileges); the run takes it over and
	                                    closes it (at once if it never gets to the punch), or, after a
	                                    handoff, hands it out still writing: result.dump. NULL: none */
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
	bool no_portmap;                 /* skip PORTMAP */
	unsigned portmap_protocols;      /* RP_PM_F set (rawpunch/portmap/portmap.h); 0: all */
};

/* What the meeting (JOIN or OFFER) settled. */
struct rp_punch_meeting {
	struct rp_natinfo peer;
	int me;                          /* 0: this side is plan side a (initiator, offerer), 1: side b */
	uint64_t start_ns;               /* T of round 0, this host's CLOCK_REALTIME */
	bool via_server;                 /* the figures below were measured (JOIN) */
	int64_t rtt_ns, peer_rtt_ns, relay_rtt_ns, clock_err_ns, offset_ns;   /* rawpunch/rendezvous/client.h */
	int64_t clock_bound_ns;          /* the hard bound on the clock disagreement, (rtt + peer_rtt) / 2 */
	struct sockaddr_in self_relayed, peer_relayed;   /* TURN relayed addresses (0: none) */
	struct sockaddr_in rv_server;    /* the rendezvous server met at */
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
	char peer_why[RP_PUNCH_WHY_LEN]; /* the run ended because the peer gave up: its reason (printable
	                                    text, "no reason given" from an older peer); else empty */
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
	struct rp_capdump *dump;         /* pcap_file and a handoff: the capture going on with the data, on the
	                                    connection's 4-tuple; the caller's to stop (rp_capdump_stop,
	                                    whatever the run returned) */
	int dump_error;                  /* why there is none (rp_punch_keep_dump): the file holds the punch only */
	/* RELAY */
	enum rp_punch_path path;
	char relay_why[RP_PUNCH_WHY_LEN];/* why the relay carries the session (the failure it replaced), or
	                                    why no relay was there to fall back to */
	struct sockaddr_in relay_server; /* the TURN server of our allocation */
	double t_relay_ms;               /* from the start to the relayed stream; < 0: not reached */
	struct rp_turn *turn;            /* RP_PATH_RELAY(_DIRECT): the allocation, kept alive by its keeper;
	                                    the caller's: rp_turn_keeper_stop, rp_turn_release, rp_turn_close */
};

enum rp_punch_event_kind {
	RP_PUNCH_EV_STAGE_BEGIN,
	RP_PUNCH_EV_STAGE_END,           /* error: 0 or the stage's -errno; its results are in result */
	RP_PUNCH_EV_TEXT,                /* serverless: text for the other side (the offer, or the answer) */
	RP_PUNCH_EV_ROUND,               /* round `round` ended: result->rounds[round] */
	RP_PUNCH_EV_REPLAN,              /* after a miss: re-probed (self_now) and re-planned (plan_now) for `round` */
	RP_PUNCH_EV_PROGRESS,            /* progress of the running round, ~every 100 ms */
	RP_PUNCH_EV_TRACE,               /* text: one per-packet event (opts.trace) */
	RP_PUNCH_EV_RELAY_UP,            /* relay_first: fd is the relayed stream, the callback's from now on */
};

struct rp_punch_event {
	enum rp_punch_event_kind kind;
	enum rp_punch_stage stage;
	int error;
	unsigned round;
	const char *text;
	const struct rp_punch_progress *progress;
	const struct rp_punch_result *result;   /* everything so far */
	int fd;                          /* RP_PUNCH_EV_RELAY_UP */
};

typedef void (*rp_punch_event_fn)(const struct rp_punch_event *ev, void *arg);

/* Run the pipeline. res is reset first. 0: connected, res->fd is the kernel socket; else the failed
 * stage's -errno with res->stage and res->why (-ENOTSUP for a refused plan, -EINVAL for bad opts). */
int rp_punch_run(const struct rp_punch_run_opts *o, rp_punch_event_fn cb, void *cb_arg, struct rp_punch_result *res);

/* JOIN beside PROBE: the join starts (clock samples, pairing, hellos) while the probe runs, and asks
 * for this side's natinfo right before it sends it. */
struct rp_punch_ready {
	/* waits for the probe (then PORTMAP's answer and the TURN allocation) and fills *self: 0, or the
	 * probe's -errno (the join ends with it); may be called again (the same answer at once) */
	int (*wait)(void *arg, struct rp_natinfo *self);
	void *arg;
	/* set once the probe failed: the join's waits end with -ECANCELED (rv_set_cancel) */
	volatile sig_atomic_t *cancel;
};

/* The stages the pipeline sequences. st is the ops' own state. Each returns 0 or -errno and, where it
 * has one, writes a one-line why on failure. */
struct rp_punch_ops {
	/* CONNECT: the rendezvous connection; *rtt_ms: how long connecting took */
	int (*connect)(void *st, double *rtt_ms, char *why, size_t wlen);
	/* a free local port (for the punch port, and the re-probe after a miss) */
	int (*free_port)(void *st, uint16_t *port);
	/* PROBE from port; first: the full probe (filtering with filter_ms, nat_ttl), else a re-probe */
	int (*probe)(void *st, uint16_t port, bool first, int filter_ms, struct rp_natinfo *ni, char *why, size_t wlen);
	/* PORTMAP: begin asking the NAT to map the punch port (in the background; NULL op: no port
	 * mapping), then, after the probe, wait for the answer and fill ni's pm_* fields (a granted
	 * mapping is kept until close). begin's error only means no asking. */
	int (*portmap_begin)(void *st, uint16_t port);
	void (*portmap_end)(void *st, struct rp_natinfo *ni);
	/* JOIN with this side's natinfo: self, or, with ready (the probe still running beside the join),
	 * what ready->wait gives once the join needs it (rp_punch_ready) */
	int (*join)(void *st, const struct rp_natinfo *self, const struct rp_punch_ready *ready, struct rp_punch_meeting *m,
		    char *why, size_t wlen);
	/* OFFER: text for the other side goes to say(); *self may come back changed (the codec's view) */
	int (*serverless)(void *st, struct rp_natinfo *self, struct rp_punch_meeting *m,
			  void (*say)(void *arg, const char *text), void *say_arg, char *why, size_t wlen);
	/* optional: SETUP's slow part ahead of the meeting's end, once this side's natinfo is known (on the
	 * probe's thread): the punch context opened before the peer is known, waiting on lport; open then
	 * only aims it. Best effort: open does it all when this did not. */
	void (*prepare)(void *st, uint16_t lport, void (*trace)(void *arg, const char *line), void *trace_arg);
	/* SETUP towards the peer's public address; trace gets per-packet lines (may be NULL) */
	int (*open)(void *st, uint32_t peer_pub, void (*trace)(void *arg, const char *line), void *trace_arg,
		    char *detail, size_t dlen);
	/* one round (rp_punch_round) */
	int (*round)(void *st, const struct rp_punch_round_opts *ro, struct rp_punch_round_stats *rs);
	/* tell the peer (no-op without a channel): "miss" (round, why), "abort" (why: this side's reason;
	 * round 1: this side goes on to the relay, 0: it stops), "done" (round < 0: no round) */
	void (*tell)(void *st, const char *type, int round, const char *why);
	/* the peer's abort, once one came (during a round, or instead of a message waited for): its reason,
	 * and *relay: the peer goes on to the relay (an abort that does not say: it does); NULL when the
	 * peer has not given up (the op may be NULL) */
	const char *(*peer_why)(void *st, bool *relay);
	/* after a miss: send our re-probed natinfo for `round`, receive the peer's */
	int (*exchange)(void *st, unsigned round, const struct rp_natinfo *self, struct rp_natinfo *peer);
	/* agree on T of `round` (side a proposes, side b accepts) */
	int (*schedule)(void *st, unsigned round, uint64_t *start_ns);
	void (*totals)(void *st, struct rp_punch_totals *t);
	/* HANDOFF: fills res's connection and handoff figures; the socket fd or -errno */
	int (*handoff)(void *st, struct rp_punch_result *res);
	/* RELAY (may be NULL: no relay): allocate at a TURN server before JOIN (*relayed, *server) */
	int (*relay_alloc)(void *st, struct sockaddr_in *relayed, struct sockaddr_in *server, char *why, size_t wlen);
	/* RELAY: the relayed stream to the peer (side a Connects, side b accepts); *turn: the allocation,
	 * now the caller's (its keeper running). The fd or -errno. */
	int (*relay_connect)(void *st, const struct rp_punch_meeting *m, struct rp_turn **turn, char *why, size_t wlen);
	/* release everything (called once, at the end of every run) */
	void (*close)(void *st);
};

int rp_punch_run_ops(const struct rp_punch_run_opts *o, const struct rp_punch_ops *ops, void *st, rp_punch_event_fn cb,
		     void *cb_arg, struct rp_punch_result *res);

#endif
