/* SPDX-License-Identifier: MIT */
/* Live capture of the replies to an attempt (libpcap): pcap_create, immediate mode, nanosecond
 * timestamps, inbound direction, non-blocking, a BPF filter that can be replaced during a run,
 * a selectable fd for poll/epoll, decoded events (capture/decode.h), an optional pcap dump of
 * everything captured (flushed per packet, so tshark can read it even after a crash) and stats.
 *
 * Every function returns -errno on failure and prints nothing; rp_cap_errmsg() has libpcap's
 * text for the last failure. This header does not include pcap.h. Not thread-safe per handle. */
#ifndef CAP_CAPTURE_H
#define CAP_CAPTURE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "capture/decode.h"
#include "capture/filter.h"

struct rp_cap;

enum rp_cap_dir {
	RP_CAP_IN = 0,     /* default: what arrives (PCAP_D_IN) */
	RP_CAP_OUT,        /* what we send */
	RP_CAP_INOUT,      /* both */
};

struct rp_cap_opts {
	const char *iface;       /* interface name; NULL or "any" = all interfaces (DLT_LINUX_SLL2) */
	int snaplen;             /* bytes kept per packet; 0 = 256 (headers + quoted headers) */
	int buffer_bytes;        /* kernel ring size; 0 = 4 MiB */
	enum rp_cap_dir dir;
	bool promisc;
	const char *filter;      /* initial BPF expression; NULL = everything */
	const char *dump_path;   /* write every captured packet here (pcap, ns timestamps); NULL = none */
	FILE *dump_file;         /* ... or to this stream, opened by the caller (e.g. before dropping
	                            privileges, rawpunch/base/outfile.h); rp_cap_open() takes it over:
	                            closed with the capture, or at once if the open fails */
	bool verify_csum;        /* drop, and count in bad_csum, what a receiving kernel would drop: an IPv4
	                            or TCP checksum that does not verify (RP_DECODE_CSUM; a checksum left to
	                            the sender's NIC or cut by the snapshot length passes) */
	const char *read_path;   /* read packets from this pcap/pcapng file instead of an interface
	                            (iface, snaplen, buffer, dir and promisc are ignored) */
};

/* Open and activate. err (may be NULL) receives libpcap's message on failure.
 * -EPERM without CAP_NET_RAW, -ENODEV for an unknown interface, -EINVAL for a bad filter. */
int rp_cap_open(const struct rp_cap_opts *o, struct rp_cap **out, char *err, size_t errlen);
void rp_cap_close(struct rp_cap *c);

/* Replace the BPF program (compiled with optimisation, netmask unknown). NULL or "" = everything.
 * -EINVAL if it does not compile (the old filter stays). */
int rp_cap_set_filter(struct rp_cap *c, const char *expr);
/* rp_filter_build() + rp_cap_set_filter(). */
int rp_cap_set_flows(struct rp_cap *c, const struct rp_flow *flows, size_t n);
/* One TCP connection, both directions: laddr:lport <-> raddr:rport (addresses network order, ports
 * host order). For a dump that goes on with the connection's data (capdump.h). As rp_cap_set_filter. */
int rp_cap_set_tuple(struct rp_cap *c, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport);

/* Start (or switch to) dumping everything captured into path; NULL stops dumping. */
int rp_cap_dump_open(struct rp_cap *c, const char *path);

/* Selectable fd (readable when packets are pending) for poll/epoll; -1 when reading a file. */
int rp_cap_fd(const struct rp_cap *c);
/* poll() the fd: 1 readable, 0 timed out, -EINTR on a signal, -errno. timeout_ms < 0 waits forever.
 * Reading a file: 1 at once, -ENODATA after its end. */
int rp_cap_wait(struct rp_cap *c, int timeout_ms);

/* Next decoded event. Frames that do not decode are dumped and counted, then skipped.
 * Returns 1 with *ev filled (ts_ns = pcap timestamp in ns; ev->payload valid until the next call),
 * 0 if nothing is pending, -ENODATA at the end of a file, -errno on a capture error. Never blocks. */
int rp_cap_next(struct rp_cap *c, struct rp_event *ev);

/* Next raw frame (dumped and counted like above) without decoding; 1, 0 or -errno as above.
 * *frame is valid until the next call. */
int rp_cap_next_raw(struct rp_cap *c, const uint8_t **frame, size_t *caplen, size_t *wirelen,
		    uint64_t *ts_ns);

struct rp_cap_stats {
	uint64_t received;    /* pcap_stats ps_recv: packets that passed the filter */
	uint64_t dropped;     /* ps_drop: dropped because the buffer was full */
	uint64_t ifdropped;   /* ps_ifdrop: dropped by the interface/driver */
	uint64_t frames;      /* frames handed to us by libpcap */
	uint64_t decoded;     /* ... that decoded into events */
	uint64_t ignored;     /* ... well-formed but not reportable (-ENOMSG) */
	uint64_t malformed;   /* ... truncated or malformed (-EINVAL) */
	uint64_t bad_csum;    /* ... with a checksum that does not verify (verify_csum) */
	uint64_t dumped;      /* packets written to the dump file */
};
int rp_cap_stats(struct rp_cap *c, struct rp_cap_stats *st);

int rp_cap_linktype(const struct rp_cap *c);
const char *rp_cap_errmsg(const struct rp_cap *c);

#endif
