/* SPDX-License-Identifier: MIT */
/* 'rawpunch portmap': ask the NAT for a port mapping (PCP, NAT-PMP, UPnP-IGD), hold it, delete it. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/base/trace.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/portmap/portmap.h"

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
	rp_cli_note_signal(sig);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch portmap --port PORT [--protocols pcp,natpmp,upnp] [--lifetime S] [--hold S] [--json]\n"
		"       rawpunch portmap --delete --port PORT\n"
		"\n"
		"Ask the NAT in front of this host (the default gateway) to map PORT: PCP (RFC 6887), NAT-PMP\n"
		"(RFC 6886) and UPnP-IGD are asked at once whether they are there, then the first that is, in\n"
		"that order, makes the one mapping. It is printed, kept (refreshed at half its lifetime) until\n"
		"--hold runs out or SIGINT/SIGTERM/SIGHUP, then deleted. A killed run's mapping is deleted by\n"
		"the next run (recorded in /run/rawpunch or $XDG_RUNTIME_DIR/rawpunch).\n"
		"\n"
		"  --port PORT            the local (internal) port to map\n"
		"  --protocols LIST       any of pcp, natpmp, upnp, comma-separated (default: all)\n"
		"  --lifetime S           lifetime asked for, 1..86400 s (default %u); refreshed while held\n"
		"  --external-port P      the external port wished for (default: PORT)\n"
		"  --udp                  map UDP instead of TCP\n"
		"  --peer HOST:PORT       PCP PEER: map (or learn) the external port of the flow PORT -> HOST:PORT\n"
		"  --gateway IP           ask this gateway instead of the default route's\n"
		"  --timeout MS           how long to wait for a service to answer, 10..10000 (default %d)\n"
		"  --hold S               delete the mapping after S seconds (default: hold until a signal)\n"
		"  --delete               delete what a killed run left for PORT (its record), then exit\n"
		"  --json                 print the result as one JSON object\n"
		"\n"
		"Exit status: 0 when mapped (and deleted at the end), 1 when no service granted it, 2 on bad usage.\n",
		RP_PM_DEFAULT_LIFETIME, RP_PM_DEFAULT_TIMEOUT_MS);
}

static const char *ep(uint32_t a, uint16_t p, char *buf, size_t cap)
{
	char b[INET_ADDRSTRLEN];
	snprintf(buf, cap, "%s:%u", rp_ip_str(a, b), p);
	return buf;
}

static struct json_object *jms(double ms)
{
	char b[32];
	if (ms < 0)
		return NULL;
	snprintf(b, sizeof(b), "%.3f", ms);
	return json_object_new_double_s(ms, b);
}

static struct json_object *to_json(const struct rp_portmap *m, int rc)
{
	struct json_object *j = json_object_new_object(), *att = json_object_new_object();
	char b[64];
	json_object_object_add(j, "ok", json_object_new_boolean(rc == 0));
	if (rc == 0) {
		const struct rp_pm_record *r = &m->rec;
		json_object_object_add(j, "protocol", json_object_new_string(rp_pm_proto_name(r->proto)));
		json_object_object_add(j, "ipproto", json_object_new_string(r->ipproto == IPPROTO_UDP ? "udp" : "tcp"));
		json_object_object_add(j, "gateway", json_object_new_string(rp_ip_str(r->gateway, b)));
		json_object_object_add(j, "internal", json_object_new_string(ep(r->internal_addr, r->internal_port, b, sizeof(b))));
		json_object_object_add(j, "external", json_object_new_string(ep(r->external_addr, r->external_port, b, sizeof(b))));
		json_object_object_add(j, "external_port", json_object_new_int(r->external_port));
		json_object_object_add(j, "lifetime", json_object_new_int64(m->lifetime_s));
		json_object_object_add(j, "peer", r->peer_port ? json_object_new_string(ep(r->peer_addr, r->peer_port, b, sizeof(b))) : NULL);
		json_object_object_add(j, "state_file", m->state_path[0] ? json_object_new_string(m->state_path) : NULL);
	} else {
		json_object_object_add(j, "error", json_object_new_string(strerror(-rc)));
	}
	json_object_object_add(j, "elapsed_ms", jms(m->total_ms));
	json_object_object_add(j, "swept", json_object_new_int((int)m->swept));
	for (unsigned p = 0; p < RP_PM_NPROTO; p++) {
		const struct rp_pm_attempt *a = &m->att[p];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "tried", json_object_new_boolean(a->tried));
		json_object_object_add(o, "present", json_object_new_boolean(a->present));
		json_object_object_add(o, "mapped", json_object_new_boolean(a->mapped));
		json_object_object_add(o, "found_ms", jms(a->found_ms));
		json_object_object_add(o, "map_ms", jms(a->map_ms));
		json_object_object_add(o, "code", json_object_new_int(a->code));
		json_object_object_add(o, "why", a->why[0] ? json_object_new_string(a->why) : NULL);
		json_object_object_add(att, rp_pm_proto_name((enum rp_pm_proto)p), o);
	}
	json_object_object_add(j, "attempts", att);
	return j;
}

/* One line per protocol asked: what it did and why not. */
static void attempts(const struct rp_portmap *m, FILE *f)
{
	for (unsigned p = 0; p < RP_PM_NPROTO; p++) {
		const struct rp_pm_attempt *a = &m->att[p];
		if (!a->tried)
			continue;
		fprintf(f, "  %-6s ", rp_pm_proto_name((enum rp_pm_proto)p));
		if (a->mapped)
			fprintf(f, "mapped (answered after %.1f ms, mapping took %.1f ms)\n", a->found_ms, a->map_ms);
		else if (a->present && a->map_ms < 0)
			fprintf(f, "answered after %.1f ms (not asked to map: %s did)\n", a->found_ms,
				m->active ? rp_pm_proto_name(m->rec.proto) : "none");
		else if (a->present)
			fprintf(f, "answered after %.1f ms, did not map: %s\n", a->found_ms, a->why);
		else if (m->active)
			fprintf(f, "%s\n", a->why[0] ? a->why : "not needed");
		else
			fprintf(f, "%s\n", a->why[0] ? a->why : "no answer");
	}
}

static int do_delete(uint16_t port, int timeout_ms, bool json)
{
	struct rp_pm_sweep st;
	int n = rp_portmap_sweep(NULL, port, timeout_ms, &st);
	if (n < 0)
		return rp_err_errno(n, "portmap --delete: the records");
	if (json) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "deleted", json_object_new_int((int)st.undone));
		json_object_object_add(j, "expired", json_object_new_int((int)st.expired));
		json_object_object_add(j, "failed", json_object_new_int((int)st.failed));
		json_object_object_add(j, "held_by_pid", st.live ? json_object_new_int64(st.live_pid) : NULL);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	} else if (st.undone || st.expired) {
		printf("deleted %u mapping(s) of port %u left by killed runs (%u had expired already)\n",
		       st.undone + st.expired, port, st.expired);
	}
	if (st.failed)
		return rp_err_errno(st.last_err, "portmap --delete: the gateway did not delete a leftover mapping");
	if (st.live) {
		rp_err("portmap --delete: port %u is held by rawpunch pid %ld, still running", port, st.live_pid);
		rp_hint("stop it (kill -TERM %ld): it deletes its mapping on the way out", st.live_pid);
		return 1;
	}
	if (!st.undone && !st.expired) {
		rp_err("portmap --delete: nothing recorded for port %u in this network namespace", port);
		return 1;
	}
	return 0;
}

/* Hold m: refresh at half its lifetime until hold_s runs out (< 0: until a signal). */
static int hold(struct rp_portmap *m, long hold_s)
{
	uint64_t end = hold_s >= 0 ? (uint64_t)hold_s * 1000u : 0;
	uint64_t waited = 0;
	int failures = 0;
	while (!stop_sig && (hold_s < 0 || waited < end)) {
		int64_t due = rp_portmap_due_ms(m);
		int64_t wait = due;
		if (hold_s >= 0 && (int64_t)(end - waited) < wait)
			wait = (int64_t)(end - waited);
		if (wait > 1000)
			wait = 1000;
		if (wait > 0) {
			poll(NULL, 0, (int)wait);     /* a signal ends it early */
			waited += (uint64_t)wait;
			continue;
		}
		if (due > 0)
			continue;
		uint16_t before = m->rec.external_port;
		int e = rp_portmap_refresh(m, 0);
		if (e) {
			fprintf(stderr, "portmap: refresh failed: %s%s%s\n", strerror(-e),
				m->att[m->rec.proto].why[0] ? ": " : "", m->att[m->rec.proto].why);
			if (++failures >= 3) {
				rp_err("portmap: %d refreshes in a row failed: giving up the mapping", failures);
				return 1;
			}
			poll(NULL, 0, 1000);
			waited += 1000;
			continue;
		}
		failures = 0;
		if (m->rec.external_port != before)
			fprintf(stderr, "portmap: refreshed: the external port is now %u (was %u)\n", m->rec.external_port,
				before);
	}
	return 0;
}

int cmd_portmap(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "protocols", required_argument, NULL, 'P' },
		{ "lifetime", required_argument, NULL, 'l' },
		{ "external-port", required_argument, NULL, 'e' },
		{ "udp", no_argument, NULL, 'u' },
		{ "peer", required_argument, NULL, 'r' },
		{ "gateway", required_argument, NULL, 'g' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hold", required_argument, NULL, 'H' },
		{ "delete", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct rp_portmap_opts o = { .ipproto = IPPROTO_TCP };
	bool json = false, del = false;
	long hold_s = -1;
	const char *map_opt = NULL;   /* the last option about a new mapping (not for --delete) */
	unsigned long v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("portmap", "--port: want 1..65535, got '%s'", optarg);
			o.internal_port = (uint16_t)v;
			break;
		case 'P':
			map_opt = "--protocols";
			if (rp_pm_parse_protocols(optarg, &o.protocols))
				return rp_usage_err("portmap", "--protocols: want pcp, natpmp, upnp (comma-separated), got '%s'", optarg);
			break;
		case 'l':
			map_opt = "--lifetime";
			if (rp_parse_ulong(optarg, 1, 86400, &v))
				return rp_usage_err("portmap", "--lifetime: want 1..86400 seconds, got '%s'", optarg);
			o.lifetime_s = (uint32_t)v;
			break;
		case 'e':
			map_opt = "--external-port";
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("portmap", "--external-port: want 1..65535, got '%s'", optarg);
			o.external_port = (uint16_t)v;
			break;
		case 'u':
			map_opt = "--udp";
			o.ipproto = IPPROTO_UDP;
			break;
		case 'r': {
			map_opt = "--peer";
			struct sockaddr_in sa;
			if (rp_parse_hostport(optarg, 0, &sa) || !sa.sin_port)
				return rp_usage_err("portmap", "--peer: want HOST:PORT, got '%s'", optarg);
			o.peer_addr = sa.sin_addr.s_addr;
			o.peer_port = ntohs(sa.sin_port);
			break;
		}
		case 'g':
			map_opt = "--gateway";
			if (rp_parse_ipv4(optarg, &o.gateway) || !o.gateway)
				return rp_usage_err("portmap", "--gateway: want an IPv4 address, got '%s'", optarg);
			break;
		case 't':
			if (rp_parse_ulong(optarg, 10, 10000, &v))
				return rp_usage_err("portmap", "--timeout: want 10..10000 ms, got '%s'", optarg);
			o.timeout_ms = (int)v;
			break;
		case 'H':
			map_opt = "--hold";
			if (rp_parse_ulong(optarg, 0, 30 * 86400, &v))
				return rp_usage_err("portmap", "--hold: want 0..2592000 seconds, got '%s'", optarg);
			hold_s = (long)v;
			break;
		case 'd':
			del = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return rp_usage_getopt("portmap", c, argv);
		}
	}
	if (optind < argc)
		return rp_usage_err("portmap", "unexpected argument '%s'", argv[optind]);
	if (!o.internal_port)
		return rp_usage_err("portmap", "--port PORT is required");
	if (del && map_opt)
		return rp_usage_err("portmap", "--delete removes what a killed run left for --port: %s is about a new "
				    "mapping", map_opt);
	if (o.peer_port && o.protocols && !(o.protocols & RP_PM_F(RP_PM_PCP)))
		return rp_usage_err("portmap", "--peer is PCP's PEER: --protocols must include pcp");
	/* asking a gateway takes no privilege: as root, run as the invoking user (or nobody) from here */
	if (rp_cli_enter(NULL, 0))
		return 1;
	if (del)
		return do_delete(o.internal_port, o.timeout_ms ? o.timeout_ms * 4 : 1000, json);

	/* Signals end the hold (and an interrupted request) the normal way, so the mapping is deleted. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct rp_portmap m;
	char g[INET_ADDRSTRLEN], a[64], b[64];
	int e = rp_portmap_request(&o, &m);
	if (json) {
		struct json_object *j = to_json(&m, e);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
		fflush(stdout);
	}
	if (m.swept)
		fprintf(stderr, "portmap: deleted %u mapping(s) left by killed runs first\n", m.swept);
	if (e) {
		if (e == -ENETUNREACH) {
			rp_err("portmap: no default gateway to ask (no IPv4 default route)");
			rp_hint("--gateway IP names one");
			return 1;
		}
		if (e == -EINVAL)
			return rp_usage_err("portmap", "invalid options");
		uint32_t gw = o.gateway;
		if (!gw && rp_pm_default_gateway(&gw))
			gw = 0;
		if (e == -ENOENT)
			rp_err("portmap: no port mapping service at %s answered in %.0f ms", gw ? rp_ip_str(gw, g) : "the gateway",
			       m.total_ms);
		else
			rp_err("portmap: the gateway %s did not grant the mapping of port %u (%s)",
			       gw ? rp_ip_str(gw, g) : "", o.internal_port, strerror(-e));
		attempts(&m, stderr);
		return 1;
	}
	const struct rp_pm_record *r = &m.rec;
	if (!json) {
		printf("%s %s %s -> %s lifetime %u s gateway %s\n", rp_pm_proto_name(r->proto),
		       r->ipproto == IPPROTO_UDP ? "udp" : "tcp", ep(r->external_addr, r->external_port, a, sizeof(a)),
		       ep(r->internal_addr, r->internal_port, b, sizeof(b)), m.lifetime_s, rp_ip_str(r->gateway, g));
		fflush(stdout);
	}
	fprintf(stderr, "portmap: %s mapped in %.1f ms:\n", rp_pm_proto_name(r->proto), m.total_ms);
	attempts(&m, stderr);
	if (m.state_err)
		fprintf(stderr, "portmap: warning: the mapping is not recorded (%s): if this process is killed, a later run "
			"cannot delete it\n", strerror(-m.state_err));
	if (hold_s != 0)
		fprintf(stderr, "portmap: holding it%s, refreshed every %u s; SIGINT/SIGTERM delete it\n",
			hold_s > 0 ? " for the --hold time" : "", m.lifetime_s / 2 ? m.lifetime_s / 2 : 1);
	int rc = hold(&m, hold_s);
	e = rp_portmap_delete(&m, 0);
	if (e) {
		rp_err("portmap: deleting the mapping failed: %s%s%s", strerror(-e), m.att[r->proto].why[0] ? ": " : "",
		       m.att[r->proto].why);
		rp_hint("it lapses by itself within its lifetime (%u s); the record stays, so a later run tries again",
			m.lifetime_s);
		return 1;
	}
	fprintf(stderr, "portmap: deleted %s %s%s\n", rp_pm_proto_name(r->proto),
		ep(r->external_addr, r->external_port, a, sizeof(a)),
		stop_sig ? " (on a signal)" : "");
	return rc;
}
