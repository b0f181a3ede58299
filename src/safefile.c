/*
 * safefile.c - open queue files without following links or blocking on
 * FIFOs, and check directories' owner and mode. See safefile.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safefile.h"

static const char *
kind(mode_t m)
{
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a plain file";
}

/* Is st a regular file of ours? -1 with e set if not. */
static int
check_file(const char *path, const struct stat *st, struct err *e)
{
	if (S_ISLNK(st->st_mode))
		return err_set(e, ERR_DATA, "%s is a symbolic link: postie "
		    "does not follow links in the queue", path);
	if (!S_ISREG(st->st_mode))
		return err_set(e, ERR_DATA, "%s is not a regular file (%s)",
		    path, kind(st->st_mode));
	if (st->st_uid != geteuid())
		return err_set(e, ERR_DATA, "%s is owned by uid %lu, not by "
		    "you (uid %lu)", path, (unsigned long)st->st_uid,
		    (unsigned long)geteuid());
	return 0;
}

static int
open_error(const char *path, int errnum, struct err *e)
{
	if (errnum == ELOOP)
		return err_set(e, ERR_DATA, "%s is a symbolic link: postie "
		    "does not follow links in the queue", path);
	if (errnum == ENOENT)
		return err_set(e, ERR_NOINPUT, "cannot open %s: %s", path,
		    strerror(errnum));
	return err_set(e, err_from_errno(errnum), "cannot open %s: %s", path,
	    strerror(errnum));
}

int
safefile_open(const char *path, int flags, mode_t mode, bool *created,
    struct err *e)
{
	struct stat st;
	int fd = -1;

	if (created != NULL)
		*created = false;
	/* look first: a device or FIFO is refused before it is opened */
	if (lstat(path, &st) == 0) {
		if (check_file(path, &st, e) < 0)
			return -1;
	} else if (errno != ENOENT || !(flags & O_CREAT))
		return open_error(path, errno, e);
	flags |= O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	if (flags & O_CREAT) {
		fd = open(path, flags | O_EXCL, mode);
		if (fd >= 0 && created != NULL)
			*created = true;
		else if (fd < 0 && errno == EEXIST)
			fd = open(path, flags & ~O_CREAT);
	} else
		fd = open(path, flags);
	if (fd < 0)
		return open_error(path, errno, e);
	/* what was opened, not what was looked at: the name may have moved */
	if (fstat(fd, &st) < 0) {
		int saved = errno;

		close(fd);
		return err_set(e, ERR_IOERR, "cannot stat %s: %s", path,
		    strerror(saved));
	}
	if (check_file(path, &st, e) < 0) {
		close(fd);
		return -1;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int saved = errno;

		close(fd);
		return err_set(e, ERR_IOERR, "cannot use %s: %s", path,
		    strerror(saved));
	}
	return fd;
}

int
safefile_check_dir(const char *dir, const char *what, bool *exists,
    struct err *e)
{
	struct stat st;

	*exists = false;
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;	/* creating it will say why not */
		return err_set(e, err_from_errno(errno), "cannot use %s %s: %s",
		    what, dir, strerror(errno));
	}
	*exists = true;
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_CONFIG, "%s %s is not a directory (%s): "
		    "move it away, or set 'queue' in postie.conf", what, dir,
		    kind(st.st_mode));
	if (st.st_uid != geteuid())
		return err_set(e, ERR_CONFIG, "%s %s is owned by uid %lu, not "
		    "by you (uid %lu): refusing to use it; chown it to "
		    "yourself after checking what is in it, or set 'queue' in "
		    "postie.conf to a directory of your own", what, dir,
		    (unsigned long)st.st_uid, (unsigned long)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return err_set(e, ERR_CONFIG, "%s %s is writable by group or "
		    "others (mode %04o): refusing to use it; check what is in "
		    "it, then run chmod go-w %s", what, dir,
		    (unsigned)(st.st_mode & 07777), dir);
	return 0;
}
