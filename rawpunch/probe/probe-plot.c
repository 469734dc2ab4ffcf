/* SPDX-License-Identifier: MIT */
/* The NAT probe's plot (rp_probe_plot(), see probe.h): external port against time, drawn by
 * gnuplot, which gets data and script on its stdin (no temporary files) and writes the image to its
 * stdout, the caller's file. */
#include "rawpunch/probe/probe-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"

extern char **environ;

int rp_probe_plot(const struct rp_probe_report *r, const char *name, int fd)
{
	const char *ext = name ? strrchr(name, '.') : NULL;
	const char *term;
	if (!ext || fd < 0)
		return -EINVAL;
	if (!strcasecmp(ext, ".png"))
		term = "pngcairo size 960,600 font 'sans,10'";
	else if (!strcasecmp(ext, ".svg"))
		term = "svg size 960,600 dynamic font 'sans,10'";
	else
		return -EINVAL;
	/* No temporary files: data and script go to gnuplot's stdin in one piece (the data as an inline
	 * datablock $D), so neither Ctrl-C nor a crash can leave anything behind in /tmp. */
	char *buf = NULL;
	size_t blen = 0;
	FILE *s = open_memstream(&buf, &blen), *d = s;
	if (!s)
		return -ENOMEM;
	fprintf(d, "$D << EOD\n");
	uint64_t t0 = probe_first_mono(r), tl = 0;
	/* blocks: 0 mapping tests, 1 allocation samples, 2 predicted window */
	for (int blk = 0; blk < 2; blk++) {
		unsigned rows = 0;
		for (unsigned i = 0; i < r->n_samples; i++) {
			const struct rp_probe_sample *x = &r->samples[i];
			if (!x->ok || (blk == 0) != (x->kind != RP_SAMPLE_ALLOC))
				continue;
			fprintf(d, "%.6f %u %u\n", (double)(x->t_mono_ns - t0) / 1e9, x->mapped_port, x->local_port);
			rows++;
			if (x->t_mono_ns > tl)
				tl = x->t_mono_ns;
		}
		if (!rows)
			fprintf(d, "0 -1 -1\n");   /* keeps an empty block plottable, off the scale */
		fprintf(d, "\n\n");
	}
	double tlast = tl > t0 ? (double)(tl - t0) / 1e9 : 0, th = tlast + r->horizon_s;
	for (unsigned i = 0; i < r->pred.n; i++)
		fprintf(d, "%.6f %u\n", th, r->pred.ports[i]);
	if (!r->pred.n)
		fprintf(d, "0 -1\n");
	fprintf(d, "EOD\n");
	unsigned lo = 65535, hi = 0;
	for (unsigned i = 0; i < r->n_samples; i++)
		if (r->samples[i].ok) {
			unsigned p = r->samples[i].mapped_port, q = r->samples[i].local_port;
			lo = p < lo ? p : lo;
			hi = p > hi ? p : hi;
			if (r->samples[i].kind == RP_SAMPLE_ALLOC && r->ni.alloc == RP_ALLOC_PRESERVING) {
				lo = q < lo ? q : lo;
				hi = q > hi ? q : hi;
			}
		}
	for (unsigned i = 0; i < r->pred.n; i++) {
		lo = r->pred.ports[i] < lo ? r->pred.ports[i] : lo;
		hi = r->pred.ports[i] > hi ? r->pred.ports[i] : hi;
	}
	if (lo > hi)
		lo = 0, hi = 65535;
	unsigned pad = (hi - lo) / 10 + 2;
	char title[256], sub[256];
	if (r->ni.has_delta)
		snprintf(title, sizeof(title), "NAT allocation: %s, delta %d (jitter %.2f), mapping %s, filtering %s",
			 rp_alloc_str(r->ni.alloc), r->ni.delta, r->ni.jitter, rp_mapping_str(r->ni.mapping),
			 rp_filter_str(r->ni.filtering));
	else
		snprintf(title, sizeof(title), "NAT allocation: %s, mapping %s, filtering %s",
			 rp_alloc_str(r->ni.alloc), rp_mapping_str(r->ni.mapping), rp_filter_str(r->ni.filtering));
	snprintf(sub, sizeof(sub), "predicted %u port(s) for a new flow %.2f s after the last sample, confidence %.2f",
		 r->pred.n, r->horizon_s, r->pred.confidence);
	fprintf(s, "set terminal %s\nset output\n", term);   /* no name: stdout, our fd */
	fprintf(s, "set title \"%s\\n{/*0.9 %s}\" enhanced\n", title, sub);
	fprintf(s, "set xlabel 'time since the first flow (s)'\nset ylabel 'external port'\n");
	fprintf(s, "set grid\nset key outside bottom center horizontal\nset format y '%%.0f'\n");
	fprintf(s, "set yrange [%u:%u]\nset xrange [-0.02:%.6f]\n", lo > pad ? lo - pad : 0,
		hi + pad > 65535 ? 65535 : hi + pad, th + 0.1 * (th > 0 ? th : 1));
	if (r->pred.n)
		fprintf(s, "set object 1 rect from %.6f,%u to %.6f,%u fc rgb '#ffd0a0' fs transparent solid 0.4 noborder behind\n",
			tlast, r->pred.ports[0] < r->pred.ports[r->pred.n - 1] ? r->pred.ports[0] : r->pred.ports[r->pred.n - 1],
			th, r->pred.ports[0] < r->pred.ports[r->pred.n - 1] ? r->pred.ports[r->pred.n - 1] : r->pred.ports[0]);
	fprintf(s, "plot $D index 1 using 1:2 with linespoints pt 7 ps 1.2 lc rgb '#1f77b4' title 'external port (new flows)', \\\n"
		   "     $D index 1 using 1:(%d ? $3 : 1/0) with points pt 2 ps 1.6 lc rgb '#7f7f7f' title 'local port (on a dot: preserved)', \\\n"
		   "     $D index 0 using 1:2 with points pt 5 ps 1.4 lc rgb '#2ca02c' title 'RFC 5780 tests (punch port)', \\\n"
		   "     $D index 2 using 1:2 with points pt 6 ps 1.0 lc rgb '#d62728' title 'predicted window'\n",
		r->ni.alloc == RP_ALLOC_PRESERVING);
	if (fclose(s)) {
		free(buf);
		return -ENOMEM;
	}
	/* a socket, not a pipe: send(MSG_NOSIGNAL) gets EPIPE instead of killing us if gnuplot dies early */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = -errno;
		free(buf);
		return e;
	}
	pid_t pid;
	char *argv[] = { "gnuplot", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int ret = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (ret) {
		close(sv[0]);
		free(buf);
		return ret == ENOENT ? -ENOENT : -ret;
	}
	/* if gnuplot goes away early (EPIPE) or stalls, its exit status tells */
	(void)rp_io_write_all(sv[0], buf, blen, rp_mono_ns() + 30000000000ull);
	close(sv[0]);
	free(buf);
	int st = 0;
	pid_t w;
	while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (w < 0)
		return -errno;             /* e.g. ECHILD with SIGCHLD ignored: the outcome is unknown */
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -EIO;
	/* gnuplot exits 0 even when its stdout refuses the image: an empty file is a failure too */
	struct stat sb;
	if (!fstat(fd, &sb) && S_ISREG(sb.st_mode) && sb.st_size == 0)
		return -EIO;
	return 0;
}
