/* SPDX-License-Identifier: MIT */
#include "rawpunch/strategy/strategy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DEF_RTT_MS 100.0
#define DEF_CLOCK_ERR_MS 5.0
#define DEF_RATE 2000u
#define DEF_TARGET_P 0.99
#define DEF_MAX_OPEN 256u
#define DEF_MAX_PROBES 2048u
#define DEF_ROUNDS 3u
#define DEF_TTL 2u                /* NAT hops + 1 for a host right behind its NAT */
#define MIN_WINDOW 8u

const char *rp_method_str(enum rp_method m)
{
	switch (m) {
	case RP_METHOD_SIMOPEN: return "simultaneous-open";
	case RP_METHOD_PREDICT: return "predicted-burst";
	case RP_METHOD_BIRTHDAY: return "birthday";
	case RP_METHOD_IMPOSSIBLE: return "impossible";
	default: return "none";
	}
}

const char *rp_side_kind_str(enum rp_side_kind k)
{
	switch (k) {
	case RP_SIDE_EASY: return "easy";
	case RP_SIDE_PREDICTABLE: return "predictable";
	case RP_SIDE_HARD: return "hard";
	default: return "unknown";
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

double rp_birthday_p(unsigned k, unsigned m, unsigned n)
{
	if (n == 0 || m == 0 || k == 0)
		return 0.0;
	if (k >= n)
		return 1.0;
	/* 1 - (1 - k/n)^m without losing precision for small k/n */
	return -expm1((double)m * log1p(-(double)k / (double)n));
}

unsigned rp_birthday_probes(unsigned k, unsigned n, double p)
{
	if (p <= 0.0)
		return 0;
	if (n == 0 || k == 0)
		return 1000000000u;
	if (k >= n)
		return 1;
	if (p >= 1.0)
		return 1000000000u;
	double m = ceil(log1p(-p) / log1p(-(double)k / (double)n));
	unsigned r = m > 1e9 ? 1000000000u : m < 1 ? 1 : (unsigned)m;
	/* floating rounding: make sure r really reaches p and r - 1 does not */
	while (r < 1000000000u && rp_birthday_p(k, r, n) < p)
		r++;
	while (r > 1 && rp_birthday_p(k, r - 1, n) >= p)
		r--;
	return r;
}

static uint32_t pub_addr(const struct rp_natinfo *ni)
{
	return ni->behind_nat ? ni->mapped_addr : ni->local_addr;
}

/* The external port a new flow from the punch port gets, for an easy side. */
static uint16_t easy_port(const struct rp_natinfo *ni)
{
	if (!ni->behind_nat)
		return ni->local_port;
	if (ni->mapped_port && (ni->mapping == RP_MAP_EI || ni->mapped_port == ni->local_port))
		return ni->mapped_port;
	return ni->local_port;    /* port preserving */
}

static uint8_t low_ttl(const struct rp_natinfo *ni)
{
	return ni->nat_ttl ? ni->nat_ttl : DEF_TTL;
}

static bool answers_unsolicited(const struct rp_natinfo *ni)
{
	return ni->behind_nat && ni->filtering != RP_FILTER_OPEN && ni->filtering != RP_FILTER_DROP;
}

static void add_port(struct rp_side_plan *sp, long p, unsigned cap)
{
	if (p < 1 || p > 65535 || sp->n_remote >= cap)
		return;
	for (unsigned i = 0; i < sp->n_remote; i++)
		if (sp->remote_ports[i] == (uint16_t)p)
			return;
	sp->remote_ports[sp->n_remote++] = (uint16_t)p;
}

/* Window of the predictable side's next external ports, most likely first: its predictions, then
 * forward along delta (other flows only ever push the counter ahead), then w/8 ports behind. */
static void fill_window(struct rp_side_plan *sp, const struct rp_natinfo *ni, unsigned w)
{
	long base = ni->predicted[0], last = ni->predicted[ni->n_predicted - 1], d = ni->delta;
	if (w > RP_PLAN_MAX_PORTS)
		w = RP_PLAN_MAX_PORTS;
	unsigned back = w / 8;
	sp->n_remote = 0;
	for (unsigned i = 0; i < ni->n_predicted && i < RP_MAX_PREDICT; i++)
		add_port(sp, ni->predicted[i], w);
	for (long k = 1; sp->n_remote + back < w && last + k * d >= 1 && last + k * d <= 65535; k++)
		add_port(sp, last + k * d, w - back);
	for (long k = 1; sp->n_remote < w && k <= (long)back && base - k * d >= 1 && base - k * d <= 65535; k++)
		add_port(sp, base - k * d, w);
	/* behind ran out of range: take the rest forward */
	for (long k = 1; sp->n_remote < w && last + k * d >= 1 && last + k * d <= 65535; k++)
		add_port(sp, last + k * d, w);
}

static uint32_t ms_for(unsigned n, uint32_t rate)
{
	return (uint32_t)(((uint64_t)n * 1000u + rate - 1) / rate);
}

static unsigned window_size(const struct rp_natinfo *ni, unsigned round)
{
	double w = ni->n_predicted;
	double spread = 4.0 * (ni->jitter > 0 ? ni->jitter : 0) / (ni->delta < 0 ? -ni->delta : ni->delta) + 1;
	if (spread > w)
		w = spread;
	if (w < MIN_WINDOW)
		w = MIN_WINDOW;
	for (unsigned i = 0; i < round && w < RP_PLAN_MAX_PORTS; i++)
		w *= 2;
	return w > RP_PLAN_MAX_PORTS ? RP_PLAN_MAX_PORTS : (unsigned)ceil(w);
}

int rp_plan_make(const struct rp_natinfo *a, const struct rp_natinfo *b, const struct rp_plan_params *pp,
		 unsigned round, struct rp_plan *out)
{
	struct rp_plan_params p = pp ? *pp : (struct rp_plan_params){ 0 };
	const struct rp_natinfo *ni[2] = { a, b };
	if (!a || !b || !out || !pub_addr(a) || !pub_addr(b))
		return -EINVAL;
	if (p.rtt_ms <= 0)
		p.rtt_ms = DEF_RTT_MS;
	if (p.clock_err_ms <= 0)
		p.clock_err_ms = DEF_CLOCK_ERR_MS;
	if (!p.rate_pps)
		p.rate_pps = DEF_RATE;
	if (p.target_p <= 0 || p.target_p >= 1)
		p.target_p = DEF_TARGET_P;
	if (!p.max_open)
		p.max_open = DEF_MAX_OPEN;
	if (!p.max_probes)
		p.max_probes = DEF_MAX_PROBES;
	if (p.max_probes > RP_BIRTHDAY_N * 4)
		p.max_probes = RP_BIRTHDAY_N * 4;
	if (p.max_open > 4096)
		p.max_open = 4096;
	if (!p.rounds)
		p.rounds = DEF_ROUNDS;
	memset(out, 0, sizeof(*out));
	out->hard_side = -1;
	out->rounds = p.rounds;
	out->widen_factor = 1;
	/* start margin: covers the clocks' disagreement (both fire at T by their own clocks) */
	uint32_t margin = (uint32_t)ceil(p.clock_err_ms) + 2;
	uint32_t repeat = p.rtt_ms > 200 ? (uint32_t)p.rtt_ms : 200;
	for (int i = 0; i < 2; i++) {
		struct rp_side_plan *sp = &out->side[i];
		sp->kind = rp_side_classify(ni[i]);
		sp->local_port = ni[i]->local_port;
		sp->remote_addr = pub_addr(ni[1 - i]);
		sp->rate_pps = p.rate_pps;
	}
	enum rp_side_kind ka = out->side[0].kind, kb = out->side[1].kind;
	/* an easy side must say which port the peer aims at; a predictable one must have predictions
	 * (rp_side_classify guarantees that) */
	for (int i = 0; i < 2; i++)
		if (out->side[i].kind == RP_SIDE_EASY && (!easy_port(ni[i]) || !ni[i]->local_port))
			return -EINVAL;

	if (ka == RP_SIDE_EASY && kb == RP_SIDE_EASY) {
		out->method = RP_METHOD_SIMOPEN;
		out->p_success = 0.95;
		out->rounds = p.rounds < 2 ? p.rounds : 2;
		for (int i = 0; i < 2; i++) {
			struct rp_side_plan *sp = &out->side[i];
			sp->action = RP_ACT_CONNECT;
			sp->remote_ports[0] = easy_port(ni[1 - i]);
			sp->n_remote = 1;
			/* a NAT that answers a SYN it has no mapping for (RST, ICMP) would kill the peer's
			 * attempt if the peer's SYN came first: open our own mapping with a low-TTL SYN at T */
			sp->prime = answers_unsolicited(ni[i]);
			sp->ttl = sp->prime ? low_ttl(ni[i]) : 0;
			sp->start_ms = sp->prime || answers_unsolicited(ni[1 - i]) ? margin : 0;
			sp->repeat_ms = repeat;
			sp->duration_ms = 10u * repeat > 5000 ? 10u * repeat : 5000;
		}
		snprintf(out->reason, sizeof(out->reason),
			 "both external ports are known (%s/%s): simultaneous open at T%s",
			 rp_alloc_str(a->alloc), rp_alloc_str(b->alloc),
			 out->side[0].prime || out->side[1].prime ? ", low-TTL primes first" : "");
		return 0;
	}
	if ((ka == RP_SIDE_EASY && kb == RP_SIDE_PREDICTABLE) || (ka == RP_SIDE_PREDICTABLE && kb == RP_SIDE_EASY)) {
		int pi = ka == RP_SIDE_PREDICTABLE ? 0 : 1, ei = 1 - pi;
		struct rp_side_plan *ps = &out->side[pi], *es = &out->side[ei];
		const struct rp_natinfo *pn = ni[pi];
		unsigned w = window_size(pn, round);
		out->method = RP_METHOD_PREDICT;
		out->hard_side = pi;
		out->widen_factor = 2;
		/* easy side: burst to the predicted window from its punch port once the prime passed */
		es->action = RP_ACT_CONNECT;
		fill_window(es, pn, w);
		es->start_ms = margin;
		uint32_t burst = ms_for(es->n_remote, es->rate_pps);
		es->repeat_ms = burst + repeat;
		es->duration_ms = 3 * (burst + repeat);
		/* predictable side: its prime takes the predicted port (mapping to the easy side's port);
		 * its full SYN follows the burst so it meets an open conntrack entry on the easy NAT */
		ps->action = RP_ACT_CONNECT;
		ps->prime = true;
		ps->ttl = low_ttl(pn);
		ps->remote_ports[0] = easy_port(ni[ei]);
		ps->n_remote = 1;
		ps->start_ms = margin + burst + margin;
		ps->repeat_ms = repeat;
		ps->duration_ms = es->duration_ms;
		double conf = pn->confidence > 0 && pn->confidence <= 1 ? pn->confidence : 0.5;
		double extra = es->n_remote > pn->n_predicted ? 1.0 - (double)pn->n_predicted / es->n_remote : 0;
		out->p_success = conf + (1 - conf) * extra * 0.9;
		if (out->p_success > 0.99)
			out->p_success = 0.99;
		snprintf(out->reason, sizeof(out->reason),
			 "side %c is sequential (delta %d): its prime takes the predicted port, side %c bursts "
			 "%u ports; re-probe and widen x2 on a miss", 'a' + pi, (int)pn->delta, 'a' + ei, es->n_remote);
		return 0;
	}
	if (ka == RP_SIDE_PREDICTABLE && kb == RP_SIDE_PREDICTABLE) {
		unsigned w = window_size(a, round), wb = window_size(b, round);
		if (wb > w)
			w = wb;
		out->method = RP_METHOD_PREDICT;
		out->widen_factor = 2;
		for (int i = 0; i < 2; i++) {
			struct rp_side_plan *sp = &out->side[i];
			const struct rp_natinfo *o = ni[1 - i];
			/* lockstep: the i-th SYN of each side (which takes its own i-th predicted port)
			 * targets the other's i-th predicted port, so the pairs match up */
			sp->action = RP_ACT_CONNECT;
			sp->n_remote = 0;
			for (unsigned k = 0; k < w; k++) {
				long port = k < o->n_predicted ? o->predicted[k]
							       : (long)o->predicted[o->n_predicted - 1] +
								 (long)(k - o->n_predicted + 1) * o->delta;
				if (port < 1 || port > 65535)
					break;
				sp->remote_ports[sp->n_remote++] = (uint16_t)port;
			}
			sp->start_ms = margin;
			uint32_t burst = ms_for(w, sp->rate_pps);
			sp->repeat_ms = 0;             /* a repeat would take new ports: re-plan instead */
			sp->duration_ms = burst + 2 * repeat;
		}
		unsigned n = out->side[0].n_remote < out->side[1].n_remote ? out->side[0].n_remote : out->side[1].n_remote;
		out->side[0].n_remote = out->side[1].n_remote = n;
		double ca = a->confidence > 0 ? a->confidence : 0.5, cb = b->confidence > 0 ? b->confidence : 0.5;
		out->p_success = ca * cb;
		snprintf(out->reason, sizeof(out->reason),
			 "both sides sequential: lockstep bursts of %u SYNs pairing the i-th predictions; works only "
			 "while no other flow takes a port in between", n);
		return 0;
	}
	if ((ka == RP_SIDE_EASY && kb == RP_SIDE_HARD) || (ka == RP_SIDE_HARD && kb == RP_SIDE_EASY)) {
		int hi = ka == RP_SIDE_HARD ? 0 : 1, ei = 1 - hi;
		struct rp_side_plan *hs = &out->side[hi], *es = &out->side[ei];
		unsigned k = p.max_open, m = rp_birthday_probes(k, RP_BIRTHDAY_N, p.target_p);
		if (m > p.max_probes)
			m = p.max_probes;
		out->method = RP_METHOD_BIRTHDAY;
		out->hard_side = hi;
		hs->action = RP_ACT_OPEN_MANY;
		hs->n_local = k;
		hs->ttl = low_ttl(ni[hi]);
		hs->remote_ports[0] = easy_port(ni[ei]);
		hs->n_remote = 1;
		hs->start_ms = 0;
		uint32_t open_ms = ms_for(k, hs->rate_pps);
		hs->repeat_ms = 0;                /* conntrack keeps SYN_SENT ~120 s: open once per round */
		es->action = RP_ACT_PROBE_RANDOM;
		es->port_lo = 1024;
		es->port_hi = 65535;
		es->n_probes = m;
		es->start_ms = open_ms + margin;  /* the mappings exist before the first probe lands */
		uint32_t probe_ms = ms_for(m, es->rate_pps);
		es->repeat_ms = 0;
		es->duration_ms = probe_ms + 2 * repeat;
		hs->duration_ms = es->start_ms + es->duration_ms;
		out->p_success = rp_birthday_p(k, m, RP_BIRTHDAY_N);
		snprintf(out->reason, sizeof(out->reason),
			 "side %c allocates randomly: it opens %u mappings (TTL %u), side %c probes %u random ports: "
			 "P = %.4f", 'a' + hi, k, (unsigned)hs->ttl, 'a' + ei, m, out->p_success);
		return 0;
	}
	out->method = RP_METHOD_IMPOSSIBLE;
	out->rounds = 0;
	out->p_success = 0;
	out->hard_side = ka == RP_SIDE_HARD ? 0 : 1;
	for (int i = 0; i < 2; i++)
		out->side[i].action = RP_ACT_NONE;
	snprintf(out->reason, sizeof(out->reason),
		 "side a is %s and side b is %s: neither end has a port the other can aim at (random x 2^32 "
		 "space); a relay is needed and none is available", rp_side_kind_str(ka), rp_side_kind_str(kb));
	return 0;
}

const char *rp_action_str(enum rp_action a)
{
	switch (a) {
	case RP_ACT_CONNECT: return "connect";
	case RP_ACT_OPEN_MANY: return "open-many";
	case RP_ACT_PROBE_RANDOM: return "probe-random";
	default: return "none";
	}
}

static struct json_object *side_json(const struct rp_side_plan *sp)
{
	struct json_object *o = json_object_new_object(), *ports = json_object_new_array();
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = { .s_addr = sp->remote_addr };
	if (!o || !ports) {
		json_object_put(o);
		json_object_put(ports);
		return NULL;
	}
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	for (unsigned i = 0; i < sp->n_remote && i < RP_PLAN_MAX_PORTS; i++)
		json_object_array_add(ports, json_object_new_int(sp->remote_ports[i]));
	json_object_object_add(o, "kind", json_object_new_string(rp_side_kind_str(sp->kind)));
	json_object_object_add(o, "action", json_object_new_string(rp_action_str(sp->action)));
	json_object_object_add(o, "prime", json_object_new_boolean(sp->prime));
	json_object_object_add(o, "ttl", json_object_new_int(sp->ttl));
	json_object_object_add(o, "local_port", json_object_new_int(sp->local_port));
	json_object_object_add(o, "n_local", json_object_new_int64(sp->n_local));
	json_object_object_add(o, "remote", json_object_new_string(ip));
	json_object_object_add(o, "remote_ports", ports);
	json_object_object_add(o, "port_lo", json_object_new_int(sp->port_lo));
	json_object_object_add(o, "port_hi", json_object_new_int(sp->port_hi));
	json_object_object_add(o, "n_probes", json_object_new_int64(sp->n_probes));
	json_object_object_add(o, "rate_pps", json_object_new_int64(sp->rate_pps));
	json_object_object_add(o, "start_ms", json_object_new_int64(sp->start_ms));
	json_object_object_add(o, "repeat_ms", json_object_new_int64(sp->repeat_ms));
	json_object_object_add(o, "duration_ms", json_object_new_int64(sp->duration_ms));
	return o;
}

struct json_object *rp_plan_to_json(const struct rp_plan *pl)
{
	struct json_object *o = json_object_new_object(), *sides = json_object_new_array();
	if (!o || !sides) {
		json_object_put(o);
		json_object_put(sides);
		return NULL;
	}
	json_object_object_add(o, "method", json_object_new_string(rp_method_str(pl->method)));
	json_object_object_add(o, "reason", json_object_new_string(pl->reason));
	json_object_object_add(o, "hard_side", pl->hard_side == 0 ? json_object_new_string("a")
					       : pl->hard_side == 1 ? json_object_new_string("b") : NULL);
	json_object_object_add(o, "p_success", json_object_new_double(pl->p_success));
	json_object_object_add(o, "rounds", json_object_new_int64(pl->rounds));
	json_object_object_add(o, "widen_factor", json_object_new_int64(pl->widen_factor));
	for (int i = 0; i < 2; i++) {
		struct json_object *s = side_json(&pl->side[i]);
		if (!s) {
			json_object_put(o);
			json_object_put(sides);
			return NULL;
		}
		json_object_array_add(sides, s);
	}
	json_object_object_add(o, "sides", sides);
	return o;
}
