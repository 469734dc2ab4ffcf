/* SPDX-License-Identifier: MIT */
/* rp_natinfo: the names of its enums and its JSON form (see natinfo.h). Pure. */
#include "rawpunch/probe/natinfo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const map_names[] = { "unknown", "endpoint-independent", "address-dependent",
					 "address-and-port-dependent" };
static const char *const alloc_names[] = { "unknown", "preserving", "sequential", "random" };
static const char *const filter_names[] = { "unknown", "rst", "drop", "icmp", "open" };
static const char *const ttl_method_names[] = { "unknown", "confirmed", "hops", "fallback" };

#define NNAMES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int n, int v)
{
	return v >= 0 && v < n ? names[v] : "unknown";
}

static int parse_name(const char *const *names, int n, const char *s, int *out)
{
	for (int i = 0; s && i < n; i++)
		if (!strcmp(names[i], s)) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

const char *rp_mapping_str(enum rp_mapping m) { return name_of(map_names, NNAMES(map_names), (int)m); }
const char *rp_alloc_str(enum rp_alloc a) { return name_of(alloc_names, NNAMES(alloc_names), (int)a); }
const char *rp_filter_str(enum rp_filter f) { return name_of(filter_names, NNAMES(filter_names), (int)f); }
const char *rp_ttl_method_str(enum rp_ttl_method m)
{
	return name_of(ttl_method_names, NNAMES(ttl_method_names), (int)m);
}

int rp_mapping_parse(const char *s, enum rp_mapping *m)
{
	int v, r = parse_name(map_names, NNAMES(map_names), s, &v);
	if (!r)
		*m = (enum rp_mapping)v;
	return r;
}

int rp_alloc_parse(const char *s, enum rp_alloc *a)
{
	int v, r = parse_name(alloc_names, NNAMES(alloc_names), s, &v);
	if (!r)
		*a = (enum rp_alloc)v;
	return r;
}

int rp_filter_parse(const char *s, enum rp_filter *f)
{
	int v, r = parse_name(filter_names, NNAMES(filter_names), s, &v);
	if (!r)
		*f = (enum rp_filter)v;
	return r;
}

int rp_ttl_method_parse(const char *s, enum rp_ttl_method *m)
{
	int v, r = parse_name(ttl_method_names, NNAMES(ttl_method_names), s, &v);
	if (!r)
		*m = (enum rp_ttl_method)v;
	return r;
}

static struct json_object *endpoint_json(uint32_t addr, uint16_t port)
{
	char ip[INET_ADDRSTRLEN], buf[INET_ADDRSTRLEN + 8];
	struct in_addr a = { .s_addr = addr };
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	snprintf(buf, sizeof(buf), "%s:%u", ip, (unsigned)port);
	return json_object_new_string(buf);
}

static int endpoint_parse(const char *s, uint32_t *addr, uint16_t *port)
{
	char ip[INET_ADDRSTRLEN];
	const char *colon = s ? strrchr(s, ':') : NULL;
	struct in_addr a;
	char *end;
	unsigned long p;
	if (!colon || (size_t)(colon - s) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = 0;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return -EINVAL;
	p = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || p > 65535)
		return -EINVAL;
	*addr = a.s_addr;
	*port = (uint16_t)p;
	return 0;
}

struct json_object *rp_natinfo_to_json(const struct rp_natinfo *ni)
{
	struct json_object *o = json_object_new_object(), *pred;
	if (!o)
		return NULL;
	json_object_object_add(o, "local", endpoint_json(ni->local_addr, ni->local_port));
	json_object_object_add(o, "mapped", endpoint_json(ni->mapped_addr, ni->mapped_port));
	json_object_object_add(o, "behind_nat", json_object_new_boolean(ni->behind_nat));
	json_object_object_add(o, "mapping", json_object_new_string(rp_mapping_str(ni->mapping)));
	json_object_object_add(o, "allocation", json_object_new_string(rp_alloc_str(ni->alloc)));
	json_object_object_add(o, "delta", ni->has_delta ? json_object_new_int(ni->delta) : NULL);
	json_object_object_add(o, "jitter", json_object_new_double(ni->jitter));
	pred = json_object_new_array();
	for (unsigned i = 0; pred && i < ni->n_predicted && i < RP_MAX_PREDICT; i++)
		json_object_array_add(pred, json_object_new_int(ni->predicted[i]));
	json_object_object_add(o, "predicted", pred);
	json_object_object_add(o, "confidence", json_object_new_double(ni->confidence));
	json_object_object_add(o, "filtering", json_object_new_string(rp_filter_str(ni->filtering)));
	json_object_object_add(o, "nat_ttl", json_object_new_int(ni->nat_ttl));
	json_object_object_add(o, "nat_ttl_method", json_object_new_string(rp_ttl_method_str(ni->nat_ttl_method)));
	json_object_object_add(o, "server_hops", json_object_new_int(ni->server_hops));
	struct json_object *range = NULL;
	if (ni->has_range && (range = json_object_new_object())) {
		json_object_object_add(range, "lo", json_object_new_int(ni->range_lo));
		json_object_object_add(range, "hi", json_object_new_int(ni->range_hi));
		json_object_object_add(range, "confidence", json_object_new_double(ni->range_confidence));
	}
	json_object_object_add(o, "range", range);
	return o;
}

static const char *get_str(const struct json_object *o, const char *k)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int get_num(const struct json_object *o, const char *k, double lo, double hi, double *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, k, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return -EINVAL;
	*out = json_object_get_double(v);
	return *out >= lo && *out <= hi ? 0 : -EINVAL;
}

int rp_natinfo_from_json(const struct json_object *o, struct rp_natinfo *ni)
{
	struct json_object *v, *pred;
	double d;
	memset(ni, 0, sizeof(*ni));
	if (!o || !json_object_is_type(o, json_type_object))
		return -EINVAL;
	if (endpoint_parse(get_str(o, "local"), &ni->local_addr, &ni->local_port) ||
	    endpoint_parse(get_str(o, "mapped"), &ni->mapped_addr, &ni->mapped_port) ||
	    rp_mapping_parse(get_str(o, "mapping"), &ni->mapping) ||
	    rp_alloc_parse(get_str(o, "allocation"), &ni->alloc) ||
	    rp_filter_parse(get_str(o, "filtering"), &ni->filtering))
		return -EINVAL;
	if (json_object_object_get_ex(o, "behind_nat", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			return -EINVAL;
		ni->behind_nat = json_object_get_boolean(v);
	}
	if (!json_object_object_get_ex(o, "delta", &v))
		return -EINVAL;
	if (v) {
		if (get_num(o, "delta", -65535, 65535, &d) || d != (int32_t)d)
			return -EINVAL;
		ni->has_delta = true;
		ni->delta = (int32_t)d;
	}
	if (get_num(o, "jitter", 0, 65535, &ni->jitter) || get_num(o, "confidence", 0, 1, &ni->confidence))
		return -EINVAL;
	/* null: not measured, as people's JSON spells it (probe --json, the report); 0 on the wire */
	if (json_object_object_get_ex(o, "nat_ttl", &v) && !v)
		d = 0;
	else if (get_num(o, "nat_ttl", 0, 255, &d) || d != (uint8_t)d)
		return -EINVAL;
	ni->nat_ttl = (uint8_t)d;
	/* added with issue 11: optional, strict when present */
	if (json_object_object_get_ex(o, "nat_ttl_method", &v) &&
	    (!json_object_is_type(v, json_type_string) || rp_ttl_method_parse(json_object_get_string(v), &ni->nat_ttl_method)))
		return -EINVAL;
	if (json_object_object_get_ex(o, "server_hops", &v)) {
		if (get_num(o, "server_hops", 0, 255, &d) || d != (uint8_t)d)
			return -EINVAL;
		ni->server_hops = (uint8_t)d;
	}
	if (json_object_object_get_ex(o, "range", &v) && v) {
		double lo, hi;
		if (!json_object_is_type(v, json_type_object) || get_num(v, "lo", 1, 65535, &lo) || lo != (uint16_t)lo ||
		    get_num(v, "hi", lo, 65535, &hi) || hi != (uint16_t)hi ||
		    get_num(v, "confidence", 0, 1, &ni->range_confidence))
			return -EINVAL;
		ni->has_range = true;
		ni->range_lo = (uint16_t)lo;
		ni->range_hi = (uint16_t)hi;
	}
	if (!json_object_object_get_ex(o, "predicted", &pred) || !json_object_is_type(pred, json_type_array) ||
	    json_object_array_length(pred) > RP_MAX_PREDICT)
		return -EINVAL;
	for (size_t i = 0; i < json_object_array_length(pred); i++) {
		struct json_object *e = json_object_array_get_idx(pred, i);
		int64_t p;
		if (!json_object_is_type(e, json_type_int))
			return -EINVAL;
		p = json_object_get_int64(e);
		if (p < 1 || p > 65535)
			return -EINVAL;
		ni->predicted[ni->n_predicted++] = (uint16_t)p;
	}
	return 0;
}
