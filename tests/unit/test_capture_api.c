/* SPDX-License-Identifier: MIT */
/* Unit tests for capture/capture.c's argument checking and error reporting: what fails must fail
 * with -errno and a message, before any packet is captured. (Live capture is covered by the lab
 * test tests/lab/watch_basic.sh, in namespaces of its own.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/capdump.h"
#include "capture/capture.h"
#include "userstack/cksum.h"

static void bad_options(void **state)
{
	(void)state;
	struct rp_cap *c = (struct rp_cap *)&c;   /* must be reset to NULL on failure */
	char err[256] = "";
	struct rp_cap_opts o = { .snaplen = -1 };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	assert_true(strlen(err) > 0);
	o = (struct rp_cap_opts){ .buffer_bytes = -5 };
	assert_int_equal(rp_cap_open(&o, &c, NULL, 0), -EINVAL);
	o = (struct rp_cap_opts){ .dir = (enum rp_cap_dir)7 };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(rp_cap_open(&o, NULL, err, sizeof(err)), -EINVAL);
}

static void no_such_interface(void **state)
{
	(void)state;
	struct rp_cap *c = NULL;
	char err[256] = "";
	struct rp_cap_opts o = { .iface = "rpcap-nosuch0" };
	int r = rp_cap_open(&o, &c, err, sizeof(err));
	/* root: the interface does not exist; without CAP_NET_RAW: not allowed to look */
	assert_true(r == -ENODEV || r == -EPERM);
	assert_null(c);
	assert_non_null(strstr(err, "rpcap-nosuch0"));
}

static void null_handles(void **state)
{
	(void)state;
	struct rp_event ev;
	struct rp_cap_stats st;
	const uint8_t *f;
	size_t n;
	struct rp_flow fl = { 0 };
	assert_int_equal(rp_cap_set_filter(NULL, "tcp"), -EINVAL);
	assert_int_equal(rp_cap_set_flows(NULL, &fl, 1), -EINVAL);
	assert_int_equal(rp_cap_dump_open(NULL, "/tmp/x.pcap"), -EINVAL);
	assert_int_equal(rp_cap_fd(NULL), -EINVAL);
	assert_int_equal(rp_cap_wait(NULL, 0), -EINVAL);
	assert_int_equal(rp_cap_next(NULL, &ev), -EINVAL);
	assert_int_equal(rp_cap_next_raw(NULL, &f, &n, NULL, NULL), -EINVAL);
	assert_int_equal(rp_cap_stats(NULL, &st), -EINVAL);
	assert_int_equal(rp_cap_linktype(NULL), -EINVAL);
	assert_non_null(rp_cap_errmsg(NULL));
	rp_cap_close(NULL);
}

/* A pcap file as the source: the same events as live, EOF as -ENODATA, the filter applies, and a
 * dump to a caller's stream holds every frame read. Frames come from the decoder's corpus. */
static size_t corpus(const char *name, uint8_t *buf, size_t cap)
{
	char path[256];
	snprintf(path, sizeof(path), "tests/corpus/decode/%s", name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	assert_true(n > 1 && buf[0] == 0);          /* byte 0 picks the link type: 0 = Ethernet */
	memmove(buf, buf + 1, n - 1);
	return n - 1;
}

static void put_record(FILE *f, uint32_t sec, const uint8_t *frame, size_t n)
{
	uint32_t rec[4] = { sec, 250000000u, (uint32_t)n, (uint32_t)n };   /* ns-resolution file */
	assert_int_equal(fwrite(rec, sizeof(rec), 1, f), 1);
	assert_int_equal(fwrite(frame, 1, n, f), n);
}

/* A nanosecond pcap in fd of three frames: a SYN-ACK, an ICMP echo (nothing reportable), a RST. */
static void write_three(int fd)
{
	FILE *f = fdopen(fd, "wb");
	assert_non_null(f);
	/* nanosecond pcap: magic a1b23c4d, v2.4, snaplen 65535, LINKTYPE_ETHERNET */
	uint32_t gh[6] = { 0xa1b23c4du, 0x00040002u, 0, 0, 65535, 1 };
	assert_int_equal(fwrite(gh, sizeof(gh), 1, f), 1);
	uint8_t fr[2048];
	size_t n = corpus("eth-synack-opts", fr, sizeof(fr));
	put_record(f, 1000, fr, n);
	n = corpus("eth-icmp-echo", fr, sizeof(fr));
	put_record(f, 1001, fr, n);
	n = corpus("eth-rst", fr, sizeof(fr));
	put_record(f, 1002, fr, n);
	fclose(f);
}

static void read_file_source(void **state)
{
	(void)state;
	char path[] = "/tmp/rp-capfile.XXXXXX", dump[] = "/tmp/rp-capdump.XXXXXX";
	int fd = mkstemp(path), dfd = mkstemp(dump);
	assert_true(fd >= 0 && dfd >= 0);
	write_three(fd);

	struct rp_cap *c = NULL;
	char err[256] = "";
	FILE *df = fdopen(dfd, "wb");
	struct rp_cap_opts o = { .read_path = path, .dump_file = df };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
	assert_int_equal(rp_cap_fd(c), -1);
	assert_int_equal(rp_cap_wait(c, 1000), 1);
	struct rp_event ev;
	assert_int_equal(rp_cap_next(c, &ev), 1);
	assert_true(ev.flags & RP_TH_SYN);
	assert_int_equal(ev.ts_ns, 1000ull * 1000000000ull + 250000000ull);
	assert_int_equal(rp_cap_next(c, &ev), 1);
	assert_true(ev.flags & RP_TH_RST);
	assert_int_equal(rp_cap_next(c, &ev), -ENODATA);
	assert_int_equal(rp_cap_wait(c, 1000), -ENODATA);
	struct rp_cap_stats st;
	assert_int_equal(rp_cap_stats(c, &st), 0);
	assert_int_equal(st.frames, 3);
	assert_int_equal(st.decoded, 2);
	assert_int_equal(st.dumped, 3);
	rp_cap_close(c);

	/* the dump is a pcap of the same three frames; read back through a filter, only the RST */
	o = (struct rp_cap_opts){ .read_path = dump, .filter = "tcp[tcpflags] & tcp-rst != 0" };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
	assert_int_equal(rp_cap_next(c, &ev), 1);
	assert_true(ev.flags & RP_TH_RST);
	assert_int_equal(rp_cap_next(c, &ev), -ENODATA);
	rp_cap_close(c);

	/* not a pcap file; no such file */
	assert_int_equal(rp_cap_open(&(struct rp_cap_opts){ .read_path = "tests/corpus/decode/eth-rst" }, &c, err,
				     sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	assert_int_equal(rp_cap_open(&(struct rp_cap_opts){ .read_path = "/nonexistent/x.pcap" }, &c, err,
				     sizeof(err)), -ENOENT);
	unlink(path);
	unlink(dump);
}

/* rp_cap_set_tuple: one connection, both directions, nothing else (the SYN-ACK of the three frames is
 * the connection; the ICMP echo never matches) */
static int count_events(struct rp_cap *c)
{
	struct rp_event ev;
	int n = 0, r;
	while ((r = rp_cap_next(c, &ev)) == 1)
		n++;
	assert_int_equal(r, -ENODATA);
	return n;
}

static void tuple_filter(void **state)
{
	(void)state;
	char path[] = "/tmp/rp-captuple.XXXXXX", err[256] = "";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	write_three(fd);
	struct rp_cap *c = NULL;
	struct rp_event ev;
	struct rp_cap_opts o = { .read_path = path };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
	assert_int_equal(rp_cap_next(c, &ev), 1);
	assert_true(ev.flags & RP_TH_SYN);
	struct rp_tuple t = ev.tuple;      /* the SYN-ACK's: from the remote end to us */
	assert_int_equal(rp_cap_next(c, &ev), 1);
	bool rst_same = ev.tuple.saddr == t.saddr && ev.tuple.daddr == t.daddr && ev.tuple.sport == t.sport &&
			ev.tuple.dport == t.dport;
	rp_cap_close(c);
	/* seen from either end it is the same connection */
	for (int side = 0; side < 2; side++) {
		assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
		assert_int_equal(side ? rp_cap_set_tuple(c, t.saddr, t.sport, t.daddr, t.dport)
				      : rp_cap_set_tuple(c, t.daddr, t.dport, t.saddr, t.sport), 0);
		assert_int_equal(count_events(c), rst_same ? 2 : 1);
		rp_cap_close(c);
	}
	/* another port: nothing */
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
	assert_int_equal(rp_cap_set_tuple(c, t.daddr, (uint16_t)(t.dport + 1), t.saddr, t.sport), 0);
	assert_int_equal(count_events(c), 0);
	rp_cap_close(c);
	assert_int_equal(rp_cap_set_tuple(NULL, t.daddr, t.dport, t.saddr, t.sport), -EINVAL);
	unlink(path);
}

/* verify_csum: a segment with a checksum that does not verify is dropped and counted, as a receiving
 * kernel drops it; one whose checksum was left to the sender's NIC (the field holds the pseudo-header
 * sum, as veth passes a kernel's segments on) passes. */
static void verify_checksums(void **state)
{
	(void)state;
	char path[] = "/tmp/rp-capcsum.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "wb");
	uint32_t gh[6] = { 0xa1b23c4du, 0x00040002u, 0, 0, 65535, 1 };
	assert_int_equal(fwrite(gh, sizeof(gh), 1, f), 1);
	uint8_t good[2048], bad[2048], off[2048];
	size_t n = corpus("eth-rst", good, sizeof(good));
	size_t ihl = (size_t)(good[14] & 15) * 4, tcp = 14 + ihl;
	uint16_t tot = (uint16_t)(good[16] << 8 | good[17]);
	uint32_t src, dst;
	memcpy(&src, good + 14 + 12, 4);
	memcpy(&dst, good + 14 + 16, 4);
	/* the corpus frame's TCP checksum is not filled in: fill it */
	good[tcp + 16] = good[tcp + 17] = 0;
	uint16_t ck = us_cksum_finish(us_cksum_add(us_cksum_pseudo4(src, dst, 6, (uint32_t)(tot - ihl)), good + tcp,
						   (size_t)(tot - ihl)));
	good[tcp + 16] = (uint8_t)(ck >> 8);
	good[tcp + 17] = (uint8_t)ck;
	memcpy(bad, good, n);
	memcpy(off, good, n);
	bad[tcp + 16] ^= 0x5a;                                     /* a flipped checksum */
	uint16_t ps = us_cksum_fold(us_cksum_pseudo4(src, dst, 6, (uint32_t)(tot - ihl)));
	off[tcp + 16] = (uint8_t)(ps >> 8);                         /* offload: the pseudo-header sum */
	off[tcp + 17] = (uint8_t)ps;
	put_record(f, 1, good, n);
	put_record(f, 2, bad, n);
	put_record(f, 3, off, n);
	fclose(f);
	for (int verify = 0; verify <= 1; verify++) {
		struct rp_cap *c = NULL;
		char err[256] = "";
		struct rp_cap_opts o = { .read_path = path, .verify_csum = verify };
		struct rp_event ev;
		int got = 0;
		assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
		while (rp_cap_next(c, &ev) == 1)
			got++;
		struct rp_cap_stats st;
		assert_int_equal(rp_cap_stats(c, &st), 0);
		assert_int_equal(got, verify ? 2 : 3);
		assert_int_equal(st.bad_csum, verify ? 1 : 0);
		rp_cap_close(c);
	}
	unlink(path);
}

/* capdump: a thread reads the capture (and so writes its dump) on its own; stop writes the rest and
 * closes it: every frame is in the dump, and counted. */
static void capdump_thread(void **state)
{
	(void)state;
	char path[] = "/tmp/rp-capfile.XXXXXX", dump[] = "/tmp/rp-capdump.XXXXXX";
	int fd = mkstemp(path), dfd = mkstemp(dump);
	assert_true(fd >= 0 && dfd >= 0);
	write_three(fd);
	struct rp_cap *c = NULL;
	struct rp_capdump *d = NULL;
	char err[256] = "";
	struct rp_cap_opts o = { .read_path = path, .dump_file = fdopen(dfd, "wb") };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
	assert_int_equal(rp_capdump_start(c, &d), 0);
	struct rp_cap_stats st;
	rp_capdump_stop(d, 50, &st);
	assert_int_equal(st.frames, 3);
	assert_int_equal(st.dumped, 3);

	o = (struct rp_cap_opts){ .read_path = dump };
	assert_int_equal(rp_cap_open(&o, &c, err, sizeof(err)), 0);
	const uint8_t *f;
	size_t n;
	int frames = 0, r;
	while ((r = rp_cap_next_raw(c, &f, &n, NULL, NULL)) == 1)
		frames++;
	assert_int_equal(r, -ENODATA);
	assert_int_equal(frames, 3);
	rp_cap_close(c);
	assert_int_equal(rp_capdump_start(NULL, &d), -EINVAL);
	rp_capdump_stop(NULL, 0, NULL);
	unlink(path);
	unlink(dump);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_options),
		cmocka_unit_test(no_such_interface),
		cmocka_unit_test(null_handles),
		cmocka_unit_test(read_file_source),
		cmocka_unit_test(tuple_filter),
		cmocka_unit_test(capdump_thread),
		cmocka_unit_test(verify_checksums),
	};
	return cmocka_run_group_tests_name("capture_api", tests, NULL, NULL);
}
