/* SPDX-License-Identifier: MIT */
/* PCP message codec (Port Control Protocol, RFC 6887): MAP, PEER and ANNOUNCE. Pure: no I/O, no globals.
 *
 * Requests are encoded from a struct (the client's address and every address field are IPv6, IPv4 as
 * ::ffff:a.b.c.d, RFC 6887 §5); no options are sent (THIRD_PARTY, PREFER_FAILURE and FILTER are not
 * used). Responses are decoded strictly (§7.2, §8.3): 24 <= length <= 1100 and a multiple of 4, the R
 * bit set, version 2, the opcode's fixed data present for MAP and PEER, every option TLV
 * bounds-checked with its padding. A server that speaks only NAT-PMP (RFC 6886) answers with version 0:
 * that is reported as -EPROTONOSUPPORT with r->version filled in, not as garbage.
 *
 * rp_pcp_match() tells whether a decoded response answers a given request (opcode, nonce, protocol,
 * internal port; for PEER the remote peer too); a response with another nonce is not ours (§11.3). */
#ifndef RP_PCPMSG_H
#define RP_PCPMSG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RP_PCP_VERSION 2
#define RP_PCP_PORT 5351            /* the server's port (shared with NAT-PMP) */
#define RP_PCP_HDR_LEN 24u
#define RP_PCP_MAP_LEN 36u          /* MAP opcode data */
#define RP_PCP_PEER_LEN 56u         /* PEER opcode data */
#define RP_PCP_MAX_MSG 1100u        /* §7: a message is at most 1100 bytes */
#define RP_PCP_NONCE_LEN 12u

enum rp_pcp_opcode {
	RP_PCP_OP_ANNOUNCE = 0,
	RP_PCP_OP_MAP = 1,
	RP_PCP_OP_PEER = 2,
};

/* Result codes (§7.4) */
enum rp_pcp_result {
	RP_PCP_SUCCESS = 0,
	RP_PCP_UNSUPP_VERSION = 1,
	RP_PCP_NOT_AUTHORIZED = 2,
	RP_PCP_MALFORMED_REQUEST = 3,
	RP_PCP_UNSUPP_OPCODE = 4,
	RP_PCP_UNSUPP_OPTION = 5,
	RP_PCP_MALFORMED_OPTION = 6,
	RP_PCP_NETWORK_FAILURE = 7,
	RP_PCP_NO_RESOURCES = 8,
	RP_PCP_UNSUPP_PROTOCOL = 9,
	RP_PCP_USER_EX_QUOTA = 10,
	RP_PCP_CANNOT_PROVIDE_EXTERNAL = 11,
	RP_PCP_ADDRESS_MISMATCH = 12,
	RP_PCP_EXCESSIVE_REMOTE_PEERS = 13,
};

struct rp_pcp_request {
	enum rp_pcp_opcode opcode;
	uint32_t lifetime;                  /* seconds; 0 deletes (MAP, PEER) */
	uint8_t client_ip[16];              /* the client's own address as the server sees it */
	/* MAP and PEER */
	uint8_t nonce[RP_PCP_NONCE_LEN];
	uint8_t protocol;                   /* IPPROTO_TCP, IPPROTO_UDP; 0 = all (MAP only) */
	uint16_t internal_port;             /* host order */
	uint16_t suggested_port;            /* host order; 0 = no preference */
	uint8_t suggested_ip[16];           /* all zero = no preference (use rp_pcp_v4mapped(0) for IPv4) */
	/* PEER only */
	uint16_t peer_port;
	uint8_t peer_ip[16];
};

struct rp_pcp_response {
	uint8_t version;                    /* 2; or what a non-PCP server sent (-EPROTONOSUPPORT) */
	uint8_t opcode;                     /* without the R bit */
	uint8_t result;                     /* enum rp_pcp_result (other values possible: unknown) */
	uint32_t lifetime;                  /* granted, or how long an error holds */
	uint32_t epoch;                     /* the server's epoch time */
	bool has_data;                      /* MAP / PEER fixed data present (always for those opcodes) */
	uint8_t nonce[RP_PCP_NONCE_LEN];
	uint8_t protocol;
	uint16_t internal_port;
	uint16_t external_port;             /* assigned external port */
	uint8_t external_ip[16];            /* assigned external address */
	uint16_t peer_port;                 /* PEER */
	uint8_t peer_ip[16];
	unsigned n_options;                 /* option TLVs walked */
	const char *why;                    /* on failure: short static reason */
};

/* Encode a request. Returns its length, -ENOSPC if cap is too small, -EINVAL for an unknown opcode or a
 * PEER / MAP without an internal port (protocol 0 with a port is -EINVAL too, §11.1). */
int rp_pcp_encode(const struct rp_pcp_request *q, uint8_t *buf, size_t cap);

/* Decode a response of exactly len bytes: 0, -EBADMSG (r->why says why), or -EPROTONOSUPPORT when the
 * version is not 2 (r->version, and for a NAT-PMP reply r->opcode and r->result, are filled in). */
int rp_pcp_decode(const uint8_t *buf, size_t len, struct rp_pcp_response *r);

/* Does r answer q? 0 yes; -ESTALE: another request's answer (opcode, nonce, protocol, port or peer
 * differ; drop it and keep waiting). */
int rp_pcp_match(const struct rp_pcp_request *q, const struct rp_pcp_response *r);

/* Encode a response (a server's side): for tests and fuzzing. Returns its length or -ENOSPC/-EINVAL. */
int rp_pcp_encode_response(const struct rp_pcp_response *r, uint8_t *buf, size_t cap);

/* "SUCCESS", "NOT_AUTHORIZED", ... ("UNKNOWN" for others) and a sentence for people. */
const char *rp_pcp_result_name(unsigned result);
const char *rp_pcp_result_text(unsigned result);
/* The -errno a result code maps to (0 for SUCCESS). */
int rp_pcp_result_errno(unsigned result);

/* IPv4 (network order) <-> IPv4-mapped IPv6 (::ffff:a.b.c.d). rp_pcp_v4() is false for other addresses. */
void rp_pcp_v4mapped(uint32_t addr_net, uint8_t out[16]);
bool rp_pcp_v4(const uint8_t ip[16], uint32_t *addr_net);

#endif
