/* SPDX-License-Identifier: MIT */
/* Strategy "mapped" (a side whose NAT granted a port mapping for its punch port, x any side): the NAT
 * itself forwards the granted external port to the punch port (PCP / NAT-PMP / UPnP-IGD, natinfo's
 * pm_* fields), so that side is a listener: it sends nothing from the punch port (a SYN of its own
 * would make its NAT a second, outbound entry for the same 4-tuple and the peer's SYN could clash
 * with it), and the other side connects to the granted port like a client to a server. Its NAT's
 * reply direction passes the SYN-ACK back, whatever that NAT allocates or filters. When both sides
 * hold a mapping, side a listens. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rawpunch/strategy/kit.h"
#include "rawpunch/strategy/strategy.h"

#define CONNECT_MS 5000u          /* the connecting side's SYNs, every repeat interval, this long */

static bool applies(const struct rp_natinfo *a, const struct rp_natinfo *b)
{
	return a->pm_port != 0 || b->pm_port != 0;
}

/* The listening side: a if it holds a mapping, else b. */
static int listener(const struct rp_plan_ctx *c)
{
	return c->ni[0]->pm_port ? 0 : 1;
}

static int plan(const struct rp_plan_ctx *c, struct rp_plan *out)
{
	int l = listener(c), k = 1 - l;
	struct rp_side_plan *ls = &out->side[l], *cs = &out->side[k];
	out->p_success = 0.99;
	out->rounds = c->p.rounds < 2 ? c->p.rounds : 2;
	ls->action = RP_ACT_NONE;
	ls->duration_ms = c->margin_ms + (10u * c->repeat_ms > CONNECT_MS ? 10u * c->repeat_ms : CONNECT_MS);
	cs->action = RP_ACT_CONNECT;
	cs->remote_ports[0] = c->ni[l]->pm_port;
	cs->n_remote = 1;
	/* the listener must be listening (its round begun) when the first SYN arrives */
	cs->start_ms = c->margin_ms;
	cs->repeat_ms = c->repeat_ms;
	cs->duration_ms = ls->duration_ms - c->margin_ms;
	snprintf(out->reason, sizeof(out->reason), "side %c's NAT maps port %u to its punch port (%s): side %c "
		 "connects to it, side %c listens", l ? 'b' : 'a', c->ni[l]->pm_port,
		 c->ni[l]->pm_proto[0] ? c->ni[l]->pm_proto : "port mapping", k ? 'b' : 'a', l ? 'b' : 'a');
	return 0;
}

/* The listener sends nothing (no phases) and listens until the connecting side's SYNs stop; the
 * other side is the default CONNECT. */
static int exec(const struct rp_plan *pl, int me, const struct rp_natinfo *self, const struct rp_natinfo *peer,
		struct rp_exec *x)
{
	const struct rp_side_plan *sp;
	if (!pl || !self || !x || (me != 0 && me != 1))
		return -EINVAL;
	sp = &pl->side[me];
	if (sp->action != RP_ACT_NONE)
		return rp_exec_default(pl, me, self, peer, x);
	memset(x, 0, offsetof(struct rp_exec, ports));
	x->action = RP_ACT_NONE;
	x->rate_pps = sp->rate_pps ? sp->rate_pps : RP_DEF_RATE;
	x->low_ttl = rp_kit_low_ttl(self, peer, NULL, 0);
	x->end_ms = sp->start_ms + sp->duration_ms;
	return 0;
}

static void miss_hint(const struct rp_plan *pl, char *buf, size_t len)
{
	(void)pl;
	snprintf(buf, len, "the mapped port did not let the SYNs through: check the router's port mapping "
		 "(rawpunch portmap --port P), or run with --no-portmap to punch without it");
}

const struct rp_strategy rp_strategy_mapped = {
	.name = "mapped",
	.applies = applies,
	.plan = plan,
	.exec = exec,
	.miss_hint = miss_hint,
};
