/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the packet decoder (capture/decode.c), and for the Record Route parser the
 * probe runs on a quote's IPv4 options (rawpunch/probe/natclass-hops.c, rp_rr_parse).
 *
 * Input: byte 0 selects the link type (its low 7 bits index linktypes[] modulo its size) and, with
 * its top bit, asks for the checksums (RP_DECODE_CSUM); the rest is the captured frame, caplen =
 * what is left. libFuzzer hands over an exactly-sized heap buffer, so
 * ASan catches any read past caplen. Besides "no crash", the harness checks the decoder's
 * promises and aborts if one is broken. Seed corpus: tests/corpus/decode/ (see its README). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/decode.h"
#include "rawpunch/probe/natclass.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int linktypes[] = {
	1,    /* DLT_EN10MB */
	113,  /* DLT_LINUX_SLL */
	276,  /* DLT_LINUX_SLL2 */
	12,   /* DLT_RAW (Linux) */
	228,  /* DLT_IPV4 */
	101,  /* LINKTYPE_RAW */
	14,   /* DLT_RAW (OpenBSD) */
	0,    /* DLT_NULL: unsupported, must be refused */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_event ev;
	if (size < 1)
		return 0;
	int lt = linktypes[(data[0] & 0x7f) % (sizeof(linktypes) / sizeof(linktypes[0]))];
	unsigned flags = data[0] & 0x80 ? RP_DECODE_CSUM : 0;
	const uint8_t *frame = data + 1;
	size_t caplen = size - 1;

	int r = rp_decode_ex(lt, frame, caplen, flags, &ev);
	if (r != 0 && r != -EINVAL && r != -ENOMSG)
		abort();
	if (r != 0)
		return 0;
	if (ev.kind != RP_EV_TCP && ev.kind != RP_EV_ICMP_ERR)
		abort();
	/* checksums: only on request; the IPv4 verdict is ip_csum_bad's; TCP only for a TCP event */
	if (!flags && (ev.ip_csum != RP_CSUM_UNCHECKED || ev.tcp_csum != RP_CSUM_UNCHECKED))
		abort();
	if (flags && ev.ip_csum != (ev.ip_csum_bad ? RP_CSUM_BAD : RP_CSUM_OK))
		abort();
	if (flags && (ev.kind == RP_EV_TCP) != (ev.tcp_csum != RP_CSUM_UNCHECKED))
		abort();
	/* a segment not captured whole cannot be verified */
	if (flags && ev.kind == RP_EV_TCP && ev.paylen < ev.paylen_wire && ev.tcp_csum != RP_CSUM_PARTIAL)
		abort();
	/* the payload lies inside the caller's buffer */
	if ((ev.payload == NULL) != (ev.paylen == 0))
		abort();
	if (ev.paylen && (ev.payload < frame || ev.paylen > caplen ||
			  (size_t)(ev.payload - frame) > caplen - ev.paylen))
		abort();
	if (ev.kind == RP_EV_TCP && ev.paylen > ev.paylen_wire)
		abort();
	if (ev.opts_err != 0 && ev.opts_err != -EINVAL)
		abort();
	if (ev.opts.has_wscale && ev.opts.wscale > 14)
		abort();
	/* a quote's IPv4 options lie inside the caller's buffer, and parse (or are refused) */
	if ((ev.inner_ipopts == NULL) != (ev.inner_ipopts_len == 0) || ev.inner_ipopts_len > 40)
		abort();
	if (ev.inner_ipopts_len && (ev.kind != RP_EV_ICMP_ERR || ev.inner_ipopts < frame ||
				    (size_t)(ev.inner_ipopts - frame) > caplen - ev.inner_ipopts_len))
		abort();
	uint32_t rr[RP_RR_MAX];
	int nrr = rp_rr_parse(ev.inner_ipopts, ev.inner_ipopts_len, rr, RP_RR_MAX);
	if (nrr != -EINVAL && (nrr < 0 || nrr > RP_RR_MAX))
		abort();
	const char *cls = rp_ev_class(&ev);
	if (!cls || !*cls)
		abort();
	/* touch every payload byte so ASan sees any bad pointer */
	volatile uint8_t x = 0;
	for (size_t i = 0; i < ev.paylen; i++)
		x ^= ev.payload[i];
	(void)x;
	return 0;
}
