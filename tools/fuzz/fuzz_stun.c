/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the STUN codec (rawpunch/probe/stunmsg.c).
 *
 * The input is treated as a TCP byte stream, as rawpunch's STUN client sees it: rp_stun_frame_len()
 * cuts it into messages and rp_stun_parse() parses each (libFuzzer's exactly-sized buffer makes
 * ASan catch any read past the end). Besides "no crash", the harness checks the codec's promises
 * and aborts when one breaks: only the documented error codes; a parsed message's length field
 * matches; addresses have a valid family; text fields are NUL-terminated printable ASCII; the
 * credential strings (USERNAME, REALM, NONCE) are within their limits and NUL-terminated at their
 * length; MESSAGE-INTEGRITY's offset lies inside the message and checking it under a key gives only
 * 0 or -EACCES; a message that parses still parses when re-framed; a Binding request built from the
 * input's first bytes (txid, change flags, software) parses back to the same fields; and a TURN
 * request written with rp_stun_wr_* from the input (method, LIFETIME, REQUESTED-TRANSPORT, an IPv4
 * or IPv6 XOR-PEER-ADDRESS, CONNECTION-ID, USERNAME/REALM/NONCE of arbitrary bytes,
 * MESSAGE-INTEGRITY, optional FINGERPRINT) parses back to the same values and its integrity
 * verifies under the key it was written with and not under another. Seeds: tests/corpus/stun/
 * (RFC 5769 vectors, coturn's STUN and TURN answers from the lab, our TURN requests, crafted edge
 * cases). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/probe/stunmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[RP_STUN_LT_KEY_LEN] = "fuzz-key-0123456";

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

static void check_cred(bool has, const char *s, uint16_t len, size_t max)
{
	if (!has) {
		if (len || s[0])
			abort();
		return;
	}
	if (len > max || s[len] != 0)
		abort();
}

/* A TURN request from the input, written and parsed back. Layout: [0] method selector and flags,
 * [1..4] LIFETIME, [5..8] CONNECTION-ID, [9..26] peer (family bit, port, address), [27..29] the
 * lengths of USERNAME, REALM, NONCE, then their bytes (whatever is left, reused cyclically). */
static void check_turn_build(const uint8_t *data, size_t size)
{
	static const uint16_t methods[] = { RP_STUN_METHOD_ALLOCATE, RP_STUN_METHOD_REFRESH, RP_STUN_METHOD_CREATE_PERMISSION,
					    RP_STUN_METHOD_CONNECT, RP_STUN_METHOD_CONNECTION_BIND, RP_STUN_METHOD_CONNECTION_ATTEMPT };
	uint8_t txid[RP_STUN_TXID_LEN] = { 0 }, buf[2048], pool[64] = { 0 };
	char user[RP_STUN_USERNAME_MAX], realm[RP_STUN_REALM_MAX], nonce[RP_STUN_NONCE_MAX];
	struct rp_stun_addr peer = { 0 };
	struct rp_stun_wr w;
	struct rp_stun_msg m;
	if (size < 30)
		return;
	size_t npool = size - 30 < sizeof(pool) ? size - 30 : sizeof(pool);
	memcpy(pool, data + 30, npool);
	memcpy(txid, data + 9, sizeof(txid));    /* overlaps the peer bytes: fine, any txid will do */
	uint16_t method = methods[(data[0] & 0x7) % 6];
	uint32_t life = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
	uint32_t id = (uint32_t)data[5] << 24 | (uint32_t)data[6] << 16 | (uint32_t)data[7] << 8 | data[8];
	peer.family = data[9] & 1 ? RP_STUN_AF_INET6 : RP_STUN_AF_INET;
	peer.port = (uint16_t)(data[10] << 8 | data[11]);
	if (peer.family == RP_STUN_AF_INET)
		memcpy(&peer.v4, data + 12, 4);
	else
		memcpy(peer.v6, data + 12, 15);  /* the 16th stays 0 */
	size_t ul = data[27] % 64, rl = data[28] % 64, nl = data[29] % 64;
	for (size_t i = 0; i < ul; i++)
		user[i] = (char)(npool ? pool[i % npool] : 'u');
	for (size_t i = 0; i < rl; i++)
		realm[i] = (char)(npool ? pool[(i + 7) % npool] : 'r');
	for (size_t i = 0; i < nl; i++)
		nonce[i] = (char)(npool ? pool[(i + 13) % npool] : 'n');
	bool fp = data[0] & 0x40, transport = data[0] & 0x10, has_id = data[0] & 0x20;
	rp_stun_wr_start(&w, buf, sizeof(buf), rp_stun_type(method, data[0] & 0x80 ? RP_STUN_INDICATION : RP_STUN_REQUEST), txid);
	if (transport)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_REQUESTED_TRANSPORT, (uint32_t)RP_STUN_TRANSPORT_TCP << 24);
	rp_stun_wr_u32(&w, RP_STUN_ATTR_LIFETIME, life);
	rp_stun_wr_xaddr(&w, RP_STUN_ATTR_XOR_PEER_ADDRESS, &peer);
	if (has_id)
		rp_stun_wr_u32(&w, RP_STUN_ATTR_CONNECTION_ID, id);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_USERNAME, user, ul);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_REALM, realm, rl);
	rp_stun_wr_attr(&w, RP_STUN_ATTR_NONCE, nonce, nl);
	rp_stun_wr_integrity(&w, fuzz_key, sizeof(fuzz_key));
	if (fp)
		rp_stun_wr_fingerprint(&w);
	int n = rp_stun_wr_end(&w);
	if (n < 0 || rp_stun_frame_len(buf, (size_t)n, sizeof(buf)) != n)
		abort();
	if (rp_stun_parse(buf, (size_t)n, &m) || m.method != method || memcmp(m.txid, txid, sizeof(txid)) ||
	    !m.has_lifetime || m.lifetime != life || m.has_transport != transport ||
	    (transport && m.transport != RP_STUN_TRANSPORT_TCP) || m.has_connection_id != has_id ||
	    (has_id && m.connection_id != id) || !m.has_peer || m.peer.family != peer.family ||
	    m.peer.port != peer.port || memcmp(m.peer.v6, peer.v6, sizeof(peer.v6)) || m.peer.v4 != peer.v4 ||
	    m.username_len != ul || memcmp(m.username, user, ul) || m.realm_len != rl || memcmp(m.realm, realm, rl) ||
	    m.nonce_len != nl || memcmp(m.nonce, nonce, nl) || m.has_fingerprint != fp || m.n_unknown_required)
		abort();
	if (rp_stun_check_integrity(buf, (size_t)n, &m, fuzz_key, sizeof(fuzz_key)) != 0 ||
	    rp_stun_check_integrity(buf, (size_t)n, &m, fuzz_key, sizeof(fuzz_key) - 1) != -EACCES)
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
	check_turn_build(data, size);
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
			check_addr(m.has_relayed, &m.relayed);
			check_addr(m.has_peer, &m.peer);
			check_cred(m.has_username, m.username, m.username_len, RP_STUN_USERNAME_MAX);
			check_cred(m.has_realm, m.realm, m.realm_len, RP_STUN_REALM_MAX);
			check_cred(m.has_nonce, m.nonce, m.nonce_len, RP_STUN_NONCE_MAX);
			if (m.n_unknown_attrs > RP_STUN_MAX_UNKNOWN)
				abort();
			if (m.integrity_off) {
				if (!m.has_integrity || m.integrity_off < RP_STUN_HDR_LEN ||
				    (size_t)m.integrity_off + 4 + RP_STUN_MI_LEN > (size_t)fl)
					abort();
				int ci = rp_stun_check_integrity(msg, (size_t)fl, &m, fuzz_key, sizeof(fuzz_key));
				if (ci != 0 && ci != -EACCES)
					abort();
			} else if (rp_stun_check_integrity(msg, (size_t)fl, &m, fuzz_key, sizeof(fuzz_key)) != -ENOMSG) {
				abort();
			}
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
