/* SPDX-License-Identifier: MIT */
/* Rendezvous server filter probes (see server-internal.h and the rules in server.h): which requester
 * addresses may be probed, the per-address rate limit, and the probe connection itself, whose
 * outcome (open, rst, icmp, drop) goes back to the client that asked. */
#include "rawpunch/rendezvous/server-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"

#define PROBE_MIN_MS 100
#define PROBE_MAX_MS 5000
#define PROBE_DEFAULT_MS 1500

/* The per-address probe bucket: RL_SLOTS slots, 8 tried per address; a new address takes the least
 * recently used of them (a full bucket: forgetting an address only ever gives it its burst back). */
static bool rl_take(struct rv_server *s, uint32_t addr)
{
	uint64_t now = rvs_now(s);
	struct ratelimit *slot = NULL, *oldest = NULL;
	unsigned h = (addr * 2654435761u) % RL_SLOTS;
	if (!now)
		now = 1;                               /* last_ms 0 marks a free slot */
	for (unsigned i = 0; i < 8; i++) {
		struct ratelimit *r = &s->rl[(h + i) % RL_SLOTS];
		if (r->tb.last_ms && r->addr == addr) {
			slot = r;
			break;
		}
		if (!oldest || r->tb.last_ms < oldest->tb.last_ms)
			oldest = r;
	}
	if (!slot) {
		slot = oldest;
		slot->addr = addr;
		rp_tb_init(&slot->tb, s->cfg.probe_burst, now);
	}
	return rp_tb_take(&slot->tb, s->cfg.probe_burst, s->cfg.probe_per_min, now);
}

int rv_probe_target_ok(uint32_t addr_net, int allow_private)
{
	uint32_t a = ntohl(addr_net);
	if ((a >> 24) == 0 || (a >> 24) == 127 ||      /* 0/8 "this network", loopback */
	    (a >> 16) == 0xa9fe ||                     /* 169.254/16 link-local */
	    (a >> 29) == 7)                            /* 224/4 multicast, 240/4 reserved + broadcast */
		return -EACCES;
	if (allow_private)
		return 0;
	if ((a >> 24) == 10 || (a >> 20) == 0xac1 ||   /* 10/8, 172.16/12 */
	    (a >> 16) == 0xc0a8 ||                     /* 192.168/16 */
	    (a >> 22) == (0x64400000u >> 22))          /* 100.64/10 shared (CGNAT) */
		return -EACCES;
	return 0;
}

/* Is addr one of this host's own addresses (a proxy on the server host shows clients as one)? */
static bool is_own_addr(uint32_t addr_net)
{
	struct ifaddrs *ifa, *i;
	bool own = false;
	if (getifaddrs(&ifa) < 0)
		return true;                           /* cannot tell: refuse */
	for (i = ifa; i && !own; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == addr_net)
			own = true;
	freeifaddrs(ifa);
	return own;
}

void rvs_probe_report(struct rv_server *s, struct conn *p, const char *result)
{
	char who[32];
	if (p->owner) {
		struct json_object *o = json_object_new_object();
		if (o) {
			json_object_object_add(o, "t", json_object_new_string("fprobe"));
			json_object_object_add(o, "port", json_object_new_int(p->probe_port));
			json_object_object_add(o, "result", json_object_new_string(result));
			struct sockaddr_in la;   /* the probe's source port (what "sport" asked for) */
			socklen_t ll = sizeof(la);
			if (getsockname(p->fd, (struct sockaddr *)&la, &ll) == 0 && la.sin_port)
				json_object_object_add(o, "sport", json_object_new_int(ntohs(la.sin_port)));
		}
		rvs_logf(s, "fprobe %s port %u: %s", rvs_peer_str(p->owner, who, sizeof(who)), (unsigned)p->probe_port,
		      result);
		rvs_queue_json(s, p->owner, o);
	}
	rvs_conn_free(s, p);
}

void rvs_probe_event(struct rv_server *s, struct conn *p)
{
	int err = 0;
	socklen_t el = sizeof(err);
	bool icmp = false;
	uint8_t cbuf[512], dbuf[64];
	struct iovec iov = { dbuf, sizeof(dbuf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	/* ICMP errors sit on the error queue with their origin (IP_RECVERR); an RST leaves none */
	while (recvmsg(p->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0) {
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) {
				struct sock_extended_err ee;
				memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
				if (ee.ee_origin == SO_EE_ORIGIN_ICMP)
					icmp = true;
			}
		mh.msg_controllen = sizeof(cbuf);
	}
	getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (icmp) {
		rvs_probe_report(s, p, "icmp");
	} else if (err == 0) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		if (getpeername(p->fd, (struct sockaddr *)&a, &al) == 0)
			rvs_probe_report(s, p, "open");
		/* else: not finished yet (spurious wake-up) */
	} else if (err == ECONNREFUSED) {
		rvs_probe_report(s, p, "rst");
	} else if (err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == ENETDOWN ||
		   err == ENOPROTOOPT || err == EACCES || err == EPERM) {
		rvs_probe_report(s, p, "icmp");
	} else if (err == ETIMEDOUT) {
		rvs_probe_report(s, p, "drop");
	} else {
		rvs_probe_report(s, p, "error");
	}
}

void rvs_handle_fprobe(struct rv_server *s, struct conn *c, struct json_object *o)
{
	struct json_object *jp, *jm, *js;
	int64_t port, ms = PROBE_DEFAULT_MS, sport = 0;
	int fd, one = 1;
	if (!json_object_object_get_ex(o, "port", &jp) || !json_object_is_type(jp, json_type_int) ||
	    (port = json_object_get_int64(jp)) < 1 || port > 65535) {
		rvs_send_error(s, c, "bad-request", "fprobe needs \"port\" 1..65535", false);
		return;
	}
	if (json_object_object_get_ex(o, "ms", &jm)) {
		if (!json_object_is_type(jm, json_type_int) || (ms = json_object_get_int64(jm)) < PROBE_MIN_MS ||
		    ms > PROBE_MAX_MS) {
			rvs_send_error(s, c, "bad-request", "fprobe \"ms\" must be 100..5000", false);
			return;
		}
	}
	if (json_object_object_get_ex(o, "sport", &js) && (!json_object_is_type(js, json_type_int) ||
							  (sport = json_object_get_int64(js)) < 1024 || sport > 65535)) {
		rvs_send_error(s, c, "bad-request", "fprobe \"sport\" must be 1024..65535", false);
		return;
	}
	if (c->probe) {
		rvs_send_error(s, c, "busy", "one filter probe at a time per connection", false);
		return;
	}
	if (rv_probe_target_ok(c->peer.sin_addr.s_addr, s->cfg.probe_allow_private) ||
	    c->peer.sin_addr.s_addr == c->local.sin_addr.s_addr || is_own_addr(c->peer.sin_addr.s_addr)) {
		rvs_send_error(s, c, "forbidden",
			   "filter probes go to public requester addresses only (this one is loopback, "
			   "link-local, private, multicast or the server's own: behind a proxy?)", false);
		return;
	}
	if (s->n_probes >= s->max_probes || !rl_take(s, c->peer.sin_addr.s_addr)) {
		rvs_send_error(s, c, "rate", "filter-probe rate limit: try again later", false);
		return;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rvs_send_error(s, c, "internal", "no socket for the probe", false);
		return;
	}
	setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
	/* from our own address (the one the client reached), a fresh port or the one asked for; to the
	 * REQUESTER's own address only: never anywhere else, so the service cannot be aimed at third
	 * parties */
	struct sockaddr_in src = c->local, dst = c->peer;
	src.sin_port = htons((uint16_t)sport);
	dst.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)) {
		close(fd);
		rvs_send_error(s, c, "internal", "probe connect failed", false);
		return;
	}
	struct conn *p = rvs_conn_new(s, C_PROBE, fd);
	if (!p) {
		close(fd);
		rvs_send_error(s, c, "internal", "out of memory", false);
		return;
	}
	p->peer = dst;
	p->owner = c;
	p->probe_port = (uint16_t)port;
	p->probe_deadline_ms = rvs_now(s) + (uint64_t)ms;
	if (p->probe_deadline_ms < s->next_probe_ms)
		s->next_probe_ms = p->probe_deadline_ms;
	c->probe = p;
	s->n_probes++;
	s->st.probes++;
}

