/* SPDX-License-Identifier: MIT */
/* rp-wire: a userspace link emulator for the NAT lab (tools/natlab), for kernels without sch_netem.
 *
 * It creates one TAP device in each of two network namespaces and carries Ethernet frames between them,
 * so the pair behaves like a veth -- plus a one-way delay, uniform jitter and random loss, applied
 * independently in each direction:
 *
 *   rp-wire --ns1 /run/netns/X --if1 eth1 --ns2 /run/netns/Y --if2 to-x
 *           [--delay-us N] [--jitter-us N] [--loss-ppm N] [--queue N] [--seed N]
 *           [--extra12-us N] [--extra21-us N] [--extra-addr A.B.C.D]
 *
 * Per direction a frame is lost with probability loss-ppm / 1e6; otherwise it leaves at
 * arrival + delay + U[-jitter, +jitter] (microsecond resolution), but never before the frame ahead of it:
 * the link never reorders (unlike netem's default with jitter), so TCP sees jitter as delay variation,
 * not as reordering. A direction holds at most --queue frames (default 16384); beyond that frames are
 * tail-dropped and counted. With delay and jitter 0 frames are forwarded at once.
 *
 * Asymmetry: --extra12-us adds N us to every frame from if1 to if2 only, --extra21-us to those from if2
 * to if1. With --extra-addr only IPv4 frames from or to that address get the extra; they wait in a
 * queue of their own, so the other frames of that direction are not held behind them (frames of one
 * flow still never reorder: they are all in the same queue).
 *
 * One thread, epoll + timerfd; frames are read/written with one syscall each. The devices exist as long
 * as the process lives (non-persistent TAPs): killing it removes both ends of the link. The caller
 * configures addresses and brings the devices up. SIGTERM/SIGINT end it; counters go to stderr on exit
 * and on SIGUSR1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"

#define SLOT_BYTES 2048u          /* an Ethernet frame at MTU 1500 (+VLAN) fits; bigger ones are dropped */
#define READ_BATCH 64

struct slot {
	uint64_t due_ns;
	uint32_t len;
	uint8_t data[SLOT_BYTES];
};

struct ring {
	struct slot *q;               /* NULL: not needed (frames bound for it are forwarded at once) */
	uint32_t cap, head, count;
	uint64_t last_due_ns;
};

struct dir {
	int in_fd, out_fd;
	uint64_t extra_ns;            /* this direction's extra delay (--extra12-us / --extra21-us) */
	struct ring r[2];             /* [0]: the frames without the extra (all, without --extra-addr); [1]: with */
	/* counters */
	uint64_t rx, tx, lost, overflow, too_big, tx_err;
};

struct cfg {
	const char *ns1, *if1, *ns2, *if2;
	uint64_t delay_ns, jitter_ns, extra_ns[2];
	uint32_t loss_ppm, queue;
	uint32_t extra_addr;          /* network order; 0: the extras apply to every frame */
	uint64_t seed;
	bool have_seed;
};

static uint64_t rng_state;

static uint64_t rng_next(void)   /* splitmix64: fast, good enough for loss and jitter draws */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)   /* uniform in [0, n) without modulo bias */
{
	uint64_t x, lim = UINT64_MAX - UINT64_MAX % n;
	do x = rng_next(); while (x >= lim);
	return x % n;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rp-wire --ns1 NSPATH --if1 NAME --ns2 NSPATH --if2 NAME\n"
	           "               [--delay-us N] [--jitter-us N] [--loss-ppm N] [--queue N] [--seed N]\n"
	           "               [--extra12-us N] [--extra21-us N] [--extra-addr A.B.C.D]\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-') goto bad;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max) goto bad;
	*out = v;
	return 0;
bad:
	fprintf(stderr, "rp-wire: %s: want a whole number 0..%" PRIu64 ", got '%s'\n", opt, max, s ? s : "");
	return -1;
}

static int parse_args(int argc, char **argv, struct cfg *c)
{
	uint64_t v;
	memset(c, 0, sizeof(*c));
	c->queue = 16384;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(o, "-h") || !strcmp(o, "--help")) { usage(stdout); exit(0); }
		if (!val) { fprintf(stderr, "rp-wire: %s needs a value\n", o); return -1; }
		i++;
		if (!strcmp(o, "--ns1")) c->ns1 = val;
		else if (!strcmp(o, "--ns2")) c->ns2 = val;
		else if (!strcmp(o, "--if1")) c->if1 = val;
		else if (!strcmp(o, "--if2")) c->if2 = val;
		else if (!strcmp(o, "--delay-us")) {
			if (parse_u64(o, val, 60000000, &v)) return -1;
			c->delay_ns = v * 1000;
		} else if (!strcmp(o, "--extra12-us") || !strcmp(o, "--extra21-us")) {
			if (parse_u64(o, val, 60000000, &v)) return -1;
			c->extra_ns[o[7] == '2'] = v * 1000;   /* --extra12-us: [0] (if1 -> if2), --extra21-us: [1] */
		} else if (!strcmp(o, "--extra-addr")) {
			struct in_addr a;
			if (inet_pton(AF_INET, val, &a) != 1 || !a.s_addr) {
				fprintf(stderr, "rp-wire: --extra-addr: want an IPv4 address, got '%s'\n", val);
				return -1;
			}
			c->extra_addr = a.s_addr;
		} else if (!strcmp(o, "--jitter-us")) {
			if (parse_u64(o, val, 60000000, &v)) return -1;
			c->jitter_ns = v * 1000;
		} else if (!strcmp(o, "--loss-ppm")) {
			if (parse_u64(o, val, 1000000, &v)) return -1;
			c->loss_ppm = (uint32_t)v;
		} else if (!strcmp(o, "--queue")) {
			if (parse_u64(o, val, 1u << 20, &v) || v == 0) return -1;
			c->queue = (uint32_t)v;
		} else if (!strcmp(o, "--seed")) {
			if (parse_u64(o, val, UINT64_MAX, &v)) return -1;
			c->seed = v;
			c->have_seed = true;
		} else { fprintf(stderr, "rp-wire: unknown option '%s'\n", o); return -1; }
	}
	if (!c->ns1 || !c->ns2 || !c->if1 || !c->if2) {
		fprintf(stderr, "rp-wire: --ns1, --if1, --ns2 and --if2 are required\n");
		return -1;
	}
	if (strlen(c->if1) >= IFNAMSIZ || strlen(c->if2) >= IFNAMSIZ) {
		fprintf(stderr, "rp-wire: interface names are at most %d characters\n", IFNAMSIZ - 1);
		return -1;
	}
	if (c->jitter_ns > c->delay_ns) {
		fprintf(stderr, "rp-wire: jitter may not exceed delay\n");
		return -1;
	}
	return 0;
}

/* Enter the namespace at nspath and create a TAP device there; the fd keeps it in that namespace. */
static int tap_in_ns(const char *nspath, const char *ifname)
{
	int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) { fprintf(stderr, "rp-wire: %s: %s\n", nspath, strerror(errno)); return -1; }
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "rp-wire: setns %s: %s\n", nspath, strerror(errno));
		close(nsfd);
		return -1;
	}
	close(nsfd);
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) { fprintf(stderr, "rp-wire: /dev/net/tun: %s\n", strerror(errno)); return -1; }
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "rp-wire: TUNSETIFF %s in %s: %s\n", ifname, nspath, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void print_stats(const struct dir d[2], const struct cfg *c)
{
	for (int i = 0; i < 2; i++)
		fprintf(stderr, "rp-wire: %s -> %s: rx %" PRIu64 " tx %" PRIu64 " lost %" PRIu64
		        " overflow %" PRIu64 " too_big %" PRIu64 " tx_err %" PRIu64 " queued %" PRIu32 "\n",
		        i ? c->if2 : c->if1, i ? c->if1 : c->if2, d[i].rx, d[i].tx, d[i].lost, d[i].overflow,
		        d[i].too_big, d[i].tx_err, d[i].r[0].count + d[i].r[1].count);
}

static void send_frame(struct dir *d, const uint8_t *buf, uint32_t len)
{
	/* A TAP write hands the frame to the stack (netif_rx); it does not block. A failure (e.g. the
	 * device is down) means the frame is lost, as on a real link. */
	if (write(d->out_fd, buf, len) == (ssize_t)len) d->tx++;
	else d->tx_err++;
}

/* Does this direction's extra delay apply to the frame (an Ethernet frame of len bytes)? */
static bool gets_extra(const struct dir *d, const struct cfg *c, const uint8_t *f, size_t len)
{
	uint32_t src, dst;
	if (!d->extra_ns)
		return false;
	if (!c->extra_addr)
		return true;
	if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00)
		return false;
	memcpy(&src, f + 14 + 12, 4);
	memcpy(&dst, f + 14 + 16, 4);
	return src == c->extra_addr || dst == c->extra_addr;
}

/* Read what is waiting on d->in_fd (bounded), decide each frame's fate. Returns -errno when the device
 * is gone (its namespace was deleted under us), else 0. */
static int pump_in(struct dir *d, const struct cfg *c)
{
	static uint8_t buf[65536];
	for (int n = 0; n < READ_BATCH; n++) {
		ssize_t r = read(d->in_fd, buf, sizeof(buf));
		if (r < 0) return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (r == 0) return 0;
		d->rx++;
		/* Loss hits IPv4 only: a lost ARP would stall the link for a second, which no real path does. */
		if (c->loss_ppm && r >= 14 && buf[12] == 0x08 && buf[13] == 0x00 &&
		    rng_below(1000000) < c->loss_ppm) { d->lost++; continue; }
		bool extra = gets_extra(d, c, buf, (size_t)r);
		struct ring *q = &d->r[extra && c->extra_addr];
		if (!q->q) { send_frame(d, buf, (uint32_t)r); continue; }   /* no delay at all on this path */
		if ((size_t)r > SLOT_BYTES) { d->too_big++; continue; }
		if (q->count == q->cap) { d->overflow++; continue; }
		uint64_t due = rp_mono_ns() + c->delay_ns + (extra ? d->extra_ns : 0);
		if (c->jitter_ns) due = due - c->jitter_ns + rng_below(2 * c->jitter_ns / 1000 + 1) * 1000;
		if (due < q->last_due_ns) due = q->last_due_ns;   /* never reorder */
		q->last_due_ns = due;
		struct slot *s = &q->q[(q->head + q->count) % q->cap];
		s->due_ns = due;
		s->len = (uint32_t)r;
		memcpy(s->data, buf, (size_t)r);
		q->count++;
	}
	return 0;
}

/* Send every frame of q whose time has come; return the next due time (0 if the queue is empty). */
static uint64_t pump_out(struct dir *d, struct ring *q, uint64_t now)
{
	while (q->count) {
		struct slot *s = &q->q[q->head];
		if (s->due_ns > now) return s->due_ns;
		send_frame(d, s->data, s->len);
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cfg c;
	if (parse_args(argc, argv, &c)) { usage(stderr); return 2; }
	if (c.have_seed) rng_state = c.seed;
	else if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state)) rng_state = (uint64_t)rp_mono_ns();

	int fd1 = tap_in_ns(c.ns1, c.if1);
	if (fd1 < 0) return 1;
	int fd2 = tap_in_ns(c.ns2, c.if2);   /* the process stays in ns2 */
	if (fd2 < 0) return 1;

	struct dir d[2];
	memset(d, 0, sizeof(d));
	d[0].in_fd = fd1; d[0].out_fd = fd2;
	d[1].in_fd = fd2; d[1].out_fd = fd1;
	bool timed = c.delay_ns || c.extra_ns[0] || c.extra_ns[1];
	for (int i = 0; i < 2; i++) {
		d[i].extra_ns = c.extra_ns[i];
		/* a queue for the frames without the extra when they are delayed at all, one for those with
		 * it when it applies to some frames only */
		bool need[2] = { c.delay_ns || (d[i].extra_ns && !c.extra_addr), d[i].extra_ns && c.extra_addr };
		for (int k = 0; k < 2; k++) {
			d[i].r[k].cap = c.queue;
			if (need[k] && !(d[i].r[k].q = calloc(c.queue, sizeof(struct slot)))) {
				fprintf(stderr, "rp-wire: out of memory for a %" PRIu32 "-frame queue\n", c.queue);
				return 1;
			}
		}
	}

	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);   /* 1 ns slack: wake when the next frame is due */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGUSR1);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	int sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || tfd < 0 || ep < 0) { fprintf(stderr, "rp-wire: setup: %s\n", strerror(errno)); return 1; }
	int fds[4] = { fd1, fd2, tfd, sfd };
	for (int i = 0; i < 4; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			fprintf(stderr, "rp-wire: epoll_ctl: %s\n", strerror(errno));
			return 1;
		}
	}
	fprintf(stderr, "rp-wire: %s <-> %s: delay %" PRIu64 " us, jitter +-%" PRIu64 " us, loss %" PRIu32 " ppm\n",
	        c.if1, c.if2, c.delay_ns / 1000, c.jitter_ns / 1000, c.loss_ppm);
	if (c.extra_ns[0] || c.extra_ns[1]) {
		char a[INET_ADDRSTRLEN] = "";
		if (c.extra_addr)
			inet_ntop(AF_INET, &c.extra_addr, a, sizeof(a));
		fprintf(stderr, "rp-wire: extra delay %s -> %s %" PRIu64 " us, %s -> %s %" PRIu64 " us%s%s%s\n", c.if1, c.if2,
		        c.extra_ns[0] / 1000, c.if2, c.if1, c.extra_ns[1] / 1000, c.extra_addr ? " (IPv4 from or to " : "",
		        a, c.extra_addr ? " only)" : "");
	}

	uint64_t armed = 0;
	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			fprintf(stderr, "rp-wire: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			uint32_t k = evs[i].data.u32;
			if (k < 2) {
				int err = (evs[i].events & (EPOLLERR | EPOLLHUP)) ? -ENODEV : pump_in(&d[k], &c);
				if (err) {
					fprintf(stderr, "rp-wire: %s: %s; link gone, exiting\n", k ? c.if2 : c.if1,
					        strerror(-err));
					print_stats(d, &c);
					return 1;
				}
			} else if (k == 2) {
				uint64_t exp;
				if (read(tfd, &exp, sizeof(exp)) < 0) { /* spurious wake-up: nothing to do */ }
				armed = 0;
			} else {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					print_stats(d, &c);
					if (si.ssi_signo != SIGUSR1) return 0;
				}
			}
		}
		if (!timed) continue;
		uint64_t now = rp_mono_ns(), next = 0;
		for (int i = 0; i < 4; i++) {
			uint64_t t = pump_out(&d[i / 2], &d[i / 2].r[i % 2], now);
			if (t && (!next || t < next)) next = t;
		}
		if (next && next != armed) {
			struct itimerspec its = { .it_value = { .tv_sec = (time_t)(next / 1000000000ull),
			                                        .tv_nsec = (long)(next % 1000000000ull) } };
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
			armed = next;
		}
	}
}
