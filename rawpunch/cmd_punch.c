/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER — replaced by the module that owns 'rawpunch punch'. */
#include "rawpunch/cli.h"

int cmd_punch(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return rp_err("'punch' is not built yet");
}
