/* SPDX-License-Identifier: MIT */
/* rawpunch secret [FILE]: make a shared secret both peers put in --secret-file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rawpunch/base/io.h"
#include "rawpunch/cli/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rawpunch secret [FILE]\n\n"
		"Write a new shared secret (32 random bytes from the kernel, base64) to FILE, created with\n"
		"mode 0600 and never overwriting an existing file, or to standard output. Give the same\n"
		"file to both peers' --secret-file (copy it over a channel you trust: whoever has it can\n"
		"join your session). Files shorter than 16 bytes, or under 96 bits of estimated entropy\n"
		"(a passphrase), are refused by punch and rendezvous.\n");
}

int cmd_secret(int argc, char **argv)
{
	int c = rp_cli_help_only("secret", argc, argv, usage);
	if (c >= 0)
		return c;
	if (argc - optind > 1)
		return rp_usage_err("secret", "one FILE at most, got %d arguments", argc - optind);
	if (sodium_init() < 0)
		return rp_err("libsodium failed to initialise");
	uint8_t raw[32];
	char b64[sodium_base64_ENCODED_LEN(sizeof(raw), sodium_base64_VARIANT_ORIGINAL) + 1];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64) - 1, raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(raw, sizeof(raw));
	size_t n = strlen(b64);
	b64[n++] = '\n';
	int fd = STDOUT_FILENO, r;
	const char *file = optind < argc ? argv[optind] : NULL;
	if (file && (fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		int e = errno;
		sodium_memzero(b64, sizeof(b64));
		if (e == EEXIST)
			return rp_usage_err("secret", "%s exists: not overwritten (a peer may be using it)", file);
		return rp_usage_err("secret", "%s: %s", file, strerror(e));
	}
	r = rp_io_write_all(fd, b64, n, 0);
	sodium_memzero(b64, sizeof(b64));
	if (file && (close(fd) || r)) {
		unlink(file);
		return rp_err("%s: %s", file, strerror(r ? -r : errno));
	}
	if (r)
		return rp_err("writing the secret: %s", strerror(-r));
	return 0;
}
