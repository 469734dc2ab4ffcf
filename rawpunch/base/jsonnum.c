/* SPDX-License-Identifier: MIT */
/* JSON numbers with a fixed number of decimals (see jsonnum.h). */
#include "rawpunch/base/jsonnum.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>

struct json_object *rp_json_fixed(double v, int decimals)
{
	char b[48];
	double f = pow(10, decimals);
	snprintf(b, sizeof(b), "%.*f", decimals, v);
	return json_object_new_double_s(round(v * f) / f, b);
}
