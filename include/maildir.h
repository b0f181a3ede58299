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

#endif
