/* SPDX-License-Identifier: MIT */
/* Rendezvous server sessions (see server-internal.h): the table of sessions by id, pairing two
 * peers on "join", forwarding their sealed boxes on "fwd", and leaving a session. */
#include "rawpunch/rendezvous/server-internal.h"

#include <stdlib.h>
#include <string.h>

#include "rawpunch/base/clock.h"

static unsigned id_hash(const char *id)
{
	unsigned h = 0;
	for (int i = 0; i < 8; i++)
		h = h * 16 + (unsigned)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	return h % NBUCKETS;
}

static struct session *sess_find(struct rv_server *s, const char *id)
{
	for (struct session *x = s->buckets[id_hash(id)]; x; x = x->hnext)
		if (!strcmp(x->id, id))
			return x;
	return NULL;
}

void rvs_sess_remove(struct rv_server *s, struct session *x)
{
	struct session **pp = &s->buckets[id_hash(x->id)];
	while (*pp && *pp != x)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = x->hnext;
	for (int i = 0; i < 2; i++)
		if (x->peer[i])
			x->peer[i]->sess = NULL;
	s->st.sessions_now--;
	rvs_addr_put(s, x->owner_addr, false, true);
	free(x);
}

void rvs_leave_session(struct rv_server *s, struct conn *c, bool notify)
{
	struct session *x = c->sess;
	if (!x)
		return;
	for (int i = 0; i < 2; i++) {
		struct conn *o = x->peer[i];
		if (o && o != c && notify)
			rvs_send_type(s, o, "gone");
	}
	rvs_sess_remove(s, x);
}

void rvs_handle_join(struct rv_server *s, struct conn *c, struct json_object *o)
{
	struct json_object *jid, *jv;
	const char *id;
	char who[32];
	if (!json_object_object_get_ex(o, "v", &jv) || !json_object_is_type(jv, json_type_int) ||
	    json_object_get_int64(jv) != 1) {
		rvs_send_error(s, c, "version", "unsupported protocol version (want v 1)", true);
		return;
	}
	if (!json_object_object_get_ex(o, "id", &jid) || !json_object_is_type(jid, json_type_string) ||
	    rv_id_hex_valid(id = json_object_get_string(jid))) {
		rvs_send_error(s, c, "bad-request", "join needs \"id\": 32 lower-case hex characters", true);
		return;
	}
	if (c->sess) {
		rvs_send_error(s, c, "already", "this connection already joined a session", false);
		return;
	}
	struct session *x = sess_find(s, id);
	if (!x) {
		if (s->st.sessions_now >= s->cfg.max_sessions) {
			rvs_send_error(s, c, "busy", "server is at --max-sessions", true);
			return;
		}
		struct addrcount *ac = rvs_addr_get(s, c->peer.sin_addr.s_addr, false);
		if (ac && ac->sessions >= s->cfg.max_sessions_per_addr) {
			rvs_send_error(s, c, "busy", "too many sessions from this address (--max-per-addr)", true);
			return;
		}
		x = calloc(1, sizeof(*x));
		if (!x || !ac) {
			free(x);
			rvs_send_error(s, c, "internal", "out of memory", true);
			return;
		}
		ac->sessions++;
		x->owner_addr = c->peer.sin_addr.s_addr;
		memcpy(x->id, id, sizeof(x->id));
		x->created_ms = rp_mono_ms();
		unsigned h = id_hash(id);
		x->hnext = s->buckets[h];
		s->buckets[h] = x;
		s->st.sessions_now++;
	}
	if (x->peer[0] && x->peer[1]) {
		rvs_send_error(s, c, "full", "session already has two peers", true);
		return;
	}
	x->peer[x->peer[0] ? 1 : 0] = c;
	c->sess = x;
	if (x->peer[0] && x->peer[1]) {
		s->st.pairs++;
		rvs_logf(s, "paired %.8s… %s", id, rvs_peer_str(c, who, sizeof(who)));
		rvs_send_type(s, x->peer[0], "paired");
		rvs_send_type(s, x->peer[1], "paired");
	} else {
		rvs_logf(s, "join %.8s… %s", id, rvs_peer_str(c, who, sizeof(who)));
		rvs_send_type(s, c, "wait");
	}
}

void rvs_handle_fwd(struct rv_server *s, struct conn *c, struct json_object *o)
{
	struct json_object *jb, *out;
	struct session *x = c->sess;
	struct conn *other;
	if (!json_object_object_get_ex(o, "box", &jb) || !json_object_is_type(jb, json_type_string) ||
	    json_object_get_string_len(jb) == 0) {
		rvs_send_error(s, c, "bad-request", "fwd needs a \"box\" string", false);
		return;
	}
	if (!x || !x->peer[0] || !x->peer[1]) {
		rvs_send_error(s, c, "unpaired", "no peer to forward to yet", false);
		return;
	}
	other = x->peer[0] == c ? x->peer[1] : x->peer[0];
	out = json_object_new_object();
	if (out) {
		json_object_object_add(out, "t", json_object_new_string("fwd"));
		json_object_object_add(out, "box", json_object_get(jb));
	}
	rvs_queue_json(s, other, out);
}

