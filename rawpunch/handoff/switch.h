/* SPDX-License-Identifier: MIT */
/* switch: one byte stream between a local endpoint and the peer that starts on a relayed connection
 * (TURN, rawpunch/relay/turn.h) and may move, while it flows, to a direct connection.
 *
 * The local endpoint is a socket the data mode (--stdio / --exec / -L) talks to, one end of a
 * socketpair; a thread copies between it and the peer. On the relay path the stream is framed:
 *
 *   [type u8][len u32 BE][payload]
 *   DATA   len payload bytes of the stream
 *   CREDIT len: the receiver wrote that many DATA bytes to its local endpoint (flow control: a sender
 *          keeps at most RP_SWITCH_WINDOW bytes unacknowledged, so the relay never holds much in
 *          either direction; coturn can stall for good when loaded both ways). Each side starts with
 *          no credit and sends CREDIT RP_SWITCH_WINDOW first: no DATA leaves before the peer is
 *          bound to its relayed connection (coturn drops what it cannot hold for an unbound one)
 *   EOF    the stream ended this way (a half-close: coturn turns a TCP half-close into a close)
 *   SWITCH payload u64 BE: the DATA bytes sent on the relay; everything further goes on the direct
 *          connection, unframed
 *   ACK    the peer's EOF or SWITCH arrived
 *
 * The move: once a direct connection is given (rp_switch_direct, both sides do it when their punch
 * connects), each side sends SWITCH with its relay byte count and from then on writes the stream
 * to the direct socket. The receiver reads the relay up to the peer's SWITCH (checking the count)
 * and only then reads the direct socket, whose bytes wait in its socket buffer meanwhile: nothing
 * is lost, duplicated or reordered. A side closes the relay only once it has the peer's end (EOF or
 * SWITCH) and the peer's ACK of its own end (or the peer closed it), so coturn never drops a frame
 * still in flight. After the move the copy uses large buffers between the two kernel sockets.
 *
 * The hand-back (rp_switch_allow_handback; the local socket must be AF_UNIX): a data mode that can
 * take the direct fd itself (rp_relay_handback, fdmode.h) leaves the switch out of the data path.
 * Once both directions are on the direct connection (the peer's SWITCH received, ours sent) and
 * everything the switch read from it was written to the local socket, the switch sends one byte,
 * RP_SWITCH_HANDBACK_MARK, with a duplicate of the direct fd attached (SCM_RIGHTS) and never reads
 * the direct connection again: what the data mode reads before the marker came first, what it reads
 * from the fd after it comes next. The data mode writes what it still holds for the local socket,
 * then shuts it down for writing (SHUT_WR; an earlier EOF of its input is the same); the switch
 * writes everything it read from the local socket to the direct connection, closes its duplicate (no
 * FIN) and shuts the local socket down for writing: at that EOF the data mode writes to the fd
 * itself (and shuts it down for writing if its input had ended). The stream after the marker goes
 * through no thread and no socketpair. An exec'd command cannot be handed an fd: no hand-back then.
 *
 * Library code: returns -errno, prints nothing. */
#ifndef RP_SWITCH_H
#define RP_SWITCH_H
#include <stdbool.h>
#include <stdint.h>

#define RP_SWITCH_WINDOW (256u * 1024u)
#define RP_SWITCH_HANDBACK_MARK 0xd5u   /* the hand-back's one byte (not part of the stream) */

struct rp_switch;

/* Send the hand-back marker on local (an AF_UNIX stream socket) with a duplicate of direct attached
 * (SCM_RIGHTS), without blocking: 0, -EAGAIN (no room yet: try again), or -errno. The switch sends it
 * itself; exposed for the data mode's tests. */
int rp_switch_mark_send(int local, int direct);

struct rp_switch_stats {
	uint64_t sent, recv;             /* stream bytes each way (whatever the path) */
	uint64_t sent_relay, recv_relay; /* of them, on the relay */
	bool switched;                   /* both directions moved to the direct connection */
	bool handed_back;                /* the direct fd went to the data mode: sent and recv count only
	                                    the bytes the switch carried, up to the hand-back */
	uint64_t t_first_rx_ns;          /* CLOCK_MONOTONIC of the first byte from the peer; 0: none */
	uint64_t t_switch_ns;            /* when the direct path carried both ways; 0: never */
	int error;                       /* 0, or what ended the stream (-ECONNRESET, -EPROTO, ...) */
};

/* Called from the thread once the relay is no longer needed (closed: both ends exchanged), e.g. to
 * release the allocation. */
typedef void (*rp_switch_relay_done_fn)(void *arg);

/* Start copying between local (the data mode's end is the other one of its socketpair) and relay
 * (a connected byte stream to the peer, framed as above). Both are owned by the switch from now on
 * and closed by it. 0 or -errno. */
int rp_switch_start(int local, int relay, rp_switch_relay_done_fn done, void *done_arg, struct rp_switch **out);
/* Hand over a direct connection to the peer (owned from now on): the stream moves to it. Once per
 * switch; -EALREADY after that, -EPIPE when the stream already ended (direct is closed then). */
int rp_switch_direct(struct rp_switch *s, int direct);
/* Let the data mode take the direct fd once the move is complete (the hand-back above). Call before
 * rp_switch_direct. */
void rp_switch_allow_handback(struct rp_switch *s);
/* Wait for the stream to end (both directions), free everything. 0 or the error that ended it. */
int rp_switch_wait(struct rp_switch *s, struct rp_switch_stats *st);

#endif
