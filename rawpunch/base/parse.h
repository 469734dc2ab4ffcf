/* SPDX-License-Identifier: MIT */
/* Parsers for the textual forms users type: numbers, IPv4 addresses, host:port, port lists.
 * Library code: 0 or -errno, prints nothing. */
#ifndef RP_PARSE_H
#define RP_PARSE_H
#include <stdint.h>
#include <netinet/in.h>

/* IPv4 dotted quad or host name (resolved, IPv4 only) with a mandatory or default port. -EINVAL for
 * a malformed one, a number that is not a dotted quad ("1.2.3", "0x7f000001", "010.0.0.1": no name
 * ends in a number, and inet_aton shorthand is not taken) included; -EHOSTUNREACH: no such name. */
int rp_parse_hostport(const char *s, uint16_t default_port, struct sockaddr_in *out);
int rp_parse_ipv4(const char *s, uint32_t *addr_net);
/* Whole decimal number in [min, max]; 0 or -EINVAL / -ERANGE. */
int rp_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* "80", "1000-2000", "22,80,443,8000-8010" -> up to cap ports (host order); count or -errno. */
int rp_parse_ports(const char *s, uint16_t *ports, int cap);

#endif
