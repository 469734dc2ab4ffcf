/* SPDX-License-Identifier: MIT */
/* Output files (--report, --pcap, -w, --plot) opened the safe way, before the first packet and before
 * privileges are given up (rawpunch/base/privs.h), so that a mistake costs nothing on the wire and a
 * root run cannot be turned against the machine:
 *   - a name, never a command: "|cmd" and "-" are refused (no pipes, no shell);
 *   - the last component is never followed if it is a symlink (O_NOFOLLOW);
 *   - only a regular file is written: a FIFO, device, socket or directory is refused (opened with
 *     O_NONBLOCK first so a FIFO cannot block us);
 *   - an existing file is overwritten only if it belongs to the user the command will run as (or to the
 *     caller) and has a single link; otherwise it is left alone (-EEXIST);
 *   - a file root creates for another user is given to that user (fchown), so sudo runs leave files the
 *     invoking user owns;
 *   - the truncation happens only after every check.
 * Library code: -errno, prints nothing. */
#ifndef RP_OUTFILE_H
#define RP_OUTFILE_H
#include <stdio.h>
#include <sys/types.h>

/* Open path for writing, for the user uid:gid (see rp_privs_target). Returns an O_CLOEXEC fd or
 * -EINVAL (empty, "-" or "|..."), -ELOOP (a symlink), -EISDIR / -ENOTSUP (not a regular file: directory /
 * anything else), -EEXIST (someone else's file, or hard-linked), or open()'s -errno (-ENOENT: no such
 * directory, -EACCES ...). */
int rp_out_open(const char *path, uid_t uid, gid_t gid);

/* The same as a stdio stream ("w"); NULL with errno set. */
FILE *rp_out_fopen(const char *path, uid_t uid, gid_t gid);

/* A short reason for an rp_out_open() error, for messages ("is a symbolic link", ...). */
const char *rp_out_strerror(int neg_errno);

#endif
