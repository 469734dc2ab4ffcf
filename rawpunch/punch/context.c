/* SPDX-License-Identifier: MIT */
/* The punch context (punch.h): the shared key and the per-round ISNs, opening it (route, raw socket,
 * nftables RST guard, capture), the guard's ports, the figures for the report, and closing it. */
#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "capture/capdump.h"
#include "capture/capture.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/net/craft.h"
#include "rawpunch/net/guard.h"
#include "rawpunch/punch/punch_impl.h"
#include "rawpunch/rendezvous/proto.h"
#include "userstack/cookie.h"
#include "userstack/extract.h"

#define SNAPLEN 65600

/* --- keys and ISNs ------------------------------------------------------------------------- */

int rp_punch_key_derive(const uint8_t *secret, size_t secret_len, const char *session,
			uint8_t key[RP_PUNCH_KEYLEN])
{
	struct rv_keys k;
	int r;
	if (!secret || !secret_len || !session || !*session || !key)
		return -EINVAL;
	/* the rendezvous' Argon2id master, so that ISNs seen on the wire cannot test guesses of a weak
	 * secret any faster than the session id can */
	if ((r = rv_keys_derive(secret, secret_len, session, &k)))
		return r;
	memcpy(key, k.kpunch, RP_PUNCH_KEYLEN);
	rv_keys_wipe(&k);
	return 0;
}

void rp_punch_key_mix(const uint8_t key[RP_PUNCH_KEYLEN], const uint8_t *nonce, size_t nonce_len,
		      uint8_t out[RP_PUNCH_KEYLEN])
{
	static const char label[] = "rawpunch-run";
	crypto_generichash_state st;
	crypto_generichash_init(&st, key, RP_PUNCH_KEYLEN, RP_PUNCH_KEYLEN);
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label));   /* NUL included */
	crypto_generichash_update(&st, nonce, nonce_len);
	crypto_generichash_final(&st, out, RP_PUNCH_KEYLEN);
	sodium_memzero(&st, sizeof(st));
}

uint32_t rp_punch_isn(const uint8_t key[RP_PUNCH_KEYLEN], uint32_t from_pub, uint32_t to_pub,
		      uint16_t from_port, unsigned round)
{
	uint8_t m[12 + 4 + 4 + 2 + 4];
	memcpy(m, "rp-punch-syn", 12);
	memcpy(m + 12, &from_pub, 4);     /* network order as in memory */
	memcpy(m + 16, &to_pub, 4);
	us_put_be16(m + 20, from_port);
	us_put_be32(m + 22, (uint32_t)round);
	return us_hash32(key, m, sizeof(m));
}

uint32_t rp_punch_pub_addr(const struct rp_natinfo *ni)
{
	return rp_side_pub_addr(ni);
}

/* --- open / close -------------------------------------------------------------------------- */

#define FAIL(what) do { snprintf(err, errlen, "%s: %s", what, e[0] ? e : strerror(-r)); goto fail; } while (0)

/* The capture's filter: what comes from the peer to us (and ICMP errors to us), or, before the peer is
 * known (early), what comes to our punch port; with a dump, both directions. */
static void cap_filter(const struct rp_punch *p, uint16_t lport, char *filt, size_t len)
{
	char la[INET_ADDRSTRLEN], ra[INET_ADDRSTRLEN];
	rp_ip_str(p->laddr, la);
	rp_ip_str(p->raddr, ra);
	if (!p->raddr)
		snprintf(filt, len, "(tcp and dst host %s and dst port %u) or (icmp and dst host %s)", la, lport, la);
	else if (p->o.pcap_file)
		snprintf(filt, len, "(tcp and host %s and host %s) or (icmp and dst host %s)", la, ra, la);
	else
		snprintf(filt, len, "(tcp and src host %s and dst host %s) or (icmp and dst host %s)", ra, la, la);
}

/* rp_punch_open, or early (route_to: the address whose route to take, the peer's unknown; lport: the
 * punch port the capture waits on). */
static int open_ctx(const struct rp_punch_opts *o, uint32_t route_to, uint16_t lport, struct rp_punch **out, char *err,
		    size_t errlen)
{
	struct rp_punch *p;
	char e[256] = "", dummy[8], filt[256];
	bool gave = false;
	int r;
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = 0;
	if (!o || !out || !(o->peer_addr || (route_to && lport && !o->pcap_file)) || !o->key) {
		if (o && o->pcap_file)
			fclose(o->pcap_file);
		return -EINVAL;
	}
	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p) {
		if (o->pcap_file)
			fclose(o->pcap_file);
		return -ENOMEM;
	}
	p->o = *o;
	memcpy(p->key, o->key, RP_PUNCH_KEYLEN);
	p->raddr = o->peer_addr;
	if (getrandom(&p->ts_offset, sizeof(p->ts_offset), 0) != (ssize_t)sizeof(p->ts_offset))
		p->ts_offset = (uint32_t)rp_mono_ns();
	r = rp_route_get(p->raddr ? p->raddr : route_to, &p->route);
	if (r)
		FAIL("route lookup");
	p->laddr = o->laddr ? o->laddr : p->route.src;
	p->tcb = malloc(sizeof(*p->tcb));
	if (!p->tcb) {
		r = -ENOMEM;
		goto fail;
	}
	us_tcb_init(p->tcb);
	r = rp_craft_open(&p->craft, 0, e, sizeof(e));
	if (r)
		FAIL("raw socket");
	r = rp_guard_open(&p->guard, e, sizeof(e));
	if (r)
		FAIL("nftables RST guard");
	cap_filter(p, lport, filt, sizeof(filt));
	struct rp_cap_opts co = {
		.iface = o->iface ? o->iface : p->route.ifname,
		.snaplen = SNAPLEN,
		.dir = o->pcap_file ? RP_CAP_INOUT : RP_CAP_IN,
		.verify_csum = true,    /* a segment the kernel would drop is no reply of the peer's */
		.dump_file = o->pcap_file,
		.filter = filt,
		.buffer_bytes = 8 << 20,
	};
	gave = true;   /* rp_cap_open owns the dump stream from here on, failure or not */
	r = rp_cap_open(&co, &p->cap, e, sizeof(e));
	if (r)
		FAIL("capture");
	*out = p;
	return 0;
fail:
	if (!gave && o->pcap_file)
		fclose(o->pcap_file);
	rp_punch_close(p);
	return r;
}

int rp_punch_open(const struct rp_punch_opts *o, struct rp_punch **out, char *err, size_t errlen)
{
	return open_ctx(o, 0, 0, out, err, errlen);
}

int rp_punch_open_early(const struct rp_punch_opts *o, uint32_t route_to, uint16_t lport, struct rp_punch **out,
			char *err, size_t errlen)
{
	if (o && o->peer_addr) {
		if (o->pcap_file)
			fclose(o->pcap_file);
		return -EINVAL;
	}
	return open_ctx(o, route_to, lport, out, err, errlen);
}

int rp_punch_aim(struct rp_punch *p, uint32_t peer_addr, const uint8_t *key)
{
	struct rp_route rt;
	char filt[256];
	int r;
	if (!p || p->raddr || !peer_addr || !key)
		return -EINVAL;
	if ((r = rp_route_get(peer_addr, &rt)))
		return r;
	if ((!p->o.laddr && rt.src != p->laddr) || (!p->o.iface && strcmp(rt.ifname, p->route.ifname)))
		return -EXDEV;   /* another way out than the early one's: open anew */
	p->route = rt;
	p->raddr = peer_addr;
	memcpy(p->key, key, RP_PUNCH_KEYLEN);
	cap_filter(p, 0, filt, sizeof(filt));
	if ((r = rp_cap_set_filter(p->cap, filt))) {
		p->raddr = 0;
		return r;
	}
	return 0;
}

int rp_punch_keep_dump(struct rp_punch *p, struct rp_capdump **out)
{
	int r;
	if (!p || !out || !p->o.pcap_file || !p->cap || !p->defined)
		return -ENOENT;
	if ((r = rp_cap_set_tuple(p->cap, p->laddr, p->lport, p->raddr, p->rport)))
		return r;
	if ((r = rp_capdump_start(p->cap, out)))   /* it closed the capture: the dump is complete */
		*out = NULL;
	p->cap = NULL;
	return r;
}

uint32_t rp_punch_laddr(const struct rp_punch *p)
{
	return p ? p->laddr : 0;
}

void rp_punch_release(struct rp_punch *p)
{
	if (p->released)
		return;
	rp_guard_close(p->guard);
	p->guard = NULL;
	rp_cap_close(p->cap);
	p->cap = NULL;
	rp_craft_close(p->craft);
	p->craft = NULL;
	p->released = true;
}

void rp_punch_close(struct rp_punch *p)
{
	if (!p)
		return;
	rp_punch_release(p);
	free(p->tcb);
	free(p->guarded);
	sodium_memzero(p->key, sizeof(p->key));
	free(p);
}

void rp_punch_tuple(const struct rp_punch *p, uint32_t *laddr, uint16_t *lport, uint32_t *raddr, uint16_t *rport)
{
	if (laddr)
		*laddr = p->laddr;
	if (lport)
		*lport = p->lport;
	if (raddr)
		*raddr = p->raddr;
	if (rport)
		*rport = p->rport;
}

void rp_punch_totals(const struct rp_punch *p, struct rp_punch_totals *t)
{
	memset(t, 0, sizeof(*t));
	t->guard_dropped = -1;
	if (!p)
		return;
	t->packets_sent = p->packets_sent;
	if (p->cap) {
		struct rp_cap_stats cs;
		if (!rp_cap_stats(p->cap, &cs)) {
			t->cap_received = cs.received;
			t->cap_dropped = cs.dropped;
		}
	}
	if (p->guard) {
		int64_t d = rp_guard_dropped(p->guard);
		t->guard_dropped = d < 0 ? -1 : d;    /* a failed counter read is "unknown", not a count */
	}
}

/* --- guard -------------------------------------------------------------------------------- */

int rp_punch_guard_port(struct rp_punch *p, uint16_t lport)
{
	for (size_t i = 0; i < p->n_guarded; i++)
		if (p->guarded[i] == lport)
			return 0;
	if (p->n_guarded == p->cap_guarded) {
		size_t nc = p->cap_guarded ? 2 * p->cap_guarded : 64;
		uint16_t *g = realloc(p->guarded, nc * sizeof(*g));
		if (!g)
			return -ENOMEM;
		p->guarded = g;
		p->cap_guarded = nc;
	}
	struct rp_flow f = { .laddr = p->laddr, .lport = lport, .raddr = p->raddr };
	int r = rp_guard_add(p->guard, &f);
	if (r)
		return r;
	p->guarded[p->n_guarded++] = lport;
	return 0;
}
