/* SPDX-License-Identifier: MIT */
/* 'rawpunch rendezvous': run the rendezvous server; as a client, join a session (prints the JSON
 * result) or ask for a filter probe. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "rawpunch/probe/stun.h"
#include "rawpunch/base/privs.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/base/io.h"
#include "rawpunch/probe/natinfo.h"
#include "rawpunch/rendezvous/client.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/rendezvous/server.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch rendezvous --listen ADDR[:PORT] [--max-sessions N] [--idle-timeout S]\n"
		"                           [--session-ttl S] [--paired-ttl S] [--max-per-addr N]\n"
		"                           [--probe-allow-private] [--user USER] [-v]\n"
		"       rawpunch rendezvous --join HOST[:PORT] --session NAME --secret-file FILE\n"
		"                           [--natinfo FILE.json] [--cand PORTS] [--timeout S] [--wait-start]\n"
		"       rawpunch rendezvous --filter-probe HOST[:PORT] --port P [--timeout-ms MS]\n"
		"\n"
		"Server: lets up to %d connections wait under one session id and forwards each one's sealed\n"
		"messages to the others (the peers skip what does not authenticate); it never sees the\n"
		"secret, the session name or what the peers exchange (see rawpunch/rendezvous/proto.h). Also answers\n"
		"clock samples and filter probes (it connects back to the requester's own address only).\n"
		"It needs no privilege at all: run it as a plain user (any port >= 1024 binds without a\n"
		"capability; no setcap needed). Started as root, or with file capabilities, it gives up every\n"
		"capability and, as root, becomes --user right after the listening socket is open, before it\n"
		"reads a byte from the network (a failure to do so is fatal). Every client is held to a\n"
		"message rate and a share of each round, its session members to a lifetime and a forwarding\n"
		"quota, and connections to what RLIMIT_NOFILE allows (see README, security).\n"
		"  --listen ADDR[:PORT]   address to listen on (port %d by default)\n"
		"  --max-sessions N       sessions at once (default 4096)\n"
		"  --idle-timeout S       close connections silent for S seconds (default 60)\n"
		"  --session-ttl S        an unpaired session expires after S seconds (default 300)\n"
		"  --paired-ttl S         a paired member is let go S seconds after it met company (default 120)\n"
		"  --max-per-addr N       connections at once from one client address (default 64); sessions\n"
		"                         opened from one address: N/2 (default 32). Many users behind one\n"
		"                         NAT share an address: keep it generous\n"
		"  --probe-allow-private  also filter-probe requesters seen at RFC 1918 or 100.64/10 addresses\n"
		"                         (a server on a LAN). Loopback, link-local, multicast/broadcast and the\n"
		"                         server's own addresses are never probed: behind a reverse proxy or\n"
		"                         docker-proxy every client looks like one, and the probe would scan\n"
		"                         the proxy host\n"
		"  --user USER            the user to run as once listening (as root; default: the invoking\n"
		"                         user from SUDO_UID, else nobody; 'root' keeps uid 0 without capabilities)\n"
		"  -v                     log events on stderr\n"
		"Client (for scripts and tests; 'rawpunch punch' uses the same library):\n"
		"  --join SERVER          join a session; prints the peer's natinfo, candidates, the agreed\n"
		"                         start time, role and the measured offset/RTTs as JSON\n"
		"  --session NAME         session name (1..255 bytes)\n"
		"  --secret-file FILE     shared secret (its bytes; one trailing newline is ignored). Use a\n"
		"                         random one: head -c 32 /dev/urandom | base64 > FILE\n"
		"  --natinfo FILE         this side's natinfo (as 'rawpunch probe --json' prints); default: empty\n"
		"  --cand PORTS           extra candidate ports, e.g. 40000,40010-40012\n"
		"  --timeout S            give up waiting for the peer after S seconds (default 30)\n"
		"  --wait-start           sleep until the agreed start and add \"fired_ns\" (CLOCK_REALTIME)\n"
		"  --filter-probe SERVER  ask SERVER to connect to this host's public address at --port P and\n"
		"                         print what came back: rst, drop, icmp or open\n",
		RV_MEMBERS_MAX, RV_DEFAULT_PORT);
}

static void log_line(void *arg, const char *line)
{
	struct timespec ts;
	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "%lld.%03ld %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000, line);
}

struct server_opts {
	unsigned long max_sessions, idle, ttl, paired_ttl, per_addr;
	bool allow_private, verbose;
	const char *user;
};

static int run_server(const struct sockaddr_in *addr, const struct server_opts *so)
{
	unsigned long max_sessions = so->max_sessions, per_addr = so->per_addr;
	bool verbose = so->verbose;
	struct rv_server_cfg cfg = { .listen = *addr, .max_sessions = (unsigned)max_sessions,
				     .idle_timeout_s = (unsigned)so->idle, .session_ttl_s = (unsigned)so->ttl,
				     .paired_ttl_s = (unsigned)so->paired_ttl,
				     .max_conns_per_addr = (unsigned)per_addr,
				     .max_sessions_per_addr = per_addr ? (unsigned)(per_addr > 1 ? per_addr / 2 : 1) : 0,
				     .probe_allow_private = so->allow_private };
	struct rv_server *s;
	struct sigaction sa = { .sa_handler = on_signal };
	char ip[INET_ADDRSTRLEN];
	struct sockaddr_in bound;
	int r;
	if (verbose) {
		cfg.log = log_line;
		cfg.log_arg = NULL;
	}
	if ((r = rv_server_open(&cfg, &s))) {
		char what[64];
		inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof(ip));
		snprintf(what, sizeof(what), "%s:%u", ip, (unsigned)ntohs(addr->sin_port));
		/* where it cannot listen is bad input: nothing was bound, nothing sent */
		if (r == -EADDRNOTAVAIL)
			return rp_usage_err("rendezvous", "--listen %s: not an address of this host", what);
		if (r == -EADDRINUSE)
			return rp_usage_err("rendezvous", "--listen %s: in use on this host ('ss -tlnp sport = :%u' "
					    "shows by whom)", what, (unsigned)ntohs(addr->sin_port));
		if (r == -EACCES)
			return rp_usage_err("rendezvous", "--listen %s: a port below net.ipv4.ip_unprivileged_port_start "
					    "needs CAP_NET_BIND_SERVICE", what);
		snprintf(what, sizeof(what), "rendezvous: --listen %s:%u", ip, (unsigned)ntohs(addr->sin_port));
		return rp_err_errno(r, what);
	}
	/* listening: nothing privileged is left to do. Give it all up before the first byte from the
	 * network is parsed (the filter probe is a plain non-blocking connect: no privilege either) */
	if ((r = rp_privs_enter(so->user, 0))) {
		rv_server_close(s);
		return rp_err_errno(r, "rendezvous: dropping privileges");
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rv_server_addr(s, &bound);
	inet_ntop(AF_INET, &bound.sin_addr, ip, sizeof(ip));
	struct rv_server_stats st0;
	rv_server_stats(s, &st0);
	printf("rawpunch rendezvous: listening on %s:%u (max %lu sessions, %u connections)\n", ip,
	       (unsigned)ntohs(bound.sin_port), max_sessions ? max_sessions : 4096ul, (unsigned)st0.max_conns);
	fflush(stdout);
	r = rv_server_run(s, &stop_flag);
	if (verbose) {
		struct rv_server_stats st;
		rv_server_stats(s, &st);
		fprintf(stderr, "rendezvous: %llu connections, %llu frames, %llu pairs, %llu errors, %llu probes\n",
			(unsigned long long)st.conns, (unsigned long long)st.frames, (unsigned long long)st.pairs,
			(unsigned long long)st.errors, (unsigned long long)st.probes);
	}
	rv_server_close(s);
	return r ? rp_err_errno(r, "rendezvous") : 0;
}

static int run_join(const struct sockaddr_in *srv, const char *session, const char *secret_file,
		    const char *natinfo_file, const char *cand, unsigned long timeout_s, bool wait_start)
{
	struct rv_join_req req = { .session = session, .timeout_ms = (int)timeout_s * 1000 };
	struct rv_join_res res;
	struct rv_client *c;
	uint8_t *secret = NULL, *nbuf = NULL;
	size_t slen = 0, nlen = 0;
	int r;
	if ((r = rp_secret_read("rendezvous", secret_file, &secret, &slen)))
		return r;
	req.secret = secret;
	req.secret_len = slen;
	if (natinfo_file) {
		struct json_object *o;
		if ((r = rp_io_read_file(natinfo_file, 65536, &nbuf, &nlen))) {
			rp_secret_free(secret, slen);
			return rp_usage_err("rendezvous", "--natinfo %s: %s", natinfo_file,
					    r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
		}
		o = json_tokener_parse((const char *)nbuf);
		free(nbuf);
		r = o ? rp_natinfo_from_json(o, &req.me) : -EINVAL;
		json_object_put(o);
		if (r) {
			rp_secret_free(secret, slen);
			return rp_usage_err("rendezvous", "--natinfo %s: not a natinfo JSON object", natinfo_file);
		}
	}
	if (cand) {
		int n = rp_parse_ports(cand, req.cand, RV_MAX_CAND);
		if (n < 0) {
			rp_secret_free(secret, slen);
			return rp_usage_err("rendezvous", "--cand '%s': want up to %d ports", cand, RV_MAX_CAND);
		}
		req.n_cand = (unsigned)n;
	}
	char who[64], sb[32];
	rp_sin_str(srv, sb, sizeof(sb));
	snprintf(who, sizeof(who), "rendezvous %s", sb);
	if ((r = rv_connect(srv, 5000, &c))) {
		rp_secret_free(secret, slen);
		return rp_err_errno(r, who);
	}
	r = rv_join(c, &req, &res);
	rp_secret_free(secret, slen);
	if (r) {
		rv_close(c);
		if (r == -EACCES) {
			rp_err("%s: the peer's messages do not authenticate (different secret, or a forger)", who);
			rp_hint("no box under this session's id authenticated before --timeout ran out");
			return 1;
		}
		if (r == -ETIMEDOUT) {
			rp_err("%s: no peer joined session '%s' in time", who, session);
			rp_hint("both sides need the same --session and the same secret");
			return 1;
		}
		if (r == -EBUSY) {
			rp_err("%s: session is full (%d connections already wait under its id) or the server is busy",
			       who, RV_MEMBERS_MAX);
			return 1;
		}
		if (r == -ERANGE) {
			rp_err("%s: the server's clock, or the start it leads to, is more than 60 s away from ours", who);
			rp_hint("check this host's clock (NTP); a server that lies about the time can only be refused");
			return 1;
		}
		return rp_err_errno(r, who);
	}
	struct json_object *o = json_object_new_object(), *pc = json_object_new_array();
	json_object_object_add(o, "initiator", json_object_new_boolean(res.initiator));
	json_object_object_add(o, "start_ns", json_object_new_int64((int64_t)res.start_ns));
	json_object_object_add(o, "start_server_ns", json_object_new_int64((int64_t)res.start_server_ns));
	json_object_object_add(o, "offset_ns", json_object_new_int64(res.offset_ns));
	json_object_object_add(o, "rtt_ns", json_object_new_int64(res.rtt_ns));
	json_object_object_add(o, "peer_offset_ns", json_object_new_int64(res.peer_offset_ns));
	json_object_object_add(o, "peer_rtt_ns", json_object_new_int64(res.peer_rtt_ns));
	json_object_object_add(o, "relay_rtt_ns", json_object_new_int64(res.relay_rtt_ns));
	json_object_object_add(o, "clock_err_ns", json_object_new_int64(res.clock_err_ns));
	json_object_object_add(o, "clock_bound_ns", json_object_new_int64(res.clock_bound_ns));
	json_object_object_add(o, "bad_boxes", json_object_new_int((int)res.bad_boxes));
	json_object_object_add(o, "peer", rp_natinfo_to_json(&res.peer));
	for (unsigned i = 0; i < res.n_peer_cand; i++)
		json_object_array_add(pc, json_object_new_int(res.peer_cand[i]));
	json_object_object_add(o, "peer_cand", pc);
	if (wait_start) {
		struct timespec ts = { .tv_sec = (time_t)(res.start_ns / 1000000000u),
				       .tv_nsec = (long)(res.start_ns % 1000000000u) };
		while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		clock_gettime(CLOCK_REALTIME, &ts);
		json_object_object_add(o, "fired_ns",
				       json_object_new_int64((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec));
	}
	rv_close(c);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return 0;
}

int cmd_rendezvous(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "max-sessions", required_argument, NULL, 'm' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "session-ttl", required_argument, NULL, 'T' },
		{ "join", required_argument, NULL, 'j' },
		{ "session", required_argument, NULL, 's' },
		{ "secret-file", required_argument, NULL, 'k' },
		{ "natinfo", required_argument, NULL, 'n' },
		{ "cand", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "wait-start", no_argument, NULL, 'w' },
		{ "filter-probe", required_argument, NULL, 'f' },
		{ "port", required_argument, NULL, 'p' },
		{ "timeout-ms", required_argument, NULL, 'M' },
		{ "max-per-addr", required_argument, NULL, 'A' },
		{ "probe-allow-private", no_argument, NULL, 'P' },
		{ "paired-ttl", required_argument, NULL, 'R' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *listen_s = NULL, *join_s = NULL, *probe_s = NULL, *session = NULL, *secret = NULL;
	const char *natinfo = NULL, *cand = NULL;
	unsigned long timeout = 30, port = 0, tmo_ms = 1500;
	struct server_opts so = { 0 };
	bool wait_start = false, have_user = false;
	struct sockaddr_in addr;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_s = optarg; break;
		case 'j': join_s = optarg; break;
		case 'f': probe_s = optarg; break;
		case 's': session = optarg; break;
		case 'k': secret = optarg; break;
		case 'n': natinfo = optarg; break;
		case 'c': cand = optarg; break;
		case 'w': wait_start = true; break;
		case 'v': so.verbose = true; break;
		case 'P': so.allow_private = true; break;
		case 'u': so.user = optarg; have_user = true; break;
		case 'R':
			if (rp_parse_ulong(optarg, 1, 86400, &so.paired_ttl))
				return rp_usage_err("rendezvous", "--paired-ttl: want 1..86400 seconds, got '%s'", optarg);
			break;
		case 'A':
			if (rp_parse_ulong(optarg, 1, 1000000, &so.per_addr))
				return rp_usage_err("rendezvous", "--max-per-addr: want 1..1000000, got '%s'", optarg);
			break;
		case 'm':
			if (rp_parse_ulong(optarg, 1, 1000000, &so.max_sessions))
				return rp_usage_err("rendezvous", "--max-sessions: want 1..1000000, got '%s'", optarg);
			break;
		case 'i':
			if (rp_parse_ulong(optarg, 1, 86400, &so.idle))
				return rp_usage_err("rendezvous", "--idle-timeout: want 1..86400 seconds, got '%s'", optarg);
			break;
		case 'T':
			if (rp_parse_ulong(optarg, 1, 86400, &so.ttl))
				return rp_usage_err("rendezvous", "--session-ttl: want 1..86400 seconds, got '%s'", optarg);
			break;
		case 't':
			if (rp_parse_ulong(optarg, 1, 3600, &timeout))
				return rp_usage_err("rendezvous", "--timeout: want 1..3600 seconds, got '%s'", optarg);
			break;
		case 'p':
			if (rp_parse_ulong(optarg, 1, 65535, &port))
				return rp_usage_err("rendezvous", "--port: want 1..65535, got '%s'", optarg);
			break;
		case 'M':
			if (rp_parse_ulong(optarg, 100, 5000, &tmo_ms))
				return rp_usage_err("rendezvous", "--timeout-ms: want 100..5000, got '%s'", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return rp_usage_getopt("rendezvous", c, argv);
		}
	}
	if (optind < argc)
		return rp_usage_err("rendezvous", "unexpected argument '%s'", argv[optind]);
	if (!!listen_s + !!join_s + !!probe_s != 1)
		return rp_usage_err("rendezvous", "give exactly one of --listen, --join, --filter-probe");
	if (!listen_s && (so.per_addr || so.allow_private || so.max_sessions || so.idle || so.ttl || so.paired_ttl ||
			  have_user))
		return rp_usage_err("rendezvous", "--max-sessions, --idle-timeout, --session-ttl, --paired-ttl, "
				    "--max-per-addr, --probe-allow-private and --user are server options (--listen)");
	if (listen_s) {
		if (session || secret || natinfo || cand || port || wait_start)
			return rp_usage_err("rendezvous", "--listen takes no client options");

		if (rp_parse_hostport(listen_s, RV_DEFAULT_PORT, &addr))
			return rp_usage_err("rendezvous", "--listen: want ADDR[:PORT], got '%s'", listen_s);
		uid_t ruid;
		gid_t rgid;
		int r = rp_cli_user("rendezvous", so.user, &ruid, &rgid);
		if (r)
			return r;
		return run_server(&addr, &so);
	}
	if (probe_s) {
		enum rp_filter f;
		int r;
		if (!port)
			return rp_usage_err("rendezvous", "--filter-probe needs --port P (this host's public port)");
		if (rp_parse_hostport(probe_s, RV_DEFAULT_PORT, &addr))
			return rp_usage_err("rendezvous", "--filter-probe: want HOST[:PORT], got '%s'", probe_s);
		char who[64], sb[32];
		rp_sin_str(&addr, sb, sizeof(sb));
		snprintf(who, sizeof(who), "filter probe via %s", sb);
		r = rv_filter_probe(&addr, (uint16_t)port, (int)tmo_ms, &f);
		if (r == -EAGAIN)
			return rp_err("%s: the server's rate limit was hit; try again in a minute", who);
		if (r == -EACCES) {
			rp_err("%s: the server refuses to probe the address it sees for this host", who);
			rp_hint("it sees a loopback, private or its own address (a proxy in front of it?); a server on "
				"a LAN needs --probe-allow-private");
			return 1;
		}
		if (r)
			return rp_err_errno(r, who);
		printf("%s\n", rp_filter_str(f));
		return 0;
	}
	if (!session || !secret)
		return rp_usage_err("rendezvous", "--join needs --session NAME and --secret-file FILE");
	if (strlen(session) > 255)
		return rp_usage_err("rendezvous", "--session: at most 255 bytes");
	if (rp_parse_hostport(join_s, RV_DEFAULT_PORT, &addr))
		return rp_usage_err("rendezvous", "--join: want HOST[:PORT], got '%s'", join_s);
	return run_join(&addr, session, secret, natinfo, cand, timeout, wait_start);
}
