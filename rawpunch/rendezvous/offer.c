/* SPDX-License-Identifier: MIT */
/* Serverless offer/answer texts: a sealed compact blob (see offer.h). */
#include "rawpunch/rendezvous/offer.h"
#include "rawpunch/rendezvous/offer-internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "userstack/extract.h"

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
/* The low n (1, 2, 4 or 8) bytes of v, big-endian. */
static void put_be(struct wbuf *w, uint64_t v, size_t n)
{
	uint8_t b[8];
	us_put_be64(b, v);
	put(w, b + 8 - n, n);
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
	put_be(&w, BLOB_VERSION, 1);
	put_be(&w, (uint8_t)o->kind, 1);
	put(&w, nonce, sizeof(nonce));
	put_be(&w, o->created_ns, 8);
	put_be(&w, o->start_ns, 8);
	put(&w, &ni->local_addr, 4);      /* network order as is */
	put_be(&w, ni->local_port, 2);
	put(&w, &ni->mapped_addr, 4);
	put_be(&w, ni->mapped_port, 2);
	put_be(&w, (uint8_t)((ni->behind_nat ? 1 : 0) | (ni->has_delta ? 2 : 0)), 1);
	put_be(&w, (uint8_t)ni->mapping, 1);
	put_be(&w, (uint8_t)ni->alloc, 1);
	put_be(&w, (uint8_t)ni->filtering, 1);
	put_be(&w, ni->nat_ttl, 1);
	put_be(&w, (uint32_t)ni->delta, 4);
	put_be(&w, jit > 4e9 ? 4000000000u : (uint32_t)lround(jit), 4);
	put_be(&w, (uint16_t)lround((conf > 1 ? 1 : conf) * 10000.0), 2);
	put_be(&w, (uint8_t)npred, 1);
	for (unsigned i = 0; i < npred; i++)
		put_be(&w, ni->predicted[i], 2);
	put_be(&w, (uint8_t)o->n_cand, 1);
	for (unsigned i = 0; i < o->n_cand; i++)
		put_be(&w, o->cand[i], 2);
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
	struct us_cur rb = us_cur_make(blob, n);
	struct rp_offer x;
	struct rp_natinfo *ni = &x.ni;
	memset(&x, 0, sizeof(x));
	if (us_get_u8(&rb) != BLOB_VERSION || us_get_u8(&rb) != (uint8_t)kind)
		return -EPROTO;
	x.kind = kind;
	us_get_copy(&rb, x.nonce, sizeof(x.nonce));
	x.created_ns = us_get_be64(&rb);
	x.start_ns = us_get_be64(&rb);
	us_get_copy(&rb, &ni->local_addr, 4);   /* network order as is */
	ni->local_port = us_get_be16(&rb);
	us_get_copy(&rb, &ni->mapped_addr, 4);
	ni->mapped_port = us_get_be16(&rb);
	uint8_t flags = us_get_u8(&rb), map = us_get_u8(&rb), alloc = us_get_u8(&rb), filt = us_get_u8(&rb);
	ni->nat_ttl = us_get_u8(&rb);
	ni->delta = (int32_t)us_get_be32(&rb);
	ni->jitter = us_get_be32(&rb) / 1000.0;
	uint16_t conf = us_get_be16(&rb);
	unsigned npred = us_get_u8(&rb);
	if (!us_ok(&rb) || flags > 3 || map > RP_MAP_APD || alloc > RP_ALLOC_RANDOM || filt > RP_FILTER_OPEN ||
	    conf > 10000 || npred > RP_OFFER_MAX_CAND)
		return -EPROTO;
	ni->behind_nat = flags & 1;
	ni->has_delta = (flags & 2) != 0;
	ni->mapping = (enum rp_mapping)map;
	ni->alloc = (enum rp_alloc)alloc;
	ni->filtering = (enum rp_filter)filt;
	ni->confidence = conf / 10000.0;
	for (unsigned i = 0; i < npred; i++)
		ni->predicted[i] = us_get_be16(&rb);
	ni->n_predicted = npred;
	x.n_cand = us_get_u8(&rb);
	if (!us_ok(&rb) || x.n_cand > RP_OFFER_MAX_CAND)
		return -EPROTO;
	for (unsigned i = 0; i < x.n_cand; i++)
		x.cand[i] = us_get_be16(&rb);
	if (!us_ok(&rb) || us_left(&rb) != 0 || (!ni->has_delta && ni->delta != 0))
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

const char *rp_offer_strerror(int r)
{
	switch (r) {
	case -EINVAL: return "not an offer/answer text";
	case -EBADMSG: return "it does not authenticate (a different secret, or altered)";
	case -EPROTO: return "authentic but malformed";
	case -EPERM: return "it answers another offer";
	case -ESTALE: return "too old, or its start time has passed";
	default: return strerror(-r);
	}
}
