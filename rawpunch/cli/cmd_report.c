/* SPDX-License-Identifier: MIT */
/* rawpunch report FILE.json [FILE2.json]: a punch --report as people read it. Per file: which plan side
 * this host was and its kind, its NAT's allocation and its action; per round what was sent (primes, SYNs,
 * handshake segments, TTL, local and remote port counts), what was seen (valid SYN / SYN-ACK, RST, ICMP,
 * forged) and why it ended; then the result (path, local <-> remote, packets, probe / punch / connect
 * times) or the stage it failed in. Every file is read and checked before anything is printed: a file
 * that is not JSON, is cut short, or is not a report is exit status 2 with the reason. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/cli/cli.h"

#define REPORT_MAX_BYTES (16u << 20)   /* a report is a few KiB; refuse anything absurd */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch report FILE.json [FILE2.json]\n\n"
		"Print a report written by 'rawpunch punch --report FILE.json' as people read it, one block per\n"
		"file (give both sides' reports to see the two halves of one attempt). Each block is named after\n"
		"its file (a.json -> a):\n"
		"  NAME (plan side a|b, easy|hard): <allocation> NAT, action <action>\n"
		"     round N: sent P primes + S SYNs (TTL t) from L local port(s) (planned: R remote port(s)), H handshake segments\n"
		"              seen: valid SYN, valid SYN-ACK, RST, ICMP and forged packets (and stray\n"
		"              ones: valid, but on none of the round's pairs, when there were any)\n"
		"              -> why the round ended\n"
		"     result: <path> handoff, local <-> remote, packets, probe / punch / connect times\n"
		"             (or: failed in stage X after T ms: why)\n"
		"Rounds are numbered from 1, as punch's status lines number them.\n\n"
		"Exit status: 0, or 2 when a file cannot be read, is not JSON, is cut short, or is not a punch\n"
		"report (nothing is printed then).\n");
}

/* ---- reading a report ------------------------------------------------------------------------------ */

/* Parse path into *out. 0, or the exit status after a message naming the file and what is wrong. */
static int report_load(const char *path, struct json_object **out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return rp_usage_err("report", "%s: %s", path, strerror(errno));
	char *buf = malloc(REPORT_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, REPORT_MAX_BYTES + 1, f) : 0;
	int rerr = ferror(f) ? errno : 0;   /* a directory opens, and fails here with EISDIR */
	fclose(f);
	if (!buf)
		return rp_err("report: out of memory");
	if (rerr || n > REPORT_MAX_BYTES) {
		free(buf);
		return rp_usage_err("report", "%s: %s", path, rerr ? strerror(rerr) : "larger than 16 MiB: not a punch report");
	}
	struct json_tokener *tok = json_tokener_new();
	if (!tok) {
		free(buf);
		return rp_err("report: out of memory");
	}
	struct json_object *root = json_tokener_parse_ex(tok, buf, (int)n);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t off = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	/* anything but blanks after the value is not one JSON document */
	size_t tail = off;
	while (root && tail < n && strchr(" \t\r\n", buf[tail]))
		tail++;
	free(buf);
	if (!root && n == 0)
		return rp_usage_err("report", "%s: empty file: not a punch report", path);
	if (e == json_tokener_continue)
		return rp_usage_err("report", "%s: truncated JSON (it ends after %zu bytes, inside a value): "
				    "was the punch interrupted while writing it?", path, n);
	if (!root)
		return rp_usage_err("report", "%s: not JSON (%s at byte %zu)", path, json_tokener_error_desc(e), off);
	if (tail < n) {
		json_object_put(root);
		return rp_usage_err("report", "%s: not one JSON document (more after byte %zu)", path, off);
	}
	static const struct { const char *key; json_type type; } need[] = {
		{ "version", json_type_int }, { "session", json_type_string },
		{ "rounds", json_type_array }, { "result", json_type_object },
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		struct json_object *v;
		if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, need[i].key, &v) ||
		    !json_object_is_type(v, need[i].type)) {
			json_object_put(root);
			return rp_usage_err("report", "%s: not a punch report (no \"%s\" %s); write one with "
					    "'rawpunch punch --report FILE'", path, need[i].key,
					    need[i].type == json_type_array ? "list" :
					    need[i].type == json_type_object ? "object" :
					    need[i].type == json_type_int ? "number" : "string");
		}
	}
	*out = root;
	return 0;
}

/* Members by a dotted-free key; the getters give a default when the member is missing or of the wrong
 * type, so an older or partial report still prints (with "?"). */
static struct json_object *jget(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v = jget(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "?";
}

static long long jint(struct json_object *o, const char *key)
{
	struct json_object *v = jget(o, key);
	return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) ?
		(long long)json_object_get_int64(v) : -1;
}

/* a number as text: "%.0f", or "?" when absent */
static const char *jms(struct json_object *o, const char *key, char *buf, size_t len)
{
	struct json_object *v = jget(o, key);
	if (!v || !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return "?";
	snprintf(buf, len, "%.0f", json_object_get_double(v));
	return buf;
}

/* ---- printing -------------------------------------------------------------------------------------- */

static void print_round(struct json_object *rd, size_t i)
{
	struct json_object *s = jget(rd, "sent"), *v = jget(rd, "seen"), *plan = jget(rd, "plan");
	const char *action = jstr(rd, "action");
	/* open-many sends its SYNs with the low TTL; every other action's SYNs go out at the default 64 */
	long long ttl = !strcmp(action, "open-many") ? jint(rd, "low_ttl") : 64;
	printf("   round %zu", i + 1);
	if (plan)
		printf(" (re-planned: %s)", jstr(plan, "method"));
	printf(": sent %lld primes + %lld SYNs (TTL %lld) from %lld local port(s) (planned: %lld remote port(s)), "
	       "%lld handshake segments\n", jint(s, "primes"), jint(s, "syns"), ttl, jint(jget(rd, "local_ports"), "n"),
	       jint(jget(rd, "remote_ports"), "n"), jint(s, "handshake"));
	printf("            seen: %lld valid SYN, %lld valid SYN-ACK, %lld RST, %lld ICMP, %lld forged",
	       jint(v, "syn"), jint(v, "syn_ack"), jint(v, "rst"), jint(v, "icmp"), jint(v, "forged"));
	if (jint(v, "stray") > 0)   /* valid, but off the round's pairs (a stale mapping): ignored */
		printf(", %lld stray", jint(v, "stray"));
	printf("\n");
	printf("            -> %s\n", jstr(rd, "why"));
}

static void print_result(struct json_object *r, struct json_object *res)
{
	char a[32], b[32], c[32];
	struct json_object *ok = jget(res, "ok");
	if (ok && json_object_get_boolean(ok)) {
		printf("   result: %s handoff, %s <-> %s, %lld packets, probe %s ms, punch %s ms after T, "
		       "connected %s ms after start\n", jstr(res, "path"), jstr(res, "local"), jstr(res, "remote"),
		       jint(res, "packets_total"), jms(res, "probe_ms", a, sizeof(a)), jms(res, "punch_ms", b, sizeof(b)),
		       jms(res, "time_to_connect_ms", c, sizeof(c)));
		return;
	}
	if (jget(res, "stage"))
		printf("   result: failed in stage %s after %s ms: %s\n", jstr(res, "stage"),
		       jms(res, "total_ms", a, sizeof(a)), jstr(r, "why"));
	else      /* connected, but the handoff to a kernel socket failed */
		printf("   result: connected %s <-> %s, but the handoff failed%s%s: %s\n", jstr(res, "local"),
		       jstr(res, "remote"), jget(res, "repair_errno") ? ": " : "",
		       jget(res, "repair_errno") ? jstr(res, "repair_errno") : "", jstr(r, "why"));
}

static void print_report(const char *path, struct json_object *r)
{
	char *dup = strdup(path), *name = dup ? basename(dup) : (char *)path;
	size_t nl = strlen(name);
	if (nl > 5 && !strcmp(name + nl - 5, ".json"))
		nl -= 5;
	const char *me = jstr(r, "role");
	struct json_object *sides = jget(jget(r, "plan"), "sides"), *side = NULL;
	for (size_t i = 0; sides && json_object_is_type(sides, json_type_array) && i < json_object_array_length(sides); i++)
		if (!strcmp(jstr(json_object_array_get_idx(sides, i), "side"), me))
			side = json_object_array_get_idx(sides, i);
	const char *alloc = jget(r, "self") ? jstr(jget(r, "self"), "allocation") : "unprobed";
	if (side)
		printf("%.*s (plan side %s, %s): %s NAT, action %s\n", (int)nl, name, me, jstr(side, "kind"), alloc,
		       jstr(side, "action"));
	if (side && jget(side, "kind_why"))
		printf("   %s%s%s\n", jstr(side, "kind_why"), jget(side, "ttl_how") ? "; low TTL: " : "",
		       jget(side, "ttl_how") ? jstr(side, "ttl_how") : "");
	if (!side)
		printf("%.*s (no plan: the attempt stopped before the two sides agreed on one): %s NAT\n", (int)nl,
		       name, alloc);
	free(dup);
	struct json_object *rounds = jget(r, "rounds");
	for (size_t i = 0; i < json_object_array_length(rounds); i++)
		print_round(json_object_array_get_idx(rounds, i), i);
	print_result(r, jget(r, "result"));
}

int cmd_report(int argc, char **argv)
{
	int c = rp_cli_help_only("report", argc, argv, usage);
	if (c >= 0)
		return c;
	int nf = argc - optind;
	if (nf < 1 || nf > 2)
		return rp_usage_err("report", "give one or two report files (punch --report), got %d", nf);
	struct json_object *r[2] = { NULL, NULL };
	int rc = 0;
	for (int i = 0; i < nf && !rc; i++)
		rc = report_load(argv[optind + i], &r[i]);
	for (int i = 0; i < nf && !rc; i++)
		print_report(argv[optind + i], r[i]);
	for (int i = 0; i < nf; i++)
		json_object_put(r[i]);
	return rc;
}
