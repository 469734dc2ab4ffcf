/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for rp_natinfo_from_json (rawpunch/probe/natinfo.c), what a peer's "info" box and
 * the CLI's --natinfo file go through: the input is parsed as JSON (json-c, as the box is) and handed
 * to it. What it accepts must survive a round trip: rp_natinfo_to_json of the result, parsed again,
 * gives the same JSON text; no more predictions than the array holds. Corpus: tests/corpus/natinfo/. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawpunch/probe/natinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(32);
	if (!tok)
		return 0;
	struct json_object *o = json_tokener_parse_ex(tok, (const char *)data, (int)(size < 65536 ? size : 65536));
	json_tokener_free(tok);
	if (!o)
		return 0;
	struct rp_natinfo a, b;
	memset(&a, 0, sizeof(a));
	if (rp_natinfo_from_json(o, &a) == 0) {
		if (a.n_predicted > sizeof(a.predicted) / sizeof(a.predicted[0]))
			abort();
		struct json_object *j1 = rp_natinfo_to_json(&a);
		if (!j1)
			abort();
		memset(&b, 0, sizeof(b));
		if (rp_natinfo_from_json(j1, &b))
			abort();                   /* what we print we must read back */
		struct json_object *j2 = rp_natinfo_to_json(&b);
		if (!j2 || strcmp(json_object_to_json_string(j1), json_object_to_json_string(j2)))
			abort();
		json_object_put(j1);
		json_object_put(j2);
	}
	json_object_put(o);
	return 0;
}
