/* SPDX-License-Identifier: MIT */
/* One punch round's figures as JSON (punch.h: rp_punch_round_to_json), for the --report. */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "rawpunch/base/jsonnum.h"
#include "rawpunch/punch/punch.h"

static struct json_object *span_json(uint32_t n, uint16_t lo, uint16_t hi)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "n", json_object_new_int64(n));
	json_object_object_add(o, "lo", json_object_new_int(lo));
	json_object_object_add(o, "hi", json_object_new_int(hi));
	return o;
}

static struct json_object *ms_json(double v)
{
	return v < 0 ? NULL : rp_json_fixed(v, 1);
}

struct json_object *rp_punch_round_to_json(const struct rp_punch_round_stats *st)
{
	struct json_object *o = json_object_new_object(), *x;
	if (!o)
		return NULL;
	/* numbered from 1, as the status lines and -v traces number rounds (st->round counts from 0) */
	json_object_object_add(o, "round", json_object_new_int((int)st->round + 1));
	json_object_object_add(o, "method", json_object_new_string(rp_strategy_name(st->strategy)));
	json_object_object_add(o, "action", json_object_new_string(rp_action_str(st->action)));
	json_object_object_add(o, "primed", json_object_new_boolean(st->primed));
	json_object_object_add(o, "low_ttl", json_object_new_int(st->prime_ttl));
	json_object_object_add(o, "local_ports", span_json(st->n_local, st->local_lo, st->local_hi));
	json_object_object_add(o, "remote_ports", span_json(st->n_remote, st->remote_lo, st->remote_hi));
	x = json_object_new_object();
	json_object_object_add(x, "primes", json_object_new_int64((int64_t)st->primes_sent));
	json_object_object_add(x, "syns", json_object_new_int64((int64_t)st->syns_sent));
	json_object_object_add(x, "handshake", json_object_new_int64((int64_t)st->handshake_sent));
	json_object_object_add(x, "errors", json_object_new_int64((int64_t)st->send_errors));
	json_object_object_add(x, "total", json_object_new_int64((int64_t)(st->primes_sent + st->syns_sent +
									   st->handshake_sent)));
	json_object_object_add(o, "sent", x);
	x = json_object_new_object();
	json_object_object_add(x, "syn", json_object_new_int64(st->rx_syn));
	json_object_object_add(x, "syn_ack", json_object_new_int64(st->rx_synack));
	json_object_object_add(x, "rst", json_object_new_int64(st->rx_rst));
	json_object_object_add(x, "icmp", json_object_new_int64(st->rx_icmp));
	json_object_object_add(x, "icmp_ttl_exceeded", json_object_new_int64(st->rx_icmp_ttl));
	json_object_object_add(x, "forged", json_object_new_int64(st->rx_forged));
	json_object_object_add(x, "other", json_object_new_int64(st->rx_other));
	json_object_object_add(x, "stray", json_object_new_int64(st->rx_stray));
	json_object_object_add(o, "seen", x);
	json_object_object_add(o, "trigger", st->trigger ? json_object_new_string(st->trigger) : NULL);
	if (st->defined) {
		x = json_object_new_object();
		json_object_object_add(x, "local_port", json_object_new_int(st->lport));
		json_object_object_add(x, "remote_port", json_object_new_int(st->rport));
		json_object_object_add(o, "flow", x);
	} else {
		json_object_object_add(o, "flow", NULL);
	}
	json_object_object_add(o, "established", json_object_new_boolean(st->established));
	json_object_object_add(o, "late_ms", ms_json(st->late_ms < 0 ? 0 : st->late_ms));
	json_object_object_add(o, "first_rx_ms", ms_json(st->t_first_rx_ms));
	json_object_object_add(o, "established_ms", ms_json(st->t_established_ms));
	json_object_object_add(o, "duration_ms", ms_json(st->duration_ms));
	json_object_object_add(o, "result", json_object_new_string(st->result == 0 ? "ok" :
								  st->result == -ETIMEDOUT ? "miss" :
								  st->result == -EINTR ? "interrupted" : strerror(-st->result)));
	json_object_object_add(o, "why", json_object_new_string(st->why));
	return o;
}
