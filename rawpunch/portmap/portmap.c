/* SPDX-License-Identifier: MIT */
/* Port mapping over PCP, NAT-PMP and UPnP-IGD (see portmap.h). */
#include "rawpunch/portmap/portmap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <natpmp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/portmap/pcpmsg.h"
#include "rawpunch/portmap/ssdp.h"

#define FIRST_RETRY_MS 100     /* PCP and SSDP resend after 100 ms, then 200, 400, ... up to 1 s */

/* ------------------------------------------------------------------ helpers */

static double ms_since(uint64_t t0)
{
	return (double)(rp_mono_ns() - t0) / 1e6;
}

static void why(struct rp_pm_attempt *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why(struct rp_pm_attempt *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->why, sizeof(a->why), fmt, ap);
	va_end(ap);
}

static const char *ipstr(uint32_t a, char *b)
{
	struct in_addr in = { .s_addr = a };
	return inet_ntop(AF_INET, &in, b, INET_ADDRSTRLEN);
}

int rp_pm_parse_protocols(const char *s, unsigned *mask)
{
	char buf[64], *save = NULL, *tok;
	unsigned m = 0;
	if (!s || !mask || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum rp_pm_proto p;
		if (!strcmp(tok, "all"))
			m |= RP_PM_ALL;
		else if (rp_pm_proto_parse(tok, &p))
			return -EINVAL;
		else
			m |= RP_PM_F(p);
	}
	if (!m)
		return -EINVAL;
	*mask = m;
	return 0;
}

int rp_pm_parse_route(const char *text, uint32_t *gw)
{
	const char *line = text;
	unsigned long best_metric = ~0ul;
	bool found = false;
	if (!text || !gw)
		return -EINVAL;
	while (line && *line) {
		char ifname[32];
		unsigned long dst, g, flags, refcnt, use, metric, mask;
		const char *nl = strchr(line, '\n');
		if (sscanf(line, "%31s %lx %lx %lx %lu %lu %lu %lx", ifname, &dst, &g, &flags, &refcnt, &use,
			   &metric, &mask) == 8 &&
		    dst == 0 && mask == 0 && (flags & 0x3) == 0x3 && g != 0 && metric < best_metric) {
			/* the kernel prints the address as the host-order integer of its network-order bytes */
			*gw = (uint32_t)g;
			best_metric = metric;
			found = true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return found ? 0 : -ENOENT;
}

int rp_pm_default_gateway(uint32_t *gw)
{
	char buf[8192];
	ssize_t n;
	int fd = open("/proc/net/route", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return rp_pm_parse_route(buf, gw);
}

/* A non-blocking UDP socket connected to gw:port (so the kernel reports ICMP port unreachable as
 * ECONNREFUSED); *local gets the source address the gateway will see. */
static int udp_to(uint32_t gw, uint16_t port, uint32_t *local)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = gw };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || (local && getsockname(fd, (struct sockaddr *)&sa, &sl))) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (local)
		*local = sa.sin_addr.s_addr;
	return fd;
}

static int next_retry_ms(unsigned sends)
{
	int ms = FIRST_RETRY_MS << (sends ? sends - 1 : 0);
	return ms > 1000 || ms <= 0 ? 1000 : ms;
}

/* ------------------------------------------------------------------ PCP exchange (non-blocking) */

struct pcp_x {
	int fd;
	struct rp_pcp_request q;
	uint8_t pkt[RP_PCP_HDR_LEN + RP_PCP_PEER_LEN];
	int len;
	unsigned sends;
	uint64_t next_ns;
	int state;                  /* 1 pending, 0 answered, -errno failed */
	struct rp_pcp_response r;
};

static int pcp_x_start(struct pcp_x *x, int fd, const struct rp_pcp_request *q)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
	x->q = *q;
	x->len = rp_pcp_encode(q, x->pkt, sizeof(x->pkt));
	if (x->len < 0)
		return x->state = x->len;
	x->state = 1;
	return 0;
}

static void pcp_x_tick(struct pcp_x *x, uint64_t now)
{
	if (x->state != 1 || now < x->next_ns)
		return;
	if (send(x->fd, x->pkt, (size_t)x->len, 0) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		x->state = -errno;
		return;
	}
	x->sends++;
	x->next_ns = now + (uint64_t)next_retry_ms(x->sends) * 1000000u;
}

static void pcp_x_read(struct pcp_x *x)
{
	uint8_t buf[RP_PCP_MAX_MSG + 4];
	for (;;) {
		ssize_t n = recv(x->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				x->state = -errno;
			return;
		}
		struct rp_pcp_response r;
		int e = rp_pcp_decode(buf, (size_t)n, &r);
		if (e == -EPROTONOSUPPORT) {
			x->r = r;            /* a NAT-PMP-only server: it answered, but not in PCP */
			x->state = -EPROTONOSUPPORT;
			return;
		}
		if (e || rp_pcp_match(&x->q, &r))
			continue;            /* garbage, or not the answer to this request */
		x->r = r;
		x->state = 0;
		return;
	}
}

/* ------------------------------------------------------------------ NAT-PMP exchange (libnatpmp) */

struct natpmp_x {
	natpmp_t np;
	bool open;
	int state;                  /* 1 pending, 0 answered, -errno failed */
	int code;                   /* libnatpmp's NATPMP_ERR_* when it failed that way */
	natpmpresp_t r;
};

static int natpmp_x_open(struct natpmp_x *x, uint32_t gw)
{
	memset(x, 0, sizeof(*x));
	int e = initnatpmp(&x->np, 1, gw);
	if (e < 0) {
		x->code = e;
		return x->state = -EIO;
	}
	x->open = true;
	return 0;
}

static void natpmp_x_close(struct natpmp_x *x)
{
	if (x->open)
		closenatpmp(&x->np);
	x->open = false;
}

/* libnatpmp result -> -errno (its NATPMP_ERR_* for the server's result codes 1..5 are -14..-53). */
static int natpmp_errno(int e)
{
	switch (e) {
	case NATPMP_ERR_UNSUPPORTEDVERSION: return -EPROTONOSUPPORT;
	case NATPMP_ERR_UNSUPPORTEDOPCODE: return -EOPNOTSUPP;
	case NATPMP_ERR_NOTAUTHORIZED: return -EACCES;
	case NATPMP_ERR_NETWORKFAILURE: return -ENETDOWN;
	case NATPMP_ERR_OUTOFRESOURCES: return -EAGAIN;
	case NATPMP_ERR_NOGATEWAYSUPPORT: return -EOPNOTSUPP;
	default: return -EIO;
	}
}

static const char *natpmp_text(int e, char *buf, size_t cap)
{
	static const char *const lib[] = { [1] = "invalid arguments", [2] = "socket error", [5] = "recvfrom error",
					   [7] = "no gateway support (no answer after all retries)",
					   [8] = "connect error", [9] = "a packet from another source", [10] = "send error" };
	switch (e) {
	case NATPMP_ERR_UNSUPPORTEDVERSION: return "the gateway does not speak NAT-PMP version 0";
	case NATPMP_ERR_UNSUPPORTEDOPCODE: return "the gateway does not support this request";
	case NATPMP_ERR_NOTAUTHORIZED: return "not authorized (the gateway refuses mappings)";
	case NATPMP_ERR_NETWORKFAILURE: return "the gateway has no external address (network failure)";
	case NATPMP_ERR_OUTOFRESOURCES: return "the gateway is out of resources";
	default:
		snprintf(buf, cap, "libnatpmp error %d%s%s", e, -e > 0 && -e < 11 && lib[-e] ? ": " : "",
			 -e > 0 && -e < 11 && lib[-e] ? lib[-e] : "");
		return buf;
	}
}

static void natpmp_x_read(struct natpmp_x *x)
{
	errno = 0;
	int e = readnatpmpresponseorretry(&x->np, &x->r);
	if (e == NATPMP_TRYAGAIN)
		return;
	if (e >= 0) {
		x->state = 0;
		return;
	}
	x->code = e;
	/* libnatpmp reports a port unreachable (ECONNREFUSED) as NOGATEWAYSUPPORT */
	if (errno == ECONNREFUSED && (e == NATPMP_ERR_NOGATEWAYSUPPORT || e == NATPMP_ERR_RECVFROM))
		x->state = -ECONNREFUSED;
	else
		x->state = e == NATPMP_ERR_RECVFROM && errno ? -errno : natpmp_errno(e);
}

static int natpmp_x_timeout_ms(struct natpmp_x *x)
{
	struct timeval tv;
	if (getnatpmprequesttimeout(&x->np, &tv) < 0)
		return 0;
	return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000) + 1;
}

/* ------------------------------------------------------------------ blocking runs of one exchange */

static int poll_one(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, ms < 0 ? 0 : ms);
	return n < 0 && errno == EINTR ? 0 : n;
}

static int ms_left(uint64_t deadline)
{
	uint64_t now = rp_mono_ns();
	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

static int pcp_x_run(struct pcp_x *x, uint64_t deadline)
{
	while (x->state == 1) {
		uint64_t now = rp_mono_ns();
		if (now >= deadline)
			return x->state = -ETIMEDOUT;
		pcp_x_tick(x, now);
		if (x->state != 1)
			break;
		int wait = ms_left(x->next_ns < deadline ? x->next_ns : deadline);
		if (poll_one(x->fd, wait) > 0)
			pcp_x_read(x);
	}
	return x->state;
}

static int natpmp_x_run(struct natpmp_x *x, uint64_t deadline)
{
	while (x->state == 1) {
		int left = ms_left(deadline);
		if (!left)
			return x->state = -ETIMEDOUT;
		int t = natpmp_x_timeout_ms(x);
		poll_one(x->np.s, t < left ? t : left);
		natpmp_x_read(x);        /* reads, or resends when libnatpmp's retry time has come */
	}
	return x->state;
}

/* ------------------------------------------------------------------ the three protocols' mapping calls */

static void nonce_new(uint8_t nonce[RP_PCP_NONCE_LEN])
{
	if (getrandom(nonce, RP_PCP_NONCE_LEN, 0) != (ssize_t)RP_PCP_NONCE_LEN) {
		uint64_t t = rp_mono_ns() ^ ((uint64_t)getpid() << 32);
		memcpy(nonce, &t, sizeof(t));
		memcpy(nonce + 8, &t, 4);
	}
}

static void pcp_request_of(const struct rp_pm_record *rec, uint32_t lifetime, struct rp_pcp_request *q)
{
	memset(q, 0, sizeof(*q));
	q->opcode = rec->peer_port ? RP_PCP_OP_PEER : RP_PCP_OP_MAP;
	q->lifetime = lifetime;
	rp_pcp_v4mapped(rec->internal_addr, q->client_ip);
	memcpy(q->nonce, rec->nonce, sizeof(q->nonce));
	q->protocol = rec->ipproto;
	q->internal_port = rec->internal_port;
	q->suggested_port = lifetime ? rec->external_port : 0;
	rp_pcp_v4mapped(lifetime ? rec->external_addr : 0, q->suggested_ip);
	if (rec->peer_port) {
		q->peer_port = rec->peer_port;
		rp_pcp_v4mapped(rec->peer_addr, q->peer_ip);
	}
}

/* One PCP MAP/PEER exchange for rec (lifetime 0 deletes). On success rec's external side and *granted
 * are updated. */
static int pcp_map(struct rp_pm_record *rec, uint32_t lifetime, int timeout_ms, struct rp_pm_attempt *a,
		   uint32_t *granted)
{
	struct rp_pcp_request q;
	struct pcp_x x;
	char b[INET_ADDRSTRLEN];
	uint32_t local = 0;
	int fd = udp_to(rec->gateway, RP_PCP_PORT, &local), e;
	if (fd < 0)
		return fd;
	pcp_request_of(rec, lifetime, &q);
	pcp_x_start(&x, fd, &q);
	e = pcp_x_run(&x, rp_mono_ns() + (uint64_t)timeout_ms * 1000000u);
	close(fd);
	if (e == -ETIMEDOUT) {
		why(a, "no PCP answer from %s:%d within %d ms", ipstr(rec->gateway, b), RP_PCP_PORT, timeout_ms);
		return e;
	}
	if (e == -ECONNREFUSED) {
		why(a, "port unreachable: no PCP server at %s:%d", ipstr(rec->gateway, b), RP_PCP_PORT);
		return e;
	}
	if (e == -EPROTONOSUPPORT) {
		why(a, "the gateway answered in NAT-PMP (version %u), not PCP", x.r.version);
		return e;
	}
	if (e)
		return e;
	a->code = x.r.result;
	if (x.r.result != RP_PCP_SUCCESS) {
		why(a, "%s: %s", rp_pcp_result_name(x.r.result), rp_pcp_result_text(x.r.result));
		return rp_pcp_result_errno(x.r.result);
	}
	if (lifetime) {
		uint32_t ext;
		if (!rp_pcp_v4(x.r.external_ip, &ext) || !x.r.external_port) {
			why(a, "the PCP server granted no IPv4 external address:port");
			return -EPROTO;
		}
		rec->external_addr = ext;
		rec->external_port = x.r.external_port;
	}
	*granted = x.r.lifetime;
	return 0;
}

/* NAT-PMP: the public address (step 1 learns it) and one mapping exchange (lifetime 0 deletes). */
static int natpmp_map(struct rp_pm_record *rec, uint32_t lifetime, int timeout_ms, struct rp_pm_attempt *a,
		      uint32_t *granted)
{
	struct natpmp_x x;
	char b[INET_ADDRSTRLEN];
	int e = natpmp_x_open(&x, rec->gateway);
	if (e)
		return e;
	uint64_t deadline = rp_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	if (!rec->external_addr && lifetime) {
		x.state = 1;
		if (sendpublicaddressrequest(&x.np) < 0)
			x.state = -EIO;
		else
			natpmp_x_run(&x, deadline);
		if (x.state) {
			e = x.state;
			goto out;
		}
		rec->external_addr = x.r.pnu.publicaddress.addr.s_addr;
	}
	x.state = 1;
	if (sendnewportmappingrequest(&x.np, rec->ipproto == IPPROTO_UDP ? NATPMP_PROTOCOL_UDP : NATPMP_PROTOCOL_TCP,
				      rec->internal_port, lifetime ? rec->external_port : 0, lifetime) < 0)
		x.state = -EIO;
	else
		natpmp_x_run(&x, deadline);
	e = x.state;
	if (!e) {
		if (lifetime) {
			rec->external_port = x.r.pnu.newportmapping.mappedpublicport;
			if (!rec->external_port) {
				why(a, "the NAT-PMP gateway granted port 0");
				e = -EPROTO;
				goto out;
			}
		}
		*granted = x.r.pnu.newportmapping.lifetime;
	}
out:
	if (e == -ETIMEDOUT)
		why(a, "no NAT-PMP answer from %s:%d within %d ms", ipstr(rec->gateway, b), NATPMP_PORT, timeout_ms);
	else if (e == -ECONNREFUSED)
		why(a, "port unreachable: no NAT-PMP server at %s:%d", ipstr(rec->gateway, b), NATPMP_PORT);
	else if (e && x.code) {
		a->code = x.code;
		char t[96];
		why(a, "%s", natpmp_text(x.code, t, sizeof(t)));
	}
	natpmp_x_close(&x);
	return e;
}

static int upnp_errno(int r)
{
	switch (r) {
	case 714: return -ENOENT;            /* NoSuchEntryInArray */
	case 718: return -EADDRINUSE;        /* ConflictInMappingEntry */
	case 606: case 715: case 716: case 729: return -EACCES;
	case 724: case 725: case 726: case 727: case 728: return -EINVAL;
	case UPNPCOMMAND_HTTP_ERROR: return -ECONNREFUSED;
	default: return -EIO;
	}
}

static void upnp_why(struct rp_pm_attempt *a, const char *what, int r)
{
	const char *s = strupnperror(r);
	a->code = r;
	why(a, "%s: UPnP error %d%s%s", what, r, s ? " " : "", s ? s : "");
}

/* UPnP: AddPortMapping on the control URL (lifetime 0: DeletePortMapping). */
static int upnp_map(struct rp_pm_record *rec, uint32_t lifetime, struct rp_pm_attempt *a, uint32_t *granted)
{
	char ext[8], in[8], life[16], client[INET_ADDRSTRLEN], desc[48], reserved[8] = "";
	const char *proto = rec->ipproto == IPPROTO_UDP ? "UDP" : "TCP";
	int r;
	snprintf(ext, sizeof(ext), "%u", rec->external_port ? rec->external_port : rec->internal_port);
	if (!lifetime) {
		r = UPNP_DeletePortMapping(rec->upnp_control, rec->upnp_service, ext, proto, NULL);
		if (r)
			upnp_why(a, "DeletePortMapping", r);
		return r ? upnp_errno(r) : 0;
	}
	snprintf(in, sizeof(in), "%u", rec->internal_port);
	snprintf(life, sizeof(life), "%u", lifetime);
	snprintf(desc, sizeof(desc), "rawpunch %ld", (long)getpid());
	ipstr(rec->internal_addr, client);
	r = UPNP_AddPortMapping(rec->upnp_control, rec->upnp_service, ext, in, client, desc, proto, NULL, life);
	if (r == 718 && !rec->external_port) {
		/* the external port equal to the internal one is taken: IGDv2 picks a free one */
		r = UPNP_AddAnyPortMapping(rec->upnp_control, rec->upnp_service, ext, in, client, desc, proto, NULL,
					   life, reserved);
		if (!r) {
			unsigned long p = strtoul(reserved, NULL, 10);
			if (!p || p > 65535) {
				why(a, "AddAnyPortMapping reserved no valid port ('%s')", reserved);
				return -EPROTO;
			}
			snprintf(ext, sizeof(ext), "%lu", p);
		}
	}
	if (r) {
		upnp_why(a, "AddPortMapping", r);
		return upnp_errno(r);
	}
	rec->external_port = (uint16_t)strtoul(ext, NULL, 10);
	*granted = lifetime;
	return 0;
}

/* UPnP step 2 from a LOCATION: the IGD's description, its external address, then the mapping. */
static int upnp_first_map(const char *location, struct rp_pm_record *rec, uint32_t lifetime,
			  struct rp_pm_attempt *a, uint32_t *granted)
{
	struct UPNPUrls urls;
	struct IGDdatas data;
	char lan[64] = "", extip[40] = "";
	struct in_addr in;
	int r;
	memset(&urls, 0, sizeof(urls));
	memset(&data, 0, sizeof(data));
	if (UPNP_GetIGDFromUrl(location, &urls, &data, lan, sizeof(lan)) != 1 || !urls.controlURL ||
	    !data.first.servicetype[0]) {
		why(a, "no usable IGD description at %s", location);
		FreeUPNPUrls(&urls);
		return -EPROTO;
	}
	if (strlen(urls.controlURL) >= sizeof(rec->upnp_control) ||
	    strlen(data.first.servicetype) >= sizeof(rec->upnp_service)) {
		why(a, "the IGD's control URL is too long");
		FreeUPNPUrls(&urls);
		return -ENAMETOOLONG;
	}
	strcpy(rec->upnp_control, urls.controlURL);
	strcpy(rec->upnp_service, data.first.servicetype);
	FreeUPNPUrls(&urls);
	r = UPNP_GetExternalIPAddress(rec->upnp_control, rec->upnp_service, extip);
	if (r) {
		upnp_why(a, "GetExternalIPAddress", r);
		return upnp_errno(r);
	}
	if (inet_pton(AF_INET, extip, &in) != 1 || !in.s_addr) {
		why(a, "the IGD has no IPv4 external address ('%s')", extip);
		return -EADDRNOTAVAIL;
	}
	rec->external_addr = in.s_addr;
	return upnp_map(rec, lifetime, a, granted);
}

/* One exchange with the protocol of rec: map/refresh (lifetime > 0) or delete (0). */
static int exchange(struct rp_pm_record *rec, uint32_t lifetime, int timeout_ms, struct rp_pm_attempt *a,
		    uint32_t *granted)
{
	switch (rec->proto) {
	case RP_PM_PCP: return pcp_map(rec, lifetime, timeout_ms, a, granted);
	case RP_PM_NATPMP: return natpmp_map(rec, lifetime, timeout_ms, a, granted);
	case RP_PM_UPNP: return upnp_map(rec, lifetime, a, granted);
	default: return -EINVAL;
	}
}

/* ------------------------------------------------------------------ step 1: who answers */

/* An IGD may wait up to MX seconds (1 here, the least) before it answers an M-SEARCH (miniupnpd does,
 * at random). Several copies go out at once, to the group and to the gateway, so the first of several
 * random delays comes sooner (8 copies: 1 in 10 answers later than 250 ms; the gateway's ICMP rate
 * limit is why only one goes to it directly). Beyond the timeout, step 1
 * waits for SSDP up to SSDP_WAIT_MS only when nothing else answered, the gateway did not refuse the
 * unicast M-SEARCH (port unreachable: no SSDP there), and the gateway is known to be alive (it refused
 * PCP / NAT-PMP, or answered them in the other protocol) or UPnP is all that was asked for. A silent
 * network still costs only the timeout. */
#define SSDP_WAIT_MS 1100
#define SSDP_COPIES 7

struct finder {
	unsigned want;
	uint32_t gw, local;
	struct pcp_x pcp;
	struct natpmp_x natpmp;
	int ssdp_fd;               /* multicast M-SEARCH and the answers to it */
	int ssdp_uc;               /* unicast M-SEARCH, connected to gateway:1900 (sees port unreachable) */
	bool ssdp_refused;         /* the gateway refused the unicast M-SEARCH */
	char msearch[512];
	int msearch_len;
	unsigned ssdp_sends;
	uint64_t ssdp_next;
	int ssdp_state;            /* 1 pending, 0 found, -errno; 2 not asked */
	char location[RP_PM_URL_MAX];
	uint32_t ssdp_from;
};

static int state_of(const struct finder *f, unsigned p)
{
	return p == RP_PM_PCP ? f->pcp.state : p == RP_PM_NATPMP ? f->natpmp.state : f->ssdp_state;
}

/* The gateway refused every protocol asked (ICMP port unreachable; SSDP: the unicast M-SEARCH), the
 * others concluded: nothing on it maps ports. An IGD elsewhere on the link that might still answer
 * the group maps ports on its own address, which our flows do not leave through. */
static bool gateway_refused_all(const struct finder *f)
{
	if (f->ssdp_state != 1 || !f->ssdp_refused)
		return false;
	for (unsigned p = 0; p < RP_PM_NPROTO; p++)
		if (p != RP_PM_UPNP && (f->want & RP_PM_F(p)) && state_of(f, p) != -ECONNREFUSED)
			return false;
	return true;
}

/* Done when every protocol more preferred than the best one that answered has concluded, or the
 * gateway refused them all. */
static bool find_done(const struct finder *f)
{
	if (gateway_refused_all(f))
		return true;
	for (unsigned p = 0; p < RP_PM_NPROTO; p++) {
		if (!(f->want & RP_PM_F(p)))
			continue;
		if (state_of(f, p) == 1)
			return false;
		if (state_of(f, p) == 0)
			return true;
	}
	return true;
}

/* Keep waiting past the deadline for an SSDP answer the IGD may be delaying? */
static bool ssdp_worth_waiting(const struct finder *f)
{
	bool alive = f->pcp.state == -ECONNREFUSED || f->pcp.state == -EPROTONOSUPPORT ||
		     f->natpmp.state == -ECONNREFUSED;
	return f->ssdp_state == 1 && !f->ssdp_refused && f->pcp.state != 0 && f->natpmp.state != 0 &&
	       (alive || f->want == RP_PM_F(RP_PM_UPNP));
}

static int ssdp_open(struct finder *f)
{
	int ttl = 2;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = f->local };
	struct in_addr ifa = { .s_addr = f->local };
	f->msearch_len = rp_ssdp_msearch(f->msearch, sizeof(f->msearch), RP_SSDP_ST_IGD, 1);
	if (f->msearch_len < 0)
		return f->msearch_len;
	f->ssdp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->ssdp_fd < 0)
		return -errno;
	if (bind(f->ssdp_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(f->ssdp_fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
	    setsockopt(f->ssdp_fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa)))
		return -errno;
	f->ssdp_uc = udp_to(f->gw, RP_SSDP_PORT, NULL);
	return f->ssdp_uc < 0 ? f->ssdp_uc : 0;
}

static void ssdp_tick(struct finder *f, uint64_t now)
{
	struct sockaddr_in group = { .sin_family = AF_INET, .sin_port = htons(RP_SSDP_PORT) };
	bool sent = false;
	if (f->ssdp_state != 1 || now < f->ssdp_next)
		return;
	inet_pton(AF_INET, RP_SSDP_GROUP, &group.sin_addr);
	/* copies to the group; one to the gateway, whose "port unreachable" (if nothing listens) costs one
	 * of the few ICMP errors per second the gateway sends this host */
	for (int i = 0; i < (f->ssdp_sends ? 1 : SSDP_COPIES); i++)
		if (sendto(f->ssdp_fd, f->msearch, (size_t)f->msearch_len, 0, (struct sockaddr *)&group, sizeof(group)) > 0)
			sent = true;
	if (!f->ssdp_refused && send(f->ssdp_uc, f->msearch, (size_t)f->msearch_len, 0) > 0)
		sent = true;
	if (!sent && errno != EAGAIN && errno != ECONNREFUSED) {
		f->ssdp_state = -errno;
		return;
	}
	f->ssdp_sends++;
	f->ssdp_next = now + (uint64_t)next_retry_ms(f->ssdp_sends) * 1000000u;
}

static void ssdp_read(struct finder *f, int fd)
{
	char buf[RP_SSDP_MAX_MSG + 1];
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == ECONNREFUSED && fd == f->ssdp_uc)
				f->ssdp_refused = true;   /* no SSDP at the gateway; the group may still answer */
			return;
		}
		char st[160];
		if (rp_ssdp_parse(buf, (size_t)n, f->location, sizeof(f->location), st, sizeof(st), NULL))
			continue;
		static const char igd[] = "urn:schemas-upnp-org:device:InternetGatewayDevice:",
				  wanip[] = "urn:schemas-upnp-org:service:WANIPConnection:";
		if (strncmp(st, igd, sizeof(igd) - 1) && strncmp(st, wanip, sizeof(wanip) - 1))
			continue;          /* another kind of device */
		f->ssdp_from = from.sin_addr.s_addr;
		f->ssdp_state = 0;
		return;
	}
}

static void find(struct finder *f, const struct rp_portmap_opts *o, struct rp_portmap *m, uint64_t t0)
{
	uint64_t deadline = t0 + (uint64_t)o->timeout_ms * 1000000u;
	uint64_t ssdp_deadline = t0 + (uint64_t)(o->timeout_ms > SSDP_WAIT_MS ? o->timeout_ms : SSDP_WAIT_MS) * 1000000u;
	struct rp_pcp_request q = { .opcode = RP_PCP_OP_ANNOUNCE };
	rp_pcp_v4mapped(f->local, q.client_ip);
	f->pcp.state = f->natpmp.state = f->ssdp_state = 2;   /* 2: not asked */
	f->pcp.fd = f->ssdp_fd = f->ssdp_uc = -1;
	if (f->want & RP_PM_F(RP_PM_PCP)) {
		int fd = udp_to(f->gw, RP_PCP_PORT, NULL);
		if (fd < 0)
			f->pcp.state = fd;
		else
			pcp_x_start(&f->pcp, fd, &q);
	}
	if (f->want & RP_PM_F(RP_PM_NATPMP) && !natpmp_x_open(&f->natpmp, f->gw)) {
		f->natpmp.state = 1;
		if (sendpublicaddressrequest(&f->natpmp.np) < 0)
			f->natpmp.state = -EIO;
	}
	if (f->want & RP_PM_F(RP_PM_UPNP)) {
		int e = ssdp_open(f);
		f->ssdp_state = e ? e : 1;
	}
	for (;;) {
		uint64_t now = rp_mono_ns();
		for (unsigned p = 0; p < RP_PM_NPROTO; p++)
			if (state_of(f, p) == 0 && m->att[p].found_ms < 0)
				m->att[p].found_ms = (double)(now - t0) / 1e6;
		if (find_done(f))
			break;
		uint64_t give_up = o->give_up_ns ? atomic_load(o->give_up_ns) : 0;
		if (now >= deadline && (!ssdp_worth_waiting(f) || now >= ssdp_deadline || (give_up && now >= give_up)))
			break;
		struct pollfd pf[4];
		int n = 0, wait = ms_left(now >= deadline ? ssdp_deadline : deadline);
		if (o->give_up_ns && now >= deadline && wait > 20)
			wait = 20;      /* look at give_up_ns again soon */
		pcp_x_tick(&f->pcp, now);
		ssdp_tick(f, now);
		if (f->pcp.state == 1) {
			pf[n++] = (struct pollfd){ .fd = f->pcp.fd, .events = POLLIN };
			int w = ms_left(f->pcp.next_ns);
			wait = w < wait ? w : wait;
		}
		if (f->natpmp.state == 1) {
			pf[n++] = (struct pollfd){ .fd = f->natpmp.np.s, .events = POLLIN };
			int w = natpmp_x_timeout_ms(&f->natpmp);
			wait = w < wait ? w : wait;
		}
		if (f->ssdp_state == 1) {
			pf[n++] = (struct pollfd){ .fd = f->ssdp_fd, .events = POLLIN };
			pf[n++] = (struct pollfd){ .fd = f->ssdp_uc, .events = POLLIN };
			int w = ms_left(f->ssdp_next);
			wait = w < wait ? w : wait;
		}
		if (poll(pf, (nfds_t)n, wait) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (!(pf[i].revents & (POLLIN | POLLERR)))
				continue;
			if (f->pcp.state == 1 && pf[i].fd == f->pcp.fd)
				pcp_x_read(&f->pcp);
			else if (f->natpmp.state == 1 && pf[i].fd == f->natpmp.np.s)
				natpmp_x_read(&f->natpmp);
			else if (f->ssdp_state == 1 && (pf[i].fd == f->ssdp_fd || pf[i].fd == f->ssdp_uc))
				ssdp_read(f, pf[i].fd);
		}
		if (f->natpmp.state == 1 && natpmp_x_timeout_ms(&f->natpmp) <= 1)
			natpmp_x_read(&f->natpmp);   /* its retry time: libnatpmp resends */
	}
}

/* Step 1's verdict per protocol, in words. */
static void find_report(const struct finder *f, const struct rp_portmap_opts *o, struct rp_portmap *m, uint64_t t0)
{
	char g[INET_ADDRSTRLEN];
	double waited = ms_since(t0);
	ipstr(f->gw, g);
	for (unsigned p = 0; p < RP_PM_NPROTO; p++) {
		struct rp_pm_attempt *a = &m->att[p];
		int st = state_of(f, p);
		if (!a->tried)
			continue;
		a->present = st == 0;
		if (a->present)
			continue;
		a->err = st == 1 ? -ETIMEDOUT : st;
		if (p == RP_PM_UPNP && st == 1 && f->ssdp_refused)
			why(a, "port unreachable: no SSDP at %s:%d, and no IGD answered the group in %.0f ms", g,
			    RP_SSDP_PORT, waited);
		else if (p == RP_PM_UPNP && st == 1)
			why(a, "no SSDP answer from an IGD within %.0f ms", waited);
		else if (st == 1)
			why(a, "no answer from %s:%d within %d ms", g, RP_PCP_PORT, o->timeout_ms);
		else if (st == -ECONNREFUSED)
			why(a, "port unreachable: nothing serves %s at %s:%d", p == RP_PM_PCP ? "PCP" : "NAT-PMP", g,
			    RP_PCP_PORT);
		else if (p == RP_PM_PCP && st == -EPROTONOSUPPORT)
			why(a, "the gateway answered in NAT-PMP (version %u): no PCP", f->pcp.r.version);
		else if (p == RP_PM_NATPMP && f->natpmp.code) {
			a->code = f->natpmp.code;
			char t[96];
			why(a, "%s", natpmp_text(f->natpmp.code, t, sizeof(t)));
		} else
			why(a, "%s", strerror(-st));
	}
	if (m->att[RP_PM_UPNP].tried && m->att[RP_PM_UPNP].present && f->ssdp_from != f->gw) {
		/* fine, but say so: the IGD is not the default gateway */
		char s[INET_ADDRSTRLEN];
		why(&m->att[RP_PM_UPNP], "the IGD answering SSDP is %s, not the gateway %s", ipstr(f->ssdp_from, s), g);
	}
}

static void finder_close(struct finder *f)
{
	if (f->pcp.fd >= 0)
		close(f->pcp.fd);
	natpmp_x_close(&f->natpmp);
	if (f->ssdp_fd >= 0)
		close(f->ssdp_fd);
	if (f->ssdp_uc >= 0)
		close(f->ssdp_uc);
}

/* ------------------------------------------------------------------ the API */

static int record(struct rp_portmap *m, const char *dir)
{
	char def[256];
	if (dir && !dir[0])
		return 0;
	if (!dir) {
		int e = rp_pm_state_dir(def, sizeof(def));
		if (e)
			return m->state_err = e;
		dir = def;
	}
	int e = rp_pm_record_save(dir, &m->rec, m->state_path, sizeof(m->state_path));
	if (e)
		m->state_path[0] = 0;
	return m->state_err = e;
}

static void granted(struct rp_portmap *m, uint32_t lifetime)
{
	m->lifetime_s = lifetime;
	m->granted_ns = rp_mono_ns();
	m->rec.expires = (uint64_t)time(NULL) + lifetime;
}

static int undo_record(const struct rp_pm_record *r, void *arg)
{
	int timeout_ms = *(const int *)arg;
	struct rp_pm_record copy = *r;
	struct rp_pm_attempt a = { 0 };
	uint32_t g;
	return exchange(&copy, 0, timeout_ms, &a, &g);
}

int rp_portmap_sweep(const char *dir, uint16_t only_port, int timeout_ms, struct rp_pm_sweep *st)
{
	char def[256];
	if (!dir) {
		int e = rp_pm_state_dir(def, sizeof(def));
		if (e)
			return e;
		dir = def;
	}
	if (timeout_ms <= 0)
		timeout_ms = 500;
	return rp_pm_sweep_dir(dir, 0, only_port, undo_record, &timeout_ms, st);
}

int rp_portmap_request(const struct rp_portmap_opts *oin, struct rp_portmap *m)
{
	struct rp_portmap_opts o;
	struct finder f;
	uint64_t t0 = rp_mono_ns();
	int last = -ENOENT;
	if (!oin || !m)
		return -EINVAL;
	o = *oin;
	memset(m, 0, sizeof(*m));
	for (unsigned p = 0; p < RP_PM_NPROTO; p++)
		m->att[p].found_ms = m->att[p].map_ms = -1;
	if (!o.protocols)
		o.protocols = RP_PM_ALL;
	if (!o.ipproto)
		o.ipproto = IPPROTO_TCP;
	if (!o.lifetime_s)
		o.lifetime_s = RP_PM_DEFAULT_LIFETIME;
	if (!o.timeout_ms)
		o.timeout_ms = RP_PM_DEFAULT_TIMEOUT_MS;
	if (!o.map_timeout_ms)
		o.map_timeout_ms = RP_PM_DEFAULT_MAP_TIMEOUT_MS;
	if ((o.protocols & ~RP_PM_ALL) || !o.internal_port || (o.ipproto != IPPROTO_TCP && o.ipproto != IPPROTO_UDP) ||
	    o.timeout_ms < 0 || o.map_timeout_ms < 0 || (o.peer_port && !o.peer_addr))
		return -EINVAL;
	if (!o.state_dir || o.state_dir[0]) {
		int n = rp_portmap_sweep(o.state_dir, 0, 300, NULL);
		if (n > 0)
			m->swept = (unsigned)n;
	}
	if (!o.gateway && rp_pm_default_gateway(&o.gateway))
		return -ENETUNREACH;

	memset(&f, 0, sizeof(f));
	f.want = o.protocols;
	f.gw = o.gateway;
	int fd = udp_to(o.gateway, RP_PCP_PORT, &f.local);
	if (fd < 0)
		return fd;
	close(fd);
	for (unsigned p = 0; p < RP_PM_NPROTO; p++)
		m->att[p].tried = (o.protocols & RP_PM_F(p)) != 0;
	find(&f, &o, m, t0);
	find_report(&f, &o, m, t0);

	for (unsigned p = 0; p < RP_PM_NPROTO; p++) {
		struct rp_pm_attempt *a = &m->att[p];
		if (!a->present)
			continue;
		struct rp_pm_record *rec = &m->rec;
		memset(rec, 0, sizeof(*rec));
		rec->pid = (long)getpid();
		rp_pm_proc_start(rec->pid, &rec->start);
		rec->netns = rp_pm_netns();
		rec->proto = (enum rp_pm_proto)p;
		rec->ipproto = o.ipproto;
		rec->gateway = o.gateway;
		rec->internal_addr = f.local;
		rec->internal_port = o.internal_port;
		rec->external_port = o.external_port;
		if (p == RP_PM_PCP) {
			nonce_new(rec->nonce);
			rec->peer_addr = o.peer_addr;
			rec->peer_port = o.peer_port;
		}
		if (p == RP_PM_NATPMP)
			rec->external_addr = f.natpmp.r.pnu.publicaddress.addr.s_addr;
		uint64_t ts = rp_mono_ns();
		uint32_t life = 0;
		int e = p == RP_PM_UPNP ? upnp_first_map(f.location, rec, o.lifetime_s, a, &life)
					: exchange(rec, o.lifetime_s, o.map_timeout_ms, a, &life);
		a->map_ms = ms_since(ts);
		if (e) {
			a->err = last = e;
			if (!a->why[0])
				why(a, "%s", strerror(-e));
			continue;
		}
		a->mapped = true;
		a->err = 0;
		a->why[0] = 0;
		granted(m, life);
		m->active = true;
		record(m, o.state_dir);
		break;
	}
	finder_close(&f);
	m->total_ms = ms_since(t0);
	if (!m->active) {
		memset(&m->rec, 0, sizeof(m->rec));
		return last;
	}
	return 0;
}

int64_t rp_portmap_due_ms(const struct rp_portmap *m)
{
	if (!m || !m->active)
		return -1;
	uint64_t due = m->granted_ns + (uint64_t)m->lifetime_s * 500000000ull, now = rp_mono_ns();
	return now >= due ? 0 : (int64_t)((due - now) / 1000000u);
}

int rp_portmap_refresh(struct rp_portmap *m, int timeout_ms)
{
	struct rp_pm_attempt *a;
	uint32_t life = 0, asked;
	int e;
	if (!m || !m->active)
		return -EINVAL;
	a = &m->att[m->rec.proto];
	asked = m->lifetime_s ? m->lifetime_s : RP_PM_DEFAULT_LIFETIME;
	uint64_t ts = rp_mono_ns();
	e = exchange(&m->rec, asked, timeout_ms > 0 ? timeout_ms : RP_PM_DEFAULT_MAP_TIMEOUT_MS, a, &life);
	a->map_ms = ms_since(ts);
	if (e)
		return e;
	granted(m, life);
	if (m->state_path[0])
		m->state_err = rp_pm_record_update(m->state_path, &m->rec);
	return 0;
}

int rp_portmap_delete(struct rp_portmap *m, int timeout_ms)
{
	uint32_t life = 0;
	int e;
	if (!m || !m->active)
		return 0;
	e = exchange(&m->rec, 0, timeout_ms > 0 ? timeout_ms : RP_PM_DEFAULT_MAP_TIMEOUT_MS, &m->att[m->rec.proto], &life);
	if (e && e != -ENOENT)
		return e;
	m->active = false;
	if (m->state_path[0] && unlink(m->state_path) && errno != ENOENT)
		return -errno;
	m->state_path[0] = 0;
	return 0;
}
