/* SPDX-License-Identifier: MIT */
/* Privileges: rawpunch needs CAP_NET_RAW (raw sockets, pcap) and CAP_NET_ADMIN (nftables guard,
 * TCP_REPAIR, PACKET_QDISC_BYPASS) and nothing else. It works as root or with file capabilities
 * ('setcap cap_net_raw,cap_net_admin+ep rawpunch').
 *
 * Every command calls rp_privs_enter() once, after parsing and after opening the files it writes, and
 * before it reads a byte from the network. From then on:
 *   - no_new_privs is set: nothing exec'd later gains privileges (setuid binaries, file capabilities);
 *   - a process that ran as root runs as an unprivileged uid (the one named, else the invoking user
 *     from SUDO_UID/SUDO_GID, else "nobody"), with its supplementary groups; uid 0 is kept only when
 *     the user asked for it by name ("root");
 *   - only the capabilities asked for (a mask of RP_PRIV_*) remain, permitted and effective; none
 *     inheritable or ambient; the bounding set holds no others;
 *   - as root, securebits NOROOT and NO_SETUID_FIXUP are set and locked, so even uid 0 (asked for by
 *     name) regains nothing by exec, and setuid(0) fails for anyone else.
 * A failure to do any of it is an error (-errno), never a warning: the caller must exit.
 * rp_privs_drop_caps() later empties the capability sets (once the kernel owns the connection, before
 * data flows or a user's command is exec'd). */
#ifndef RP_PRIVS_H
#define RP_PRIVS_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum rp_priv { RP_PRIV_NET_RAW = 1 << 0, RP_PRIV_NET_ADMIN = 1 << 1 };
#define RP_PRIV_NET (RP_PRIV_NET_RAW | RP_PRIV_NET_ADMIN)

/* Which of RP_PRIV_* are in the effective set right now (a bit mask). */
int rp_privs_have(void);
/* Which of RP_PRIV_* this process can have: those in its permitted set (root's, or given to the
 * binary by setcap), which rp_privs_enter() makes effective. A bit mask; checked before anything is
 * opened or sent, so a missing privilege is bad input, not a failure halfway. */
int rp_privs_permitted(void);

/* Who the process will run as after rp_privs_enter(user, ...), decided without changing anything:
 * uid, gid and a printable name (name may be NULL). 0; -ENOENT: no such user (a name, or a number with
 * no passwd entry is taken as the bare uid); -EPERM: not root and user names someone else. */
int rp_privs_target(const char *user, uid_t *uid, gid_t *gid, char *name, size_t namelen);

/* Enter the reduced state described above, keeping only the capabilities in keep (RP_PRIV_* mask;
 * those not held are simply absent). 0, or -errno: -ENOENT (no such user), -EPERM (could not switch
 * or the result still holds more than it should). */
int rp_privs_enter(const char *user, unsigned keep);

/* Drop every capability that is left. 0 or -errno. */
int rp_privs_drop_caps(void);

/* True if this process runs with uid 0 in any of real/effective/saved, or
 * holds any capability but CAP_NET_RAW and CAP_NET_ADMIN in any set. */
bool rp_privs_is_elevated(void);

#endif
