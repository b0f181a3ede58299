/*
 * bridge.h - the upstream byte stream libESMTP talks through.
 *
 * libESMTP can only dial host:port itself, with no connect timeout and no
 * implicit TLS. So postie opens the upstream itself (TCP with a timeout,
 * then TLS if the identity says "tls"), and hands libESMTP a one-shot
 * listener on 127.0.0.1:PORT. A thread accepts exactly one connection,
 * checks that it comes from a socket of this very process (another local
 * user cannot ride the bridge), then pumps bytes both ways until either
 * side closes. The classes of failure (DNS, connect, TLS) are known before
 * SMTP starts.
 *
 * Without TLS there is nothing to pump: the connected socket is handed to
 * libESMTP at its connect() (handoff.h), and no listener or thread is made.
 */
#ifndef POSTIE_BRIDGE_H
#define POSTIE_BRIDGE_H

#include <pthread.h>
#include <stdbool.h>
#include <openssl/ssl.h>

#include "err.h"
#include "tls.h"

struct bridge {
	int		 listen_fd;
	int		 local_fd;	/* libESMTP's side, once accepted */
	int		 up_fd;		/* the upstream socket */
	SSL		*up_ssl;	/* implicit TLS, or NULL */
	int		 port;		/* where libESMTP connects */
	long		 timeout;	/* seconds, for accept and writes */
	pthread_t	 thread;
	bool		 running;
	char		 error[256];	/* what ended the pump badly */
	int		 rejected;	/* foreign connections refused */
	char		 greeting[128];	/* sent to libESMTP first, or "" */
	bool		 handoff;	/* plain: libESMTP uses up_fd itself */
	char		 server[32];	/* "host:port" for smtp_set_server */
};

/* TCP connect to host:port trying each address, each within timeout. */
int	bridge_connect(const char *host, int port, long timeout, int *fd,
	    struct err *e);

/* Bound every blocking read and write on fd (seconds). */
void	bridge_set_timeout(int fd, long seconds);

/* TLS on fd now (implicit TLS, RFC 8314), verified by policy. */
int	bridge_tls(struct tls_policy *policy, int fd, long timeout,
	    SSL **out, struct err *e);

/*
 * STARTTLS done by postie: read the greeting, EHLO as helo, STARTTLS,
 * then TLS verified by policy. libESMTP then speaks plain SMTP through
 * the bridge, which greets it in the server's place (see bridge_start).
 * A server without STARTTLS is refused: never a silent plain session.
 */
int	bridge_starttls(struct tls_policy *policy, int fd, const char *helo,
	    bool verbose, SSL **out, struct err *e);

/*
 * Start the listener and the pump over an open upstream (takes fd/ssl).
 * greeting, if not NULL, is sent to libESMTP first (after STARTTLS the
 * server does not greet again). With neither ssl nor greeting, arm the
 * handoff of fd instead. Either way libESMTP is pointed at b->server.
 */
int	bridge_start(struct bridge *b, int up_fd, SSL *up_ssl,
	    const char *greeting, long timeout, struct err *e);

/* Cut both sides now (e.g. on an AUTH failure); the pump then ends. */
void	bridge_cut(struct bridge *b);

/* Wait for the pump to end and close everything. */
void	bridge_finish(struct bridge *b);

/* The descriptor of this process whose socket is fd's connected peer
 * (skip1, skip2 excluded), or -1: the connection is someone else's. */
int	bridge_peer_fd(int fd, int skip1, int skip2);
bool	bridge_peer_is_ours(int fd, int skip1, int skip2);

#endif
