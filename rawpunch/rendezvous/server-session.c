/* SPDX-License-Identifier: MIT */
/* Rendezvous server sessions (see server-internal.h): the table of sessions by id, pairing two
 * peers on "join", forwarding their sealed boxes on "fwd", keeping each member's hello for the members
 * that come after it, and leaving a session. */
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
	for (int i = 0; i < RV_MEMBERS_MAX; i++)
		if (x->member[i])
			x->member[i]->sess = NULL;
	s->st.sessions_now--;
	rvs_addr_put(s, x->owner_addr, false, true);
	free(x);
}

/* {"t":T,"box":box,"m":no} (box left out when NULL, m when 0) for c. */
static void tell(struct rv_server *s, struct conn *c, const char *type, uint32_t no, struct json_object *box)
{
	struct json_object *o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "t", json_object_new_string(type));
		if (box)
			json_object_object_add(o, "box", json_object_get(box));
		if (no)
			json_object_object_add(o, "m", json_object_new_int64(no));
	}
	rvs_queue_json(s, c, o);
}

/* tell() every member of x but skip. */
static void tell_members(struct rv_server *s, struct session *x, const struct conn *skip, const char *type,
			 uint32_t no, struct json_object *box)
{
	for (int i = 0; i < RV_MEMBERS_MAX; i++) {
		struct conn *m = x->member[i];
		if (m && m != skip && !m->closing)
			tell(s, m, type, no, box);
	}
}

void rvs_leave_session(struct rv_server *s, struct conn *c, bool notify)
{
	struct session *x = c->sess;
	json_object_put(c->hello);
	c->hello = NULL;
	if (!x)
		return;
	for (int i = 0; i < RV_MEMBERS_MAX; i++)
		if (x->member[i] == c)
			x->member[i] = NULL;
	x->n_members--;
	c->sess = NULL;
	if (notify)
		tell_members(s, x, c, "gone", c->member_no, NULL);
	if (!x->n_members)
		rvs_sess_remove(s, x);
}

/* The answer to a join: {"t":type,"hello":true} (this server keeps hellos). */
static void join_reply(struct rv_server *s, struct conn *c, const char *type)
{
	struct json_object *o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "t", json_object_new_string(type));
		json_object_object_add(o, "hello", json_object_new_boolean(1));
	}
	rvs_queue_json(s, c, o);
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
	uint64_t now = rvs_now(s);
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
		x->created_ms = now;
		unsigned h = id_hash(id);
		x->hnext = s->buckets[h];
		s->buckets[h] = x;
		s->st.sessions_now++;
	}
	if (x->n_members >= RV_MEMBERS_MAX) {
		rvs_send_error(s, c, "full", "session already has its maximum of members", true);
		return;
	}
	for (int i = 0; i < RV_MEMBERS_MAX; i++)
		if (!x->member[i]) {
			x->member[i] = c;
			break;
		}
	x->n_members++;
	c->sess = x;
	c->member_no = ++x->next_no;
	c->joined_ms = now;
	c->paired_ms = 0;
	if (x->n_members == 1) {
		rvs_logf(s, "join %.8s… %s", id, rvs_peer_str(c, who, sizeof(who)));
		join_reply(s, c, "wait");
		return;
	}
	/* company: the newcomer is paired, and every member already there hears of it (a waiting one
	 * for the first time; an older client says hello again, for the newcomer); the newcomer gets the
	 * hellos the members already there left with us, so it can address them at once */
	if (x->n_members == 2)
		s->st.pairs++;
	rvs_logf(s, "paired %.8s… %s (%u members)", id, rvs_peer_str(c, who, sizeof(who)), x->n_members);
	for (int i = 0; i < RV_MEMBERS_MAX; i++)
		if (x->member[i] && !x->member[i]->paired_ms)
			x->member[i]->paired_ms = now;
	tell_members(s, x, c, "paired", c->member_no, NULL);
	join_reply(s, c, "paired");
	for (int i = 0; i < RV_MEMBERS_MAX; i++) {
		struct conn *m = x->member[i];
		if (m && m != c && m->hello && !m->closing && !c->closing)
			tell(s, c, "fwd", m->member_no, m->hello);
	}
}

void rvs_handle_fwd(struct rv_server *s, struct conn *c, struct json_object *o)
{
	struct json_object *jb, *jh;
	struct session *x = c->sess;
	bool hello = json_object_object_get_ex(o, "hello", &jh) && json_object_is_type(jh, json_type_boolean) &&
		     json_object_get_boolean(jh);
	if (!json_object_object_get_ex(o, "box", &jb) || !json_object_is_type(jb, json_type_string) ||
	    json_object_get_string_len(jb) == 0) {
		rvs_send_error(s, c, "bad-request", "fwd needs a \"box\" string", false);
		return;
	}
	size_t len = (size_t)json_object_get_string_len(jb);
	if (hello && len > RV_HELLO_BOX_MAX) {
		rvs_send_error(s, c, "bad-request", "a hello box is at most 1024 characters", false);
		return;
	}
	/* a hello may come before the pairing: it is kept for whoever comes */
	if (!x || (x->n_members < 2 && !hello)) {
		rvs_send_error(s, c, "unpaired", "no peer to forward to yet", false);
		return;
	}
	if (!rv_fwd_quota_ok(c->fwd_msgs, c->fwd_bytes, len, s->cfg.fwd_max_msgs, s->cfg.fwd_max_bytes)) {
		rvs_leave_session(s, c, true);
		rvs_send_error(s, c, "quota", "forwarding quota of this session used up", true);
		return;
	}
	c->fwd_msgs++;
	c->fwd_bytes += len;
	if (hello) {                          /* the latest one replaces the one before */
		json_object_put(c->hello);
		c->hello = json_object_get(jb);
	}
	/* to every other member: the peers themselves tell their partner's boxes from an intruder's */
	tell_members(s, x, c, "fwd", c->member_no, jb);
}
