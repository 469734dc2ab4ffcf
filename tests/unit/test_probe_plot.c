/* SPDX-License-Identifier: MIT */
/* rp_probe_plot: draws a PNG/SVG through gnuplot's stdin (no temporary files) into the caller's fd
 * (gnuplot never gets a file name: a '|cmd' name runs nothing), refuses bad names and fds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rawpunch/probe/probe.h"

static struct rp_probe_report rep;

/* rp_probe_plot into a new file path, under the name name (the extension picks the format) */
static int plot_to(const char *path, const char *name)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	int r = rp_probe_plot(&rep, name, fd);
	close(fd);
	return r;
}

static void fill(void)
{
	memset(&rep, 0, sizeof(rep));
	for (unsigned i = 0; i < 12; i++) {
		struct rp_probe_sample *x = &rep.samples[rep.n_samples++];
		x->ok = true;
		x->kind = i < 3 ? RP_SAMPLE_TEST1 : RP_SAMPLE_ALLOC;
		x->t_mono_ns = 1000000000ull + i * 50000000ull;
		x->local_port = (uint16_t)(40000 + i);
		x->mapped_port = (uint16_t)(20000 + 2 * i);
	}
	rep.pred.n = 3;
	rep.pred.ports[0] = 20030, rep.pred.ports[1] = 20032, rep.pred.ports[2] = 20034;
	rep.horizon_s = 0.5;
}

static void test_plot_png_svg(void **st)
{
	(void)st;
	char dir[] = "/tmp/rp-plot-test-XXXXXX", png[64], svg[64];
	assert_non_null(mkdtemp(dir));
	snprintf(png, sizeof(png), "%s/p.png", dir);
	snprintf(svg, sizeof(svg), "%s/p.svg", dir);
	fill();
	assert_int_equal(plot_to(png, png), 0);
	struct stat sb;
	assert_int_equal(stat(png, &sb), 0);
	assert_true(sb.st_size > 1000);
	FILE *f = fopen(png, "rb");
	unsigned char sig[8];
	assert_int_equal(fread(sig, 1, 8, f), 8);
	fclose(f);
	assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
	assert_int_equal(plot_to(svg, svg), 0);
	f = fopen(svg, "r");
	char head[4096] = { 0 };
	assert_true(fread(head, 1, sizeof(head) - 1, f) > 100);
	fclose(f);
	assert_non_null(strstr(head, "<svg"));
	/* an empty report still draws (placeholder rows keep every block plottable) */
	memset(&rep, 0, sizeof(rep));
	unlink(png);
	assert_int_equal(plot_to(png, png), 0);
	assert_int_equal(stat(png, &sb), 0);
	unlink(png);
	unlink(svg);
	assert_int_equal(rmdir(dir), 0);   /* nothing else was written there */
}

static void test_plot_bad_names(void **st)
{
	(void)st;
	char dir[] = "/tmp/rp-plot-test-XXXXXX", out[64], mark[64], name[160];
	assert_non_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(mark, sizeof(mark), "%s/ran", dir);
	fill();
	assert_int_equal(plot_to(out, "/tmp/x.gif"), -EINVAL);
	assert_int_equal(plot_to(out, "/tmp/noext"), -EINVAL);
	assert_int_equal(plot_to(out, NULL), -EINVAL);
	assert_int_equal(rp_probe_plot(&rep, "x.png", -1), -EINVAL);
	/* the name only picks the format: a pipe or a quote in it reaches no shell, the image goes to fd */
	snprintf(name, sizeof(name), "|touch %s; echo it's.png", mark);
	assert_int_equal(plot_to(out, name), 0);
	struct stat sb;
	assert_int_equal(stat(mark, &sb), -1);
	assert_int_equal(stat(out, &sb), 0);
	assert_true(sb.st_size > 1000);
	/* gnuplot cannot write its image (a read-only fd): -EIO, not success */
	assert_int_equal(truncate(out, 0), 0);
	int fd = open(out, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(rp_probe_plot(&rep, "x.png", fd), -EIO);
	close(fd);
	unlink(out);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plot_png_svg),
		cmocka_unit_test(test_plot_bad_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
