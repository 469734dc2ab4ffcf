/* SPDX-License-Identifier: MIT */
/* rawpunch connect: making the connections (see cmd_connect.h). The raw handshake (session.h), the
 * TCP_REPAIR handoff or the kernel connect() fallback (handoff.h), one connection per -L client
 * (fdmode.h), and the --raw exchange; what each step prints when it fails. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/cmd_connect.h"
#include "rawpunch/handoff/fdmode.h"
#include "rawpunch/handoff/handoff.h"
#include "rawpunch/net/netif.h"

static void print_stats(const struct rp_session_stats *st)
{
	fprintf(stderr,
		"connect: syns=%u replies=%u rsts=%u icmps=%u forged=%u syns_rcvd=%u established_ms=%.1f "
		"bytes_out=%llu bytes_in=%llu kernel_rsts_dropped=",
		st->syns_sent, st->replies, st->rsts, st->icmps, st->forged, st->syns_rcvd,
		(double)st->t_established_ns / 1e6, (unsigned long long)st->bytes_out,
		(unsigned long long)st->bytes_in);
	if (st->guard_dropped < 0)
		fputs("unknown\n", stderr);
	else
		fprintf(stderr, "%lld\n", (long long)st->guard_dropped);
}

/* A socket left in repair mode is closed without sending anything. */
int connect_repair_probe(void)
{
	int one = 1, e = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return errno;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)))
		e = errno;
	close(fd);
	return e;
}

bool connect_refusal(int e)
{
	return e == EPERM || e == EACCES || e == ENOPROTOOPT || e == EOPNOTSUPP;
}

static void say_path(const struct conn *c, const char *who, int fd, const struct rp_handoff_result *res)
{
	struct sockaddr_in l = { 0 }, r = { 0 };
	socklen_t ll = sizeof(l), rl = sizeof(r);
	char ls[INET_ADDRSTRLEN] = "?", rs[INET_ADDRSTRLEN] = "?", why[160] = "";
	if (c->quiet)
		return;
	if (!getsockname(fd, (struct sockaddr *)&l, &ll))
		inet_ntop(AF_INET, &l.sin_addr, ls, sizeof(ls));
	if (!getpeername(fd, (struct sockaddr *)&r, &rl))
		inet_ntop(AF_INET, &r.sin_addr, rs, sizeof(rs));
	if (res->path == RP_HANDOFF_CONNECT)
		snprintf(why, sizeof(why), " (TCP_REPAIR refused: %s)", strerror(res->repair_errno));
	fprintf(stderr, "%s%shandoff: %s%s %s:%u -> %s:%u\n", who ? who : "", who ? ": " : "",
		rp_handoff_path_name(res->path), why, ls, ntohs(l.sin_port), rs, ntohs(r.sin_port));
}

/* Without TCP_REPAIR: a kernel connect() from lport (a fresh one when 0), retried until the timeout.
 * The sequence state is only there to pass rp_handoff_check(); RP_HO_ONLY_FALLBACK never uses it. */
static int kernel_connect(const struct conn *c, uint16_t lport, uint16_t rport, struct rp_handoff_result *res,
			  int repair_errno)
{
	struct rp_handoff_params p = { .raddr = c->o.raddr, .lport = lport, .rport = rport,
				       .snd_una = 1, .snd_nxt = 1, .rcv_nxt = 1, .rcv_wup = 1, .snd_wl1 = 1,
				       .snd_wnd = 65535, .max_window = 65535, .rcv_wnd = 65535, .mss = 1460 };
	struct rp_handoff_opts ho = { .flags = RP_HO_ONLY_FALLBACK,
				      .connect_timeout_ms = (uint32_t)(c->o.timeout_ns / 1000000u) };
	int r;
	if (!p.lport && (r = rp_free_port(0, &p.lport)))
		return r;
	int fd = rp_handoff(&p, &ho, res);
	res->repair_errno = repair_errno;
	return fd;
}

/* Open a session to the target and run its raw handshake. On failure prints why (with the stats
 * under -v), closes the session and returns -errno; on success *out is ESTABLISHED. pre: "client N: "
 * for -L, "" otherwise. */
static int raw_handshake(const struct conn *c, const char *pre, struct rp_session **out)
{
	struct rp_session *s;
	char oerr[512];
	int r = rp_session_open_err(&c->o, &s, oerr, sizeof(oerr));
	if (r) {
		if (r == -ENETUNREACH || r == -EHOSTUNREACH) {
			struct in_addr a = { .s_addr = c->o.raddr };
			rp_err("%sno route to %s", pre, inet_ntoa(a));
		} else {
			rp_err("%s%s", pre, oerr);
			if (r == -EPERM || r == -EACCES)
				rp_hint("raw sockets, capture and nftables need CAP_NET_RAW and CAP_NET_ADMIN: run as root, "
					"or 'sudo setcap cap_net_raw,cap_net_admin+ep $(command -v rawpunch)'");
		}
		return r;
	}
	if (c->verbose) {
		uint32_t la;
		uint16_t lp;
		rp_session_tuple(s, &la, &lp, NULL, NULL);
		struct in_addr a = { .s_addr = la };
		fprintf(stderr, "%sconnect: %s:%u -> %s\n", pre, inet_ntoa(a), lp, c->target);
	}
	r = rp_session_handshake(s);
	if (r) {
		struct rp_session_stats st;
		char why[256];
		rp_session_stats(s, &st);
		rp_session_why(s, why, sizeof(why));
		rp_session_close(s);
		if (c->verbose)
			print_stats(&st);
		if (r == -EINTR)
			rp_err("%sinterrupted during the handshake (%s)", pre, why);
		else if (r == -ETIMEDOUT)
			rp_err("%sno connection to %s within the timeout: %s", pre, c->target, why);
		else
			rp_err("%shandshake with %s failed: %s (%s)", pre, c->target, strerror(-r), why);
		return r;
	}
	*out = s;
	return 0;
}

/* The handoff (or the fallback) has bound the --local-port, or given up: the hold is over. */
static void release_hold(struct conn *c)
{
	if (c->hold_fd >= 0)
		close(c->hold_fd);
	c->hold_fd = -1;
}

int connect_dial(struct conn *c, const char *who)
{
	struct rp_handoff_result res = { 0 };
	char pre[48] = "";
	int fd, r;

	if (who)
		snprintf(pre, sizeof(pre), "%s: ", who);
	if (c->repair_errno) {
		if (c->o.n_rports)
			return -EINVAL; /* rejected at start */
		fd = kernel_connect(c, c->o.lport, c->o.rport, &res, c->repair_errno);
		release_hold(c);
		if (fd < 0) {
			char what[160];
			snprintf(what, sizeof(what), "%skernel connect() to %s (TCP_REPAIR refused: %s)", pre,
				 c->target, strerror(c->repair_errno));
			rp_err_errno(fd, what);
			return fd;
		}
		say_path(c, who, fd, &res);
		return fd;
	}

	struct rp_session *s;
	r = raw_handshake(c, pre, &s);
	if (r) {
		release_hold(c);
		return r;
	}
	if (c->verbose) {
		struct rp_session_stats st;
		rp_session_stats(s, &st);
		print_stats(&st);
	}
	uint32_t la, ra;
	uint16_t lp, rp;
	rp_session_tuple(s, &la, &lp, &ra, &rp);   /* rp: the port that answered */
	/* --pcap: the capture goes on past the handoff, on the connection's 4-tuple, until it ends */
	struct rp_cap *dcap;
	if (c->o.pcap_file && !c->dump && ((r = rp_session_take_dump(s, &dcap)) || (r = rp_capdump_start(dcap, &c->dump))))
		rp_err_errno(r, "--pcap: the capture of the data (the file holds the handshake only)");

	struct rp_handoff_params p;
	r = rp_handoff_from_tcb(rp_session_tcb(s), la, lp, ra, rp, rp_mono_ns(), &p);
	if (r) {
		rp_session_close(s);
		rp_err_errno(r, who ? who : "handoff: connection state");
		return r;
	}
	struct rp_handoff_opts ho = { .flags = RP_HO_NO_FALLBACK };
	fd = rp_handoff(&p, &ho, &res);
	/* the kernel owns the flow now (or nobody does): guard off, capture and raw socket closed */
	rp_session_close(s);
	if (fd < 0 && res.repair_errno && connect_refusal(res.repair_errno) && !c->no_fallback) {
		/* Refused although the probe at start passed (a policy that changed, a per-socket
		 * refusal). The peer holds the raw connection: our kernel connect() from the same port
		 * meets its challenge ACK, answers it with an RST (the guard is gone), and the SYN
		 * retransmission opens a new connection; nothing was sent on the raw one, nothing lost. */
		int e = res.repair_errno;
		fd = kernel_connect(c, lp, rp, &res, e);
	}
	release_hold(c);
	if (fd < 0) {
		char what[200];
		snprintf(what, sizeof(what), "%shandoff of %s to a kernel socket (%s)", pre, c->target,
			 res.path == RP_HANDOFF_CONNECT || res.connect_attempts ? "connect() fallback" : "TCP_REPAIR");
		rp_err_errno(fd, what);
		if (connect_refusal(res.repair_errno) && c->no_fallback)
			rp_hint("without --no-fallback a kernel connect() from the same port is made instead; "
				"--raw keeps the connection in userspace");
		return fd;
	}
	say_path(c, who, fd, &res);
	return fd;
}

void connect_pcap_end(struct conn *c, int linger_ms)
{
	rp_cli_pcap_end("connect", c->pcap_path, &c->dump, linger_ms, c->quiet);
}

static int dial_fwd(void *arg)
{
	struct conn *c = arg;
	char who[32];
	int fd;
	pthread_mutex_lock(&c->mu);
	snprintf(who, sizeof(who), "client %u", ++c->dials);
	fd = *c->o.stop ? -EINTR : connect_dial(c, who);
	if (fd >= 0) {
		if (c->repair_errno)
			c->connects++;
		else
			c->repairs++;
	}
	pthread_mutex_unlock(&c->mu);
	return fd;
}

int connect_forward(struct conn *c, int lfd, const char *spec, unsigned max_clients, int stop_fd)
{
	struct rp_forward_opts fo = { .max_clients = max_clients, .stop_fd = stop_fd };
	struct rp_forward_stats st = { 0 };
	if (!c->quiet) {
		fprintf(stderr, "forward: listening on %s%s -> %s (%s)\n", strchr(spec, ':') ? "" : "127.0.0.1:",
			spec, c->target, c->repair_errno ? "kernel connect() per client" : "raw handshake + TCP_REPAIR per client");
		fflush(stderr);
	}
	int r = rp_forward(lfd, dial_fwd, c, &fo, &st);
	close(lfd);
	if (!c->quiet)
		fprintf(stderr, "forward: accepted=%u completed=%u failed=%u dial_failed=%u up=%llu down=%llu "
			"repair=%u connect=%u%s\n", st.accepted, st.completed, st.failed, st.dial_failed,
			(unsigned long long)st.up_bytes, (unsigned long long)st.down_bytes, c->repairs, c->connects,
			*c->o.stop ? " (stopped)" : "");
	if (r)
		return rp_err_errno(r, "forward: listening socket");
	return st.completed == st.accepted ? 0 : 1;
}

int connect_raw(struct conn *c)
{
	struct rp_session *s;
	struct rp_session_stats st;
	if (raw_handshake(c, "", &s))
		return 1;
	int r = rp_session_exchange(s, STDIN_FILENO, STDOUT_FILENO, 0);
	rp_session_stats(s, &st);
	rp_session_close(s);
	if (c->verbose)
		print_stats(&st);
	if (r == -EINTR)
		return rp_err("interrupted");
	if (r)
		return rp_err("connection to %s: %s", c->target, strerror(-r));
	return 0;
}
