/* sftpchan.c - the SFTP engine over a libssh2 channel (see sftp.h). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "sftp.h"
#include "sshconn.h"
#include "stopsig.h"
#include "util.h"

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
link_fail(struct sftp_chan *c, struct err *e, const char *what)
{
	c->broken = true;
	return err_set(e, ERR_TEMPFAIL, "%s: %s", what, sshconn_errmsg(c->s));
}

/* Wait for the socket as libssh2 asks, within the opening's time. */
static int
open_wait(const struct sshconn *sc)
{
	long left = sshconn_left_ms(sc);

	return left <= 0 ? -1 : sshconn_wait(sc, left);
}

/*
 * The channel and its subsystem start non-blocking, each step retried on
 * EAGAIN until the opening's deadline (sc->end): a loaded machine or a
 * slow server only makes it wait, and a silent one ends it in time with
 * what was waited for.
 */
int
sftp_chan_open(struct sftp_chan *c, const struct sshconn *sc,
    const char *host, long timeout, unsigned max_reqs, size_t max_bytes,
    struct err *e)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->s = sc->s;
	c->fd = sc->fd;
	c->wake_fd = -1;
	c->timeout = timeout > 0 ? timeout : 1;
	libssh2_session_set_blocking(c->s, 0);
	while ((c->ch = libssh2_channel_open_session(c->s)) == NULL) {
		if (libssh2_session_last_errno(c->s) != LIBSSH2_ERROR_EAGAIN)
			return err_set(e, sshconn_class(c->s, ERR_PROTOCOL),
			    "cannot open an SSH channel: %s",
			    sshconn_errmsg(c->s));
		if (open_wait(sc) < 0)
			return sshconn_late(sc, host, "a channel to open", e);
	}
	while ((rc = libssh2_channel_subsystem(c->ch, "sftp")) ==
	    LIBSSH2_ERROR_EAGAIN)
		if (open_wait(sc) < 0)
			return sshconn_late(sc, host, "the SFTP subsystem to "
			    "start", e);
	if (rc != 0)
		return err_set(e, sshconn_class(c->s, ERR_PROTOCOL), "the "
		    "server offers no SFTP: %s", sshconn_errmsg(c->s));
	c->p = sftp_new(max_reqs, max_bytes);
	return 0;
}

/* Send what is queued; a write that said EAGAIN is repeated first, with
 * the same buffer. 1 moved, 0 not, -1 broken. */
static int
send_some(struct sftp_chan *c, struct err *e)
{
	int moved = 0;

	for (;;) {
		const unsigned char *p;
		size_t len = sftp_out(c->p, &p);
		ssize_t w;

		if (c->wlen > 0)
			len = c->wlen;	/* the same call again */
		if (len == 0)
			return moved;
		w = libssh2_channel_write(c->ch, (const char *)p, len);
		if (w == LIBSSH2_ERROR_EAGAIN || w == 0) {
			c->wlen = len;
			return moved;
		}
		if (w < 0)
			return link_fail(c, e, "sending to the SFTP server "
			    "failed");
		c->wlen = 0;
		sftp_sent(c->p, (size_t)w);
		moved = 1;
	}
}

/* Read until EAGAIN, feeding the engine. 1 moved, 0 not, -1 failed. */
static int
recv_some(struct sftp_chan *c, struct err *e)
{
	int moved = 0;

	for (;;) {
		ssize_t n = libssh2_channel_read(c->ch, (char *)c->rbuf,
		    sizeof(c->rbuf));

		if (n == LIBSSH2_ERROR_EAGAIN) {
			/* a window adjust half sent: this same call first */
			c->read_again = (libssh2_session_block_directions(c->s)
			    & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0;
			return moved;
		}
		c->read_again = false;
		if (n < 0)
			return link_fail(c, e, "the SFTP channel broke");
		if (n == 0) {
			c->broken = true;
			return err_set(e, ERR_TEMPFAIL, "the SFTP server closed "
			    "the channel");
		}
		if (sftp_in(c->p, c->rbuf, (size_t)n, e) < 0)
			return -1;
		moved = 1;
	}
}

/* Milliseconds to the run's deadline; LONG_MAX without one. */
static long
end_left(const struct sftp_chan *c)
{
	if (c->end.tv_sec == 0)
		return LONG_MAX;
	return ((long)c->end.tv_sec * 1000 + c->end.tv_nsec / 1000000) -
	    now_ms();
}

int
sftp_chan_wait(struct sftp_chan *c, struct err *e)
{
	long deadline = now_ms() + c->timeout * 1000L;

	if (c->broken)
		return err_set(e, ERR_TEMPFAIL, "the SFTP channel is broken");
	for (;;) {
		if (end_left(c) <= 0) {
			c->broken = true;
			return err_set(e, ERR_TEMPFAIL, "the run passed its "
			    "deadline: %s", c->end_why);
		}
		if (stopsig_caught()) {
			/* as a deadline: what was committed stays, the
			 * claims under way are the next run's */
			c->broken = true;
			return err_set(e, ERR_TEMPFAIL, "stopped (%s): what was "
			    "fetched is kept; the next run goes on",
			    strsignal(stopsig_caught()));
		}
		struct pollfd pfd[2];
		const unsigned char *p;
		int moved = 0, r, dirs;
		long left;

		if (!c->read_again) {
			if ((r = send_some(c, e)) < 0)
				return -1;
			moved |= r;
		}
		if (c->wlen == 0) {
			if ((r = recv_some(c, e)) < 0)
				return -1;
			moved |= r;
		}
		if (moved)
			return 0;
		if (sftp_busy(c->p) == 0 && c->wlen == 0 &&
		    sftp_out(c->p, &p) == 0 && !c->read_again)
			return 0;	/* nothing to wait for */
		left = deadline - now_ms();
		if (left <= 0) {
			c->broken = true;
			return err_set(e, ERR_TEMPFAIL, "the SFTP server "
			    "answered nothing for %ld s", c->timeout);
		}
		dirs = libssh2_session_block_directions(c->s);
		pfd[0].fd = c->fd;
		pfd[0].events = POLLIN;
		if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
			pfd[0].events |= POLLOUT;
		pfd[1].fd = c->wake_fd;		/* -1: ignored by poll */
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		if (left > end_left(c))
			left = end_left(c) > 0 ? end_left(c) : 0;
		/* ACK what came at once, as in the opening (sshconn_wait) */
		util_quickack(c->fd, &c->noquickack);
		r = poll(pfd, 2, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR)
			return err_set(e, ERR_OSERR, "poll: %s",
			    strerror(errno));
		if (r > 0 && (pfd[1].revents & POLLIN)) {
			char b[64];

			while (read(c->wake_fd, b, sizeof(b)) > 0)
				;
			return 0;	/* the caller looks at the news */
		}
	}
}

void
sftp_chan_close(struct sftp_chan *c)
{
	/*
	 * The channel is left to the session: closing it here would wait a
	 * round trip for the server's close; the session's disconnect ends
	 * it (sshconn_close).
	 */
	sftp_free(c->p);
	c->ch = NULL;
	c->p = NULL;
}
