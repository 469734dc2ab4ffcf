/* SPDX-License-Identifier: MIT */
/* For unit tests that need a network of their own: a private network namespace with lo up, as a
 * cmocka group setup (root only; without it the group's setup fails, never a silent pass).
 * Header-only; include after <cmocka.h>. */
#ifndef RP_TEST_NETNS_FIXTURE_H
#define RP_TEST_NETNS_FIXTURE_H
#define _GNU_SOURCE 1
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* unshare(CLONE_NEWNET) and bring lo up; 0, or -1 after saying why on stderr (who: the test's name) */
static inline int rp_test_netns_lo_up(const char *who)
{
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "%s: unshare(CLONE_NEWNET): %s -- these tests need root\n", who, strerror(errno));
		return -1;
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
		return -1;
	ifr.ifr_flags |= IFF_UP;
	int r = ioctl(s, SIOCSIFFLAGS, &ifr);
	close(s);
	return r ? -1 : 0;
}

#endif
