/* maildir.c - durable delivery into a Maildir. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "crash.h"
#include "maildir.h"
#include "util.h"

static int
make_dirs(const char *dir, struct err *e)
{
	static const char *sub[] = { "tmp", "new", "cur" };

	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", dir, sub[i]);
		int rc = util_mkdir_p(p, e);

		free(p);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int
copy_range(int in, off_t offset, off_t len, int out)
{
	char buf[65536];

	while (len > 0) {
		size_t want = len < (off_t)sizeof(buf) ? (size_t)len :
		    sizeof(buf);
		ssize_t r = pread(in, buf, want, offset);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (util_write_all(out, buf, (size_t)r) < 0)
			return -1;
		offset += r;
		len -= r;
	}
	return 0;
}

int
maildir_deliver(const char *dir, const char *prefix, size_t plen, int fd,
    off_t offset, off_t len, struct crash *crash, struct err *e)
{
	struct timeval tv;
	unsigned int rnd = 0;
	char *name, *tmp, *dst, *newdir;
	int out, rc = -1;

	if (make_dirs(dir, e) < 0)
		return -1;
	gettimeofday(&tv, NULL);
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)tv.tv_usec;
	name = xasprintf("%lld.M%06ldP%ldR%08x.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), rnd, util_hostname());
	tmp = xasprintf("%s/tmp/%s", dir, name);
	dst = xasprintf("%s/new/%s", dir, name);
	newdir = xasprintf("%s/new", dir);
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		err_set(e, err_from_errno(errno), "cannot create %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	if ((prefix != NULL && util_write_all(out, prefix, plen) < 0) ||
	    (fd >= 0 && copy_range(fd, offset, len, out) < 0) ||
	    fsync(out) < 0) {
		err_set(e, err_from_errno(errno), "cannot write %s: %s", tmp,
		    strerror(errno));
		close(out);
		unlink(tmp);
		goto done;
	}
	if (close(out) < 0) {
		err_set(e, err_from_errno(errno), "cannot write %s: %s", tmp,
		    strerror(errno));
		unlink(tmp);
		goto done;
	}
	crash_step(crash, "maildir file written");
	if (rename(tmp, dst) < 0) {
		err_set(e, err_from_errno(errno), "cannot deliver into %s: %s",
		    newdir, strerror(errno));
		unlink(tmp);
		goto done;
	}
	crash_step(crash, "maildir renamed into new/");
	rc = util_fsync_dir(newdir, e);
done:
	free(name);
	free(tmp);
	free(dst);
	free(newdir);
	return rc;
}

/* Is there a message called name in dir/cur (any flags after ':')? */
static bool
in_cur(const char *dir, const char *name)
{
	char *cur = xasprintf("%s/cur", dir);
	DIR *d = opendir(cur);
	size_t n = strlen(name);
	struct dirent *de;
	bool found = false;

	free(cur);
	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL)
		found = strncmp(de->d_name, name, n) == 0 &&
		    (de->d_name[n] == '\0' || de->d_name[n] == ':');
	closedir(d);
	return found;
}

int
maildir_deliver_once(const char *dir, const char *name, const char *buf,
    size_t len, struct crash *crash, struct err *e)
{
	char *tmp, *dst, *newdir;
	int out, rc = -1;

	if (make_dirs(dir, e) < 0)
		return -1;
	tmp = xasprintf("%s/tmp/%s", dir, name);
	dst = xasprintf("%s/new/%s", dir, name);
	newdir = xasprintf("%s/new", dir);
	if (access(dst, F_OK) == 0 || in_cur(dir, name)) {
		rc = 1;		/* written by a run that crashed after it */
		unlink(tmp);
		goto done;
	}
	/* a crashed run's unfinished file is overwritten */
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (out < 0) {
		err_set(e, err_from_errno(errno), "cannot create %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	if (util_write_all(out, buf, len) < 0 || fsync(out) < 0 ||
	    close(out) < 0) {
		err_set(e, err_from_errno(errno), "cannot write %s: %s", tmp,
		    strerror(errno));
		unlink(tmp);
		goto done;
	}
	crash_step(crash, "maildir file written");
	/* link, not rename: never over a copy that is there already */
	if (link(tmp, dst) < 0 && errno != EEXIST) {
		err_set(e, err_from_errno(errno), "cannot deliver into %s: %s",
		    newdir, strerror(errno));
		unlink(tmp);
		goto done;
	}
	crash_step(crash, "maildir linked into new/");
	if (util_fsync_dir(newdir, e) == 0) {
		unlink(tmp);
		rc = 0;
	}
done:
	free(tmp);
	free(dst);
	free(newdir);
	return rc;
}
