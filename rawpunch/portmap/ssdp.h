/* SPDX-License-Identifier: MIT */
/* SSDP for finding a UPnP Internet Gateway Device (UPnP Device Architecture 1.1 §1.3). Pure: no I/O.
 *
 * rawpunch searches itself instead of through libminiupnpc's upnpDiscover(), whose wait is at least
 * 1 s per device type: an M-SEARCH (built here) goes to the multicast group and to the default
 * gateway, and the first answer's LOCATION (parsed here, strictly and bounds-checked) is handed to
 * libminiupnpc, which does the rest (description, SOAP). */
#ifndef RP_SSDP_H
#define RP_SSDP_H
#include <stddef.h>

#define RP_SSDP_PORT 1900
#define RP_SSDP_GROUP "239.255.255.250"
#define RP_SSDP_ST_IGD "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
#define RP_SSDP_MAX_MSG 2048u

/* Write an M-SEARCH for search target st (MX mx seconds, 1..5) into buf. Returns its length, -ENOSPC,
 * or -EINVAL (st empty, too long, or with CR/LF). */
int rp_ssdp_msearch(char *buf, size_t cap, const char *st, unsigned mx);

/* Parse one M-SEARCH answer of len bytes (not NUL-terminated): it must start "HTTP/1.1 200", every header
 * line must end in CRLF before the empty line, and LOCATION (any case) must be an http:// URL of
 * printable ASCII without spaces. The URL is copied into location (NUL-terminated), and the ST
 * header's value into st (if st is not NULL; "" when absent). 0, -EBADMSG (*why says why) or
 * -ENOSPC (a value longer than its buffer). */
int rp_ssdp_parse(const char *buf, size_t len, char *location, size_t loc_cap, char *st, size_t st_cap,
		  const char **why);

#endif
