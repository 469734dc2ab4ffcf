/* SPDX-License-Identifier: MIT */
#include "rawpunch/rendezvous/offer.h"
#include "rawpunch/rendezvous/offer-internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#define OFFER_PREFIX "rpo1."
#define ANSWER_PREFIX "rpa1."
#define PREFIX_LEN 5
#define BLOB_VERSION 1
#define BLOB_MAX (63 + 4 * RP_OFFER_MAX_CAND + 8)
#define NB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AB crypto_aead_xchacha20poly1305_ietf_ABYTES
#define B64V sodium_base64_VARIANT_URLSAFE_NO_PADDING

struct wbuf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct wbuf *w, const void *v, size_t n)
{
	if (w->n + n <= w->cap)
		memcpy(w->p + w->n, v, n);
	w->n += n;
}
static void put8(struct wbuf *w, uint8_t v) { put(w, &v, 1); }
static void put16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(w, b, 2);
}
static void put32(struct wbuf *w, uint32_t v)
{
	put16(w, (uint16_t)(v >> 16));
	put16(w, (uint16_t)v);
}
static void put64(struct wbuf *w, uint64_t v)
{
	put32(w, (uint32_t)(v >> 32));
	put32(w, (uint32_t)v);
}

struct rbuf {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

static const uint8_t *get(struct rbuf *r, size_t n)
{
	if (r->bad || r->n - r->off < n) {
		r->bad = true;
		return NULL;
	}
	r->off += n;
	return r->p + r->off - n;
}
static uint8_t get8(struct rbuf *r)
{
	const uint8_t *b = get(r, 1);
	return b ? b[0] : 0;
}
static uint16_t get16(struct rbuf *r)
{
	const uint8_t *b = get(r, 2);
	return b ? (uint16_t)(b[0] << 8 | b[1]) : 0;
}
static uint32_t get32(struct rbuf *r)
{
	uint32_t hi = get16(r);
	return hi << 16 | get16(r);
}
static uint64_t get64(struct rbuf *r)
{
	uint64_t hi = get32(r);
	return hi << 32 | get32(r);
}

static int offer_key(const uint8_t *secret, size_t secret_len, uint8_t key[32])
{
	static const char label[] = "rawpunch-offer-v1";
	uint8_t k[crypto_generichash_KEYBYTES_MAX];
	size_t kl = secret_len;
	if (!secret || secret_len == 0)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	if (secret_len > sizeof(k)) {
		crypto_generichash(k, sizeof(k), secret, secret_len, NULL, 0);
		kl = sizeof(k);
	} else {
		memcpy(k, secret, secret_len);
	}
	crypto_generichash(key, 32, (const uint8_t *)label, sizeof(label) - 1, k, kl);
	sodium_memzero(k, sizeof(k));
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

void rp_offer_init(struct rp_offer *o, enum rp_offer_kind kind, uint64_t now_ns)
{
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->created_ns = now_ns;
	if (kind == RP_OFFER && sodium_init() >= 0)
		do
			randombytes_buf(o->nonce, sizeof(o->nonce));
		while (all_zero(o->nonce, sizeof(o->nonce)));
}

int rp_offer_encode(const struct rp_offer *o, const uint8_t *secret, size_t secret_len, char *text, size_t cap)
{
	uint8_t blob[BLOB_MAX], key[32], sealed[NB + BLOB_MAX + AB], nonce[16];
	struct wbuf w = { blob, 0, sizeof(blob) };
	const struct rp_natinfo *ni = &o->ni;
	const char *prefix;
	unsigned long long cl;
	int r;
	if (!o || (o->kind != RP_OFFER && o->kind != RP_ANSWER) || o->n_cand > RP_OFFER_MAX_CAND ||
	    ni->n_predicted > RP_MAX_PREDICT || !text)
		return -EINVAL;
	if ((r = offer_key(secret, secret_len, key)))
		return r;
	prefix = o->kind == RP_OFFER ? OFFER_PREFIX : ANSWER_PREFIX;
	memcpy(nonce, o->nonce, sizeof(nonce));
	if (all_zero(nonce, sizeof(nonce))) {
		sodium_memzero(key, sizeof(key));
		return -EINVAL;
	}
	unsigned npred = ni->n_predicted < RP_OFFER_MAX_CAND ? ni->n_predicted : RP_OFFER_MAX_CAND;
	double jit = ni->jitter > 0 && isfinite(ni->jitter) ? ni->jitter * 1000.0 : 0;
	double conf = ni->confidence > 0 && isfinite(ni->confidence) ? ni->confidence : 0;
	put8(&w, BLOB_VERSION);
	put8(&w, (uint8_t)o->kind);
	put(&w, nonce, sizeof(nonce));
	put64(&w, o->created_ns);
	put64(&w, o->start_ns);
	put(&w, &ni->local_addr, 4);      /* network order as is */
	put16(&w, ni->local_port);
	put(&w, &ni->mapped_addr, 4);
	put16(&w, ni->mapped_port);
	put8(&w, (uint8_t)((ni->behind_nat ? 1 : 0) | (ni->has_delta ? 2 : 0)));
	put8(&w, (uint8_t)ni->mapping);
	put8(&w, (uint8_t)ni->alloc);
	put8(&w, (uint8_t)ni->filtering);
	put8(&w, ni->nat_ttl);
	put32(&w, (uint32_t)ni->delta);
	put32(&w, jit > 4e9 ? 4000000000u : (uint32_t)lround(jit));
	put16(&w, (uint16_t)lround((conf > 1 ? 1 : conf) * 10000.0));
	put8(&w, (uint8_t)npred);
	for (unsigned i = 0; i < npred; i++)
		put16(&w, ni->predicted[i]);
	put8(&w, (uint8_t)o->n_cand);
	for (unsigned i = 0; i < o->n_cand; i++)
		put16(&w, o->cand[i]);
	if (w.n > w.cap)
		return -EINVAL;
	randombytes_buf(sealed, NB);
	crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NB, &cl, blob, w.n, (const uint8_t *)prefix, PREFIX_LEN,
						   NULL, sealed, key);
	sodium_memzero(key, sizeof(key));
	size_t need = PREFIX_LEN + sodium_base64_ENCODED_LEN(NB + (size_t)cl, B64V);
	if (cap < need)
		return -ENOSPC;
	memcpy(text, prefix, PREFIX_LEN);
	sodium_bin2base64(text + PREFIX_LEN, cap - PREFIX_LEN, sealed, NB + (size_t)cl, B64V);
	return (int)strlen(text);
}

int rp_offer_decode(const char *text, const uint8_t *secret, size_t secret_len, struct rp_offer *o)
{
	uint8_t sealed[NB + BLOB_MAX + AB], blob[BLOB_MAX], key[32];
	size_t sl, bl;
	unsigned long long ml;
	enum rp_offer_kind kind;
	int r;
	if (!text || !o)
		return -EINVAL;
	while (isspace((unsigned char)*text))
		text++;
	sl = strnlen(text, 4096);
	while (sl && isspace((unsigned char)text[sl - 1]))
		sl--;
	if (sl <= PREFIX_LEN || sl >= 4096)
		return -EINVAL;
	if (!memcmp(text, OFFER_PREFIX, PREFIX_LEN))
		kind = RP_OFFER;
	else if (!memcmp(text, ANSWER_PREFIX, PREFIX_LEN))
		kind = RP_ANSWER;
	else
		return -EINVAL;
	if ((r = offer_key(secret, secret_len, key)))
		return r;
	if (sodium_base642bin(sealed, sizeof(sealed), text + PREFIX_LEN, sl - PREFIX_LEN, NULL, &bl, NULL, B64V) ||
	    bl < NB + AB) {
		sodium_memzero(key, sizeof(key));
		return -EINVAL;
	}
	r = crypto_aead_xchacha20poly1305_ietf_decrypt(blob, &ml, NULL, sealed + NB, bl - NB, (const uint8_t *)text,
						       PREFIX_LEN, sealed, key);
	sodium_memzero(key, sizeof(key));
	if (r)
		return -EBADMSG;
	r = rp_offer_blob_parse_(blob, (size_t)ml, kind, o);
	sodium_memzero(blob, sizeof(blob));
	return r;
}

int rp_offer_blob_parse_(const uint8_t *blob, size_t n, enum rp_offer_kind kind, struct rp_offer *o)
{
	struct rbuf rb = { blob, n, 0, false };
	struct rp_offer x;
	struct rp_natinfo *ni = &x.ni;
	memset(&x, 0, sizeof(x));
	if (get8(&rb) != BLOB_VERSION || get8(&rb) != (uint8_t)kind)
		return -EPROTO;
	x.kind = kind;
	const uint8_t *p = get(&rb, 16);
	if (p)
		memcpy(x.nonce, p, 16);
	x.created_ns = get64(&rb);
	x.start_ns = get64(&rb);
	if ((p = get(&rb, 4)))
		memcpy(&ni->local_addr, p, 4);
	ni->local_port = get16(&rb);
	if ((p = get(&rb, 4)))
		memcpy(&ni->mapped_addr, p, 4);
	ni->mapped_port = get16(&rb);
	uint8_t flags = get8(&rb), map = get8(&rb), alloc = get8(&rb), filt = get8(&rb);
	ni->nat_ttl = get8(&rb);
	ni->delta = (int32_t)get32(&rb);
	ni->jitter = get32(&rb) / 1000.0;
	uint16_t conf = get16(&rb);
	unsigned npred = get8(&rb);
	if (rb.bad || flags > 3 || map > RP_MAP_APD || alloc > RP_ALLOC_RANDOM || filt > RP_FILTER_OPEN ||
	    conf > 10000 || npred > RP_OFFER_MAX_CAND)
		return -EPROTO;
	ni->behind_nat = flags & 1;
	ni->has_delta = (flags & 2) != 0;
	ni->mapping = (enum rp_mapping)map;
	ni->alloc = (enum rp_alloc)alloc;
	ni->filtering = (enum rp_filter)filt;
	ni->confidence = conf / 10000.0;
	for (unsigned i = 0; i < npred; i++)
		ni->predicted[i] = get16(&rb);
	ni->n_predicted = npred;
	x.n_cand = get8(&rb);
	if (rb.bad || x.n_cand > RP_OFFER_MAX_CAND)
		return -EPROTO;
	for (unsigned i = 0; i < x.n_cand; i++)
		x.cand[i] = get16(&rb);
	if (rb.bad || rb.off != rb.n || (!ni->has_delta && ni->delta != 0))
		return -EPROTO;
	*o = x;
	return 0;
}

int rp_offer_match(const struct rp_offer *offer, const struct rp_offer *answer)
{
	if (!offer || !answer || offer->kind != RP_OFFER || answer->kind != RP_ANSWER)
		return -EPERM;
	return sodium_memcmp(offer->nonce, answer->nonce, sizeof(offer->nonce)) ? -EPERM : 0;
}

int rp_offer_fresh(const struct rp_offer *o, uint64_t now_ns, unsigned max_age_s)
{
	uint64_t age = (uint64_t)max_age_s * 1000000000u;
	if (!o || o->created_ns > now_ns + 60000000000ull)   /* created more than 60 s in the future */
		return -ESTALE;
	if (now_ns > o->created_ns && now_ns - o->created_ns > age)
		return -ESTALE;
	if (o->start_ns < now_ns)
		return -ESTALE;
	return 0;
}
