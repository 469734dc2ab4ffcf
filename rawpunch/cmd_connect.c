/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER — replaced by the module that owns 'rawpunch connect'. */
#include "rawpunch/cli.h"

int cmd_connect(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return rp_err("'connect' is not built yet");
}
