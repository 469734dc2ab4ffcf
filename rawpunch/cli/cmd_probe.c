/* SPDX-License-Identifier: MIT */
/* 'rawpunch probe': classify the NAT in front of this host from the port it will punch from. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unistd.h>

#include "rawpunch/base/privs.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/cli_preflight.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/probe/probe.h"
#include "rawpunch/punch/pmhold.h"
#include "rawpunch/rendezvous/client.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/base/trace.h"


static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch probe --stun HOST[:PORT] [--samples N] [--json] [--plot FILE] [options]\n"
		"\n"
		"Measure the NAT in front of this host from the local port that will punch: the mapped address,\n"
		"mapping behaviour (RFC 5780's tests over TCP; needs a STUN server with OTHER-ADDRESS), port\n"
		"allocation (preserving / sequential / random) with a prediction of the next external port,\n"
		"filtering of unsolicited SYNs (needs a rawpunch rendezvous server to probe back) and nat_ttl,\n"
		"the smallest TTL that opens the outermost NAT's mapping: confirmed by the rendezvous server\n"
		"connecting back where the public port of a new flow is known, else read from the hops\n"
		"(TTL-limited SYNs with Record Route, ICMP time-exceeded), else a fallback; the report says which.\n"
		"Random ports confined to a block, and a sequential counter's wrap, give the port range.\n"
		"\n"
		"  --stun HOST[:PORT]        STUN server speaking TCP (port 3478 by default)\n"
		"  --local-port P            the punch port (default: a free one)\n"
		"  --local-addr IP           source address (default: the route's towards the server)\n"
		"  --samples N               new flows sampled for the allocation, 0..%d (default 12)\n"
		"  --interval MS             between sample flows, 0..10000 (default 40)\n"
		"  --rendezvous HOST[:PORT]  rendezvous server for the filter probe and nat_ttl's confirmation\n"
		"                            (port %d by default); without it filtering is \"unknown\": a host\n"
		"                            cannot see what its NAT answers to others\n"
		"  --filter-timeout MS       the server's connect timeout for the filter probe, 100..5000 (1000)\n"
		"  --ttl-max N               NAT-hop search up to TTL N, 0..%d; 0 skips it (default 8)\n"
		"  --ttl-wait MS             wait for the hops' ICMP replies, 10..5000 (default 300)\n"
		"  --timeout S               per STUN exchange, 1..60 (default 3)\n"
		"  --horizon S               predict for a new flow S seconds after the last sample (default 1)\n"
		"  --port-range LO-HI        the NAT's port range if known (wraparound; reported as the range)\n"
		"  --json                    print one JSON object (natinfo fields plus samples, hops, fit)\n"
		"  --plot FILE               draw external port against time, PNG or SVG by extension (gnuplot)\n"
		"  --no-portmap              do not ask the NAT for a port mapping (PCP, NAT-PMP, UPnP-IGD); by\n"
		"                            default the punch port's mapping is asked for beside the probe,\n"
		"                            reported, and deleted at the end\n"
		"  --user USER               run as USER (default as root: the invoking user (sudo), else\n"
		"                            nobody; 'root' keeps uid 0 without capabilities)\n"
		"  -v, --verbose             list every sample and hop in the summary\n"
		"\n"
		"Needs CAP_NET_RAW and CAP_NET_ADMIN for the nat_ttl search (raw SYNs, capture, RST guard);\n"
		"without them nat_ttl is reported unknown and the rest still runs. The --plot file is opened\n"
		"first (a regular file: no '|command', no symlink, nobody else's file); then it runs as --user\n"
		"with no_new_privs and only those two capabilities (none with --ttl-max 0), and drops them\n"
		"once the measuring is over, before gnuplot runs (it writes into the open file).\n",
		RP_PROBE_MAX_SAMPLES, RV_DEFAULT_PORT, RP_PROBE_MAX_HOPS);
}

/* What the NAT offered for the punch port (not a word when it was not asked). */
static void portmap_line(const struct rp_natinfo *ni)
{
	char a[INET_ADDRSTRLEN];
	bool any = false;
	if (!ni->pm_asked)
		return;
	printf("  portmap     ");
	if (ni->pm_port)
		printf("%s granted %s:%u -> %u for %u s", ni->pm_proto, rp_ip_str(ni->pm_addr, a), ni->pm_port,
		       ni->local_port, ni->pm_lifetime_s);
	else
		printf("none");
	printf(" (found:");
	for (unsigned i = 0; rp_natinfo_pm_name(i); i++)
		if (ni->pm_found & (1u << i)) {
			printf("%s%s", any ? ", " : " ", rp_natinfo_pm_name(i));
			any = true;
		}
	printf("%s; asked in %.1f ms)\n", any ? "" : " nothing", ni->pm_ms);
	if (ni->pm_error[0])
		printf("              %s\n", ni->pm_error);
}

/* How nat_ttl was chosen, in a few words. */
static const char *ttl_how(const struct rp_probe_report *r, char *buf, size_t len)
{
	const struct rp_natinfo *ni = &r->ni;
	if (ni->nat_ttl_method == RP_TTL_CONFIRMED)
		snprintf(buf, len, "the server got back in after TTL %u%s", ni->nat_ttl,
			 r->n_confirm > 1 ? ", not after one less" : "");
	else if (r->guess.how == RP_HOPEV_RECORD_ROUTE)
		snprintf(buf, len, "hop %d recorded our public address", r->guess.nat_hop);
	else if (r->guess.how == RP_HOPEV_NAT_ANSWERED)
		snprintf(buf, len, "hop %d answered from our public address", r->guess.nat_hop);
	else if (r->guess.how == RP_HOPEV_QUOTE)
		snprintf(buf, len, "hop %d quoted our public address", r->guess.nat_hop + 1);
	else if (r->guess.how == RP_HOPEV_PUBLIC_HOP)
		snprintf(buf, len, "the first public hop");
	else if (r->guess.how == RP_HOPEV_SERVER)
		snprintf(buf, len, "the last hop before the server");
	else
		snprintf(buf, len, "%s", rp_hop_evidence_str(r->guess.how));
	return buf;
}

static void summary(const struct rp_probe_report *r, bool verbose)
{
	char a[INET_ADDRSTRLEN], b[64], how[96];
	const struct rp_natinfo *ni = &r->ni;
	rp_sin_str(&r->stun, b, sizeof(b));
	printf("probe from %s:%u via STUN %s", rp_ip_str(ni->local_addr, a), ni->local_port, b);
	if (r->has_other) {
		rp_sin_str(&r->other, b, sizeof(b));
		printf(" (other %s)", b);
	}
	printf("\n  mapped      %s:%u%s\n", rp_ip_str(ni->mapped_addr, a), ni->mapped_port,
	       ni->behind_nat ? " (behind a NAT)" : " (no NAT: mapped == local)");
	printf("  mapping     %s", rp_mapping_str(ni->mapping));
	if (r->mapping_err)
		printf(" (%s)", r->mapping_err == -ENOTSUP ? "the server sent no OTHER-ADDRESS" : strerror(-r->mapping_err));
	printf("\n  allocation  %s", rp_alloc_str(ni->alloc));
	if (ni->alloc == RP_ALLOC_SEQUENTIAL)
		printf(", delta %d, jitter %.2f, %u of %u steps fitted, %.2f foreign flows/s", ni->delta, ni->jitter,
		       r->fit.n_fit, r->fit.n_steps, r->fit.foreign_rate);
	if (ni->has_range)
		printf(", range %u..%u (%u ports, %s, confidence %.2f)", ni->range_lo, ni->range_hi,
		       (unsigned)(ni->range_hi - ni->range_lo + 1),
		       r->fit.port_range.how == RP_RANGE_WRAP ? "the counter wrapped" :
		       r->fit.port_range.how == RP_RANGE_GIVEN ? "given" :
		       r->fit.port_range.aligned ? "an aligned block" : "the samples' spread", ni->range_confidence);
	else if (ni->alloc == RP_ALLOC_PRESERVING)
		printf(", %u of %u samples kept their port", r->fit.n_preserved, r->fit.n);
	else if (ni->alloc == RP_ALLOC_UNKNOWN)
		printf(" (%u samples; need %d)", r->fit.n, RP_ALLOC_MIN_SAMPLES);
	printf("\n  predicted   ");
	if (!ni->n_predicted)
		printf("nothing useful");
	else if (ni->n_predicted == 1)
		printf("%u", ni->predicted[0]);
	else
		printf("%u..%u (%u ports)", ni->predicted[0], ni->predicted[ni->n_predicted - 1], ni->n_predicted);
	printf(" for a new flow within %.2f s, confidence %.2f\n", r->horizon_s, ni->confidence);
	printf("  filtering   %s", rp_filter_str(ni->filtering));
	if (r->filter_err)
		printf(" (%s)", r->filter_err == -ENOTCONN ? "no --rendezvous server to probe back" : strerror(-r->filter_err));
	printf("\n  nat_ttl     ");
	if (ni->nat_ttl)
		printf("%u (%s: %s)", ni->nat_ttl, rp_ttl_method_str(ni->nat_ttl_method), ttl_how(r, how, sizeof(how)));
	else
		printf("unknown (%s)", r->ttl_err == -ECANCELED ? "skipped" : !ni->behind_nat ? "no NAT" :
		       r->ttl_err == -ENOENT ? "the hops did not tell" : strerror(-r->ttl_err));
	if (r->n_hops) {
		printf("\n  hops       ");
		for (unsigned i = 0; i < r->n_hops; i++)
			printf(" %u %s", r->hops[i].ttl, r->hops[i].reached ? "(server)" :
			       r->hops[i].answered ? rp_ip_str(r->hops[i].from, a) : "*");
	}
	printf("\n");
	portmap_line(ni);
	printf("  took %.2f s\n", r->duration_s);
	if (!verbose)
		return;
	for (unsigned i = 0; i < r->n_hops; i++) {
		const struct rp_probe_hop *h = &r->hops[i];
		if (!h->n_rr)
			continue;
		printf("  hop %u recorded route:", h->ttl);
		for (unsigned k = 0; k < h->n_rr && k < RP_RR_MAX; k++)
			printf(" %s", rp_ip_str(h->rr[k], a));
		printf("\n");
	}
	for (unsigned i = 0; i < r->n_confirm; i++) {
		const struct rp_probe_confirm *c = &r->confirm[i];
		printf("  confirm: TTL %u to port %u: ", c->ttl, c->server_port);
		if (c->err)
			printf("no answer (%s)\n", strerror(-c->err));
		else
			printf("%s (the server saw %s)\n", c->passed ? "its SYN came back in" : "filtered",
			       rp_filter_str(c->verdict));
	}
	printf("  samples (t since first, kind, local port -> external):\n");
	uint64_t t0 = 0;
	for (unsigned i = 0; i < r->n_samples; i++)
		if (r->samples[i].t_mono_ns && (!t0 || r->samples[i].t_mono_ns < t0))
			t0 = r->samples[i].t_mono_ns;
	for (unsigned i = 0; i < r->n_samples; i++) {
		const struct rp_probe_sample *s = &r->samples[i];
		rp_sin_str(&s->server, b, sizeof(b));
		printf("    %8.4f  %-5s  %5u -> ", (double)(s->t_mono_ns - t0) / 1e9, rp_probe_kind_str(s->kind),
		       s->local_port);
		if (s->ok)
			printf("%s:%u", rp_ip_str(s->mapped_addr, a), s->mapped_port);
		else
			printf("failed: %s", strerror(-s->err));
		printf("  (to %s, connect %.2f ms)\n", b, s->rtt_ms);
	}
}

int cmd_probe(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "stun", required_argument, NULL, 's' },
		{ "local-port", required_argument, NULL, 'p' },
		{ "local-addr", required_argument, NULL, 'a' },
		{ "samples", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "rendezvous", required_argument, NULL, 'r' },
		{ "filter-timeout", required_argument, NULL, 'F' },
		{ "ttl-max", required_argument, NULL, 't' },
		{ "ttl-wait", required_argument, NULL, 'W' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "horizon", required_argument, NULL, 'H' },
		{ "port-range", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "plot", required_argument, NULL, 'P' },
		{ "user", required_argument, NULL, 'u' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "no-portmap", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct sockaddr_in rv = { 0 };
	struct rp_probe_opts o = { .samples = 12, .interval_ms = 40, .ttl_max = 8, .timeout_ms = 3000,
				   .horizon_s = 1.0, .filter_timeout_ms = 1000 };
	bool json = false, verbose = false, have_stun = false, portmap = true;
	const char *plot = NULL, *user = NULL;
	unsigned long v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			if (rp_parse_hostport(optarg, 3478, &o.stun))
				return rp_usage_err("probe", "--stun: want HOST[:PORT] (IPv4 or a name), got '%s'", optarg);
			have_stun = true;
			break;
		case 'p':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("probe", "--local-port: want 1..65535, got '%s'", optarg);
			o.local_port = (uint16_t)v;
			break;
		case 'a':
			if (rp_parse_ipv4(optarg, &o.local_addr))
				return rp_usage_err("probe", "--local-addr: want an IPv4 address, got '%s'", optarg);
			break;
		case 'n':
			if (rp_parse_ulong(optarg, 0, RP_PROBE_MAX_SAMPLES, &v))
				return rp_usage_err("probe", "--samples: want 0..%d, got '%s'", RP_PROBE_MAX_SAMPLES, optarg);
			o.samples = (unsigned)v;
			break;
		case 'i':
			if (rp_parse_ulong(optarg, 0, 10000, &v))
				return rp_usage_err("probe", "--interval: want 0..10000 ms, got '%s'", optarg);
			o.interval_ms = (int)v;
			break;
		case 'r':
			if (rp_parse_hostport(optarg, RV_DEFAULT_PORT, &rv))
				return rp_usage_err("probe", "--rendezvous: want HOST[:PORT], got '%s'", optarg);
			o.filter_probe = rv_filter_probe_cb;
			o.filter_probe_arg = &rv;
			o.connect_back = rv_connect_back_cb;
			o.connect_back_arg = &rv;
			o.connect_back_addr = rv.sin_addr.s_addr;
			break;
		case 'F':
			if (rp_parse_ulong(optarg, 100, 5000, &v))
				return rp_usage_err("probe", "--filter-timeout: want 100..5000 ms, got '%s'", optarg);
			o.filter_timeout_ms = (int)v;
			break;
		case 't':
			if (rp_parse_ulong(optarg, 0, RP_PROBE_MAX_HOPS, &v))
				return rp_usage_err("probe", "--ttl-max: want 0..%d, got '%s'", RP_PROBE_MAX_HOPS, optarg);
			o.ttl_max = (unsigned)v;
			break;
		case 'W':
			if (rp_parse_ulong(optarg, 10, 5000, &v))
				return rp_usage_err("probe", "--ttl-wait: want 10..5000 ms, got '%s'", optarg);
			o.ttl_wait_ms = (int)v;
			break;
		case 'T':
			if (rp_parse_ulong(optarg, 1, 60, &v))
				return rp_usage_err("probe", "--timeout: want 1..60 seconds, got '%s'", optarg);
			o.timeout_ms = (int)v * 1000;
			break;
		case 'H': {
			char *end;
			double h = strtod(optarg, &end);
			if (!*optarg || *end || !(h >= 0 && h <= 3600))
				return rp_usage_err("probe", "--horizon: want seconds 0..3600, got '%s'", optarg);
			o.horizon_s = h;
			break;
		}
		case 'R': {
			uint16_t ports[2];
			const char *dash = strchr(optarg, '-');
			unsigned long a, b;
			char buf[16];
			if (!dash || (size_t)(dash - optarg) >= sizeof(buf))
				return rp_usage_err("probe", "--port-range: want LO-HI, got '%s'", optarg);
			memcpy(buf, optarg, (size_t)(dash - optarg));
			buf[dash - optarg] = 0;
			if (rp_parse_ulong(buf, 1, 65535, &a) || rp_parse_ulong(dash + 1, 1, 65535, &b) || a >= b)
				return rp_usage_err("probe", "--port-range: want LO-HI with 1 <= LO < HI <= 65535, got '%s'", optarg);
			ports[0] = (uint16_t)a;
			ports[1] = (uint16_t)b;
			o.range_lo = ports[0];
			o.range_hi = ports[1];
			break;
		}
		case 'j':
			json = true;
			break;
		case 'P': {
			const char *ext = strrchr(optarg, '.');
			if (!ext || (strcasecmp(ext, ".png") && strcasecmp(ext, ".svg")))
				return rp_usage_err("probe", "--plot: the file must end in .png or .svg, got '%s'", optarg);
			plot = optarg;
			break;
		}
		case 'u':
			if (!*optarg)
				return rp_usage_err("probe", "--user: empty user name");
			user = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'M':
			portmap = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return rp_usage_getopt("probe", c, argv);
		}
	}
	if (optind < argc)
		return rp_usage_err("probe", "unexpected argument '%s'", argv[optind]);
	if (!have_stun)
		return rp_usage_err("probe", "--stun HOST[:PORT] is required");

	/* the plot file opened now, for the user we become (no pipe, no symlink, no one else's file);
	 * then that user, no_new_privs, and CAP_NET_RAW/CAP_NET_ADMIN only for the nat_ttl search */
	uid_t uid;
	gid_t gid;
	int plot_fd = -1;
	if ((c = rp_cli_user("probe", user, &uid, &gid)))
		return c;
	/* --local-port / --local-addr: bindable after the drop (the STUN client binds them then), held
	 * until the probe is over */
	int hold_fd = -1;
	if ((o.local_port || o.local_addr) && (hold_fd = rp_cli_local_port("probe", o.local_addr, o.local_port)) < 0)
		return 2;
	if (plot && (plot_fd = rp_cli_out_fd("probe", "--plot", plot, uid, gid)) < 0) {
		if (hold_fd >= 0)
			close(hold_fd);
		return 2;
	}
	if (rp_cli_enter(user, o.ttl_max ? RP_PRIV_NET : 0)) {
		if (plot_fd >= 0)
			close(plot_fd);
		if (hold_fd >= 0)
			close(hold_fd);
		return 1;
	}
	/* the servers answer, before the first sample: a refused connection to a mistyped --rendezvous
	 * among the samples would take a port of a sequential NAT and pass for a foreign flow */
	struct rp_cli_server sv[2] = { { "STUN", o.stun }, { "rendezvous", rv } };
	struct rp_probe_report *r = NULL;
	if ((c = rp_cli_reach("probe: ", sv, o.filter_probe ? 2 : 1)) ||
	    (!(r = calloc(1, sizeof(*r))) && (c = rp_err_errno(-ENOMEM, "probe")))) {
		if (plot_fd >= 0)
			close(plot_fd);
		if (hold_fd >= 0)
			close(hold_fd);
		return c;
	}
	/* the port mapping is asked for on a thread beside the probe (pmhold.h): the punch port first */
	struct rp_pmhold *pm = NULL;
	int pe = portmap && !o.local_port ? rp_free_port(o.local_addr, &o.local_port) : 0;
	if (portmap && !pe) {
		struct rp_portmap_opts pmo = { .ipproto = IPPROTO_TCP, .internal_port = o.local_port,
					       .lifetime_s = RP_PMHOLD_LIFETIME };
		pe = rp_pmhold_start(&pmo, &pm);
	}
	if (portmap && pe)
		rp_hint("probe: not asking the NAT for a port mapping: %s", strerror(-pe));
	int e = rp_probe_run(&o, r);
	if (hold_fd >= 0)
		close(hold_fd);
	if (pm) {
		/* asking may add ~0.15 s to the probe, not an IGD's full second of SSDP delay */
		rp_pmhold_give_up_in(pm, RP_PMHOLD_GRACE_MS);
		rp_pmhold_wait(pm);
		rp_pmhold_fill(pm, &r->ni);
		rp_pmhold_release(pm, 1000);   /* the probe only asks what the NAT offers */
	}
	if (e < 0) {
		char b[64], what[128];
		rp_sin_str(&o.stun, b, sizeof(b));
		uint16_t lp = o.local_port ? o.local_port : r->ni.local_port;   /* 0: not bound yet */
		if (lp)
			snprintf(what, sizeof(what), "probe: STUN Binding from the punch port %u to %s", lp, b);
		else
			snprintf(what, sizeof(what), "probe: STUN Binding to %s", b);
		if (e == -EPROTO && r->server_software[0])
			rp_err("%s: the server refused it: %s", what, r->server_software);
		else
			rp_err_errno(e, what);
		if (e == -EADDRINUSE || e == -EADDRNOTAVAIL)
			rp_hint("a previous probe's connection from port %u to %s is still in TIME_WAIT (60 s): wait, or "
				"pick another --local-port", lp, b);
		free(r);
		return 1;
	}
	if (r->ttl_err == -EPERM || r->ttl_err == -EACCES)
		rp_hint("nat_ttl needs CAP_NET_RAW and CAP_NET_ADMIN (raw SYNs, capture): run as root");
	int rc = rp_cli_drop_caps();   /* the measuring is over: gnuplot and the output get none */
	if (rc) {
		free(r);
		return rc;
	}
	if (json) {
		struct json_object *j = rp_probe_to_json(r);
		rp_json_tidy(j);
		if (!j) {
			free(r);
			return rp_err_errno(-ENOMEM, "probe: json");
		}
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	} else {
		summary(r, verbose);
	}
	fflush(stdout);
	if (plot) {
		int ple = rp_probe_plot(r, plot, plot_fd);
		if (ple == -ENOENT) {
			rp_err("probe: --plot needs gnuplot");
			rp_hint("apt-get install gnuplot-nox (or 'make deps')");
			rc = 1;
		} else if (ple) {
			rc = rp_err_errno(ple, "probe: --plot");
		}
	}
	if (plot_fd >= 0)
		close(plot_fd);
	free(r);
	return rc;
}
