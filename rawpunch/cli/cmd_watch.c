/* SPDX-License-Identifier: MIT */
/* rawpunch watch: capture and decode what comes back (SYN, SYN-ACK, RST, ICMP errors quoting our
 * segments), one line per event, human-readable or JSON (one object per line). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture/capture.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/net/netif.h"

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch watch [options]\n"
		"\n"
		"Capture and decode replies: TCP segments (SYN, SYN-ACK, RST, ...) and ICMP errors\n"
		"(unreachable, time exceeded, parameter problem, source quench) quoting a TCP segment.\n"
		"\n"
		"  -i, --iface IF       interface to capture on (default: any)\n"
		"  -f, --filter EXPR    raw BPF expression (tcpdump syntax); excludes --port/--host\n"
		"  -p, --port P         only segments to or from port P, and ICMP errors about them\n"
		"  -H, --host A         only segments from IPv4 address A, and ICMP errors about ours to A\n"
		"  -c, --count N        stop after N decoded events\n"
		"  -t, --timeout S      stop after S seconds (decimals allowed)\n"
		"  -j, --json           one JSON object per line instead of text\n"
		"  -w, --write FILE     also write every captured packet to FILE (pcap, ns timestamps)\n"
		"  -d, --direction D    in (default), out or inout\n"
		"  -s, --snaplen N      bytes kept per packet (default 256)\n"
		"  -r, --read FILE      decode a pcap/pcapng file (e.g. one --pcap or -w wrote) instead of\n"
		"                       capturing; the filters apply; ends at the end of the file\n"
		"  -Z, --user USER      after opening the capture, drop all privileges and become USER\n"
		"                       (default as root: the invoking user (sudo), else nobody; 'root' keeps uid 0)\n"
		"  -h, --help           this text\n"
		"\n"
		"Text lines start with the capture time (UTC, ns); JSON has ts (s) and ts_ns. For ICMP errors\n"
		"the tuple shown is the quoted one, as we sent it; 'from' is the router that answered.\n"
		"Stops on SIGINT/SIGTERM (exit 130/143), --count or --timeout, then prints capture statistics\n"
		"on stderr. Capturing needs CAP_NET_RAW (root, or 'setcap cap_net_raw+ep'); reading a file\n"
		"needs nothing. Files are opened first, then every privilege is dropped.\n");
}

static const char *flag_string(uint8_t f, char *buf)
{
	/* tcpdump's letters: F S R P . U E W */
	char *p = buf;
	if (f & RP_TH_FIN) *p++ = 'F';
	if (f & RP_TH_SYN) *p++ = 'S';
	if (f & RP_TH_RST) *p++ = 'R';
	if (f & RP_TH_PSH) *p++ = 'P';
	if (f & RP_TH_ACK) *p++ = '.';
	if (f & RP_TH_URG) *p++ = 'U';
	if (f & RP_TH_ECE) *p++ = 'E';
	if (f & RP_TH_CWR) *p++ = 'W';
	if (p == buf) *p++ = '-';
	*p = 0;
	return buf;
}

static const char *icmp_name(uint8_t type, uint8_t code)
{
	static const char *const unreach[] = {
		"net-unreachable", "host-unreachable", "protocol-unreachable", "port-unreachable",
		"frag-needed", "source-route-failed", "net-unknown", "host-unknown", "host-isolated",
		"net-prohibited", "host-prohibited", "net-tos-unreachable", "host-tos-unreachable",
		"admin-prohibited", "host-precedence-violation", "precedence-cutoff",
	};
	switch (type) {
	case 3:
		return code < sizeof(unreach) / sizeof(unreach[0]) ? unreach[code] : "unreachable";
	case 4:
		return "source-quench";
	case 11:
		return code == 0 ? "ttl-exceeded" : code == 1 ? "reassembly-exceeded" : "time-exceeded";
	case 12:
		return "parameter-problem";
	default:
		return "icmp-error";
	}
}

static void fmt_ts(uint64_t ns, char *buf, size_t len)
{
	time_t s = (time_t)(ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%09llu", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned long long)(ns % 1000000000ull));
}

static void print_opts_text(const struct rp_event *ev)
{
	const struct tcp_opts *o = &ev->opts;
	const char *sep = "";
	if (!o->has_mss && !o->has_wscale && !o->sack_perm && !o->has_ts && !o->n_unknown && !ev->opts_err)
		return;
	printf(" <");
	if (o->has_mss) { printf("%smss %u", sep, o->mss); sep = ","; }
	if (o->sack_perm) { printf("%ssackOK", sep); sep = ","; }
	if (o->has_ts) { printf("%sTS %u %u", sep, o->tsval, o->tsecr); sep = ","; }
	if (o->has_wscale) { printf("%swscale %u", sep, o->wscale); sep = ","; }
	if (o->n_unknown) { printf("%s%u unknown", sep, o->n_unknown); sep = ","; }
	if (ev->opts_err) printf("%sBAD OPTIONS", sep);
	printf(">");
}

static void print_text(const struct rp_event *ev)
{
	char ts[48], a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN], fl[12];
	fmt_ts(ev->ts_ns, ts, sizeof(ts));
	if (ev->kind == RP_EV_TCP) {
		printf("%s %-7s %s:%u > %s:%u [%s] seq %u", ts, rp_ev_class(ev), rp_ip_str(ev->tuple.saddr, a),
		       ev->tuple.sport, rp_ip_str(ev->tuple.daddr, b), ev->tuple.dport, flag_string(ev->flags, fl),
		       ev->seq);
		if (ev->flags & RP_TH_ACK)
			printf(" ack %u", ev->ack);
		printf(" win %u ttl %u id %u", ev->win, ev->ttl, ev->ip_id);
		print_opts_text(ev);
		printf(" len %u", ev->paylen_wire);
	} else {
		printf("%s icmp    %s from %s ttl %u about %s:%u > %s:%u seq %u inner-ttl %u", ts,
		       icmp_name(ev->icmp_type, ev->icmp_code), rp_ip_str(ev->ip_src, a), ev->ttl,
		       rp_ip_str(ev->tuple.saddr, b), ev->tuple.sport, rp_ip_str(ev->tuple.daddr, d),
		       ev->tuple.dport, ev->seq, ev->inner_ttl);
		if (ev->inner_full)
			printf(" [%s]", flag_string(ev->flags, fl));
	}
	if (ev->ip_csum_bad)
		printf(" BAD-IP-CHECKSUM");
	putchar('\n');
}

static void jadd_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}
static void jadd_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static json_object *opts_json(const struct rp_event *ev)
{
	const struct tcp_opts *op = &ev->opts;
	json_object *o = json_object_new_object();
	if (op->has_mss)
		jadd_int(o, "mss", op->mss);
	if (op->has_wscale)
		jadd_int(o, "wscale", op->wscale);
	json_object_object_add(o, "sack_perm", json_object_new_boolean(op->sack_perm));
	if (op->has_ts) {
		json_object *t = json_object_new_array();
		json_object_array_add(t, json_object_new_int64(op->tsval));
		json_object_array_add(t, json_object_new_int64(op->tsecr));
		json_object_object_add(o, "ts", t);
	}
	if (op->n_unknown)
		jadd_int(o, "unknown", op->n_unknown);
	if (ev->opts_err)
		json_object_object_add(o, "malformed", json_object_new_boolean(1));
	return o;
}

static void print_json(const struct rp_event *ev)
{
	char a[INET_ADDRSTRLEN], fl[12];
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ts", json_object_new_double((double)ev->ts_ns / 1e9));
	jadd_int(o, "ts_ns", (int64_t)ev->ts_ns);
	jadd_str(o, "kind", rp_ev_class(ev));
	jadd_str(o, "src", rp_ip_str(ev->ip_src, a));
	jadd_str(o, "dst", rp_ip_str(ev->ip_dst, a));
	jadd_int(o, "ttl", ev->ttl);
	jadd_int(o, "ip_id", ev->ip_id);
	if (ev->ip_csum_bad)
		json_object_object_add(o, "ip_csum_bad", json_object_new_boolean(1));
	if (ev->kind == RP_EV_TCP) {
		jadd_int(o, "sport", ev->tuple.sport);
		jadd_int(o, "dport", ev->tuple.dport);
		jadd_int(o, "seq", ev->seq);
		jadd_int(o, "ack", ev->ack);
		jadd_str(o, "flags", flag_string(ev->flags, fl));
		jadd_int(o, "win", ev->win);
		json_object_object_add(o, "options", opts_json(ev));
		jadd_int(o, "paylen", ev->paylen_wire);
	} else {
		jadd_int(o, "type", ev->icmp_type);
		jadd_int(o, "code", ev->icmp_code);
		jadd_str(o, "icmp", icmp_name(ev->icmp_type, ev->icmp_code));
		jadd_str(o, "router", rp_ip_str(ev->ip_src, a));
		json_object *in = json_object_new_object();
		jadd_str(in, "src", rp_ip_str(ev->tuple.saddr, a));
		jadd_str(in, "dst", rp_ip_str(ev->tuple.daddr, a));
		jadd_int(in, "sport", ev->tuple.sport);
		jadd_int(in, "dport", ev->tuple.dport);
		jadd_int(in, "seq", ev->seq);
		jadd_int(in, "ttl", ev->inner_ttl);
		jadd_int(in, "ip_id", ev->inner_ip_id);
		if (ev->inner_full) {
			jadd_int(in, "ack", ev->ack);
			jadd_str(in, "flags", flag_string(ev->flags, fl));
			jadd_int(in, "win", ev->win);
			json_object_object_add(in, "options", opts_json(ev));
		}
		json_object_object_add(o, "inner", in);
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static int parse_dir(const char *s, enum rp_cap_dir *d)
{
	if (!strcmp(s, "in"))
		*d = RP_CAP_IN;
	else if (!strcmp(s, "out"))
		*d = RP_CAP_OUT;
	else if (!strcmp(s, "inout") || !strcmp(s, "both"))
		*d = RP_CAP_INOUT;
	else
		return -EINVAL;
	return 0;
}

int cmd_watch(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "filter", required_argument, NULL, 'f' },
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "write", required_argument, NULL, 'w' },
		{ "direction", required_argument, NULL, 'd' },
		{ "snaplen", required_argument, NULL, 's' },
		{ "user", required_argument, NULL, 'Z' },
		{ "read", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct rp_cap_opts co = { .iface = "any" };
	const char *filter = NULL, *user = NULL, *write_path = NULL;
	unsigned long port = 0, count = 0, snaplen = 0;
	uint32_t host = 0;
	double timeout_s = 0;
	bool json = false, have_host = false;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:f:p:H:c:t:jw:d:s:Z:r:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (!*optarg)
				return rp_usage_err("watch", "--iface: empty interface name");
			if (strcmp(optarg, "any") && rp_iface_info(optarg, NULL, NULL, NULL))
				return rp_usage_err("watch", "--iface: no interface '%s' ('ip link' lists them; 'any' "
						    "captures on all)", optarg);
			co.iface = optarg;
			break;
		case 'f':
			filter = optarg;
			break;
		case 'p':
			if (rp_parse_ulong(optarg, 1, 65535, &port))
				return rp_usage_err("watch", "--port: '%s' is not a port (1-65535)", optarg);
			break;
		case 'H':
			if (rp_parse_ipv4(optarg, &host))
				return rp_usage_err("watch", "--host: '%s' is not an IPv4 address", optarg);
			have_host = true;
			break;
		case 'c':
			if (rp_parse_ulong(optarg, 1, 1000000000ul, &count))
				return rp_usage_err("watch", "--count: '%s' is not a number >= 1", optarg);
			break;
		case 't': {
			char *end;
			errno = 0;
			timeout_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(timeout_s) || timeout_s <= 0 ||
			    timeout_s > 30 * 86400.0)
				return rp_usage_err("watch", "--timeout: '%s' is not a duration in seconds (> 0)", optarg);
			break;
		}
		case 'j':
			json = true;
			break;
		case 'w':
			if (!*optarg)
				return rp_usage_err("watch", "--write: empty file name");
			write_path = optarg;
			break;
		case 'r':
			if (!*optarg)
				return rp_usage_err("watch", "--read: empty file name");
			co.read_path = optarg;
			break;
		case 'd':
			if (parse_dir(optarg, &co.dir))
				return rp_usage_err("watch", "--direction: '%s' is not in, out or inout", optarg);
			break;
		case 's':
			if (rp_parse_ulong(optarg, 68, 262144, &snaplen))
				return rp_usage_err("watch", "--snaplen: '%s' is not in 68..262144", optarg);
			co.snaplen = (int)snaplen;
			break;
		case 'Z':
			user = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return rp_usage_getopt("watch", c, argv);
		}
	}
	if (optind < argc)
		return rp_usage_err("watch", "unexpected argument '%s'", argv[optind]);
	if (filter && (port || have_host))
		return rp_usage_err("watch", "--filter cannot be combined with --port/--host");
	/* who we become once the capture is open: known (or refused) before anything is opened */
	uid_t uid;
	gid_t gid;
	int r = rp_cli_user("watch", user, &uid, &gid);
	if (r)
		return r;
	if (write_path) {
		if (co.read_path && !strcmp(co.read_path, write_path))
			return rp_usage_err("watch", "--write would overwrite the --read file %s", write_path);
		if (!(co.dump_file = rp_cli_out("watch", "--write", write_path, uid, gid)))
			return 2;
	}

	/* --port/--host -> flows: replies to or from the port, and ICMP errors about ours. */
	char built[2048];
	if (!filter) {
		struct rp_flow fl[2] = { { .raddr = host }, { .raddr = host } };
		size_t n = 1;
		if (port) {
			fl[0].lport = (uint16_t)port;
			fl[1].rport_lo = fl[1].rport_hi = (uint16_t)port;
			n = 2;
		}
		r = rp_filter_build(fl, n, built, sizeof(built));
		if (r < 0)
			return rp_err_errno(r, "building the capture filter");
		filter = built;
	}
	co.filter = filter;

	char err[512] = "";
	struct rp_cap *cap;
	r = rp_cap_open(&co, &cap, err, sizeof(err));
	if (r < 0) {
		if (co.read_path && r != -EINVAL)
			return rp_usage_err("watch", "--read %s: %s", co.read_path, strerror(-r));
		if (co.read_path)
			return rp_usage_err("watch", "--read %s: not a pcap file (%s)", co.read_path, err);
		if (r == -EINVAL && *err && filter != built)
			return rp_usage_err("watch", "--filter '%s': %s", filter, err);
		if (r == -EINVAL && *err)
			return rp_usage_err("watch", "%s", err);
		if (*err)
			rp_err("capture: %s", err);
		else
			rp_err("capture on %s: %s", co.iface, strerror(-r));
		if (r == -EPERM)
			rp_hint("capturing needs CAP_NET_RAW: run as root, or "
				"'sudo setcap cap_net_raw,cap_net_admin+ep $(command -v rawpunch)'");
		if (r == -ENODEV)
			rp_hint("'ip link' lists the interfaces; 'any' captures on all of them");
		return 1;
	}
	/* Everything privileged is open: give up the rest, as tcpdump -Z does (and for good). */
	if (rp_cli_enter(user, 0)) {
		rp_cap_close(cap);
		return 1;
	}

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;   /* no SA_RESTART: poll() returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (co.read_path)
		fprintf(stderr, "watch: reading %s (linktype %d), filter: %s\n", co.read_path, rp_cap_linktype(cap),
			filter);
	else
		fprintf(stderr, "watch: listening on %s (linktype %d), filter: %s\n", co.iface,
			rp_cap_linktype(cap), filter);

	uint64_t deadline = timeout_s > 0 ? rp_mono_ms() + (uint64_t)(timeout_s * 1000.0 + 0.5) : 0;
	unsigned long seen = 0;
	int status = 0;
	while (!stop_sig && (!count || seen < count)) {
		int wait_ms = -1;
		if (deadline) {
			uint64_t now = rp_mono_ms();
			if (now >= deadline)
				break;
			wait_ms = (int)(deadline - now);
		}
		r = rp_cap_wait(cap, wait_ms);
		if (r == -EINTR)
			continue;
		if (r == -ENODATA)
			break;                       /* the end of a --read file */
		if (r < 0) {
			rp_err("capture: %s", strerror(-r));
			status = 1;
			break;
		}
		if (r == 0)
			continue;
		struct rp_event ev;
		while (!stop_sig && (!count || seen < count) && (r = rp_cap_next(cap, &ev)) == 1) {
			if (json)
				print_json(&ev);
			else
				print_text(&ev);
			seen++;
		}
		if (r == -ENODATA)
			break;
		if (r < 0) {
			rp_err("capture: %s", rp_cap_errmsg(cap));
			status = 1;
			break;
		}
		if (ferror(stdout))
			break;   /* reader went away */
	}
	fflush(stdout);

	struct rp_cap_stats st;
	if (rp_cap_stats(cap, &st) == 0) {
		fprintf(stderr,
			"watch: %llu events; %llu frames (%llu not ours, %llu malformed); "
			"kernel: %llu received by filter, %llu dropped, %llu dropped by interface",
			(unsigned long long)seen, (unsigned long long)st.frames, (unsigned long long)st.ignored,
			(unsigned long long)st.malformed, (unsigned long long)st.received,
			(unsigned long long)st.dropped, (unsigned long long)st.ifdropped);
		if (write_path)
			fprintf(stderr, "; %llu written to %s", (unsigned long long)st.dumped, write_path);
		fputc('\n', stderr);
	}
	rp_cap_close(cap);
	if (!status && stop_sig)
		status = 128 + stop_sig;   /* 130 after Ctrl-C, as a shell reports it */
	return status;
}
