/* SPDX-License-Identifier: MIT */
/* Kernel RST suppression with an nftables table per process (see guard.h). */
#include "rawpunch/net/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rawpunch/net/craft.h"

static atomic_uint guard_seq;    /* guards opened by this process so far */

struct rp_guard {
	struct nft_ctx *nft;      /* its netlink socket owns the table ('flags owner') */
	char table[32];
	char err[512];
};

/* 1-10 digits, no leading zero, <= INT32_MAX; returns the characters used or 0. */
static size_t number(const char *s, long *out)
{
	size_t i;
	long v = 0;
	if (s[0] < '1' || s[0] > '9')
		return 0;
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i >= 10)
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	if (v > 0x7fffffffL)
		return 0;
	*out = v;
	return i;
}

bool rp_guard_parse_name(const char *s, long *pid)
{
	size_t n = strlen(RP_GUARD_PREFIX), k;
	long v, seq;
	if (!s || strncmp(s, RP_GUARD_PREFIX, n))
		return false;
	s += n;
	k = number(s, &v);
	if (!k)
		return false;
	s += k;
	if (*s == '_') {               /* a process's second and later guards: rawpunch_<pid>_<k> */
		k = number(s + 1, &seq);
		if (!k || s[1 + k])
			return false;
	} else if (*s) {
		return false;
	}
	if (pid)
		*pid = v;
	return true;
}

static int errno_from_text(const char *t)
{
	if (!t)
		return -EIO;
	if (strstr(t, "Operation not permitted"))
		return -EPERM;
	if (strstr(t, "No such file or directory"))
		return -ENOENT;
	if (strstr(t, "File exists"))
		return -EEXIST;
	if (strstr(t, "Device or resource busy"))
		return -EBUSY;
	if (strstr(t, "Protocol not supported") || strstr(t, "Operation not supported"))
		return -EOPNOTSUPP;
	return -EIO;
}

/* Run cmd; on failure keep the error text in err (if given) and map it to -errno. */
static int run(struct nft_ctx *nft, const char *cmd, char *err, size_t errlen)
{
	int r = nft_run_cmd_from_buffer(nft, cmd);
	const char *et = nft_ctx_get_error_buffer(nft);
	if (r == 0)
		return 0;
	if (err && errlen) {
		snprintf(err, errlen, "%s", et && *et ? et : "nftables command failed");
		size_t l = strlen(err);
		while (l && err[l - 1] == '\n')
			err[--l] = 0;
	}
	return errno_from_text(et);
}

static struct nft_ctx *ctx_new(void)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!nft)
		return NULL;
	if (nft_ctx_buffer_output(nft) || nft_ctx_buffer_error(nft)) {
		nft_ctx_free(nft);
		return NULL;
	}
	return nft;
}

static int sweep_with(struct nft_ctx *nft)
{
	char *list, *save = NULL, *line;
	const char *out;
	int removed = 0, r;

	r = run(nft, "list tables inet", NULL, 0);
	if (r)
		return r;
	out = nft_ctx_get_output_buffer(nft);
	list = strdup(out ? out : "");
	if (!list)
		return -ENOMEM;
	for (line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64], cmd[128];
		long pid;
		if (sscanf(line, "table inet %63s", name) != 1 || !rp_guard_parse_name(name, &pid))
			continue;
		if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;   /* alive (or not ours to judge): leave it */
		snprintf(cmd, sizeof(cmd), "delete table inet %s", name);
		if (run(nft, cmd, NULL, 0) == 0)
			removed++;
	}
	free(list);
	return removed;
}

int rp_guard_sweep(void)
{
	struct nft_ctx *nft = ctx_new();
	int r;
	if (!nft)
		return -ENOMEM;
	r = sweep_with(nft);
	nft_ctx_free(nft);
	return r;
}

int rp_guard_open(struct rp_guard **out, char *err, size_t errlen)
{
	struct rp_guard *g;
	char cmd[1024];
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->nft = ctx_new();
	if (!g->nft) {
		free(g);
		return -ENOMEM;
	}
	/* one table per guard: a process may run several attempts (threads, retries) at once */
	unsigned k = atomic_fetch_add(&guard_seq, 1u);
	if (k == 0)
		snprintf(g->table, sizeof(g->table), RP_GUARD_PREFIX "%ld", (long)getpid());
	else
		snprintf(g->table, sizeof(g->table), RP_GUARD_PREFIX "%ld_%u", (long)getpid(), k);
	(void)sweep_with(g->nft);   /* best effort; a failure here shows again just below */
	/* Only RSTs the kernel makes: rawpunch's own crafted packets carry RP_CRAFT_MARK. */
	snprintf(cmd, sizeof(cmd),
		 "create table inet %s { flags owner; }\n"
		 "add set inet %s flows { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags interval; }\n"
		 "add chain inet %s out { type filter hook output priority filter; policy accept; }\n"
		 "add rule inet %s out meta l4proto tcp meta mark 0x%08x return\n"
		 "add rule inet %s out tcp flags & rst == rst ip saddr . tcp sport . ip daddr . tcp dport @flows counter drop\n",
		 g->table, g->table, g->table, g->table, RP_CRAFT_MARK, g->table);
	r = run(g->nft, cmd, err, errlen);
	if (r) {
		nft_ctx_free(g->nft);
		free(g);
		return r;
	}
	*out = g;
	return 0;
}

static int elem(const struct rp_flow *f, char *buf, size_t cap)
{
	char la[INET_ADDRSTRLEN], ra[INET_ADDRSTRLEN];
	struct in_addr a;
	uint16_t lo = f->rport_lo, hi = f->rport_hi;
	if (!f->laddr || !f->lport || (lo == 0) != (hi == 0) || lo > hi)
		return -EINVAL;
	if (!lo) {
		lo = 0;
		hi = 65535;
	}
	a.s_addr = f->laddr;
	inet_ntop(AF_INET, &a, la, sizeof(la));
	if (f->raddr) {
		a.s_addr = f->raddr;
		inet_ntop(AF_INET, &a, ra, sizeof(ra));
		snprintf(buf, cap, "%s . %u . %s . %u-%u", la, f->lport, ra, lo, hi);
	} else {
		snprintf(buf, cap, "%s . %u . 0.0.0.0-255.255.255.255 . %u-%u", la, f->lport, lo, hi);
	}
	return 0;
}

static int set_op(struct rp_guard *g, const struct rp_flow *f, const char *op)
{
	char e[128], cmd[256];
	int r;
	if (!g || !f)
		return -EINVAL;
	r = elem(f, e, sizeof(e));
	if (r)
		return r;
	snprintf(cmd, sizeof(cmd), "%s element inet %s flows { %s }", op, g->table, e);
	return run(g->nft, cmd, g->err, sizeof(g->err));
}

int rp_guard_add(struct rp_guard *g, const struct rp_flow *f)
{
	return set_op(g, f, "add");
}

int rp_guard_del(struct rp_guard *g, const struct rp_flow *f)
{
	return set_op(g, f, "delete");
}

int64_t rp_guard_dropped(struct rp_guard *g)
{
	char cmd[128];
	const char *out, *p;
	int r;
	long long v;
	if (!g)
		return -EINVAL;
	snprintf(cmd, sizeof(cmd), "list chain inet %s out", g->table);
	r = run(g->nft, cmd, g->err, sizeof(g->err));
	if (r)
		return r;
	out = nft_ctx_get_output_buffer(g->nft);
	p = out ? strstr(out, "counter packets ") : NULL;
	if (!p || sscanf(p, "counter packets %lld", &v) != 1)
		return -EIO;
	return v;
}

void rp_guard_close(struct rp_guard *g)
{
	char cmd[64];
	if (!g)
		return;
	snprintf(cmd, sizeof(cmd), "delete table inet %s", g->table);
	(void)run(g->nft, cmd, NULL, 0);
	nft_ctx_free(g->nft);   /* closing the owner socket removes the table anyway */
	free(g);
}

const char *rp_guard_table(const struct rp_guard *g)
{
	return g ? g->table : "";
}

const char *rp_guard_errmsg(const struct rp_guard *g)
{
	return g ? g->err : "";
}
