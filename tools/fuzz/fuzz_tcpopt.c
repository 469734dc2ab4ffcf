/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the TCP options codec (userstack/tcpopt.c).
 *
 * Input: the raw option bytes (libFuzzer's exactly-sized heap buffer: ASan catches any read past
 * len). Checks the codec's promises: parse returns 0 or -EINVAL, wscale never exceeds 14, and
 * whatever parsed re-encodes (build) into a block that parses back to the same values. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "userstack/tcpopt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tcp_opts o, back;
	uint8_t buf[TCPOPT_MAXLEN];

	int r = tcpopt_parse(data, size, &o);
	if (r != 0 && r != -EINVAL)
		abort();
	if (o.wscale > 14)
		abort();
	int n = tcpopt_build(&o, buf, sizeof(buf));
	if (n < 0 || n % 4 || n > TCPOPT_MAXLEN)
		abort();
	if (tcpopt_parse(buf, (size_t)n, &back) != 0)
		abort();
	if (back.has_mss != o.has_mss || back.has_wscale != o.has_wscale ||
	    back.sack_perm != o.sack_perm || back.has_ts != o.has_ts)
		abort();
	if ((o.has_mss && back.mss != o.mss) || (o.has_wscale && back.wscale != o.wscale) ||
	    (o.has_ts && (back.tsval != o.tsval || back.tsecr != o.tsecr)))
		abort();
	return 0;
}
