/* SPDX-License-Identifier: MIT */
/* A capture that goes on writing its dump on its own: a thread reads every packet the capture's filter
 * passes (capture.h: each one is written to the dump and flushed as it is read) until it is stopped.
 * For --pcap files that must hold the whole connection, the data after a handoff to the kernel
 * included, while the caller blocks in a data mode. The capture stays usable without privileges: its
 * socket was opened before they were dropped.
 * Library code: -errno, prints nothing. */
#ifndef CAP_CAPDUMP_H
#define CAP_CAPDUMP_H
#include "capture/capture.h"

struct rp_capdump;

/* Start the thread on cap, which it owns from now on (closed by rp_capdump_stop, or at once if the
 * start fails). 0 or -errno. */
int rp_capdump_start(struct rp_cap *cap, struct rp_capdump **out);

/* Stop: read what is still pending and what arrives until linger_ms pass without a packet (the last
 * ACKs of a close; at most 10 x linger_ms in all), then close the capture (the dump is complete) and
 * free. st (may be NULL) gets the capture's counters: dumped, and what the kernel dropped. NULL ok. */
void rp_capdump_stop(struct rp_capdump *d, int linger_ms, struct rp_cap_stats *st);

#endif
