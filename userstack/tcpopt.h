/* SPDX-License-Identifier: MIT */
/* TCP options codec: MSS, window scale, SACK-permitted, timestamps, NOP/EOL (RFC 9293, 7323, 2018).
 * Pure: no I/O, no globals. Unknown options are skipped by their length; malformed ones make the
 * parse fail without reading past the buffer. */
#ifndef US_TCPOPT_H
#define US_TCPOPT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TCPOPT_MAXLEN 40

struct tcp_opts {
	bool has_mss, has_wscale, sack_perm, has_ts;
	uint16_t mss;
	uint8_t wscale;          /* shift count; values > 14 are clamped to 14 on parse (RFC 7323 §2.3) */
	uint32_t tsval, tsecr;
	uint8_t n_unknown;       /* unknown options seen (skipped) */
};

/* Parse len bytes of options. 0 on success; -EINVAL if malformed (length byte 0/1, runs past the
 * end, wrong length for a known kind); *o holds what was parsed before the fault either way. */
int tcpopt_parse(const uint8_t *p, size_t len, struct tcp_opts *o);

/* Encode in the order Linux uses for a SYN (MSS, SACK_PERM+TS or NOP NOP TS, NOP WSCALE),
 * padded to a multiple of 4. Returns the length written or -ENOSPC. */
int tcpopt_build(const struct tcp_opts *o, uint8_t *buf, size_t cap);

#endif
