/* SPDX-License-Identifier: MIT */
/* Route, source address, next hop and neighbour lookups (see netif.h). */
#include "rawpunch/net/netif.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int rp_iface_info(const char *ifname, int *ifindex, int *mtu, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd, e = 0;
	if (!ifname || strlen(ifname) >= IF_NAMESIZE)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		e = errno == ENODEV ? -ENODEV : -errno;
		goto out;
	}
	if (ifindex)
		*ifindex = ifr.ifr_ifindex;
	if (mtu) {
		if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
			e = -errno;
			goto out;
		}
		*mtu = ifr.ifr_mtu;
	}
	if (mac) {
		memset(mac, 0, 6);
		if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER)
			memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	}
out:
	close(fd);
	return e;
}

int rp_route_get(uint32_t dst, struct rp_route *r)
{
	struct {
		struct nlmsghdr nh;
		struct rtmsg rt;
		char attrs[64];
	} req;
	union {
		char buf[8192];
		struct nlmsghdr align;
	} resp;
	struct rtattr *ra;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd, len, e = 0;
	bool have_oif = false;

	if (!r || !dst)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->dst = dst;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.nh.nlmsg_type = RTM_GETROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = 1;
	req.rt.rtm_family = AF_INET;
	req.rt.rtm_dst_len = 32;
	ra = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
	ra->rta_type = RTA_DST;
	ra->rta_len = RTA_LENGTH(4);
	memcpy(RTA_DATA(ra), &dst, 4);
	req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(ra->rta_len);

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = -errno;
		goto out;
	}
	len = (int)recv(fd, resp.buf, sizeof(resp.buf), 0);
	if (len < 0) {
		e = -errno;
		goto out;
	}
	for (struct nlmsghdr *nh = &resp.align; NLMSG_OK(nh, (unsigned)len); nh = NLMSG_NEXT(nh, len)) {
		if (nh->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *ne = NLMSG_DATA(nh);
			e = ne->error ? ne->error : -EHOSTUNREACH;
			goto out;
		}
		if (nh->nlmsg_type != RTM_NEWROUTE)
			continue;
		struct rtmsg *rt = NLMSG_DATA(nh);
		if (rt->rtm_type == RTN_UNREACHABLE || rt->rtm_type == RTN_BLACKHOLE ||
		    rt->rtm_type == RTN_PROHIBIT) {
			e = -EHOSTUNREACH;
			goto out;
		}
		int alen = (int)RTM_PAYLOAD(nh);
		for (struct rtattr *a = RTM_RTA(rt); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			switch (a->rta_type) {
			case RTA_OIF:
				memcpy(&r->ifindex, RTA_DATA(a), 4);
				have_oif = true;
				break;
			case RTA_PREFSRC:
				memcpy(&r->src, RTA_DATA(a), 4);
				break;
			case RTA_GATEWAY:
				memcpy(&r->gateway, RTA_DATA(a), 4);
				break;
			}
		}
		break;
	}
	if (!have_oif || !if_indextoname((unsigned)r->ifindex, r->ifname)) {
		e = -ENETUNREACH;
		goto out;
	}
	r->nexthop = r->gateway ? r->gateway : dst;
	e = rp_iface_info(r->ifname, NULL, &r->mtu, r->if_mac);
	if (!e && !r->src) {
		/* no preferred source in the answer: ask the kernel the way connect() would */
		int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9) };
		socklen_t sl = sizeof(sin);
		sin.sin_addr.s_addr = dst;
		if (u < 0)
			e = -errno;
		else if (connect(u, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
			 getsockname(u, (struct sockaddr *)&sin, &sl) < 0)
			e = -errno;
		else
			r->src = sin.sin_addr.s_addr;
		if (u >= 0)
			close(u);
	}
out:
	close(fd);
	return e;
}

/* /proc/net/arp of this namespace: "IP HWtype Flags HWaddr Mask Device" */
static bool arp_lookup(uint32_t ip, const char *ifname, uint8_t mac[6])
{
	FILE *f = fopen("/proc/net/arp", "re");
	char line[256];
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char ips[64], hw[64], dev[IF_NAMESIZE + 8];
		unsigned type, flags, m[6];
		struct in_addr a;
		if (sscanf(line, "%63s 0x%x 0x%x %63s %*s %23s", ips, &type, &flags, hw, dev) != 5)
			continue;
		if (inet_pton(AF_INET, ips, &a) != 1 || a.s_addr != ip || strcmp(dev, ifname) || !(flags & ATF_COM))
			continue;
		if (sscanf(hw, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
			continue;
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)m[i];
		found = true;
	}
	fclose(f);
	return found;
}

int rp_route_resolve_mac(struct rp_route *r, bool prime, int timeout_ms)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	if (!r || !r->nexthop || !r->ifname[0])
		return -EINVAL;
	if (arp_lookup(r->nexthop, r->ifname, r->nexthop_mac)) {
		r->has_nexthop_mac = true;
		return 0;
	}
	if (!prime)
		return -EHOSTUNREACH;
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0)
		return -errno;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9) };
	sin.sin_addr.s_addr = r->nexthop;
	(void)setsockopt(u, SOL_SOCKET, SO_BINDTODEVICE, r->ifname, (socklen_t)strlen(r->ifname));
	(void)sendto(u, "", 0, 0, (struct sockaddr *)&sin, sizeof(sin));
	close(u);
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		if (arp_lookup(r->nexthop, r->ifname, r->nexthop_mac)) {
			r->has_nexthop_mac = true;
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	return -EHOSTUNREACH;
}

int rp_port_hold(uint32_t laddr, uint16_t port)
{
	static const int one = 1;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = laddr };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

unsigned rp_port_unprivileged_start(void)
{
	unsigned v = 1024;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
	if (f) {
		if (fscanf(f, "%u", &v) != 1)
			v = 1024;
		fclose(f);
	}
	return v;
}

int rp_free_port(uint32_t laddr, uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd, e = 0;
	if (!port)
		return -EINVAL;
	sin.sin_addr.s_addr = laddr;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
		e = -errno;
	else
		*port = ntohs(sin.sin_port);
	close(fd);
	return e;
}
