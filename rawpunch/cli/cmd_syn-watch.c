/* SPDX-License-Identifier: MIT */
/* rawpunch syn, the replies and the figures (see cmd_syn-internal.h): --watch counts the segments
 * from the target that acknowledge one of our SYNs (ISN cookie or --isn) and shows each one, -v shows
 * each packet sent, the progress line, and the final figures as text or JSON. */
#include "rawpunch/cli/cmd_syn-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "capture/capture.h"
#include "rawpunch/cli/cli.h"
#include "rawpunch/net/netif.h"
#include "userstack/cookie.h"

static uint64_t replies_total(const struct replies *r) { return r->synack + r->rst + r->other; }

/* Drain the capture: count segments from the target that acknowledge one of our SYNs. */
void syn_drain(struct run *r)
{
	struct rp_event ev;
	if (!r->cap)
		return;
	while (rp_cap_next(r->cap, &ev) == 1) {
		bool ok;
		const char *kind;
		if (ev.kind != RP_EV_TCP || ev.tuple.saddr != r->daddr || ev.tuple.daddr != r->saddr)
			continue;
		if (!(ev.flags & RP_TH_ACK))
			ok = false;
		else if (r->cfg->seq_mode == RP_SEQ_COOKIE)
			ok = us_cookie_check_ack(r->cfg->cookie_key, r->saddr, ev.tuple.dport, r->daddr,
						 ev.tuple.sport, ev.ack);
		else
			ok = ev.ack - 1u == r->cfg->tmpl->seq;
		if (!ok) {
			r->rep.invalid++;
			kind = "not-ours";
		} else if ((ev.flags & (RP_TH_SYN | RP_TH_ACK)) == (RP_TH_SYN | RP_TH_ACK)) {
			r->rep.synack++;
			kind = "syn-ack";
		} else if (ev.flags & RP_TH_RST) {
			r->rep.rst++;
			kind = "rst";
		} else {
			r->rep.other++;
			kind = "other";
		}
		if (r->progress_line)
			fputs("\r\033[K", stderr);
		syn_show_reply(r->opt, &ev, kind);
	}
}

void syn_show_sent(struct run *r, uint64_t sent)
{
	uint8_t pkt[RP_TMPL_MAX];
	if (!r->opt->verbose)
		return;
	if (r->progress_line && r->shown < sent)
		fputs("\r\033[K", stderr);
	for (; r->shown < sent; r->shown++) {
		int n = rp_burst_render(r->cfg, r->shown, pkt, sizeof(pkt));
		if (n > 0)
			syn_show_packet(r->opt, r->shown + 1, pkt, n, false);
	}
	fflush(stdout);
}

void syn_print_progress(struct run *r, const struct rp_burst_stats *st, bool final)
{
	double secs = (double)st->elapsed_ns / 1e9;
	double rate = secs > 0 ? (double)st->sent / secs : 0;
	fprintf(stderr, "\r\033[K%llu/%llu sent  %.0f pps  %.2f s",
		(unsigned long long)st->sent, (unsigned long long)st->total, rate, secs);
	if (st->errors)
		fprintf(stderr, "  %llu errors", (unsigned long long)st->errors);
	if (r->cap)
		fprintf(stderr, "  replies %llu (syn-ack %llu, rst %llu)",
			(unsigned long long)replies_total(&r->rep), (unsigned long long)r->rep.synack,
			(unsigned long long)r->rep.rst);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

int syn_on_progress(const struct rp_burst_stats *st, void *arg)
{
	struct run *r = arg;
	syn_show_sent(r, st->sent);
	syn_drain(r);
	if (r->progress_line && !st->done && st->elapsed_ns - r->last_print >= 240000000ull) {
		syn_print_progress(r, st, false);
		r->last_print = st->elapsed_ns;
	}
	return 0;
}

int syn_watch_open(struct run *r, const struct syn_opts *opt, const struct rp_route *rt)
{
	char d[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN], filt[160], ebuf[256] = "";
	inet_ntop(AF_INET, &opt->dst.sin_addr, d, sizeof(d));
	inet_ntop(AF_INET, &opt->src, s, sizeof(s));
	snprintf(filt, sizeof(filt), "tcp and src host %s and dst host %s", d, s);
	struct rp_cap_opts co = { .iface = rt->ifname[0] ? rt->ifname : NULL, .filter = filt,
				  .buffer_bytes = 32 << 20, .snaplen = 128 };
	int err = rp_cap_open(&co, &r->cap, ebuf, sizeof(ebuf));
	if (err) {
		rp_err("capture on %s: %s", co.iface ? co.iface : "any", ebuf[0] ? ebuf : strerror(-err));
		if (err == -EPERM)
			rp_hint("capturing replies needs CAP_NET_RAW: run as root, or leave out --watch");
		return 1;
	}
	return 0;
}

void syn_report(const struct syn_opts *opt, const struct run *r, const struct rp_burst_stats *st)
{
	if (opt->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "type", json_object_new_string("summary"));
		double secs = (double)st->elapsed_ns / 1e9;
		char d[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &opt->dst.sin_addr, d, sizeof(d));
		json_object_object_add(o, "dst", json_object_new_string(d));
		json_object_object_add(o, "engine", json_object_new_string(opt->engine == RP_ENGINE_AFPACKET ? "afpacket" : "libnet"));
		json_object_object_add(o, "threads", json_object_new_int((int)opt->threads));
		json_object_object_add(o, "rate_asked", json_object_new_int64((int64_t)opt->rate));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)st->total));
		json_object_object_add(o, "sent", json_object_new_int64((int64_t)st->sent));
		json_object_object_add(o, "errors", json_object_new_int64((int64_t)st->errors));
		json_object_object_add(o, "stopped", json_object_new_boolean(st->stopped));
		json_object_object_add(o, "elapsed_s", json_object_new_double(secs));
		json_object_object_add(o, "rate_pps", json_object_new_double(secs > 0 ? (double)st->sent / secs : 0));
		if (r->cap) {
			struct json_object *rp = json_object_new_object();
			json_object_object_add(rp, "total", json_object_new_int64((int64_t)replies_total(&r->rep)));
			json_object_object_add(rp, "syn_ack", json_object_new_int64((int64_t)r->rep.synack));
			json_object_object_add(rp, "rst", json_object_new_int64((int64_t)r->rep.rst));
			json_object_object_add(rp, "other", json_object_new_int64((int64_t)r->rep.other));
			json_object_object_add(rp, "not_ours", json_object_new_int64((int64_t)r->rep.invalid));
			json_object_object_add(o, "replies", rp);
		}
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else if (!opt->quiet && !r->progress_line) {
		double secs = (double)st->elapsed_ns / 1e9;
		fprintf(stderr, "sent %llu/%llu in %.3f s (%.0f pps)", (unsigned long long)st->sent,
			(unsigned long long)st->total, secs, secs > 0 ? (double)st->sent / secs : 0);
		if (r->cap)
			fprintf(stderr, ", replies %llu (syn-ack %llu, rst %llu)",
				(unsigned long long)replies_total(&r->rep), (unsigned long long)r->rep.synack,
				(unsigned long long)r->rep.rst);
		fputc('\n', stderr);
	}
}
