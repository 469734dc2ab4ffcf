/* SPDX-License-Identifier: MIT */
/* rawpunch punch: meet the peer at a rendezvous server, probe this side's NAT, agree on a strategy and
 * a start time, punch (rawpunch/punch/punch.h), hand the connection to the kernel and use it (--stdio,
 * --exec, -L). --report writes a JSON account of the attempt. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/handoff/fdmode.h"
#include "rawpunch/handoff/handoff.h"
#include "rawpunch/probe/natinfo.h"
#include "rawpunch/rendezvous/offer.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/base/privs.h"
#include "rawpunch/probe/probe.h"
#include "rawpunch/punch/punch.h"
#include "rawpunch/rendezvous/client.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/strategy/strategy.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/trace.h"

#define MAX_ROUNDS 8

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	stop_flag = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch punch --rendezvous HOST[:PORT] --session NAME --secret-file FILE\n"
		"                      [--stdio | --exec CMD | -L [ADDR:]PORT] [--report FILE] [--pcap FILE]\n"
		"                      [--stun HOST[:PORT]] [--local-port P] [--rate PPS] [--rounds N] [options]\n"
		"       rawpunch punch --offer --stun HOST[:PORT] --secret-file FILE [data mode] [options]\n"
		"       rawpunch punch --answer TEXT|- --stun HOST[:PORT] --secret-file FILE [data mode] [options]\n"
		"\n"
		"Both peers run this with the same session and secret. Each probes its NAT from the punch port\n"
		"(mapping, allocation, filtering, nat_ttl), meets the other at the rendezvous server (everything\n"
		"exchanged there is sealed with a key from the secret), and both compute the same plan:\n"
		"  simultaneous open   both external ports known (preserving / endpoint-independent / no NAT);\n"
		"                      low-TTL primes first on a NAT that answers unsolicited SYNs\n"
		"  predicted-burst     a sequential NAT: its side primes the predicted port, the other bursts SYNs\n"
		"                      to the prediction window; both sequential: every target primed, then\n"
		"                      lockstep bursts staggered so other hosts' flows in between still pair\n"
		"  birthday            a random NAT: that side opens many mappings with low-TTL SYNs, the other\n"
		"                      probes random ports (P = 1-(1-k/N)^m, e.g. 256 x 1159 = 99%%)\n"
		"At the agreed instant both execute; every reply is validated (SYNs by a keyed hash of the\n"
		"round, SYN-ACKs by our own ISN), the first valid SYN or SYN-ACK completes the handshake in\n"
		"userspace and the connection is handed to a kernel socket (TCP_REPAIR). On a miss both\n"
		"re-probe and retry with a wider window, up to --rounds. Plan options (--rate, --rounds,\n"
		"--max-open, --max-probes) must be the same on both sides.\n"
		"\n"
		"  --rendezvous HOST[:PORT]  rendezvous server (port %d by default)\n"
		"  --session NAME            session name both peers use\n"
		"  --secret-file FILE        shared secret (its bytes; one trailing newline is ignored)\n"
		"  --stdio                   relay the connection to stdin/stdout (default)\n"
		"  --exec CMD                run /bin/sh -c CMD with the connection as its stdin/stdout\n"
		"  -L [ADDR:]PORT            listen on ADDR:PORT (127.0.0.1 by default) and relay the first\n"
		"                            client over the punched connection\n"
		"  --offer                   serverless: print an offer text (one line on stderr), then read the\n"
		"                            peer's answer as the first line of stdin\n"
		"  --answer TEXT|-           serverless: answer this offer (\"-\": read it from stdin); prints the\n"
		"                            answer on stderr; both start --start-in seconds later. Needs\n"
		"                            synchronised clocks (NTP), one round, filtering unknown (primes)\n"
		"  --start-in S              serverless: seconds from the answer to the start, 2..600 (20)\n"
		"  --report FILE             write a JSON account of the attempt (natinfos, plan, rounds, result)\n"
		"  --pcap FILE               write every packet of the punch (both directions) to FILE\n"
		"  --stun HOST[:PORT]        STUN server (TCP; default: the rendezvous host, port 3478)\n"
		"  --local-port P            punch port (default: a free one)\n"
		"  --rate PPS                SYN rate cap per side, 10..1000000 (default 2000)\n"
		"  --rounds N                attempts, 1..%d (default: the plan's, 3; 2 for simultaneous open)\n"
		"  --max-open K              birthday: mappings the hard side opens (default 256)\n"
		"  --max-probes M            birthday: most probes of the easy side (default 2048)\n"
		"  --samples N               allocation samples of the probe, 4..64 (default 6)\n"
		"  --timeout S               wait for the peer at the rendezvous, 1..3600 (default 30)\n"
		"  --lead MS                 time from the meeting to the start, 100..10000 (default 400)\n"
		"  --user USER               switch to USER after the handoff (privileges are dropped anyway)\n"
		"  -q, --quiet               no status lines on stderr (errors still)\n"
		"  -v, --verbose             per-packet events on stderr\n"
		"\n"
		"Status lines go to stderr (with a progress line on a terminal); stdout carries only data.\n"
		"Exit status: 0 after the data mode ended, 1 if no connection came about (with the reason), 2 on\n"
		"bad usage. Needs CAP_NET_RAW and CAP_NET_ADMIN (raw SYNs, capture, nftables, TCP_REPAIR).\n",
		RV_DEFAULT_PORT, MAX_ROUNDS);
}

enum mode { MODE_STDIO = 0, MODE_EXEC, MODE_FORWARD };

struct cfg {
	struct sockaddr_in rv, stun;
	bool has_stun;
	const char *session, *secret_file, *report, *pcap, *exec_cmd, *fwd_spec, *user;
	enum mode mode;
	uint16_t lport;
	uint32_t rate;
	unsigned rounds, max_open, max_probes, samples;
	int timeout_s, lead_ms;
	bool quiet, verbose, tty;
	bool offer;                 /* serverless: print an offer, read the answer */
	const char *answer_to;      /* serverless: the offer text to answer ("-": read a line from stdin) */
	int start_in_s;             /* serverless answer: start this long after answering */
	const struct rp_offer *the_offer;  /* --answer: the decoded offer */
	int filter_ms;              /* the server's connect timeout for the filter probe (from the RTT) */
};

static double ms_since(uint64_t t0)
{
	return (double)(rp_mono_ns() - t0) / 1e6;
}

static const struct cfg *g_cfg;

/* A double printed with `dec` decimals (json-c would print all 17 digits). */
static struct json_object *jd(double v, int dec)
{
	char b[48];
	double f = pow(10, dec);
	snprintf(b, sizeof(b), "%.*f", dec, v);
	return json_object_new_double_s(round(v * f) / f, b);
}
static bool progress_shown;

__attribute__((format(printf, 1, 2)))
static void status(const char *fmt, ...)
{
	va_list ap;
	if (g_cfg->quiet)
		return;
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		progress_shown = false;
	}
	fputs("punch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void trace_line(void *arg, const char *line)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(stderr, "[%5ld.%03ld] %s\n", (long)ts.tv_sec % 100000, ts.tv_nsec / 1000000, line);
}

static void on_progress(const struct rp_punch_progress *pr, void *arg)
{
	(void)arg;
	if (g_cfg->quiet || !g_cfg->tty || g_cfg->verbose)
		return;
	fprintf(stderr, "\r\033[Kpunch: round %u %-9s %llu/%llu SYNs  %u replies  T%+.0f ms", pr->round + 1,
		pr->phase, (unsigned long long)pr->sent, (unsigned long long)pr->total, pr->replies, pr->elapsed_ms);
	progress_shown = true;
}

static int read_secret(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;
	if (!f)
		return -errno;
	b = malloc(4097);
	if (!b) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(b, 1, 4097, f);
	fclose(f);
	if (n > 4096) {
		free(b);
		return -EFBIG;
	}
	if (n && b[n - 1] == '\n')
		n--;
	*out = b;
	*len = n;
	return 0;
}

/* --- report ---------------------------------------------------------------------------------- */

struct report {
	struct json_object *root, *rounds;
	bool have_self, have_peer;
};

static void report_init(struct report *rp, const struct cfg *c)
{
	rp->root = json_object_new_object();
	rp->rounds = json_object_new_array();
	json_object_object_add(rp->root, "version", json_object_new_int(1));
	json_object_object_add(rp->root, "session", json_object_new_string(c->session));
	json_object_object_add(rp->root, "started", json_object_new_int64((int64_t)time(NULL)));
	json_object_object_add(rp->root, "pcap", c->pcap ? json_object_new_string(c->pcap) : NULL);
}

static void report_set(struct report *rp, const char *k, struct json_object *v)
{
	if (!strcmp(k, "result"))   /* the rounds go just before the result */
		json_object_object_add(rp->root, "rounds", json_object_get(rp->rounds));
	json_object_object_add(rp->root, k, v);
}

static int report_write(const struct report *rp, const char *path)
{
	char tmp[4096];
	if (!path)
		return 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	const char *s = json_object_to_json_string_ext(rp->root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fputs(s, f);
	fputc('\n', f);
	if (fclose(f)) {
		unlink(tmp);
		return -EIO;
	}
	if (rename(tmp, path)) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

static double g_t_probe = -1, g_t_join = -1;   /* ms, for the report; < 0 not reached */

static void report_fail(struct report *rp, const struct cfg *c, const char *stage, const char *why, double t_ms)
{
	struct json_object *res = json_object_new_object();
	json_object_object_add(res, "ok", json_object_new_boolean(0));
	json_object_object_add(res, "stage", json_object_new_string(stage));
	json_object_object_add(res, "path", NULL);
	json_object_object_add(res, "probe_ms", g_t_probe < 0 ? NULL : jd(g_t_probe, 1));
	json_object_object_add(res, "join_ms", g_t_join < 0 ? NULL : jd(g_t_join, 1));
	json_object_object_add(res, "rounds", json_object_new_int((int)json_object_array_length(rp->rounds)));
	json_object_object_add(res, "total_ms", jd(t_ms, 1));
	report_set(rp, "result", res);
	report_set(rp, "why", json_object_new_string(why));
	int r = report_write(rp, c->report);
	if (r)
		rp_err("--report %s: %s", c->report, strerror(-r));
}

/* --- the probe --------------------------------------------------------------------------------- */

static int do_probe(const struct cfg *c, uint16_t lport, bool first, struct rp_probe_report *pr)
{
	struct rp_probe_opts o = {
		.stun = c->stun,
		.local_port = lport,
		.samples = c->samples,
		.interval_ms = 10,
		/* one lost SYN costs the kernel's 1 s retransmission: leave room for it and a lost reply */
		.timeout_ms = 3500,
		.filter_probe = first && c->rv.sin_addr.s_addr != 0 ? rv_filter_probe_cb : NULL,
		.filter_probe_arg = (void *)&c->rv,
		.filter_timeout_ms = c->filter_ms ? c->filter_ms : 400,
		.ttl_max = first ? 4 : 0,
		.ttl_wait_ms = 0,
		.horizon_s = 1.0,
	};
	return rp_probe_run(&o, pr);
}

static void natinfo_line(const char *who, const struct rp_natinfo *ni)
{
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
	char pred[64] = "";
	if (ni->alloc == RP_ALLOC_SEQUENTIAL && ni->n_predicted)
		snprintf(pred, sizeof(pred), " delta %d, next %u..%u", ni->delta, ni->predicted[0],
			 ni->predicted[ni->n_predicted - 1]);
	status("%s %s:%u -> %s:%u, %s mapping, %s allocation%s, filtering %s, nat_ttl %u (%s)", who,
	       rp_ip_str(ni->local_addr, a), ni->local_port, rp_ip_str(ni->mapped_addr, b), ni->mapped_port,
	       rp_mapping_str(ni->mapping), rp_alloc_str(ni->alloc), pred, rp_filter_str(ni->filtering), ni->nat_ttl,
	       rp_side_kind_str(rp_side_classify(ni)));
}

/* --- between rounds ------------------------------------------------------------------------------ */

/* Wait for a sealed message of type want (others are skipped, "gone" ends it). */
static int wait_msg(struct rv_client *rv, const char *want, int timeout_ms, struct json_object **out)
{
	uint64_t end = rp_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		struct json_object *o;
		const char *t;
		uint64_t now = rp_mono_ns();
		if (now >= end)
			return -ETIMEDOUT;
		if (stop_flag)
			return -EINTR;
		int r = rv_recv(rv, (int)((end - now) / 1000000ull) + 1, &o, &t);
		if (r)
			return r;
		if (!strcmp(t, want)) {
			*out = o;
			return 0;
		}
		if (!strcmp(t, "abort") || !strcmp(t, "done")) {
			json_object_put(o);
			return -ECONNABORTED;
		}
		json_object_put(o);
	}
}

static int64_t jint(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

/* --- data mode ------------------------------------------------------------------------------- */

struct fwd_ctx {
	int fd;
};

static int dial_once(void *arg)
{
	struct fwd_ctx *f = arg;
	int fd = __atomic_exchange_n(&f->fd, -1, __ATOMIC_SEQ_CST);
	return fd >= 0 ? fd : -EBUSY;
}

static int data_mode(const struct cfg *c, int fd, int lfd, struct rp_relay_stats *rs)
{
	switch (c->mode) {
	case MODE_EXEC: {
		int st = rp_fd_exec(fd, c->exec_cmd);
		close(fd);
		if (st < 0)
			return rp_err_errno(st, "--exec");
		return st == 0 ? 0 : rp_err("--exec: '%s' exited with status %d", c->exec_cmd, st);
	}
	case MODE_FORWARD: {
		struct fwd_ctx f = { .fd = fd };
		struct rp_forward_opts fo = { .max_clients = 1, .max_parallel = 1, .stop_fd = -1 };
		struct rp_forward_stats fs;
		int r = rp_forward(lfd, dial_once, &f, &fo, &fs);
		close(lfd);
		if (f.fd >= 0)
			close(f.fd);
		rs->a_to_b = fs.up_bytes;
		rs->b_to_a = fs.down_bytes;
		if (r < 0)
			return rp_err_errno(r, "-L forward");
		return fs.failed ? rp_err("-L: the relay ended with an error") : 0;
	}
	default: {
		int r = rp_fd_stdio(fd, rs);
		close(fd);
		if (r < 0 && r != -ECONNRESET)
			return rp_err_errno(r, "relay");
		if (r == -ECONNRESET)
			return rp_err("the peer reset the connection");
		return 0;
	}
	}
}

/* --- serverless: offer / answer -------------------------------------------------------------- */

/* One line from fd, byte by byte so nothing after the newline is consumed (it is data for --stdio).
 * Length (newline and surrounding whitespace stripped), -EMSGSIZE, -ENODATA at EOF, -EINTR. */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char ch;
		ssize_t k = read(fd, &ch, 1);
		if (k < 0) {
			if (errno == EINTR && !stop_flag)
				continue;
			return errno == EINTR ? -EINTR : -errno;
		}
		if (k == 0) {
			if (!n)
				return -ENODATA;
			break;
		}
		if (ch == '\n')
			break;
		if (n + 1 >= cap)
			return -EMSGSIZE;
		buf[n++] = ch;
	}
	while (n && (buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = 0;
	return (int)n;
}

static const char *offer_err(int r)
{
	switch (r) {
	case -EINVAL: return "not an offer/answer text";
	case -EBADMSG: return "it does not authenticate (a different secret, or altered)";
	case -EPROTO: return "authentic but malformed";
	case -EPERM: return "it answers another offer";
	case -ESTALE: return "too old, or its start time has passed";
	default: return strerror(-r);
	}
}

/* Exchange natinfo through pasted texts. The offerer is plan side a. Our own natinfo goes through the
 * codec too, so both plans are made from exactly the same (possibly truncated) fields. */
static int meet_serverless(const struct cfg *c, const uint8_t *secret, size_t slen, struct rp_natinfo *self,
			   struct rp_natinfo *peer, int *me, uint64_t *start, char *why, size_t wlen)
{
	struct rp_offer o, ans, mine;
	char text[RP_OFFER_TEXT_MAX + 8], in[2048];
	uint64_t now = rp_real_ns();
	int r;
	if (c->offer) {
		rp_offer_init(&o, RP_OFFER, now);
		o.ni = *self;
		o.start_ns = now + 600ull * 1000000000ull;   /* answer within 10 minutes */
		r = rp_offer_encode(&o, secret, slen, text, sizeof(text));
		if (r < 0)
			return snprintf(why, wlen, "encoding the offer: %s", strerror(-r)), r;
		if ((r = rp_offer_decode(text, secret, slen, &mine)))
			return snprintf(why, wlen, "the offer does not decode: %s", offer_err(r)), r;
		*self = mine.ni;
		if (progress_shown)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "%s\n", text);
		status("offer above: the peer runs 'rawpunch punch --answer TEXT --stun ... --secret-file ...'; "
		       "paste its answer here (first line of stdin)");
		r = read_line(STDIN_FILENO, in, sizeof(in));
		if (r < 0)
			return snprintf(why, wlen, "reading the answer from stdin: %s",
					r == -ENODATA ? "end of input" : strerror(-r)), r;
		r = rp_offer_decode(in, secret, slen, &ans);
		if (!r && ans.kind != RP_ANSWER)
			r = -EINVAL;
		if (!r)
			r = rp_offer_match(&o, &ans);
		if (!r)
			r = rp_offer_fresh(&ans, rp_real_ns(), 600);
		if (r)
			return snprintf(why, wlen, "the answer: %s", offer_err(r)), r;
		*peer = ans.ni;
		*me = 0;
		*start = ans.start_ns;
		return 0;
	}
	(void)in;
	o = *c->the_offer;   /* decoded and checked before anything was sent */
	r = rp_offer_fresh(&o, now, 600);
	if (r)
		return snprintf(why, wlen, "the offer: %s", offer_err(r)), r;
	rp_offer_init(&ans, RP_ANSWER, now);
	memcpy(ans.nonce, o.nonce, sizeof(ans.nonce));
	ans.ni = *self;
	ans.start_ns = now + (uint64_t)c->start_in_s * 1000000000ull;
	r = rp_offer_encode(&ans, secret, slen, text, sizeof(text));
	if (r < 0)
		return snprintf(why, wlen, "encoding the answer: %s", strerror(-r)), r;
	if ((r = rp_offer_decode(text, secret, slen, &mine)))
		return snprintf(why, wlen, "the answer does not decode: %s", offer_err(r)), r;
	*self = mine.ni;
	fprintf(stderr, "%s\n", text);
	status("answer above: paste it into the offering side within %d s (both start then)", c->start_in_s);
	*peer = o.ni;
	*me = 1;
	*start = ans.start_ns;
	return 0;
}

/* --- main -------------------------------------------------------------------------------------- */

static int parse(int argc, char **argv, struct cfg *c)
{
	static const struct option lopts[] = {
		{ "rendezvous", required_argument, NULL, 'R' },
		{ "session", required_argument, NULL, 'S' },
		{ "secret-file", required_argument, NULL, 'K' },
		{ "stdio", no_argument, NULL, 's' },
		{ "exec", required_argument, NULL, 'e' },
		{ "report", required_argument, NULL, 'r' },
		{ "pcap", required_argument, NULL, 'p' },
		{ "stun", required_argument, NULL, 'U' },
		{ "local-port", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'a' },
		{ "rounds", required_argument, NULL, 'n' },
		{ "max-open", required_argument, NULL, 'o' },
		{ "max-probes", required_argument, NULL, 'm' },
		{ "samples", required_argument, NULL, 'N' },
		{ "timeout", required_argument, NULL, 't' },
		{ "lead", required_argument, NULL, 'd' },
		{ "user", required_argument, NULL, 'u' },
		{ "offer", no_argument, NULL, 'O' },
		{ "answer", required_argument, NULL, 'A' },
		{ "start-in", required_argument, NULL, 'I' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long v;
	int ch, modes = 0;
	const char *stun = NULL, *rv = NULL;

	optind = 1;
	opterr = 0;
	c->samples = 6;
	c->timeout_s = 30;
	c->lead_ms = 400;
	c->start_in_s = 20;
	while ((ch = getopt_long(argc, argv, ":L:qvh", lopts, NULL)) != -1) {
		switch (ch) {
		case 'R': rv = optarg; break;
		case 'S':
			if (!*optarg || strlen(optarg) > 255)
				return rp_usage_err("punch", "--session: 1..255 bytes");
			c->session = optarg;
			break;
		case 'K': c->secret_file = optarg; break;
		case 's': c->mode = MODE_STDIO; modes++; break;
		case 'e':
			if (!*optarg)
				return rp_usage_err("punch", "--exec: empty command");
			c->mode = MODE_EXEC;
			c->exec_cmd = optarg;
			modes++;
			break;
		case 'L': c->mode = MODE_FORWARD; c->fwd_spec = optarg; modes++; break;
		case 'r':
			if (!*optarg)
				return rp_usage_err("punch", "--report: empty file name");
			c->report = optarg;
			break;
		case 'p':
			if (!*optarg)
				return rp_usage_err("punch", "--pcap: empty file name");
			c->pcap = optarg;
			break;
		case 'U': stun = optarg; break;
		case 'l':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("punch", "--local-port: '%s' is not a port (1-65535)", optarg);
			c->lport = (uint16_t)v;
			break;
		case 'a':
			if (rp_parse_ulong(optarg, 10, 1000000, &v))
				return rp_usage_err("punch", "--rate: '%s' is not 10..1000000 packets/s", optarg);
			c->rate = (uint32_t)v;
			break;
		case 'n':
			if (rp_parse_ulong(optarg, 1, MAX_ROUNDS, &v))
				return rp_usage_err("punch", "--rounds: '%s' is not 1..%d", optarg, MAX_ROUNDS);
			c->rounds = (unsigned)v;
			break;
		case 'o':
			if (rp_parse_ulong(optarg, 1, 4096, &v))
				return rp_usage_err("punch", "--max-open: '%s' is not 1..4096", optarg);
			c->max_open = (unsigned)v;
			break;
		case 'm':
			if (rp_parse_ulong(optarg, 1, 65535, &v))
				return rp_usage_err("punch", "--max-probes: '%s' is not 1..65535", optarg);
			c->max_probes = (unsigned)v;
			break;
		case 'N':
			if (rp_parse_ulong(optarg, 4, 64, &v))
				return rp_usage_err("punch", "--samples: '%s' is not 4..64", optarg);
			c->samples = (unsigned)v;
			break;
		case 't':
			if (rp_parse_ulong(optarg, 1, 3600, &v))
				return rp_usage_err("punch", "--timeout: '%s' is not 1..3600 seconds", optarg);
			c->timeout_s = (int)v;
			break;
		case 'd':
			if (rp_parse_ulong(optarg, 100, 10000, &v))
				return rp_usage_err("punch", "--lead: '%s' is not 100..10000 ms", optarg);
			c->lead_ms = (int)v;
			break;
		case 'u': c->user = optarg; break;
		case 'O': c->offer = true; break;
		case 'A':
			if (!*optarg)
				return rp_usage_err("punch", "--answer: empty offer text");
			c->answer_to = optarg;
			break;
		case 'I':
			if (rp_parse_ulong(optarg, 2, 600, &v))
				return rp_usage_err("punch", "--start-in: '%s' is not 2..600 seconds", optarg);
			c->start_in_s = (int)v;
			break;
		case 'q': c->quiet = true; break;
		case 'v': c->verbose = true; break;
		case 'h': usage(stdout); return -1;
		case ':': return rp_usage_err("punch", "%s needs a value", argv[optind - 1]);
		default: return rp_usage_err("punch", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return rp_usage_err("punch", "unexpected argument '%s'", argv[optind]);
	if (modes > 1)
		return rp_usage_err("punch", "--stdio, --exec and -L exclude each other");
	if (!c->secret_file)
		return rp_usage_err("punch", "--secret-file FILE is required");
	int r;
	if (c->offer || c->answer_to) {
		if (c->offer && c->answer_to)
			return rp_usage_err("punch", "--offer and --answer exclude each other");
		if (rv)
			return rp_usage_err("punch", "--offer/--answer are serverless: no --rendezvous");
		if (!stun)
			return rp_usage_err("punch", "--offer/--answer need --stun HOST[:PORT] (no rendezvous host to default to)");
		if (!c->session)
			c->session = "serverless";
	} else {
		if (!rv)
			return rp_usage_err("punch", "--rendezvous HOST[:PORT] is required (or --offer / --answer)");
		if (!c->session)
			return rp_usage_err("punch", "--session NAME is required");
		r = rp_parse_hostport(rv, RV_DEFAULT_PORT, &c->rv);
		if (r)
			return rp_usage_err("punch", "--rendezvous '%s': %s", rv,
					    r == -EHOSTUNREACH ? "cannot resolve the host" : "not HOST[:PORT]");
	}
	if (stun) {
		r = rp_parse_hostport(stun, 3478, &c->stun);
		if (r)
			return rp_usage_err("punch", "--stun '%s': %s", stun,
					    r == -EHOSTUNREACH ? "cannot resolve the host" : "not HOST[:PORT]");
	} else {
		c->stun = c->rv;
		c->stun.sin_port = htons(3478);
	}
	return 0;
}

int cmd_punch(int argc, char **argv)
{
	struct cfg c = { 0 };
	struct report rep = { 0 };
	struct rv_client *rv = NULL;
	struct rp_punch *pu = NULL;
	static struct rp_probe_report pr;
	struct rv_join_req req = { 0 };
	struct rv_join_res res;
	struct rp_natinfo self, peer;
	struct rp_plan plan;
	uint8_t *secret = NULL, key[RP_PUNCH_KEYLEN];
	size_t slen = 0;
	uint64_t t_start = rp_mono_ns();
	double t_probe = 0, t_join = 0;
	int r, lfd = -1, ret = 1;
	char why[400], a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];

	r = parse(argc, argv, &c);
	if (r)
		return r < 0 ? 0 : r;
	g_cfg = &c;
	c.tty = isatty(STDERR_FILENO);
	if (c.mode == MODE_EXEC && !c.user && geteuid() == 0 && !c.quiet)
		rp_hint("--exec runs its command as uid 0 (root, though without capabilities): "
			"add --user nobody (or another unprivileged user)");
	r = read_secret(c.secret_file, &secret, &slen);
	if (r)
		return rp_usage_err("punch", "--secret-file %s: %s", c.secret_file,
				    r == -EFBIG ? "larger than 4096 bytes" : strerror(-r));
	if (slen < RV_SECRET_MIN) {
		sodium_memzero(secret, slen);
		free(secret);
		rp_err("punch: --secret-file %s: %zu bytes; want at least %u random bytes (whoever sees the session "
		       "id, like the rendezvous server, can search a short secret offline)", c.secret_file, slen,
		       RV_SECRET_MIN);
		rp_hint("head -c 32 /dev/urandom | base64 > %s", c.secret_file);
		return 2;
	}
	if (rp_punch_key_derive(secret, slen, c.session, key)) {
		free(secret);
		return rp_err("cannot derive the punch key");
	}
	static struct rp_offer the_offer;
	if (c.answer_to) {
		/* the offer is input: check it before a single packet leaves */
		char in[2048];
		const char *t = c.answer_to;
		if (!strcmp(t, "-")) {
			r = read_line(STDIN_FILENO, in, sizeof(in));
			if (r < 0) {
				free(secret);
				return rp_err("reading the offer from stdin: %s", r == -ENODATA ? "end of input" : strerror(-r));
			}
			t = in;
		}
		r = rp_offer_decode(t, secret, slen, &the_offer);
		if (!r && the_offer.kind != RP_OFFER)
			r = -EINVAL;
		if (!r)
			r = rp_offer_fresh(&the_offer, rp_real_ns(), 600);
		if (r) {
			free(secret);
			if (r == -EINVAL)
				return rp_usage_err("punch", "--answer: the offer: %s", offer_err(r));
			rp_err("the offer: %s", offer_err(r));
			rp_hint("both sides need the same secret file, and an offer is good for 10 minutes");
			return 1;
		}
		c.the_offer = &the_offer;
	}
	if (c.mode == MODE_FORWARD) {
		lfd = rp_forward_listen(c.fwd_spec, 4);
		if (lfd < 0) {
			free(secret);
			if (lfd == -EINVAL)
				return rp_usage_err("punch", "-L '%s' is not [ADDR:]PORT", c.fwd_spec);
			return rp_err_errno(lfd, "-L listen");
		}
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	(void)rp_privs_limit();
	report_init(&rep, &c);

	bool serverless = c.offer || c.answer_to;
	/* 1. the rendezvous connection first: its NAT mapping is taken before the probe's samples, so
	 *    the prediction is not off by one flow */
	uint64_t t_rv = rp_mono_ns();
	r = serverless ? 0 : rv_connect(&c.rv, 5000, &rv);
	if (!r && !serverless) {
		rv_set_stop(rv, &stop_flag);   /* Ctrl-C ends a join or a wait for the peer at once */
		/* the filter probe waits for the server's SYN to draw an answer from our NAT: about one
		 * RTT, which the connect just measured; 4 x RTT + 100 ms, within 150..1000 ms */
		double rtt = ms_since(t_rv);
		c.filter_ms = (int)(4 * rtt + 100);
		c.filter_ms = c.filter_ms < 150 ? 150 : c.filter_ms > 1000 ? 1000 : c.filter_ms;
	}
	if (r) {
		snprintf(why, sizeof(why), "rendezvous %s:%u: %s", inet_ntoa(c.rv.sin_addr), ntohs(c.rv.sin_port),
			 strerror(-r));
		report_fail(&rep, &c, "rendezvous", why, ms_since(t_start));
		rp_err("%s", why);
		rp_hint("is 'rawpunch rendezvous --listen' running there and reachable?");
		goto out;
	}
	/* 2. probe from the punch port */
	uint16_t lport = c.lport;
	if (!lport && (r = rp_free_port(0, &lport))) {
		rp_err_errno(r, "picking a free punch port");
		goto out;
	}
	uint64_t t1 = rp_mono_ns();
	r = do_probe(&c, lport, true, &pr);
	t_probe = g_t_probe = ms_since(t1);
	if (r) {
		snprintf(why, sizeof(why), "probe from port %u via STUN %s:%u failed: %s", lport,
			 inet_ntoa(c.stun.sin_addr), ntohs(c.stun.sin_port), strerror(-r));
		report_fail(&rep, &c, "probe", why, ms_since(t_start));
		rp_err("%s", why);
		rp_hint("the STUN server must speak TCP (--stun HOST[:PORT]; default: the rendezvous host, 3478)");
		goto out;
	}
	self = pr.ni;
	report_set(&rep, "self", rp_natinfo_to_json(&self));
	natinfo_line("this side", &self);
	status("probe took %.0f ms", t_probe);

	/* 3. meet */
	int me = 0;
	memset(&res, 0, sizeof(res));
	if (serverless) {
		t1 = rp_mono_ns();
		r = meet_serverless(&c, secret, slen, &self, &peer, &me, &res.start_ns, why, sizeof(why));
		t_join = g_t_join = ms_since(t1);
		if (r) {
			report_fail(&rep, &c, "offer", why, ms_since(t_start));
			rp_err("%s", why);
			rp_hint("both sides need the same secret file; the answer must reach the offering side before its start");
			goto out;
		}
		report_set(&rep, "role", json_object_new_string(me ? "b" : "a"));
		report_set(&rep, "peer", rp_natinfo_to_json(&peer));
		report_set(&rep, "serverless", json_object_new_string(c.offer ? "offer" : "answer"));
		natinfo_line("peer     ", &peer);
		goto plan;
	}
	req.session = c.session;
	req.secret = secret;
	req.secret_len = slen;
	req.me = self;
	req.timeout_ms = c.timeout_s * 1000;
	req.clock_rounds = 4;
	req.lead_ms = (uint32_t)c.lead_ms;
	t1 = rp_mono_ns();
	r = rv_join(rv, &req, &res);
	t_join = g_t_join = ms_since(t1);
	if (r) {
		if (r == -EACCES)
			snprintf(why, sizeof(why), "rendezvous: the peer's messages do not authenticate (different secret, or a forger)");
		else if (r == -ETIMEDOUT)
			snprintf(why, sizeof(why), "rendezvous: no peer joined session '%s' within %d s", c.session, c.timeout_s);
		else if (r == -EBUSY)
			snprintf(why, sizeof(why), "rendezvous: session '%s' already has two peers", c.session);
		else
			snprintf(why, sizeof(why), "rendezvous: join failed: %s", strerror(-r));
		report_fail(&rep, &c, "rendezvous", why, ms_since(t_start));
		rp_err("%s", why);
		rp_hint("both sides need the same --session and the same secret file");
		goto out;
	}
	peer = res.peer;
	me = res.initiator ? 0 : 1;
	report_set(&rep, "role", json_object_new_string(me ? "b" : "a"));
	report_set(&rep, "peer", rp_natinfo_to_json(&peer));
	{
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "rtt_ms", jd((double)res.rtt_ns / 1e6, 3));
		json_object_object_add(o, "peer_rtt_ms", jd((double)res.peer_rtt_ns / 1e6, 3));
		json_object_object_add(o, "relay_rtt_ms", jd((double)res.relay_rtt_ns / 1e6, 3));
		json_object_object_add(o, "clock_err_ms", jd((double)res.clock_err_ns / 1e6, 3));
		json_object_object_add(o, "offset_ms", jd((double)res.offset_ns / 1e6, 3));
		report_set(&rep, "rendezvous", o);
	}
	natinfo_line("peer     ", &peer);
	status("met the peer as side %c (relay RTT %.1f ms, clock error bound %.1f ms)", 'a' + me,
	       (double)res.relay_rtt_ns / 1e6, (double)res.clock_err_ns / 1e6);

plan:;  /* a label cannot precede a declaration before C23 (clang, make fuzz) */
	/* 4. plan (both sides compute the same one from the same inputs) */
	struct rp_plan_params pp = {
		.rtt_ms = (double)res.relay_rtt_ns / 1e6,
		.clock_err_ms = (double)res.clock_err_ns / 1e6,
		.rate_pps = c.rate,
		.max_open = c.max_open,
		.max_probes = c.max_probes,
		.rounds = c.rounds,
	};
	const struct rp_natinfo *na = me ? &peer : &self, *nb = me ? &self : &peer;
	r = rp_plan_make(na, nb, &pp, 0, &plan);
	if (r) {
		snprintf(why, sizeof(why), "no plan: a natinfo lacks a public address or punch port");
		report_fail(&rep, &c, "plan", why, ms_since(t_start));
		rp_err("%s", why);
		goto out;
	}
	report_set(&rep, "plan", rp_plan_to_json(&plan));
	status("strategy %s: %s", rp_plan_name(&plan), plan.reason);
	if (rp_plan_refused(&plan)) {
		char odds[200], hint[300];
		rp_plan_refusal(&plan, odds, sizeof(odds), hint, sizeof(hint));
		snprintf(why, sizeof(why), "%s (%s)", plan.reason, odds);
		report_fail(&rep, &c, "plan", why, ms_since(t_start));
		rp_err("no direct connection possible: %s", plan.reason);
		rp_hint("%s", hint);
		goto out;
	}

	/* 5. punch, round after round */
	struct rp_punch_opts po = {
		.peer_addr = rp_punch_pub_addr(&peer),
		.key = key,
		.pcap_path = c.pcap,
		.stop = &stop_flag,
		.trace = c.verbose ? trace_line : NULL,
	};
	char perr[256];
	r = rp_punch_open(&po, &pu, perr, sizeof(perr));
	if (r) {
		snprintf(why, sizeof(why), "setting up the punch: %s", perr);
		report_fail(&rep, &c, "setup", why, ms_since(t_start));
		rp_err_errno(r, perr);
		goto out;
	}
	uint64_t start = res.start_ns;
	unsigned nrounds = plan.rounds ? plan.rounds : 1;
	if (serverless)
		nrounds = 1;   /* no channel to agree on a re-probe */
	struct rp_punch_round_stats st;
	int pres = -ETIMEDOUT;
	for (unsigned round = 0; round < nrounds; round++) {
		struct rp_punch_round_opts ro = {
			.plan = &plan, .me = me, .self = &self, .peer = &peer, .round = round,
			.start_real_ns = start, .progress = on_progress,
		};
		pres = rp_punch_round(pu, &ro, &st);
		struct json_object *rj = rp_punch_round_to_json(&st);
		if (round > 0)
			json_object_object_add(rj, "plan", rp_plan_to_json(&plan));
		json_object_array_add(rep.rounds, rj);
		status("round %u: %s; sent %llu primes + %llu SYNs + %llu handshake; seen syn %u syn-ack %u rst %u icmp %u "
		       "forged %u", round + 1, st.why, (unsigned long long)st.primes_sent,
		       (unsigned long long)st.syns_sent, (unsigned long long)st.handshake_sent, st.rx_syn, st.rx_synack,
		       st.rx_rst, st.rx_icmp, st.rx_forged);
		if (pres != -ETIMEDOUT || round + 1 >= nrounds)
			break;
		/* a miss: tell the peer, re-probe from a fresh punch port, exchange, re-plan wider */
		struct json_object *m = json_object_new_object();
		json_object_object_add(m, "round", json_object_new_int((int)round));
		json_object_object_add(m, "why", json_object_new_string(st.why));
		(void)rv_send(rv, "miss", m);
		json_object_put(m);
		uint16_t np;
		if ((r = rp_free_port(0, &np))) {
			pres = r;
			break;
		}
		r = do_probe(&c, np, false, &pr);
		if (r) {
			pres = r;
			snprintf(st.why, sizeof(st.why), "re-probe failed: %s", strerror(-r));
			break;
		}
		pr.ni.filtering = self.filtering;   /* not re-measured */
		pr.ni.nat_ttl = self.nat_ttl;
		self = pr.ni;
		m = json_object_new_object();
		json_object_object_add(m, "round", json_object_new_int((int)round + 1));
		json_object_object_add(m, "ni", rp_natinfo_to_json(&self));
		r = rv_send(rv, "next", m);
		json_object_put(m);
		struct json_object *in = NULL, *nij;
		if (!r)
			r = wait_msg(rv, "next", 15000, &in);
		if (!r && (jint(in, "round") != (int64_t)round + 1 || !json_object_object_get_ex(in, "ni", &nij) ||
			   rp_natinfo_from_json(nij, &peer)))
			r = -EPROTO;
		json_object_put(in);
		if (!r && rp_punch_pub_addr(&peer) != po.peer_addr)
			r = -EPROTO;   /* the peer's public address moved: a new context would be needed */
		if (!r) {
			if (me == 0) {
				uint64_t srv_start = rv_server_now_ns(rv) + (uint64_t)c.lead_ms * 1000000ull +
						     (uint64_t)res.relay_rtt_ns;
				m = json_object_new_object();
				json_object_object_add(m, "round", json_object_new_int((int)round + 1));
				json_object_object_add(m, "start", json_object_new_int64((int64_t)srv_start));
				r = rv_send(rv, "go", m);
				json_object_put(m);
				start = (uint64_t)((int64_t)srv_start - res.offset_ns);
			} else {
				r = wait_msg(rv, "go", 15000, &in);
				if (!r) {
					int64_t s0 = jint(in, "start");
					if (jint(in, "round") != (int64_t)round + 1 || s0 <= 0)
						r = -EPROTO;
					else
						start = (uint64_t)(s0 - res.offset_ns);
					json_object_put(in);
				}
			}
		}
		if (r) {
			snprintf(st.why, sizeof(st.why), "could not agree on round %u with the peer: %s", round + 2,
				 r == -EPIPE ? "the peer left" : strerror(-r));
			pres = r;
			break;
		}
		r = rp_plan_make(me ? &peer : &self, me ? &self : &peer, &pp, round + 1, &plan);
		if (r || rp_plan_refused(&plan)) {
			snprintf(st.why, sizeof(st.why), "re-plan for round %u: %s", round + 2,
				 r ? strerror(-r) : plan.reason);
			pres = r ? r : -ENOTSUP;
			break;
		}
		status("round %u: re-probed from port %u, %s", round + 2, self.local_port, plan.reason);
	}
	if (pres) {
		struct rp_punch_totals tt;
		rp_punch_totals(pu, &tt);
		(void)rv_send(rv, "abort", NULL);
		snprintf(why, sizeof(why), "%s", pres == -EINTR ? "interrupted" : st.why);
		report_set(&rep, "packets_total", json_object_new_int64((int64_t)tt.packets_sent));
		report_fail(&rep, &c, "punch", why, ms_since(t_start));
		char hint[300];
		rp_err("no connection after %u round(s) of %s: %s", (unsigned)json_object_array_length(rep.rounds),
		       rp_plan_name(&plan), why);
		rp_plan_miss_hint(&plan, hint, sizeof(hint));
		rp_hint("%s", hint);
		goto out;
	}

	/* 6. the kernel takes over */
	(void)rv_send(rv, "done", NULL);
	double t_conn = ms_since(t_start);
	struct rp_punch_totals tt;
	rp_punch_totals(pu, &tt);
	uint32_t la, ra;
	uint16_t lp, rpo;
	rp_punch_tuple(pu, &la, &lp, &ra, &rpo);
	struct rp_handoff_result hr = { 0 };
	int fd = rp_punch_handoff(pu, NULL, &hr);
	rp_punch_close(pu);
	pu = NULL;
	rv_close(rv);
	rv = NULL;
	struct json_object *resj = json_object_new_object();
	json_object_object_add(resj, "ok", json_object_new_boolean(fd >= 0));
	json_object_object_add(resj, "path", fd >= 0 ? json_object_new_string(rp_handoff_path_name(hr.path)) : NULL);
	snprintf(why, sizeof(why), "%s:%u", rp_ip_str(la, a), lp);
	json_object_object_add(resj, "local", json_object_new_string(why));
	snprintf(why, sizeof(why), "%s:%u", rp_ip_str(ra, b), rpo);
	json_object_object_add(resj, "remote", json_object_new_string(why));
	json_object_object_add(resj, "time_to_connect_ms", jd(t_conn, 1));
	json_object_object_add(resj, "punch_ms", jd(st.t_established_ms, 1));
	json_object_object_add(resj, "probe_ms", jd(t_probe, 1));
	json_object_object_add(resj, "join_ms", jd(t_join, 1));
	json_object_object_add(resj, "rounds", json_object_new_int((int)json_object_array_length(rep.rounds)));
	json_object_object_add(resj, "packets_total", json_object_new_int64((int64_t)tt.packets_sent));
	json_object_object_add(resj, "kernel_rsts_dropped",      /* null: the guard's counter was unreadable */
			       tt.guard_dropped >= 0 ? json_object_new_int64(tt.guard_dropped) : NULL);
	if (hr.repair_errno)
		json_object_object_add(resj, "repair_errno", json_object_new_string(strerror(hr.repair_errno)));
	report_set(&rep, "result", resj);
	if (fd < 0) {
		snprintf(why, sizeof(why), "handoff to a kernel socket failed: %s", strerror(-fd));
		report_set(&rep, "why", json_object_new_string(why));
		(void)report_write(&rep, c.report);
		rp_err("%s", why);
		if (fd == -EPERM || fd == -EACCES)
			rp_hint("TCP_REPAIR needs CAP_NET_ADMIN in this network namespace");
		goto out;
	}
	report_set(&rep, "why", NULL);
	if ((r = report_write(&rep, c.report)))
		rp_err("--report %s: %s", c.report, strerror(-r));
	status("connected %s:%u <-> %s:%u in %.0f ms (%s, %llu packets); kernel socket via %s", rp_ip_str(la, a), lp,
	       rp_ip_str(ra, b), rpo, t_conn, rp_plan_name(&plan), (unsigned long long)tt.packets_sent,
	       rp_handoff_path_name(hr.path));
	sodium_memzero(secret, slen);   /* the data mode may run for hours: no secret left in the heap */
	free(secret);
	secret = NULL;
	r = rp_privs_drop_all(c.user);
	if (r) {
		close(fd);
		rp_err_errno(r, "dropping privileges");
		goto out;
	}
	/* the kernel owns the connection and the guard is gone: nothing left to clean up on a signal,
	 * so SIGINT/SIGTERM/SIGHUP end the data mode the usual way */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	struct rp_relay_stats rs = { 0 };
	ret = data_mode(&c, fd, lfd, &rs);
	lfd = -1;
	json_object_object_add(resj, "bytes_out", json_object_new_int64((int64_t)rs.a_to_b));
	json_object_object_add(resj, "bytes_in", json_object_new_int64((int64_t)rs.b_to_a));
	json_object_object_add(resj, "total_ms", jd(ms_since(t_start), 1));
	if (c.report && (r = report_write(&rep, c.report)))
		rp_err("--report %s: %s", c.report, strerror(-r));
out:
	if (lfd >= 0)
		close(lfd);
	rp_punch_close(pu);
	rv_close(rv);
	if (secret) {
		sodium_memzero(secret, slen);   /* a plain memset before free() may be elided */
		free(secret);
	}
	sodium_memzero(key, sizeof(key));
	json_object_put(rep.rounds);
	json_object_put(rep.root);
	return ret;
}
