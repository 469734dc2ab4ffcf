/* SPDX-License-Identifier: MIT */
/* Private to the rendezvous client (client.c, client-fprobe.c, multi.c): the join in its two halves, so
 * that a join over several servers (multi.c) can wait for a pairing on more than one and finish on one;
 * the framed JSON exchange with the server. */
#ifndef RP_RV_CLIENT_INTERNAL_H
#define RP_RV_CLIENT_INTERNAL_H
#include <stdint.h>
#include "rawpunch/rendezvous/client.h"

struct json_object;
/* Send one JSON frame (o is consumed) before deadline (rp_mono_ms). 0 or -errno. */
int rvc_send_json(struct rv_client *c, struct json_object *o, uint64_t deadline_ms);
/* Next frame from the server as a JSON object (caller puts it); error frames become -errno. */
int rvc_recv_json(struct rv_client *c, uint64_t deadline_ms, struct json_object **o, const char **type);

/* Clock sync, join by id, wait until paired (deadline: rp_mono_ms). 0 or -errno. */
int rv_join_begin_(struct rv_client *c, const struct rv_keys *k, const struct rv_join_req *req, uint64_t deadline);
/* After the pairing: hello both ways, then the info exchange; fills res (zeroed by the caller). */
int rv_join_finish_(struct rv_client *c, const struct rv_join_req *req, struct rv_join_res *res, uint64_t deadline);

/* The fuzzer (tools/fuzz/fuzz_rvclient.c): a client over an already connected stream fd, with keys k
 * and a fresh peer state, clock offset 0, not yet joined (rv_join_finish_ may run; NULL: ENOMEM), and
 * its nonce (what the peer's boxes must be addressed to). */
struct rv_client *rv_client_adopt_(int fd, const struct rv_keys *k);
const uint8_t *rv_client_nonce_(const struct rv_client *c);
/* Mark c joined (rv_send / rv_recv allowed). */
void rv_client_set_joined_(struct rv_client *c);

#endif
