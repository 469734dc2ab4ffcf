/* SPDX-License-Identifier: MIT */
/* fdmode: what to do with a connected socket once rawpunch has one (after a handoff or a plain
 * connect): relay it to stdin/stdout like netcat (--stdio), give it to a command as its stdin and
 * stdout like socat EXEC (--exec CMD), or forward local clients over their own new connections like
 * `ssh -L` (-L [ADDR:]PORT).
 *
 * Relays keep TCP half-close semantics: EOF on one input becomes shutdown(SHUT_WR) on the other side,
 * and a relay ends when both directions have seen EOF (or on an error/reset). Library code: returns
 * -errno, prints nothing. */
#ifndef RP_FDMODE_H
#define RP_FDMODE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct rp_relay_stats {
	uint64_t a_to_b, b_to_a;    /* bytes carried each way */
};

/* Bidirectional relay between the byte streams (in_a -> out_b) and (in_b -> out_a); in_a may equal
 * out_a (a socket). On EOF from in_a: shutdown(out_b, SHUT_WR) if it is a socket, else close it
 * (when it differs from in_b). Returns 0 when both directions ended with EOF, else -errno
 * (-ECONNRESET, -EPIPE, ...). stats may be NULL. */
int rp_relay(int in_a, int out_a, int in_b, int out_b, struct rp_relay_stats *stats);

/* rp_relay (in_b = out_b = sock) where sock is the data mode's end of a switch's local socketpair
 * (switch.h, rp_switch_allow_handback): once the switch hands the direct fd back, the relay goes on
 * with it in both directions, in order, and closes it at the end. Without a hand-back it is rp_relay. */
int rp_relay_handback(int in_a, int out_a, int sock, struct rp_relay_stats *stats);

/* netcat-like: stdin -> sock, sock -> stdout. Does not close sock. */
int rp_fd_stdio(int sock, struct rp_relay_stats *stats);

/* socat EXEC-like: fork, sock becomes the stdin and stdout of `/bin/sh -c cmd` (stderr is
 * inherited). Waits for the command. Returns its exit status (0..255, 128+signal if killed) or
 * -errno if it could not be started. Does not close sock in the caller. */
int rp_fd_exec(int sock, const char *cmd);

/* Produce a NEW connected socket for one forwarded client (e.g. punch a new connection and hand it
 * off). Returns an fd or -errno. Called from the thread that serves that client. */
typedef int (*rp_dial_fn)(void *ctx);

struct rp_forward_opts {
	unsigned max_clients;       /* 0: unlimited; otherwise stop after this many clients were served */
	unsigned max_parallel;      /* clients relayed at once [64]; more wait in the listen backlog */
	int stop_fd;                /* >= 0: readable (or EOF/HUP) means stop accepting and return */
	bool handback;              /* the dialed fds are switch sockets that may hand the direct fd back
	                               (rp_relay_handback) */
};

struct rp_forward_stats {
	unsigned accepted, dial_failed, completed, failed;
	uint64_t up_bytes, down_bytes; /* client -> remote, remote -> client */
};

/* ssh -L: parse "[ADDR:]PORT" (ADDR an IPv4 literal; default 127.0.0.1) into a bound, listening
 * TCP socket (SO_REUSEADDR). Returns the fd or -errno (-EINVAL on bad syntax). */
int rp_forward_listen(const char *spec, int backlog);

/* Accept clients on lfd (any stream listening socket); each is served in its own thread: dial(ctx)
 * makes its remote connection and the two are relayed both ways until both directions close.
 * Several clients at once. Returns 0 when stopped (max_clients reached, stop_fd), -errno on a fatal
 * listen error. Waits for the running relays before returning. stats may be NULL. dial must be
 * thread-safe. Does not close lfd. */
int rp_forward(int lfd, rp_dial_fn dial, void *ctx, const struct rp_forward_opts *opts,
	       struct rp_forward_stats *stats);

#endif
