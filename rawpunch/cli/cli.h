/* SPDX-License-Identifier: MIT */
/* What every subcommand shares: the command table, messages, and argument parsers.
 * Only CLI code (cmd_*.c, main.c) prints; library modules return -errno. */
#ifndef RP_CLI_H
#define RP_CLI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "rawpunch/base/parse.h"   /* the argument parsers every command uses */

struct rp_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);   /* argv[0] is the subcommand name; returns exit status */
};

int cmd_syn(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_punch(int argc, char **argv);
int cmd_rendezvous(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_portmap(int argc, char **argv);

/* "rawpunch: <msg>\n" on stderr; returns 1 (or 2 for usage) so callers can `return rp_err(...)`. */
int rp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rp_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "hint: <msg>\n" on stderr */
void rp_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read the shared secret of --secret-file for command cmd ("punch", "rendezvous"): the file's bytes,
 * one trailing newline dropped, at most 4096. A file that cannot be read is exit status 2 with the
 * reason; one shorter than RV_SECRET_MIN bytes or under RV_SECRET_BITS estimated bits (a passphrase,
 * a repeated pattern) is refused the same way with the hint to make one ('rawpunch secret FILE').
 * 0 with *out (free with rp_secret_free) and *len, or the exit status. */
int rp_secret_read(const char *cmd, const char *path, uint8_t **out, size_t *len);
void rp_secret_free(uint8_t *s, size_t len);

/* Check --user USER of command cmd before anything is opened (rp_privs_target): 0 with *uid, *gid
 * (either may be NULL), or the exit status after the message (no such user, not root). */
int rp_user_check(const char *cmd, const char *user, uid_t *uid, gid_t *gid);

/* Message for a -errno from a library call, with a hint for the usual privilege problems. */
int rp_err_errno(int neg_errno, const char *what);

#endif
