/* SPDX-License-Identifier: MIT */
/* afp_ceiling: the smallest AF_PACKET SYN sender we could write, used by tools/bench/burst as the
 * machine's ceiling. All frames are built before the clock starts (one per destination port, up to
 * 4096 distinct), then sent with sendmmsg batches of 64 on a PACKET_QDISC_BYPASS socket per
 * thread. No pacing, no cookies, no per-packet work at all: the cost of the kernel path alone.
 *
 *   afp_ceiling IFACE SRC DST DSTMAC COUNT [THREADS]
 * Prints "sent N elapsed_s S" on stdout. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "userstack/cksum.h"
#include "userstack/extract.h"

#define NFRAMES 4096
#define FLEN 54
#define BATCH 64

static uint8_t frames[NFRAMES][FLEN];
static int ifindex;
static unsigned long long per_thread[64];
static _Atomic unsigned long long total_sent;

static void build(uint8_t *f, const uint8_t dmac[6], const uint8_t smac[6], uint32_t src, uint32_t dst,
		  uint16_t sport, uint16_t dport, uint32_t seq)
{
	uint8_t *ip = f + 14, *tcp = ip + 20;
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	us_put_be16(f + 12, 0x0800);
	memset(ip, 0, 40);
	ip[0] = 0x45; ip[3] = 40; ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	us_put_be16(ip + 10, us_cksum_ipv4(ip, 20));
	us_put_be16(tcp, sport);
	us_put_be16(tcp + 2, dport);
	us_put_be32(tcp + 4, seq);
	tcp[12] = 0x50; tcp[13] = 0x02; tcp[14] = 0xfa; tcp[15] = 0xf0;
	us_put_be16(tcp + 16, us_cksum_ipv4_l4(src, dst, 6, tcp, 20, 16));
}

static void *sender(void *arg)
{
	unsigned long long *want = arg, sent = 0;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_protocol = htons(ETH_P_IP) };
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	int one = 1, fd = socket(AF_PACKET, SOCK_RAW, 0);
	unsigned k = (unsigned)(want - per_thread) * 977;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0) {
		perror("afp_ceiling: socket");
		exit(1);
	}
	memset(msgs, 0, sizeof(msgs));
	while (sent < *want) {
		unsigned n = *want - sent < BATCH ? (unsigned)(*want - sent) : BATCH;
		for (unsigned i = 0; i < n; i++, k++) {
			iov[i].iov_base = frames[k % NFRAMES];
			iov[i].iov_len = FLEN;
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
				continue;
			perror("afp_ceiling: sendmmsg");
			exit(1);
		}
		sent += (unsigned)r;
		k -= n - (unsigned)r;
	}
	atomic_fetch_add(&total_sent, sent);
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct in_addr s, d;
	unsigned m[6];
	uint8_t dmac[6], smac[6];
	struct ifreq ifr;
	struct timespec t0, t1;
	pthread_t th[64];
	unsigned long long count;
	int threads = argc > 6 ? atoi(argv[6]) : 1;

	if (argc < 6 || inet_pton(AF_INET, argv[2], &s) != 1 || inet_pton(AF_INET, argv[3], &d) != 1 ||
	    sscanf(argv[4], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6 ||
	    threads < 1 || threads > 64) {
		fprintf(stderr, "usage: afp_ceiling IFACE SRC DST DSTMAC COUNT [THREADS]\n");
		return 2;
	}
	count = strtoull(argv[5], NULL, 10);
	for (int i = 0; i < 6; i++)
		dmac[i] = (uint8_t)m[i];
	ifindex = (int)if_nametoindex(argv[1]);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (!ifindex || fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		fprintf(stderr, "afp_ceiling: interface %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	close(fd);
	memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
	for (int i = 0; i < NFRAMES; i++)
		build(frames[i], dmac, smac, s.s_addr, d.s_addr, 40000, (uint16_t)(1 + i), 0x10000000u + (uint32_t)i);
	for (int i = 0; i < threads; i++)
		per_thread[i] = count / (unsigned)threads + ((unsigned)i < count % (unsigned)threads);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, sender, &per_thread[i]);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("sent %llu elapsed_s %.6f\n", (unsigned long long)atomic_load(&total_sent),
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
