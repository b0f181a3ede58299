/*
 * crash.h - crash injection for tests, in the shipped binary.
 *
 * Every durable step calls crash_step(). With POSTIE_CRASH_AT=N in the
 * environment the N-th step kills the process with SIGKILL, as a power
 * cut or kill -9 would; POSTIE_CRASH_TRACE=1 prints each step's number
 * and name to stderr. Without them a step is one comparison.
 */
#ifndef POSTIE_CRASH_H
#define POSTIE_CRASH_H

#include <stdbool.h>

struct crash {
	long	at;		/* 0: never */
	long	count;
	bool	trace;
};

void	crash_init(struct crash *c);
void	crash_step(struct crash *c, const char *name);

#endif
