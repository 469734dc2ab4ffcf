/* SPDX-License-Identifier: MIT */
/* The probe cache (probecache.h): a file per (local address, gateway, STUN server), written
 * atomically, read back and checked by rp_probe_recheck() from the punch port. The key holds the
 * gateway's MAC address: hosts behind different routers with the same addresses (labs) do not share. */
#include "rawpunch/punch/probecache.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"
#include "rawpunch/net/netif.h"
#include "rawpunch/probe/probe.h"

int rp_probecache_dir(char *buf, size_t cap)
{
	const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME"), *rd = getenv("RAWPUNCH_RUNTIME_DIR");
	int n;
	if (rd && *rd == '/')            /* as root: the folder of the user the command runs as (rp_cli_enter) */
		n = snprintf(buf, cap, "%s", rd);
	else if (x && *x == '/')
		n = snprintf(buf, cap, "%s/rawpunch", x);
	else if (geteuid() == 0)
		n = snprintf(buf, cap, "/run/rawpunch");
	else if (h && *h == '/')
		n = snprintf(buf, cap, "%s/.cache/rawpunch", h);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* The entry's file for this route to the STUN server: the source address, the gateway and its MAC
 * address (as the neighbour table has it: nothing is sent), the server. No MAC known: -ENOENT. */
static int entry_path(const struct sockaddr_in *stun, char *buf, size_t cap, uint32_t *src)
{
	struct rp_route rt;
	char dir[4096];
	const uint8_t *m = rt.nexthop_mac;
	int r = rp_route_get(stun->sin_addr.s_addr, &rt);
	if (r)
		return r;
	if (rp_route_resolve_mac(&rt, false, 0) || !rt.has_nexthop_mac)
		return -ENOENT;
	if ((r = rp_probecache_dir(dir, sizeof(dir))))
		return r;
	*src = rt.src;
	int n = snprintf(buf, cap, "%s/probe-%08x-%08x-%02x%02x%02x%02x%02x%02x-%08x-%04x.json", dir, ntohl(rt.src),
			 ntohl(rt.nexthop), m[0], m[1], m[2], m[3], m[4], m[5], ntohl(stun->sin_addr.s_addr),
			 ntohs(stun->sin_port));
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* What the cache keeps: a NAT's classification that one round of Bindings can confirm
 * (rp_alloc_recheck_flows), with the filtering known (only a full probe measures it). */
static bool kept(const struct rp_natinfo *ni)
{
	return ni->filtering != RP_FILTER_UNKNOWN && rp_alloc_recheck_flows(ni) &&
	       (ni->alloc != RP_ALLOC_PRESERVING || ni->mapped_port == ni->local_port);
}

int rp_probecache_get(const struct sockaddr_in *stun, uint16_t local_port, int timeout_ms, struct rp_natinfo *ni)
{
	char path[4200];
	uint32_t src;
	struct rp_natinfo c;
	struct json_object *o, *j;
	int r = entry_path(stun, path, sizeof(path), &src);
	if (r)
		return r == -ENAMETOOLONG ? r : -ENOENT;
	if (!(o = json_object_from_file(path)))
		return -ENOENT;
	int64_t at = json_object_object_get_ex(o, "saved_at", &j) ? json_object_get_int64(j) : 0;
	r = json_object_object_get_ex(o, "natinfo", &j) ? rp_natinfo_from_json(j, &c) : -EINVAL;
	json_object_put(o);
	uint64_t now = rp_real_ns();
	if (r || at <= 0 || (uint64_t)at > now || now - (uint64_t)at > (uint64_t)RP_PROBECACHE_MAX_AGE_S * 1000000000ull ||
	    !kept(&c) || c.local_addr != src)
		return -ENOENT;
	/* the check: the punch port's binding (and a fresh port's beside it for a predicted side) */
	struct rp_probe_opts po = { .stun = *stun, .local_port = local_port, .timeout_ms = timeout_ms };
	r = rp_probe_recheck(&po, &c, ni);
	if (r == -ESTALE)
		unlink(path);
	return r;
}

/* Remove the entries older than the cache keeps (other networks', never read again). */
static void prune(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat sb;
	char p[4400];
	time_t now = time(NULL);
	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (strncmp(e->d_name, "probe-", 6) || n < 11 || strcmp(e->d_name + n - 5, ".json"))
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p))
			continue;
		if (!lstat(p, &sb) && S_ISREG(sb.st_mode) && now - sb.st_mtime > RP_PROBECACHE_MAX_AGE_S)
			unlink(p);
	}
	closedir(d);
}

int rp_probecache_put(const struct sockaddr_in *stun, const struct rp_natinfo *ni)
{
	char path[4200], dir[4096];
	uint32_t src;
	int r;
	if (!kept(ni))
		return -ENOTSUP;
	if ((r = entry_path(stun, path, sizeof(path), &src)) || (r = rp_probecache_dir(dir, sizeof(dir))))
		return r;
	if (ni->local_addr != src)
		return -ENOTSUP;   /* probed from another address than the route's */
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	prune(dir);
	struct json_object *o = json_object_new_object(), *n = rp_natinfo_to_json(ni);
	if (!o || !n) {
		json_object_put(o);
		json_object_put(n);
		return -ENOMEM;
	}
	json_object_object_add(o, "saved_at", json_object_new_int64((int64_t)rp_real_ns()));
	json_object_object_add(o, "natinfo", n);
	size_t len;
	const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	r = text ? rp_io_write_file_atomic(path, text, len, 0644) : -ENOMEM;
	json_object_put(o);
	return r;
}
