/* SPDX-License-Identifier: MIT */
/* STUN message codec (RFC 8489, with RFC 5780's NAT-discovery attributes and the TURN attributes of
 * RFC 8656 and RFC 6062). Pure: no I/O, no globals.
 *
 * Builds Binding requests (transaction ID from the caller; optional CHANGE-REQUEST, SOFTWARE,
 * FINGERPRINT), any other message through a small writer (rp_stun_wr_*: attributes, XOR-encoded
 * addresses, MESSAGE-INTEGRITY, FINGERPRINT), and parses messages strictly: the two leading zero bits, the magic cookie, a length
 * that is a multiple of 4 and equals what was given, every attribute TLV bounds-checked with its
 * padding (padding bytes are not checked: RFC 5769's vectors pad with spaces), FINGERPRINT verified
 * when present (and required to be last), addresses decoded for IPv4 and IPv6. The first occurrence
 * of an attribute wins (RFC 8489 §14). Unknown comprehension-required attributes (0x0000-0x7FFF) are
 * reported, not fatal: what to do with them depends on the message class (§6.3).
 *
 * Over TCP (RFC 8489 §6.2.2) a stream carries messages back to back, framed by the header's length:
 * rp_stun_frame_len() tells how many bytes the message at the head of a buffer has.
 *
 * MESSAGE-INTEGRITY is HMAC-SHA1 (nettle): rp_stun_wr_integrity() appends it, rp_stun_check_integrity()
 * verifies a parsed message's. With long-term credentials (RFC 8489 §9.2) the key is
 * MD5(username ":" realm ":" password), rp_stun_lt_key(); the strings are used as given (no SASLprep/
 * OpaqueString: ASCII credentials, as TURN REST ones are, are unchanged by it). */
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
/* TURN (RFC 8656) and TURN TCP allocations (RFC 6062) */
#define RP_STUN_METHOD_ALLOCATE           0x003
#define RP_STUN_METHOD_REFRESH            0x004
#define RP_STUN_METHOD_SEND               0x006
#define RP_STUN_METHOD_DATA               0x007
#define RP_STUN_METHOD_CREATE_PERMISSION  0x008
#define RP_STUN_METHOD_CHANNEL_BIND       0x009
#define RP_STUN_METHOD_CONNECT            0x00A
#define RP_STUN_METHOD_CONNECTION_BIND    0x00B
#define RP_STUN_METHOD_CONNECTION_ATTEMPT 0x00C
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
#define RP_STUN_ATTR_LIFETIME            0x000D   /* RFC 8656 */
#define RP_STUN_ATTR_XOR_PEER_ADDRESS    0x0012   /* RFC 8656 */
#define RP_STUN_ATTR_REALM               0x0014
#define RP_STUN_ATTR_NONCE               0x0015
#define RP_STUN_ATTR_XOR_RELAYED_ADDRESS 0x0016   /* RFC 8656 */
#define RP_STUN_ATTR_REQUESTED_TRANSPORT 0x0019   /* RFC 8656 */
#define RP_STUN_ATTR_CONNECTION_ID       0x002A   /* RFC 6062 */
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

/* REQUESTED-TRANSPORT protocol numbers */
#define RP_STUN_TRANSPORT_TCP 6
#define RP_STUN_TRANSPORT_UDP 17

/* Lengths: a value longer than these fails the parse. RFC 8489: USERNAME < 513 bytes, REALM and NONCE
 * < 128 characters (763 bytes of UTF-8). */
#define RP_STUN_USERNAME_MAX 512
#define RP_STUN_REALM_MAX 763
#define RP_STUN_NONCE_MAX 763
#define RP_STUN_MI_LEN 20                /* MESSAGE-INTEGRITY: HMAC-SHA1 */
#define RP_STUN_LT_KEY_LEN 16            /* long-term credential key: MD5 */

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
	/* TURN (RFC 8656, RFC 6062) */
	bool has_relayed, has_peer;
	struct rp_stun_addr relayed, peer; /* XOR-RELAYED-ADDRESS, XOR-PEER-ADDRESS */
	bool has_lifetime;
	uint32_t lifetime;                 /* LIFETIME, seconds */
	bool has_transport;
	uint8_t transport;                 /* REQUESTED-TRANSPORT protocol (RP_STUN_TRANSPORT_*) */
	bool has_connection_id;
	uint32_t connection_id;            /* CONNECTION-ID: opaque, the 4 bytes read big-endian */
	/* Credentials, byte for byte as sent (a client hashes and echoes them; printing is the caller's
	 * business): the value, NUL-terminated, and its length. */
	bool has_username, has_realm, has_nonce;
	uint16_t username_len, realm_len, nonce_len;
	char username[RP_STUN_USERNAME_MAX + 1];
	char realm[RP_STUN_REALM_MAX + 1];
	char nonce[RP_STUN_NONCE_MAX + 1];
	uint32_t integrity_off;            /* offset of the MESSAGE-INTEGRITY attribute, 0 = none */
	uint16_t unknown_attrs[RP_STUN_MAX_UNKNOWN]; /* UNKNOWN-ATTRIBUTES (of a 420), capped */
	unsigned n_unknown_attrs;
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

/* Writer for any message: start, add attributes, then end. Errors are sticky: after the first one
 * (-ENOSPC: does not fit cap; -EINVAL: a value too long for an attribute, a bad address family, an
 * attribute after MESSAGE-INTEGRITY or FINGERPRINT) every call does nothing and rp_stun_wr_end()
 * returns it. The header's length field is kept current, so the message is valid after every call. */
struct rp_stun_wr {
	uint8_t *buf;
	size_t cap, len;
	int err;
	bool sealed;                       /* MESSAGE-INTEGRITY or FINGERPRINT written */
	bool fingerprinted;
};
void rp_stun_wr_start(struct rp_stun_wr *w, uint8_t *buf, size_t cap, uint16_t type,
		      const uint8_t txid[RP_STUN_TXID_LEN]);
/* Attribute with a value of len bytes (padded with zeros to 4). */
void rp_stun_wr_attr(struct rp_stun_wr *w, uint16_t type, const void *val, size_t len);
void rp_stun_wr_u32(struct rp_stun_wr *w, uint16_t type, uint32_t v);
/* XOR-MAPPED/PEER/RELAYED-ADDRESS style: port and address XORed with the cookie (and transaction ID). */
void rp_stun_wr_xaddr(struct rp_stun_wr *w, uint16_t type, const struct rp_stun_addr *a);
/* MESSAGE-INTEGRITY: HMAC-SHA1 under key over the message so far, the length field covering it. Only
 * FINGERPRINT may follow. */
void rp_stun_wr_integrity(struct rp_stun_wr *w, const uint8_t *key, size_t key_len);
/* FINGERPRINT; nothing may follow. */
void rp_stun_wr_fingerprint(struct rp_stun_wr *w);
/* The message's length, or the first error. */
int rp_stun_wr_end(const struct rp_stun_wr *w);

/* HMAC-SHA1 (RFC 2104), MESSAGE-INTEGRITY's MAC. */
void rp_stun_hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
		       uint8_t out[RP_STUN_MI_LEN]);
/* Long-term credential key: MD5(username ":" realm ":" password). */
void rp_stun_lt_key(const char *username, size_t ulen, const char *realm, size_t rlen, const char *password,
		    size_t plen, uint8_t key[RP_STUN_LT_KEY_LEN]);
/* Check the MESSAGE-INTEGRITY of a message rp_stun_parse() accepted (buf/len as parsed): 0 if it
 * verifies under key, -EACCES if it does not, -ENOMSG if the message has none. */
int rp_stun_check_integrity(const uint8_t *buf, size_t len, const struct rp_stun_msg *m, const uint8_t *key,
			    size_t key_len);

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
