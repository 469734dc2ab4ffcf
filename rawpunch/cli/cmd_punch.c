/* SPDX-License-Identifier: MIT */
/* rawpunch punch: meet the peer at a rendezvous server (or by offer/answer texts), probe this side's NAT,
 * agree on a strategy and a start time, punch, hand the connection to the kernel (all of it one call:
 * rawpunch/punch/pipeline.h) and use it (--stdio, --exec, -L). This file runs the command: it checks
 * the input before anything is sent, prints the status lines as the pipeline's events come, the
 * failure with its hint, and the --report (punch_report.c); options are in punch_opts.c, the data mode
 * in punch_data.c. */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/privs.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/punch_cli.h"
#include "rawpunch/rendezvous/offer.h"
#include "rawpunch/rendezvous/proto.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	stop_flag = sig;
}

/* --- status lines ------------------------------------------------------------------------------ */

static const struct punch_cfg *g_cfg;
static bool g_tty, progress_shown;

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

static void trace_line(const char *line)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(stderr, "[%5ld.%03ld] %s\n", (long)ts.tv_sec % 100000, ts.tv_nsec / 1000000, line);
}

static void progress_line(const struct rp_punch_progress *pr)
{
	if (g_cfg->quiet || !g_tty || g_cfg->verbose)
		return;
	fprintf(stderr, "\r\033[Kpunch: round %u %-9s %llu/%llu SYNs  %u replies  T%+.0f ms", pr->round + 1,
		pr->phase, (unsigned long long)pr->sent, (unsigned long long)pr->total, pr->replies, pr->elapsed_ms);
	progress_shown = true;
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

static void stage_done(const struct rp_punch_event *ev)
{
	const struct rp_punch_result *res = ev->result;
	switch (ev->stage) {
	case RP_STAGE_PROBE:
		natinfo_line("this side", &res->self);
		status("probe took %.0f ms", res->stage_ms[RP_STAGE_PROBE]);
		break;
	case RP_STAGE_OFFER:
		natinfo_line("peer     ", &res->meet.peer);
		break;
	case RP_STAGE_JOIN:
		natinfo_line("peer     ", &res->meet.peer);
		status("met the peer as side %c (relay RTT %.1f ms, clock error bound %.1f ms)", 'a' + res->meet.me,
		       (double)res->meet.relay_rtt_ns / 1e6, (double)res->meet.clock_err_ns / 1e6);
		break;
	default:
		break;
	}
}

static void on_event(const struct rp_punch_event *ev, void *arg)
{
	const struct rp_punch_result *res = ev->result;
	const struct rp_punch_round_stats *st;
	(void)arg;
	switch (ev->kind) {
	case RP_PUNCH_EV_STAGE_END:
		if (ev->stage == RP_STAGE_PLAN && res->have_plan)   /* a refusal too: its reason comes first */
			status("strategy %s: %s", rp_plan_name(&res->plan), res->plan.reason);
		else if (!ev->error)
			stage_done(ev);
		break;
	case RP_PUNCH_EV_TEXT:
		if (progress_shown)
			fputs("\r\033[K", stderr);
		progress_shown = false;
		fprintf(stderr, "%s\n", ev->text);
		if (g_cfg->offer)
			status("offer above: the peer runs 'rawpunch punch --answer TEXT --stun ... --secret-file ...'; "
			       "paste its answer here (first line of stdin)");
		else
			status("answer above: paste it into the offering side within %d s (both start then)", g_cfg->start_in_s);
		break;
	case RP_PUNCH_EV_ROUND:
		st = &res->rounds[ev->round].st;
		status("round %u: %s; sent %llu primes + %llu SYNs + %llu handshake; seen syn %u syn-ack %u rst %u icmp %u "
		       "forged %u", ev->round + 1, st->why, (unsigned long long)st->primes_sent,
		       (unsigned long long)st->syns_sent, (unsigned long long)st->handshake_sent, st->rx_syn, st->rx_synack,
		       st->rx_rst, st->rx_icmp, st->rx_forged);
		break;
	case RP_PUNCH_EV_REPLAN:
		status("round %u: re-probed from port %u, %s", ev->round + 1, res->self_now.local_port, res->plan_now.reason);
		break;
	case RP_PUNCH_EV_PROGRESS:
		progress_line(ev->progress);
		break;
	case RP_PUNCH_EV_TRACE:
		trace_line(ev->text);
		break;
	default:
		break;
	}
}

/* The failure in one message (and what might help), after the report is written. */
static void say_failure(const struct rp_punch_result *res)
{
	char hint[400];
	switch (res->stage) {
	case RP_STAGE_CONNECT:
		rp_err("%s", res->why);
		rp_hint("is 'rawpunch rendezvous --listen' running there and reachable?");
		break;
	case RP_STAGE_PROBE:
		if (res->stage_ms[RP_STAGE_PROBE] < 0) {   /* no punch port to probe from */
			rp_err_errno(res->error, "picking a free punch port");
			break;
		}
		rp_err("%s", res->why);
		rp_hint("the STUN server must speak TCP (--stun HOST[:PORT]; default: the rendezvous host, 3478)");
		break;
	case RP_STAGE_OFFER:
		rp_err("%s", res->why);
		rp_hint("both sides need the same secret file; the answer must reach the offering side before its start");
		break;
	case RP_STAGE_JOIN:
		rp_err("%s", res->why);
		rp_hint("both sides need the same --session and the same secret file");
		break;
	case RP_STAGE_PLAN:
		if (!res->have_plan) {
			rp_err("%s", res->why);
			break;
		}
		rp_plan_refusal(&res->plan, NULL, 0, hint, sizeof(hint));
		rp_err("no direct connection possible: %s", res->plan.reason);
		rp_hint("%s", hint);
		break;
	case RP_STAGE_SETUP:
		rp_err_errno(res->error, res->detail);
		break;
	case RP_STAGE_PUNCH:
		rp_err("no connection after %u round(s) of %s: %s", res->n_rounds, rp_plan_name(&res->plan_now), res->why);
		rp_plan_miss_hint(&res->plan_now, hint, sizeof(hint));
		rp_hint("%s", hint);
		break;
	default:
		rp_err("%s", res->why);
		if (res->error == -EPERM || res->error == -EACCES)
			rp_hint("TCP_REPAIR needs CAP_NET_ADMIN in this network namespace");
		break;
	}
}

/* --- the command ---------------------------------------------------------------------------------- */

static int read_answer(void *arg, char *line, size_t cap)
{
	(void)arg;
	return punch_read_line(STDIN_FILENO, line, cap, &stop_flag);
}

/* --answer: the offer is input, checked before a single packet leaves. 0, or the exit status. */
static int check_offer(const struct punch_cfg *c, const uint8_t *secret, size_t slen, struct rp_offer *of)
{
	char in[2048];
	const char *t = c->answer_to;
	int r;
	if (!strcmp(t, "-")) {
		r = punch_read_line(STDIN_FILENO, in, sizeof(in), &stop_flag);
		if (r < 0)
			return rp_err("reading the offer from stdin: %s", r == -ENODATA ? "end of input" : strerror(-r));
		t = in;
	}
	r = rp_offer_decode(t, secret, slen, of);
	if (!r && of->kind != RP_OFFER)
		r = -EINVAL;
	if (!r)
		r = rp_offer_fresh(of, rp_real_ns(), 600);
	if (!r)
		return 0;
	if (r == -EINVAL)
		return rp_usage_err("punch", "--answer: the offer: %s", rp_offer_strerror(r));
	rp_err("the offer: %s", rp_offer_strerror(r));
	rp_hint("both sides need the same secret file, and an offer is good for 10 minutes");
	return 1;
}

static void forget(uint8_t **secret, size_t slen)
{
	if (*secret) {
		sodium_memzero(*secret, slen);   /* a plain memset before free() may be elided */
		free(*secret);
		*secret = NULL;
	}
}

int cmd_punch(int argc, char **argv)
{
	struct punch_cfg c = { 0 };
	struct punch_report rep = { 0 };
	static struct rp_punch_result res;
	static struct rp_offer the_offer;
	uint8_t *secret = NULL, key[RP_PUNCH_KEYLEN];
	size_t slen = 0;
	uint64_t t_start = rp_mono_ns();
	int r, lfd = -1, ret = 1;

	r = punch_parse(argc, argv, &c);
	if (r)
		return r < 0 ? 0 : r;
	g_cfg = &c;
	g_tty = isatty(STDERR_FILENO);
	if (c.mode == PUNCH_EXEC && !c.user && geteuid() == 0 && !c.quiet)
		rp_hint("--exec runs its command as uid 0 (root, though without capabilities): "
			"add --user nobody (or another unprivileged user)");
	r = punch_read_secret(c.secret_file, &secret, &slen);
	if (r)
		return rp_usage_err("punch", "--secret-file %s: %s", c.secret_file,
				    r == -EFBIG ? "larger than 4096 bytes" : strerror(-r));
	if (slen < RV_SECRET_MIN) {
		forget(&secret, slen);
		rp_err("punch: --secret-file %s: %zu bytes; want at least %u random bytes (whoever sees the session "
		       "id, like the rendezvous server, can search a short secret offline)", c.secret_file, slen,
		       RV_SECRET_MIN);
		rp_hint("head -c 32 /dev/urandom | base64 > %s", c.secret_file);
		return 2;
	}
	if (rp_punch_key_derive(secret, slen, c.session, key)) {
		forget(&secret, slen);
		return rp_err("cannot derive the punch key");
	}
	if (c.answer_to && (r = check_offer(&c, secret, slen, &the_offer))) {
		forget(&secret, slen);
		return r;
	}
	if (c.mode == PUNCH_FORWARD) {
		lfd = rp_forward_listen(c.fwd_spec, 4);
		if (lfd < 0) {
			forget(&secret, slen);
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
	punch_report_init(&rep, &c);

	struct rp_punch_run_opts po = {
		.rendezvous = c.rv, .stun = c.stun, .session = c.session, .secret = secret, .secret_len = slen,
		.key = key, .local_port = c.lport, .samples = c.samples, .fresh_probe = c.fresh_probe,
		.plan = { .rate_pps = c.rate, .max_open = c.max_open, .max_probes = c.max_probes, .rounds = c.rounds },
		.join_timeout_ms = c.timeout_s * 1000, .lead_ms = (uint32_t)c.lead_ms, .pcap_path = c.pcap,
		.offer = c.offer, .answer_to = c.answer_to ? &the_offer : NULL, .start_in_s = c.start_in_s,
		.read_answer = read_answer, .answer_source = "stdin",
		.stop = &stop_flag, .trace = c.verbose, .t_start_ns = t_start,
	};
	int run = rp_punch_run(&po, on_event, NULL, &res);
	punch_report_run(&rep, &res);
	if (run) {
		/* a failed handoff's report was written without a word about the file */
		if ((r = punch_report_write(&rep, c.report)) && res.stage != RP_STAGE_HANDOFF)
			rp_err("--report %s: %s", c.report, strerror(-r));
		say_failure(&res);
		goto out;
	}
	int fd = res.fd;
	if ((r = punch_report_write(&rep, c.report)))
		rp_err("--report %s: %s", c.report, strerror(-r));
	{
		char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
		status("connected %s:%u <-> %s:%u in %.0f ms (%s, %llu packets); kernel socket via %s",
		       rp_ip_str(res.laddr, a), res.lport, rp_ip_str(res.raddr, b), res.rport, res.t_connected_ms,
		       rp_plan_name(&res.plan_now), (unsigned long long)res.totals.packets_sent,
		       rp_handoff_path_name(res.handoff.path));
	}
	forget(&secret, slen);   /* the data mode may run for hours: no secret left in the heap */
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
	ret = punch_data_mode(&c, fd, lfd, &rs);
	lfd = -1;
	punch_report_data(&rep, &rs, (double)(rp_mono_ns() - t_start) / 1e6);
	if (c.report && (r = punch_report_write(&rep, c.report)))
		rp_err("--report %s: %s", c.report, strerror(-r));
out:
	if (lfd >= 0)
		close(lfd);
	forget(&secret, slen);
	sodium_memzero(key, sizeof(key));
	punch_report_free(&rep);
	return ret;
}
