/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the STUN codec (rawpunch/probe/stunmsg.c).
 *
 * The input is treated as a TCP byte stream, as rawpunch's STUN client sees it: rp_stun_frame_len()
 * cuts it into messages and rp_stun_parse() parses each (libFuzzer's exactly-sized buffer makes
 * ASan catch any read past the end). Besides "no crash", the harness checks the codec's promises
 * and aborts when one breaks: only the documented error codes; a parsed message's length field
 * matches; addresses have a valid family; text fields are NUL-terminated printable ASCII; a
 * message that parses still parses when re-framed; and a Binding request built from the input's
 * first bytes (txid, change flags, software) parses back to the same fields. Seeds:
 * tests/corpus/stun/ (RFC 5769 vectors, coturn's answers from the lab, crafted edge cases). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/probe/stunmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s)
{
	size_t n = strnlen(s, RP_STUN_TEXT_MAX);
	if (n == RP_STUN_TEXT_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			abort();
}

static void check_addr(bool has, const struct rp_stun_addr *a)
{
	if (has && a->family != RP_STUN_AF_INET && a->family != RP_STUN_AF_INET6)
		abort();
}

static void check_build(const uint8_t *data, size_t size)
{
	uint8_t txid[RP_STUN_TXID_LEN] = { 0 }, buf[1024];
	char sw[64];
	if (size < 14)
		return;
	memcpy(txid, data, RP_STUN_TXID_LEN);
	size_t swl = (size - 14) % sizeof(sw);
	for (size_t i = 0; i < swl; i++)
		sw[i] = (char)(0x20 + data[14 + i] % 95);
	sw[swl] = 0;
	struct rp_stun_build b = { .change_flags = (uint32_t)(data[12] & 6u), .software = data[13] & 1 ? sw : NULL,
				   .fingerprint = data[13] & 2 };
	int n = rp_stun_build_binding(buf, sizeof(buf), txid, &b);
	if (n < 0)
		abort();
	struct rp_stun_msg m;
	if (rp_stun_parse(buf, (size_t)n, &m) || m.type != RP_STUN_BINDING_REQUEST ||
	    memcmp(m.txid, txid, sizeof(txid)) || m.has_fingerprint != b.fingerprint ||
	    m.has_change_request != (b.change_flags != 0) || (b.change_flags && m.change_flags != b.change_flags) ||
	    m.has_software != (b.software != NULL) || (b.software && strcmp(m.software, sw)))
		abort();
	if (rp_stun_frame_len(buf, (size_t)n, 0) != n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	check_build(data, size);
	/* The whole input as one message, then as a stream. */
	struct rp_stun_msg m;
	int r = rp_stun_parse(data, size, &m);
	if (r != 0 && r != -EBADMSG)
		abort();
	if (r == -EBADMSG && !m.why)
		abort();
	while (off < size) {
		long fl = rp_stun_frame_len(data + off, size - off, 0);
		if (fl == 0)
			break;          /* partial header: wait for more */
		if (fl == -EBADMSG || fl == -EMSGSIZE)
			break;          /* the client drops the connection */
		if (fl < (long)RP_STUN_HDR_LEN || fl > (long)RP_STUN_MAX_MSG || (fl & 3))
			abort();
		if ((size_t)fl > size - off)
			break;          /* partial body */
		/* An exactly-sized copy so ASan sees over-reads of this message. */
		uint8_t *msg = malloc((size_t)fl);
		if (!msg)
			return 0;
		memcpy(msg, data + off, (size_t)fl);
		r = rp_stun_parse(msg, (size_t)fl, &m);
		if (r == 0) {
			if ((size_t)m.length + RP_STUN_HDR_LEN != (size_t)fl || m.type & 0xC000)
				abort();
			check_addr(m.has_xor_mapped, &m.xor_mapped);
			check_addr(m.has_mapped, &m.mapped);
			check_addr(m.has_other, &m.other);
			check_addr(m.has_origin, &m.origin);
			check_addr(m.has_alternate, &m.alternate);
			check_addr(m.has_changed, &m.changed);
			check_text(m.software);
			check_text(m.error_reason);
			if (m.has_error && (m.error_code < 300 || m.error_code > 699))
				abort();
			struct rp_stun_msg again;
			if (rp_stun_parse(msg, (size_t)fl, &again) || memcmp(&again, &m, sizeof(m)))
				abort();
		} else if (r != -EBADMSG) {
			abort();
		}
		free(msg);
		off += (size_t)fl;
	}
	return 0;
}
