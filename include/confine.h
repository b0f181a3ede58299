/*
 * confine.h - Linux Landlock for fetch: after confine_apply() the process
 * (and every process it forks or execs) can write only beneath the
 * `write' paths and read only beneath the `write' and `read' paths; it
 * can execute nothing and bind no TCP port. Files already open (the log,
 * stderr, the network module) stay usable.
 *
 * Best effort by the kernel's Landlock ABI: from ABI 2 (a link from tmp/
 * into new/ is a "refer" the kernel must allow) the file system is
 * confined, from 3 truncation too, from 4 TCP bind, from 5 device ioctls,
 * from 6 signals and abstract UNIX sockets outside the domain. A kernel
 * without Landlock (or with ABI 1) leaves the process as it was: 0.
 *
 * Test-only probes, in the shipped binary like the crash points: with
 * POSTIE_CONFINE_PROBE=PATH in the environment, confine_probe() tries to
 * create PATH, with POSTIE_CONFINE_PROBE_READ=PATH to read it, and says
 * the outcome on stderr ("confine probe: write PATH: errno 13 (...)").
 */
#ifndef POSTIE_CONFINE_H
#define POSTIE_CONFINE_H

#include "err.h"
#include "util.h"

/* The kernel's Landlock ABI version, 0 when it has none. */
int	confine_abi(void);

/*
 * Confine this process. Paths that do not exist are left out (a read
 * there says ENOENT as before; a create is refused). Returns the ABI
 * the confinement used (>= 2), 0 when the kernel cannot confine (nothing
 * changed), or -1 and *e when it failed half-way (the caller must stop).
 * may_bind leaves TCP bind(2) allowed (a job's source-address).
 */
int	confine_apply(const struct strvec *write, const struct strvec *read,
	    bool may_bind, struct err *e);

/* The test-only probes (see above); nothing without the variables. */
void	confine_probe(void);

#endif
