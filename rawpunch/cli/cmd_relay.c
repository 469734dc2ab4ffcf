/* SPDX-License-Identifier: MIT */
/* 'rawpunch relay' (hidden until punch uses the relay): one TCP connection to a peer through a TURN
 * server (RFC 8656 over TCP, RFC 6062 TCP allocations). Both sides allocate, learn each other's
 * relayed address out of band (--peer, or --addr-file/--peer-file for scripts), install a permission;
 * the --connect side Connects, the --listen side accepts the ConnectionAttempt; each binds a data
 * connection, which then carries the bytes (--stdio or --exec). The allocation is refreshed meanwhile
 * and released (Refresh, LIFETIME 0) at the end. No privilege is needed: every capability is dropped
 * before the first packet. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sodium.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"
#include "rawpunch/handoff/fdmode.h"
#include "rawpunch/probe/stun.h"
#include "rawpunch/relay/turn.h"

#define CRED_TTL_S 86400u            /* TURN REST credentials made from --secret-file last a day */

struct relay_cfg {
	const char *server_spec, *secret_file, *cred_file, *name, *peer_spec, *peer_file, *addr_file;
	const char *exec_cmd, *user;
	bool listen, connect, quiet;
	unsigned long timeout_s, lifetime_s, refresh_s;
	struct sockaddr_in server, peer;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch relay --server HOST[:PORT] (--secret-file FILE [--name NAME] | --cred-file FILE)\n"
		"                      (--connect | --listen) (--peer IP:PORT | --peer-file FILE) [--addr-file FILE]\n"
		"                      [--stdio | --exec CMD] [--user USER] [--timeout S] [--lifetime S]\n"
		"                      [--refresh S] [-q]\n"
		"\n"
		"One TCP connection to a peer through a TURN server: TURN over TCP (RFC 8656) with a TCP\n"
		"allocation (RFC 6062), as coturn serves them. Both sides run it; each allocates a relayed\n"
		"address, and each must be given the other's (out of band).\n"
		"  --server HOST[:PORT]  the TURN server (TCP, port %d by default)\n"
		"  --secret-file FILE    the server's shared secret (coturn --use-auth-secret\n"
		"                        --static-auth-secret): credentials valid for a day are made from it,\n"
		"                        username EXPIRY:NAME, password base64(HMAC-SHA1(secret, username)).\n"
		"                        Its bytes; one trailing newline is ignored\n"
		"  --name NAME           the NAME in that username (default rawpunch)\n"
		"  --cred-file FILE      or long-term credentials: the username on the first line, the password\n"
		"                        on the second. Credentials are never taken from the command line\n"
		"  --connect             this side connects to the peer through the relay\n"
		"  --listen              this side accepts the peer's connection\n"
		"  --peer IP:PORT        the peer's relayed address\n"
		"  --peer-file FILE      wait (up to --timeout) for FILE to hold it (what the peer's --addr-file\n"
		"                        writes)\n"
		"  --addr-file FILE      write this side's relayed address to FILE (\"IP:PORT\\n\", atomically):\n"
		"                        --connect writes it at once; --listen once its permission for the peer\n"
		"                        is installed, so a --connect that waits for it cannot come too early\n"
		"  --stdio               relay stdin/stdout to the connection (default)\n"
		"  --exec CMD            run /bin/sh -c CMD with the connection as its stdin and stdout; exit\n"
		"                        with its status\n"
		"  --user USER           run as USER, without any capability, from before the first packet\n"
		"                        (default as root: the invoking user (sudo), else nobody; 'root' keeps\n"
		"                        uid 0): --peer-file and --addr-file are read and written as USER\n"
		"  --timeout S           wait for the peer's address and its connection up to S s (default 30)\n"
		"  --lifetime S          allocation lifetime to ask for (default: the server's, 600 s)\n"
		"  --refresh S           refresh the allocation every S s (default: a minute before it expires)\n"
		"  -q                    no status lines\n"
		"Through a TURN server a half-close is a close (coturn ends the relayed connection on EOF from\n"
		"either side): finish the exchange before closing. Exit status: 0 after the data mode ended,\n"
		"1 on failure, 2 on bad usage (nothing sent).\n",
		RP_TURN_DEFAULT_PORT);
}

static void say(const struct relay_cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct relay_cfg *c, const char *fmt, ...)
{
	va_list ap;
	if (c->quiet)
		return;
	fputs("relay: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int parse_args(int argc, char **argv, struct relay_cfg *c)
{
	enum { O_SERVER = 1000, O_SECRET, O_CRED, O_NAME, O_CONNECT, O_LISTEN, O_PEER, O_PEER_FILE, O_ADDR_FILE,
	       O_STDIO, O_EXEC, O_USER, O_TIMEOUT, O_LIFETIME, O_REFRESH };
	static const struct option lopts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "secret-file", required_argument, NULL, O_SECRET },
		{ "cred-file", required_argument, NULL, O_CRED },
		{ "name", required_argument, NULL, O_NAME },
		{ "connect", no_argument, NULL, O_CONNECT },
		{ "listen", no_argument, NULL, O_LISTEN },
		{ "peer", required_argument, NULL, O_PEER },
		{ "peer-file", required_argument, NULL, O_PEER_FILE },
		{ "addr-file", required_argument, NULL, O_ADDR_FILE },
		{ "stdio", no_argument, NULL, O_STDIO },
		{ "exec", required_argument, NULL, O_EXEC },
		{ "user", required_argument, NULL, O_USER },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "lifetime", required_argument, NULL, O_LIFETIME },
		{ "refresh", required_argument, NULL, O_REFRESH },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;
	c->timeout_s = 30;
	c->name = "rawpunch";
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":qh", lopts, NULL)) != -1) {
		switch (opt) {
		case O_SERVER: c->server_spec = optarg; break;
		case O_SECRET: c->secret_file = optarg; break;
		case O_CRED: c->cred_file = optarg; break;
		case O_NAME: c->name = optarg; break;
		case O_CONNECT: c->connect = true; break;
		case O_LISTEN: c->listen = true; break;
		case O_PEER: c->peer_spec = optarg; break;
		case O_PEER_FILE: c->peer_file = optarg; break;
		case O_ADDR_FILE: c->addr_file = optarg; break;
		case O_STDIO: break;
		case O_EXEC: c->exec_cmd = optarg; break;
		case O_USER: c->user = optarg; break;
		case O_TIMEOUT:
			if (rp_parse_ulong(optarg, 1, 86400, &c->timeout_s))
				return rp_usage_err("relay", "--timeout '%s': want seconds, 1..86400", optarg);
			break;
		case O_LIFETIME:
			if (rp_parse_ulong(optarg, 1, 86400, &c->lifetime_s))
				return rp_usage_err("relay", "--lifetime '%s': want seconds, 1..86400", optarg);
			break;
		case O_REFRESH:
			if (rp_parse_ulong(optarg, 1, 86400, &c->refresh_s))
				return rp_usage_err("relay", "--refresh '%s': want seconds, 1..86400", optarg);
			break;
		case 'q': c->quiet = true; break;
		case 'h': usage(stdout); return -1;
		default: return rp_usage_getopt("relay", opt, argv);
		}
	}
	if (optind < argc)
		return rp_usage_err("relay", "unexpected argument '%s'", argv[optind]);
	if (!c->server_spec)
		return rp_usage_err("relay", "--server HOST[:PORT] is required");
	if (rp_parse_hostport(c->server_spec, RP_TURN_DEFAULT_PORT, &c->server))
		return rp_usage_err("relay", "--server '%s': want HOST[:PORT]", c->server_spec);
	if (!!c->secret_file == !!c->cred_file)
		return rp_usage_err("relay", "give one of --secret-file FILE and --cred-file FILE");
	if (!*c->name || strchr(c->name, ':') || strlen(c->name) > 256)
		return rp_usage_err("relay", "--name '%s': 1..256 characters, no ':'", c->name);
	if (c->listen == c->connect)
		return rp_usage_err("relay", "give one of --connect and --listen");
	if (!!c->peer_spec == !!c->peer_file)
		return rp_usage_err("relay", "give one of --peer IP:PORT and --peer-file FILE");
	if (c->peer_spec && (rp_parse_hostport(c->peer_spec, 0, &c->peer) || !c->peer.sin_port))
		return rp_usage_err("relay", "--peer '%s': want IP:PORT (the peer's relayed address)", c->peer_spec);
	return 0;
}

/* Credentials from --secret-file (TURN REST) or --cred-file (two lines). Usage errors return 2. */
static int load_cred(const struct relay_cfg *c, struct rp_turn_cred *cred)
{
	const char *path = c->secret_file ? c->secret_file : c->cred_file;
	uint8_t *b;
	size_t n;
	int r = rp_io_read_file(path, 4096, &b, &n), ret = 0;
	if (r)
		return rp_usage_err("relay", "%s %s: %s", c->secret_file ? "--secret-file" : "--cred-file", path,
				    r == -EFBIG ? "larger than 4096 bytes" : strerror(-r));
	if (c->secret_file) {
		if (n && b[n - 1] == '\n')
			n--;
		if (!n)
			ret = rp_usage_err("relay", "--secret-file %s is empty", path);
		else if (rp_turn_rest_cred(b, n, (uint64_t)time(NULL) + CRED_TTL_S, c->name, cred))
			ret = rp_usage_err("relay", "--secret-file %s: cannot make credentials from it", path);
	} else {
		char *s = (char *)b, *nl = strchr(s, '\n'), *pw, *end;
		if (strlen(s) != n || !nl)
			ret = rp_usage_err("relay", "--cred-file %s: want the username on the first line and the "
					   "password on the second", path);
		else {
			*nl = 0;
			pw = nl + 1;
			if ((end = strchr(pw, '\n')))
				*end = 0;
			if (!*s || !*pw || strlen(s) >= sizeof(cred->username) || strlen(pw) >= sizeof(cred->password))
				ret = rp_usage_err("relay", "--cred-file %s: an empty or too long username or password",
						   path);
			else {
				memset(cred, 0, sizeof(*cred));
				strcpy(cred->username, s);
				strcpy(cred->password, pw);
			}
		}
	}
	sodium_memzero(b, n);
	free(b);
	return ret;
}

/* --addr-file is written (as the user, atomically) only once the relay is allocated: its folder must be
 * there and writable by then. Checked before the first packet: 0, or the usage error's exit status. */
static int check_addr_file(const char *path)
{
	char dir[4096];
	struct stat st;
	const char *slash = strrchr(path, '/');
	if (!*path || snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
			       slash ? path : ".") >= (int)sizeof(dir))
		return rp_usage_err("relay", "--addr-file '%s': not a file name", path);
	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		return rp_usage_err("relay", "--addr-file %s: is a directory", path);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return rp_usage_err("relay", "--addr-file %s: no such directory", path);
	if (access(dir, W_OK | X_OK))
		return rp_usage_err("relay", "--addr-file %s: cannot write in %s: %s", path, dir, strerror(errno));
	return 0;
}

/* "IP:PORT\n" into path, atomically (a temporary file renamed). */
static int write_addr_file(const char *path, const struct sockaddr_in *a)
{
	char s[64];
	rp_sin_str(a, s, sizeof(s));
	size_t n = strlen(s);
	s[n++] = '\n';
	return rp_io_write_file_atomic(path, s, n, 0666);
}

/* Wait until path holds an address (the peer's --addr-file). 0, -ETIMEDOUT, -EINVAL (not an address). */
static int read_peer_file(const char *path, unsigned long timeout_s, struct sockaddr_in *peer)
{
	uint64_t deadline = rp_mono_ns() + (uint64_t)timeout_s * 1000000000ull;
	for (;;) {
		uint8_t *b;
		size_t n;
		int r = rp_io_read_file(path, 256, &b, &n);
		if (!r) {
			char *s = (char *)b;
			s[strcspn(s, "\r\n")] = 0;
			r = rp_parse_hostport(s, 0, peer) || !peer->sin_port ? -EINVAL : 0;
			free(b);
			return r;
		}
		if (r != -ENOENT)
			return r;
		if (rp_mono_ns() >= deadline)
			return -ETIMEDOUT;
		usleep(50000);
	}
}

/* A failed TURN step: the server's error response if there was one, with a hint. Returns 1. */
static int turn_fail(struct rp_turn *t, int r, const char *step, const struct relay_cfg *c)
{
	const struct rp_turn_error *e = rp_turn_last_error(t);
	char srv[64];
	rp_sin_str(&c->server, srv, sizeof(srv));
	if (e->code)
		rp_err("relay: %s via %s: the server answered %s with %d %s", step, srv, rp_turn_method_name(e->method),
		       e->code, e->reason);
	else
		rp_err("relay: %s via %s: %s", step, srv, strerror(-r));
	switch (e->code ? e->code : 0) {
	case 401:
	case 441:
		rp_hint("%s refused the credentials: is %s the server's static-auth-secret (coturn --use-auth-secret)?%s",
			srv, c->secret_file ? c->secret_file : c->cred_file,
			c->secret_file ? " In natlab: tools/natlab turn-secret LAB" : "");
		break;
	case 403:
		rp_hint("the server does not relay to that peer (coturn: --denied-peer-ip / --allowed-peer-ip)");
		break;
	case 442:
		rp_hint("the server offers no TCP relay (coturn without --no-tcp-relay does)");
		break;
	case 447:
		rp_hint("the server could not connect to the peer's relayed address: the peer must run --listen "
			"and have installed its permission first (its --addr-file appears then)");
		break;
	case 0:
		if (r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -ENETUNREACH)
			rp_hint("is a TURN server listening on TCP %s?", srv);
		else if (r == -EBADMSG)
			rp_hint("a response's MESSAGE-INTEGRITY did not verify, or %s does not speak STUN", srv);
		break;
	}
	return 1;
}

/* Allocation to data connection: the steps of one role. fd, or -1 once the reason is printed. */
static int establish(struct relay_cfg *c, struct rp_turn *t)
{
	struct rp_turn_info in;
	char a[64], b[64];
	uint32_t id;
	int fd, r;
	if ((r = rp_turn_allocate(t))) {
		turn_fail(t, r, "allocate", c);
		return -1;
	}
	rp_turn_get_info(t, &in);
	rp_sin_str(&in.relayed, a, sizeof(a));
	rp_sin_str(&in.mapped, b, sizeof(b));
	say(c, "allocated %s (TCP), lifetime %u s; the server sees this side as %s", a, in.lifetime_s, b);
	if (c->connect && c->addr_file && (r = write_addr_file(c->addr_file, &in.relayed)))
		goto addr_file_failed;
	if (c->peer_file) {
		say(c, "waiting for the peer's relayed address in %s", c->peer_file);
		if ((r = read_peer_file(c->peer_file, c->timeout_s, &c->peer))) {
			rp_err("relay: --peer-file %s: %s", c->peer_file,
			       r == -ETIMEDOUT ? "no address within --timeout" :
			       r == -EINVAL ? "not an IP:PORT" : strerror(-r));
			return -1;
		}
	}
	rp_sin_str(&c->peer, b, sizeof(b));
	if ((r = rp_turn_permit(t, &c->peer))) {
		turn_fail(t, r, "permission", c);
		return -1;
	}
	if (c->listen && c->addr_file && (r = write_addr_file(c->addr_file, &in.relayed)))
		goto addr_file_failed;
	if (c->connect) {
		if ((r = rp_turn_connect(t, &c->peer, &id))) {
			turn_fail(t, r, "connect", c);
			return -1;
		}
		say(c, "the server connected %s -> %s (connection 0x%08x)", a, b, id);
	} else {
		struct sockaddr_in from;
		uint64_t deadline = rp_mono_ns() + (uint64_t)c->timeout_s * 1000000000ull;
		say(c, "waiting for %s to connect", b);
		for (;;) {
			uint64_t now = rp_mono_ns();
			int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000ull);
			if ((r = rp_turn_wait_attempt(t, left, &id, &from))) {
				if (r == -ETIMEDOUT)
					rp_err("relay: %s did not connect within --timeout (%lu s)", b, c->timeout_s);
				else
					turn_fail(t, r, "waiting for the peer", c);
				return -1;
			}
			/* other allocations on this server share the peer's relay address: only the peer counts */
			if (from.sin_addr.s_addr == c->peer.sin_addr.s_addr && from.sin_port == c->peer.sin_port)
				break;
			rp_sin_str(&from, a, sizeof(a));
			say(c, "ignored a connection from %s: not the peer", a);
		}
		say(c, "%s connected (connection 0x%08x)", b, id);
	}
	if ((r = rp_turn_bind(t, id, &fd))) {
		turn_fail(t, r, "bind", c);
		return -1;
	}
	return fd;

addr_file_failed:
	rp_err_errno(r, c->addr_file);
	return -1;
}

int cmd_relay(int argc, char **argv)
{
	struct relay_cfg c = { 0 };
	struct rp_turn_cred cred;
	struct rp_turn *t;
	int r = parse_args(argc, argv, &c), fd, ret;
	if (r)
		return r < 0 ? 0 : r;
	if ((r = load_cred(&c, &cred)))
		return r;
	/* Plain TCP sockets only: the unprivileged user, no capability, no_new_privs from here on. */
	uid_t uid;
	gid_t gid;
	if ((r = rp_cli_user("relay", c.user, &uid, &gid)) || (r = rp_cli_enter(c.user, 0)) ||
	    (c.addr_file && (r = check_addr_file(c.addr_file)))) {   /* as the user who writes it */
		sodium_memzero(&cred, sizeof(cred));
		return r;
	}
	struct rp_turn_cfg cfg = { .server = c.server, .cred = &cred, .lifetime_s = (uint32_t)c.lifetime_s,
				   .refresh_s = (uint32_t)c.refresh_s, .software = "rawpunch" };
	r = rp_turn_new(&cfg, &t);
	sodium_memzero(&cred, sizeof(cred));
	if (r)
		return rp_err_errno(r, "relay");
	fd = establish(&c, t);
	if (fd < 0) {
		rp_turn_close(t);
		return 1;
	}
	if ((r = rp_turn_keeper_start(t))) {
		close(fd);
		rp_turn_close(t);
		return rp_err_errno(r, "relay: keeper");
	}
	uint64_t t0 = rp_mono_ns();
	struct rp_relay_stats rs = { 0 };
	if (c.exec_cmd) {
		ret = rp_fd_exec(fd, c.exec_cmd);
		if (ret < 0)
			ret = rp_err_errno(ret, "--exec");
	} else {
		r = rp_fd_stdio(fd, &rs);
		ret = r < 0 && r != -ECONNRESET ? rp_err_errno(r, "relay: data") : 0;
	}
	double secs = (double)(rp_mono_ns() - t0) / 1e9;
	close(fd);
	r = rp_turn_keeper_stop(t);
	if (r)
		rp_err("relay: keeping the allocation failed: %s", strerror(-r));
	struct rp_turn_info in;
	rp_turn_get_info(t, &in);
	if (!c.exec_cmd)
		say(&c, "connection ended after %.2f s: %llu bytes sent, %llu received", secs,
		    (unsigned long long)rs.a_to_b, (unsigned long long)rs.b_to_a);
	else
		say(&c, "connection ended after %.2f s", secs);
	if (!r) {
		r = rp_turn_release(t);
		if (r)
			turn_fail(t, r, "release", &c);
		else
			say(&c, "released the allocation (refreshed %llu times, permissions %llu times)",
			    (unsigned long long)in.refreshes, (unsigned long long)in.permit_refreshes);
	}
	rp_turn_close(t);
	return ret ? ret : (r ? 1 : 0);
}
