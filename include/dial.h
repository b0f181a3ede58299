/*
 * dial.h - TCP to host:port, DNS and connect each bounded.
 *
 * The lookup runs in a thread and is abandoned after the timeout (a dead
 * resolver must not hold a run); each address is tried with a
 * non-blocking connect bounded by the same timeout. The socket comes back
 * blocking, with TCP_NODELAY.
 *
 * A route (config.h) may bind the socket to source-address first (only
 * the host's addresses of that family are tried), and may send it
 * through a SOCKS5 proxy (socks.h): then the proxy, not this machine,
 * resolves host, and the exchange with it is bounded by the same timeout.
 */
#ifndef POSTIE_DIAL_H
#define POSTIE_DIAL_H

#include "config.h"
#include "err.h"

/*
 * TCP connect to host:port trying each address, each within timeout;
 * the way via (NULL: directly, from any address).
 */
int	dial_tcp(const char *host, int port, const struct route *via,
	    long timeout, int *fd, struct err *e);

/* Bound every blocking read and write on fd (seconds). */
void	dial_set_timeout(int fd, long seconds);

#endif
