/* SPDX-License-Identifier: MIT */
/* rp-turnctl: drive one TURN allocation step by step from a script (used by tests/lab/relay_turn.sh),
 * so a test can look at the server between the steps.
 *
 *   rp-turnctl SERVER[:PORT] SECRET_FILE      then commands on stdin, one per line:
 *     alloc            Allocate a TCP relay       -> "allocated IP:PORT LIFETIME"
 *     permit IP:PORT   CreatePermission           -> "ok"
 *     refresh S        Refresh for S seconds      -> "refreshed LIFETIME"
 *     release          Refresh with LIFETIME 0    -> "released"
 *     close            close the control connection and exit 0
 * A failed step prints "error CODE ERRNO-NAME REASON" (CODE 0 when the server sent no error
 * response) and the tool goes on. Credentials are coturn's TURN REST ones from the secret (name
 * "turnctl"). Exit 1 if the secret cannot be read, 2 on bad usage. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/base/io.h"
#include "rawpunch/probe/stun.h"
#include "rawpunch/relay/turn.h"

static void result(struct rp_turn *t, int r, const char *okfmt, ...) __attribute__((format(printf, 3, 4)));
static void result(struct rp_turn *t, int r, const char *okfmt, ...)
{
	if (r) {
		const struct rp_turn_error *e = rp_turn_last_error(t);
		printf("error %d %s %s\n", e->code, strerrorname_np(-r) ? strerrorname_np(-r) : "?",
		       e->code ? e->reason : strerror(-r));
	} else {
		va_list ap;
		va_start(ap, okfmt);
		vprintf(okfmt, ap);
		va_end(ap);
		putchar('\n');
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sockaddr_in srv, peer;
	struct rp_turn_cred cred;
	struct rp_turn *t;
	struct rp_turn_info in;
	char line[256], a[64];
	uint8_t *secret;
	size_t slen;
	unsigned long s;
	int r;
	if (argc != 3 || rp_parse_hostport(argv[1], RP_TURN_DEFAULT_PORT, &srv)) {
		fprintf(stderr, "usage: rp-turnctl SERVER[:PORT] SECRET_FILE (commands on stdin)\n");
		return 2;
	}
	if ((r = rp_io_read_file(argv[2], 4096, &secret, &slen)))
		return rp_err_errno(r, argv[2]);
	if (slen && secret[slen - 1] == '\n')
		slen--;
	r = rp_turn_rest_cred(secret, slen, (uint64_t)time(NULL) + 3600, "turnctl", &cred);
	free(secret);
	struct rp_turn_cfg cfg = { .server = srv, .cred = &cred };
	if (r || (r = rp_turn_new(&cfg, &t)))
		return rp_err_errno(r, "rp-turnctl");
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!strcmp(line, "alloc")) {
			r = rp_turn_allocate(t);
			rp_turn_get_info(t, &in);
			rp_sin_str(&in.relayed, a, sizeof(a));
			result(t, r, "allocated %s %u", a, in.lifetime_s);
		} else if (!strncmp(line, "permit ", 7) && !rp_parse_hostport(line + 7, 0, &peer)) {
			result(t, rp_turn_permit(t, &peer), "ok");
		} else if (!strncmp(line, "refresh ", 8) && !rp_parse_ulong(line + 8, 0, 86400, &s)) {
			r = rp_turn_refresh(t, (uint32_t)s);
			rp_turn_get_info(t, &in);
			result(t, r, "refreshed %u", in.lifetime_s);
		} else if (!strcmp(line, "release")) {
			result(t, rp_turn_release(t), "released");
		} else if (!strcmp(line, "close")) {
			break;
		} else {
			printf("error 0 EINVAL unknown command '%s'\n", line);
			fflush(stdout);
		}
	}
	rp_turn_close(t);
	return 0;
}
