/* SPDX-License-Identifier: MIT */
/* Rendezvous wire protocol: framing, key derivation, sealed boxes (see proto.h). */
#include "rawpunch/rendezvous/proto.h"

#include <errno.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <zxcvbn.h>

#include "userstack/extract.h"

#define RV_AD_PREFIX "rv1"
#define RV_JSON_DEPTH 8

long rv_frame_scan(const uint8_t *buf, size_t len, const uint8_t **body, size_t *body_len)
{
	struct us_cur c = us_cur_make(buf, len);
	uint32_t n = us_get_be32(&c);
	if (!us_ok(&c))
		return 0;
	if (n == 0 || n > RV_FRAME_MAX)
		return -EMSGSIZE;
	if (len - RV_HDR < n)
		return 0;
	*body = buf + RV_HDR;
	*body_len = n;
	return (long)(RV_HDR + n);
}

int rv_frame_hdr(uint8_t hdr[RV_HDR], size_t body_len)
{
	if (body_len == 0 || body_len > RV_FRAME_MAX)
		return -EMSGSIZE;
	us_put_be32(hdr, (uint32_t)body_len);
	return 0;
}

int rv_frame_json(const struct json_object *o, uint8_t **out, size_t *out_len)
{
	size_t n;
	const char *s = json_object_to_json_string_length((struct json_object *)o, JSON_C_TO_STRING_PLAIN, &n);
	uint8_t *b;
	if (!s)
		return -ENOMEM;
	if (n == 0 || n > RV_FRAME_MAX)
		return -EMSGSIZE;
	b = malloc(RV_HDR + n);
	if (!b)
		return -ENOMEM;
	rv_frame_hdr(b, n);
	memcpy(b + RV_HDR, s, n);
	*out = b;
	*out_len = RV_HDR + n;
	return 0;
}

int rv_body_parse(const uint8_t *body, size_t len, struct json_object **o, const char **type)
{
	struct json_tokener *tok;
	struct json_object *obj, *t;
	if (!body || len == 0 || len > RV_FRAME_MAX)
		return -EBADMSG;
	if (memchr(body, 0, len))
		return -EBADMSG;
	tok = json_tokener_new_ex(RV_JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, (const char *)body, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		json_object_put(obj);
		json_tokener_free(tok);
		return -EBADMSG;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, "t", &t) ||
	    !json_object_is_type(t, json_type_string) || json_object_get_string_len(t) == 0 ||
	    json_object_get_string_len(t) > 31) {
		json_object_put(obj);
		return -EBADMSG;
	}
	*o = obj;
	*type = json_object_get_string(t);
	return 0;
}

static void hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = 0;
}

static int hex_decode(uint8_t *out, size_t n, const char *s)
{
	if (!s || strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -EINVAL;
		if (i & 1)
			out[i / 2] = (uint8_t)(out[i / 2] | v);
		else
			out[i / 2] = (uint8_t)(v << 4);
	}
	return 0;
}

int rv_id_hex_valid(const char *s)
{
	uint8_t tmp[RV_ID_LEN];
	return hex_decode(tmp, sizeof(tmp), s);
}

int rv_keys_derive(const uint8_t *secret, size_t secret_len, const char *session, struct rv_keys *k)
{
	static const char label[] = "rawpunch-rv-v2";
	uint8_t master[32], salt[crypto_pwhash_SALTBYTES];
	crypto_generichash_state st;
	size_t sl = session ? strnlen(session, 256) : 0;
	if (!secret || secret_len == 0 || sl == 0 || sl > 255)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	/* salt = BLAKE2b-128(label || 0 || session): every session stretches the secret anew */
	crypto_generichash_init(&st, NULL, 0, sizeof(salt));
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label)); /* label and its NUL */
	crypto_generichash_update(&st, (const uint8_t *)session, sl);
	crypto_generichash_final(&st, salt, sizeof(salt));
	/* master = Argon2id(secret, salt): memory-hard, so each guess of a weak secret against the id
	 * (which travels in clear) or a punch ISN costs RV_KDF_MEMLIMIT of memory and ~20 ms */
	if (crypto_pwhash(master, sizeof(master), (const char *)secret, secret_len, salt, RV_KDF_OPSLIMIT,
			  RV_KDF_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13))
		return -ENOMEM;
	crypto_generichash(k->id, RV_ID_LEN, (const uint8_t *)"id", 2, master, sizeof(master));
	hex_encode(k->id_hex, k->id, RV_ID_LEN);
	crypto_kdf_derive_from_key(k->kbox, RV_KEY_LEN, 1, "rawpunch", master);
	crypto_kdf_derive_from_key(k->kpunch, sizeof(k->kpunch), 2, "rawpunch", master);
	sodium_memzero(master, sizeof(master));
	sodium_memzero(&st, sizeof(st));
	return 0;
}

/* What the character classes allow: length x log2 of the alphabet the secret's classes span, capped
 * by what its distinct bytes can carry. Blind to words and patterns; see rv_secret_bits. */
static unsigned class_bits(const uint8_t *s, size_t n)
{
	bool seen[256] = { false };
	unsigned distinct = 0, alpha = 0;
	bool digit = false, lower = false, upper = false, punct = false, high = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (!seen[c]) {
			seen[c] = true;
			distinct++;
		}
		if (c >= '0' && c <= '9')
			digit = true;
		else if (c >= 'a' && c <= 'z')
			lower = true;
		else if (c >= 'A' && c <= 'Z')
			upper = true;
		else if (c >= 0x20 && c < 0x7f)
			punct = true;
		else
			high = true;
	}
	if (high)
		alpha = 256;
	else
		alpha = (digit ? 10u : 0u) + (lower ? 26u : 0u) + (upper ? 26u : 0u) + (punct ? 33u : 0u);
	if (distinct < 2)
		return 0;
	/* a secret cannot carry more per byte than its distinct symbols allow either */
	unsigned per = alpha < 2 * distinct ? alpha : 2 * distinct;
	double bits = 0;
	for (unsigned v = per; v > 1; v >>= 1)
		bits += 1;                       /* floor(log2(per)) */
	bits *= (double)n;
	return bits > 4096 ? 4096u : (unsigned)bits;
}

/* Estimated entropy of a secret typed or generated by a person or a program. Text (printable ASCII)
 * is also scored by zxcvbn, which knows words, names, keyboard walks, dates and repeats: a passphrase
 * of four common words ("correct horse battery staple", ~70 bits by zxcvbn, ~44 as diceware counts)
 * no longer passes for 28 random characters. The lower of the two estimates counts. Anything else
 * (raw bytes) is scored by its character classes alone. */
unsigned rv_secret_bits(const uint8_t *s, size_t n)
{
	if (!s)
		return 0;
	unsigned bits = class_bits(s, n);
	bool text = n > 0;
	for (size_t i = 0; i < n && text; i++)
		text = s[i] >= 0x20 && s[i] < 0x7f;
	if (text && bits) {
		char buf[4097];
		size_t m = n < sizeof(buf) - 1 ? n : sizeof(buf) - 1;
		memcpy(buf, s, m);
		buf[m] = '\0';
		double z = ZxcvbnMatch(buf, NULL, NULL);
		sodium_memzero(buf, sizeof(buf));
		if (z >= 0 && z < (double)bits)
			bits = (unsigned)z;
	}
	return bits;
}

void rv_keys_wipe(struct rv_keys *k)
{
	sodium_memzero(k, sizeof(*k));
}

static void box_ad(const struct rv_keys *k, uint8_t ad[3 + RV_ID_LEN])
{
	memcpy(ad, RV_AD_PREFIX, 3);
	memcpy(ad + 3, k->id, RV_ID_LEN);
}

#define B64V sodium_base64_VARIANT_ORIGINAL
#define NB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AB crypto_aead_xchacha20poly1305_ietf_ABYTES

int rv_box_seal(const struct rv_keys *k, const uint8_t *pt, size_t pt_len, char **b64_out)
{
	uint8_t ad[3 + RV_ID_LEN];
	size_t clen = NB + pt_len + AB, blen;
	unsigned long long cl;
	uint8_t *c;
	char *b;
	if (pt_len > RV_BOX_MAX)
		return -EMSGSIZE;
	if (sodium_init() < 0)
		return -ENOMEM;
	c = malloc(clen);
	blen = sodium_base64_ENCODED_LEN(clen, B64V);
	b = malloc(blen);
	if (!c || !b) {
		free(c);
		free(b);
		return -ENOMEM;
	}
	box_ad(k, ad);
	randombytes_buf(c, NB);
	crypto_aead_xchacha20poly1305_ietf_encrypt(c + NB, &cl, pt, pt_len, ad, sizeof(ad), NULL, c, k->kbox);
	sodium_bin2base64(b, blen, c, NB + (size_t)cl, B64V);
	free(c);
	*b64_out = b;
	return 0;
}

int rv_box_open(const struct rv_keys *k, const char *b64, uint8_t **pt, size_t *pt_len)
{
	uint8_t ad[3 + RV_ID_LEN];
	size_t sl = b64 ? strnlen(b64, RV_FRAME_MAX + 1) : 0, bl;
	size_t cap = sl / 4 * 3 + 3;
	unsigned long long ml;
	uint8_t *c, *m;
	if (sl == 0 || sl > RV_FRAME_MAX)
		return -EBADMSG;
	if (sodium_init() < 0)
		return -ENOMEM;
	c = malloc(cap);
	if (!c)
		return -ENOMEM;
	if (sodium_base642bin(c, cap, b64, sl, NULL, &bl, NULL, B64V) != 0 || bl < NB + AB ||
	    bl - NB - AB > RV_BOX_MAX) {
		free(c);
		return -EBADMSG;
	}
	m = malloc(bl - NB - AB + 1);
	if (!m) {
		free(c);
		return -ENOMEM;
	}
	box_ad(k, ad);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(m, &ml, NULL, c + NB, bl - NB, ad, sizeof(ad), c,
						       k->kbox) != 0) {
		free(c);
		free(m);
		return -EBADMSG;
	}
	free(c);
	m[ml] = 0;
	*pt = m;
	*pt_len = (size_t)ml;
	return 0;
}

void rv_peerstate_init(struct rv_peerstate *ps)
{
	memset(ps, 0, sizeof(*ps));
	if (sodium_init() >= 0)
		randombytes_buf(ps->mine, sizeof(ps->mine));
}

struct json_object *rv_msg_wrap(struct rv_peerstate *ps, const char *type, const struct json_object *obj)
{
	char from[2 * RV_NONCE_LEN + 1], to[2 * RV_NONCE_LEN + 1] = "";
	struct json_object *o;
	size_t tl = type ? strnlen(type, 32) : 0;
	if (tl == 0 || tl > 31 || (obj && !json_object_is_type(obj, json_type_object)))
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	if (obj) {
		json_object_object_foreach((struct json_object *)obj, key, val) {
			if (!strcmp(key, "t") || !strcmp(key, "from") || !strcmp(key, "to") || !strcmp(key, "ctr"))
				continue;
			json_object_object_add(o, key, json_object_get(val));
		}
	}
	hex_encode(from, ps->mine, RV_NONCE_LEN);
	if (ps->have_theirs)
		hex_encode(to, ps->theirs, RV_NONCE_LEN);
	json_object_object_add(o, "t", json_object_new_string(type));
	json_object_object_add(o, "from", json_object_new_string(from));
	json_object_object_add(o, "to", json_object_new_string(to));
	json_object_object_add(o, "ctr", json_object_new_int64((int64_t)++ps->send_ctr));
	return o;
}

int rv_msg_check(struct rv_peerstate *ps, const uint8_t *pt, size_t pt_len, struct json_object **out,
		 const char **type)
{
	struct json_object *o, *jf, *jt, *jc;
	const char *t;
	uint8_t from[RV_NONCE_LEN], to[RV_NONCE_LEN];
	int64_t ctr;
	int r = rv_body_parse(pt, pt_len, &o, &t);
	if (r)
		return r == -ENOMEM ? r : -EBADMSG;
	if (!json_object_object_get_ex(o, "from", &jf) || !json_object_is_type(jf, json_type_string) ||
	    !json_object_object_get_ex(o, "to", &jt) || !json_object_is_type(jt, json_type_string) ||
	    !json_object_object_get_ex(o, "ctr", &jc) || !json_object_is_type(jc, json_type_int) ||
	    hex_decode(from, sizeof(from), json_object_get_string(jf))) {
		r = -EBADMSG;
		goto bad;
	}
	ctr = json_object_get_int64(jc);
	if (ctr <= 0) {
		r = -EBADMSG;
		goto bad;
	}
	if (!memcmp(from, ps->mine, RV_NONCE_LEN)) {
		r = -EPERM;            /* our own box reflected back */
		goto bad;
	}
	bool hello = json_object_get_string_len(jt) == 0;
	if (hello) {
		if (strcmp(t, "hello")) {
			r = -EPERM;
			goto bad;
		}
	} else if (hex_decode(to, sizeof(to), json_object_get_string(jt))) {
		r = -EBADMSG;
		goto bad;
	} else if (memcmp(to, ps->mine, RV_NONCE_LEN)) {
		r = -EPERM;            /* for someone else, or from an earlier run */
		goto bad;
	}
	bool same = ps->have_theirs && !memcmp(from, ps->theirs, RV_NONCE_LEN);
	if (ps->pinned) {
		if (!same) {
			r = -EPERM;    /* another sender once the peer is known */
			goto bad;
		}
		if (hello) {
			r = -EALREADY; /* a hello after the peer is known is stale */
			goto bad;
		}
	}
	/* a hello proves nothing about freshness (an old run's hello can be replayed): until a box
	 * addressed to our fresh nonce pins the peer, a new sender's hello or box replaces the old one */
	if (same && (uint64_t)ctr <= ps->recv_ctr) {
		r = -EALREADY;
		goto bad;
	}
	memcpy(ps->theirs, from, RV_NONCE_LEN);
	ps->have_theirs = 1;
	if (!hello)
		ps->pinned = 1;
	ps->recv_ctr = (uint64_t)ctr;
	*out = o;
	*type = t;
	return 0;
bad:
	json_object_put(o);
	return r;
}

int rv_clock_sample(uint64_t t1, uint64_t t2, uint64_t t3, uint64_t t4, struct rv_clock_sample *s)
{
	/* t2/t3 come from the (untrusted) server: keep every stamp below 2^62 ns (year 2116) so the
	 * signed differences below, and real_ns() + offset later, cannot overflow */
	if (t1 > RV_CLOCK_T_MAX || t2 > RV_CLOCK_T_MAX || t3 > RV_CLOCK_T_MAX || t4 > RV_CLOCK_T_MAX ||
	    t4 < t1 || t3 < t2)
		return -EINVAL;
	/* signed differences: the two clocks may be far apart either way */
	int64_t d1 = (int64_t)t2 - (int64_t)t1, d2 = (int64_t)t3 - (int64_t)t4;
	s->offset_ns = d1 / 2 + d2 / 2;
	s->rtt_ns = (int64_t)(t4 - t1) - (int64_t)(t3 - t2);
	if (s->rtt_ns < 0)
		s->rtt_ns = 0;
	return 0;
}

int rv_clock_estimate(const struct rv_clock_sample *s, int n, struct rv_clock_est *out)
{
	int best = -1;
	if (!s || !out || n < 1)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (s[i].rtt_ns >= 0 && (best < 0 || s[i].rtt_ns < s[best].rtt_ns))
			best = i;
	if (best < 0)
		return -EINVAL;
	int64_t rtt = s[best].rtt_ns, off = s[best].offset_ns;
	int64_t near = rtt / 10 > 500000 ? rtt / 10 : 500000;
	int64_t lo = off, hi = off;
	int used = 0;
	for (int i = 0; i < n; i++) {
		if (s[i].rtt_ns < 0 || s[i].rtt_ns - rtt > near)
			continue;
		used++;
		if (s[i].offset_ns < lo)
			lo = s[i].offset_ns;
		if (s[i].offset_ns > hi)
			hi = s[i].offset_ns;
	}
	if (off > RV_CLOCK_OFFSET_MAX || off < -RV_CLOCK_OFFSET_MAX)
		return -ERANGE;
	out->offset_ns = off;
	out->rtt_ns = rtt;
	out->bound_ns = rtt / 2;
	out->err_ns = rtt / 20 + (hi - lo) / 2 + 100000;
	if (out->err_ns > out->bound_ns && out->bound_ns > 0)
		out->err_ns = out->bound_ns;
	out->n = used;
	return 0;
}
