/* SPDX-License-Identifier: MIT */
/* Writing packets we made ourselves to a pcap file (libpcap's pcap_open_dead + pcap_dump_fopen):
 * raw IPv4 packets (DLT_RAW), nanosecond timestamps, so tcpdump, tshark and 'rawpunch watch -r' read
 * them. For the layers that may not include pcap.h (the CLI: 'rawpunch syn --dry-run -w FILE').
 * Returns -errno and prints nothing. */
#ifndef CAP_PCAPOUT_H
#define CAP_PCAPOUT_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct rp_pcapout;

/* Start a pcap file on f (opened by the caller, e.g. rawpunch/base/outfile.h); the writer owns f from
 * then on, also on failure. 0 or -ENOMEM / -EIO. */
int rp_pcapout_open(FILE *f, struct rp_pcapout **out);
/* One IPv4 packet of len bytes, stamped ts_ns (CLOCK_REALTIME ns). 0 or -EINVAL (empty, too long). */
int rp_pcapout_write(struct rp_pcapout *w, const uint8_t *pkt, size_t len, uint64_t ts_ns);
/* Flush and close; 0, or -EIO when anything could not be written. w may be NULL. */
int rp_pcapout_close(struct rp_pcapout *w);

#endif
