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

/*
 * Write prefix (may be NULL) and then bytes [offset, offset+len) of fd
 * into dir/new. Creates dir, tmp, new, cur (0700) when missing.
 */
int	maildir_deliver(const char *dir, const char *prefix, size_t plen,
	    int fd, off_t offset, off_t len, struct err *e);

#endif
