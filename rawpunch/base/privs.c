/* SPDX-License-Identifier: MIT */
#include "rawpunch/base/privs.h"

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

/* Held in the permitted set only (never effective) after rp_privs_limit, so rp_privs_drop_all can still
 * switch to --user and empty the bounding set; they exist there only when the process had them (root). */
static const cap_value_t switch_caps[] = { CAP_SETUID, CAP_SETGID, CAP_SETPCAP };
#define N_SWITCH ((int)(sizeof(switch_caps) / sizeof(switch_caps[0])))

int rp_privs_limit(void)
{
	cap_value_t keep[2], perm[2 + N_SWITCH];
	int nkeep = 0, nperm = 0, err = 0;
	cap_t cur = cap_get_proc(), c;
	cap_flag_value_t v;
	if (!cur)
		return -errno;
	if (!cap_get_flag(cur, CAP_NET_RAW, CAP_PERMITTED, &v) && v == CAP_SET)
		keep[nkeep++] = CAP_NET_RAW;
	if (!cap_get_flag(cur, CAP_NET_ADMIN, CAP_PERMITTED, &v) && v == CAP_SET)
		keep[nkeep++] = CAP_NET_ADMIN;
	for (int i = 0; i < nkeep; i++)
		perm[nperm++] = keep[i];
	for (int i = 0; i < N_SWITCH; i++)
		if (!cap_get_flag(cur, switch_caps[i], CAP_PERMITTED, &v) && v == CAP_SET)
			perm[nperm++] = switch_caps[i];
	cap_free(cur);
	c = cap_init();
	if (!c)
		return -errno;
	if ((nperm && cap_set_flag(c, CAP_PERMITTED, nperm, perm, CAP_SET)) ||
	    (nkeep && cap_set_flag(c, CAP_EFFECTIVE, nkeep, keep, CAP_SET)))
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
	struct passwd *pw = NULL;
	cap_t c;
	if (user && !(pw = getpwnam(user)))
		return -ENOENT;             /* before anything irreversible */
	c = cap_get_proc();
	/* raise whichever of the switch capabilities rp_privs_limit left permitted (best effort: as root
	 * without rp_privs_limit they are effective already; with file capabilities there are none) */
	if (c) {
		cap_value_t raise[N_SWITCH];
		int n = 0;
		cap_flag_value_t v;
		for (int i = 0; i < N_SWITCH; i++)
			if (!cap_get_flag(c, switch_caps[i], CAP_PERMITTED, &v) && v == CAP_SET)
				raise[n++] = switch_caps[i];
		if (n && !cap_set_flag(c, CAP_EFFECTIVE, n, raise, CAP_SET))
			(void)cap_set_proc(c);
		cap_free(c);
	}
	/* Bounding set first, while CAP_SETPCAP is still effective (setuid() below clears it);
	 * best effort by design: without CAP_SETPCAP it cannot be changed. */
	for (cap_value_t i = 0; i <= CAP_LAST_CAP; i++)
		if (CAP_IS_SUPPORTED(i))
			cap_drop_bound(i);
	if (pw) {
		if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid))
			return -errno;
		if (setuid(0) == 0) /* must not be able to regain root */
			return -EPERM;
	}
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
