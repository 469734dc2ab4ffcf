/* SPDX-License-Identifier: MIT */
/* The punch pipeline's stages over the network (pipeline.h's rp_punch_ops) and rp_punch_run, which
 * sequences them: the rendezvous client (connect, join, the messages between rounds), the probe,
 * the serverless offer/answer exchange, and the punch context (punch.h). */
#include "rawpunch/punch/pipeline.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/punch/pmhold.h"
#include "rawpunch/probe/probe.h"
#include "rawpunch/probe/stun.h"
#include "rawpunch/punch/probecache.h"
#include "rawpunch/rendezvous/client.h"
#include "rawpunch/rendezvous/offer.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/relay/turn.h"

#define MSG_WAIT_MS 15000          /* the peer's "next" / "go" after a miss */
#define OFFER_MAX_AGE_S 600        /* an offer (and its answer) is good for 10 minutes */
#define RELAY_TIMEOUT_MS 3000      /* each TURN request; the accepting side waits 4x that for the attempt */
#define HELD_MAX 8                 /* the peer's messages read during a round, kept for the waits after it */
#define WATCH_SLICE_MS 10          /* how often the round's watcher looks at its end (the most a round
                                      that ends waits for it) */

struct net {
	int hold_fd;                   /* a socket bound to the punch port: no connect() of ours or of
	                                  anyone on this host is given that port meanwhile (autobind skips
	                                  bound ports), e.g. the TURN or portmap connections; -1 none */
	uint16_t held_port;
	uint8_t run_key[RP_PUNCH_KEYLEN];   /* the punch key mixed with this run's nonce (JOIN) */
	bool have_run_key;
	const struct rp_punch_run_opts *o;
	struct rv_client *rv;
	int rv_pre;                    /* the caller's connection to the server, until CONNECT adopts it; -1 */
	struct rp_punch *pu;
	struct rp_probe_report *pr;    /* large: allocated by the first probe */
	FILE *pcap_file;               /* the run's dump stream until rp_punch_open takes it over */
	int me;
	int64_t offset_ns, relay_rtt_ns, rtt_ns, peer_rtt_ns, clock_err_ns;
	struct sockaddr_in rv_addr;    /* the rendezvous server connected to */
	struct rv_keys keys;           /* several servers: their order for this session */
	unsigned which;                /* several servers: the one connected to (index) */
	struct rp_turn *turn;          /* the TURN allocation (RELAY) */
	struct sockaddr_in relayed;
	struct rp_pmhold *pm;          /* PORTMAP: the asking, then the kept mapping */
	/* during a round a thread reads the rendezvous (the round does not): the peer's abort halts the
	 * round at once; anything else it reads is held for wait_msg, in order */
	pthread_t watcher;
	bool watching;
	atomic_bool watch_end;
	volatile sig_atomic_t peer_quit;   /* the peer's abort came (peer_why holds its reason) */
	bool peer_relay;                   /* ... and said it goes on to the relay */
	char peer_why[RP_PUNCH_WHY_LEN];
	struct { struct json_object *o; const char *t; } held[HELD_MAX];
	unsigned n_held, held_off;
	int held_err;                  /* what ended the watcher's reading (-EPIPE: the peer left), 0 none */
};

static double ms_since(uint64_t t)
{
	return (double)(rp_mono_ns() - t) / 1e6;
}

/* A kept connection the server has not closed: nothing to read yet (the server speaks only when
 * asked), no EOF, no error. */
static bool pre_alive(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int net_connect(void *arg, double *rtt_ms, char *why, size_t wlen)
{
	struct net *n = arg;
	char a[INET_ADDRSTRLEN];
	uint64_t t = rp_mono_ns();
	const struct rp_punch_run_opts *o = n->o;
	int r;
	n->rv_addr = o->rendezvous;
	if (n->rv_pre >= 0 && !pre_alive(n->rv_pre)) {
		close(n->rv_pre);   /* the server closed it meanwhile (or it failed): connect anew */
		n->rv_pre = -1;
	}
	if (n->rv_pre >= 0) {
		/* the pre-flight's connection: up already, its handshake measured the RTT */
		r = rv_client_from_fd(n->rv_pre, (int64_t)(o->rendezvous_rtt_ms * 1e6), &n->rv);
		n->rv_pre = -1;
		if (!r) {
			rv_set_stop(n->rv, n->o->stop);
			*rtt_ms = o->rendezvous_rtt_ms;
			return 0;
		}
	} else if (o->n_rendezvous > 1) {
		/* several: the first in the session's order that answers (a dead one costs a second) */
		r = o->rv_keys ? (n->keys = *o->rv_keys, 0) : rv_keys_derive(o->secret, o->secret_len, o->session, &n->keys);
		if (!r)
			r = rv_connect_first(o->rendezvous_list, o->n_rendezvous, &n->keys, RV_CONNECT_MS, o->stop, &n->rv,
					     &n->which);
		if (r) {
			snprintf(why, wlen, "rendezvous: none of the %u servers answered: %s", o->n_rendezvous, strerror(-r));
			return r;
		}
		n->rv_addr = o->rendezvous_list[n->which];
		t = rp_mono_ns();   /* the RTT of the one that answered, for the filter probe */
		rv_close(n->rv);
		n->rv = NULL;
		r = rv_connect(&n->rv_addr, RV_CONNECT_MS, &n->rv);
	} else {
		r = rv_connect_hedged(&o->rendezvous, 5000, RV_CONNECT_HEDGE_MS, &n->rv);
	}
	if (r) {
		snprintf(why, wlen, "rendezvous %s:%u: %s", rp_ip_str(n->rv_addr.sin_addr.s_addr, a),
			 ntohs(n->rv_addr.sin_port), strerror(-r));
		return r;
	}
	rv_set_stop(n->rv, n->o->stop);   /* Ctrl-C ends a join or a wait for the peer at once */
	*rtt_ms = ms_since(t);
	return 0;
}

/* Keep port bound while the run needs it (rp_port_hold: the STUN client's connections and the handoff
 * bind it beside the hold, all with SO_REUSEADDR, none listening): best effort. */
static void hold_port(struct net *n, uint16_t port)
{
	if (n->held_port == port && n->hold_fd >= 0)
		return;
	if (n->hold_fd >= 0)
		close(n->hold_fd);
	n->hold_fd = rp_port_hold(0, port);   /* -errno: no hold */
	n->held_port = port;
}

static int net_free_port(void *arg, uint16_t *port)
{
	struct net *n = arg;
	int r = rp_free_port(0, port);
	if (!r)
		hold_port(n, *port);
	return r;
}

static int probe_once(struct net *n, uint16_t port, bool first, int filter_ms, struct rp_natinfo *ni, char *why,
		      size_t wlen)
{
	const struct rp_punch_run_opts *o = n->o;
	char a[INET_ADDRSTRLEN];
	bool server = !o->offer && !o->answer_to && n->rv_addr.sin_addr.s_addr != 0;
	hold_port(n, port);             /* a --local-port too */
	struct rp_probe_opts po = {
		.stun = o->stun,
		.local_port = port,
		.samples = o->samples,
		.interval_ms = 10,
		/* one lost SYN costs the kernel's 1 s retransmission: leave room for it and a lost reply */
		.timeout_ms = 3500,
		.filter_probe = first && server ? rv_filter_probe_cb : NULL,
		.filter_probe_arg = (void *)&n->rv_addr,
		.filter_timeout_ms = filter_ms ? filter_ms : 400,
		/* nat_ttl confirmed by the server's connect-back where the public port is known (probe.h) */
		.connect_back = first && server ? rv_connect_back_cb : NULL,
		.connect_back_arg = (void *)&n->rv_addr,
		.connect_back_addr = n->rv_addr.sin_addr.s_addr,
		/* far enough to reach the server behind a carrier NAT (its server_hops tells the planner) */
		.ttl_max = first ? 8 : 0,
		.ttl_wait_ms = 0,
		.horizon_s = 1.0,
	};
	/* a first probe from a network probed minutes ago: one binding checks the cached result */
	if (first && !o->fresh_probe && rp_probecache_get(&o->stun, port, po.timeout_ms, ni) == 0)
		return 0;
	if (!n->pr && !(n->pr = malloc(sizeof(*n->pr))))
		return -ENOMEM;
	int r = rp_probe_run(&po, n->pr);
	if (r) {
		snprintf(why, wlen, "probe from port %u via STUN %s:%u failed: %s", port,
			 rp_ip_str(o->stun.sin_addr.s_addr, a), ntohs(o->stun.sin_port), strerror(-r));
		return r;
	}
	*ni = n->pr->ni;
	if (first && server)
		(void)rp_probecache_put(&o->stun, ni);   /* only what a later check can confirm is kept */
	return 0;
}

static int net_probe(void *arg, uint16_t port, bool first, int filter_ms, struct rp_natinfo *ni, char *why, size_t wlen)
{
	int r = probe_once(arg, port, first, filter_ms, ni, why, wlen);
	if (first)
		rp_stun_preconnected_drop();   /* the pre-flight's STUN connection, if the probe did not take it */
	return r;
}

static int net_portmap_begin(void *arg, uint16_t port)
{
	struct net *n = arg;
	struct rp_portmap_opts po = {
		.protocols = n->o->portmap_protocols, .ipproto = IPPROTO_TCP, .internal_port = port,
		.lifetime_s = RP_PMHOLD_LIFETIME,
	};
	return rp_pmhold_start(&po, &n->pm);
}

static void net_portmap_end(void *arg, struct rp_natinfo *ni)
{
	struct net *n = arg;
	/* The probe is done. A hard side waits for a late SSDP answer (an IGD may hold it up to a second,
	 * and a mapping is what makes such a side easy); any other only RP_PMHOLD_GRACE_MS more, as the
	 * probe command does: a gateway whose ICMP rate limit swallowed its refusal of the unicast
	 * M-SEARCH cost every punch 1.1 s. */
	if (rp_side_classify(ni) != RP_SIDE_HARD)
		rp_pmhold_give_up_in(n->pm, RP_PMHOLD_GRACE_MS);
	rp_pmhold_wait(n->pm);
	rp_pmhold_fill(n->pm, ni);
	if (ni->pm_port && rp_pmhold_keep(n->pm)) {
		/* it cannot be kept alive for the punch: do not announce it */
		rp_pmhold_release(n->pm, 1000);
		n->pm = NULL;
		ni->pm_port = 0;
		ni->pm_proto[0] = 0;
		snprintf(ni->pm_error, sizeof(ni->pm_error), "granted, but no thread to keep it refreshed");
	}
}

/* rv_join_req.ready: the pipeline's natinfo (the probe beside the join), and the TURN relayed address
 * its wait allocated */
struct net_ready {
	struct net *n;
	const struct rp_punch_ready *rd;
};

static int net_ready(void *arg, struct rp_natinfo *me, struct sockaddr_in *relayed)
{
	struct net_ready *nr = arg;
	int r = nr->rd->wait(nr->rd->arg, me);
	if (!r && nr->n->turn)
		*relayed = nr->n->relayed;
	return r;
}

static int net_join(void *arg, const struct rp_natinfo *self, const struct rp_punch_ready *rd, struct rp_punch_meeting *m,
		    char *why, size_t wlen)
{
	struct net *n = arg;
	const struct rp_punch_run_opts *o = n->o;
	struct net_ready nr = { .n = n, .rd = rd };
	struct rv_join_req req = {
		.session = o->session, .secret = o->secret, .secret_len = o->secret_len, .me = *self,
		.timeout_ms = o->join_timeout_ms, .clock_rounds = 4, .lead_ms = o->lead_ms, .lead_auto = !o->lead_ms,
		/* the set-up allowance: the context is opened early (prepare) unless a dump must begin at
		 * SETUP, which then opens the capture there (~13 ms quiet, up to ~80 loaded) */
		.setup_ms = n->pcap_file ? RV_SETUP_SLOW_MS : 0,
		.ready = rd ? net_ready : NULL, .ready_arg = &nr,
	};
	struct rv_join_res res;
	int r;
	if (n->turn)
		req.relayed = n->relayed;
	if (rd)
		rv_set_cancel(n->rv, rd->cancel);   /* a failed probe ends the wait for the peer */
	memset(&res, 0, sizeof(res));
	if (o->n_rendezvous > 1) {
		/* the client from CONNECT is where the order starts; a server dying meanwhile moves both on */
		r = rv_join_any(o->rendezvous_list, o->n_rendezvous, &n->keys, &req, o->stop, &n->rv, &n->which, &res);
		if (!r) {
			n->rv_addr = o->rendezvous_list[n->which];
			rv_set_stop(n->rv, o->stop);
		}
	} else if (o->rv_keys) {
		r = rv_join_keys(n->rv, o->rv_keys, &req, &res);   /* the caller stretched the secret */
	} else {
		r = rv_join(n->rv, &req, &res);
	}
	rv_set_cancel(n->rv, NULL);
	if (r == -EACCES)
		snprintf(why, wlen, "rendezvous: the peer's messages do not authenticate (different secret, or a forger)");
	else if (r == -ETIMEDOUT)
		snprintf(why, wlen, "rendezvous: no peer joined session '%s' within %d s", o->session,
			 o->join_timeout_ms / 1000);
	else if (r == -EBUSY)
		snprintf(why, wlen, "rendezvous: session '%s' is full (%d connections already wait under its id) or the server is busy",
			 o->session, RV_MEMBERS_MAX);
	else if (r)
		snprintf(why, wlen, "rendezvous: join failed: %s", strerror(-r));
	if (r)
		return r;
	memset(m, 0, sizeof(*m));
	m->peer = res.peer;
	m->me = n->me = res.initiator ? 0 : 1;
	m->start_ns = res.start_ns;
	m->via_server = true;
	m->rtt_ns = res.rtt_ns;
	m->peer_rtt_ns = res.peer_rtt_ns;
	m->relay_rtt_ns = n->relay_rtt_ns = res.relay_rtt_ns;
	m->clock_err_ns = res.clock_err_ns;
	m->clock_bound_ns = res.clock_bound_ns;
	/* punch ISNs new every run: the same secret, session and addresses no longer repeat them */
	rp_punch_key_mix(n->o->key, res.run_nonce, sizeof(res.run_nonce), n->run_key);
	n->have_run_key = true;
	m->offset_ns = n->offset_ns = res.offset_ns;
	m->rv_server = n->rv_addr;
	if (n->turn) {
		m->self_relayed = n->relayed;
		m->peer_relayed = res.peer_relayed;
		/* the permission (an attempt that finds none is refused by the server), unless the allocation
		 * made it already: a peer at the same TURN server has a relayed address on our relay IP */
		if (res.peer_relayed.sin_addr.s_addr && res.peer_relayed.sin_addr.s_addr != n->relayed.sin_addr.s_addr &&
		    rp_turn_permit(n->turn, &res.peer_relayed))
			memset(&m->peer_relayed, 0, sizeof(m->peer_relayed));
	}
	m->lead_ns = res.lead_ns;
	m->clock_sync_ns = res.clock_sync_ns;
	m->met_ns = rp_real_ns();
	n->rtt_ns = res.rtt_ns;
	n->peer_rtt_ns = res.peer_rtt_ns;
	n->clock_err_ns = res.clock_err_ns;
	return 0;
}

static int net_relay_alloc(void *arg, struct sockaddr_in *relayed, struct sockaddr_in *server, char *why, size_t wlen)
{
	struct net *n = arg;
	const struct rp_punch_run_opts *o = n->o;
	char a[INET_ADDRSTRLEN];
	int r = -EINVAL;
	if (!o->relay_cred)
		return snprintf(why, wlen, "no TURN credentials"), -EINVAL;
	for (unsigned i = 0; i < o->n_relay; i++) {
		struct rp_turn_cfg cfg = { .server = o->relay[i], .cred = o->relay_cred, .timeout_ms = RELAY_TIMEOUT_MS,
					   .software = "rawpunch" };
		struct rp_turn_info info;
		struct rp_turn *t;
		if ((r = rp_turn_new(&cfg, &t)))
			break;
		if ((r = rp_turn_allocate(t))) {
			snprintf(why, wlen, "TURN %s:%u: allocation failed: %s", rp_ip_str(o->relay[i].sin_addr.s_addr, a),
				 ntohs(o->relay[i].sin_port), strerror(-r));
			rp_turn_close(t);
			continue;
		}
		rp_turn_get_info(t, &info);
		/* A peer that allocates at the same server gets a relayed address on the same relay IP, and a
		 * permission is for an IP: made now, before the meeting, it is in place whenever the peer
		 * Connects. Made only after the meeting it raced the peer's Connect (relay first: right
		 * after the meeting): side a's Connect was refused (447) and tried again, and once in the
		 * lab side a's Connect and ConnectionBind succeeded while side b never got the
		 * ConnectionAttempt (it gave up after 12 s, and a's relayed stream broke then: "relay:
		 * Broken pipe"). Not fatal: a peer elsewhere is permitted after the meeting. */
		(void)rp_turn_permit(t, &info.relayed);
		n->turn = t;
		n->relayed = *relayed = info.relayed;
		*server = o->relay[i];
		return 0;
	}
	return r;
}

static int net_relay_connect(void *arg, const struct rp_punch_meeting *m, struct rp_turn **turn, char *why, size_t wlen)
{
	struct net *n = arg;
	char a[INET_ADDRSTRLEN];
	uint32_t id = 0;
	int r = -ENOTCONN, fd = -1;
	if (!n->turn)
		return snprintf(why, wlen, "no TURN allocation"), -ENOTCONN;
	(void)rp_turn_predial(n->turn);   /* the ConnectionBind's connection, beside what comes first */
	if (m->me == 0) {
		/* side a connects; the peer's permission may be a moment behind ours (both ask for it at the
		 * end of the meeting): again every 25 ms, for 2 s */
		uint64_t end = rp_mono_ns() + 2000ull * 1000000ull;
		for (;;) {
			r = rp_turn_connect(n->turn, &m->peer_relayed, &id);
			if (r != -ECONNREFUSED || (n->o->stop && *n->o->stop) || rp_mono_ns() >= end)
				break;
			struct timespec ts = { 0, 25 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (r)
			return snprintf(why, wlen, "TURN Connect to the peer's %s:%u: %s", rp_ip_str(m->peer_relayed.sin_addr.s_addr, a),
					ntohs(m->peer_relayed.sin_port), strerror(-r)), r;
	} else {
		/* side b accepts the attempt from the peer's relayed address only */
		uint64_t end = rp_mono_ns() + 4ull * RELAY_TIMEOUT_MS * 1000000ull;
		for (;;) {
			struct sockaddr_in from;
			uint64_t now = rp_mono_ns();
			r = now >= end ? -ETIMEDOUT : rp_turn_wait_attempt(n->turn, (int)((end - now) / 1000000u) + 1, &id, &from);
			if (r || (from.sin_addr.s_addr == m->peer_relayed.sin_addr.s_addr && from.sin_port == m->peer_relayed.sin_port))
				break;
		}
		if (r)
			return snprintf(why, wlen, "waiting for the peer's connection through TURN: %s", strerror(-r)), r;
	}
	if ((r = rp_turn_bind(n->turn, id, &fd)))
		return snprintf(why, wlen, "TURN ConnectionBind: %s", strerror(-r)), r;
	if ((r = rp_turn_keeper_start(n->turn))) {
		close(fd);
		return snprintf(why, wlen, "TURN keeper: %s", strerror(-r)), r;
	}
	*turn = n->turn;
	n->turn = NULL;
	return fd;
}

/* Exchange natinfo through pasted texts. The offerer is plan side a. Our own natinfo goes through the
 * codec too, so both plans are made from exactly the same (possibly truncated) fields. */
static int net_serverless(void *arg, struct rp_natinfo *self, struct rp_punch_meeting *m,
			  void (*say)(void *arg, const char *text), void *say_arg, char *why, size_t wlen)
{
	struct net *n = arg;
	const struct rp_punch_run_opts *o = n->o;
	const uint8_t *secret = o->secret;
	size_t slen = o->secret_len;
	struct rp_offer of, ans, mine;
	char text[RP_OFFER_TEXT_MAX + 8], in[2048];
	uint64_t now = rp_real_ns();
	int r;
	memset(m, 0, sizeof(*m));
	if (o->offer) {
		rp_offer_init(&of, RP_OFFER, now);
		of.ni = *self;
		of.start_ns = now + (uint64_t)OFFER_MAX_AGE_S * 1000000000ull;   /* answer within 10 minutes */
		r = rp_offer_encode(&of, secret, slen, text, sizeof(text));
		if (r < 0)
			return snprintf(why, wlen, "encoding the offer: %s", strerror(-r)), r;
		if ((r = rp_offer_decode(text, secret, slen, &mine)))
			return snprintf(why, wlen, "the offer does not decode: %s", rp_offer_strerror(r)), r;
		*self = mine.ni;
		say(say_arg, text);
		r = o->read_answer ? o->read_answer(o->read_arg, in, sizeof(in)) : -ENODATA;
		if (r < 0)
			return snprintf(why, wlen, "reading the answer from %s: %s", o->answer_source ? o->answer_source : "input",
					r == -ENODATA ? "end of input" : strerror(-r)), r;
		r = rp_offer_decode(in, secret, slen, &ans);
		if (!r && ans.kind != RP_ANSWER)
			r = -EINVAL;
		if (!r)
			r = rp_offer_match(&of, &ans);
		if (!r)
			r = rp_offer_fresh(&ans, rp_real_ns(), OFFER_MAX_AGE_S);
		if (r)
			return snprintf(why, wlen, "the answer: %s", rp_offer_strerror(r)), r;
		m->peer = ans.ni;
		m->me = 0;
		m->start_ns = ans.start_ns;
		m->met_ns = rp_real_ns();
		return 0;
	}
	if (!o->answer_to)
		return snprintf(why, wlen, "serverless: neither an offer to make nor one to answer"), -EINVAL;
	of = *o->answer_to;   /* decoded and checked before anything was sent */
	r = rp_offer_fresh(&of, now, OFFER_MAX_AGE_S);
	if (r)
		return snprintf(why, wlen, "the offer: %s", rp_offer_strerror(r)), r;
	rp_offer_init(&ans, RP_ANSWER, now);
	memcpy(ans.nonce, of.nonce, sizeof(ans.nonce));
	ans.ni = *self;
	ans.start_ns = now + (uint64_t)o->start_in_s * 1000000000ull;
	r = rp_offer_encode(&ans, secret, slen, text, sizeof(text));
	if (r < 0)
		return snprintf(why, wlen, "encoding the answer: %s", strerror(-r)), r;
	if ((r = rp_offer_decode(text, secret, slen, &mine)))
		return snprintf(why, wlen, "the answer does not decode: %s", rp_offer_strerror(r)), r;
	*self = mine.ni;
	say(say_arg, text);
	m->peer = of.ni;
	m->me = 1;
	m->start_ns = ans.start_ns;
	m->met_ns = rp_real_ns();
	return 0;
}

static void net_prepare(void *arg, uint16_t lport, void (*trace)(void *arg, const char *line), void *trace_arg)
{
	struct net *n = arg;
	if (n->pcap_file || n->pu)
		return;   /* a dump begins at SETUP, as it always did */
	/* the way out towards the STUN server (the join may move n->rv_addr meanwhile) */
	struct rp_punch_opts po = { .key = n->o->key, .stop = n->o->stop, .trace = trace, .trace_arg = trace_arg };
	if (rp_punch_open_early(&po, n->o->stun.sin_addr.s_addr, lport, &n->pu, NULL, 0))
		n->pu = NULL;
}

static int net_open(void *arg, uint32_t peer_pub, void (*trace)(void *arg, const char *line), void *trace_arg,
		    char *detail, size_t dlen)
{
	struct net *n = arg;
	const uint8_t *key = n->have_run_key ? n->run_key : n->o->key;   /* serverless: no nonce exchanged */
	if (n->pu) {
		/* opened early: aimed now, unless the peer's route leaves another way */
		if (rp_punch_aim(n->pu, peer_pub, key) == 0)
			return 0;
		rp_punch_close(n->pu);
		n->pu = NULL;
	}
	FILE *dump = n->pcap_file;
	n->pcap_file = NULL;           /* rp_punch_open owns it now, whatever happens */
	struct rp_punch_opts po = {
		.pcap_file = dump,
		.peer_addr = peer_pub,
		.key = key,
		.stop = n->o->stop,
		.trace = trace,
		.trace_arg = trace_arg,
	};
	return rp_punch_open(&po, &n->pu, detail, dlen);
}

/* The peer's abort: its reason kept as printable text (it comes from the peer, through the sealed
 * channel, and goes to a terminal); an abort without one (an older peer) says so. */
static void note_abort(struct net *n, struct json_object *o)
{
	struct json_object *w;
	const char *why = json_object_object_get_ex(o, "why", &w) && json_object_is_type(w, json_type_string) ?
			  json_object_get_string(w) : "";
	/* an older peer does not say: it went on to the relay whenever it could */
	n->peer_relay = !json_object_object_get_ex(o, "relay", &w) || json_object_get_boolean(w);
	size_t k = 0;
	for (; *why && k + 1 < sizeof(n->peer_why); why++)
		n->peer_why[k++] = (*why >= 0x20 && *why < 0x7f) ? *why : '?';
	n->peer_why[k] = 0;
	if (!k)
		snprintf(n->peer_why, sizeof(n->peer_why), "no reason given");
	n->peer_quit = 1;
}

static void *watch_thread(void *arg)
{
	struct net *n = arg;
	while (!atomic_load(&n->watch_end) && n->n_held < HELD_MAX) {
		struct json_object *o;
		const char *t;
		int r = rv_recv(n->rv, WATCH_SLICE_MS, &o, &t);
		if (r == -ETIMEDOUT)
			continue;
		if (r) {
			if (r != -EINTR)
				n->held_err = r;   /* e.g. -EPIPE: the next wait says the peer left, as before */
			break;
		}
		if (!strcmp(t, "abort")) {
			note_abort(n, o);
			json_object_put(o);
			break;
		}
		n->held[n->n_held].o = o;
		n->held[n->n_held++].t = t;
	}
	return NULL;
}

/* A round, with the rendezvous watched meanwhile (when there is one): the peer's abort halts it. */
static int net_round(void *arg, const struct rp_punch_round_opts *ro, struct rp_punch_round_stats *rs)
{
	struct net *n = arg;
	struct rp_punch_round_opts o = *ro;
	int r;
	if (n->peer_quit)
		return -ECONNABORTED;
	o.halt = &n->peer_quit;
	atomic_store(&n->watch_end, false);
	n->watching = n->rv && !n->held_err && pthread_create(&n->watcher, NULL, watch_thread, n) == 0;
	r = rp_punch_round(n->pu, &o, rs);
	if (n->watching) {
		atomic_store(&n->watch_end, true);
		pthread_join(n->watcher, NULL);
		n->watching = false;
	}
	if (r == -ECONNABORTED && n->peer_quit)
		snprintf(rs->why, sizeof(rs->why), "the peer gave up: %.200s", n->peer_why);
	return r;
}

static const char *net_peer_why(void *arg, bool *relay)
{
	struct net *n = arg;
	*relay = n->peer_relay;
	return n->peer_quit ? n->peer_why : NULL;
}

static void net_tell(void *arg, const char *type, int round, const char *why)
{
	struct net *n = arg;
	struct json_object *m = NULL;
	bool is_abort = !strcmp(type, "abort");
	if (round >= 0 || why) {
		m = json_object_new_object();
		if (is_abort)
			json_object_object_add(m, "relay", json_object_new_boolean(round > 0));
		else if (round >= 0)
			json_object_object_add(m, "round", json_object_new_int(round));
		json_object_object_add(m, "why", json_object_new_string(why ? why : ""));
	}
	(void)rv_send(n->rv, type, m);   /* no server (serverless): -ENOTCONN, nothing to tell */
	json_object_put(m);
}

/* The next message: one the round's watcher held, else from the server. */
static int next_msg(struct net *n, int timeout_ms, struct json_object **o, const char **t)
{
	if (n->held_off < n->n_held) {
		*o = n->held[n->held_off].o;
		*t = n->held[n->held_off++].t;
		if (n->held_off == n->n_held)
			n->held_off = n->n_held = 0;
		return 0;
	}
	if (n->held_err)
		return n->held_err;
	return rv_recv(n->rv, timeout_ms, o, t);
}

/* Wait for a sealed message of type want (others are skipped, "abort" or "done" ends it). */
static int wait_msg(struct net *n, const char *want, int timeout_ms, struct json_object **out)
{
	uint64_t end = rp_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	if (n->peer_quit)
		return -ECONNABORTED;
	for (;;) {
		struct json_object *o;
		const char *t;
		uint64_t now = rp_mono_ns();
		if (now >= end)
			return -ETIMEDOUT;
		if (n->o->stop && *n->o->stop)
			return -EINTR;
		int r = next_msg(n, (int)((end - now) / 1000000ull) + 1, &o, &t);
		if (r)
			return r;
		if (!strcmp(t, want)) {
			*out = o;
			return 0;
		}
		if (!strcmp(t, "abort"))
			note_abort(n, o);
		if (!strcmp(t, "abort") || !strcmp(t, "done")) {
			json_object_put(o);
			return -ECONNABORTED;
		}
		json_object_put(o);
	}
}

static int64_t jint(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

static int net_exchange(void *arg, unsigned round, const struct rp_natinfo *self, struct rp_natinfo *peer)
{
	struct net *n = arg;
	struct json_object *m = json_object_new_object(), *in = NULL, *nij;
	json_object_object_add(m, "round", json_object_new_int((int)round));
	json_object_object_add(m, "ni", rp_natinfo_to_json(self));
	int r = rv_send(n->rv, "next", m);
	json_object_put(m);
	if (!r)
		r = wait_msg(n, "next", MSG_WAIT_MS, &in);
	if (!r && (jint(in, "round") != (int64_t)round || !json_object_object_get_ex(in, "ni", &nij) ||
		   rp_natinfo_from_json(nij, peer)))
		r = -EPROTO;
	json_object_put(in);
	return r;
}

/* Side a proposes T on the server's clock, side b takes it. The lead: --lead + relay RTT; auto
 * (lead_ms 0): the "go" reaching b through the server, both clock errors (clock_err_ns holds their
 * sum) and the set-up allowance for b's re-plan, as the join sized it (rv_lead_auto_ns). */
static int net_schedule(void *arg, unsigned round, uint64_t *start_ns)
{
	struct net *n = arg;
	struct json_object *m, *in;
	int r;
	if (n->me == 0) {
		uint64_t lead = n->o->lead_ms ? (uint64_t)n->o->lead_ms * 1000000ull + (uint64_t)n->relay_rtt_ns
					      : rv_lead_auto_ns(n->rtt_ns, n->peer_rtt_ns, n->clock_err_ns, 0,
								(uint64_t)RV_SETUP_MS * 1000000ull);
		uint64_t srv_start = rv_server_now_ns(n->rv) + lead;
		m = json_object_new_object();
		json_object_object_add(m, "round", json_object_new_int((int)round));
		json_object_object_add(m, "start", json_object_new_int64((int64_t)srv_start));
		r = rv_send(n->rv, "go", m);
		json_object_put(m);
		*start_ns = (uint64_t)((int64_t)srv_start - n->offset_ns);
		return r;
	}
	r = wait_msg(n, "go", MSG_WAIT_MS, &in);
	if (r)
		return r;
	int64_t s0 = jint(in, "start");
	if (jint(in, "round") != (int64_t)round || s0 <= 0)
		r = -EPROTO;
	else
		*start_ns = (uint64_t)(s0 - n->offset_ns);
	json_object_put(in);
	return r;
}

static void net_totals(void *arg, struct rp_punch_totals *t)
{
	struct net *n = arg;
	rp_punch_totals(n->pu, t);
}

static int net_handoff(void *arg, struct rp_punch_result *res)
{
	struct net *n = arg;
	rp_punch_tuple(n->pu, &res->laddr, &res->lport, &res->raddr, &res->rport);
	if (n->o->pcap_file)   /* --pcap: the capture goes on past the handoff, with the data */
		res->dump_error = rp_punch_keep_dump(n->pu, &res->dump);
	int fd = rp_punch_handoff(n->pu, NULL, &res->handoff);
	/* the kernel owns the connection (or nobody does): nothing of the punch is needed any more */
	rp_punch_close(n->pu);
	n->pu = NULL;
	rv_close(n->rv);
	n->rv = NULL;
	return fd;
}

static void net_close(void *arg)
{
	struct net *n = arg;
	while (n->held_off < n->n_held)
		json_object_put(n->held[n->held_off++].o);
	n->held_off = n->n_held = 0;
	rp_punch_close(n->pu);
	n->pu = NULL;
	rv_close(n->rv);
	n->rv = NULL;
	if (n->rv_pre >= 0)
		close(n->rv_pre);
	n->rv_pre = -1;
	free(n->pr);
	n->pr = NULL;
	if (n->turn) {   /* not handed over: a direct path made it unnecessary */
		(void)rp_turn_release(n->turn);
		rp_turn_close(n->turn);
		n->turn = NULL;
	}
	rv_keys_wipe(&n->keys);
	/* the punched connection (if any) lives in the NAT's connection tracking on its own now */
	rp_pmhold_release(n->pm, 1000);
	n->pm = NULL;
	if (n->pcap_file)              /* the run ended before the punch: nothing was dumped */
		fclose(n->pcap_file);
	n->pcap_file = NULL;
	if (n->hold_fd >= 0)
		close(n->hold_fd);
	n->hold_fd = -1;
}

static const struct rp_punch_ops net_ops = {
	.connect = net_connect,
	.free_port = net_free_port,
	.probe = net_probe,
	.portmap_begin = net_portmap_begin,
	.portmap_end = net_portmap_end,
	.join = net_join,
	.serverless = net_serverless,
	.prepare = net_prepare,
	.open = net_open,
	.round = net_round,
	.tell = net_tell,
	.peer_why = net_peer_why,
	.exchange = net_exchange,
	.schedule = net_schedule,
	.totals = net_totals,
	.handoff = net_handoff,
	.relay_alloc = net_relay_alloc,
	.relay_connect = net_relay_connect,
	.close = net_close,
};

int rp_punch_run(const struct rp_punch_run_opts *o, rp_punch_event_fn cb, void *cb_arg, struct rp_punch_result *res)
{
	struct net n = { .o = o, .pcap_file = o ? o->pcap_file : NULL, .hold_fd = -1, .rv_pre = -1 };
	/* the caller's connection: adopted by CONNECT with one server, else not needed */
	if (o && o->have_rendezvous_fd && o->rendezvous_fd >= 0) {
		if (!o->offer && !o->answer_to && o->n_rendezvous <= 1)
			n.rv_pre = o->rendezvous_fd;
		else
			close(o->rendezvous_fd);
	}
	if (o && (!o->key || !o->session || !o->secret || !o->secret_len)) {
		if (n.pcap_file)
			fclose(n.pcap_file);
		if (n.rv_pre >= 0)
			close(n.rv_pre);
		if (res) {
			memset(res, 0, sizeof(*res));
			res->fd = -1;
			res->error = -EINVAL;
			snprintf(res->why, sizeof(res->why), "the punch needs a key, a session and a secret");
		}
		return -EINVAL;
	}
	return rp_punch_run_ops(o, &net_ops, &n, cb, cb_arg, res);
}
