/* SPDX-License-Identifier: MIT */
/* rawpunch punch's data mode (punch_cli.h): the handed-off kernel socket relayed to stdin/stdout, to
 * an exec'd command, or to the first client of a local listening port (-L). */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/cli/punch_cli.h"

struct fwd_ctx {
	int fd;
};

static int dial_once(void *arg)
{
	struct fwd_ctx *f = arg;
	int fd = __atomic_exchange_n(&f->fd, -1, __ATOMIC_SEQ_CST);
	return fd >= 0 ? fd : -EBUSY;
}

int punch_data_mode(const struct punch_cfg *c, int fd, int lfd, bool handback, struct rp_relay_stats *rs)
{
	switch (c->mode) {
	case PUNCH_EXEC: {
		int st = rp_fd_exec(fd, c->exec_cmd);
		close(fd);
		if (st < 0) {
			char what[300];
			snprintf(what, sizeof(what), "--exec '%.200s'", c->exec_cmd);
			return rp_err_errno(st, what);
		}
		return st == 0 ? 0 : rp_err("--exec: '%s' exited with status %d", c->exec_cmd, st);
	}
	case PUNCH_FORWARD: {
		struct fwd_ctx f = { .fd = fd };
		struct rp_forward_opts fo = { .max_clients = 1, .max_parallel = 1, .stop_fd = -1, .handback = handback };
		struct rp_forward_stats fs;
		int r = rp_forward(lfd, dial_once, &f, &fo, &fs);
		close(lfd);
		if (f.fd >= 0)
			close(f.fd);
		rs->a_to_b = fs.up_bytes;
		rs->b_to_a = fs.down_bytes;
		if (r < 0) {
			char what[300];
			snprintf(what, sizeof(what), "-L %.200s", c->fwd_spec);
			return rp_err_errno(r, what);
		}
		return fs.failed ? rp_err("-L %s: the relay ended with an error", c->fwd_spec) : 0;
	}
	default: {
		int r = handback ? rp_relay_handback(STDIN_FILENO, STDOUT_FILENO, fd, rs) : rp_fd_stdio(fd, rs);
		close(fd);
		if (r < 0 && r != -ECONNRESET)
			return rp_err_errno(r, "the punched connection (stdin/stdout)");
		if (r == -ECONNRESET)
			return rp_err("the peer reset the connection");
		return 0;
	}
	}
}
