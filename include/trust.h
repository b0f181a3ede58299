/*
 * trust.h - whether a file may steer postie: OpenSSH's rule for its
 * own files (StrictModes, safe_path).
 *
 * A file is trusted when it, and every directory on its real path up to
 * "/", is owned by root or by the running user (the effective uid) and
 * is writable by no one else (no group or other write bit). One
 * exception: a directory writable by others that has the sticky bit
 * (like /tmp) is allowed, since there only an entry's owner, the
 * directory's owner (itself root or the user) or root may rename or
 * remove an entry, so the trusted entries below it cannot be swapped.
 * Symbolic links are followed: the rule applies to what they lead to.
 *
 * Errors are ERR_CONFIG, one line naming the file or directory, what is
 * wrong with it and what to do.
 */
#ifndef POSTIE_TRUST_H
#define POSTIE_TRUST_H

#include "err.h"

/*
 * The file open on fd, found at path: its own status (what was opened)
 * must pass, then every directory of path's real location.
 */
int	trust_file(int fd, const char *path, struct err *e);

/*
 * The real path of the program at path, if it is a regular file that
 * passes the rule with its directories; NULL with e set if not. Execute
 * the returned path (the caller frees it): it is the file checked.
 */
char	*trust_program(const char *path, struct err *e);

#endif
