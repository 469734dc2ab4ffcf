/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER — replaced by the module that owns 'rawpunch watch'. */
#include "rawpunch/cli.h"

int cmd_watch(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return rp_err("'watch' is not built yet");
}
