/* SPDX-License-Identifier: MIT */
/* Burst sender: template re-stamping, AF_PACKET sendmmsg batches or libnet writes, pacing, threads. */
#include "rawpunch/net/burst.h"

#include <errno.h>
#include <libnet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/net/pace.h"
#include "rawpunch/net/permute.h"
#include "rawpunch/base/clock.h"

#define BATCH_DEFAULT 64u
#define BATCH_MAX 1024u
#define THREADS_MAX 64u

/* ---------- checksums (RFC 1071, RFC 1624) ---------- */

static inline uint16_t fold(uint32_t s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

uint16_t rp_csum(const void *data, size_t len, uint32_t partial)
{
	const uint8_t *p = data;
	uint64_t s = partial;
	while (len > 1) {
		s += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

uint16_t rp_csum_update16(uint16_t csum, uint16_t old, uint16_t new_)
{
	/* HC' = ~(~HC + ~m + m') */
	uint32_t s = (uint16_t)~csum + (uint32_t)(uint16_t)~old + new_;
	return (uint16_t)~fold(s);
}

uint16_t rp_csum_update32(uint16_t csum, uint32_t old, uint32_t new_)
{
	uint32_t s = (uint16_t)~csum;
	s += (uint16_t)~(old >> 16);
	s += (uint16_t)~old;
	s += new_ >> 16;
	s += new_ & 0xffff;
	return (uint16_t)~fold(s);
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* ---------- template ---------- */

int rp_tmpl_from_ip(struct rp_tmpl *t, const uint8_t *ip, size_t len)
{
	size_t ihl, thl, tot;

	if (!t || !ip || len < 40 || len > RP_TMPL_MAX - RP_ETH_HLEN)
		return -EINVAL;
	if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_TCP)
		return -EINVAL;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	tot = rd16(ip + 2);
	if (ihl < 20 || tot != len || ihl + 20 > len)
		return -EINVAL;
	if (rd16(ip + 6) & 0x3fff)        /* MF or a fragment offset */
		return -EINVAL;
	thl = (size_t)(ip[ihl + 12] >> 4) * 4;
	if (thl < 20 || ihl + thl > len)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	memcpy(t->frame, ip, len);
	t->len = len;
	t->l3off = 0;
	t->l4off = ihl;
	memcpy(&t->saddr, ip + 12, 4);
	memcpy(&t->daddr, ip + 16, 4);
	t->ip_id = rd16(ip + 4);
	t->sport = rd16(ip + ihl);
	t->dport = rd16(ip + ihl + 2);
	t->seq = rd32(ip + ihl + 4);
	/* ~HC + ~m for every field stamp() rewrites; per packet only + m' and a fold remain */
	t->ip_base = (uint16_t)~rd16(ip + 10) + (uint32_t)(uint16_t)~t->ip_id;
	t->tcp_base = (uint16_t)~rd16(ip + ihl + 16) + (uint32_t)(uint16_t)~t->sport +
		      (uint16_t)~t->dport + (uint16_t)~(t->seq >> 16) + (uint16_t)~t->seq;
	return 0;
}

void rp_tmpl_set_eth(struct rp_tmpl *t, const uint8_t dst_mac[6], const uint8_t src_mac[6])
{
	if (t->l3off == 0) {
		memmove(t->frame + RP_ETH_HLEN, t->frame, t->len);
		t->len += RP_ETH_HLEN;
		t->l4off += RP_ETH_HLEN;
		t->l3off = RP_ETH_HLEN;
	}
	memcpy(t->frame, dst_mac, 6);
	memcpy(t->frame + 6, src_mac, 6);
	t->frame[12] = 0x08;
	t->frame[13] = 0x00;
}

void rp_tmpl_stamp(const struct rp_tmpl *t, uint8_t *ip, uint16_t sport, uint16_t dport,
		   uint32_t seq, uint16_t ip_id)
{
	uint8_t *tcp = ip + (t->l4off - t->l3off);
	uint32_t s;

	wr16(ip + 4, ip_id);
	wr16(ip + 10, (uint16_t)~fold(t->ip_base + ip_id));
	wr16(tcp, sport);
	wr16(tcp + 2, dport);
	wr32(tcp + 4, seq);
	s = t->tcp_base + sport + dport + (seq >> 16) + (seq & 0xffff);
	wr16(tcp + 16, (uint16_t)~fold(s));
}

/* ---------- pair sets ---------- */

static uint32_t plist_n(const struct rp_portlist *l)
{
	if (l->list)
		return l->n;
	return l->lo <= l->hi ? (uint32_t)(l->hi - l->lo) + 1 : 0;
}

static inline uint16_t plist_at(const struct rp_portlist *l, uint32_t k)
{
	return l->list ? l->list[k] : (uint16_t)(l->lo + k);
}

static uint64_t pairs_per_pass(const struct rp_pairset *s)
{
	if (s->pairs)
		return s->n_pairs;
	return (uint64_t)plist_n(&s->dports) * plist_n(&s->sports);
}

uint64_t rp_pairset_total(const struct rp_pairset *s)
{
	uint64_t p = pairs_per_pass(s), r = s->repeat ? s->repeat : 1;
	if (p == 0 || p > (1ull << 32) || r > UINT64_MAX / p)
		return 0;
	return p * r;
}

/* Walks a pair set; caches the current pass (no division while i stays in it) and its permutation. */
struct walker {
	const struct rp_pairset *s;
	uint64_t per_pass;
	uint32_t ns;
	uint64_t pass, pass_lo;   /* current pass and its first index */
	bool have_pass;
	struct rp_perm perm;
};

static void walker_init(struct walker *w, const struct rp_pairset *s)
{
	memset(w, 0, sizeof(*w));
	w->s = s;
	w->per_pass = pairs_per_pass(s);
	w->ns = s->pairs ? 1 : plist_n(&s->sports);
}

static inline void walker_at(struct walker *w, uint64_t i, uint16_t *sport, uint16_t *dport)
{
	const struct rp_pairset *s = w->s;
	uint64_t j;

	if (!w->have_pass || i < w->pass_lo || i - w->pass_lo >= w->per_pass) {
		w->pass = i / w->per_pass;
		w->pass_lo = w->pass * w->per_pass;
		w->have_pass = true;
		if (s->random_order)
			rp_perm_init(&w->perm, w->per_pass, s->seed + w->pass);
	}
	j = i - w->pass_lo;
	if (s->random_order)
		j = rp_perm_at(&w->perm, j);
	if (s->pairs) {
		*sport = s->pairs[j].sport;
		*dport = s->pairs[j].dport;
	} else if (w->ns == 1) {
		*sport = plist_at(&s->sports, 0);
		*dport = plist_at(&s->dports, (uint32_t)j);
	} else {
		*sport = plist_at(&s->sports, (uint32_t)(j % w->ns));
		*dport = plist_at(&s->dports, (uint32_t)(j / w->ns));
	}
}

void rp_pairset_at(const struct rp_pairset *s, uint64_t i, uint16_t *sport, uint16_t *dport)
{
	struct walker w;
	walker_init(&w, s);
	if (w.per_pass == 0) {
		*sport = *dport = 0;
		return;
	}
	walker_at(&w, i, sport, dport);
}

/* ---------- ISN cookie, specialised ----------
 * us_cookie() is SipHash-2-4 (libsodium) over the 12 bytes laddr(4) lport(2) raddr(4) rport(2).
 * Here the same function is computed inline with what does not change precomputed: the key
 * schedule once per burst, and the first 8-byte block (laddr, lport, raddr[0..1]) once per source
 * port, so a packet costs one compression of the last block and the finalisation.
 * test_burst checks the result against us_cookie(). */
struct cookie_pre {
	uint64_t k[4];            /* v0..v3 after the key */
	uint16_t sport;
	bool have;
	uint64_t b[4];            /* v0..v3 after the first block, for sport */
	uint32_t laddr, raddr;
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void cookie_pre_init(struct cookie_pre *cp, const uint8_t key[US_COOKIE_KEYLEN], uint32_t laddr,
			    uint32_t raddr)
{
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	memset(cp, 0, sizeof(*cp));
	cp->k[0] = k0 ^ 0x736f6d6570736575ull;
	cp->k[1] = k1 ^ 0x646f72616e646f6dull;
	cp->k[2] = k0 ^ 0x6c7967656e657261ull;
	cp->k[3] = k1 ^ 0x7465646279746573ull;
	cp->laddr = laddr;
	cp->raddr = raddr;
}

static inline uint32_t cookie_fast(struct cookie_pre *cp, uint16_t lport, uint16_t rport)
{
	const uint8_t *la = (const uint8_t *)&cp->laddr, *ra = (const uint8_t *)&cp->raddr;
	uint64_t v0, v1, v2, v3, m;

	if (!cp->have || cp->sport != lport) {
		uint8_t blk[8] = { la[0], la[1], la[2], la[3], (uint8_t)(lport >> 8), (uint8_t)lport, ra[0], ra[1] };
		m = le64(blk);
		v0 = cp->k[0]; v1 = cp->k[1]; v2 = cp->k[2]; v3 = cp->k[3];
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
		cp->b[0] = v0; cp->b[1] = v1; cp->b[2] = v2; cp->b[3] = v3;
		cp->sport = lport;
		cp->have = true;
	}
	v0 = cp->b[0]; v1 = cp->b[1]; v2 = cp->b[2]; v3 = cp->b[3];
	/* last block: ra[2], ra[3], rport (big-endian), 4 zero bytes, then the length 12 in the top byte */
	m = (uint64_t)ra[2] | (uint64_t)ra[3] << 8 | (uint64_t)(rport >> 8) << 16 | (uint64_t)(rport & 0xff) << 24 |
	    (uint64_t)12 << 56;
	v3 ^= m;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return (uint32_t)(v0 ^ v1 ^ v2 ^ v3);
}

/* ---------- per-packet fields ---------- */

static inline uint16_t ipid_hash(uint64_t seed, uint64_t i)
{
	uint64_t z = seed ^ (i * 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
	return (uint16_t)(z ^ (z >> 33));
}

static inline void stamp_index(const struct rp_burst_cfg *c, struct walker *w, struct cookie_pre *cp,
			       uint64_t i, uint8_t *ip)
{
	const struct rp_tmpl *t = c->tmpl;
	uint16_t sport, dport, id;
	uint32_t seq;

	walker_at(w, i, &sport, &dport);
	seq = c->seq_mode == RP_SEQ_COOKIE ? cookie_fast(cp, sport, dport) : t->seq;
	switch (c->ipid_mode) {
	case RP_IPID_INC:
		id = (uint16_t)(t->ip_id + i);
		break;
	case RP_IPID_RANDOM:
		id = ipid_hash(c->ipid_seed, i);
		break;
	default:
		id = t->ip_id;
		break;
	}
	rp_tmpl_stamp(t, ip, sport, dport, seq, id);
}

static int check_cfg(const struct rp_burst_cfg *c)
{
	if (!c || !c->tmpl || c->tmpl->len == 0 || rp_pairset_total(&c->set) == 0)
		return -EINVAL;
	if (c->set.pairs == NULL && ((c->set.dports.list && !c->set.dports.n) ||
				     (c->set.sports.list && !c->set.sports.n)))
		return -EINVAL;
	if (c->engine != RP_ENGINE_AFPACKET && c->engine != RP_ENGINE_LIBNET)
		return -EINVAL;
	if (c->engine == RP_ENGINE_AFPACKET && (c->tmpl->l3off != RP_ETH_HLEN || c->ifindex <= 0))
		return -EINVAL;
	if (c->threads > THREADS_MAX || c->batch > BATCH_MAX)
		return -EINVAL;
	return 0;
}

int rp_burst_render(const struct rp_burst_cfg *c, uint64_t i, uint8_t *buf, size_t cap)
{
	struct walker w;
	struct cookie_pre cp;
	size_t iplen;

	if (!c || !c->tmpl || c->tmpl->len == 0 || rp_pairset_total(&c->set) == 0 || !buf)
		return -EINVAL;
	if (i >= rp_pairset_total(&c->set))
		return -EINVAL;
	iplen = c->tmpl->len - c->tmpl->l3off;
	if (cap < iplen)
		return -ENOSPC;
	memcpy(buf, c->tmpl->frame + c->tmpl->l3off, iplen);
	walker_init(&w, &c->set);
	cookie_pre_init(&cp, c->cookie_key, c->tmpl->saddr, c->tmpl->daddr);
	stamp_index(c, &w, &cp, i, buf);
	return (int)iplen;
}

int rp_burst_route(uint32_t daddr, const char *iface, struct rp_route *rt)
{
	int err;

	memset(rt, 0, sizeof(*rt));
	err = rp_route_get(daddr, rt);
	if (iface) {
		uint8_t mac[6];
		int ifindex, mtu;
		int e2 = rp_iface_info(iface, &ifindex, &mtu, mac);
		if (e2)
			return e2;
		if (err || ifindex != rt->ifindex) {
			/* not the route's interface: the destination is taken as on-link out of iface */
			rt->dst = daddr;
			rt->ifindex = ifindex;
			snprintf(rt->ifname, sizeof(rt->ifname), "%s", iface);
			memcpy(rt->if_mac, mac, 6);
			rt->mtu = mtu;
			rt->nexthop = daddr;
			rt->gateway = 0;
			rt->has_nexthop_mac = false;
		}
		return 0;
	}
	return err;
}

int rp_tmpl_from_seg(struct rp_tmpl *t, const struct rp_seg *seg)
{
	struct rp_craft *cr;
	uint8_t pkt[RP_TMPL_MAX];
	int n, err = rp_craft_open(&cr, RP_CRAFT_NOSEND, NULL, 0);

	if (err)
		return err;
	n = rp_craft_render(cr, seg, pkt, sizeof(pkt) - RP_ETH_HLEN);
	rp_craft_close(cr);
	if (n < 0)
		return n;
	return rp_tmpl_from_ip(t, pkt, (size_t)n);
}

int rp_burst_attach(struct rp_burst_cfg *c, struct rp_tmpl *t, struct rp_route *rt, const uint8_t *dst_mac,
		    bool prime)
{
	if (!c || !t || !rt || rt->ifindex <= 0 || t->len == 0)
		return -EINVAL;
	if (!dst_mac) {
		if (!rt->has_nexthop_mac) {
			int err = rp_route_resolve_mac(rt, prime, 1000);
			if (err)
				return err;
			if (!rt->has_nexthop_mac)
				return -EHOSTUNREACH;
		}
		dst_mac = rt->nexthop_mac;
	}
	rp_tmpl_set_eth(t, dst_mac, rt->if_mac);
	c->tmpl = t;
	c->ifindex = rt->ifindex;
	return 0;
}

uint64_t rp_burst_now_ns(void)
{
	return rp_mono_ns();
}

/* ---------- senders ---------- */

/* Senders tell the reporting thread they finished, so it can sleep until then (no polling: on a
 * two-core machine a thread that wakes every few ms costs the senders measurable throughput). */
struct donesig {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ndone;
};

struct sender {
	const struct rp_burst_cfg *c;
	struct donesig *ds;
	unsigned id, nthreads;
	uint64_t rate;
	uint64_t start_ns;
	atomic_int *quit;           /* internal stop: callback asked, or a fatal error */
	int fd;                     /* AF_PACKET socket */
	libnet_t *ln;
	pthread_t th;
	/* written by the sender, read by the reporter */
	_Alignas(64) _Atomic uint64_t sent;
	_Atomic uint64_t errors;
	_Atomic int last_err;
	_Atomic uint64_t end_ns;
	_Atomic int done;
};

static void finish(struct sender *s)
{
	atomic_store(&s->end_ns, rp_burst_now_ns());
	atomic_store(&s->done, 1);
	pthread_mutex_lock(&s->ds->mu);
	s->ds->ndone++;
	pthread_cond_signal(&s->ds->cv);
	pthread_mutex_unlock(&s->ds->mu);
}

static bool should_stop(const struct sender *s)
{
	return atomic_load_explicit(s->quit, memory_order_relaxed) ||
	       (s->c->stop && atomic_load_explicit(s->c->stop, memory_order_relaxed));
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
	clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

/* How many packets this sender may send now (paced), waiting for at least one; 0 = stop. */
static uint64_t pace_grant(struct sender *s, struct rp_pace *p, uint64_t want)
{
	for (;;) {
		uint64_t now, got, w;
		if (should_stop(s))
			return 0;
		if (!s->rate)
			return want;
		now = rp_burst_now_ns();
		got = rp_pace_take(p, now, want);
		if (got)
			return got;
		w = rp_pace_wait_ns(p, now);
		sleep_ns(w > 10000000ull ? 10000000ull : w);
	}
}

static int open_afpacket(const struct rp_burst_cfg *c)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = c->ifindex,
				   .sll_protocol = htons(ETH_P_IP) };
	int one = 1, sndbuf = 4 << 20;
	/* protocol 0: this socket receives nothing */
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	return fd;
}

static void *run_afpacket(void *arg)
{
	struct sender *s = arg;
	const struct rp_burst_cfg *c = s->c;
	const struct rp_tmpl *t = c->tmpl;
	unsigned batch = c->batch ? c->batch : BATCH_DEFAULT;
	uint64_t total = rp_pairset_total(&c->set), i = s->id, step = s->nthreads;
	struct rp_pace pace;
	struct walker w;
	struct cookie_pre cp;
	uint8_t *bufs = malloc((size_t)batch * RP_TMPL_MAX);
	struct mmsghdr *msgs = calloc(batch, sizeof(*msgs));
	struct iovec *iov = calloc(batch, sizeof(*iov));

	if (!bufs || !msgs || !iov) {
		atomic_store(&s->last_err, -ENOMEM);
		atomic_store(s->quit, 1);
		goto out;
	}
	for (unsigned k = 0; k < batch; k++) {
		memcpy(bufs + (size_t)k * RP_TMPL_MAX, t->frame, t->len);
		iov[k].iov_base = bufs + (size_t)k * RP_TMPL_MAX;
		iov[k].iov_len = t->len;
		msgs[k].msg_hdr.msg_iov = &iov[k];
		msgs[k].msg_hdr.msg_iovlen = 1;
	}
	walker_init(&w, &c->set);
	cookie_pre_init(&cp, c->cookie_key, t->saddr, t->daddr);
	rp_pace_init(&pace, s->rate, 0, s->start_ns);
	while (i < total) {
		uint64_t left = (total - i + step - 1) / step;
		uint64_t n = pace_grant(s, &pace, left < batch ? left : batch);
		unsigned off = 0, busy = 0;
		if (!n)
			break;
		for (unsigned k = 0; k < n; k++, i += step)
			stamp_index(c, &w, &cp, i, bufs + (size_t)k * RP_TMPL_MAX + RP_ETH_HLEN);
		while (off < n) {
			int r = sendmmsg(s->fd, msgs + off, (unsigned)n - off, 0);
			if (r > 0) {
				off += (unsigned)r;
				atomic_fetch_add_explicit(&s->sent, (uint64_t)r, memory_order_relaxed);
				busy = 0;
				continue;
			}
			if (r < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) && busy++ < 1000) {
				sched_yield();
				continue;
			}
			/* this packet cannot be sent: count it and go on with the rest */
			atomic_store_explicit(&s->last_err, r < 0 ? -errno : -EIO, memory_order_relaxed);
			atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
			off++;
			busy = 0;
		}
	}
out:
	free(bufs);
	free(msgs);
	free(iov);
	finish(s);
	return NULL;
}

static void *run_libnet(void *arg)
{
	struct sender *s = arg;
	const struct rp_burst_cfg *c = s->c;
	const struct rp_tmpl *t = c->tmpl;
	uint64_t total = rp_pairset_total(&c->set), i = s->id, step = s->nthreads;
	size_t iplen = t->len - t->l3off;
	uint8_t pkt[RP_TMPL_MAX];
	struct rp_pace pace;
	struct walker w;
	struct cookie_pre cp;

	memcpy(pkt, t->frame + t->l3off, iplen);
	walker_init(&w, &c->set);
	cookie_pre_init(&cp, c->cookie_key, t->saddr, t->daddr);
	rp_pace_init(&pace, s->rate, 0, s->start_ns);
	while (i < total) {
		uint64_t left = (total - i + step - 1) / step;
		uint64_t n = pace_grant(s, &pace, left < 64 ? left : 64);
		if (!n)
			break;
		for (uint64_t k = 0; k < n; k++, i += step) {
			int tries = 0;
			stamp_index(c, &w, &cp, i, pkt);
			for (;;) {
				errno = 0;
				if (libnet_write_raw_ipv4(s->ln, pkt, (uint32_t)iplen) == (int)iplen) {
					atomic_fetch_add_explicit(&s->sent, 1, memory_order_relaxed);
					break;
				}
				if ((errno == ENOBUFS || errno == EAGAIN || errno == EINTR) && tries++ < 1000) {
					sched_yield();
					continue;
				}
				atomic_store_explicit(&s->last_err, errno ? -errno : -EIO, memory_order_relaxed);
				atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
				break;
			}
		}
	}
	finish(s);
	return NULL;
}

static void collect(struct sender *ss, unsigned n, uint64_t start, uint64_t total, struct rp_burst_stats *st)
{
	uint64_t now = rp_burst_now_ns(), end = 0;
	bool all = true;

	memset(st, 0, sizeof(*st));
	st->total = total;
	for (unsigned k = 0; k < n; k++) {
		st->sent += atomic_load_explicit(&ss[k].sent, memory_order_relaxed);
		st->errors += atomic_load_explicit(&ss[k].errors, memory_order_relaxed);
		int e = atomic_load_explicit(&ss[k].last_err, memory_order_relaxed);
		if (e)
			st->last_err = e;
		if (atomic_load(&ss[k].done)) {
			uint64_t e2 = atomic_load(&ss[k].end_ns);
			if (e2 > end)
				end = e2;
		} else {
			all = false;
		}
	}
	st->elapsed_ns = (all ? end : now) - start;
}

int rp_burst_run(const struct rp_burst_cfg *c, struct rp_burst_stats *out)
{
	struct rp_burst_stats st;
	struct sender *ss;
	atomic_int quit = 0;
	unsigned n, started = 0;
	uint64_t total, start, tick, next;
	int err = 0;
	char errbuf[LIBNET_ERRBUF_SIZE];
	struct donesig ds = { .mu = PTHREAD_MUTEX_INITIALIZER, .ndone = 0 };
	pthread_condattr_t ca;

	if (out)
		memset(out, 0, sizeof(*out));
	err = check_cfg(c);
	if (err)
		return err;
	total = rp_pairset_total(&c->set);
	n = c->threads ? c->threads : 1;
	if (n > total)
		n = (unsigned)total;
	if (c->rate && n > c->rate)
		n = (unsigned)c->rate;
	ss = aligned_alloc(64, ((sizeof(*ss) * n + 63) / 64) * 64);
	if (!ss)
		return -ENOMEM;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ds.cv, &ca);
	pthread_condattr_destroy(&ca);
	memset(ss, 0, sizeof(*ss) * n);
	/* open every socket before the first packet: a privilege problem sends nothing */
	for (unsigned k = 0; k < n; k++) {
		ss[k].c = c;
		ss[k].ds = &ds;
		ss[k].id = k;
		ss[k].nthreads = n;
		ss[k].quit = &quit;
		ss[k].fd = -1;
		ss[k].rate = c->rate / n + (k < c->rate % n);
		if (c->engine == RP_ENGINE_AFPACKET) {
			ss[k].fd = open_afpacket(c);
			if (ss[k].fd < 0) {
				err = ss[k].fd;
				break;
			}
		} else {
			errno = 0;
			ss[k].ln = libnet_init(LIBNET_RAW4, NULL, errbuf);
			if (!ss[k].ln) {
				err = errno ? -errno : -EPERM;
				break;
			}
		}
	}
	if (err)
		goto out;

	start = rp_burst_now_ns();
	for (unsigned k = 0; k < n; k++) {
		ss[k].start_ns = start;
		if (pthread_create(&ss[k].th, NULL, c->engine == RP_ENGINE_AFPACKET ? run_afpacket : run_libnet,
				   &ss[k])) {
			err = -EAGAIN;
			atomic_store(&quit, 1);
			break;
		}
		started++;
	}
	tick = c->progress_ns ? c->progress_ns : 250000000ull;
	next = start + tick;
	pthread_mutex_lock(&ds.mu);
	while (ds.ndone < started) {
		struct timespec ts = { .tv_sec = (time_t)(next / 1000000000ull),
				       .tv_nsec = (long)(next % 1000000000ull) };
		if (pthread_cond_timedwait(&ds.cv, &ds.mu, &ts) != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&ds.mu);
		collect(ss, started, start, total, &st);
		if (c->progress && c->progress(&st, c->arg))
			atomic_store(&quit, 1);
		next = rp_burst_now_ns() + tick;
		pthread_mutex_lock(&ds.mu);
	}
	pthread_mutex_unlock(&ds.mu);
	for (unsigned k = 0; k < started; k++)
		pthread_join(ss[k].th, NULL);
	collect(ss, started, start, total, &st);
	st.done = true;
	st.stopped = st.sent + st.errors < total;
	if (!err && started) {
		int le = 0;
		for (unsigned k = 0; k < started; k++)
			if (atomic_load(&ss[k].last_err) == -ENOMEM)
				le = -ENOMEM;
		if (le)
			err = le;
		else if (st.errors)
			err = -EIO;
	}
	if (c->progress)
		c->progress(&st, c->arg);
	if (out)
		*out = st;
out:
	for (unsigned k = 0; k < n; k++) {
		if (ss[k].fd >= 0)
			close(ss[k].fd);
		if (ss[k].ln)
			libnet_destroy(ss[k].ln);
	}
	free(ss);
	pthread_cond_destroy(&ds.cv);
	return err;
}
