/*
 * bounce.h - failure notices and delay warnings (RFC 3464
 * multipart/report): which recipients failed (or still wait), the
 * upstream's reply, the original headers (for a failure, the whole
 * original message when the sender asked for RET=FULL, -R full, and it
 * is at most BOUNCE_FULL_MAX bytes).
 */
#ifndef POSTIE_BOUNCE_H
#define POSTIE_BOUNCE_H

#include <time.h>

#include "queue.h"
#include "util.h"

#define BOUNCE_FULL_MAX	(1024 * 1024)

/*
 * Build the notice for message id (env, st) whose file is fd into out.
 * Only recipients in state RCPT_FAILED are listed. host names the mail
 * system in it (MAILER-DAEMON@host, Reporting-MTA, Message-ID): the
 * `domain` when one is set, else the machine's name.
 */
void	bounce_build(const char *id, const struct envelope *env,
	    const struct msgstate *st, int fd, time_t now, const char *host,
	    struct strbuf *out);

/*
 * The delay warning (Action: delayed) for message id: the recipients
 * still waiting (RCPT_WAITING, RCPT_DEFERRED) with their last reply,
 * the next try and the time it gives up (until, Will-Retry-Until:), and
 * the original headers. unreached: why the mail server could not be
 * reached (said for a recipient without a reply yet), or NULL.
 */
void	bounce_build_delay(const char *id, const struct envelope *env,
	    const struct msgstate *st, int fd, time_t now, const char *host,
	    time_t next_try, time_t until, const char *unreached,
	    struct strbuf *out);

#endif
