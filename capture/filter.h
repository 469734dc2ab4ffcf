/* SPDX-License-Identifier: MIT */
/* BPF filter-expression builder for the flows of one attempt. Pure: builds a pcap filter string
 * (the tcpdump language) without libpcap, so it is unit-testable; capture.c compiles it.
 *
 * For each flow the expression matches
 *   - inbound TCP from raddr:rport to laddr:lport (what the peer, a NAT or a middlebox answers), and
 *   - ICMP errors (dest-unreachable, time-exceeded, param-problem, source-quench) whose quoted
 *     inner IPv4+TCP header is one WE sent on that flow: inner src laddr:lport -> dst raddr:rport.
 *     The quote starts at icmp[8]; the inner ports are located through the inner IHL.
 * Zero fields are wildcards. Addresses network order, ports host order. */
#ifndef CAP_FILTER_H
#define CAP_FILTER_H
#include <stddef.h>
#include <stdint.h>
#include "capture/flow.h"

/* Most flows one expression may hold (libpcap's optimiser gets slow far beyond this). */
#define RP_FILTER_MAX_FLOWS 64

/* Write the expression for n flows (1..RP_FILTER_MAX_FLOWS) into buf (NUL-terminated).
 * Returns its length; -EINVAL for bad arguments (n == 0, rport_lo > rport_hi, only one of lo/hi
 * zero), -ENOSPC if cap is too small. A flow with every field zero matches all TCP and all ICMP
 * errors quoting TCP. */
int rp_filter_build(const struct rp_flow *flows, size_t n, char *buf, size_t cap);

/* Room that always suffices for rp_filter_build() of n flows. */
size_t rp_filter_maxlen(size_t n);

#endif
