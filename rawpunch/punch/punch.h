/* SPDX-License-Identifier: MIT */
/* The punch executor: carries out THIS side's half of a strategy plan (rawpunch/strategy/strategy.h) at the
 * agreed start time T and turns the first authentic packet from the peer into one ESTABLISHED TCP
 * connection, then hands it to the kernel (rawpunch/handoff/handoff.h). It never asks which strategy
 * made the plan: it runs the phases the strategy gives for this side (rp_plan_exec). The whole
 * sequence around it -- probe, rendezvous, plan, rounds, handoff -- is one call in pipeline.h.
 *
 * One context (rp_punch_open) holds what lives across rounds: the raw socket for handshake segments,
 * the nftables RST guard (guard.h; one per process) and one capture on the egress interface towards
 * the peer's public address (BPF: TCP from the peer to us, ICMP to us). A round (rp_punch_round) then
 *   - before T: asks the plan's strategy for this side's phases (struct rp_exec: up to three passes
 *     of SYNs, each from the punch port or from fresh local ports, to a list of ports or to random
 *     ones, with a TTL, a start time, a repeat interval), builds each phase's SYN template (MSS,
 *     SACK-permitted, timestamps, window scale 7: the options the handshake and the TCP_REPAIR handoff
 *     rely on) and adds the round's local ports to the guard;
 *   - from T on: a sender thread sends the phases through the burst engine (burst.h, libnet raw
 *     IPv4 engine so the packets pass the host's routing and show in --pcap), paced at the plan's
 *     rate: typically low-TTL primes at T (mappings on our NAT that die before the peer's NAT, so it
 *     sends no RST that would close them), then the action at T + start_ms: CONNECT (the punch port
 *     to each target, repeated), OPEN_MANY (fresh local ports with the low TTL), PROBE_RANDOM
 *     (distinct random ports of the peer's NAT);
 *   - meanwhile validates everything the capture sees from the peer's public address (below). The
 *     first valid SYN or SYN-ACK stops the bursts and defines the flow; the userspace stack
 *     (userstack/tcb.h, persist mode, simultaneous open included) completes the handshake. The
 *     strategy may also end a round early (rst_cut: the peer's NAT keeps refusing).
 * Rounds that miss return -ETIMEDOUT with the counts of what was sent and seen; the caller re-probes,
 * re-plans (widened) and runs the next round on the same context.
 *
 * Files: context.c (open/close, guard, keys and ISNs), sender.c (phases and the sender thread),
 * punch.c (the round: receiving, validation, handshake; the handoff), round_json.c; punch_impl.h is
 * their private header.
 *
 * Validation across NATs. Through two NATs neither side sees the 4-tuple the other used, so a
 * per-tuple cookie (us_cookie) cannot validate the PEER's SYN. Both sides derive one 16-byte key
 * from the shared secret and the session name (rp_punch_key_derive: the rendezvous' Argon2id master,
 * rawpunch/rendezvous/proto.h), mixed with the run's nonce from the meeting (rp_punch_key_mix), and every SYN a side
 * sends in round r carries
 *     ISN = us_hash32(key, "rp-punch-syn" || from_pub || to_pub || from_port || r)
 * with from_pub / to_pub the sender's and receiver's public addresses (as exchanged in natinfo) and
 * from_port the sender's punch port when its action sends from that one port (CONNECT,
 * PROBE_RANDOM) or 0 when it sends from many (OPEN_MANY). A bare SYN from the peer's public address
 * counts only if its sequence number is the peer's ISN for this round; a SYN-ACK (and an RST-ACK)
 * only if ack - 1 is our own ISN; an ICMP error only if it quotes our ISN. Everything else is
 * counted as forged and ignored. Someone off the path cannot produce either value (64-bit SipHash
 * under a key from the secret, truncated to 32 bits: one blind guess in 2^32 per packet); a SYN
 * from an earlier round fails (r is hashed). An on-path observer sees the ISNs anyway, as with
 * any TCP connection.
 *
 * Library code: returns -errno, prints nothing (trace and progress callbacks get the events).
 * Addresses network order, ports host order. */
#ifndef RP_PUNCH_H
#define RP_PUNCH_H
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include "rawpunch/handoff/handoff.h"
#include "rawpunch/probe/natinfo.h"
#include "rawpunch/strategy/strategy.h"

#define RP_PUNCH_KEYLEN 16

struct json_object;

/* key = the kpunch of rv_keys_derive(secret, session) (Argon2id, then a KDF: rawpunch/rendezvous/proto.h).
 * 0, or -EINVAL (empty secret or session). */
int rp_punch_key_derive(const uint8_t *secret, size_t secret_len, const char *session,
			uint8_t key[RP_PUNCH_KEYLEN]);

/* The key of one run: key mixed with a nonce both sides share and no earlier run had (the rendezvous'
 * run_nonce), BLAKE2b-128(key = key, "rawpunch-run" || nonce), so that ISNs never repeat across runs. */
void rp_punch_key_mix(const uint8_t key[RP_PUNCH_KEYLEN], const uint8_t *nonce, size_t nonce_len,
		      uint8_t out[RP_PUNCH_KEYLEN]);

/* The ISN of every SYN the side at from_pub sends towards to_pub in round `round` (see above). */
uint32_t rp_punch_isn(const uint8_t key[RP_PUNCH_KEYLEN], uint32_t from_pub, uint32_t to_pub,
		      uint16_t from_port, unsigned round);

/* The public address a natinfo announces (mapped address behind a NAT, else the local one; as
 * rp_side_pub_addr). */
uint32_t rp_punch_pub_addr(const struct rp_natinfo *ni);

struct rp_punch_opts {
	uint32_t peer_addr;        /* the peer's public address (network order), required */
	uint32_t laddr;            /* our address; 0 = the route's source towards peer_addr */
	const char *iface;         /* capture interface; NULL = the route's egress interface */
	const uint8_t *key;        /* RP_PUNCH_KEYLEN bytes from rp_punch_key_derive, required */
	FILE *pcap_file;           /* every packet of the attempt, both directions, to this stream (opened
	                              by the caller); rp_punch_open takes it over: closed with the punch,
	                              or on failure, or by the capdump of rp_punch_keep_dump. NULL = none */
	volatile sig_atomic_t *stop; /* non-zero: rounds return -EINTR */
	void (*trace)(void *arg, const char *line);  /* one line per event (verbose); NULL = none */
	void *trace_arg;
};

struct rp_punch;

/* Route, raw socket, guard (empty), capture. Sends nothing. err gets what failed. 0, -EINVAL,
 * -EPERM (privileges), other -errno. */
int rp_punch_open(const struct rp_punch_opts *o, struct rp_punch **out, char *err, size_t errlen);

/* The same before the peer is known (o->peer_addr 0; no pcap_file: a dump would begin with whatever the
 * punch port saw meanwhile): the route towards route_to (e.g. the STUN server: the way out is the same
 * for the peer on most hosts), and a capture that waits for what comes to lport. The capture's open
 * (an AF_PACKET ring: ~10 ms) and the guard's are then off the path from the meeting to T. Then
 * rp_punch_aim before the first round. */
int rp_punch_open_early(const struct rp_punch_opts *o, uint32_t route_to, uint16_t lport, struct rp_punch **out,
			char *err, size_t errlen);
/* Aim an early context at the peer with the run's key: the capture's filter narrowed to it. 0;
 * -EXDEV when the route to peer_addr leaves by another interface or source (close it and
 * rp_punch_open instead); -EINVAL (aimed already), other -errno. */
int rp_punch_aim(struct rp_punch *p, uint32_t peer_addr, const uint8_t *key);

/* The address punch packets leave from (the route's source unless given). */
uint32_t rp_punch_laddr(const struct rp_punch *p);

/* Progress of a running round, for a terminal line. */
struct rp_punch_progress {
	unsigned round;
	uint64_t sent, total;      /* SYNs of the current send phase sent / planned */
	uint32_t replies;          /* TCP segments and ICMP errors from the peer's side seen so far */
	double elapsed_ms;         /* since T */
	const char *phase;         /* "waiting", "prime", "burst", "listen", "handshake" */
};

struct rp_punch_round_opts {
	const struct rp_plan *plan;
	int me;                    /* 0: this side is plan.side[0] ("a", the initiator), 1: side[1] */
	const struct rp_natinfo *self, *peer;  /* both natinfos the plan was made from */
	unsigned round;            /* 0-based; part of the ISN */
	uint64_t start_real_ns;    /* T, CLOCK_REALTIME of this host */
	uint32_t grace_ms;         /* keep listening this long after the plan's duration [600] */
	uint32_t handshake_ms;     /* from the first valid packet to ESTABLISHED [3000] */
	uint32_t syn_rtx_ms;       /* handshake SYN / SYN-ACK retransmission interval [250] */
	void (*progress)(const struct rp_punch_progress *pr, void *arg);  /* ~every 100 ms; may be NULL */
	void *progress_arg;
	volatile sig_atomic_t *halt; /* non-zero: the round ends at once with -ECONNABORTED (the peer gave
	                                up: its word came through the rendezvous); NULL: none */
};

#define RP_PUNCH_WHY_MAX 240

/* What one round did and saw (also its JSON in the --report). */
struct rp_punch_round_stats {
	unsigned round;
	const struct rp_strategy *strategy;  /* the plan's (its name is the JSON's method) */
	enum rp_action action;
	bool primed;
	uint8_t prime_ttl;           /* TTL of primes / OPEN_MANY SYNs */
	uint32_t n_local;            /* local ports used (by the action: the last phase) */
	uint16_t local_lo, local_hi;
	uint32_t n_remote;           /* distinct remote ports aimed at */
	uint16_t remote_lo, remote_hi;
	uint32_t isn_mine, isn_peer; /* the round's ISNs (validation values) */
	uint64_t primes_sent;        /* low-TTL prime SYNs */
	uint64_t syns_sent;          /* action SYNs (bursts, repeats, OPEN_MANY, probes) */
	uint64_t send_errors;
	uint64_t handshake_sent;     /* segments the userspace stack sent (SYN-ACK, ACK, retransmissions) */
	uint32_t rx_syn;             /* valid bare SYNs from the peer */
	uint32_t rx_synack;          /* valid SYN-ACKs */
	uint32_t rx_rst;             /* RSTs from the peer's address (the peer's NAT refusing a probe) */
	uint32_t rx_icmp;            /* ICMP errors quoting our SYNs ... */
	uint32_t rx_icmp_ttl;        /* ... of which time-exceeded (primes dying where they should) */
	uint32_t rx_forged;          /* failed validation: ignored */
	uint32_t rx_other;           /* other segments (ACK, data) before the flow existed */
	uint32_t rx_stray;           /* valid SYNs / SYN-ACKs, before or after the flow, on a tuple of none
					of the round's explicit pairs (a mapping an earlier attempt left at a
					NAT): ignored */
	bool defined;                /* a valid SYN / SYN-ACK chose the flow */
	const char *trigger;         /* "syn" or "syn-ack" (static), NULL if none */
	bool established;
	uint16_t lport, rport;       /* the flow (our local port, the peer's public port) */
	double late_ms;              /* how late the first send left after T (clock / setup) */
	double t_first_rx_ms;        /* since T: first valid packet; < 0 none */
	double t_established_ms;     /* since T; < 0 not reached */
	double duration_ms;          /* the whole round, from T */
	int result;                  /* 0, -ETIMEDOUT, -EINTR, -errno */
	char why[RP_PUNCH_WHY_MAX];  /* one line: what happened / why it missed */
	bool rst_cut;                /* simultaneous open ended early: the peer's NAT kept refusing */
};

/* Run one round (blocks until ESTABLISHED, the round's end, *stop, or an error). 0: ESTABLISHED,
 * the flow is ready for rp_punch_handoff(); -ETIMEDOUT: a miss (st says what was seen); -EINTR;
 * -ECONNABORTED (*ro->halt);
 * -EINVAL (plan/me/natinfo inconsistent, a refusal: no phases); other -errno from sending. */
int rp_punch_round(struct rp_punch *p, const struct rp_punch_round_opts *ro, struct rp_punch_round_stats *st);

/* The connection after a round returned 0. */
void rp_punch_tuple(const struct rp_punch *p, uint32_t *laddr, uint16_t *lport, uint32_t *raddr,
		    uint16_t *rport);

/* With a pcap_file, after a round returned 0 and before rp_punch_handoff(): the capture, its filter
 * narrowed to the connection's 4-tuple in both directions, taken out of the context and kept writing the
 * dump by a thread (capture/capdump.h), so that the file goes on with the data after the handoff, until
 * the caller stops it (rp_capdump_stop: its dumped count). 0, -ENOENT without a pcap_file or a flow (or
 * when already taken), -errno: the filter did not take (the context keeps the capture) or no thread
 * (the capture is closed; the file holds the punch). */
struct rp_capdump;
int rp_punch_keep_dump(struct rp_punch *p, struct rp_capdump **out);

/* Hand the ESTABLISHED connection to the kernel (TCP_REPAIR, else the connect() fallback), then
 * remove the guard and stop capturing: the kernel owns the flow. Returns the socket fd or -errno. */
int rp_punch_handoff(struct rp_punch *p, const struct rp_handoff_opts *ho, struct rp_handoff_result *res);

/* Capture / guard figures for the report. */
struct rp_punch_totals {
	uint64_t packets_sent;       /* every packet we sent over all rounds */
	uint64_t cap_received, cap_dropped;
	int64_t guard_dropped;       /* kernel RSTs the guard dropped (-1 unknown) */
};
void rp_punch_totals(const struct rp_punch *p, struct rp_punch_totals *t);

/* Free everything; removes the guard (NULL ok). */
void rp_punch_close(struct rp_punch *p);

/* JSON of a round: {round, method, action, primed, ttl, local_ports{n,lo,hi}, remote_ports{n,lo,hi},
 * sent{primes, syns, handshake, errors}, seen{syn, syn_ack, rst, icmp, icmp_ttl_exceeded, forged,
 * other, stray}, trigger, flow, late_ms, first_rx_ms, established_ms, duration_ms, result, why}. */
struct json_object *rp_punch_round_to_json(const struct rp_punch_round_stats *st);

#endif
