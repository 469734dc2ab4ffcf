/* SPDX-License-Identifier: MIT */
/* The session's --raw data exchange (rp_session_exchange in session.h): the whole connection stays in
 * the userspace tcb, fed from the capture, with two fds (stdin, stdout) as its application side. */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "capture/capture.h"
#include "rawpunch/base/clock.h"
#include "rawpunch/base/io.h"
#include "rawpunch/punch/session.h"
#include "rawpunch/punch/session_int.h"

int rp_session_exchange(struct rp_session *s, int in_fd, int out_fd, uint64_t idle_timeout_ns)
{
	uint8_t *inbuf, *outbuf;
	size_t pend_off = 0, pend_len = 0;
	bool in_eof = in_fd < 0, closed_sent = false;
	uint64_t idle = idle_timeout_ns ? idle_timeout_ns : 30000000000ull, last = rp_mono_ns();
	struct us_out out;
	int r;

	if (!s || !s->flow.defined || !us_synchronized(s->tcb) || s->released)
		return -ENOTCONN;
	inbuf = s->inbuf;
	outbuf = s->outbuf;
	for (;;) {
		uint64_t now = rp_mono_ns();
		struct us_event ev = { 0 };
		int notes = 0;

		if (rp_sess_stopped(s)) {
			/* interrupted: reset the connection (the RST carries RP_CRAFT_MARK, so the guard
			 * lets it out) rather than leave the peer waiting */
			ev.type = US_EV_ABORT;
			(void)rp_rawflow_step(&s->flow, &ev, &out);
			return -EINTR;
		}
		if (s->tcb->state == US_CLOSED)
			return s->tcb->error;
		/* queue pending stdin bytes */
		if (pend_len) {
			ev.type = US_EV_SEND;
			ev.data = inbuf + pend_off;
			ev.len = pend_len;
			r = rp_rawflow_step(&s->flow, &ev, &out);
			if (r < 0)
				return r;
			pend_off += out.accepted;
			pend_len -= out.accepted;
			s->st.bytes_out += out.accepted;
			if (out.accepted)
				last = now;
		}
		if (in_eof && !pend_len && !closed_sent) {
			ev = (struct us_event){ .type = US_EV_CLOSE };
			r = rp_rawflow_step(&s->flow, &ev, &out);
			if (r < 0)
				return r;
			closed_sent = true;
		}
		struct pollfd pf[2] = { { .fd = rp_cap_fd(s->cap), .events = POLLIN },
					{ .fd = in_eof || pend_len ? -1 : in_fd, .events = POLLIN } };
		/* The tcb bounds retransmissions itself; the idle limit only ends a close that stalls
		 * (our FIN is out, the peer neither sends nor closes). */
		uint64_t until = closed_sent ? last + idle : now + 1000000000ull;
		if (s->flow.timer_ns && s->flow.timer_ns < until)
			until = s->flow.timer_ns;
		int pr = poll(pf, 2, rp_sess_poll_ms(now, until));
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(in_fd, inbuf, sizeof(s->inbuf));
			if (n > 0) {
				pend_off = 0;
				pend_len = (size_t)n;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
				in_eof = true;   /* end of input, or a real read error */
			}                        /* EINTR / EAGAIN (a non-blocking stdin): poll again */
		}
		r = rp_sess_drain(s, 0);
		if (r < 0)
			return r;
		notes |= r;
		r = rp_rawflow_timer(&s->flow, rp_mono_ns(), &out);
		if (r < 0)
			return r;
		notes |= r;
		if (notes & ~US_N_WRITABLE)
			last = rp_mono_ns();
		/* hand in-order data to the output */
		while (s->tcb->rcv_len) {
			ev = (struct us_event){ .type = US_EV_RECV, .buf = outbuf, .cap = sizeof(s->outbuf) };
			r = rp_rawflow_step(&s->flow, &ev, &out);
			if (r < 0)
				return r;
			if (!out.nread)
				break;
			s->st.bytes_in += out.nread;
			r = rp_io_write_all(out_fd, outbuf, out.nread, 0);   /* a non-blocking output is waited for */
			if (r) {
				/* nowhere to put the peer's data: reset rather than pretend to read it */
				ev = (struct us_event){ .type = US_EV_ABORT };
				(void)rp_rawflow_step(&s->flow, &ev, &out);
				return r;
			}
			last = rp_mono_ns();
		}
		/* the peer finished: stop reading input, close our side after what is queued */
		if (s->tcb->fin_rcvd && !in_eof) {
			in_eof = true;
			pend_len = 0;
		}
		if (closed_sent && rp_mono_ns() - last >= idle)
			return -ETIMEDOUT;
	}
}
