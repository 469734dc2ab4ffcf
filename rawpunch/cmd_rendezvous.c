/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER — replaced by the module that owns 'rawpunch rendezvous'. */
#include "rawpunch/cli.h"

int cmd_rendezvous(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return rp_err("'rendezvous' is not built yet");
}
