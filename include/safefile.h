/*
 * safefile.h - the queue's files and directories, opened as things
 * someone else may have tampered with.
 *
 * A file is opened without following a symbolic link (O_NOFOLLOW) and
 * without blocking (O_NONBLOCK, so a FIFO cannot hang the caller), then
 * accepted only if it is a regular file owned by the running user. A
 * directory is accepted only if it is owned by the running user and
 * group and others cannot write it. See queue/README.md, "Ownership".
 */
#ifndef POSTIE_SAFEFILE_H
#define POSTIE_SAFEFILE_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

/*
 * open(2) path with flags (O_NOFOLLOW, O_NONBLOCK and O_CLOEXEC added;
 * O_NONBLOCK is cleared again before return). With O_CREAT, *created
 * (if not NULL) says whether this call made the file. Returns the
 * descriptor, or -1 with e set: ERR_NOINPUT when path does not exist,
 * ERR_DATA when it is a symbolic link, not a regular file, or not ours
 * (e says which), else the class of the errno.
 */
int	safefile_open(const char *path, int flags, mode_t mode, bool *created,
	    struct err *e);

/*
 * Is dir (followed if a link) a directory of ours that group and others
 * cannot write? 0 yes; 0 with *exists false when it does not exist; -1
 * with e set (ERR_CONFIG: names dir, why, and what to do) otherwise.
 * what says what dir is, as in "the queue directory".
 */
int	safefile_check_dir(const char *dir, const char *what, bool *exists,
	    struct err *e);

#endif
