/* SPDX-License-Identifier: MIT */
/* STUN message codec (see stunmsg.h). Every read goes through a bounds-checked cursor
 * (userstack/extract.h). */
#include "rawpunch/probe/stunmsg.h"

#include <errno.h>
#include <string.h>
#include <nettle/hmac.h>
#include <nettle/md5.h>

#include "userstack/extract.h"

/* Nibble-wise CRC-32 (reflected 0xEDB88320): small table, no global state. */
static const uint32_t crc_nib[16] = {
	0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
	0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
};

uint32_t rp_stun_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		c = (c >> 4) ^ crc_nib[c & 15];
		c = (c >> 4) ^ crc_nib[c & 15];
	}
	return c ^ 0xFFFFFFFFu;
}


uint16_t rp_stun_type(uint16_t method, enum rp_stun_class cls)
{
	unsigned c = (unsigned)cls & 3u, m = method & 0xFFFu;
	return (uint16_t)((m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) |
			  ((c & 1u) << 4) | ((c & 2u) << 7));
}

static void type_split(uint16_t t, uint16_t *method, enum rp_stun_class *cls)
{
	*method = (uint16_t)((t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2));
	*cls = (enum rp_stun_class)(((t >> 4) & 1u) | ((t >> 7) & 2u));
}

const char *rp_stun_attr_name(uint16_t type)
{
	switch (type) {
	case RP_STUN_ATTR_MAPPED_ADDRESS: return "MAPPED-ADDRESS";
	case RP_STUN_ATTR_CHANGE_REQUEST: return "CHANGE-REQUEST";
	case RP_STUN_ATTR_SOURCE_ADDRESS: return "SOURCE-ADDRESS";
	case RP_STUN_ATTR_CHANGED_ADDRESS: return "CHANGED-ADDRESS";
	case RP_STUN_ATTR_USERNAME: return "USERNAME";
	case RP_STUN_ATTR_MESSAGE_INTEGRITY: return "MESSAGE-INTEGRITY";
	case RP_STUN_ATTR_ERROR_CODE: return "ERROR-CODE";
	case RP_STUN_ATTR_UNKNOWN_ATTRIBUTES: return "UNKNOWN-ATTRIBUTES";
	case RP_STUN_ATTR_LIFETIME: return "LIFETIME";
	case RP_STUN_ATTR_XOR_PEER_ADDRESS: return "XOR-PEER-ADDRESS";
	case RP_STUN_ATTR_REALM: return "REALM";
	case RP_STUN_ATTR_NONCE: return "NONCE";
	case RP_STUN_ATTR_XOR_RELAYED_ADDRESS: return "XOR-RELAYED-ADDRESS";
	case RP_STUN_ATTR_REQUESTED_TRANSPORT: return "REQUESTED-TRANSPORT";
	case RP_STUN_ATTR_CONNECTION_ID: return "CONNECTION-ID";
	case RP_STUN_ATTR_MESSAGE_INTEGRITY_SHA256: return "MESSAGE-INTEGRITY-SHA256";
	case RP_STUN_ATTR_PASSWORD_ALGORITHM: return "PASSWORD-ALGORITHM";
	case RP_STUN_ATTR_USERHASH: return "USERHASH";
	case RP_STUN_ATTR_XOR_MAPPED_ADDRESS: return "XOR-MAPPED-ADDRESS";
	case RP_STUN_ATTR_PADDING: return "PADDING";
	case RP_STUN_ATTR_RESPONSE_PORT: return "RESPONSE-PORT";
	case RP_STUN_ATTR_PASSWORD_ALGORITHMS: return "PASSWORD-ALGORITHMS";
	case RP_STUN_ATTR_ALTERNATE_DOMAIN: return "ALTERNATE-DOMAIN";
	case RP_STUN_ATTR_SOFTWARE: return "SOFTWARE";
	case RP_STUN_ATTR_ALTERNATE_SERVER: return "ALTERNATE-SERVER";
	case RP_STUN_ATTR_FINGERPRINT: return "FINGERPRINT";
	case RP_STUN_ATTR_RESPONSE_ORIGIN: return "RESPONSE-ORIGIN";
	case RP_STUN_ATTR_OTHER_ADDRESS: return "OTHER-ADDRESS";
	default: return NULL;
	}
}

/* --- writer ------------------------------------------------------------------------------------ */

void rp_stun_wr_start(struct rp_stun_wr *w, uint8_t *buf, size_t cap, uint16_t type,
		      const uint8_t txid[RP_STUN_TXID_LEN])
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = cap;
	if (!buf || !txid || (type & 0xC000)) {
		w->err = -EINVAL;
		return;
	}
	if (cap < RP_STUN_HDR_LEN) {
		w->err = -ENOSPC;
		return;
	}
	us_put_be16(buf, type);
	us_put_be16(buf + 2, 0);
	us_put_be32(buf + 4, RP_STUN_MAGIC);
	memcpy(buf + 8, txid, RP_STUN_TXID_LEN);
	w->len = RP_STUN_HDR_LEN;
}

/* Room for an attribute of vlen bytes (padded): its value's address, the header written; NULL on error. */
static uint8_t *wr_reserve(struct rp_stun_wr *w, uint16_t type, size_t vlen)
{
	size_t padded = (vlen + 3) & ~(size_t)3;
	if (w->err)
		return NULL;
	if (vlen > 0xFFFF || w->fingerprinted || (w->sealed && type != RP_STUN_ATTR_FINGERPRINT)) {
		w->err = -EINVAL;
		return NULL;
	}
	if (w->cap - w->len < 4 + padded || w->len + 4 + padded - RP_STUN_HDR_LEN > 0xFFFF) {
		w->err = -ENOSPC;
		return NULL;
	}
	uint8_t *p = w->buf + w->len;
	us_put_be16(p, type);
	us_put_be16(p + 2, (uint16_t)vlen);
	memset(p + 4 + vlen, 0, padded - vlen);
	w->len += 4 + padded;
	us_put_be16(w->buf + 2, (uint16_t)(w->len - RP_STUN_HDR_LEN));
	return p + 4;
}

void rp_stun_wr_attr(struct rp_stun_wr *w, uint16_t type, const void *val, size_t len)
{
	if (len && !val && !w->err)
		w->err = -EINVAL;
	uint8_t *v = wr_reserve(w, type, len);
	if (v && len)
		memcpy(v, val, len);
}

void rp_stun_wr_u32(struct rp_stun_wr *w, uint16_t type, uint32_t x)
{
	uint8_t *v = wr_reserve(w, type, 4);
	if (v)
		us_put_be32(v, x);
}

void rp_stun_wr_xaddr(struct rp_stun_wr *w, uint16_t type, const struct rp_stun_addr *a)
{
	size_t alen;
	if (!a || (a->family != RP_STUN_AF_INET && a->family != RP_STUN_AF_INET6)) {
		if (!w->err)
			w->err = -EINVAL;
		return;
	}
	alen = a->family == RP_STUN_AF_INET ? 4 : 16;
	uint8_t *v = wr_reserve(w, type, 4 + alen);
	if (!v)
		return;
	v[0] = 0;
	v[1] = a->family;
	us_put_be16(v + 2, (uint16_t)(a->port ^ (RP_STUN_MAGIC >> 16)));
	memcpy(v + 4, a->family == RP_STUN_AF_INET ? (const void *)&a->v4 : (const void *)a->v6, alen);
	for (size_t i = 0; i < alen; i++)
		v[4 + i] ^= w->buf[4 + i];   /* cookie (network order), then the transaction ID */
}

void rp_stun_wr_integrity(struct rp_stun_wr *w, const uint8_t *key, size_t key_len)
{
	if (!key && key_len && !w->err)
		w->err = -EINVAL;
	size_t before = w->len;
	/* The length field must cover MESSAGE-INTEGRITY when the HMAC is computed: reserve first. */
	uint8_t *v = wr_reserve(w, RP_STUN_ATTR_MESSAGE_INTEGRITY, RP_STUN_MI_LEN);
	if (!v)
		return;
	rp_stun_hmac_sha1(key, key_len, w->buf, before, v);
	w->sealed = true;
}

void rp_stun_wr_fingerprint(struct rp_stun_wr *w)
{
	size_t before = w->len;
	uint8_t *v = wr_reserve(w, RP_STUN_ATTR_FINGERPRINT, 4);
	if (!v)
		return;
	us_put_be32(v, rp_stun_crc32(w->buf, before) ^ RP_STUN_FP_XOR);
	w->sealed = w->fingerprinted = true;
}

int rp_stun_wr_end(const struct rp_stun_wr *w)
{
	return w->err ? w->err : (int)w->len;
}

int rp_stun_build_binding(uint8_t *buf, size_t cap, const uint8_t txid[RP_STUN_TXID_LEN],
			  const struct rp_stun_build *o)
{
	struct rp_stun_wr w;
	if (!buf || !txid)
		return -EINVAL;
	if (o && o->change_flags & ~(RP_STUN_CHANGE_IP | RP_STUN_CHANGE_PORT))
		return -EINVAL;
	if (o && o->software && strlen(o->software) > 763)
		return -EINVAL;
	rp_stun_wr_start(&w, buf, cap, RP_STUN_BINDING_REQUEST, txid);
	if (o && o->change_flags)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_CHANGE_REQUEST, o->change_flags);
	if (o && o->software)
		rp_stun_wr_attr(&w, RP_STUN_ATTR_SOFTWARE, o->software, strlen(o->software));
	if (o && o->fingerprint)
		rp_stun_wr_fingerprint(&w);
	return rp_stun_wr_end(&w);
}

/* --- MESSAGE-INTEGRITY ---------------------------------------------------------------------------- */

void rp_stun_hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
		       uint8_t out[RP_STUN_MI_LEN])
{
	struct hmac_sha1_ctx c;
	hmac_sha1_set_key(&c, key_len, key);
	hmac_sha1_update(&c, len, data);
	hmac_sha1_digest(&c, RP_STUN_MI_LEN, out);
}

void rp_stun_lt_key(const char *username, size_t ulen, const char *realm, size_t rlen, const char *password,
		    size_t plen, uint8_t key[RP_STUN_LT_KEY_LEN])
{
	struct md5_ctx c;
	md5_init(&c);
	md5_update(&c, ulen, (const uint8_t *)username);
	md5_update(&c, 1, (const uint8_t *)":");
	md5_update(&c, rlen, (const uint8_t *)realm);
	md5_update(&c, 1, (const uint8_t *)":");
	md5_update(&c, plen, (const uint8_t *)password);
	md5_digest(&c, RP_STUN_LT_KEY_LEN, key);
}

int rp_stun_check_integrity(const uint8_t *buf, size_t len, const struct rp_stun_msg *m, const uint8_t *key,
			    size_t key_len)
{
	size_t off = m->integrity_off;
	uint8_t hdr[RP_STUN_HDR_LEN], mac[RP_STUN_MI_LEN];
	struct hmac_sha1_ctx c;
	if (!off)
		return -ENOMSG;
	if (off < RP_STUN_HDR_LEN || off + 4 + RP_STUN_MI_LEN > len)
		return -EINVAL;   /* not what rp_stun_parse() made of this buffer */
	/* The HMAC covers everything before the attribute, with a length field that ends right after it. */
	memcpy(hdr, buf, sizeof(hdr));
	us_put_be16(hdr + 2, (uint16_t)(off + 4 + RP_STUN_MI_LEN - RP_STUN_HDR_LEN));
	hmac_sha1_set_key(&c, key_len, key);
	hmac_sha1_update(&c, sizeof(hdr), hdr);
	hmac_sha1_update(&c, off - RP_STUN_HDR_LEN, buf + RP_STUN_HDR_LEN);
	hmac_sha1_digest(&c, sizeof(mac), mac);
	/* constant-time compare */
	uint8_t d = 0;
	for (size_t i = 0; i < sizeof(mac); i++)
		d |= (uint8_t)(mac[i] ^ buf[off + 4 + i]);
	return d ? -EACCES : 0;
}

long rp_stun_frame_len(const uint8_t *buf, size_t len, size_t max)
{
	struct us_cur c = us_cur_make(buf, len);
	if (!max)
		max = RP_STUN_MAX_MSG;
	if (!us_has(&c, RP_STUN_HDR_LEN))
		return 0;
	uint16_t type = us_get_be16(&c), l = us_get_be16(&c);
	if ((type & 0xC000) || us_get_be32(&c) != RP_STUN_MAGIC)
		return -EBADMSG;
	if (l & 3)
		return -EBADMSG;
	if ((size_t)l + RP_STUN_HDR_LEN > max)
		return -EMSGSIZE;
	return (long)l + RP_STUN_HDR_LEN;
}

/* Printable copy of everything left in v ('?' for anything else), truncated to RP_STUN_TEXT_MAX. */
static void copy_text(char *dst, struct us_cur v)
{
	size_t k = 0;
	while (us_left(&v) && k + 1 < RP_STUN_TEXT_MAX) {
		uint8_t ch = us_get_u8(&v);
		dst[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	dst[k] = 0;
}

/* A credential string (USERNAME, REALM, NONCE): raw bytes, NUL-terminated; -1 if longer than max. */
static int copy_raw(char *dst, uint16_t *dlen, struct us_cur v, size_t max)
{
	size_t n = us_left(&v);
	if (n > max)
		return -1;
	us_get_copy(&v, dst, n);
	dst[n] = 0;
	*dlen = (uint16_t)n;
	return 0;
}

static int fail(struct rp_stun_msg *m, const char *why)
{
	m->why = why;
	return -EBADMSG;
}

/* (XOR-)MAPPED-ADDRESS, OTHER-ADDRESS, RESPONSE-ORIGIN, ALTERNATE-SERVER value v. xk: the magic
 * cookie and the transaction ID (what XOR-MAPPED-ADDRESS is xored with), network order. */
static int parse_addr(struct us_cur v, bool xor, const uint8_t xk[4 + RP_STUN_TXID_LEN], struct rp_stun_addr *a)
{
	us_skip(&v, 1);           /* reserved */
	uint8_t family = us_get_u8(&v);
	uint16_t port = us_get_be16(&v);
	if (!us_ok(&v))
		return -1;
	memset(a, 0, sizeof(*a));
	a->family = family;
	a->port = xor ? port ^ (uint16_t)(RP_STUN_MAGIC >> 16) : port;
	if (a->family == RP_STUN_AF_INET) {
		if (us_left(&v) != 4)
			return -1;
		us_get_copy(&v, &a->v4, 4);
		if (xor)
			for (int i = 0; i < 4; i++)
				((uint8_t *)&a->v4)[i] ^= xk[i];   /* cookie, network order */
	} else if (a->family == RP_STUN_AF_INET6) {
		if (us_left(&v) != 16)
			return -1;
		us_get_copy(&v, a->v6, 16);
		if (xor)
			for (int i = 0; i < 16; i++)
				a->v6[i] ^= xk[i];                 /* cookie || transaction ID */
	} else {
		return -1;
	}
	return 0;
}

int rp_stun_parse(const uint8_t *buf, size_t len, struct rp_stun_msg *m)
{
	struct us_cur c = us_cur_make(buf, len);
	uint8_t txid[RP_STUN_TXID_LEN], xk[4 + RP_STUN_TXID_LEN];

	memset(m, 0, sizeof(*m));
	uint16_t type = us_get_be16(&c), length = us_get_be16(&c);
	uint32_t magic = us_get_be32(&c);
	us_get_copy(&c, txid, sizeof(txid));
	if (!us_ok(&c))
		return fail(m, "shorter than a STUN header");
	if (type & 0xC000)
		return fail(m, "leading bits not zero");
	if (magic != RP_STUN_MAGIC)
		return fail(m, "bad magic cookie");
	m->type = type;
	type_split(m->type, &m->method, &m->cls);
	m->length = length;
	memcpy(m->txid, txid, RP_STUN_TXID_LEN);
	if (m->length & 3)
		return fail(m, "length not a multiple of 4");
	if ((size_t)m->length + RP_STUN_HDR_LEN != len)
		return fail(m, "length field disagrees with the message size");
	us_put_be32(xk, RP_STUN_MAGIC);
	memcpy(xk + 4, txid, RP_STUN_TXID_LEN);

	bool after_integrity = false;
	while (us_left(&c)) {
		if (m->has_fingerprint)
			return fail(m, "attribute after FINGERPRINT");
		size_t at_off = c.off;     /* FINGERPRINT's CRC covers the message up to here */
		uint16_t at = us_get_be16(&c), vl = us_get_be16(&c);
		if (!us_ok(&c))
			return fail(m, "truncated attribute header");
		size_t padded = ((size_t)vl + 3) & ~(size_t)3;
		if (!us_has(&c, padded))
			return fail(m, "attribute runs past the end");
		struct us_cur v = us_sub(&c, vl);
		us_skip(&c, padded - vl);
		m->n_attrs++;
		/* After MESSAGE-INTEGRITY only FINGERPRINT (and MI-SHA256) may follow; others are ignored. */
		bool use = !after_integrity || at == RP_STUN_ATTR_FINGERPRINT ||
			   at == RP_STUN_ATTR_MESSAGE_INTEGRITY_SHA256;
		switch (use ? at : 0xFFFF) {
		case RP_STUN_ATTR_XOR_MAPPED_ADDRESS:
			if (!m->has_xor_mapped) {
				if (parse_addr(v, true, xk, &m->xor_mapped))
					return fail(m, "bad XOR-MAPPED-ADDRESS");
				m->has_xor_mapped = true;
			}
			break;
		case RP_STUN_ATTR_MAPPED_ADDRESS:
			if (!m->has_mapped) {
				if (parse_addr(v, false, xk, &m->mapped))
					return fail(m, "bad MAPPED-ADDRESS");
				m->has_mapped = true;
			}
			break;
		case RP_STUN_ATTR_OTHER_ADDRESS:
			if (!m->has_other) {
				if (parse_addr(v, false, xk, &m->other))
					return fail(m, "bad OTHER-ADDRESS");
				m->has_other = true;
			}
			break;
		case RP_STUN_ATTR_CHANGED_ADDRESS:
			if (!m->has_changed) {
				if (parse_addr(v, false, xk, &m->changed))
					return fail(m, "bad CHANGED-ADDRESS");
				m->has_changed = true;
			}
			break;
		case RP_STUN_ATTR_RESPONSE_ORIGIN:
			if (!m->has_origin) {
				if (parse_addr(v, false, xk, &m->origin))
					return fail(m, "bad RESPONSE-ORIGIN");
				m->has_origin = true;
			}
			break;
		case RP_STUN_ATTR_ALTERNATE_SERVER:
			if (!m->has_alternate) {
				if (parse_addr(v, false, xk, &m->alternate))
					return fail(m, "bad ALTERNATE-SERVER");
				m->has_alternate = true;
			}
			break;
		case RP_STUN_ATTR_ERROR_CODE:
			if (!m->has_error) {
				if (vl < 4 || vl > 4 + 763)
					return fail(m, "bad ERROR-CODE length");
				us_skip(&v, 2);   /* reserved */
				unsigned cls = us_get_u8(&v) & 7u, num = us_get_u8(&v);
				if (cls < 3 || cls > 6 || num > 99)
					return fail(m, "ERROR-CODE out of range");
				m->error_code = (uint16_t)(cls * 100 + num);
				copy_text(m->error_reason, v);
				m->has_error = true;
			}
			break;
		case RP_STUN_ATTR_SOFTWARE:
			if (!m->has_software) {
				if (vl > 763)
					return fail(m, "SOFTWARE too long");
				copy_text(m->software, v);
				m->has_software = true;
			}
			break;
		case RP_STUN_ATTR_CHANGE_REQUEST:
			if (!m->has_change_request) {
				if (vl != 4)
					return fail(m, "bad CHANGE-REQUEST length");
				m->change_flags = us_get_be32(&v);
				m->has_change_request = true;
			}
			break;
		case RP_STUN_ATTR_XOR_RELAYED_ADDRESS:
			if (!m->has_relayed) {
				if (parse_addr(v, true, xk, &m->relayed))
					return fail(m, "bad XOR-RELAYED-ADDRESS");
				m->has_relayed = true;
			}
			break;
		case RP_STUN_ATTR_XOR_PEER_ADDRESS:
			if (!m->has_peer) {
				if (parse_addr(v, true, xk, &m->peer))
					return fail(m, "bad XOR-PEER-ADDRESS");
				m->has_peer = true;
			}
			break;
		case RP_STUN_ATTR_LIFETIME:
			if (!m->has_lifetime) {
				if (vl != 4)
					return fail(m, "bad LIFETIME length");
				m->lifetime = us_get_be32(&v);
				m->has_lifetime = true;
			}
			break;
		case RP_STUN_ATTR_REQUESTED_TRANSPORT:
			if (!m->has_transport) {
				if (vl != 4)
					return fail(m, "bad REQUESTED-TRANSPORT length");
				m->transport = us_get_u8(&v);
				m->has_transport = true;
			}
			break;
		case RP_STUN_ATTR_CONNECTION_ID:
			if (!m->has_connection_id) {
				if (vl != 4)
					return fail(m, "bad CONNECTION-ID length");
				m->connection_id = us_get_be32(&v);
				m->has_connection_id = true;
			}
			break;
		case RP_STUN_ATTR_USERNAME:
			if (!m->has_username) {
				if (copy_raw(m->username, &m->username_len, v, RP_STUN_USERNAME_MAX))
					return fail(m, "USERNAME too long");
				m->has_username = true;
			}
			break;
		case RP_STUN_ATTR_REALM:
			if (!m->has_realm) {
				if (copy_raw(m->realm, &m->realm_len, v, RP_STUN_REALM_MAX))
					return fail(m, "REALM too long");
				m->has_realm = true;
			}
			break;
		case RP_STUN_ATTR_NONCE:
			if (!m->has_nonce) {
				if (copy_raw(m->nonce, &m->nonce_len, v, RP_STUN_NONCE_MAX))
					return fail(m, "NONCE too long");
				m->has_nonce = true;
			}
			break;
		case RP_STUN_ATTR_UNKNOWN_ATTRIBUTES:
			if (!m->n_unknown_attrs) {
				if (vl & 1)
					return fail(m, "bad UNKNOWN-ATTRIBUTES length");
				unsigned n = vl / 2u < RP_STUN_MAX_UNKNOWN ? vl / 2u : RP_STUN_MAX_UNKNOWN;
				for (unsigned i = 0; i < n; i++)
					m->unknown_attrs[i] = us_get_be16(&v);
				m->n_unknown_attrs = n;
			}
			break;
		case RP_STUN_ATTR_MESSAGE_INTEGRITY:
			if (vl != 20)
				return fail(m, "bad MESSAGE-INTEGRITY length");
			m->has_integrity = true;
			m->integrity_off = (uint32_t)at_off;
			after_integrity = true;
			break;
		case RP_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
			if (vl < 16 || vl > 32 || (vl & 3))
				return fail(m, "bad MESSAGE-INTEGRITY-SHA256 length");
			m->has_integrity = true;
			after_integrity = true;
			break;
		case RP_STUN_ATTR_FINGERPRINT: {
			if (vl != 4)
				return fail(m, "bad FINGERPRINT length");
			/* CRC over everything before this attribute, length field as sent (covers it). */
			uint32_t want = rp_stun_crc32(buf, at_off) ^ RP_STUN_FP_XOR;
			if (us_get_be32(&v) != want)
				return fail(m, "FINGERPRINT does not match");
			m->has_fingerprint = true;
			break;
		}
		case 0xFFFF:
			break;   /* ignored: after MESSAGE-INTEGRITY */
		default:
			if (at < 0x8000 && !rp_stun_attr_name(at)) {
				if (m->n_unknown_required < RP_STUN_MAX_UNKNOWN)
					m->unknown_required[m->n_unknown_required] = at;
				m->n_unknown_required++;
			}
			break;
		}
	}
	return 0;
}
