/*
 * notify.h - notify-command: tell a person (a desktop notification, a
 * script) that a failure notice or a delay warning was written.
 *
 * The command runs without a shell, as "COMMAND ARGS... EVENT ID
 * RECIPIENTS REASON": EVENT is "failed" or "delayed", ID the queue id,
 * RECIPIENTS the recipients concerned joined by ", ", REASON the last
 * reply (control characters made '?'). Its program must pass trust.h as
 * password-command's does. stdin, stdout and stderr are /dev/null; it
 * runs in a process group of its own, which is killed (SIGKILL) after
 * NOTIFY_TIMEOUT seconds. Nothing it does changes a delivery: a failure
 * (it cannot be run, exits non-zero, is killed) is logged and that is
 * all.
 */
#ifndef POSTIE_NOTIFY_H
#define POSTIE_NOTIFY_H

#include "log.h"
#include "util.h"

#define NOTIFY_TIMEOUT	10	/* seconds */

void	notify_run(const struct strvec *cmd, const char *event,
	    const char *id, const char *rcpts, const char *reason,
	    struct log *log);

#endif
