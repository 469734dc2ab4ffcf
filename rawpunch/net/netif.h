/* SPDX-License-Identifier: MIT */
/* Where a packet to a destination goes: egress interface (name, index, MAC, MTU), our source
 * address, the next hop (gateway or the destination itself) and its MAC from the neighbour table
 * (for AF_PACKET senders), via rtnetlink RTM_GETROUTE. Also picking a free local TCP port.
 * Every function returns -errno and prints nothing. Addresses network order. */
#ifndef RP_NETIF_H
#define RP_NETIF_H
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

struct rp_route {
	uint32_t dst;            /* the destination asked for */
	uint32_t src;            /* preferred source address for it */
	uint32_t gateway;        /* 0 when the destination is on-link */
	uint32_t nexthop;        /* gateway, or dst when on-link */
	int ifindex;
	char ifname[IF_NAMESIZE];
	int mtu;
	uint8_t if_mac[6];       /* the egress interface's own address (zero if it has none) */
	bool has_nexthop_mac;
	uint8_t nexthop_mac[6];  /* filled by rp_route_resolve_mac() */
};

/* Route lookup (no packet sent). -ENETUNREACH / -EHOSTUNREACH if there is no route. */
int rp_route_get(uint32_t dst, struct rp_route *r);

/* Look the next hop up in the neighbour table; if absent and prime is true, send one empty UDP
 * datagram to nexthop:9 (discard) to make the kernel resolve it, and poll the table up to timeout_ms.
 * Only prime towards hosts you are allowed to send to. -EHOSTUNREACH if it did not resolve. */
int rp_route_resolve_mac(struct rp_route *r, bool prime, int timeout_ms);

/* A local TCP port that is free now (bind port 0 on laddr, read it, close). laddr 0 = any. */
int rp_free_port(uint32_t laddr, uint16_t *port);

/* Hold laddr:port (0 = any) as the handoff will bind it: a TCP socket with SO_REUSEADDR, bound, never
 * listening. While the fd is open no connect() on the host is given the port (autobind skips bound
 * ports), and the binds beside it that all set SO_REUSEADDR and do not listen still succeed: the
 * handoff's, the STUN client's connections from the punch port (SO_REUSEPORT is not needed for them,
 * and would let a listener of the same user with SO_REUSEPORT go unnoticed). The fd, or -errno:
 * -EADDRINUSE (a listener, or a socket of someone else's without SO_REUSEADDR, has it), -EADDRNOTAVAIL
 * (laddr is not this host's), -EACCES (a port below rp_port_unprivileged_start() without
 * CAP_NET_BIND_SERVICE). */
int rp_port_hold(uint32_t laddr, uint16_t port);

/* net.ipv4.ip_unprivileged_port_start (1024 when it cannot be read): binding a port below it needs
 * CAP_NET_BIND_SERVICE, which rawpunch does not keep. */
unsigned rp_port_unprivileged_start(void);

/* Interface name -> index/MTU/MAC; -ENODEV if unknown. */
int rp_iface_info(const char *ifname, int *ifindex, int *mtu, uint8_t mac[6]);

#endif
