/* SPDX-License-Identifier: MIT */
/* The NAT probe's warm path, rp_probe_recheck() (probe.h): a classification from minutes ago (the
 * probe cache) checked with one round of STUN Bindings -- the punch port's, and for a predicted
 * sequential side a second from a fresh port whose SYN leaves right after, the two in flight
 * together (probe-alloc.c) -- and moved on to what they saw (rp_alloc_recheck(), natclass.c). */
#include "rawpunch/probe/probe-internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "rawpunch/base/clock.h"

int rp_probe_recheck(const struct rp_probe_opts *o, const struct rp_natinfo *cached, struct rp_natinfo *out)
{
	struct probe_flow f[2];
	struct rp_port_sample s[2];
	char sw[64];
	if (!o || !cached || !out || o->stun.sin_family != AF_INET || !o->stun.sin_port || !o->stun.sin_addr.s_addr ||
	    !o->local_port)
		return -EINVAL;
	unsigned n = rp_alloc_recheck_flows(cached);
	if (!n)
		return -ENOTSUP;
	memset(f, 0, sizeof(f));
	uint64_t t0 = rp_clock_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < n; i++) {
		f[i].to = o->stun;
		f[i].start_ns = t0;   /* due together: started in this order, the punch port's SYN first */
		f[i].so = probe_stun_opts(o, o->local_addr, i ? 0 : o->local_port, sw, sizeof(sw));
		if (i)
			f[i].so.close = RP_STUN_CLOSE_RST;   /* the fresh port's mapping is not needed */
	}
	int r = probe_flows_run(f, n, NULL, NULL);
	if (r)
		return r;
	for (unsigned i = 0; i < n; i++) {
		struct rp_probe_sample ps;
		probe_sample_from(&ps, i ? RP_SAMPLE_ALLOC : RP_SAMPLE_TEST1, &f[i].res, f[i].err, i ? 0 : o->local_port);
		if (!ps.ok)
			return ps.err ? ps.err : -EBADMSG;
		if (ps.mapped_addr != f[0].res.mapped.sin_addr.s_addr)
			return -ESTALE;   /* two public addresses: not the NAT cached */
		s[i] = (struct rp_port_sample){ ps.t_mono_ns, ps.local_port, ps.mapped_port };
	}
	if ((r = rp_alloc_recheck(cached, f[0].res.mapped.sin_addr.s_addr, s, n, out)))
		return r;
	out->probed_at_ns = rp_clock_ns(CLOCK_REALTIME);
	return 0;
}
