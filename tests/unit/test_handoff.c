/* SPDX-License-Identifier: MIT */
/* rawpunch/handoff: parameter checks (the kernel's TCP_REPAIR_WINDOW rules and ours), the adapter
 * from a userstack tcb driven through a real handshake, and, in a private network namespace (the
 * test unshares one; needs root), a live kernel connection frozen with TCP_REPAIR while it holds
 * unread, unacknowledged and unsent bytes, closed silently and rebuilt by rp_handoff(): every byte
 * must arrive exactly once, in order, both ways. Also the connect() fallback. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <cmocka.h>

#include "tests/unit/netns_fixture.h"

#include "rawpunch/handoff/handoff.h"
#include "userstack/tcb.h"

static struct rp_handoff_params base(void)
{
	struct rp_handoff_params p = {
		.laddr = htonl(0x0a000102), .raddr = htonl(0xc6120302), .lport = 40000, .rport = 5000,
		.snd_una = 1000, .snd_nxt = 1000, .rcv_nxt = 5000,
		.snd_wl1 = 5000, .snd_wnd = 64240, .max_window = 64240, .rcv_wnd = 65535, .rcv_wup = 5000,
		.mss = 1460, .wscale_ok = true, .snd_wscale = 7, .rcv_wscale = 7, .sack_ok = true, .ts_ok = true,
		.ts_now = 12345,
	};
	return p;
}

static void check_rules(void **state)
{
	(void)state;
	static const uint8_t data[64];
	struct rp_handoff_params p = base();
	assert_int_equal(rp_handoff_check(&p), 0);
	assert_int_equal(rp_handoff_check(NULL), -EINVAL);

	p = base(); p.lport = 0;                    assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p = base(); p.rport = 0;                    assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p = base(); p.raddr = 0;                    assert_int_equal(rp_handoff_check(&p), -EINVAL);
	/* in-flight bytes must be exactly snd_nxt - snd_una, and given */
	p = base(); p.snd_nxt = 1064;               assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p.unacked = data; p.unacked_len = 64;       assert_int_equal(rp_handoff_check(&p), 0);
	p.unacked = NULL;                           assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p = base(); p.unread_len = 10;              assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p = base(); p.unsent_len = 10;              assert_int_equal(rp_handoff_check(&p), -EINVAL);
	/* sequence space wraps */
	p = base(); p.snd_una = 0xfffffff0u; p.snd_nxt = 0x30; p.unacked = data; p.unacked_len = 64;
	assert_int_equal(rp_handoff_check(&p), 0);
	/* shifts: RFC 7323 caps them at 14 (the kernel says EFBIG) */
	p = base(); p.snd_wscale = 15;              assert_int_equal(rp_handoff_check(&p), -EFBIG);
	p = base(); p.rcv_wscale = 15;              assert_int_equal(rp_handoff_check(&p), -EFBIG);
	p = base(); p.rcv_wscale = 14;              assert_int_equal(rp_handoff_check(&p), 0);
	/* without window scaling no window can exceed 16 bits */
	p = base(); p.wscale_ok = false;            assert_int_equal(rp_handoff_check(&p), 0);
	p.snd_wnd = p.max_window = 70000;           assert_int_equal(rp_handoff_check(&p), -ERANGE);
	/* tcp_repair_set_window(): max_window >= snd_wnd, snd_wl1 <= rcv_nxt + rcv_wnd, rcv_wup <= rcv_nxt */
	p = base(); p.max_window = p.snd_wnd - 1;   assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p = base(); p.snd_wl1 = p.rcv_nxt + p.rcv_wnd;     assert_int_equal(rp_handoff_check(&p), 0);
	p.snd_wl1++;                                assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p = base(); p.rcv_wup = p.rcv_nxt + 1;      assert_int_equal(rp_handoff_check(&p), -EINVAL);
	p = base(); p.rcv_wup = p.rcv_nxt - 100;    assert_int_equal(rp_handoff_check(&p), 0);
	p = base(); p.mss = 20;                     assert_int_equal(rp_handoff_check(&p), -ERANGE);
	p = base(); p.mss = 0;                      assert_int_equal(rp_handoff_check(&p), 0);
}

static int count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void bad_input_leaves_nothing(void **state)
{
	(void)state;
	struct rp_handoff_params p = base();
	struct rp_handoff_result res;
	struct rp_handoff_opts o = { .flags = RP_HO_NO_FALLBACK | RP_HO_ONLY_FALLBACK };
	int before = count_fds();
	p.max_window = 0;
	assert_int_equal(rp_handoff(&p, NULL, &res), -EINVAL);
	assert_int_equal(res.path, RP_HANDOFF_NONE);
	p = base();
	assert_int_equal(rp_handoff(&p, &o, &res), -EINVAL);
	assert_int_equal(count_fds(), before);
	assert_string_equal(rp_handoff_path_name(RP_HANDOFF_REPAIR), "repair");
	assert_string_equal(rp_handoff_path_name(RP_HANDOFF_CONNECT), "connect");
}

/* ---- the userstack adapter, on a tcb taken through a real handshake ---- */

#define MS 1000000ull
#define T0 (50000 * MS)

static void step_ok(struct us_tcb *t, const struct us_event *ev, uint64_t now, struct us_out *o)
{
	assert_int_equal(us_step(t, ev, now, o), 0);
}

static void from_tcb(void **state)
{
	(void)state;
	struct us_tcb *t = malloc(sizeof(*t));
	struct rp_handoff_params p;
	struct us_out o;
	uint8_t data[5000], pdata[100];
	assert_non_null(t);
	us_tcb_init(t);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 7);
	for (size_t i = 0; i < sizeof(pdata); i++)
		pdata[i] = (uint8_t)(0xa0 ^ i);

	struct us_config cfg = { .iss = 0xfffff000u, .mss = 1460, .wscale_ok = true, .wscale = 7,
				 .sack_ok = true, .ts_ok = true, .ts_offset = 777 };
	struct us_event ev = { .type = US_EV_OPEN_ACTIVE, .cfg = &cfg };
	step_ok(t, &ev, T0, &o);
	assert_int_equal(rp_handoff_from_tcb(t, 0, 40000, htonl(0xc6120302), 5000, T0, &p), -ENOTCONN);
	assert_int_equal(o.n, 1);
	uint32_t our_tsval = o.seg[0].opts.tsval;

	/* SYN-ACK: MSS 1400, shift 9, SACK, timestamps; window 3000 (never scaled in a SYN) */
	const uint32_t irs = 0x7ffffff0u;
	memset(&ev, 0, sizeof(ev));
	ev.type = US_EV_SEGMENT;
	ev.seg = (struct us_segment){ .seq = irs, .ack = cfg.iss + 1, .flags = US_TH_SYN | US_TH_ACK, .win = 3000,
				      .opts = { .has_mss = true, .mss = 1400, .has_wscale = true, .wscale = 9,
						.sack_perm = true, .has_ts = true, .tsval = 555, .tsecr = our_tsval } };
	step_ok(t, &ev, T0 + 10 * MS, &o);
	assert_int_equal(t->state, US_ESTABLISHED);

	/* 5000 bytes to send into a 3000-byte window: some in flight, the rest unsent */
	memset(&ev, 0, sizeof(ev));
	ev.type = US_EV_SEND;
	ev.data = data;
	ev.len = sizeof(data);
	step_ok(t, &ev, T0 + 11 * MS, &o);
	assert_int_equal(o.accepted, sizeof(data));
	/* the peer sends 100 bytes (not read by the app) */
	memset(&ev, 0, sizeof(ev));
	ev.type = US_EV_SEGMENT;
	ev.seg = (struct us_segment){ .seq = irs + 1, .ack = cfg.iss + 1, .flags = US_TH_ACK | US_TH_PSH, .win = 0,
				      .opts = { .has_ts = true, .tsval = 556, .tsecr = our_tsval },
				      .payload = pdata, .len = sizeof(pdata) };
	step_ok(t, &ev, T0 + 12 * MS, &o);

	uint64_t now = T0 + 20 * MS;
	assert_int_equal(rp_handoff_from_tcb(t, htonl(0x0a000102), 40000, htonl(0xc6120302), 5000, now, &p), 0);
	assert_int_equal(p.lport, 40000);
	assert_int_equal(p.rport, 5000);
	assert_int_equal(p.snd_una, cfg.iss + 1);
	assert_int_equal(p.snd_nxt, t->snd_nxt);
	assert_true(p.unacked_len > 0 && p.unacked_len <= 3000);
	assert_int_equal(p.unacked_len, (uint32_t)(p.snd_nxt - p.snd_una));
	assert_int_equal(p.unacked_len + p.unsent_len, sizeof(data));
	assert_memory_equal(p.unacked, data, p.unacked_len);
	assert_memory_equal(p.unsent, data + p.unacked_len, p.unsent_len);
	assert_int_equal(p.rcv_nxt, irs + 1 + sizeof(pdata));
	assert_int_equal(p.unread_len, sizeof(pdata));
	assert_memory_equal(p.unread, pdata, sizeof(pdata));
	assert_int_equal(p.mss, 1400);
	assert_true(p.wscale_ok);
	assert_int_equal(p.snd_wscale, 9);
	assert_int_equal(p.rcv_wscale, 7);
	assert_true(p.sack_ok);
	assert_true(p.ts_ok);
	/* our TSval clock continues: now_ms + offset, never behind what was sent */
	assert_int_equal(p.ts_now, (uint32_t)(now / MS) + 777 + 1);
	assert_true((int32_t)(p.ts_now - our_tsval) > 0);
	assert_int_equal(p.snd_wnd, t->snd_wnd);
	assert_true(p.max_window >= p.snd_wnd);
	assert_int_equal(p.rcv_wup, t->rcv_wup);
	assert_int_equal(rp_handoff_check(&p), 0);

	/* once a FIN is queued the state cannot be expressed */
	memset(&ev, 0, sizeof(ev));
	ev.type = US_EV_CLOSE;
	step_ok(t, &ev, now, &o);
	assert_int_equal(rp_handoff_from_tcb(t, 0, 40000, htonl(0xc6120302), 5000, now, &p), -ENOTCONN);
	free(t);
}

/* ---- live: a private network namespace with lo up ---- */

static int netns_setup(void **state)
{
	(void)state;
	return rp_test_netns_lo_up("test_handoff");
}

static uint8_t pat(uint64_t i, uint8_t salt)
{
	return (uint8_t)((i * 131) ^ (i >> 9) ^ salt);
}

static int tcp_listener(uint16_t *port, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (rcvbuf)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void write_pat(int fd, uint64_t off, size_t n, uint8_t salt)
{
	uint8_t buf[4096];
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = pat(off + i, salt);
		ssize_t w = send(fd, buf, k, MSG_NOSIGNAL);
		assert_true(w > 0);
		off += (uint64_t)w;
		n -= (size_t)w;
	}
}

/* read to EOF; every byte must follow the pattern from offset 0. No cmocka calls: it also runs in
 * a thread. Returns the count, or -1 on a read error, -2 on a wrong byte. */
static int64_t read_pat_eof(int fd, uint8_t salt)
{
	static __thread uint8_t buf[65536];
	uint64_t off = 0;
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0)
			return -1;
		if (r == 0)
			return (int64_t)off;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pat(off + (uint64_t)i, salt))
				return -2;
		off += (uint64_t)r;
	}
}

struct reader {
	int fd;
	uint8_t salt;
	int64_t got;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->got = read_pat_eof(r->fd, r->salt);
	return NULL;
}

static void freeze_rebuild_live(void **state)
{
	(void)state;
	uint16_t port;
	int lfd = tcp_listener(&port, 4096);   /* small receive buffer: the window closes soon */
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(s >= 0);

	/* s -> c: 100000 bytes that c does not read */
	const size_t down1 = 100000;
	write_pat(s, 0, down1, 0x55);
	/* c -> s: as much as fits without s reading (zero window): unacked + unsent bytes */
	int fl = fcntl(c, F_GETFL);
	fcntl(c, F_SETFL, fl | O_NONBLOCK);
	uint8_t buf[4096];
	uint64_t up1 = 0;
	for (;;) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pat(up1 + i, 0x33);
		ssize_t w = send(c, buf, sizeof(buf), MSG_NOSIGNAL);
		if (w < 0) {
			assert_int_equal(errno, EAGAIN);
			break;
		}
		up1 += (uint64_t)w;
		assert_true(up1 < (64u << 20));
	}
	usleep(50000);   /* let the window probes and ACKs settle */
	struct tcp_info ti;
	socklen_t sl = sizeof(ti);
	assert_int_equal(getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &sl), 0);
	uint32_t mss_before = ti.tcpi_snd_mss;

	struct rp_handoff_params p;
	size_t cap = 16u << 20;
	uint8_t *q = malloc(cap);
	assert_non_null(q);
	assert_int_equal(rp_handoff_freeze(c, &p, q, cap), 0);
	assert_int_equal(p.unread_len, down1);
	for (size_t i = 0; i < down1; i++)
		if (p.unread[i] != pat(i, 0x55))
			fail_msg("frozen receive queue byte %zu differs", i);
	assert_true(p.unacked_len + p.unsent_len > 0);
	assert_true(p.unacked_len + p.unsent_len <= up1);
	assert_true(p.sack_ok && p.ts_ok && p.wscale_ok);
	assert_int_equal(p.lport != 0, 1);
	assert_int_equal(p.rport, port);
	assert_int_equal(rp_handoff_check(&p), 0);
	close(c);   /* in repair mode: nothing is sent */

	struct rp_handoff_result res;
	int fd = rp_handoff(&p, NULL, &res);
	free(q);    /* rp_handoff() copied the queues */
	assert_true(fd >= 0);
	assert_int_equal(res.path, RP_HANDOFF_REPAIR);
	assert_int_equal(res.repair_errno, 0);
	int info_fl = fcntl(fd, F_GETFL);
	assert_false(info_fl & O_NONBLOCK);
	sl = sizeof(ti);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl), 0);
	assert_int_equal(ti.tcpi_state, TCP_ESTABLISHED);
	assert_true(ti.tcpi_options & TCPI_OPT_SACK);
	assert_true(ti.tcpi_options & TCPI_OPT_WSCALE);
	assert_int_equal(ti.tcpi_snd_wscale, p.snd_wscale);
	assert_int_equal(ti.tcpi_rcv_wscale, p.rcv_wscale);

	/* the send MSS is what the original had: the peer's MSS bounded by half the largest window
	 * (2048 here), not the 536-byte default of an unsynced repaired socket */
	assert_true(mss_before >= 1024);
	assert_int_equal(ti.tcpi_snd_mss, mss_before);

	/* c's direction: 1000 more bytes continue exactly after the frozen ones (s reads meanwhile:
	 * c's send buffer was full) */
	struct reader rd = { .fd = s, .salt = 0x33 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	write_pat(fd, up1, 1000, 0x33);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	pthread_join(th, NULL);
	assert_int_equal(rd.got, (int64_t)(up1 + 1000));
	/* s's direction: the unread bytes come first from the rebuilt receive queue, then new ones */
	write_pat(s, down1, 500, 0x55);
	assert_int_equal(shutdown(s, SHUT_WR), 0);
	assert_int_equal(read_pat_eof(fd, 0x55), (int64_t)(down1 + 500));
	/* both FINs done: no reset anywhere */
	int err = 0;
	sl = sizeof(err);
	assert_int_equal(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &sl), 0);
	assert_int_equal(err, 0);
	close(fd);
	close(s);
	close(lfd);
}

static void fallback_live(void **state)
{
	(void)state;
	uint16_t port;
	int lfd = tcp_listener(&port, 0);
	/* a free local port to hand off from */
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(la);
	int t = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(t, (struct sockaddr *)&la, sizeof(la)), 0);
	assert_int_equal(getsockname(t, (struct sockaddr *)&la, &sl), 0);
	close(t);

	struct rp_handoff_params p = base();
	p.laddr = htonl(INADDR_LOOPBACK);
	p.raddr = htonl(INADDR_LOOPBACK);
	p.lport = ntohs(la.sin_port);
	p.rport = port;
	struct rp_handoff_opts o = { .flags = RP_HO_ONLY_FALLBACK | RP_HO_NONBLOCK, .connect_timeout_ms = 2000 };
	struct rp_handoff_result res;
	int fd = rp_handoff(&p, &o, &res);
	assert_true(fd >= 0);
	assert_int_equal(res.path, RP_HANDOFF_CONNECT);
	assert_int_equal(res.connect_attempts, 1);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	struct sockaddr_in pa;
	sl = sizeof(pa);
	int s = accept4(lfd, (struct sockaddr *)&pa, &sl, SOCK_CLOEXEC);
	assert_true(s >= 0);
	assert_int_equal(ntohs(pa.sin_port), p.lport);   /* from the punch port */
	close(s);
	close(fd);
	close(lfd);

	/* nobody listening: refused, retried, then -ETIMEDOUT with no fd left over */
	int before = count_fds();
	o = (struct rp_handoff_opts){ .flags = RP_HO_ONLY_FALLBACK, .connect_timeout_ms = 400, .retry_ms = 50 };
	assert_int_equal(rp_handoff(&p, &o, &res), -ETIMEDOUT);
	assert_true(res.connect_attempts >= 3);
	assert_int_equal(res.path, RP_HANDOFF_NONE);
	assert_true(res.elapsed_ns >= 350 * MS);
	assert_int_equal(count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(check_rules),
		cmocka_unit_test(bad_input_leaves_nothing),
		cmocka_unit_test(from_tcb),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(freeze_rebuild_live),
		cmocka_unit_test(fallback_live),
	};
	int r = cmocka_run_group_tests_name("handoff", pure, NULL, NULL);
	return r | cmocka_run_group_tests_name("handoff-live-netns", live, netns_setup, NULL);
}
