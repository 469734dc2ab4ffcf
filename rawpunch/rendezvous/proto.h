/* SPDX-License-Identifier: MIT */
/* Rendezvous wire protocol: framing, key derivation and the peer-to-peer sealed box. Pure: no I/O, no
 * globals (libsodium and json-c only). Fuzzed by tools/fuzz/fuzz_rvproto.c.
 *
 * Framing. Every message either way is a frame: a 4-byte big-endian body length (1..RV_FRAME_MAX)
 * then a body that is one UTF-8 JSON object with a string member "t" (the type). A length of 0 or
 * above RV_FRAME_MAX is a protocol error: the server answers {"t":"error","code":"oversize"} and closes.
 *
 * Trust model — the server is NOT trusted with anything it could use to join, read or inject.
 *   salt   = BLAKE2b-128("rawpunch-rv-v2" || 0 || session)
 *   master = Argon2id(secret, salt, RV_KDF_OPSLIMIT, RV_KDF_MEMLIMIT)              (never leaves a peer)
 *   id     = BLAKE2b-128(key = master, "id")   -> 32 hex chars: the only thing the server matches on
 *   kbox   = crypto_kdf_derive_from_key(1, "rawpunch", master)                  (XChaCha20-Poly1305 key)
 *   kpunch = crypto_kdf_derive_from_key(2, "rawpunch", master)       (the punch's ISN key, 16 bytes)
 * The server lets up to RV_MEMBERS_MAX connections wait under one id and forwards each member's "fwd"
 * boxes verbatim to every other member (tagged with the sender's member number "m"); the server
 * cannot tell a peer from anyone else who learnt the id, so it does not try: the peers do. A box
 * that does not open under kbox is skipped and counted by the client (never fatal: otherwise one
 * garbage box from an intruder would end the real peer's join); only if nothing authentic came by
 * the join's deadline is that reported, as -EACCES (a wrong key, or only intruders).
 * It cannot invert id to the secret: the secret should be random (`rawpunch secret FILE`
 * makes one; the CLI refuses files under RV_SECRET_MIN bytes or RV_SECRET_BITS estimated bits), and the
 * memory-hard KDF makes each offline guess cost RV_KDF_MEMLIMIT of memory, so it cannot compute kbox
 * and cannot open, forge or alter a box. Each box is
 * XChaCha20-Poly1305 with a random 24-byte nonce and additional data = "rv1" || id, so a box is bound to
 * its session. Inside, JSON carries:
 *   "t"    application type ("hello", "info", or anything the caller sends later);
 *   "from" the sender's fresh 16-byte random nonce (hex), chosen per join;
 *   "to"   the receiver's nonce (hex), empty only in "hello";
 *   "ctr"  the sender's message counter, strictly increasing from 1.
 * A receiver accepts a box only if it opens under kbox, "from" is not its own nonce (reflection),
 * "to" is its own nonce (replay of a box from an earlier run is refused: the nonce is fresh), and ctr
 * is greater than the last ctr it accepted from that peer (replay within the run is refused).
 * "hello" (empty "to") is the exception, and proves nothing about freshness: until the first box
 * addressed to our nonce arrives, the newest hello names the peer (a replayed old hello followed by the
 * real one is superseded by it). The first accepted box with "to" == our nonce pins "from" for good;
 * after that, hellos and other senders are refused.
 * What the server (or anyone on the path) can still do: see id, timing and sizes; drop, delay or
 * close; join an id it has seen (an intruder's boxes are skipped; filling all RV_MEMBERS_MAX slots
 * before the peers come denies the session, "full", until the intruders' connections expire: an
 * unpaired member after the server's session TTL, a paired one after its paired TTL, 120 s by
 * default); replay an old hello (superseded by the real peer's hello; "info" and everything
 * after it must carry our fresh nonce, so nothing from an old run is ever accepted); answer clock samples
 * falsely (the "time" exchange is plain, so a lying server can skew the two peers' start apart, which
 * only degrades the punch). It cannot learn the natinfo exchanged, the start time or the candidate
 * ports, nor make a peer accept anything the other peer did not send.
 *
 * Server messages (plain JSON, not sealed): client -> server
 *   {"t":"time","t1":ns}                  NTP-style sample, answered {"t":"time","t1","t2","t3"}
 *   {"t":"join","v":1,"id":"<32 hex>"}     answered {"t":"wait","hello":true} (alone) then
 *                                         {"t":"paired"} when a second member comes, and again
 *                                         {"t":"paired","m":N} for each later newcomer N; "full" past
 *                                         RV_MEMBERS_MAX members. A newcomer gets {"t":"paired",
 *                                         "hello":true}, then the kept hello of each member already
 *                                         there as {"t":"fwd","box":...,"m":N}. "hello":true says the
 *                                         server keeps hellos (below); an older server leaves it out,
 *                                         and its members say hello again for each newcomer.
 *   {"t":"fwd","box":"<base64>"}          forwarded to every other member as
 *                                         {"t":"fwd","box":...,"m":N}, N the sender's member number
 *     optional "hello":true               the box is the sender's hello (at most RV_HELLO_BOX_MAX
 *                                         chars, else "bad-request"): the server keeps the latest one
 *                                         of each member (replacing the one before, freed when the
 *                                         member leaves) and hands it to every later newcomer right
 *                                         after its "paired"; allowed before the pairing (kept only;
 *                                         a plain fwd then is "unpaired"). Counts against the quota.
 *                                         A client sends it right behind its join, so the peer holds
 *                                         its nonce one round trip after joining. An older server
 *                                         ignores the flag (forwards it, or "unpaired" when alone).
 *   {"t":"fprobe","port":P,"ms":T}        filter probe of the requester's own address; answered
 *                                         {"t":"fprobe","port":P,"result":"rst|drop|icmp|open",
 *                                          "sport":S} (S: the server's source port of the probe)
 *     optional "sport":S (1024..65535)    probe from that port of the server's (the nat_ttl
 *                                         confirmation: the other half of a simultaneous open);
 *                                         servers without it ignore it and send no "sport" back
 *   {"t":"bye"}
 * server -> client also: {"t":"gone","m":N} (member N left: the peer, if N sent the boxes we
 * accepted) and {"t":"error","code":C,"msg":M}: codes oversize, malformed, bad-request, version,
 * unknown-type, unpaired, already, full, busy, rate, forbidden, idle, slow, expired, quota, internal.
 * Server limits (server.h): a message rate per connection (over it, the connection is simply read
 * later), a lifetime per member after pairing, a forwarding quota per member ("quota", then close). */
#ifndef RP_RVPROTO_H
#define RP_RVPROTO_H
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define RV_FRAME_MAX 16384u       /* body bytes */
#define RV_HDR 4u
#define RV_ID_LEN 16u             /* bytes; 32 hex chars on the wire */
#define RV_KEY_LEN 32u
#define RV_NONCE_LEN 16u          /* per-join peer nonce */
#define RV_BOX_MAX 12000u         /* largest plaintext a box carries (fits a frame after base64) */
#define RV_DEFAULT_PORT 7777
#define RV_MEMBERS_MAX 4          /* connections that may wait under one id; the next gets "full" */
#define RV_HELLO_BOX_MAX 1024u    /* a kept hello box (base64 chars; a hello is ~200): the server keeps one a member */
#define RV_SECRET_MIN 16u         /* the CLI refuses shorter secret files (offline search on the id) */
#define RV_SECRET_BITS 96u        /* ... and those whose estimated entropy (rv_secret_bits) is lower */
#define RV_KDF_OPSLIMIT 2ull      /* Argon2id passes */
#define RV_KDF_MEMLIMIT (16u << 20) /* Argon2id memory: ~20 ms on a 2-core VM */

/* Frame scanner. Given len buffered bytes: returns the total frame length (header + body) when a
 * whole frame is there (*body and *body_len point into buf), 0 if more bytes are needed, -EMSGSIZE if the
 * announced length is 0 or above RV_FRAME_MAX (the stream cannot be resynchronised: close it). */
long rv_frame_scan(const uint8_t *buf, size_t len, const uint8_t **body, size_t *body_len);
/* Write the 4-byte header for a body of body_len bytes; -EMSGSIZE when out of range. */
int rv_frame_hdr(uint8_t hdr[RV_HDR], size_t body_len);
/* Frame a JSON object: new malloc'd buffer of header + body in *out / *out_len. 0, -ENOMEM, -EMSGSIZE. */
int rv_frame_json(const struct json_object *o, uint8_t **out, size_t *out_len);
/* Parse a body into a JSON object with a string "t" (returned in *type, owned by *o). 0, or -EBADMSG
 * for anything else (not UTF-8 JSON, not an object, no "t", trailing bytes, nesting too deep). */
int rv_body_parse(const uint8_t *body, size_t len, struct json_object **o, const char **type);

struct rv_keys {
	uint8_t id[RV_ID_LEN];
	char id_hex[2 * RV_ID_LEN + 1];
	uint8_t kbox[RV_KEY_LEN];
	uint8_t kpunch[16];
};
/* Derive the session keys from the secret bytes and the session name (1..255 bytes, any bytes but
 * NUL). 0, -EINVAL (empty secret or bad name) or -ENOMEM (libsodium init or Argon2's memory failed).
 * Costs one Argon2id (~20 ms): derive once per session. */
int rv_keys_derive(const uint8_t *secret, size_t secret_len, const char *session, struct rv_keys *k);
/* Estimated entropy of a secret in bits: length x log2 of the alphabet its character classes span
 * (digits, lower, upper, printable punctuation, or 256 for any other byte), capped by its distinct
 * bytes; 0 for a repeated single byte. `head -c 32 /dev/urandom | base64` rates 220, "password12345678" 80. */
unsigned rv_secret_bits(const uint8_t *s, size_t n);
/* Wipe keys. */
void rv_keys_wipe(struct rv_keys *k);
/* Exactly 32 lower-case hex chars: 0, else -EINVAL (the server checks joins with this). */
int rv_id_hex_valid(const char *s);

/* Seal plaintext (<= RV_BOX_MAX bytes) into a base64 string (malloc'd, NUL-terminated). */
int rv_box_seal(const struct rv_keys *k, const uint8_t *pt, size_t pt_len, char **b64_out);
/* Open a base64 box: malloc'd plaintext (NUL-terminated for convenience) in *pt / *pt_len.
 * 0, -EBADMSG (bad base64, too short/long, authentication failed), -ENOMEM. */
int rv_box_open(const struct rv_keys *k, const char *b64, uint8_t **pt, size_t *pt_len);

/* Per-peer replay/reflection state for sealed application messages. */
struct rv_peerstate {
	uint8_t mine[RV_NONCE_LEN];
	uint8_t theirs[RV_NONCE_LEN];
	int have_theirs;             /* theirs is set: from the newest hello, or pinned */
	uint64_t send_ctr;           /* last counter sent */
	uint64_t recv_ctr;           /* last counter accepted */
	int pinned;                  /* a box addressed to mine came from theirs: the peer is fixed */
};
/* Fresh random nonce, counters zero. */
void rv_peerstate_init(struct rv_peerstate *ps);
/* Build the sealed plaintext for an application message: copies obj's members and adds t/from/to/ctr
 * (obj may be NULL). Returns a new JSON object or NULL on ENOMEM/EINVAL (type empty or > 31 chars). */
struct json_object *rv_msg_wrap(struct rv_peerstate *ps, const char *type, const struct json_object *obj);
/* Check an opened plaintext: JSON object, types, "from" != mine, "to" == mine (or empty for "hello"),
 * ctr > recv_ctr (per sender). Before the peer is pinned, a hello sets theirs = "from" (a hello from
 * a new sender replaces the previous one), and the first box with "to" == mine pins its "from" as
 * theirs (it is provably of this run). After pinning, "from" must match and hellos are refused. On success advances recv_ctr and returns the object in *o with
 * its type in *type. -EBADMSG malformed, -EPERM reflection, wrong recipient or changed sender,
 * -EALREADY replay (old counter, or a hello after pinning). Refused boxes change no state. */
int rv_msg_check(struct rv_peerstate *ps, const uint8_t *pt, size_t pt_len, struct json_object **o,
		 const char **type);

/* NTP-style clock sample from the four timestamps (ns): t1 client send, t2 server receive, t3 server
 * send, t4 client receive. offset = server - client clock; rtt excludes the server's hold time. */
struct rv_clock_sample {
	int64_t offset_ns;
	int64_t rtt_ns;
};
#define RV_CLOCK_T_MAX (UINT64_C(1) << 62)   /* any timestamp above this: -EINVAL */
int rv_clock_sample(uint64_t t1, uint64_t t2, uint64_t t3, uint64_t t4, struct rv_clock_sample *s);

/* The offset estimate from n samples (minimum-RTT filter) and its uncertainty.
 *   offset_ns  the offset of the sample with the smallest RTT (least queueing on either path);
 *   rtt_ns     that smallest RTT;
 *   bound_ns   rtt_ns / 2: the hard bound, true whatever the two one-way delays are;
 *   err_ns     the estimate's real uncertainty, assuming the two one-way delays of the best sample
 *              differ by at most a tenth of its RTT: rtt_ns / 20, plus half the spread of the offsets
 *              of the samples within max(0.5 ms, rtt_ns / 10) of the best RTT (what queueing and clock
 *              reading add), plus 100 us (timestamping), never above bound_ns.
 * A server is not trusted: |offset| above RV_CLOCK_OFFSET_MAX is refused (-ERANGE) — a host whose clock
 * is that far off must be fixed (NTP) rather than trusted to an unauthenticated server's word — and
 * samples rv_clock_sample refused are not counted. 0, -EINVAL (n < 1 or no valid sample), -ERANGE. */
#define RV_CLOCK_OFFSET_MAX (INT64_C(60) * 1000000000)
#define RV_START_MAX_NS (UINT64_C(60) * 1000000000)   /* the agreed start is at most this far ahead */
struct rv_clock_est {
	int64_t offset_ns, rtt_ns, bound_ns, err_ns;
	int n;                   /* valid samples used */
};
int rv_clock_estimate(const struct rv_clock_sample *s, int n, struct rv_clock_est *out);

#endif
