/* SPDX-License-Identifier: MIT */
/* Pre-flight messages for punch and probe (cli_preflight.h): missing capabilities are bad input (exit
 * 2, nothing sent); a server that does not answer is named before the probe begins (exit 1). */
#include "rawpunch/cli/cli_preflight.h"

#include <errno.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "rawpunch/base/preflight.h"
#include "rawpunch/base/privs.h"
#include "rawpunch/base/trace.h"
#include "rawpunch/cli/cli.h"

int rp_cli_need_privs(const char *cmd, unsigned need, const char *what)
{
	unsigned miss = need & ~(unsigned)rp_privs_permitted();
	if (!miss)
		return 0;
	fprintf(stderr, "rawpunch %s: missing %s%s%s (%s need %s)\n", cmd,
		(miss & RP_PRIV_NET_RAW) ? "CAP_NET_RAW" : "", miss == RP_PRIV_NET ? " and " : "",
		(miss & RP_PRIV_NET_ADMIN) ? "CAP_NET_ADMIN" : "", what, need == RP_PRIV_NET ? "both" : "it");
	rp_hint("run it as root (sudo), or give the program both: "
		"'sudo setcap cap_net_raw,cap_net_admin+ep $(command -v rawpunch)'");
	return 2;
}

int rp_cli_reach(const char *prefix, struct rp_cli_server *s, unsigned n)
{
	struct rp_preflight_srv pf[4];
	int err[4];
	char a[INET_ADDRSTRLEN], b[32];
	if (n > 4)
		n = 4;
	for (unsigned i = 0; i < n; i++)
		pf[i] = (struct rp_preflight_srv){ .addr = s[i].addr, .lport = s[i].lport, .keep = s[i].keep };
	int bad = rp_preflight_check(pf, n, RP_CLI_REACH_MS, RP_CLI_HEDGE_MS, err);
	for (unsigned i = 0; i < n; i++) {
		s[i].fd = bad == -1 ? pf[i].fd : -1;
		s[i].ms = pf[i].ms;
		s[i].t_start_ns = pf[i].t_start_ns;
	}
	if (bad == -1)
		return 0;
	if (bad < 0)
		return rp_err_errno(bad, "checking the servers");
	snprintf(b, sizeof(b), "%s:%u", rp_ip_str(s[bad].addr.sin_addr.s_addr, a), ntohs(s[bad].addr.sin_port));
	if (err[bad] == -ETIMEDOUT)
		rp_err("%s%s %s: no answer within %.1f s", prefix, s[bad].role, b, RP_CLI_REACH_MS / 1000.0);
	else
		rp_err("%s%s %s: %s", prefix, s[bad].role, b, strerror(-err[bad]));
	if (!strcmp(s[bad].role, "STUN"))
		rp_hint("the STUN server must speak TCP (--stun HOST[:PORT]; default: the rendezvous host, 3478)");
	else
		rp_hint("is 'rawpunch rendezvous --listen' running there and reachable?");
	return 1;
}
