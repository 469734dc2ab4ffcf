/* SPDX-License-Identifier: MIT */
/* Kernel RST suppression with nftables (libnftables; no shelling out).
 *
 * During a raw handshake the kernel has no socket for the flow and answers the peer's SYN-ACK / SYN
 * with an RST. A guard is one nftables table, "inet rawpunch_<pid>" (a process's later guards:
 * rawpunch_<pid>_<k>), with 'flags owner' (kernel >= 5.12: the table belongs to the guard's
 * netlink socket and disappears when the process dies, even on SIGKILL). Its output-hook chain
 * drops TCP segments with RST set that
 *   - match a flow in the set (local addr . local port . remote addr . remote port range), and
 *   - do NOT carry RP_CRAFT_MARK (rawpunch's own crafted RSTs pass).
 * Nothing else is touched: no other flag combination, no ICMP, no other flow.
 *
 * rp_guard_open() first sweeps stale tables: rawpunch_<pid>[_<k>] tables whose pid no longer exists
 * (for paths where 'owner' did not apply). rp_guard_close() deletes the table; call it on every
 * exit path (the CLI turns SIGINT/SIGTERM into a normal exit so it runs) and as soon as the kernel
 * owns the flow (TCP_REPAIR handoff). The guard is per network namespace (the caller's).
 * Every function returns -errno and prints nothing; rp_guard_errmsg() has libnftables' text. */
#ifndef RP_GUARD_H
#define RP_GUARD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "capture/flow.h"   /* struct rp_flow: laddr, lport, raddr, rport_lo..rport_hi; 0 = any */

#define RP_GUARD_PREFIX "rawpunch_"

struct rp_guard;

/* Sweep stale tables, then create inet rawpunch_<getpid()> (flags owner) with an empty flow set.
 * A process's later guards (several attempts at once, retries) are rawpunch_<pid>_<k>, k = 1, 2, ...
 * Thread-safe across guards (each has its own netlink socket); one guard is not. -EPERM without
 * CAP_NET_ADMIN. */
int rp_guard_open(struct rp_guard **out, char *err, size_t errlen);

/* Add / remove one flow. laddr and lport must be set; raddr 0 = any address, rport 0,0 = any port.
 * Adding a flow already present is not an error; removing one that is absent is -ENOENT. */
int rp_guard_add(struct rp_guard *g, const struct rp_flow *f);
int rp_guard_del(struct rp_guard *g, const struct rp_flow *f);

/* Packets the drop rule has matched so far (from the rule's counter), or -errno. */
int64_t rp_guard_dropped(struct rp_guard *g);

/* Delete the table and free g (NULL ok). Safe to call once per guard on any path. */
void rp_guard_close(struct rp_guard *g);

/* "rawpunch_<pid>" */
const char *rp_guard_table(const struct rp_guard *g);
const char *rp_guard_errmsg(const struct rp_guard *g);

/* Delete rawpunch_<pid>[_<k>] tables (inet family, exact name pattern) whose pid is gone, in the current
 * network namespace. Returns how many were removed, or -errno. */
int rp_guard_sweep(void);

/* True if s is exactly "rawpunch_<pid>" or "rawpunch_<pid>_<k>", each number 1-10 digits without a
 * leading zero and <= 2^31-1; *pid gets the pid. */
bool rp_guard_parse_name(const char *s, long *pid);

#endif
