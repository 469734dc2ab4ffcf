/* SPDX-License-Identifier: MIT */
/* Burst sender: per-packet fields, AF_PACKET sendmmsg batches or libnet writes, pacing, threads
 * (templates: tmpl.c; pair sets: pairset.c; the ISN cookie: userstack/cookie.h). */
#include "rawpunch/net/burst.h"

#include <errno.h>
#include <fcntl.h>
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
#include "rawpunch/base/clock.h"

#define BATCH_DEFAULT 64u
#define BATCH_MAX 1024u
#define THREADS_MAX 64u

/* ---------- per-packet fields ---------- */

static inline uint16_t ipid_hash(uint64_t seed, uint64_t i)
{
	uint64_t z = seed ^ (i * 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
	return (uint16_t)(z ^ (z >> 33));
}

/* Packet i of the burst into ip (the template's IPv4 bytes, or a buffer stamped before from it). */
static inline void stamp_index(const struct rp_burst_cfg *c, struct rp_pairwalk *w, struct us_cookie_pre *cp,
			       uint64_t i, uint8_t *ip)
{
	const struct rp_tmpl *t = c->tmpl;
	uint16_t sport, dport, id;
	uint32_t seq;

	rp_pairwalk_at(w, i, &sport, &dport);
	seq = c->seq_mode == RP_SEQ_COOKIE ? us_cookie_pre_at(cp, sport, dport) : t->seq;
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
	struct rp_pairwalk w;
	struct us_cookie_pre cp;
	size_t iplen;

	if (!c || !c->tmpl || c->tmpl->len == 0 || rp_pairset_total(&c->set) == 0 || !buf)
		return -EINVAL;
	if (i >= rp_pairset_total(&c->set))
		return -EINVAL;
	iplen = c->tmpl->len - c->tmpl->l3off;
	if (cap < iplen)
		return -ENOSPC;
	memcpy(buf, c->tmpl->frame + c->tmpl->l3off, iplen);
	rp_pairwalk_init(&w, &c->set);
	us_cookie_pre_init(&cp, c->cookie_key, c->tmpl->saddr, c->tmpl->daddr);
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
	struct rp_pairwalk w;
	struct us_cookie_pre cp;
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
	rp_pairwalk_init(&w, &c->set);
	us_cookie_pre_init(&cp, c->cookie_key, t->saddr, t->daddr);
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
	struct rp_pairwalk w;
	struct us_cookie_pre cp;

	memcpy(pkt, t->frame + t->l3off, iplen);
	rp_pairwalk_init(&w, &c->set);
	us_cookie_pre_init(&cp, c->cookie_key, t->saddr, t->daddr);
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
			if (fcntl(libnet_getfd(ss[k].ln), F_SETFD, FD_CLOEXEC) < 0) {   /* not libnet's default */
				err = -errno;
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
