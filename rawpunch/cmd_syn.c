/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER — replaced by the module that owns 'rawpunch syn'. */
#include "rawpunch/cli.h"

int cmd_syn(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return rp_err("'syn' is not built yet");
}
