/* SPDX-License-Identifier: MIT */
/* Privileges: enter the reduced state once, drop the rest later (see privs.h). */
#include "rawpunch/base/privs.h"

#include <errno.h>
#include <grp.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

/* RP_PRIV_* held in one set of this process */
static int held(cap_flag_t set)
{
	cap_t c = cap_get_proc();
	cap_flag_value_t v;
	int have = 0;
	if (!c)
		return 0;
	if (!cap_get_flag(c, CAP_NET_RAW, set, &v) && v == CAP_SET)
		have |= RP_PRIV_NET_RAW;
	if (!cap_get_flag(c, CAP_NET_ADMIN, set, &v) && v == CAP_SET)
		have |= RP_PRIV_NET_ADMIN;
	cap_free(c);
	return have;
}

int rp_privs_have(void)
{
	return held(CAP_EFFECTIVE);
}

int rp_privs_permitted(void)
{
	return held(CAP_PERMITTED);
}

static bool is_root(void)
{
	uid_t r, e, s;
	return getresuid(&r, &e, &s) || r == 0 || e == 0 || s == 0;
}

/* A whole decimal number that fits uid_t/gid_t. */
static int parse_id(const char *s, unsigned long *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return (*end || errno || *out >= (unsigned long)(uid_t)-1) ? -EINVAL : 0;
}

int rp_privs_target(const char *user, uid_t *uid, gid_t *gid, char *name, size_t namelen)
{
	struct passwd *pw = NULL;
	unsigned long id, g;
	if (user && *user) {
		if (!(pw = getpwnam(user))) {
			if (parse_id(user, &id))
				return -ENOENT;
			pw = getpwuid((uid_t)id);
			if (!pw) {          /* a bare uid with no passwd entry: its own gid */
				*uid = (uid_t)id;
				*gid = (gid_t)id;
				if (name)
					snprintf(name, namelen, "%lu", id);
				goto check;
			}
		}
	} else if (!is_root()) {
		pw = getpwuid(getuid());    /* not root: we stay who we are */
		if (!pw) {
			*uid = getuid();
			*gid = getgid();
			if (name)
				snprintf(name, namelen, "%lu", (unsigned long)*uid);
			return 0;
		}
	} else if (!parse_id(getenv("SUDO_UID"), &id) && id != 0) {
		/* run through sudo: back to the user who asked */
		pw = getpwuid((uid_t)id);
		if (!pw) {
			*uid = (uid_t)id;
			*gid = parse_id(getenv("SUDO_GID"), &g) ? (gid_t)id : (gid_t)g;
			if (name)
				snprintf(name, namelen, "%lu", id);
			return 0;
		}
	} else if (!(pw = getpwnam("nobody"))) {
		return -ENOENT;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (name)
		snprintf(name, namelen, "%s", pw->pw_name);
check:
	if (!is_root() && *uid != getuid())
		return -EPERM;              /* only root may become someone else */
	return 0;
}

static bool cap_in(cap_t c, cap_value_t v, cap_flag_t set)
{
	cap_flag_value_t f;
	return !cap_get_flag(c, v, set, &f) && f == CAP_SET;
}

static bool kept(cap_value_t v, unsigned keep)
{
	return (v == CAP_NET_RAW && (keep & RP_PRIV_NET_RAW)) || (v == CAP_NET_ADMIN && (keep & RP_PRIV_NET_ADMIN));
}

/* permitted = effective = keep (where held now), inheritable = ambient = none */
static int set_caps(unsigned keep)
{
	cap_value_t v[2];
	int n = 0, err = 0;
	cap_t cur = cap_get_proc(), c;
	if (!cur)
		return -errno;
	if ((keep & RP_PRIV_NET_RAW) && cap_in(cur, CAP_NET_RAW, CAP_PERMITTED))
		v[n++] = CAP_NET_RAW;
	if ((keep & RP_PRIV_NET_ADMIN) && cap_in(cur, CAP_NET_ADMIN, CAP_PERMITTED))
		v[n++] = CAP_NET_ADMIN;
	cap_free(cur);
	if (!(c = cap_init()))
		return -errno;
	if (n && (cap_set_flag(c, CAP_PERMITTED, n, v, CAP_SET) || cap_set_flag(c, CAP_EFFECTIVE, n, v, CAP_SET)))
		err = -errno;
	if (!err && cap_set_proc(c))
		err = -errno;
	cap_free(c);
	if (!err && CAP_AMBIENT_SUPPORTED() && cap_reset_ambient())
		err = -errno;
	return err;
}

int rp_privs_enter(const char *user, unsigned keep)
{
	uid_t uid;
	gid_t gid;
	char name[64];
	int r = rp_privs_target(user, &uid, &gid, name, sizeof(name));
	bool root = is_root();
	if (r)
		return r;                   /* before anything irreversible */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (root) {
		cap_t c = cap_get_proc();
		bool setpcap = c && cap_in(c, CAP_SETPCAP, CAP_EFFECTIVE);
		if (c)
			cap_free(c);
		if (!setpcap)
			return -EPERM;      /* root without CAP_SETPCAP (a restricted container): cannot lock */
		/* bounding set: nothing but what we keep, so no exec can ever hold more */
		for (cap_value_t i = 0; i <= CAP_LAST_CAP; i++)
			if (CAP_IS_SUPPORTED(i) && !kept(i, keep) && cap_drop_bound(i))
				return -errno;
		/* uid 0 means nothing to exec (NOROOT); setuid() keeps our capabilities (NO_SETUID_FIXUP);
		 * no ambient raise; all of it locked */
		if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
					     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
					     SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED, 0, 0, 0))
			return -errno;
		if (uid != 0) {
			struct passwd *pw = getpwuid(uid);
			if ((pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) || setresgid(gid, gid, gid) ||
			    setresuid(uid, uid, uid))
				return -errno;
		}
	}
	if ((r = set_caps(keep)))
		return r;
	/* verify rather than trust */
	if (uid != 0 && (is_root() || setuid(0) == 0))
		return -EPERM;
	if (rp_privs_is_elevated() && !(uid == 0 && root))
		return -EPERM;
	return 0;
}

int rp_privs_drop_caps(void)
{
	int r = set_caps(0);
	if (!r && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		r = -errno;
	return r;
}

bool rp_privs_is_elevated(void)
{
	cap_t c;
	bool more = false;
	if (is_root())
		return true;
	if (!(c = cap_get_proc()))
		return true;
	for (cap_value_t i = 0; i <= CAP_LAST_CAP && !more; i++) {
		if (!CAP_IS_SUPPORTED(i) || i == CAP_NET_RAW || i == CAP_NET_ADMIN)
			continue;
		more = cap_in(c, i, CAP_PERMITTED) || cap_in(c, i, CAP_EFFECTIVE) || cap_in(c, i, CAP_INHERITABLE) ||
		       (CAP_AMBIENT_SUPPORTED() && cap_get_ambient(i) == 1);
	}
	cap_free(c);
	return more;
}
