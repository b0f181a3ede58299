/*
 * qctl.h - queue control: the queue in the user's hands (postie queue
 * show, hold, release, remove). Each works on a message under its lock,
 * the lock deliver takes, and waits at most QUEUE_LOCK_WAIT seconds in
 * all for messages a run is sending; each change is one fsync'd journal
 * line (hold, release) or the journaled removal (queue/README.md).
 */
#ifndef POSTIE_QCTL_H
#define POSTIE_QCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "util.h"

enum qctl_op { QCTL_SHOW, QCTL_HOLD, QCTL_RELEASE, QCTL_REMOVE };

/* "show", "hold", "release", "remove": 0 and *op set, or -1. */
int	qctl_op_parse(const char *name, enum qctl_op *op);

/*
 * Do op on each of ids, or on every queued message when all is set.
 * show prints to out. Every id is tried; each failure is one line on errs
 * ("queue: ID: why") unless it is the only one, which is returned in e.
 * Returns 0 when all went well, else -1 with e holding the worst failure
 * (an error of the queue itself, then ERR_NOUSER for an unknown id, then
 * ERR_TEMPFAIL for a message still locked at the deadline).
 */
int	qctl_run(const struct config *cfg, enum qctl_op op,
	    const struct strvec *ids, bool all, struct log *log, FILE *out,
	    FILE *errs, struct err *e);

/* Which of two failures decides the exit status (see qctl_run): the
 * more serious one, a < b meaning b wins. */
int	qctl_err_rank(enum err_code code);

#endif
