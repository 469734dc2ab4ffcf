/* SPDX-License-Identifier: MIT */
#include "rawpunch/cli/cli.h"
#include "capture/capdump.h"
#include "rawpunch/base/privs.h"
#include "rawpunch/rendezvous/proto.h"
#include "rawpunch/base/jsonnum.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/net/netif.h"

#include <json-c/json.h>
#include "rawpunch/base/outfile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>
#include <unistd.h>

int rp_err(const char *fmt, ...)
{
	va_list ap;
	fputs("rawpunch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int rp_usage_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "rawpunch %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nhint: rawpunch %s --help\n", cmd);
	return 2;
}

int rp_usage_getopt(const char *cmd, int c, char *const *argv)
{
	const char *arg = argv[optind - 1];
	char name[3] = { '-', (char)optopt, 0 };
	/* a long option is named as typed (up to '='); a short one by its letter (it may sit in a group) */
	int n = !strncmp(arg, "--", 2) ? (int)strcspn(arg, "=") : 2;
	if (strncmp(arg, "--", 2))
		arg = optopt > 0 && optopt < 128 ? name : arg;
	if (c == ':')
		return rp_usage_err(cmd, "option '%.*s' needs a value", n, arg);
	if (optopt && !strncmp(arg, "--", 2))   /* a known long option given "=VALUE" */
		return rp_usage_err(cmd, "option '%.*s' takes no value", n, arg);
	return rp_usage_err(cmd, "unknown option '%.*s'", n, arg);
}

int rp_cli_help_only(const char *cmd, int argc, char **argv, void (*usage)(FILE *out))
{
	static const struct option lo[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	optind = 1;
	opterr = 0;
	if ((c = getopt_long(argc, argv, ":h", lo, NULL)) == -1)
		return -1;
	if (c != 'h')
		return rp_usage_getopt(cmd, c, argv);
	usage(stdout);
	return 0;
}

void rp_hint(const char *fmt, ...)
{
	va_list ap;
	fputs("hint: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void rp_trace_stderr(void *arg, const char *line)
{
	char t[RP_TRACE_STAMP_LEN];
	(void)arg;
	fprintf(stderr, "%s %s\n", rp_trace_stamp(t), line);
}

void rp_json_tidy(struct json_object *o)
{
	static const struct { const char *key; int decimals; } fixed[] = {
		{ "confidence", 4 }, { "jitter", 2 }, { "foreign_rate", 4 }, { "foreign_rate_hi", 4 },
		{ "rtt_ms", 3 }, { "t", 6 }, { "t_rel", 6 }, { "span_s", 3 }, { "horizon_s", 3 },
		{ "expected_foreign", 3 }, { "duration_s", 3 },
	};
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			rp_json_tidy(json_object_array_get_idx(o, i));
		return;
	}
	if (!json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, key, v) {
		if (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array)) {
			rp_json_tidy(v);
		} else if (!strcmp(key, "nat_ttl") && json_object_is_type(v, json_type_int) && !json_object_get_int(v)) {
			json_object_object_add(o, key, NULL);
		} else if (json_object_is_type(v, json_type_double)) {
			for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
				if (!strcmp(key, fixed[i].key)) {
					json_object_object_add(o, key, rp_json_fixed(json_object_get_double(v), fixed[i].decimals));
					break;
				}
		}
	}
}

int rp_err_errno(int neg_errno, const char *what)
{
	int e = neg_errno < 0 ? -neg_errno : neg_errno;
	rp_err("%s: %s", what, strerror(e));
	if (e == EPERM || e == EACCES)
		rp_hint("raw sockets, capture and nftables need CAP_NET_RAW and CAP_NET_ADMIN: run as root, or "
			"'sudo setcap cap_net_raw,cap_net_admin+ep $(command -v rawpunch)'");
	return 1;
}

int rp_secret_read(const char *cmd, const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;
	if (!f)
		return rp_usage_err(cmd, "--secret-file %s: %s", path, strerror(errno));
	if (!(b = malloc(4097))) {
		fclose(f);
		return rp_err("out of memory");
	}
	n = fread(b, 1, 4097, f);
	int rerr = ferror(f) ? errno : 0;   /* a directory opens, and fails here with EISDIR */
	fclose(f);
	if (rerr) {
		rp_secret_free(b, n);
		return rp_usage_err(cmd, "--secret-file %s: %s", path, strerror(rerr));
	}
	if (n > 4096) {
		rp_secret_free(b, n);
		return rp_usage_err(cmd, "--secret-file %s: larger than 4096 bytes", path);
	}
	if (n && b[n - 1] == '\n')
		n--;
	unsigned bits = rv_secret_bits(b, n);
	if (n < RV_SECRET_MIN || bits < RV_SECRET_BITS) {
		rp_secret_free(b, n);
		if (n < RV_SECRET_MIN)
			rp_err("%s: --secret-file %s: %zu bytes; want at least %u random bytes", cmd, path, n, RV_SECRET_MIN);
		else
			rp_err("%s: --secret-file %s: about %u bits of entropy; want at least %u (random bytes, not a "
			       "passphrase)", cmd, path, bits, RV_SECRET_BITS);
		rp_hint("whoever sees the session id, like the rendezvous server, can search a weak secret offline; "
			"make a good one with 'rawpunch secret NEWFILE'");
		rp_hint("head -c 32 /dev/urandom | base64 > NEWFILE");
		return 2;
	}
	*out = b;
	*len = n;
	return 0;
}

void rp_secret_free(uint8_t *s, size_t len)
{
	if (!s)
		return;
	sodium_memzero(s, len);
	free(s);
}

int rp_cli_user(const char *cmd, const char *user, uid_t *uid, gid_t *gid)
{
	int r = rp_privs_target(user, uid, gid, NULL, 0);
	if (r == -ENOENT)
		return user ? rp_usage_err(cmd, "--user: no such user '%s'", user)
			    : rp_usage_err(cmd, "no user 'nobody' to run as: give --user USER");
	if (r == -EPERM)
		return rp_usage_err(cmd, "--user %s: only root can become another user", user);
	if (r)
		return rp_usage_err(cmd, "--user: %s", strerror(-r));
	return 0;
}

int rp_cli_local_port(const char *cmd, uint32_t laddr, uint16_t port)
{
	char a[INET_ADDRSTRLEN];
	unsigned start = rp_port_unprivileged_start();
	if (port && port < start) {
		rp_usage_err(cmd, "--local-port %u: below net.ipv4.ip_unprivileged_port_start (%u), and the port is "
			     "bound after the privileges are dropped", port, start);
		return -1;
	}
	int fd = rp_port_hold(laddr, port);
	if (fd >= 0)
		return fd;
	if (fd == -EADDRNOTAVAIL)
		rp_usage_err(cmd, "--local-addr %s: not an address of this host", rp_ip_str(laddr, a));
	else if (fd == -EADDRINUSE)
		rp_usage_err(cmd, "--local-port %u: in use on this host%s%s ('ss -tanp sport = :%u' shows by whom)", port,
			     laddr ? " at " : "", laddr ? rp_ip_str(laddr, a) : "", port);
	else
		rp_usage_err(cmd, "--local-port %u: %s", port, strerror(-fd));
	return -1;
}

int rp_cli_out_fd(const char *cmd, const char *opt, const char *path, uid_t uid, gid_t gid)
{
	int fd = rp_out_open(path, uid, gid);
	if (fd < 0) {
		rp_usage_err(cmd, "%s %s: %s", opt, path, rp_out_strerror(fd));
		return -1;
	}
	return fd;
}

FILE *rp_cli_out(const char *cmd, const char *opt, const char *path, uid_t uid, gid_t gid)
{
	int fd = rp_cli_out_fd(cmd, opt, path, uid, gid);
	FILE *f;
	if (fd < 0)
		return NULL;
	if (!(f = fdopen(fd, "w"))) {
		rp_usage_err(cmd, "%s %s: %s", opt, path, strerror(errno));
		close(fd);
	}
	return f;
}

/* As root, the state a command keeps across runs (port-mapping records, the probe cache) lives in
 * /run/rawpunch/u<UID> of the user it will run as, made now, while it still may: after the drop that
 * user must be able to write there, and the next run of the same user (a kill -9's cleanup) finds it.
 * RAWPUNCH_RUNTIME_DIR tells the library; a user's own XDG_RUNTIME_DIR serves without root. */
static void runtime_dir(const char *user)
{
	char dir[64];
	uid_t uid;
	gid_t gid;
	struct stat st;
	if (geteuid() != 0 || rp_privs_target(user, &uid, &gid, NULL, 0))
		return;
	if (mkdir("/run/rawpunch", 0755) && errno != EEXIST)
		return;
	/* root's own records once lived right in it (0700): let the users reach their own folders */
	if (lstat("/run/rawpunch", &st) || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    ((st.st_mode & 0755) != 0755 && chmod("/run/rawpunch", 0755)))
		return;
	snprintf(dir, sizeof(dir), "/run/rawpunch/u%lu", (unsigned long)uid);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return;
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode) || (st.st_uid != uid && chown(dir, uid, gid)))
		return;
	setenv("RAWPUNCH_RUNTIME_DIR", dir, 1);
}

int rp_cli_enter(const char *user, unsigned keep)
{
	runtime_dir(user);
	int r = rp_privs_enter(user, keep);
	if (!r)
		return 0;
	rp_err("dropping privileges%s%s: %s", user ? " to " : "", user ? user : "", strerror(-r));
	if (r == -EPERM)
		rp_hint("root without CAP_SETPCAP (a restricted container) cannot lock its privileges; "
			"use file capabilities instead: 'sudo setcap cap_net_raw,cap_net_admin+ep $(command -v rawpunch)'");
	return 1;
}

int rp_cli_drop_caps(void)
{
	int r = rp_privs_drop_caps();
	return r ? rp_err("dropping the last capabilities: %s", strerror(-r)) : 0;
}

void rp_cli_pcap_end(const char *cmd, const char *path, struct rp_capdump **d, int linger_ms, bool quiet)
{
	struct rp_cap_stats st;
	if (!d || !*d)
		return;
	rp_capdump_stop(*d, linger_ms, &st);
	*d = NULL;
	if (!quiet)
		fprintf(stderr, "%s: --pcap %s: %llu packets written%s\n", cmd, path, (unsigned long long)st.dumped,
			st.dropped ? " (the kernel dropped some: see below)" : "");
	if (st.dropped)
		rp_err("--pcap %s: the kernel dropped %llu packets the capture could not read in time", path,
		       (unsigned long long)st.dropped);
}

volatile sig_atomic_t rp_cli_signal;

void rp_cli_note_signal(int sig)
{
	if (!rp_cli_signal)
		rp_cli_signal = sig;
}
