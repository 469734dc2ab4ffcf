/* SPDX-License-Identifier: MIT */
/* Privileges: rawpunch needs CAP_NET_RAW (raw sockets, pcap) and CAP_NET_ADMIN (nftables guard,
 * TCP_REPAIR, PACKET_QDISC_BYPASS) and nothing else. It works as root or with file capabilities
 * ('setcap cap_net_raw,cap_net_admin+ep rawpunch'), and drops what it no longer needs: first every
 * other capability at start, then everything once the connection belongs to the kernel (before
 * any data flows or a user command is exec'd), optionally switching to an unprivileged user as
 * tcpdump -Z does. */
#ifndef RP_PRIVS_H
#define RP_PRIVS_H
#include <stdbool.h>

enum rp_priv { RP_PRIV_NET_RAW = 1 << 0, RP_PRIV_NET_ADMIN = 1 << 1 };

/* Which of RP_PRIV_* are in the effective set right now (a bit mask). */
int rp_privs_have(void);
/* Keep only CAP_NET_RAW and CAP_NET_ADMIN in the effective set, and none inheritable or ambient, so
 * nothing exec'd later inherits them. CAP_SETUID, CAP_SETGID and CAP_SETPCAP, when held (root), stay in
 * the permitted set only, so rp_privs_drop_all can still switch user and empty the bounding set.
 * 0 or -errno. No-op when no capability is held. */
int rp_privs_limit(void);
/* Drop every capability for good (and from the bounding set when we may), set no_new_privs, and if
 * user is non-NULL switch to that user's uid/gid and supplementary groups. 0 or -errno. */
int rp_privs_drop_all(const char *user);

#endif
