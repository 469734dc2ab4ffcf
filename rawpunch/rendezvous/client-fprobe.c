/* SPDX-License-Identifier: MIT */
/* Rendezvous client (client.h): the filter-probe request, unauthenticated: ask the server to connect
 * back to this host's public address at a port and say what came back. */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "rawpunch/base/clock.h"
#include "rawpunch/rendezvous/client-internal.h"

/* The filter probe, from the server's port sport (0: one of its choosing). A server that does not
 * know "sport" ignores it and does not echo it: -EOPNOTSUPP. */
static int fprobe(const struct sockaddr_in *server, uint16_t public_port, uint16_t sport, int timeout_ms,
		  enum rp_filter *out)
{
	struct rv_client *c;
	struct json_object *o, *jr;
	const char *t;
	int r;
	if (!server || !out || public_port == 0 || timeout_ms < 100 || timeout_ms > 5000 || (sport && sport < 1024))
		return -EINVAL;
	if ((r = rv_connect(server, 3000, &c)))
		return r;
	uint64_t deadline = rp_mono_ms() + (uint64_t)timeout_ms + 2000u;
	o = json_object_new_object();
	if (!o) {
		rv_close(c);
		return -ENOMEM;
	}
	json_object_object_add(o, "t", json_object_new_string("fprobe"));
	json_object_object_add(o, "port", json_object_new_int(public_port));
	json_object_object_add(o, "ms", json_object_new_int(timeout_ms));
	if (sport)
		json_object_object_add(o, "sport", json_object_new_int(sport));
	if ((r = rvc_send_json(c, o, deadline)) || (r = rvc_recv_json(c, deadline, &o, &t))) {
		rv_close(c);
		return r;
	}
	rv_close(c);
	r = -EPROTO;
	if (!strcmp(t, "fprobe") && json_object_object_get_ex(o, "result", &jr) &&
	    json_object_is_type(jr, json_type_string)) {
		const char *s = json_object_get_string(jr);
		if (strcmp(s, "unknown") && rp_filter_parse(s, out) == 0)
			r = 0;
		if (sport && (!json_object_object_get_ex(o, "sport", &jr) || !json_object_is_type(jr, json_type_int) ||
			      json_object_get_int64(jr) != sport))
			r = -EOPNOTSUPP;
	}
	json_object_put(o);
	return r;
}

int rv_filter_probe(const struct sockaddr_in *server, uint16_t public_port, int timeout_ms, enum rp_filter *out)
{
	return fprobe(server, public_port, 0, timeout_ms, out);
}

int rv_connect_back(const struct sockaddr_in *server, uint16_t public_port, uint16_t server_port, int timeout_ms,
		    enum rp_filter *out)
{
	return server_port ? fprobe(server, public_port, server_port, timeout_ms, out) : -EINVAL;
}

int rv_connect_back_cb(void *arg, uint16_t public_port, uint16_t server_port, int timeout_ms, enum rp_filter *out)
{
	return rv_connect_back(arg, public_port, server_port, timeout_ms, out);
}

int rv_filter_probe_cb(void *arg, uint16_t public_port, int timeout_ms, enum rp_filter *out)
{
	return rv_filter_probe(arg, public_port, timeout_ms, out);
}
