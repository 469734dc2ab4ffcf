/* SPDX-License-Identifier: MIT */
/* Pre-flight for the commands that measure or punch (punch, probe): what can be checked before the
 * first packet is checked first, with one message each (rawpunch/base/preflight.h, privs.h; the
 * --local-port is cli.h's rp_cli_local_port). Private to rawpunch/cli/. */
#ifndef RP_CLI_PREFLIGHT_H
#define RP_CLI_PREFLIGHT_H
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/* need (RP_PRIV_* mask) in the permitted set, for `what` ("raw SYNs, ..."): 0, or 2 after saying
 * which capability is missing and how to give it. */
int rp_cli_need_privs(const char *cmd, unsigned need, const char *what);

/* A server a command is about to use: "rendezvous" or "STUN", and its address; optionally the local
 * port to check from and whether to keep the connection (rawpunch/base/preflight.h). */
struct rp_cli_server {
	const char *role;
	struct sockaddr_in addr;
	uint16_t lport;
	bool keep;
	int fd;                 /* out, keep: the connection, -1 none */
	double ms;              /* out: its handshake's time */
	uint64_t t_start_ns;    /* out: when its SYN left (CLOCK_MONOTONIC) */
};
/* 3.5 s: a connection that cannot be hedged (from the punch port) gets its third SYN (the kernel's, at
 * 1 and 3 s) before the verdict */
#define RP_CLI_REACH_MS 3500
#define RP_CLI_HEDGE_MS 250   /* a second connection to a server not up by then (a lost SYN costs 1 s) */
/* Every server accepts a TCP connection (all tried at once, hedged after RP_CLI_HEDGE_MS,
 * RP_CLI_REACH_MS at most): 0, or 1 after
 * naming the first that does not ("rendezvous 198.18.3.2:7777: Connection refused") with a hint.
 * prefix: "" or "probe: " before the message. */
int rp_cli_reach(const char *prefix, struct rp_cli_server *s, unsigned n);

#endif
