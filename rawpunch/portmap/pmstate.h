/* SPDX-License-Identifier: MIT */
/* What a port mapping holder left on the router, recorded on disk so that a later run can delete it.
 *
 * A holder (rp_portmap_request() and its refreshes) writes one small text file per mapping,
 * DIR/pm-<netns>-<pid>-<k>.map (netns: the namespace's cookie), atomically (temporary file, rename): the protocol, the gateway, the
 * internal and external address:port, the PCP nonce (a PCP server deletes a mapping only for its nonce),
 * the UPnP control URL, when it expires, and the holder's pid with its start time (so a pid reused
 * since is not mistaken for the holder). rp_pm_delete() removes the file with the mapping.
 *
 * rp_pm_sweep_dir() is the cleaning after a killed holder, like the RST guard's sweep of stale nft
 * tables: it acts on this network namespace's files (several lab hosts share /run), leaves a live
 * holder's files alone, removes expired ones (the router has dropped the mapping already), and asks
 * undo() to delete the rest on the router; a file goes once undo() succeeds or says the mapping is
 * gone (-ENOENT). Of other namespaces' files it removes only expired ones of dead holders (a deleted
 * namespace's records would stay forever otherwise). The directory is /run/rawpunch for root, else $XDG_RUNTIME_DIR/rawpunch.
 * Library code: returns -errno, prints nothing. */
#ifndef RP_PMSTATE_H
#define RP_PMSTATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rp_pm_proto { RP_PM_PCP = 0, RP_PM_NATPMP = 1, RP_PM_UPNP = 2, RP_PM_NPROTO = 3 };

#define RP_PM_URL_MAX 256
#define RP_PM_SERVICE_MAX 128

struct rp_pm_record {
	long pid;                       /* the holder */
	unsigned long long start;       /* its start time (/proc/PID/stat field 22) */
	unsigned long long netns;       /* its network namespace (rp_pm_netns()) */
	enum rp_pm_proto proto;
	uint8_t ipproto;                /* IPPROTO_TCP / IPPROTO_UDP */
	uint32_t gateway;               /* addresses: network order */
	uint32_t internal_addr, external_addr, peer_addr;
	uint16_t internal_port, external_port, peer_port;   /* host order; peer_port 0: not a PEER */
	uint8_t nonce[12];              /* PCP */
	uint64_t expires;               /* CLOCK_REALTIME, seconds */
	char upnp_control[RP_PM_URL_MAX];      /* UPnP: the WANIPConnection control URL */
	char upnp_service[RP_PM_SERVICE_MAX];  /* and its service type */
};

/* "pcp", "natpmp", "upnp" and back (-EINVAL for anything else). */
const char *rp_pm_proto_name(enum rp_pm_proto p);
int rp_pm_proto_parse(const char *s, enum rp_pm_proto *p);

/* Text form (key=value lines) and back: length written or -ENOSPC; 0 or -EBADMSG. */
int rp_pm_record_format(const struct rp_pm_record *r, char *buf, size_t cap);
int rp_pm_record_parse(const char *buf, size_t len, struct rp_pm_record *r);

/* The default directory (not created): 0 and dir filled, or -ENOENT when neither applies. */
int rp_pm_state_dir(char *dir, size_t cap);
/* This process's network namespace: its cookie (SO_NETNS_COOKIE, unique until reboot), else the inode of
 * /proc/self/ns/net with bit 63 set (inodes are reused after a namespace is deleted); 0 if unknown. */
unsigned long long rp_pm_netns(void);
/* Start time of pid (clock ticks since boot): 0 or -errno (-ESRCH when there is no such process). */
int rp_pm_proc_start(long pid, unsigned long long *start);
/* Is the holder of r still running (same pid and start time)? */
bool rp_pm_holder_alive(const struct rp_pm_record *r);

/* Write r as a new file in dir (created 0700 if missing); its path goes to path. 0 or -errno. */
int rp_pm_record_save(const char *dir, const struct rp_pm_record *r, char *path, size_t cap);
/* Rewrite the file at path with r (after a refresh). 0 or -errno. */
int rp_pm_record_update(const char *path, const struct rp_pm_record *r);

struct rp_pm_sweep {
	unsigned seen;      /* this namespace's records looked at */
	unsigned expired;   /* removed: expired on the router already */
	unsigned undone;    /* removed: undo() deleted the mapping (or it was gone) */
	unsigned failed;    /* kept: undo() failed (tried again next time) */
	unsigned live;      /* kept: the holder runs */
	unsigned bad;       /* removed: unreadable record of a dead holder */
	long live_pid;      /* a live holder's pid (the last seen), 0 if none */
	int last_err;       /* the last undo() error */
};

typedef int (*rp_pm_undo_fn)(const struct rp_pm_record *r, void *arg);

/* Sweep dir as described above, for netns (0 = this one) and only records of internal port
 * only_port (0 = all). st may be NULL. Returns the number of files removed, or -errno (a missing
 * dir is 0). */
int rp_pm_sweep_dir(const char *dir, unsigned long long netns, uint16_t only_port, rp_pm_undo_fn undo,
		    void *arg, struct rp_pm_sweep *st);

#endif
