/* SPDX-License-Identifier: MIT */
/* JSON numbers for reports: a double rounded to a fixed number of decimals and printed with exactly
 * those (json-c would print all 17 significant digits of the nearest binary double). */
#ifndef RP_JSONNUM_H
#define RP_JSONNUM_H

struct json_object;

/* v rounded to `decimals` places, serialised as "%.*f". New reference, or NULL on ENOMEM. */
struct json_object *rp_json_fixed(double v, int decimals);

#endif
