/*
 * dial.h - TCP to host:port, DNS and connect each bounded.
 *
 * The lookup runs in a thread and is abandoned after the timeout (a dead
 * resolver must not hold a run); each address is tried with a
 * non-blocking connect bounded by the same timeout. The socket comes back
 * blocking, with TCP_NODELAY.
 */
#ifndef POSTIE_DIAL_H
#define POSTIE_DIAL_H

#include "err.h"

/* TCP connect to host:port trying each address, each within timeout. */
int	dial_tcp(const char *host, int port, long timeout, int *fd,
	    struct err *e);

/* Bound every blocking read and write on fd (seconds). */
void	dial_set_timeout(int fd, long seconds);

#endif
