/*
 * bounce.h - failure notices (RFC 3464 multipart/report): which
 * recipients failed, the upstream's reply, the original headers (the
 * whole original message when the sender asked for RET=FULL, -R full,
 * and it is at most BOUNCE_FULL_MAX bytes).
 */
#ifndef POSTIE_BOUNCE_H
#define POSTIE_BOUNCE_H

#include <time.h>

#include "queue.h"
#include "util.h"

#define BOUNCE_FULL_MAX	(1024 * 1024)

/*
 * Build the notice for message id (env, st) whose file is fd into out.
 * Only recipients in state RCPT_FAILED are listed.
 */
void	bounce_build(const char *id, const struct envelope *env,
	    const struct msgstate *st, int fd, time_t now, struct strbuf *out);

#endif
