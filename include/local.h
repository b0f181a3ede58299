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

/* The longest a local mda may take for one message (then killed, with
 * what it started: its process group), as Postfix's command_time_limit. */
#define LOCAL_MDA_TIMEOUT	300

/*
 * Run argv (with %T = rcpt, %F = sender) with bytes from offset to the
 * end of fd on stdin (mda.h: killed past LOCAL_MDA_TIMEOUT, or with
 * deliver). Exit 0: ok; 75 (EX_TEMPFAIL), 126, 127, a signal or the
 * timeout: deferred; anything else: failed. reason says what happened,
 * with the first line of the mda's stderr.
 */
enum smtp_outcome local_mda(const struct strvec *argv, const char *rcpt,
	    const char *sender, int fd, off_t offset, char *reason,
	    size_t rlen);

/* Into dir (a Maildir), with Return-Path: and Delivered-To: on top. */
enum smtp_outcome local_maildir(const char *dir, const char *rcpt,
	    const char *sender, int fd, off_t offset, off_t len, char *reason,
	    size_t rlen);

#endif
