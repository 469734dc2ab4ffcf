/* SPDX-License-Identifier: MIT */
/* Event-trace helpers shared by the punch and session engines and the CLI: one formatted line to an
 * optional callback, an IPv4 address and TCP flags as text. Nothing here prints by itself. */
#ifndef RP_TRACE_H
#define RP_TRACE_H
#include <netinet/in.h>
#include <stdint.h>

typedef void (*rp_trace_fn)(void *arg, const char *line);

#define RP_TRACE_LINE_MAX 320     /* longer lines are cut */
/* Format one line and hand it to fn(arg, line); nothing when fn is NULL. */
void rp_trace(rp_trace_fn fn, void *arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define RP_TRACE_STAMP_LEN 24
/* The time base of every -v trace line: CLOCK_REALTIME as epoch seconds with microseconds
 * ("1796014555.717386"), as tcpdump -tt and tshark -t e print packet times, so that a trace lines up
 * with a --pcap. Returns buf. */
const char *rp_trace_stamp(char buf[RP_TRACE_STAMP_LEN]);

/* Dotted quad of a network-order address into buf; returns buf. */
const char *rp_ip_str(uint32_t addr_net, char buf[INET_ADDRSTRLEN]);

#define RP_TCP_FLAGS_STRLEN 9
/* TCP flags as letters, lowest bit first: FIN SYN RST PSH ACK URG ECE CWR -> "FSRPAUEC" (SYN-ACK is
 * "SA", none is ""); returns buf. */
const char *rp_tcp_flags_str(uint8_t flags, char buf[RP_TCP_FLAGS_STRLEN]);

#endif
