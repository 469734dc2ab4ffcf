/* SPDX-License-Identifier: MIT */
/* PLACEHOLDER — replaced by the module that owns 'rawpunch probe'. */
#include "rawpunch/cli.h"

int cmd_probe(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return rp_err("'probe' is not built yet");
}
