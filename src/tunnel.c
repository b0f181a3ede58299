/* tunnel.c - the SMTP upstream through an SSH direct-tcpip channel. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tunnel.h"
#include "util.h"

/* Which libssh2 call last left a packet half sent: libssh2 wants that
 * same call, with the same buffer, before any other that sends. */
enum stuck { STUCK_NONE, STUCK_READ, STUCK_WRITE };

struct pump {
	struct tunnel	*t;
	char		 up[32768];	/* from the local side, to send */
	size_t		 up_len, up_off;
	char		 down[32768];	/* from the channel, to hand over */
	size_t		 down_len, down_off;
	bool		 local_eof;	/* the local side is done sending */
	bool		 local_hup;	/* ... and has hung up */
	bool		 eof_sent;	/* the channel knows */
	bool		 chan_eof;	/* the server side is done */
	bool		 local_gone;	/* the local side takes nothing more */
	enum stuck	 stuck;
	bool		 moved;		/* bytes moved on this pass */
	bool		 noquickack;	/* the SSH socket is not TCP */
};

static bool
blocked_out(struct tunnel *t)
{
	return (libssh2_session_block_directions(t->ssh.s) &
	    LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Hand what the channel gave to the local side, without blocking; once
 * the local side is gone, drop it (the server's window keeps moving). */
static void
flush_down(struct pump *p)
{
	while (p->down_off < p->down_len && !p->local_gone) {
		ssize_t w = send(p->t->fd, p->down + p->down_off,
		    p->down_len - p->down_off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			p->down_off += (size_t)w;
			p->moved = true;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			return;
		} else {
			p->local_gone = true;	/* the client is gone */
		}
	}
	p->down_len = p->down_off = 0;
}

/*
 * Channel to local, until EAGAIN or the local side is full (then the SSH
 * window holds the server back). 0 go on, -1 stop.
 */
static int
pump_down(struct pump *p)
{
	struct tunnel *t = p->t;

	flush_down(p);
	while (!p->chan_eof && p->down_len == 0) {
		ssize_t n = libssh2_channel_read(t->ch, p->down,
		    sizeof(p->down));

		if (n > 0) {
			p->stuck = STUCK_NONE;
			p->down_len = (size_t)n;
			p->down_off = 0;
			p->moved = true;
			flush_down(p);
			continue;
		}
		if (n == LIBSSH2_ERROR_EAGAIN) {
			/* at EOF too this may be a half-sent window adjust:
			 * the same call again, which returns 0 once it is out */
			p->stuck = blocked_out(t) ? STUCK_READ : STUCK_NONE;
			return 0;
		}
		if (n < 0) {
			snprintf(t->error, sizeof(t->error), "the SSH "
			    "connection broke: %s", sshconn_errmsg(t->ssh.s));
			return -1;
		}
		p->stuck = STUCK_NONE;
		p->chan_eof = true;	/* n == 0: the server is done */
		p->moved = true;
	}
	if (p->chan_eof && p->down_len == 0)
		shutdown(t->fd, SHUT_WR);	/* the client sees the end */
	return 0;
}

/* Local to channel. 0 go on, -1 stop. */
static int
pump_up(struct pump *p)
{
	struct tunnel *t = p->t;

	if (p->up_len == 0 && !p->local_eof) {
		ssize_t n = recv(t->fd, p->up, sizeof(p->up), MSG_DONTWAIT);

		if (n > 0) {
			p->up_len = (size_t)n;
			p->up_off = 0;
			p->moved = true;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			p->local_eof = true;
			p->moved = true;
		}
	}
	while (p->up_off < p->up_len) {
		ssize_t w = libssh2_channel_write(t->ch, p->up + p->up_off,
		    p->up_len - p->up_off);

		if (w == LIBSSH2_ERROR_EAGAIN || w == 0) {
			/* 0: the channel's window is full; wait for it */
			p->stuck = blocked_out(t) ? STUCK_WRITE : STUCK_NONE;
			return 0;
		}
		if (w < 0) {
			snprintf(t->error, sizeof(t->error), "the SSH "
			    "connection broke while sending: %s",
			    sshconn_errmsg(t->ssh.s));
			return -1;
		}
		p->stuck = STUCK_NONE;
		p->up_off += (size_t)w;
		p->moved = true;
	}
	p->up_len = p->up_off = 0;
	if (p->local_eof && !p->eof_sent) {
		int rc = libssh2_channel_send_eof(t->ch);

		if (rc == LIBSSH2_ERROR_EAGAIN) {
			/* the EOF packet may be half sent: resend it first */
			p->stuck = blocked_out(t) ? STUCK_WRITE : STUCK_NONE;
			return 0;
		}
		p->stuck = STUCK_NONE;
		p->eof_sent = true;
		p->moved = true;
	}
	return 0;
}

/*
 * Does the pump want something it cannot get? Then it gives up after the
 * timeout: a send that does not go out, a client that does not read, or
 * a server that does not end the stream after the client left. An idle
 * session (nothing to move) waits: the client's own timeouts end it.
 */
static bool
waiting(const struct pump *p)
{
	return p->stuck != STUCK_NONE || p->up_len > 0 || p->down_len > 0 ||
	    p->local_eof || p->local_gone;
}

static void *
tunnel_main(void *arg)
{
	struct tunnel *t = arg;
	struct pump p;
	long since = now_ms();

	memset(&p, 0, sizeof(p));
	p.t = t;
	for (;;) {
		struct pollfd pfd[2];
		int dirs, r;

		p.moved = false;
		if (p.stuck != STUCK_WRITE && pump_down(&p) < 0)
			break;
		if (p.stuck != STUCK_READ && pump_up(&p) < 0)
			break;
		/*
		 * Done when all the client wrote went out with the EOF after
		 * it, and the server is done too (or nobody is left to hear
		 * it). Never in the middle of a half-sent packet. A jump
		 * hop's client is an SSH session: once it closed, nothing
		 * the far side says is wanted.
		 */
		if (p.local_eof && p.eof_sent && p.stuck == STUCK_NONE &&
		    (p.chan_eof || p.local_gone || t->hop))
			break;
		if (p.moved || !waiting(&p))
			since = now_ms();
		else if (now_ms() - since >= t->timeout * 1000L) {
			if (!p.local_eof)
				snprintf(t->error, sizeof(t->error), "the SSH "
				    "tunnel moved nothing for %ld s",
				    t->timeout);
			break;
		}
		if (p.moved)
			continue;	/* go round again before sleeping */
		/* poll only for what the next pass will serve */
		dirs = libssh2_session_block_directions(t->ssh.s);
		pfd[0].fd = t->ssh.fd;
		pfd[0].events = 0;
		if ((dirs & LIBSSH2_SESSION_BLOCK_INBOUND) ||
		    (p.stuck == STUCK_NONE && ((!p.chan_eof &&
		    p.down_len == 0) || p.up_len > 0)))
			pfd[0].events |= POLLIN;
		if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
			pfd[0].events |= POLLOUT;
		pfd[1].fd = p.local_hup || (p.local_eof && p.down_len == 0) ?
		    -1 : t->fd;
		pfd[1].events = 0;
		if (!p.local_eof && p.up_len == 0 && p.stuck != STUCK_READ)
			pfd[1].events |= POLLIN;
		if (p.down_len > 0)
			pfd[1].events |= POLLOUT;
		/* ACK what sshd sent at once (sshconn_wait says why) */
		util_quickack(t->ssh.fd, &p.noquickack);
		r = poll(pfd, 2, 1000);
		if (r < 0 && errno != EINTR) {
			snprintf(t->error, sizeof(t->error), "poll: %s",
			    strerror(errno));
			break;
		}
		/*
		 * A hang-up shows whatever was asked: once the client hung
		 * up, its socket is read when there is room (recv sees what
		 * is left, then the end), never polled again.
		 */
		if (r > 0 && (pfd[1].revents & (POLLHUP | POLLERR)))
			p.local_hup = true;
	}
	/* a packet left half sent: no more sending on this session */
	t->broken = p.stuck != STUCK_NONE || t->error[0] != '\0';
	/* the client sees the end of the stream */
	shutdown(t->fd, SHUT_RDWR);
	return NULL;
}

void
tunnel_init(struct tunnel *t)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->ssh.fd = -1;
}

int
tunnel_open(struct tunnel *t, const struct ssh_params *p, const char *host,
    int port, int *fd, bool *unreachable, struct err *e)
{
	tunnel_init(t);
	*unreachable = false;
	if (sshconn_open(p, &t->ssh, e) < 0) {
		*unreachable = t->ssh.unreachable;
		return -1;
	}
	return tunnel_start(t, p, p->target->host, host, port, fd, unreachable,
	    e);
}

int
tunnel_start(struct tunnel *t, const struct ssh_params *p, const char *server,
    const char *host, int port, int *fd, bool *unreachable, struct err *e)
{
	int sp[2];
	long long end;

	t->timeout = p->timeout > 0 ? p->timeout : 60;
	*unreachable = false;
	/* non-blocking, so that the wait ACKs at once (sshconn_wait): a
	 * blocking open waited 44 ms for our delayed ACK of what sshd had
	 * sent before its confirmation */
	end = util_mono_ms() + t->timeout * 1000L;
	libssh2_session_set_blocking(t->ssh.s, 0);
	while ((t->ch = libssh2_channel_direct_tcpip_ex(t->ssh.s, host, port,
	    "127.0.0.1", 0)) == NULL && libssh2_session_last_errno(t->ssh.s) ==
	    LIBSSH2_ERROR_EAGAIN) {
		long long left = end - util_mono_ms();

		if (left <= 0 || sshconn_wait(&t->ssh, (long)left) < 0) {
			/* not reached, as a connect that timed out */
			*unreachable = true;
			err_set(e, ERR_TEMPFAIL, "SSH server %s: no channel to "
			    "%s port %d within %ld s (timeout); try again "
			    "later", server, host, port, t->timeout);
			sshconn_close(&t->ssh);
			return -1;
		}
	}
	libssh2_session_set_blocking(t->ssh.s, 1);
	if (t->ch == NULL) {
		int code = libssh2_session_last_errno(t->ssh.s);

		/* the server could not reach host:port (or will not) */
		*unreachable = code == LIBSSH2_ERROR_CHANNEL_FAILURE;
		err_set(e, ERR_TEMPFAIL, "SSH server %s could not open a "
		    "channel to %s port %d: %s", server, host, port,
		    sshconn_errmsg(t->ssh.s));
		sshconn_close(&t->ssh);
		return -1;
	}
	if (p->verbose)
		fprintf(stderr, "%s: ssh: channel to %s port %d open\n",
		    p->prog, host, port);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		err_set(e, ERR_OSERR, "socketpair: %s", strerror(errno));
		goto fail;
	}
	t->fd = sp[1];
	libssh2_session_set_blocking(t->ssh.s, 0);
	if (pthread_create(&t->thread, NULL, tunnel_main, t) != 0) {
		close(sp[0]);
		err_set(e, ERR_OSERR, "cannot start the SSH tunnel thread");
		goto fail;
	}
	t->running = true;
	*fd = sp[0];
	return 0;
fail:
	tunnel_close(t);
	return -1;
}

void
tunnel_close(struct tunnel *t)
{
	if (t->running) {
		pthread_join(t->thread, NULL);
		t->running = false;
	}
	if (t->ch != NULL) {
		libssh2_session_set_blocking(t->ssh.s, 1);
		libssh2_session_set_timeout(t->ssh.s, 2000);
		if (!t->broken)
			libssh2_channel_close(t->ch);
		libssh2_channel_free(t->ch);
		t->ch = NULL;
	}
	t->ssh.no_goodbye = t->broken;
	sshconn_close(&t->ssh);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
