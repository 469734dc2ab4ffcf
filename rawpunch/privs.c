/* SPDX-License-Identifier: MIT */
#include "rawpunch/privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

int rp_privs_have(void)
{
	cap_t c = cap_get_proc();
	cap_flag_value_t v;
	int have = 0;
	if (!c)
		return 0;
	if (!cap_get_flag(c, CAP_NET_RAW, CAP_EFFECTIVE, &v) && v == CAP_SET)
		have |= RP_PRIV_NET_RAW;
	if (!cap_get_flag(c, CAP_NET_ADMIN, CAP_EFFECTIVE, &v) && v == CAP_SET)
		have |= RP_PRIV_NET_ADMIN;
	cap_free(c);
	return have;
}

int rp_privs_limit(void)
{
	cap_value_t keep[2];
	int nkeep = 0, err = 0;
	cap_t cur = cap_get_proc(), c;
	cap_flag_value_t v;
	if (!cur)
		return -errno;
	if (!cap_get_flag(cur, CAP_NET_RAW, CAP_PERMITTED, &v) && v == CAP_SET)
		keep[nkeep++] = CAP_NET_RAW;
	if (!cap_get_flag(cur, CAP_NET_ADMIN, CAP_PERMITTED, &v) && v == CAP_SET)
		keep[nkeep++] = CAP_NET_ADMIN;
	cap_free(cur);
	c = cap_init();
	if (!c)
		return -errno;
	if (nkeep && (cap_set_flag(c, CAP_PERMITTED, nkeep, keep, CAP_SET) ||
		      cap_set_flag(c, CAP_EFFECTIVE, nkeep, keep, CAP_SET)))
		err = -errno;
	if (!err && cap_set_proc(c))
		err = -errno;
	cap_free(c);
	if (!err && CAP_AMBIENT_SUPPORTED())
		cap_reset_ambient();
	return err;
}

int rp_privs_drop_all(const char *user)
{
	int err = 0;
	cap_t c;
	if (user) {
		struct passwd *pw = getpwnam(user);
		if (!pw)
			return -ENOENT;
		if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid))
			return -errno;
		if (setuid(0) == 0) /* must not be able to regain root */
			return -EPERM;
	}
	/* Bounding set: needs CAP_SETPCAP, which only root has; best effort by design. */
	for (cap_value_t i = 0; i <= CAP_LAST_CAP; i++)
		if (CAP_IS_SUPPORTED(i))
			cap_drop_bound(i);
	if (CAP_AMBIENT_SUPPORTED())
		cap_reset_ambient();
	c = cap_init();
	if (!c)
		return -errno;
	if (cap_set_proc(c))
		err = -errno;
	cap_free(c);
	if (!err && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		err = -errno;
	return err;
}
