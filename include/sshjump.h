/*
 * sshjump.h - reach an SSH server through ProxyJump hops.
 *
 * For each jump host in turn: an SSH session (host key checked against
 * that hop's known_hosts, then login), a direct-tcpip channel to the next
 * hop's host:port, and a tunnel (tunnel.h) that bridges the channel to
 * one end of a socketpair; the next session runs over the other end. The
 * last socket is the server's: sshconn runs its session over it. Every
 * step is bounded by the job's timeouts; an error names the hop.
 */
#ifndef POSTIE_SSHJUMP_H
#define POSTIE_SSHJUMP_H

#include <stdbool.h>

#include "err.h"
#include "sshconn.h"
#include "sshroute.h"

struct sshjump;

/* The hops r->hop[0 .. n-2]; *fd reaches r->hop[n-1]. */
int	sshjump_open(const struct ssh_params *p, const struct ssh_route *r,
	    struct sshjump **j, int *fd, bool *unreachable, struct err *e);

/* Close the hops, last first (after the session over them is closed). */
void	sshjump_close(struct sshjump *j);

#endif
