/* SPDX-License-Identifier: MIT */
/* rawpunch: TCP NAT traversal toolkit. Subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "rawpunch/cli/cli.h"
#include "rawpunch/base/version.h"

static const struct rp_cmd cmds[] = {
	{ "syn", "craft and send SYNs (single, ranges, paced or burst)", cmd_syn },
	{ "watch", "decode replies seen by pcap: SYN, SYN-ACK, RST, ICMP", cmd_watch },
	{ "connect", "open one TCP connection, handshake in userspace, optionally hand to the kernel", cmd_connect },
	{ "probe", "classify the NAT in front of this host, from the punch port", cmd_probe },
	{ "punch", "meet a peer at a rendezvous and punch a TCP connection through both NATs", cmd_punch },
	{ "rendezvous", "run the rendezvous server peers meet at", cmd_rendezvous },
	{ "report", "print a punch --report as people read it (per side, per round, result)", cmd_report },
	{ "secret", "make a shared secret for --secret-file", cmd_secret },
	{ "portmap", "ask the NAT for a port mapping (PCP, NAT-PMP, UPnP-IGD) and hold it", cmd_portmap },
	/* hidden until punch falls back to it */
	{ "relay", "one TCP connection to a peer through a TURN server (RFC 8656/6062)", cmd_relay, true },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: rawpunch <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!cmds[i].hidden)
			fprintf(f, "  %-11s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\n'rawpunch <command> --help' for a command's options; 'rawpunch --version'.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("rawpunch %s\n", RP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		int status = cmds[i].run(argc - 1, argv + 1);
		/* interrupted: the shell's convention, 128 + the signal (130 after Ctrl-C) */
		return rp_cli_signal && status != 2 ? 128 + rp_cli_signal : status;
	}
	fprintf(stderr, "rawpunch: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
