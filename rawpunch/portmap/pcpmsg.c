/* SPDX-License-Identifier: MIT */
/* PCP message codec (RFC 6887; see pcpmsg.h). */
#include "rawpunch/portmap/pcpmsg.h"

#include <errno.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

void rp_pcp_v4mapped(uint32_t addr_net, uint8_t out[16])
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, &addr_net, 4);
}

bool rp_pcp_v4(const uint8_t ip[16], uint32_t *addr_net)
{
	static const uint8_t pre[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(ip, pre, sizeof(pre)))
		return false;
	if (addr_net)
		memcpy(addr_net, ip + 12, 4);
	return true;
}

static size_t data_len(unsigned opcode)
{
	return opcode == RP_PCP_OP_MAP ? RP_PCP_MAP_LEN : opcode == RP_PCP_OP_PEER ? RP_PCP_PEER_LEN : 0;
}

/* The MAP data, which PEER data starts with (§11.1, §12.1). */
static void put_map(uint8_t *p, const uint8_t nonce[12], uint8_t protocol, uint16_t iport, uint16_t eport,
		    const uint8_t eip[16])
{
	memcpy(p, nonce, RP_PCP_NONCE_LEN);
	p[12] = protocol;
	memset(p + 13, 0, 3);
	wr16(p + 16, iport);
	wr16(p + 18, eport);
	memcpy(p + 20, eip, 16);
}

static void put_peer(uint8_t *p, uint16_t rport, const uint8_t rip[16])
{
	wr16(p, rport);
	memset(p + 2, 0, 2);
	memcpy(p + 4, rip, 16);
}

int rp_pcp_encode(const struct rp_pcp_request *q, uint8_t *buf, size_t cap)
{
	size_t len;
	if (!q || !buf)
		return -EINVAL;
	if (q->opcode != RP_PCP_OP_ANNOUNCE && q->opcode != RP_PCP_OP_MAP && q->opcode != RP_PCP_OP_PEER)
		return -EINVAL;
	if (q->opcode != RP_PCP_OP_ANNOUNCE) {
		/* protocol 0 means "all protocols" and needs port 0 (§11.1); PEER names one flow */
		if (q->protocol == 0 ? q->internal_port != 0 || q->opcode == RP_PCP_OP_PEER : q->internal_port == 0)
			return -EINVAL;
	}
	len = RP_PCP_HDR_LEN + data_len(q->opcode);
	if (cap < len)
		return -ENOSPC;
	buf[0] = RP_PCP_VERSION;
	buf[1] = (uint8_t)q->opcode;           /* R = 0: a request */
	buf[2] = buf[3] = 0;
	wr32(buf + 4, q->lifetime);
	memcpy(buf + 8, q->client_ip, 16);
	if (q->opcode != RP_PCP_OP_ANNOUNCE)
		put_map(buf + RP_PCP_HDR_LEN, q->nonce, q->protocol, q->internal_port, q->suggested_port, q->suggested_ip);
	if (q->opcode == RP_PCP_OP_PEER)
		put_peer(buf + RP_PCP_HDR_LEN + RP_PCP_MAP_LEN, q->peer_port, q->peer_ip);
	return (int)len;
}

int rp_pcp_encode_response(const struct rp_pcp_response *r, uint8_t *buf, size_t cap)
{
	size_t len;
	if (!r || !buf || r->opcode > 0x7f)
		return -EINVAL;
	len = RP_PCP_HDR_LEN + (r->has_data ? data_len(r->opcode) : 0);
	if (cap < len)
		return -ENOSPC;
	memset(buf, 0, len);
	buf[0] = r->version;
	buf[1] = (uint8_t)(0x80 | r->opcode);
	buf[3] = r->result;
	wr32(buf + 4, r->lifetime);
	wr32(buf + 8, r->epoch);
	if (len > RP_PCP_HDR_LEN)
		put_map(buf + RP_PCP_HDR_LEN, r->nonce, r->protocol, r->internal_port, r->external_port, r->external_ip);
	if (r->has_data && r->opcode == RP_PCP_OP_PEER)
		put_peer(buf + RP_PCP_HDR_LEN + RP_PCP_MAP_LEN, r->peer_port, r->peer_ip);
	return (int)len;
}

static int bad(struct rp_pcp_response *r, const char *why)
{
	r->why = why;
	return -EBADMSG;
}

int rp_pcp_decode(const uint8_t *buf, size_t len, struct rp_pcp_response *r)
{
	size_t off, dl;
	if (!r)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	if (!buf || len < 4)
		return bad(r, "shorter than a header");
	r->version = buf[0];
	r->opcode = buf[1] & 0x7f;
	r->result = buf[3];
	if (r->version != RP_PCP_VERSION) {
		/* A NAT-PMP server answers a PCP request with its own version 0 header (RFC 6887 §9):
		 * version, opcode | 128, result (16 bits). */
		if (r->version == 0 && len >= 4)
			r->result = (uint8_t)(rd16(buf + 2) > 255 ? 255 : rd16(buf + 2));
		r->why = "not PCP version 2";
		return -EPROTONOSUPPORT;
	}
	if (len < RP_PCP_HDR_LEN)
		return bad(r, "shorter than a header");
	if (len > RP_PCP_MAX_MSG)
		return bad(r, "longer than 1100 bytes");
	if (len & 3)
		return bad(r, "length not a multiple of 4");
	if (!(buf[1] & 0x80))
		return bad(r, "a request, not a response");
	r->lifetime = rd32(buf + 4);
	r->epoch = rd32(buf + 8);
	off = RP_PCP_HDR_LEN;
	dl = data_len(r->opcode);
	if (dl) {
		if (len - off < dl)
			return bad(r, "opcode data truncated");
		const uint8_t *p = buf + off;
		memcpy(r->nonce, p, RP_PCP_NONCE_LEN);
		r->protocol = p[12];
		r->internal_port = rd16(p + 16);
		r->external_port = rd16(p + 18);
		memcpy(r->external_ip, p + 20, 16);
		if (r->opcode == RP_PCP_OP_PEER) {
			r->peer_port = rd16(p + 36);
			memcpy(r->peer_ip, p + 40, 16);
		}
		r->has_data = true;
		off += dl;
	} else if (r->opcode != RP_PCP_OP_ANNOUNCE) {
		return bad(r, "unknown opcode");
	}
	/* Options: code (1), reserved (1), length (2), data padded to 4 (§7.3). */
	while (off < len) {
		if (len - off < 4)
			return bad(r, "option header truncated");
		size_t ol = rd16(buf + off + 2), padded = (ol + 3) & ~(size_t)3;
		if (len - off - 4 < padded)
			return bad(r, "option data truncated");
		off += 4 + padded;
		r->n_options++;
	}
	return 0;
}

int rp_pcp_match(const struct rp_pcp_request *q, const struct rp_pcp_response *r)
{
	if (!q || !r || r->opcode != (uint8_t)q->opcode)
		return -ESTALE;
	if (q->opcode == RP_PCP_OP_ANNOUNCE)
		return 0;
	if (!r->has_data || memcmp(r->nonce, q->nonce, RP_PCP_NONCE_LEN) || r->protocol != q->protocol ||
	    r->internal_port != q->internal_port)
		return -ESTALE;
	if (q->opcode == RP_PCP_OP_PEER && (r->peer_port != q->peer_port || memcmp(r->peer_ip, q->peer_ip, 16)))
		return -ESTALE;
	return 0;
}

static const struct {
	const char *name, *text;
	int err;
} results[] = {
	[RP_PCP_SUCCESS] = { "SUCCESS", "success", 0 },
	[RP_PCP_UNSUPP_VERSION] = { "UNSUPP_VERSION", "the server does not speak this PCP version", EPROTONOSUPPORT },
	[RP_PCP_NOT_AUTHORIZED] = { "NOT_AUTHORIZED", "not authorized (policy, or another client's mapping)", EACCES },
	[RP_PCP_MALFORMED_REQUEST] = { "MALFORMED_REQUEST", "the server found the request malformed", EINVAL },
	[RP_PCP_UNSUPP_OPCODE] = { "UNSUPP_OPCODE", "the server does not support this opcode", EOPNOTSUPP },
	[RP_PCP_UNSUPP_OPTION] = { "UNSUPP_OPTION", "the server does not support a mandatory option", EOPNOTSUPP },
	[RP_PCP_MALFORMED_OPTION] = { "MALFORMED_OPTION", "the server found an option malformed", EINVAL },
	[RP_PCP_NETWORK_FAILURE] = { "NETWORK_FAILURE", "the server has a network failure (try later)", ENETDOWN },
	[RP_PCP_NO_RESOURCES] = { "NO_RESOURCES", "the server is out of resources (try later)", EAGAIN },
	[RP_PCP_UNSUPP_PROTOCOL] = { "UNSUPP_PROTOCOL", "the server does not map this transport protocol", EPROTONOSUPPORT },
	[RP_PCP_USER_EX_QUOTA] = { "USER_EX_QUOTA", "this client's mapping quota is used up", EDQUOT },
	[RP_PCP_CANNOT_PROVIDE_EXTERNAL] = { "CANNOT_PROVIDE_EXTERNAL", "the suggested external port or address cannot be given", EADDRNOTAVAIL },
	[RP_PCP_ADDRESS_MISMATCH] = { "ADDRESS_MISMATCH", "the client address in the request is not the source the server saw (a NAT between?)", EADDRNOTAVAIL },
	[RP_PCP_EXCESSIVE_REMOTE_PEERS] = { "EXCESSIVE_REMOTE_PEERS", "too many remote peers", EMLINK },
};

const char *rp_pcp_result_name(unsigned result)
{
	return result < sizeof(results) / sizeof(results[0]) ? results[result].name : "UNKNOWN";
}

const char *rp_pcp_result_text(unsigned result)
{
	return result < sizeof(results) / sizeof(results[0]) ? results[result].text : "an unknown result code";
}

int rp_pcp_result_errno(unsigned result)
{
	return result < sizeof(results) / sizeof(results[0]) ? -results[result].err : -EPROTO;
}
