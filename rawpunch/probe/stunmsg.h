/* SPDX-License-Identifier: MIT */
/* STUN message codec (RFC 8489, with RFC 5780's NAT-discovery attributes). Pure: no I/O, no globals.
 *
 * Builds Binding requests (transaction ID from the caller; optional CHANGE-REQUEST, SOFTWARE,
 * FINGERPRINT) and parses messages strictly: the two leading zero bits, the magic cookie, a length
 * that is a multiple of 4 and equals what was given, every attribute TLV bounds-checked with its
 * padding (padding bytes are not checked: RFC 5769's vectors pad with spaces), FINGERPRINT verified
 * when present (and required to be last), addresses decoded for IPv4 and IPv6. The first occurrence
 * of an attribute wins (RFC 8489 §14). Unknown comprehension-required attributes (0x0000-0x7FFF) are
 * reported, not fatal: what to do with them depends on the message class (§6.3).
 *
 * Over TCP (RFC 8489 §6.2.2) a stream carries messages back to back, framed by the header's length:
 * rp_stun_frame_len() tells how many bytes the message at the head of a buffer has. */
#ifndef RP_STUNMSG_H
#define RP_STUNMSG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RP_STUN_MAGIC 0x2112A442u
#define RP_STUN_HDR_LEN 20u
#define RP_STUN_TXID_LEN 12u
#define RP_STUN_FP_XOR 0x5354554eu       /* FINGERPRINT = CRC-32 ^ this */
/* Longest message we accept (header + attributes). RFC 8489 allows 65535 + 20 on a stream; servers
 * answering a Binding request send well under 1 KiB. */
#define RP_STUN_MAX_MSG 4096u

/* Methods and classes (the type is method bits interleaved with the class bits C1 C0). */
#define RP_STUN_METHOD_BINDING 0x001
enum rp_stun_class {
	RP_STUN_REQUEST = 0,
	RP_STUN_INDICATION = 1,
	RP_STUN_SUCCESS = 2,
	RP_STUN_ERROR = 3,
};
#define RP_STUN_BINDING_REQUEST 0x0001
#define RP_STUN_BINDING_SUCCESS 0x0101
#define RP_STUN_BINDING_ERROR   0x0111

/* Attribute types */
#define RP_STUN_ATTR_MAPPED_ADDRESS      0x0001
#define RP_STUN_ATTR_CHANGE_REQUEST      0x0003   /* RFC 5780 */
#define RP_STUN_ATTR_SOURCE_ADDRESS      0x0004   /* RFC 3489 (classic servers): like RESPONSE-ORIGIN */
#define RP_STUN_ATTR_CHANGED_ADDRESS     0x0005   /* RFC 3489 (classic servers): like OTHER-ADDRESS */
#define RP_STUN_ATTR_USERNAME            0x0006
#define RP_STUN_ATTR_MESSAGE_INTEGRITY   0x0008
#define RP_STUN_ATTR_ERROR_CODE          0x0009
#define RP_STUN_ATTR_UNKNOWN_ATTRIBUTES  0x000A
#define RP_STUN_ATTR_REALM               0x0014
#define RP_STUN_ATTR_NONCE               0x0015
#define RP_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001C
#define RP_STUN_ATTR_PASSWORD_ALGORITHM  0x001D
#define RP_STUN_ATTR_USERHASH            0x001E
#define RP_STUN_ATTR_XOR_MAPPED_ADDRESS  0x0020
#define RP_STUN_ATTR_PADDING             0x0026   /* RFC 5780 */
#define RP_STUN_ATTR_RESPONSE_PORT       0x0027   /* RFC 5780 */
#define RP_STUN_ATTR_PASSWORD_ALGORITHMS 0x8002
#define RP_STUN_ATTR_ALTERNATE_DOMAIN    0x8003
#define RP_STUN_ATTR_SOFTWARE            0x8022
#define RP_STUN_ATTR_ALTERNATE_SERVER    0x8023
#define RP_STUN_ATTR_FINGERPRINT         0x8028
#define RP_STUN_ATTR_RESPONSE_ORIGIN     0x802B   /* RFC 5780 */
#define RP_STUN_ATTR_OTHER_ADDRESS       0x802C   /* RFC 5780 */

/* CHANGE-REQUEST flags (RFC 5780 §7.2) */
#define RP_STUN_CHANGE_IP   0x4u
#define RP_STUN_CHANGE_PORT 0x2u

/* Address families as STUN encodes them */
#define RP_STUN_AF_INET  0x01
#define RP_STUN_AF_INET6 0x02

struct rp_stun_addr {
	uint8_t family;          /* RP_STUN_AF_INET or RP_STUN_AF_INET6 */
	uint16_t port;           /* host order, already un-XORed */
	uint32_t v4;             /* network order (family INET) */
	uint8_t v6[16];          /* family INET6 */
};

/* What rp_stun_parse() found; has_* tell which attributes were present (first occurrence used). */
#define RP_STUN_MAX_UNKNOWN 8
#define RP_STUN_TEXT_MAX 128
struct rp_stun_msg {
	uint16_t type;                     /* raw message type */
	uint16_t method;                   /* 12-bit method */
	enum rp_stun_class cls;
	uint16_t length;                   /* header's length field (attributes, bytes) */
	uint8_t txid[RP_STUN_TXID_LEN];
	bool has_xor_mapped, has_mapped, has_other, has_origin, has_alternate;
	struct rp_stun_addr xor_mapped, mapped, other, origin, alternate;
	bool has_error;
	uint16_t error_code;               /* 300..699 */
	char error_reason[RP_STUN_TEXT_MAX]; /* printable ASCII copy ('?' for anything else), truncated */
	bool has_software;
	char software[RP_STUN_TEXT_MAX];   /* same treatment */
	bool has_change_request;
	uint32_t change_flags;             /* RP_STUN_CHANGE_* */
	bool has_integrity;                /* MESSAGE-INTEGRITY(-SHA256) present (not verified: no key) */
	bool has_fingerprint;              /* present and verified (a wrong one fails the parse) */
	uint16_t unknown_required[RP_STUN_MAX_UNKNOWN]; /* comprehension-required types not understood */
	unsigned n_unknown_required;       /* how many (may exceed RP_STUN_MAX_UNKNOWN; list is capped) */
	unsigned n_attrs;                  /* attributes walked */
	const char *why;                   /* on failure: short static reason ("bad magic cookie", ...) */
	/* added after the first version (compatible extension) */
	bool has_changed;                  /* RFC 3489 CHANGED-ADDRESS (what classic servers send ... */
	struct rp_stun_addr changed;       /* ... instead of OTHER-ADDRESS) */
};

/* CRC-32 (ISO-HDLC / zlib: reflected 0xEDB88320, init and final xor 0xFFFFFFFF). */
uint32_t rp_stun_crc32(const uint8_t *p, size_t n);

struct rp_stun_build {
	uint32_t change_flags;             /* 0 = no CHANGE-REQUEST attribute */
	const char *software;              /* NULL = no SOFTWARE; at most 763 bytes */
	bool fingerprint;                  /* append FINGERPRINT */
};

/* Write a Binding request into buf. Returns its length, -ENOSPC if cap is too small, -EINVAL for a
 * too-long SOFTWARE or unknown change flags. o may be NULL (bare request). */
int rp_stun_build_binding(uint8_t *buf, size_t cap, const uint8_t txid[RP_STUN_TXID_LEN],
			  const struct rp_stun_build *o);

/* Stream framing: with len bytes at the head of a TCP stream, returns the length of the message
 * that starts there (20 + header length) once 20 bytes are present, 0 if fewer than 20 bytes are
 * there yet, -EBADMSG if the header is not STUN (leading bits, cookie, length not a multiple of 4)
 * or -EMSGSIZE if the message would exceed max (0 = RP_STUN_MAX_MSG). */
long rp_stun_frame_len(const uint8_t *buf, size_t len, size_t max);

/* Parse exactly one message of len bytes. 0 and *m filled, or -EBADMSG (m->why says why). */
int rp_stun_parse(const uint8_t *buf, size_t len, struct rp_stun_msg *m);

/* Encode type from method + class, and back. */
uint16_t rp_stun_type(uint16_t method, enum rp_stun_class cls);

/* Short attribute name ("XOR-MAPPED-ADDRESS", ...) or NULL if unknown to us. */
const char *rp_stun_attr_name(uint16_t type);

#endif
