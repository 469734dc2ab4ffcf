/* SPDX-License-Identifier: MIT */
/* Private to rawpunch connect (cmd_connect.c: options and modes; cmd_connect_dial.c: making the
 * connections): what one invocation dials and how. Not for other commands. */
#ifndef RP_CMD_CONNECT_H
#define RP_CMD_CONNECT_H
#include <pthread.h>
#include <stdbool.h>
#include "capture/capdump.h"
#include "rawpunch/punch/session.h"

struct conn {
	struct rp_session_opts o;    /* template; lport 0 for -L; o.stop is the command's stop flag */
	const char *target;          /* HOST:PORT as given */
	int repair_errno;            /* from connect_repair_probe(): 0 = the raw handshake + TCP_REPAIR path */
	int hold_fd;                 /* --local-port held since before the drop (rp_cli_local_port) until the
	                                handoff or fallback has bound it; -1 none */
	bool no_fallback, quiet, verbose;
	const char *pcap_path;       /* --pcap as given (the stream is in o.pcap_file until the session takes it) */
	struct rp_capdump *dump;     /* --pcap after the handshake: the capture that goes on writing the data */
	pthread_mutex_t mu;          /* one dial at a time (raw sessions, stats) */
	unsigned dials, repairs, connects;
};

/* 0 when the kernel lets us use TCP_REPAIR, else its errno. */
int connect_repair_probe(void);
/* The errno is a refusal of TCP_REPAIR (privilege, policy, old kernel), not a failure. */
bool connect_refusal(int e);

/* One connection to the target, owned by the kernel: raw handshake + TCP_REPAIR handoff, or the
 * fallback. Prints its errors and the path (unless -q). Returns the fd or -errno. who: "client N"
 * for -L, NULL otherwise. */
int connect_dial(struct conn *c, const char *who);

/* --pcap: the connection has ended (or failed): write what is still in flight, until the line has been
 * quiet for linger_ms, close the file and say how many packets it holds (unless -q). NULL dump ok. */
void connect_pcap_end(struct conn *c, int linger_ms);

/* -L: every client of the listening socket lfd over its own connection until stop_fd is readable or
 * max_clients (0 = no limit) were served. Returns the exit status. */
int connect_forward(struct conn *c, int lfd, const char *spec, unsigned max_clients, int stop_fd);

/* --raw: the handshake, then stdin / stdout over the userspace connection. Returns the exit status. */
int connect_raw(struct conn *c);

#endif
