/*
 * handoff.h - give libESMTP a socket postie has already connected.
 *
 * libESMTP 1.1 can only dial "host:port" itself: socket(), then a
 * blocking connect(). postie opens the upstream itself and puts the pump
 * (pump.h) between it and libESMTP: the pump arms the handoff with one
 * end of a socketpair, libESMTP is pointed at HANDOFF_SERVER, and the
 * connect() this module exports (the executable's, so the one libESMTP
 * calls) puts the armed socket in place of libESMTP's own with dup3()
 * instead of dialling. No listener: no other process can reach it.
 *
 * The address is port 0 on the loopback: no process can listen there, so
 * if the handoff is not armed libESMTP's connect fails (ECONNREFUSED) and
 * never reaches anybody else. The arming is per thread and one-shot.
 */
#ifndef POSTIE_HANDOFF_H
#define POSTIE_HANDOFF_H

#include <sys/socket.h>

#define HANDOFF_SERVER	"127.0.0.1:0"

/* The next connect() to HANDOFF_SERVER on this thread gets a dup of fd.
 * fd stays the caller's (shut it down to cut the session, close it after). */
void	handoff_arm(int fd);

/* Forget an armed socket libESMTP never took. */
void	handoff_disarm(void);

/* Did the last armed socket get taken? */
int	handoff_taken(void);

#endif
