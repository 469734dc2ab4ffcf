/* SPDX-License-Identifier: MIT */
/* rxwatch: time what arrives on an interface, for tools/bench/burst. Polls the interface's
 * rx_packets (sysfs, in the namespace it runs in): every 1 ms until traffic starts and again when
 * the target is near (from the rate seen so far), and only every 20 ms in between, so that the
 * watcher takes next to no CPU from the sender it measures on a small machine. Exits when TARGET more packets than
 * at start have arrived, when no packet arrived for IDLE_MS after the first one, or after
 * MAX_MS in all. Prints: "rx N first_s T0 last_s T1 pps P" where T0 is the poll that first saw
 * traffic, T1 the poll that saw the last packet, both relative to the start.
 *
 *   rxwatch IFACE TARGET IDLE_MS MAX_MS [READYFILE] */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long rd(int fd)
{
	char b[32];
	ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
	if (n <= 0)
		return 0;
	b[n] = 0;
	return strtoull(b, NULL, 10);
}

int main(int argc, char **argv)
{
	char path[256];
	if (argc < 5) {
		fprintf(stderr, "usage: rxwatch IFACE TARGET IDLE_MS MAX_MS [READYFILE]\n");
		return 2;
	}
	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/rx_packets", argv[1]);
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "rxwatch: %s: %s\n", path, strerror(errno));
		return 1;
	}
	unsigned long long target = strtoull(argv[2], NULL, 10), base = rd(fd), last = base, v;
	double idle = atof(argv[3]) / 1e3, max = atof(argv[4]) / 1e3;
	double t0 = now_s(), first = -1, lastt = -1, prevt = t0;
	struct timespec ms = { 0, 1000000 };
	if (argc > 5) {
		FILE *f = fopen(argv[5], "w");
		if (f)
			fclose(f);
	}
	for (;;) {
		ms.tv_nsec = 1000000;
		if (first >= 0 && lastt > first) {
			double rate = (double)(last - base) / (lastt - first);
			double left = rate > 0 ? (double)(target - (last - base)) / rate : 0;
			if (left > 0.06)
				ms.tv_nsec = 20000000;
		}
		nanosleep(&ms, NULL);
		double t = now_s();
		v = rd(fd);
		if (v != last) {
			if (first < 0)
				first = prevt;   /* traffic began after the previous poll */
			lastt = t;
			last = v;
		}
		prevt = t;
		if (last - base >= target)
			break;
		if (first >= 0 && t - lastt > idle)
			break;
		if (t - t0 > max)
			break;
	}
	double span = lastt - first;
	printf("rx %llu first_s %.4f last_s %.4f pps %.0f\n", last - base, first < 0 ? 0 : first - t0,
	       lastt < 0 ? 0 : lastt - t0, span > 0 ? (double)(last - base) / span : 0);
	return 0;
}
