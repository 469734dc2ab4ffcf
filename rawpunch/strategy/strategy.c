/* SPDX-License-Identifier: MIT */
/* The planner and what every strategy shares (see strategy.h): side classes, the registry lookup,
 * the default phases of an action, the strategies' texts and the plan JSON. No strategy is named here. */
#include "rawpunch/strategy/strategy.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rawpunch/base/jsonnum.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/strategy/kit.h"

#define DEF_RTT_MS 100.0
#define DEF_CLOCK_ERR_MS 5.0
/* early_ms over the clock estimate: a busy host sends its prime a few ms after T (late_ms in the
 * round's report: 0.1 ms idle, up to ~5 ms on a loaded 2-core machine), and the SYN must still find it */
#define EARLY_ALLOW_MS 6
/* how long before T the hard side's low-TTL mappings may begin (the round begins after SETUP, with
 * the lead's idle time before T; the mappings live for minutes in SYN_SENT on Linux, RFC 5382's
 * transitory timeout is 4 minutes) */
#define PRE_OPEN_MS 1000
#define DEF_TARGET_P 0.99
#define DEF_MAX_OPEN 256u
#define DEF_MAX_PROBES 2048u
#define DEF_ROUNDS 3u
#define DEF_N_LOCAL 256u          /* OPEN_MANY without n_local */
#define DEF_N_PROBES 1024u        /* PROBE_RANDOM without n_probes */

const char *rp_side_kind_str(enum rp_side_kind k)
{
	switch (k) {
	case RP_SIDE_EASY: return "easy";
	case RP_SIDE_PREDICTABLE: return "predictable";
	case RP_SIDE_HARD: return "hard";
	default: return "unknown";
	}
}

const char *rp_action_str(enum rp_action a)
{
	switch (a) {
	case RP_ACT_CONNECT: return "connect";
	case RP_ACT_OPEN_MANY: return "open-many";
	case RP_ACT_PROBE_RANDOM: return "probe-random";
	case RP_ACT_OPEN_PAIRS: return "open-pairs";
	default: return "none";
	}
}

enum rp_side_kind rp_side_classify(const struct rp_natinfo *ni)
{
	if (!ni->behind_nat || ni->mapping == RP_MAP_EI || ni->alloc == RP_ALLOC_PRESERVING)
		return RP_SIDE_EASY;
	if (ni->alloc == RP_ALLOC_SEQUENTIAL && ni->has_delta && ni->delta != 0 && ni->n_predicted > 0)
		return RP_SIDE_PREDICTABLE;
	return RP_SIDE_HARD;
}

void rp_kit_kind_why(const struct rp_natinfo *ni, char *buf, size_t len)
{
	const char *al = rp_alloc_str(ni->alloc);
	if (!ni->behind_nat)
		snprintf(buf, len, "not behind NAT: the punch port itself");
	else if (ni->mapping == RP_MAP_EI)
		snprintf(buf, len, "endpoint-independent mapping: the port STUN saw serves every peer");
	else if (ni->mapping == RP_MAP_AD && ni->alloc == RP_ALLOC_PRESERVING)
		snprintf(buf, len, "address-dependent mapping, but preserving: the punch port itself");
	else if (ni->mapping == RP_MAP_AD && rp_side_classify(ni) == RP_SIDE_PREDICTABLE)
		snprintf(buf, len, "address-dependent mapping: a new port for the peer's address, the counter's next");
	else if (ni->mapping == RP_MAP_AD)
		snprintf(buf, len, "address-dependent mapping, %s allocation: one port per peer address, unknown "
			 "until used", al);
	else if (ni->alloc == RP_ALLOC_PRESERVING)
		snprintf(buf, len, "preserving allocation: the punch port itself");
	else if (rp_side_classify(ni) == RP_SIDE_PREDICTABLE)
		snprintf(buf, len, "sequential allocation: the next ports predicted");
	else if (rp_kit_block_size(ni))
		snprintf(buf, len, "%s allocation in a block of %u ports", al, rp_kit_block_size(ni));
	else
		snprintf(buf, len, "%s allocation: a new unknown port per destination", al);
}

uint32_t rp_side_pub_addr(const struct rp_natinfo *ni)
{
	return ni->behind_nat ? ni->mapped_addr : ni->local_addr;
}

/* --- the kit (kit.h) ---------------------------------------------------------------------------- */

uint16_t rp_kit_easy_port(const struct rp_natinfo *ni)
{
	if (!ni->behind_nat)
		return ni->local_port;
	if (ni->mapped_port && (ni->mapping == RP_MAP_EI || ni->mapped_port == ni->local_port))
		return ni->mapped_port;
	return ni->local_port;    /* port preserving */
}

unsigned rp_kit_peer_nat_hop(const struct rp_natinfo *self, const struct rp_natinfo *peer)
{
	unsigned peer_ttl = peer->nat_ttl ? peer->nat_ttl : RP_DEF_LOW_TTL;
	if (!self->server_hops || !peer->server_hops || peer->server_hops < peer_ttl)
		return 0;
	return (unsigned)self->server_hops - 1 + (peer->server_hops - peer_ttl);
}

uint8_t rp_kit_low_ttl(const struct rp_natinfo *self, const struct rp_natinfo *peer, char *how, size_t hlen)
{
	char scratch[2];
	unsigned d;
	if (!how) {
		how = scratch;
		hlen = sizeof(scratch);
	}
	if (!self->nat_ttl) {
		snprintf(how, hlen, "nat_ttl unknown: default %u", RP_DEF_LOW_TTL);
		return RP_DEF_LOW_TTL;
	}
	if (self->nat_ttl_method != RP_TTL_FALLBACK) {
		snprintf(how, hlen, "nat_ttl %u (%s)", self->nat_ttl,
			 self->nat_ttl_method == RP_TTL_UNKNOWN ? "method not given" : rp_ttl_method_str(self->nat_ttl_method));
		return self->nat_ttl;
	}
	d = peer ? rp_kit_peer_nat_hop(self, peer) : 0;
	if (!d) {
		snprintf(how, hlen, "nat_ttl %u (fallback; the peer's distance unknown)", self->nat_ttl);
		return self->nat_ttl;
	}
	if (self->nat_ttl < d) {
		snprintf(how, hlen, "nat_ttl %u (fallback), short of the peer's NAT (~hop %u)", self->nat_ttl, d);
		return self->nat_ttl;
	}
	uint8_t t = d > 1 ? (uint8_t)(d - 1) : 1;
	snprintf(how, hlen, "fallback nat_ttl %u would reach the peer's NAT (~hop %u): %u", self->nat_ttl, d, t);
	return t;
}

bool rp_kit_block(const struct rp_natinfo *ni, uint16_t *lo, uint16_t *hi)
{
	if (!ni->behind_nat || !ni->has_range || !ni->range_lo || ni->range_lo > ni->range_hi ||
	    ni->range_confidence < RP_KIT_RANGE_CONF || (unsigned)ni->range_hi - ni->range_lo + 1 >= RP_BIRTHDAY_N)
		return false;
	*lo = ni->range_lo;
	*hi = ni->range_hi;
	return true;
}

unsigned rp_kit_block_size(const struct rp_natinfo *ni)
{
	uint16_t lo, hi;
	return rp_kit_block(ni, &lo, &hi) ? (unsigned)hi - lo + 1 : 0;
}

bool rp_kit_answers_unsolicited(const struct rp_natinfo *ni)
{
	return ni->behind_nat && ni->filtering != RP_FILTER_OPEN && ni->filtering != RP_FILTER_DROP;
}

bool rp_kit_early_ok(const struct rp_plan_ctx *c, int i)
{
	const struct rp_natinfo *self = c->ni[i], *peer = c->ni[1 - i];
	bool peer_resets = peer->behind_nat && (peer->filtering == RP_FILTER_RST || peer->filtering == RP_FILTER_UNKNOWN);
	bool both_keep = self->alloc == RP_ALLOC_PRESERVING && peer->alloc == RP_ALLOC_PRESERVING;
	return !peer_resets || both_keep;
}

uint32_t rp_kit_ms_for(uint64_t n, uint32_t rate)
{
	return rate ? (uint32_t)((n * 1000u + rate - 1) / rate) : 0;
}

/* --- the registry -------------------------------------------------------------------------------- */

const char *rp_strategy_name(const struct rp_strategy *s)
{
	return s ? s->name : "none";
}

const struct rp_strategy *rp_strategy_find(const char *name)
{
	for (unsigned i = 0; name && rp_strategies[i]; i++)
		if (!strcmp(rp_strategies[i]->name, name))
			return rp_strategies[i];
	return NULL;
}

const struct rp_strategy *rp_strategy_for(const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	for (unsigned i = 0; rp_strategies[i]; i++)
		if (rp_strategies[i]->applies(a, b))
			return rp_strategies[i];
	return NULL;
}

/* --- the planner ------------------------------------------------------------------------------ */

int rp_plan_make(const struct rp_natinfo *a, const struct rp_natinfo *b, const struct rp_plan_params *pp,
		 unsigned round, struct rp_plan *out)
{
	struct rp_plan_ctx c = { .ni = { a, b }, .round = round };
	struct rp_plan_params *p = &c.p;
	if (!a || !b || !out || !rp_side_pub_addr(a) || !rp_side_pub_addr(b))
		return -EINVAL;
	if (pp)
		*p = *pp;
	if (p->rtt_ms <= 0)
		p->rtt_ms = DEF_RTT_MS;
	if (p->clock_err_ms <= 0)
		p->clock_err_ms = DEF_CLOCK_ERR_MS;
	if (!p->rate_pps)
		p->rate_pps = RP_DEF_RATE;
	if (p->target_p <= 0 || p->target_p >= 1)
		p->target_p = DEF_TARGET_P;
	if (!p->max_open)
		p->max_open = DEF_MAX_OPEN;
	if (!p->max_probes)
		p->max_probes = DEF_MAX_PROBES;
	if (p->max_probes > RP_BIRTHDAY_N * 4)
		p->max_probes = RP_BIRTHDAY_N * 4;
	if (p->max_open > RP_EXEC_MAX_FRESH)
		p->max_open = RP_EXEC_MAX_FRESH;
	if (!p->rounds)
		p->rounds = DEF_ROUNDS;
	memset(out, 0, sizeof(*out));
	out->hard_side = -1;
	out->rounds = p->rounds;
	out->widen_factor = 1;
	c.margin_ms = (uint32_t)ceil(p->clock_err_ms) + 2;
	c.early_ms = p->clock_est_ms > 0 ? (uint32_t)ceil(p->clock_est_ms) + EARLY_ALLOW_MS : c.margin_ms;
	if (c.early_ms > c.margin_ms)
		c.early_ms = c.margin_ms;
	c.repeat_ms = p->rtt_ms > 200 ? (uint32_t)p->rtt_ms : 200;
	for (int i = 0; i < 2; i++) {
		struct rp_side_plan *sp = &out->side[i];
		c.kind[i] = rp_side_classify(c.ni[i]);
		sp->kind = c.kind[i];
		rp_kit_kind_why(c.ni[i], sp->kind_why, sizeof(sp->kind_why));
		sp->local_port = c.ni[i]->local_port;
		sp->remote_addr = rp_side_pub_addr(c.ni[1 - i]);
		sp->rate_pps = p->rate_pps;
		c.low_ttl[i] = rp_kit_low_ttl(c.ni[i], c.ni[1 - i], c.ttl_how[i], sizeof(c.ttl_how[i]));
	}
	/* an easy side must say which port the peer aims at; a predictable one must have predictions
	 * (rp_side_classify guarantees that) */
	for (int i = 0; i < 2; i++)
		if (c.kind[i] == RP_SIDE_EASY && (!rp_kit_easy_port(c.ni[i]) || !c.ni[i]->local_port))
			return -EINVAL;
	out->strategy = rp_strategy_for(a, b);
	if (!out->strategy)
		return -EINVAL;
	int r = out->strategy->plan(&c, out);
	/* how a side's low TTL was chosen, where it sends one */
	for (int i = 0; i < 2 && !r; i++)
		if (out->side[i].ttl == c.low_ttl[i])
			snprintf(out->side[i].ttl_how, sizeof(out->side[i].ttl_how), "%s", c.ttl_how[i]);
	return r;
}

const char *rp_plan_name(const struct rp_plan *pl)
{
	return rp_strategy_name(pl ? pl->strategy : NULL);
}

bool rp_plan_refused(const struct rp_plan *pl)
{
	return !pl->strategy || pl->rounds == 0;
}

void rp_plan_miss_hint(const struct rp_plan *pl, char *buf, size_t len)
{
	if (pl->strategy && pl->strategy->miss_hint)
		pl->strategy->miss_hint(pl, buf, len);
	else
		snprintf(buf, len, "check that the peer runs the same session now; --pcap FILE shows what went out "
			 "and came back");
}

void rp_plan_refusal(const struct rp_plan *pl, char *odds, size_t olen, char *hint, size_t hlen)
{
	if (olen)
		odds[0] = 0;
	if (hlen)
		hint[0] = 0;
	if (pl->strategy && pl->strategy->refusal)
		pl->strategy->refusal(pl, odds, olen, hint, hlen);
}

/* --- phases --------------------------------------------------------------------------------- */

int rp_exec_default(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		    struct rp_exec *x)
{
	const struct rp_side_plan *sp;
	struct rp_phase *ph;
	if (!pl || !self || !x || (me != 0 && me != 1))
		return -EINVAL;
	sp = &pl->side[me];
	memset(x, 0, offsetof(struct rp_exec, ports));
	x->action = sp->action;
	x->rate_pps = sp->rate_pps ? sp->rate_pps : RP_DEF_RATE;
	x->low_ttl = sp->ttl ? sp->ttl : rp_kit_low_ttl(self, peer, NULL, 0);
	x->end_ms = sp->start_ms + sp->duration_ms;
	if (sp->action != RP_ACT_CONNECT && sp->action != RP_ACT_OPEN_MANY && sp->action != RP_ACT_PROBE_RANDOM)
		return -EINVAL;
	if (!sp->n_remote && sp->action != RP_ACT_PROBE_RANDOM)
		return -EINVAL;
	if (sp->prime && sp->action == RP_ACT_CONNECT) {
		ph = &x->ph[x->n++];
		*ph = (struct rp_phase){ .name = "prime", .prime = true, .ttl = x->low_ttl, .src = RP_SRC_PUNCH,
					 .dst = RP_DST_LIST, .dports = sp->remote_ports, .n_dst = 1 };
	}
	ph = &x->ph[x->n++];
	*ph = (struct rp_phase){ .name = "burst", .at_ms = sp->start_ms };
	switch (sp->action) {
	case RP_ACT_CONNECT:
		ph->dports = sp->remote_ports;
		ph->n_dst = sp->n_remote;
		ph->repeat_ms = sp->repeat_ms;
		ph->until_ms = x->end_ms;
		if (sp->again_ms > sp->start_ms && x->n < RP_EXEC_MAX_PHASES) {
			/* sent early on the clock estimate: once, and again when the hard bound has passed */
			ph->repeat_ms = 0;
			ph = &x->ph[x->n++];
			*ph = (struct rp_phase){ .name = "again", .again = true, .at_ms = sp->again_ms,
						 .repeat_ms = sp->repeat_ms, .until_ms = x->end_ms };
		}
		break;
	case RP_ACT_OPEN_MANY:
		ph->ttl = x->low_ttl;
		ph->pre_ms = PRE_OPEN_MS;   /* low TTL: the mappings may open before T */
		ph->src = RP_SRC_FRESH;
		ph->n_src = sp->n_local ? sp->n_local : DEF_N_LOCAL;
		if (ph->n_src > RP_EXEC_MAX_FRESH)
			ph->n_src = RP_EXEC_MAX_FRESH;
		ph->dports = sp->remote_ports;
		ph->n_dst = 1;
		break;
	default:    /* RP_ACT_PROBE_RANDOM */
		ph->dst = RP_DST_RANDOM;
		ph->n_dst = sp->n_probes ? sp->n_probes : DEF_N_PROBES;
		ph->dst_lo = sp->port_lo ? sp->port_lo : 1024;
		ph->dst_hi = sp->port_hi ? sp->port_hi : 65535;
		break;
	}
	return 0;
}

int rp_plan_exec(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		 struct rp_exec *out)
{
	if (!pl || !self || !peer || !out || (me != 0 && me != 1) || rp_plan_refused(pl))
		return -EINVAL;
	return (pl->strategy->exec ? pl->strategy->exec : rp_exec_default)(pl, me, self, peer, out);
}

/* --- JSON --------------------------------------------------------------------------------------- */

static struct json_object *side_json(const struct rp_side_plan *sp, int i)
{
	struct json_object *s = json_object_new_object();
	char a[INET_ADDRSTRLEN];
	if (!s)
		return NULL;
	json_object_object_add(s, "side", json_object_new_string(i ? "b" : "a"));
	json_object_object_add(s, "kind", json_object_new_string(rp_side_kind_str(sp->kind)));
	if (sp->kind_why[0])
		json_object_object_add(s, "kind_why", json_object_new_string(sp->kind_why));
	json_object_object_add(s, "action", json_object_new_string(rp_action_str(sp->action)));
	json_object_object_add(s, "prime", json_object_new_boolean(sp->prime));
	json_object_object_add(s, "ttl", json_object_new_int(sp->ttl));
	if (sp->ttl && sp->ttl_how[0])
		json_object_object_add(s, "ttl_how", json_object_new_string(sp->ttl_how));
	json_object_object_add(s, "local_port", json_object_new_int(sp->local_port));
	json_object_object_add(s, "remote", json_object_new_string(rp_ip_str(sp->remote_addr, a)));
	if (sp->action == RP_ACT_OPEN_MANY)
		json_object_object_add(s, "n_local", json_object_new_int((int)sp->n_local));
	if (sp->action == RP_ACT_OPEN_PAIRS)
		json_object_object_add(s, "n_local", json_object_new_int((int)sp->n_local));
	if (sp->action == RP_ACT_PROBE_RANDOM || sp->action == RP_ACT_OPEN_PAIRS) {
		if (sp->action == RP_ACT_PROBE_RANDOM)
			json_object_object_add(s, "n_probes", json_object_new_int((int)sp->n_probes));
		json_object_object_add(s, "port_lo", json_object_new_int(sp->port_lo));
		json_object_object_add(s, "port_hi", json_object_new_int(sp->port_hi));
	} else {
		uint16_t lo = 0, hi = 0;
		for (unsigned k = 0; k < sp->n_remote && k < RP_PLAN_MAX_PORTS; k++) {
			if (!lo || sp->remote_ports[k] < lo)
				lo = sp->remote_ports[k];
			if (sp->remote_ports[k] > hi)
				hi = sp->remote_ports[k];
		}
		json_object_object_add(s, "n_remote", json_object_new_int((int)sp->n_remote));
		json_object_object_add(s, "remote_lo", json_object_new_int(lo));
		json_object_object_add(s, "remote_hi", json_object_new_int(hi));
	}
	json_object_object_add(s, "rate_pps", json_object_new_int64(sp->rate_pps));
	json_object_object_add(s, "start_ms", json_object_new_int64(sp->start_ms));
	if (sp->again_ms)
		json_object_object_add(s, "again_ms", json_object_new_int64(sp->again_ms));
	json_object_object_add(s, "repeat_ms", json_object_new_int64(sp->repeat_ms));
	json_object_object_add(s, "duration_ms", json_object_new_int64(sp->duration_ms));
	return s;
}

struct json_object *rp_plan_to_json(const struct rp_plan *pl)
{
	struct json_object *o = json_object_new_object(), *sides = json_object_new_array();
	if (!o || !sides) {
		json_object_put(o);
		json_object_put(sides);
		return NULL;
	}
	json_object_object_add(o, "method", json_object_new_string(rp_plan_name(pl)));
	json_object_object_add(o, "reason", json_object_new_string(pl->reason));
	json_object_object_add(o, "p_success", rp_json_fixed(pl->p_success, 4));
	json_object_object_add(o, "rounds", json_object_new_int((int)pl->rounds));
	json_object_object_add(o, "hard_side", pl->hard_side < 0 ? NULL : json_object_new_string(pl->hard_side ? "b" : "a"));
	for (int i = 0; i < 2 && !rp_plan_refused(pl); i++) {
		struct json_object *s = side_json(&pl->side[i], i);
		if (!s || json_object_array_add(sides, s)) {
			json_object_put(s);
			json_object_put(sides);
			json_object_put(o);
			return NULL;
		}
	}
	json_object_object_add(o, "sides", sides);
	return o;
}
