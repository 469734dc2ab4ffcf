/* SPDX-License-Identifier: MIT */
/* What every subcommand shares: the command table, messages, and argument parsers.
 * Only CLI code (cmd_*.c, main.c) prints; library modules return -errno. */
#ifndef RP_CLI_H
#define RP_CLI_H
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include "rawpunch/base/parse.h"   /* the argument parsers every command uses */

struct rp_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);   /* argv[0] is the subcommand name; returns exit status */
	bool hidden;                         /* not listed by 'rawpunch --help' (yet) */
};

int cmd_syn(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_punch(int argc, char **argv);
int cmd_rendezvous(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_portmap(int argc, char **argv);
int cmd_relay(int argc, char **argv);

/* A command's signal handler notes SIGINT/SIGTERM here (async-signal-safe); main() then exits with 128 +
 * the signal (130 after Ctrl-C) whatever the command returned, unless it was a usage error (2). */
extern volatile sig_atomic_t rp_cli_signal;
void rp_cli_note_signal(int sig);

/* "rawpunch: <msg>\n" on stderr; returns 1 (or 2 for usage) so callers can `return rp_err(...)`. */
int rp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rp_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After getopt_long() returned c = '?' (an unknown option, or a value where none goes) or ':' (a
 * missing value; optstring starting with ':', opterr = 0): the usage error naming the option as typed
 * ("unknown option '--bogus'", "option '--plot' needs a value"); returns 2. */
int rp_usage_getopt(const char *cmd, int c, char *const *argv);
/* The options of a command whose only one is -h/--help: -1 to go on (optind at the first operand),
 * else the exit status (0 after printing usage to stdout for --help, 2 for anything else). */
int rp_cli_help_only(const char *cmd, int argc, char **argv, void (*usage)(FILE *out));
/* "hint: <msg>\n" on stderr */
void rp_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read the shared secret of --secret-file for command cmd ("punch", "rendezvous"): the file's bytes,
 * one trailing newline dropped, at most 4096. A file that cannot be read is exit status 2 with the
 * reason; one shorter than RV_SECRET_MIN bytes or under RV_SECRET_BITS estimated bits (a passphrase,
 * a repeated pattern) is refused the same way with the hint to make one ('rawpunch secret FILE').
 * 0 with *out (free with rp_secret_free) and *len, or the exit status. */
int rp_secret_read(const char *cmd, const char *path, uint8_t **out, size_t *len);
void rp_secret_free(uint8_t *s, size_t len);

/* A -v trace line on stderr, stamped with rp_trace_stamp() (epoch seconds, microseconds: lines up with
 * a pcap); an rp_trace_fn (arg unused). */
void rp_trace_stderr(void *arg, const char *line);

/* JSON for people (probe --json, punch --report), tidied in place at any depth: the doubles the
 * library writes at full precision (natinfo's confidence and jitter, probe's times, RTTs and rates)
 * rounded to what they mean (rawpunch/base/jsonnum.h), and nat_ttl 0 (not measured) written as null,
 * the one "unknown". Not for what peers exchange: their JSON stays exact. */
struct json_object;
void rp_json_tidy(struct json_object *o);

/* Message for a -errno from a library call, with a hint for the usual privilege problems. */
int rp_err_errno(int neg_errno, const char *what);

/* Privileges and output files, the same way in every command (rawpunch/base/privs.h, outfile.h):
 * rp_cli_user: who cmd runs as once it has entered the reduced state (--user USER, NULL: the default):
 *   0, or 2 after a usage error (no such user; only root may become someone else);
 * rp_cli_out / rp_cli_out_fd: an output file of option opt ("--report") opened for that user before the
 *   drop: the stream / fd, or NULL / -1 after a usage error (pipe, symlink, not a regular file, someone
 *   else's file): the caller exits 2, nothing was sent;
 * rp_cli_enter: rp_privs_enter(user, keep): 0, or 1 after the error (the caller must exit);
 * rp_cli_drop_caps: rp_privs_drop_caps(): 0, or 1 after the error. */
/* rp_cli_local_port: the local address and port (0: any) a command binds once its privileges are gone,
 *   checked and held now (rp_port_hold): the fd to keep until that bind is done, or -1 after a usage
 *   error naming --local-port (in use, below ip_unprivileged_port_start) or --local-addr (not this
 *   host's): the caller exits 2, nothing was sent. */
int rp_cli_local_port(const char *cmd, uint32_t laddr, uint16_t port);
int rp_cli_user(const char *cmd, const char *user, uid_t *uid, gid_t *gid);
FILE *rp_cli_out(const char *cmd, const char *opt, const char *path, uid_t uid, gid_t gid);
int rp_cli_out_fd(const char *cmd, const char *opt, const char *path, uid_t uid, gid_t gid);
int rp_cli_enter(const char *user, unsigned keep);
int rp_cli_drop_caps(void);

/* --pcap of a connection whose capture goes on with the data (capture/capdump.h): once the connection
 * has ended (or failed), write what is still in flight until the line has been quiet for linger_ms
 * (RP_CLI_PCAP_LINGER_MS after a close: the last FIN and ACKs still come; 0 on a failure), close the
 * file, say how many packets it holds ("CMD: --pcap PATH: N packets written", unless quiet) and, as an
 * error, what the kernel dropped. *d is NULL afterwards; NULL ok. */
#define RP_CLI_PCAP_LINGER_MS 300
struct rp_capdump;
void rp_cli_pcap_end(const char *cmd, const char *path, struct rp_capdump **d, int linger_ms, bool quiet);

#endif
