/* SPDX-License-Identifier: MIT */
/* What every subcommand shares: the command table, messages, and argument parsers.
 * Only CLI code (cmd_*.c, main.c) prints; library modules return -errno. */
#ifndef RP_CLI_H
#define RP_CLI_H
#include <stdbool.h>
#include <stdint.h>
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
int cmd_relay(int argc, char **argv);

/* "rawpunch: <msg>\n" on stderr; returns 1 (or 2 for usage) so callers can `return rp_err(...)`. */
int rp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rp_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "hint: <msg>\n" on stderr */
void rp_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Message for a -errno from a library call, with a hint for the usual privilege problems. */
int rp_err_errno(int neg_errno, const char *what);

#endif
