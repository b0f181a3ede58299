/*
 * trust.c - the OpenSSH rule: a file that can steer postie, and the
 * directories that lead to it, belong to root or the user and are
 * writable by no one else.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"
#include "util.h"

static bool
trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

static bool
others_may_write(const struct stat *st)
{
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) == 0)
		return false;
	/* sticky directory: others may add entries, not swap ours */
	return !(S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX));
}

/* file: what the user named; dir: one of its directories, or NULL. */
static int
check(const struct stat *st, const char *file, const char *dir,
    struct err *e)
{
	const char *what = dir != NULL ? dir : file;
	char *at = dir != NULL ? xasprintf("%s: its directory %s", file, dir) :
	    xasprintf("%s", file);
	int rc = 0;

	if (!trusted_owner(st->st_uid))
		rc = err_set(e, ERR_CONFIG, "%s is owned by another user (uid "
		    "%u): postie trusts only what you or root own (see "
		    "postie.conf(5)); chown it or use one of your own", at,
		    (unsigned)st->st_uid);
	else if (others_may_write(st))
		rc = err_set(e, ERR_CONFIG, "%s is writable by other users: "
		    "run chmod go-w %s", at, what);
	free(at);
	return rc;
}

/* Every directory of real (an absolute path without links), up to "/". */
static int
check_dirs(const char *file, const char *real, struct err *e)
{
	char *d = xstrdup(real);
	struct stat st;
	int rc = 0;

	for (;;) {
		char *slash = strrchr(d, '/');

		if (slash == NULL)
			break;
		if (slash == d)
			slash[1] = '\0';	/* the root itself */
		else
			*slash = '\0';
		if (stat(d, &st) < 0) {
			rc = err_set(e, ERR_CONFIG, "%s: cannot check its "
			    "directory %s: %s", file, d, strerror(errno));
			break;
		}
		if ((rc = check(&st, file, d, e)) < 0)
			break;
		if (strcmp(d, "/") == 0)
			break;
	}
	free(d);
	return rc;
}

/* The real path of path, which must still be the file st describes. */
static char *
real_path_of(const char *path, const struct stat *st, struct err *e)
{
	char *real = realpath(path, NULL);
	struct stat now;

	if (real == NULL) {
		err_set(e, ERR_CONFIG, "%s: cannot resolve its path: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (stat(real, &now) < 0 || now.st_dev != st->st_dev ||
	    now.st_ino != st->st_ino) {
		err_set(e, ERR_CONFIG, "%s: changed while it was checked: try "
		    "again", path);
		free(real);
		return NULL;
	}
	return real;
}

/* The file as an error names it: path, and where it leads if a link. */
static char *
display_name(const char *path, const char *real)
{
	return strcmp(path, real) == 0 ? xstrdup(path) :
	    xasprintf("%s (a link to %s)", path, real);
}

/* st: the status of what is open at path; *realp: its real path. */
static int
check_all(const char *path, const struct stat *st, char **realp,
    struct err *e)
{
	char *real = real_path_of(path, st, e);
	char *name;
	int rc;

	if (real == NULL)
		return -1;
	name = display_name(path, real);
	rc = check(st, name, NULL, e);
	if (rc == 0)
		rc = check_dirs(name, real, e);
	free(name);
	if (rc == 0 && realp != NULL)
		*realp = real;
	else
		free(real);
	return rc;
}

int
trust_file(int fd, const char *path, struct err *e)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return err_set(e, ERR_CONFIG, "%s: cannot check it: %s", path,
		    strerror(errno));
	return check_all(path, &st, NULL, e);
}

char *
trust_program(const char *path, struct err *e)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	struct stat st;
	char *real = NULL;

	if (fd < 0) {
		err_set(e, ERR_CONFIG, "%s: cannot run it: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0)
		err_set(e, ERR_CONFIG, "%s: cannot check it: %s", path,
		    strerror(errno));
	else if (!S_ISREG(st.st_mode))
		err_set(e, ERR_CONFIG, "%s: is not a regular file: name the "
		    "program itself", path);
	else
		(void)check_all(path, &st, &real, e);
	close(fd);
	return real;
}
