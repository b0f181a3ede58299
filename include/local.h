/*
 * local.h - delivery to local recipients (no '@'): through the
 * configured mda (execve, %T and %F expanded, no shell) or into the
 * user's Maildir.
 */
#ifndef POSTIE_LOCAL_H
#define POSTIE_LOCAL_H

#include <stddef.h>
#include <sys/types.h>

#include "smtp.h"
#include "util.h"

/*
 * Run argv (with %T = rcpt, %F = sender) with bytes from offset to the
 * end of fd on stdin. Exit 0: ok; 75 (EX_TEMPFAIL), 126, 127 or a signal:
 * deferred; anything else: failed. reason says what happened.
 */
enum smtp_outcome local_mda(const struct strvec *argv, const char *rcpt,
	    const char *sender, int fd, off_t offset, char *reason,
	    size_t rlen);

/* Into dir (a Maildir), with Return-Path: and Delivered-To: on top. */
enum smtp_outcome local_maildir(const char *dir, const char *rcpt,
	    const char *sender, int fd, off_t offset, off_t len, char *reason,
	    size_t rlen);

#endif
