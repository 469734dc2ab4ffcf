/* SPDX-License-Identifier: MIT */
/* The parts of `rawpunch punch` (cmd_punch.c runs the command: the pipeline, its status lines and
 * messages): options and input (punch_opts.c), the --report (punch_report.c), and what the connection
 * is used for, --stdio / --exec / -L (punch_data.c). Private to rawpunch/cli/. */
#ifndef RP_PUNCH_CLI_H
#define RP_PUNCH_CLI_H
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "rawpunch/handoff/fdmode.h"
#include "rawpunch/handoff/switch.h"
#include "rawpunch/punch/pipeline.h"

enum punch_mode { PUNCH_STDIO = 0, PUNCH_EXEC, PUNCH_FORWARD };

struct punch_cfg {
	struct sockaddr_in rv, stun;
	const char *session, *secret_file, *report, *pcap, *exec_cmd, *fwd_spec, *user;
	enum punch_mode mode;
	uint16_t lport;
	uint32_t rate;
	unsigned rounds, max_open, max_probes, samples;
	int timeout_s, lead_ms;
	bool quiet, verbose;
	bool offer;                 /* serverless: print an offer, read the answer */
	bool fresh_probe;           /* --fresh-probe: ignore the probe cache */
	const char *answer_to;      /* serverless: the offer text to answer ("-": read a line from stdin) */
	int start_in_s;             /* serverless answer: start this long after answering */
	struct sockaddr_in rvs[RP_PUNCH_MAX_RV];      /* --rendezvous A,B,...: rvs[0] is rv */
	unsigned n_rv;
	struct sockaddr_in relays[RP_PUNCH_MAX_RELAYS]; /* --relay */
	unsigned n_relay;
	const char *relay_secret_file;
	bool relay_first;
	bool no_portmap;            /* do not ask the NAT for a port mapping */
	unsigned portmap_protocols; /* --portmap LIST: RP_PM_F set; 0 = all */
};

/* punch_opts.c */
/* Parse argv into c. 0; -1 after --help (printed); or 2 after a usage error (printed). */
int punch_parse(int argc, char **argv, struct punch_cfg *c);
/* One line from fd, byte by byte so nothing after the newline is consumed (it is data for --stdio).
 * Length (newline and trailing whitespace stripped), -EMSGSIZE, -ENODATA at EOF, -EINTR once *stop. */
int punch_read_line(int fd, char *buf, size_t cap, volatile sig_atomic_t *stop);

/* punch_report.c: the --report, a JSON account of the attempt */
struct json_object;
struct punch_report {
	struct json_object *root, *result;
};
/* version, session, started, pcap: what is known before the run */
void punch_report_init(struct punch_report *rep, const struct punch_cfg *c);
/* everything the run left: self, role, peer, rendezvous / serverless, plan, rounds, result, why */
void punch_report_run(struct punch_report *rep, const struct rp_punch_result *res);
/* a stream through the relay: bytes on it, switched, time to the first byte and to the move (from t0) */
void punch_report_switch(struct punch_report *rep, const struct rp_switch_stats *st, uint64_t t0_ns);
/* after the data mode: bytes_out, bytes_in, total_ms into the result */
void punch_report_data(struct punch_report *rep, const struct rp_relay_stats *rs, double total_ms);
/* write it (again) to f, opened before the drop (NULL: nothing): the new text over the old, then the
 * file cut to its length, so a reader sees the whole previous or the whole new report; 0 or -errno */
int punch_report_write(const struct punch_report *rep, FILE *f);
void punch_report_free(struct punch_report *rep);

/* punch_data.c: use the connection (closes fd and lfd); the exit status. handback: fd is a switch's
 * local socket that hands the direct fd back (switch.h; --stdio and -L take it, --exec cannot). */
int punch_data_mode(const struct punch_cfg *c, int fd, int lfd, bool handback, struct rp_relay_stats *rs);

#endif
