/* crash.c - numbered crash points for crash-injection tests. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "crash.h"

void
crash_init(struct crash *c)
{
	const char *at = getenv("POSTIE_CRASH_AT");
	const char *trace = getenv("POSTIE_CRASH_TRACE");

	c->at = at != NULL ? strtol(at, NULL, 10) : 0;
	c->count = 0;
	c->trace = trace != NULL && *trace == '1';
}

void
crash_step(struct crash *c, const char *name)
{
	if (c == NULL)
		return;
	/* the pump's thread records too (deliver.c, on_accepted) */
	long n = __atomic_add_fetch(&c->count, 1, __ATOMIC_SEQ_CST);

	if (c->trace)
		fprintf(stderr, "crashpoint %ld %s\n", n, name);
	if (c->at > 0 && n == c->at)
		raise(SIGKILL);
}
