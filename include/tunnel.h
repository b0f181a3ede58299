/*
 * tunnel.h - the SMTP upstream through an SSH direct-tcpip channel.
 *
 * tunnel_open makes one SSH session (sshconn.h), opens a direct-tcpip
 * channel to the identity's host:port as the SSH server sees them, and
 * gives back one end of a socketpair: to the rest of postie it is a
 * connected socket like any other (STARTTLS, TLS and the pump all work
 * on it unchanged). A thread owns the libssh2 session
 * (libssh2 is not thread-safe) and pumps bytes between the channel and
 * the other end of the pair until either side closes. No ssh child.
 * The same carries an SSH session to the next ProxyJump hop (sshjump.h).
 */
#ifndef POSTIE_TUNNEL_H
#define POSTIE_TUNNEL_H

#include <pthread.h>
#include <stdbool.h>

#include "err.h"
#include "sshconn.h"

struct tunnel {
	struct sshconn	 ssh;
	LIBSSH2_CHANNEL	*ch;
	int		 fd;		/* our end of the socketpair */
	long		 timeout;	/* seconds a stuck send may take */
	pthread_t	 thread;
	bool		 running;
	char		 error[256];	/* what ended the pump badly */
	bool		 broken;	/* no more sending on the session */
	bool		 hop;		/* carries an SSH session (a jump):
					 * done once its end closed */
};

/* An unopened tunnel, safe to tunnel_close. */
void	tunnel_init(struct tunnel *t);

/*
 * Open the tunnel to host:port; *fd is the caller's end (the caller
 * closes it). On failure *unreachable says whether the SSH server or the
 * target could not be reached (a deferral like an offline network).
 */
int	tunnel_open(struct tunnel *t, const struct ssh_params *p,
	    const char *host, int port, int *fd, bool *unreachable,
	    struct err *e);

/*
 * The same on t->ssh, a session already open (t->ssh is closed on
 * failure); server names it in messages.
 */
int	tunnel_start(struct tunnel *t, const struct ssh_params *p,
	    const char *server, const char *host, int port, int *fd,
	    bool *unreachable, struct err *e);

/* Wait for the pump to end (the caller closed its end) and close all. */
void	tunnel_close(struct tunnel *t);

#endif
