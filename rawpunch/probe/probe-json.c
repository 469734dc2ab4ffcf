/* SPDX-License-Identifier: MIT */
/* The NAT probe's report as JSON (rp_probe_to_json(), see probe.h): the natinfo plus the samples,
 * hops, fit and prediction window behind it. */
#include "rawpunch/probe/probe-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static struct json_object *ep_json(uint32_t addr, uint16_t port)
{
	char ip[INET_ADDRSTRLEN], buf[INET_ADDRSTRLEN + 8];
	struct in_addr a = { .s_addr = addr };
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	snprintf(buf, sizeof(buf), "%s:%u", ip, (unsigned)port);
	return json_object_new_string(buf);
}

static struct json_object *err_json(int e)
{
	return e ? json_object_new_string(strerror(-e)) : NULL;
}

const char *rp_probe_kind_str(enum rp_probe_kind k)
{
	switch (k) {
	case RP_SAMPLE_TEST1: return "test1";
	case RP_SAMPLE_TEST2: return "test2";
	case RP_SAMPLE_TEST3: return "test3";
	case RP_SAMPLE_TEST4: return "test4";
	case RP_SAMPLE_ALLOC: return "alloc";
	default: return "?";
	}
}

static struct json_object *ip_json(uint32_t addr)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = { .s_addr = addr };
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	return json_object_new_string(ip);
}

static const char *range_how_str(enum rp_range_how h)
{
	switch (h) {
	case RP_RANGE_GIVEN: return "given";
	case RP_RANGE_SPREAD: return "spread";
	case RP_RANGE_WRAP: return "wrap";
	default: return NULL;
	}
}

/* nat_ttl's evidence: what the hops showed, and the confirmation tests */
static void ttl_json(struct json_object *o, const struct rp_probe_report *r)
{
	struct json_object *g = json_object_new_object(), *arr = json_object_new_array();
	json_object_object_add(g, "evidence", json_object_new_string(rp_hop_evidence_str(r->guess.how)));
	json_object_object_add(g, "nat_hop", r->guess.nat_hop >= 0 ? json_object_new_int(r->guess.nat_hop) : NULL);
	json_object_object_add(g, "behavioural", json_object_new_boolean(r->guess.behavioural));
	json_object_object_add(g, "min_hop", json_object_new_int(r->guess.min_hop));
	json_object_object_add(g, "record_route_dropped", json_object_new_boolean(r->rr_dropped));
	json_object_object_add(o, "hops_say", g);
	for (unsigned i = 0; arr && i < r->n_confirm; i++) {
		const struct rp_probe_confirm *c = &r->confirm[i];
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "ttl", json_object_new_int(c->ttl));
		json_object_object_add(e, "server_port", json_object_new_int(c->server_port));
		json_object_object_add(e, "passed", c->err ? NULL : json_object_new_boolean(c->passed));
		json_object_object_add(e, "server_saw", c->err ? NULL : json_object_new_string(rp_filter_str(c->verdict)));
		if (c->err)
			json_object_object_add(e, "error", err_json(c->err));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "confirm", arr);
	json_object_object_add(o, "confirm_error", err_json(r->ni.nat_ttl_method == RP_TTL_CONFIRMED ? 0 : r->confirm_err));
}

uint64_t probe_first_mono(const struct rp_probe_report *r)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < r->n_samples; i++)
		if (r->samples[i].t_mono_ns && (!t || r->samples[i].t_mono_ns < t))
			t = r->samples[i].t_mono_ns;
	return t;
}

struct json_object *rp_probe_to_json(const struct rp_probe_report *r)
{
	struct json_object *o = rp_natinfo_to_json(&r->ni);
	if (!o)
		return NULL;
	json_object_object_add(o, "stun", ep_json(r->stun.sin_addr.s_addr, ntohs(r->stun.sin_port)));
	json_object_object_add(o, "other_address", r->has_other ? ep_json(r->other.sin_addr.s_addr,
									  ntohs(r->other.sin_port)) : NULL);
	json_object_object_add(o, "server_software", r->server_software[0] ?
				json_object_new_string(r->server_software) : NULL);
	json_object_object_add(o, "mapping_error", err_json(r->mapping_err));
	json_object_object_add(o, "filtering_error", err_json(r->filter_err));
	json_object_object_add(o, "nat_ttl_error", err_json(r->ni.nat_ttl ? 0 : r->ttl_err));
	uint64_t t0 = probe_first_mono(r);
	struct json_object *arr = json_object_new_array();
	for (unsigned i = 0; arr && i < r->n_samples; i++) {
		const struct rp_probe_sample *s = &r->samples[i];
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "kind", json_object_new_string(rp_probe_kind_str(s->kind)));
		json_object_object_add(e, "t", json_object_new_double((double)s->t_real_ns / 1e9));
		json_object_object_add(e, "t_rel", json_object_new_double(
			s->t_mono_ns >= t0 ? (double)(s->t_mono_ns - t0) / 1e9 : 0.0));
		json_object_object_add(e, "server", ep_json(s->server.sin_addr.s_addr, ntohs(s->server.sin_port)));
		json_object_object_add(e, "local_port", json_object_new_int(s->local_port));
		json_object_object_add(e, "mapped", s->ok ? ep_json(s->mapped_addr, s->mapped_port) : NULL);
		json_object_object_add(e, "rtt_ms", json_object_new_double(s->rtt_ms));
		if (!s->ok)
			json_object_object_add(e, "error", json_object_new_string(strerror(s->err < 0 ? -s->err : EIO)));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "samples", arr);
	arr = json_object_new_array();
	for (unsigned i = 0; arr && i < r->n_hops; i++) {
		const struct rp_probe_hop *h = &r->hops[i];
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "ttl", json_object_new_int(h->ttl));
		if (h->answered) {
			json_object_object_add(e, "from", ip_json(h->from));
			json_object_object_add(e, "icmp", json_object_new_int(h->icmp_type << 8 | h->icmp_code));
			json_object_object_add(e, "private", json_object_new_boolean(rp_ipv4_is_private(h->from)));
			json_object_object_add(e, "quoted_src", ip_json(h->inner_saddr));
			json_object_object_add(e, "quoted_sport", json_object_new_int(h->inner_sport));
			json_object_object_add(e, "rtt_ms", json_object_new_double(h->rtt_ms));
			json_object_object_add(e, "record_route_probe", json_object_new_boolean(h->rr_probe));
			struct json_object *rr = h->rr_probe ? json_object_new_array() : NULL;
			for (unsigned k = 0; rr && k < h->n_rr && k < RP_RR_MAX; k++)
				json_object_array_add(rr, ip_json(h->rr[k]));
			if (rr)
				json_object_object_add(e, "recorded", rr);
		} else {
			json_object_object_add(e, "from", NULL);
		}
		if (h->reached)
			json_object_object_add(e, "reached", json_object_new_boolean(true));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "hops", arr);
	ttl_json(o, r);
	struct json_object *fit = json_object_new_object();
	json_object_object_add(fit, "samples", json_object_new_int((int)r->fit.n));
	json_object_object_add(fit, "preserved", json_object_new_int((int)r->fit.n_preserved));
	json_object_object_add(fit, "steps", json_object_new_int((int)r->fit.n_steps));
	json_object_object_add(fit, "steps_fitted", json_object_new_int((int)r->fit.n_fit));
	json_object_object_add(fit, "wraps", json_object_new_int((int)r->fit.n_wraps));
	json_object_object_add(fit, "foreign_flows", json_object_new_int((int)r->fit.n_foreign));
	json_object_object_add(fit, "foreign_rate", json_object_new_double(r->fit.foreign_rate));
	json_object_object_add(fit, "foreign_rate_hi", json_object_new_double(r->fit.foreign_rate_hi));
	json_object_object_add(fit, "span_s", json_object_new_double(r->fit.span_s));
	char range[32];
	snprintf(range, sizeof(range), "%u-%u", (unsigned)r->fit.range_lo, (unsigned)r->fit.range_hi);
	json_object_object_add(fit, "range", json_object_new_string(range));
	json_object_object_add(fit, "against", json_object_new_int((int)r->fit.n_against));
	const struct rp_port_range *pr = &r->fit.port_range;
	json_object_object_add(fit, "range_from", range_how_str(pr->how) ? json_object_new_string(range_how_str(pr->how)) : NULL);
	if (pr->how == RP_RANGE_SPREAD)
		json_object_object_add(fit, "range_p_chance", json_object_new_double(pr->p_chance));
	if (pr->how != RP_RANGE_NONE)
		json_object_object_add(fit, "range_aligned", json_object_new_boolean(pr->aligned));
	json_object_object_add(o, "fit", fit);
	struct json_object *win = json_object_new_object();
	json_object_object_add(win, "horizon_s", json_object_new_double(r->horizon_s));
	json_object_object_add(win, "k_max", json_object_new_int((int)r->pred.k_max));
	json_object_object_add(win, "expected_foreign", json_object_new_double(r->pred.expected_foreign));
	json_object_object_add(o, "window", win);
	json_object_object_add(o, "duration_s", json_object_new_double(r->duration_s));
	return o;
}
