/* SPDX-License-Identifier: MIT */
/* rawpunch punch's --report (punch_cli.h): a JSON account of the attempt, made from the pipeline's
 * result. Keys in this order: version, session, started, pcap, self, role, peer, rendezvous |
 * serverless, plan, (packets_total on a punch failure), rounds, result, why. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/jsonnum.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/punch_cli.h"

void punch_report_init(struct punch_report *rep, const struct punch_cfg *c)
{
	rep->root = json_object_new_object();
	rep->result = NULL;
	json_object_object_add(rep->root, "version", json_object_new_int(1));
	json_object_object_add(rep->root, "session", json_object_new_string(c->session));
	json_object_object_add(rep->root, "started", json_object_new_int64((int64_t)time(NULL)));
	json_object_object_add(rep->root, "pcap", c->pcap ? json_object_new_string(c->pcap) : NULL);
}

static struct json_object *ms_or_null(double ms)
{
	return ms < 0 ? NULL : rp_json_fixed(ms, 1);
}

static struct json_object *endpoint(uint32_t addr, uint16_t port)
{
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN + 8];
	snprintf(b, sizeof(b), "%s:%u", rp_ip_str(addr, a), port);
	return json_object_new_string(b);
}

static struct json_object *rendezvous_json(const struct rp_punch_meeting *m)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "rtt_ms", rp_json_fixed((double)m->rtt_ns / 1e6, 3));
	json_object_object_add(o, "peer_rtt_ms", rp_json_fixed((double)m->peer_rtt_ns / 1e6, 3));
	json_object_object_add(o, "relay_rtt_ms", rp_json_fixed((double)m->relay_rtt_ns / 1e6, 3));
	json_object_object_add(o, "clock_err_ms", rp_json_fixed((double)m->clock_err_ns / 1e6, 3));
	json_object_object_add(o, "offset_ms", rp_json_fixed((double)m->offset_ns / 1e6, 3));
	return o;
}

/* The rest of the set-up's breakdown (null: not run): connect_ms (to the rendezvous server), clock_ms
 * (the clock sync, part of join_ms), lead_ms (from the end of the meeting to T of round 0: what PLAN,
 * SETUP and the wait for T take), lead_proposed_ms (the lead this side proposed), plan_ms, setup_ms,
 * handoff_ms. */
static void stage_times(struct json_object *o, const struct rp_punch_result *res)
{
	const struct rp_punch_meeting *m = &res->meet;
	bool met = res->have_peer && m->met_ns;
	json_object_object_add(o, "connect_ms", ms_or_null(res->stage_ms[RP_STAGE_CONNECT]));
	json_object_object_add(o, "clock_ms", met && m->via_server ? rp_json_fixed((double)m->clock_sync_ns / 1e6, 1) : NULL);
	json_object_object_add(o, "lead_ms", met ? rp_json_fixed(((double)m->start_ns - (double)m->met_ns) / 1e6, 1) : NULL);
	json_object_object_add(o, "lead_proposed_ms", met && m->via_server ? rp_json_fixed((double)m->lead_ns / 1e6, 1) : NULL);
	json_object_object_add(o, "plan_ms", ms_or_null(res->stage_ms[RP_STAGE_PLAN]));
	json_object_object_add(o, "setup_ms", ms_or_null(res->stage_ms[RP_STAGE_SETUP]));
	json_object_object_add(o, "handoff_ms", ms_or_null(res->stage_ms[RP_STAGE_HANDOFF]));
}

/* A run that connected, or whose handoff failed (ok false). */
static struct json_object *result_connected(const struct rp_punch_result *res, double meet_ms)
{
	struct json_object *o = json_object_new_object();
	bool relay = res->path == RP_PATH_RELAY;
	bool ok = res->fd >= 0 || relay;
	double punch_ms = res->n_rounds ? res->rounds[res->n_rounds - 1].st.t_established_ms : -1;
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "path", !ok ? NULL : json_object_new_string(relay ? "relay" :
									  rp_handoff_path_name(res->handoff.path)));
	/* direct | relay | relay->direct, and the relay's figures */
	json_object_object_add(o, "route", json_object_new_string(rp_punch_path_str(res->path)));
	if (res->path == RP_PATH_RELAY || res->path == RP_PATH_RELAY_DIRECT) {
		json_object_object_add(o, "relay_server", endpoint(res->relay_server.sin_addr.s_addr, ntohs(res->relay_server.sin_port)));
		json_object_object_add(o, "relayed", endpoint(res->meet.self_relayed.sin_addr.s_addr, ntohs(res->meet.self_relayed.sin_port)));
		json_object_object_add(o, "peer_relayed", endpoint(res->meet.peer_relayed.sin_addr.s_addr, ntohs(res->meet.peer_relayed.sin_port)));
		json_object_object_add(o, "time_to_relay_ms", rp_json_fixed(res->t_relay_ms, 1));
	}
	if (res->relay_why[0])
		json_object_object_add(o, "relay_why", json_object_new_string(res->relay_why));
	json_object_object_add(o, "local", endpoint(res->laddr, res->lport));
	json_object_object_add(o, "remote", endpoint(res->raddr, res->rport));
	json_object_object_add(o, "time_to_connect_ms", rp_json_fixed(res->t_connected_ms, 1));
	json_object_object_add(o, "punch_ms", rp_json_fixed(punch_ms, 1));
	json_object_object_add(o, "probe_ms", rp_json_fixed(res->stage_ms[RP_STAGE_PROBE], 1));
	json_object_object_add(o, "join_ms", rp_json_fixed(meet_ms, 1));
	stage_times(o, res);
	json_object_object_add(o, "rounds", json_object_new_int((int)res->n_rounds));
	json_object_object_add(o, "packets_total", json_object_new_int64((int64_t)res->totals.packets_sent));
	json_object_object_add(o, "kernel_rsts_dropped",      /* null: the guard's counter was unreadable */
			       res->totals.guard_dropped >= 0 ? json_object_new_int64(res->totals.guard_dropped) : NULL);
	if (res->handoff.repair_errno)
		json_object_object_add(o, "repair_errno", json_object_new_string(strerror(res->handoff.repair_errno)));
	return o;
}

static struct json_object *result_failed(const struct rp_punch_result *res, double meet_ms)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "stage", json_object_new_string(rp_punch_stage_str(res->stage)));
	json_object_object_add(o, "path", NULL);
	json_object_object_add(o, "probe_ms", ms_or_null(res->stage_ms[RP_STAGE_PROBE]));
	json_object_object_add(o, "join_ms", ms_or_null(meet_ms));
	stage_times(o, res);
	json_object_object_add(o, "rounds", json_object_new_int((int)res->n_rounds));
	if (res->relay_why[0])
		json_object_object_add(o, "relay_why", json_object_new_string(res->relay_why));
	json_object_object_add(o, "total_ms", rp_json_fixed(res->t_end_ms, 1));
	return o;
}

/* The PORTMAP stage: what this side was granted (or why not), how long the pipeline waited for it,
 * and which side's mapping opened the way (the plan "mapped": its protocol). */
static struct json_object *portmap_json(const struct rp_punch_result *res)
{
	struct json_object *o = json_object_new_object();
	const struct rp_natinfo *ni = &res->self, *pe = &res->meet.peer;
	const char *by = NULL;
	json_object_object_add(o, "protocol", ni->pm_port ? json_object_new_string(ni->pm_proto) : NULL);
	json_object_object_add(o, "error", ni->pm_error[0] ? json_object_new_string(ni->pm_error) : NULL);
	json_object_object_add(o, "asked_ms", rp_json_fixed(ni->pm_ms, 1));
	json_object_object_add(o, "wait_ms", ms_or_null(res->stage_ms[RP_STAGE_PORTMAP]));
	if (res->have_plan && !strcmp(rp_plan_name(&res->plan_now), "mapped"))
		by = ni->pm_port ? ni->pm_proto : res->have_peer && pe->pm_port ? pe->pm_proto : NULL;
	json_object_object_add(o, "opened_by", by ? json_object_new_string(by) : NULL);
	return o;
}

void punch_report_run(struct punch_report *rep, const struct rp_punch_result *res)
{
	struct json_object *root = rep->root, *rounds = json_object_new_array();
	double meet_ms = res->stage_ms[res->serverless ? RP_STAGE_OFFER : RP_STAGE_JOIN];
	bool connected = res->stage == RP_STAGE_DONE || res->stage == RP_STAGE_HANDOFF;
	if (res->have_self)
		json_object_object_add(root, "self", rp_natinfo_to_json(&res->self));
	if (res->have_self && res->self.pm_asked)
		json_object_object_add(root, "portmap", portmap_json(res));
	if (res->have_peer) {
		json_object_object_add(root, "role", json_object_new_string(res->meet.me ? "b" : "a"));
		json_object_object_add(root, "peer", rp_natinfo_to_json(&res->meet.peer));
		if (res->serverless)    /* the offering side is side a */
			json_object_object_add(root, "serverless", json_object_new_string(res->meet.me ? "answer" : "offer"));
		else
			json_object_object_add(root, "rendezvous", rendezvous_json(&res->meet));
	}
	if (res->have_plan)
		json_object_object_add(root, "plan", rp_plan_to_json(&res->plan));
	if (res->stage == RP_STAGE_PUNCH && res->error)
		json_object_object_add(root, "packets_total", json_object_new_int64((int64_t)res->totals.packets_sent));
	for (unsigned i = 0; i < res->n_rounds; i++) {
		struct json_object *rj = rp_punch_round_to_json(&res->rounds[i].st);
		if (i > 0)    /* a re-planned round says what it ran */
			json_object_object_add(rj, "plan", rp_plan_to_json(&res->rounds[i].plan));
		json_object_array_add(rounds, rj);
	}
	json_object_object_add(root, "rounds", rounds);
	rep->result = connected ? result_connected(res, meet_ms) : result_failed(res, meet_ms);
	json_object_object_add(root, "result", rep->result);
	json_object_object_add(root, "why", res->stage == RP_STAGE_DONE ? NULL : json_object_new_string(res->why));
}

void punch_report_switch(struct punch_report *rep, const struct rp_switch_stats *st, uint64_t t0_ns)
{
	if (!rep->result)
		return;
	json_object_object_add(rep->result, "bytes_out_relay", json_object_new_int64((int64_t)st->sent_relay));
	json_object_object_add(rep->result, "bytes_in_relay", json_object_new_int64((int64_t)st->recv_relay));
	json_object_object_add(rep->result, "switched", json_object_new_boolean(st->switched));
	json_object_object_add(rep->result, "handed_back", json_object_new_boolean(st->handed_back));
	json_object_object_add(rep->result, "time_to_first_byte_ms",
			       st->t_first_rx_ns ? rp_json_fixed((double)(st->t_first_rx_ns - t0_ns) / 1e6, 1) : NULL);
	json_object_object_add(rep->result, "time_to_switch_ms",
			       st->t_switch_ns ? rp_json_fixed((double)(st->t_switch_ns - t0_ns) / 1e6, 1) : NULL);
}

void punch_report_data(struct punch_report *rep, const struct rp_relay_stats *rs, double total_ms)
{
	if (!rep->result)
		return;
	json_object_object_add(rep->result, "bytes_out", json_object_new_int64((int64_t)rs->a_to_b));
	json_object_object_add(rep->result, "bytes_in", json_object_new_int64((int64_t)rs->b_to_a));
	json_object_object_add(rep->result, "total_ms", rp_json_fixed(total_ms, 1));
}

int punch_report_write(const struct punch_report *rep, FILE *f)
{
	if (!f)
		return 0;
	rp_json_tidy(rep->root);   /* numbers rounded to what they mean */
	const char *s = json_object_to_json_string_ext(rep->root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (fflush(f) || fseek(f, 0, SEEK_SET) || fputs(s, f) < 0 || fputc('\n', f) == EOF || fflush(f))
		return errno ? -errno : -EIO;
	long len = ftell(f);
	if (len < 0 || ftruncate(fileno(f), (off_t)len))
		return -errno;
	return 0;
}

void punch_report_free(struct punch_report *rep)
{
	json_object_put(rep->root);
	rep->root = rep->result = NULL;
}
