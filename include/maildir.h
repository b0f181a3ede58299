/*
 * maildir.h - deliver one message into a local Maildir, the qmail way:
 * a unique name in tmp/ (O_EXCL), write, fsync, close, rename into new/,
 * fsync new/. Used for local recipients and failure notices.
 */
#ifndef POSTIE_MAILDIR_H
#define POSTIE_MAILDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct crash;

/*
 * Write prefix (may be NULL) and then bytes [offset, offset+len) of fd
 * into dir/new. Creates dir, tmp, new, cur (0700) when missing. crash
 * (may be NULL) counts two steps: "maildir file written" (fsync'd and
 * closed in tmp/) and "maildir renamed into new/" (before the fsync of
 * new/).
 */
int	maildir_deliver(const char *dir, const char *prefix, size_t plen,
	    int fd, off_t offset, off_t len, struct crash *crash,
	    struct err *e);

/*
 * Write buf into dir/new under the given name, at most once: if a
 * message of that name is in new/ or cur/ already (a run that crashed
 * after writing it), nothing is written and 1 is returned; 0 once
 * written (tmp/NAME, fsync, link into new/, fsync new/, tmp/NAME
 * unlinked). crash counts "maildir file written" and "maildir linked
 * into new/".
 */
int	maildir_deliver_once(const char *dir, const char *name,
	    const char *buf, size_t len, struct crash *crash, struct err *e);

#endif
