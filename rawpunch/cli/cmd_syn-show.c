/* SPDX-License-Identifier: MIT */
/* rawpunch syn, one packet or one reply as people or programs read it (see cmd_syn-internal.h): the
 * packets --dry-run would send and -v sent (a line, or a JSON object with --json; --dry-run adds the
 * bytes in hex), and each reply --watch sees. */
#include "rawpunch/cli/cmd_syn-internal.h"

#include <json-c/json.h>
#include <stdio.h>

#include "capture/decode.h"
#include "rawpunch/base/trace.h"
#include "userstack/extract.h"

struct pkt {
	uint32_t saddr, daddr;
	uint16_t sport, dport, ip_id, win;
	uint32_t seq;
	uint8_t ttl, flags;
};

static void pkt_read(const uint8_t *p, int n, struct pkt *k)
{
	struct us_cur c = us_cur_make(p, (size_t)n);
	uint8_t vihl = us_get_u8(&c);
	us_skip(&c, 3);                    /* TOS, total length */
	k->ip_id = us_get_be16(&c);
	us_skip(&c, 2);                    /* fragment */
	k->ttl = us_get_u8(&c);
	us_skip(&c, 3);                    /* protocol, checksum */
	us_get_copy(&c, &k->saddr, 4);
	us_get_copy(&c, &k->daddr, 4);
	us_skip(&c, (size_t)(vihl & 15) * 4 - 20);
	k->sport = us_get_be16(&c);
	k->dport = us_get_be16(&c);
	k->seq = us_get_be32(&c);
	us_skip(&c, 4);                    /* ack */
	us_get_u8(&c);                     /* data offset */
	k->flags = us_get_u8(&c);
	k->win = us_get_be16(&c);
}

void syn_show_packet(const struct syn_opts *opt, uint64_t no, const uint8_t *p, int n, bool hex)
{
	struct pkt k = { 0 };
	char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN], fl[RP_TCP_FLAGS_STRLEN];
	pkt_read(p, n, &k);
	rp_ip_str(k.saddr, s);
	rp_ip_str(k.daddr, d);
	if (!opt->json) {
		printf("# %llu %s:%u > %s:%u seq %u ip_id %u ttl %u len %d\n", (unsigned long long)no, s,
		       (unsigned)k.sport, d, (unsigned)k.dport, (unsigned)k.seq, (unsigned)k.ip_id, (unsigned)k.ttl, n);
		if (hex) {
			for (int i = 0; i < n; i++)
				printf("%02x", p[i]);
			putchar('\n');
		}
		return;
	}
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string("packet"));
	json_object_object_add(o, "no", json_object_new_int64((int64_t)no));
	json_object_object_add(o, "src", json_object_new_string(s));
	json_object_object_add(o, "sport", json_object_new_int(k.sport));
	json_object_object_add(o, "dst", json_object_new_string(d));
	json_object_object_add(o, "dport", json_object_new_int(k.dport));
	json_object_object_add(o, "flags", json_object_new_string(rp_tcp_flags_str(k.flags, fl)));
	json_object_object_add(o, "seq", json_object_new_int64(k.seq));
	json_object_object_add(o, "ip_id", json_object_new_int(k.ip_id));
	json_object_object_add(o, "ttl", json_object_new_int(k.ttl));
	json_object_object_add(o, "win", json_object_new_int(k.win));
	json_object_object_add(o, "len", json_object_new_int(n));
	if (hex) {
		char h[2 * 128 + 1];
		int m = n < 128 ? n : 128;     /* a SYN is at most 60 + 40 bytes */
		for (int i = 0; i < m; i++)
			snprintf(h + 2 * i, 3, "%02x", p[i]);
		h[2 * m] = 0;
		json_object_object_add(o, "hex", json_object_new_string(h));
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

void syn_show_reply(const struct syn_opts *opt, const struct rp_event *ev, const char *kind)
{
	char s[INET_ADDRSTRLEN], fl[RP_TCP_FLAGS_STRLEN];
	rp_ip_str(ev->tuple.saddr, s);
	rp_tcp_flags_str(ev->flags, fl);
	if (!opt->json) {
		printf("%llu.%06llu reply %s:%u > :%u %s (%s) ttl %u win %u ip_id %u\n",
		       (unsigned long long)(ev->ts_ns / 1000000000ull),
		       (unsigned long long)(ev->ts_ns % 1000000000ull / 1000), s, (unsigned)ev->tuple.sport,
		       (unsigned)ev->tuple.dport, fl, kind, (unsigned)ev->ttl, (unsigned)ev->win, (unsigned)ev->ip_id);
		fflush(stdout);
		return;
	}
	struct json_object *o = json_object_new_object();
	char t[32];
	snprintf(t, sizeof(t), "%llu.%06llu", (unsigned long long)(ev->ts_ns / 1000000000ull),
		 (unsigned long long)(ev->ts_ns % 1000000000ull / 1000));
	json_object_object_add(o, "type", json_object_new_string("reply"));
	json_object_object_add(o, "time", json_object_new_double_s((double)ev->ts_ns / 1e9, t));
	json_object_object_add(o, "from", json_object_new_string(s));
	json_object_object_add(o, "port", json_object_new_int(ev->tuple.sport));
	json_object_object_add(o, "to_port", json_object_new_int(ev->tuple.dport));
	json_object_object_add(o, "flags", json_object_new_string(fl));
	json_object_object_add(o, "kind", json_object_new_string(kind));
	json_object_object_add(o, "ttl", json_object_new_int(ev->ttl));
	json_object_object_add(o, "win", json_object_new_int(ev->win));
	json_object_object_add(o, "ip_id", json_object_new_int(ev->ip_id));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(o);
}
