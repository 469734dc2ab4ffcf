/* SPDX-License-Identifier: MIT */
/* rawpunch punch: meet the peer at a rendezvous server (or by offer/answer texts), probe this side's NAT,
 * agree on a strategy and a start time, punch, hand the connection to the kernel (all of it one call:
 * rawpunch/punch/pipeline.h) and use it (--stdio, --exec, -L). This file runs the command: it checks
 * the input before anything is sent, prints the status lines as the pipeline's events come, the
 * failure with its hint, and the --report (punch_report.c); options are in punch_opts.c, the data mode
 * in punch_data.c. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"
#include "rawpunch/base/privs.h"   /* RP_PRIV_NET */
#include "rawpunch/base/trace.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/cli_preflight.h"
#include "rawpunch/cli/punch_cli.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/probe/stun.h"
#include "rawpunch/relay/turn.h"
#include "rawpunch/rendezvous/offer.h"
#include "rawpunch/rendezvous/proto.h"

#define RELAY_CRED_TTL_S 86400u     /* TURN REST credentials made from --relay-secret-file last a day */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	stop_flag = sig;
	rp_cli_note_signal(sig);
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
	flockfile(stderr);   /* whole lines: with --relay-first the relay's thread says "relay up" */
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		progress_shown = false;
	}
	fputs("punch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
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
	char ttl[16] = "unknown";     /* 0: not measured; spelled as probe spells it */
	if (ni->nat_ttl)
		snprintf(ttl, sizeof(ttl), "%u", ni->nat_ttl);
	status("%s %s:%u -> %s:%u, %s mapping, %s allocation%s, filtering %s, nat_ttl %s (%s)", who,
	       rp_ip_str(ni->local_addr, a), ni->local_port, rp_ip_str(ni->mapped_addr, b), ni->mapped_port,
	       rp_mapping_str(ni->mapping), rp_alloc_str(ni->alloc), pred, rp_filter_str(ni->filtering), ttl,
	       rp_side_kind_str(rp_side_classify(ni)));
}

/* What the NAT granted for the punch port, or why not (the punch goes on without it). */
static void portmap_line(const struct rp_natinfo *ni, double wait_ms)
{
	char a[INET_ADDRSTRLEN];
	if (ni->pm_port)
		status("portmap: %s maps %s:%u to the punch port %u for %u s (asked in %.0f ms, waited %.0f ms more): "
		       "this side is easy", ni->pm_proto, rp_ip_str(ni->pm_addr, a), ni->pm_port, ni->local_port,
		       ni->pm_lifetime_s, ni->pm_ms, wait_ms);
	else
		status("portmap: none (%s); punching without", ni->pm_error[0] ? ni->pm_error : "nothing answered");
}

static void stage_done(const struct rp_punch_event *ev)
{
	const struct rp_punch_result *res = ev->result;
	switch (ev->stage) {
	case RP_STAGE_PROBE:
		natinfo_line("this side", &res->self);
		status("probe took %.0f ms", res->stage_ms[RP_STAGE_PROBE]);
		break;
	case RP_STAGE_PORTMAP:
		portmap_line(&res->self, res->stage_ms[RP_STAGE_PORTMAP]);
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

/* --- the stream through the relay (rawpunch/handoff/switch.h) --------------------------------------- */

static struct rp_switch *g_sw;      /* the relay (and later direct) stream */
static pid_t g_child = -1;          /* relay first: the data mode, in a child without privileges */
static int g_lfd = -1;              /* -L's listening socket */
static struct rp_turn *g_turn;      /* the allocation while the relay carries the stream */
static int g_counts = -1;           /* relay first with a hand-back: the child's byte counts come here */

/* from the switch's thread, once the relay is closed: the allocation is no longer needed */
static void relay_done(void *arg)
{
	struct rp_turn *t = arg;
	(void)rp_turn_keeper_stop(t);
	(void)rp_turn_release(t);
}

/* The data mode on one end of a socketpair, the switch on the other. 0 and *data_fd, or -errno. */
static int start_switch(int relay_fd, struct rp_turn *turn, int *data_fd)
{
	int sp[2], r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp)) {
		r = -errno;
		close(relay_fd);
		return r;
	}
	r = rp_switch_start(sp[0], relay_fd, relay_done, turn, &g_sw);
	if (r) {
		close(sp[0]);
		close(sp[1]);
		close(relay_fd);
		return r;
	}
	*data_fd = sp[1];
	return 0;
}

/* relay first: the relayed stream is up while the punch goes on; the data mode starts now, in a
 * child that drops every privilege first and keeps only its own descriptors */
static void relay_up(int fd, const struct rp_punch_result *res)
{
	int dfd;
	int r = start_switch(fd, res->turn, &dfd);
	if (r) {
		rp_err_errno(r, "the relayed stream");
		return;
	}
	g_turn = res->turn;
	/* --stdio and -L take the direct fd from the switch once the move is done (no copy through this
	 * process then); a command run by --exec cannot be given another socket */
	bool handback = g_cfg->mode != PUNCH_EXEC;
	int counts[2] = { -1, -1 }, cfd = g_lfd >= 0 ? 5 : 4;
	if (handback && pipe2(counts, O_CLOEXEC))
		handback = false;
	if (handback)
		rp_switch_allow_handback(g_sw);
	status("relay up in %.0f ms (data flows over it; the punch goes on behind it)", res->t_relay_ms);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct rp_relay_stats rs = { 0 };
		if (dup2(dfd, 3) < 0 || (g_lfd >= 0 && dup2(g_lfd, 4) < 0) || (handback && dup2(counts[1], cfd) < 0))
			_exit(1);
		close_range(handback ? cfd + 1 : cfd, ~0u, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (rp_cli_drop_caps())       /* the user was set at the start: only capabilities are left */
			_exit(1);
		int st = punch_data_mode(g_cfg, 3, g_lfd >= 0 ? 4 : -1, handback, &rs);
		if (handback)   /* the stream's counts: after a hand-back the switch saw only a part */
			(void)!write(cfd, &rs, sizeof(rs));
		_exit(st);
	}
	close(dfd);
	if (handback) {
		close(counts[1]);
		g_counts = counts[0];
	}
	if (pid < 0) {
		rp_err_errno(-errno, "fork for the data mode");
		return;
	}
	g_child = pid;
}

static void on_event(const struct rp_punch_event *ev, void *arg)
{
	const struct rp_punch_result *res = ev->result;
	const struct rp_punch_round_stats *st;
	(void)arg;
	switch (ev->kind) {
	case RP_PUNCH_EV_RELAY_UP:
		relay_up(ev->fd, res);
		break;
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
		rp_trace_stderr(NULL, ev->text);
		break;
	default:
		break;
	}
}

/* The failure in one message (and what might help), after the report is written. */
static void say_failure(const struct rp_punch_result *res)
{
	char hint[400];
	if (res->peer_why[0]) {   /* its sealed abort: the peer's reason, not ours */
		rp_err("%s: the peer gave up: %s", rp_punch_stage_str(res->stage), res->peer_why);
		return;
	}
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
		if (res->error == -EINTR) {   /* no hint for a miss: nothing missed */
			rp_err("punch: interrupted in round %u%s", res->n_rounds, res->serverless ? "" : "; the peer was told");
			break;
		}
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

/* The end of a stream through the relay: wait for the data mode's child (relay first: its exit
 * status is ours), then for the switch; report what the stream did. Returns the exit status. */
static int finish_relay(const struct punch_cfg *c, struct punch_report *rep, FILE *report, uint64_t t_start,
			int status_in)
{
	struct rp_switch_stats st;
	struct rp_relay_stats child = { 0 };
	bool have_child = false;
	int ret = status_in, r;
	if (g_child > 0) {
		int ws = 0;
		(void)rp_privs_drop_caps();
		while (waitpid(g_child, &ws, 0) < 0 && errno == EINTR)
			;
		g_child = -1;
		ret = WIFEXITED(ws) ? WEXITSTATUS(ws) : 1;
	}
	if (g_counts >= 0) {
		have_child = read(g_counts, &child, sizeof(child)) == (ssize_t)sizeof(child);
		close(g_counts);
		g_counts = -1;
	}
	r = rp_switch_wait(g_sw, &st);
	g_sw = NULL;
	if (st.handed_back && have_child) {   /* the switch carried only the part before the hand-back */
		st.sent = child.a_to_b;
		st.recv = child.b_to_a;
	}
	if (r) {
		rp_err_errno(r, "the stream to the peer");
		if (!ret)
			ret = 1;
	}
	if (st.switched)
		status("moved to the direct path %.0f ms after the start; %llu bytes out and %llu in over the relay, "
		       "%llu and %llu in all", (double)(st.t_switch_ns - t_start) / 1e6, (unsigned long long)st.sent_relay,
		       (unsigned long long)st.recv_relay, (unsigned long long)st.sent, (unsigned long long)st.recv);
	punch_report_switch(rep, &st, t_start);
	if (status_in < 0) {   /* relay first: the data mode's counts are the stream's */
		struct rp_relay_stats rs = { .a_to_b = st.sent, .b_to_a = st.recv };
		punch_report_data(rep, &rs, (double)(rp_mono_ns() - t_start) / 1e6);
		if (report && (r = punch_report_write(rep, report)))
			rp_err("--report %s: %s", c->report, strerror(-r));
	}
	return ret;
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

/* The secret stretched (Argon2id, rv_keys_derive: ~20 ms of CPU) on a thread while the pre-flight's
 * connections are in flight: the run gets the keys and does not stretch it again. */
struct kdf_job {
	const uint8_t *secret;
	size_t len;
	const char *session;
	struct rv_keys k;
	int r;
	pthread_t th;
	bool on;
};

static void *kdf_main(void *arg)
{
	struct kdf_job *j = arg;
	j->r = rv_keys_derive(j->secret, j->len, j->session, &j->k);
	return NULL;
}

static void kdf_start(struct kdf_job *j)
{
	j->on = pthread_create(&j->th, NULL, kdf_main, j) == 0;
	if (!j->on)
		kdf_main(j);
}

static int kdf_end(struct kdf_job *j)
{
	if (j->on)
		pthread_join(j->th, NULL);
	j->on = false;
	return j->r;
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
	FILE *report = NULL, *pcap = NULL;
	int r, lfd = -1, hold_fd = -1, ret = 1, rv_fd = -1;
	uint16_t pport;
	double rv_ms = 0;
	static struct kdf_job kdf;

	r = punch_parse(argc, argv, &c);
	if (r)
		return r < 0 ? 0 : r;
	g_cfg = &c;
	g_tty = isatty(STDERR_FILENO);
	/* pre-flight: every mistake that can be found before the first packet is found now (bad input,
	 * exit 2, nothing sent), not after the meeting, when the peer has begun */
	if ((r = rp_cli_need_privs("punch", RP_PRIV_NET, "raw SYNs, capture, the RST guard and TCP_REPAIR")))
		return r;
	uid_t uid;
	gid_t gid;
	if ((r = rp_cli_user("punch", c.user, &uid, &gid)))
		return r;
	if ((r = rp_secret_read("punch", c.secret_file, &secret, &slen)))
		return r;
	static struct rp_turn_cred relay_cred;
	if (c.n_relay) {
		uint8_t *rs_secret = NULL;
		size_t rs_len = 0;
		/* coturn's static-auth-secret as text: whatever it was configured with, no strength floor */
		r = rp_io_read_file(c.relay_secret_file, 4096, &rs_secret, &rs_len);
		if (!r && rs_len && rs_secret[rs_len - 1] == '\n')
			rs_len--;
		if (r) {
			forget(&secret, slen);
			return rp_usage_err("punch", "--relay-secret-file %s: %s", c.relay_secret_file,
					    r == -EFBIG ? "larger than 4096 bytes" : strerror(-r));
		}
		r = rp_turn_rest_cred(rs_secret, rs_len, (uint64_t)time(NULL) + RELAY_CRED_TTL_S, "rawpunch", &relay_cred);
		forget(&rs_secret, rs_len);
		if (r) {
			forget(&secret, slen);
			return rp_usage_err("punch", "--relay-secret-file %s: no credentials from it", c.relay_secret_file);
		}
	}
	if (c.answer_to && (r = check_offer(&c, secret, slen, &the_offer))) {
		forget(&secret, slen);
		return r;
	}
	/* --local-port: free now, and held until the run holds it itself (no connect of ours takes it) */
	pport = c.lport;
	if (c.lport && (hold_fd = rp_cli_local_port("punch", 0, c.lport)) < 0) {
		forget(&secret, slen);
		return 2;
	}
	/* the files written later, opened now for the user we become: no symlink, no pipe, no one else's */
	if ((c.report && !(report = rp_cli_out("punch", "--report", c.report, uid, gid))) ||
	    (c.pcap && !(pcap = rp_cli_out("punch", "--pcap", c.pcap, uid, gid)))) {
		forget(&secret, slen);
		ret = 2;
		goto out;
	}
	if (c.mode == PUNCH_FORWARD) {
		lfd = rp_forward_listen(c.fwd_spec, 4);
		if (lfd < 0) {
			forget(&secret, slen);
			ret = 2;
			if (lfd == -EINVAL)
				rp_usage_err("punch", "-L '%s' is not [ADDR:]PORT", c.fwd_spec);
			else
				ret = rp_err_errno(lfd, "-L listen");
			goto out;
		}
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* From here on: the unprivileged user, no_new_privs, CAP_NET_RAW and CAP_NET_ADMIN only (the
	 * probe's TTL search, raw SYNs, capture, the guard, TCP_REPAIR) until the handoff. */
	if (rp_cli_enter(c.user, RP_PRIV_NET))
		goto out;
	/* the servers answer (the rendezvous first of all: its refused connection would otherwise be the
	 * only sign of a typo); several rendezvous servers: the meeting tries them in turn */
	kdf.secret = secret;
	kdf.len = slen;
	kdf.session = c.session;
	kdf_start(&kdf);
	{
		/* The connections are kept for the run: the rendezvous' (one server: CONNECT costs no second
		 * handshake), and the STUN server's, made from the punch port, for the probe's first binding
		 * (it costs one RTT then, not two). So the punch port is chosen now (and held, as a given one). */
		if (!c.lport && !rp_free_port(0, &pport) && (hold_fd = rp_port_hold(0, pport)) < 0)
			pport = 0;
		struct rp_cli_server sv[2] = { { "rendezvous", c.rv, .keep = true }, { "STUN", c.stun, .lport = pport, .keep = pport != 0 } };
		bool one_rv = !c.offer && !c.answer_to && c.n_rv <= 1;
		ret = rp_cli_reach("", one_rv ? sv : sv + 1, one_rv ? 2 : 1);
		if (!ret && one_rv)
			rv_fd = sv[0].fd, rv_ms = sv[0].ms;
		if (!ret && sv[1].fd >= 0)
			(void)rp_stun_preconnected(sv[1].fd, pport, &c.stun, sv[1].t_start_ns, (uint64_t)(sv[1].ms * 1e6));
		if (kdf_end(&kdf) && !ret) {
			rp_err("cannot derive the punch key");
			ret = 1;
		}
		if (ret) {
			forget(&secret, slen);
			goto out;
		}
		ret = 1;
	}
	memcpy(key, kdf.k.kpunch, RP_PUNCH_KEYLEN);
	punch_report_init(&rep, &c);

	struct rp_punch_run_opts po = {
		.rendezvous = c.rv, .stun = c.stun, .session = c.session, .secret = secret, .secret_len = slen,
		.key = key, .rv_keys = &kdf.k, .rendezvous_fd = rv_fd, .have_rendezvous_fd = rv_fd >= 0,
		.rendezvous_rtt_ms = rv_ms, .local_port = pport, .samples = c.samples, .fresh_probe = c.fresh_probe,
		.plan = { .rate_pps = c.rate, .max_open = c.max_open, .max_probes = c.max_probes, .rounds = c.rounds },
		.join_timeout_ms = c.timeout_s * 1000, .lead_ms = (uint32_t)c.lead_ms, .pcap_file = pcap,
		.offer = c.offer, .answer_to = c.answer_to ? &the_offer : NULL, .start_in_s = c.start_in_s,
		.read_answer = read_answer, .answer_source = "stdin",
		.stop = &stop_flag, .trace = c.verbose, .t_start_ns = t_start,
		.rendezvous_list = c.rvs, .n_rendezvous = c.n_rv,
		.relay = c.relays, .n_relay = c.n_relay, .relay_cred = c.n_relay ? &relay_cred : NULL,
		.relay_first = c.relay_first,
		.no_portmap = c.no_portmap, .portmap_protocols = c.portmap_protocols,
	};
	g_lfd = lfd;
	pcap = NULL;   /* the run owns it */
	rv_fd = -1;    /* and this */
	int run = rp_punch_run(&po, on_event, NULL, &res);
	if (hold_fd >= 0)   /* the run held the port itself (and the kernel socket has it now) */
		close(hold_fd);
	hold_fd = -1;
	if (run && g_sw) {   /* the relay carried it meanwhile (not reached: the run is 0 then) */
		run = 0;
	}
	punch_report_run(&rep, &res);
	if (run) {
		/* a failed handoff's report was written without a word about the file */
		if ((r = punch_report_write(&rep, report)) && res.stage != RP_STAGE_HANDOFF)
			rp_err("--report %s: %s", c.report, strerror(-r));
		say_failure(&res);
		goto out;
	}
	int fd = res.fd;
	if ((r = punch_report_write(&rep, report)))
		rp_err("--report %s: %s", c.report, strerror(-r));
	{
		char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
		if (res.path == RP_PATH_RELAY)
			status("connected through the relay %s:%u (relayed %s:%u <-> %s:%u) in %.0f ms; path: relay, because %s",
			       rp_ip_str(res.relay_server.sin_addr.s_addr, a), ntohs(res.relay_server.sin_port),
			       rp_ip_str(res.meet.self_relayed.sin_addr.s_addr, b), ntohs(res.meet.self_relayed.sin_port),
			       rp_ip_str(res.meet.peer_relayed.sin_addr.s_addr, a), ntohs(res.meet.peer_relayed.sin_port),
			       res.t_relay_ms, res.relay_why);
		else
			status("connected %s:%u <-> %s:%u in %.0f ms (%s, %llu packets); kernel socket via %s%s",
			       rp_ip_str(res.laddr, a), res.lport, rp_ip_str(res.raddr, b), res.rport, res.t_connected_ms,
			       rp_plan_name(&res.plan_now), (unsigned long long)res.totals.packets_sent,
			       rp_handoff_path_name(res.handoff.path),
			       res.path == RP_PATH_RELAY_DIRECT ? "; path: relay->direct, moving the streams" : "");
	}
	forget(&secret, slen);   /* the data mode may run for hours: no secret left in the heap */
	if (res.dump_error)
		rp_err_errno(res.dump_error, "--pcap: the capture of the data (the file holds the punch only)");
	if (g_sw) {
		/* relay first: the data mode runs in its child; the stream moves to the direct socket */
		if (fd >= 0 && (r = rp_switch_direct(g_sw, fd)) == -EPIPE)
			status("the stream had ended over the relay before the direct path was up");
		else if (fd >= 0 && r)
			rp_err_errno(r, "moving the stream to the direct connection");
		if (lfd >= 0)
			close(lfd);
		lfd = -1;
		ret = finish_relay(&c, &rep, report, t_start, -1);
		rp_cli_pcap_end("punch", c.pcap, &res.dump, RP_CLI_PCAP_LINGER_MS, c.quiet);
		goto out;
	}
	if (res.path == RP_PATH_RELAY) {
		g_turn = res.turn;
		if ((r = start_switch(fd, res.turn, &fd))) {
			rp_err_errno(r, "the relayed stream");
			goto out;
		}
	}
	/* the kernel owns the connection: no capability is needed any more, none reaches the data mode */
	if (rp_cli_drop_caps()) {
		close(fd);
		goto out;
	}
	/* the kernel owns the connection and the guard is gone: nothing left to clean up on a signal,
	 * so SIGINT/SIGTERM/SIGHUP end the data mode the usual way */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	struct rp_relay_stats rs = { 0 };
	ret = punch_data_mode(&c, fd, lfd, false, &rs);
	lfd = -1;
	if (g_sw)
		(void)finish_relay(&c, &rep, report, t_start, ret);
	rp_cli_pcap_end("punch", c.pcap, &res.dump, RP_CLI_PCAP_LINGER_MS, c.quiet);
	punch_report_data(&rep, &rs, (double)(rp_mono_ns() - t_start) / 1e6);
	if (report && (r = punch_report_write(&rep, report)))
		rp_err("--report %s: %s", c.report, strerror(-r));
out:
	if (g_child > 0) {
		kill(g_child, SIGTERM);
		waitpid(g_child, NULL, 0);
	}
	rp_cli_pcap_end("punch", c.pcap, &res.dump, 0, c.quiet);   /* a failure after the handoff */
	if (g_turn)
		rp_turn_close(g_turn);
	if (lfd >= 0)
		close(lfd);
	if (hold_fd >= 0)
		close(hold_fd);
	if (report)
		fclose(report);
	if (pcap)
		fclose(pcap);
	if (rv_fd >= 0)
		close(rv_fd);
	rp_stun_preconnected_drop();
	forget(&secret, slen);
	sodium_memzero(key, sizeof(key));
	rv_keys_wipe(&kdf.k);
	punch_report_free(&rep);
	return ret;
}
