/* SPDX-License-Identifier: MIT */
/* One type shared by the capture filter (capture/filter.h) and the RST guard (rawpunch/net/guard.h):
 * a set of TCP flows seen from our side. A type only: including it drags no module along. */
#ifndef RP_FLOW_H
#define RP_FLOW_H
#include <stdint.h>

struct rp_flow {
	uint32_t laddr;              /* our address (network order); 0 = any */
	uint16_t lport;              /* our port; 0 = any */
	uint32_t raddr;              /* remote address (network order); 0 = any */
	uint16_t rport_lo, rport_hi; /* remote port range, inclusive; 0,0 = any; lo == hi: one port */
};

#endif
