/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the PCP codec (rawpunch/portmap/pcpmsg.c) and the SSDP answer parser (ssdp.c).
 *
 * The input is one datagram from the gateway, as rawpunch's port mapping client receives it on
 * 5351 (PCP) or from an SSDP search; libFuzzer's exactly-sized buffer makes ASan catch any read past
 * the end. Besides "no crash", it checks the promises: only the documented error codes, a reason on
 * every failure; a decoded response re-encodes (without its options) to a message that decodes to the
 * same fields and matches a request built from them; a request built from the input's first bytes
 * has the documented length and never decodes as a response (R bit clear); an SSDP LOCATION is a
 * NUL-terminated http:// URL of printable ASCII. Seeds: tests/corpus/pcp/. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/portmap/pcpmsg.h"
#include "rawpunch/portmap/ssdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const uint8_t *data, size_t size)
{
	struct rp_pcp_request q;
	struct rp_pcp_response r;
	uint8_t buf[RP_PCP_HDR_LEN + RP_PCP_PEER_LEN];
	if (size < 64)
		return;
	memset(&q, 0, sizeof(q));
	q.opcode = (enum rp_pcp_opcode)(data[0] % 4);
	memcpy(&q.lifetime, data + 1, 4);
	memcpy(q.client_ip, data + 5, 16);
	memcpy(q.nonce, data + 21, 12);
	q.protocol = data[33];
	q.internal_port = (uint16_t)(data[34] << 8 | data[35]);
	q.suggested_port = (uint16_t)(data[36] << 8 | data[37]);
	memcpy(q.suggested_ip, data + 38, 16);
	q.peer_port = (uint16_t)(data[54] << 8 | data[55]);
	int n = rp_pcp_encode(&q, buf, sizeof(buf));
	if (n == -EINVAL)
		return;
	if (n != (q.opcode == RP_PCP_OP_MAP ? 60 : q.opcode == RP_PCP_OP_PEER ? 80 : 24))
		abort();
	if (buf[0] != 2 || buf[1] != (uint8_t)q.opcode || rp_pcp_decode(buf, (size_t)n, &r) != -EBADMSG)
		abort();
}

static void check_response(const uint8_t *data, size_t size)
{
	struct rp_pcp_response r, again;
	uint8_t *copy = malloc(size ? size : 1), buf[RP_PCP_HDR_LEN + RP_PCP_PEER_LEN];
	if (!copy)
		return;
	memcpy(copy, data, size);
	int e = rp_pcp_decode(copy, size, &r);
	free(copy);
	if (e == -EBADMSG || e == -EPROTONOSUPPORT) {
		if (!r.why)
			abort();
		return;
	}
	if (e)
		abort();
	if (r.version != 2 || r.opcode > 0x7f || size < RP_PCP_HDR_LEN || size > RP_PCP_MAX_MSG || (size & 3))
		abort();
	if (r.has_data != (r.opcode == RP_PCP_OP_MAP || r.opcode == RP_PCP_OP_PEER))
		abort();
	int n = rp_pcp_encode_response(&r, buf, sizeof(buf));
	if (n < 0 || rp_pcp_decode(buf, (size_t)n, &again))
		abort();
	r.n_options = 0;
	if (memcmp(&r, &again, sizeof(r)))
		abort();
	if (r.has_data) {
		struct rp_pcp_request q = { .opcode = (enum rp_pcp_opcode)r.opcode, .protocol = r.protocol,
					    .internal_port = r.internal_port, .peer_port = r.peer_port };
		memcpy(q.nonce, r.nonce, sizeof(q.nonce));
		memcpy(q.peer_ip, r.peer_ip, sizeof(q.peer_ip));
		if (rp_pcp_match(&q, &r))
			abort();
		q.nonce[0] ^= 1;
		if (!rp_pcp_match(&q, &r))
			abort();
	}
}

static void check_ssdp(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1), loc[256], st[128];
	const char *why = NULL;
	if (!copy)
		return;
	memcpy(copy, data, size);
	int e = rp_ssdp_parse(copy, size, loc, sizeof(loc), st, sizeof(st), &why);
	free(copy);
	if (e == -EBADMSG && !why)
		abort();
	if (e && e != -EBADMSG && e != -ENOSPC)
		abort();
	if (!e) {
		size_t n = strnlen(loc, sizeof(loc));
		if (n == sizeof(loc) || strncmp(loc, "http://", 7) || strnlen(st, sizeof(st)) == sizeof(st))
			abort();
		for (size_t i = 0; i < n; i++)
			if (loc[i] <= 0x20 || loc[i] >= 0x7f)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_response(data, size);
	check_request(data, size);
	check_ssdp(data, size);
	return 0;
}
