/*
 * bounce.h - failure notices (RFC 3464 multipart/report): which
 * recipients failed, the upstream's reply, the original headers.
 */
#ifndef POSTIE_BOUNCE_H
#define POSTIE_BOUNCE_H

#include <time.h>

#include "queue.h"
#include "util.h"

/*
 * Build the notice for message id (env, st) whose file is fd into out.
 * Only recipients in state RCPT_FAILED are listed.
 */
void	bounce_build(const char *id, const struct envelope *env,
	    const struct msgstate *st, int fd, time_t now, struct strbuf *out);

#endif
