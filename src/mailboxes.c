/* mailboxes.c - mutt's mailboxes line for the local folders. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailboxes.h"

#define MAILBOXES_MAX	(4 * 1024 * 1024)	/* bytes of an old file
						 * compared */

int
mailboxes_quote(struct strbuf *sb, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return -1;
	sb_addc(sb, '"');
	for (const char *c = s; *c; c++) {
		if (*c == '\\' || *c == '"' || *c == '`' || *c == '$')
			sb_addc(sb, '\\');
		sb_addc(sb, *c);
	}
	sb_addc(sb, '"');
	return 0;
}

static bool
is_maildir(const char *dir, const char *name)
{
	char *p = name != NULL ? xasprintf("%s/%s/cur", dir, name) :
	    xasprintf("%s/cur", dir);
	struct stat st;
	bool yes = stat(p, &st) == 0 && S_ISDIR(st.st_mode);

	free(p);
	return yes;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add " PATH" for the Maildir and its folders. */
static void
add_local(struct strbuf *sb, const char *local)
{
	struct strvec names;
	struct dirent *d;
	DIR *dp;

	if (is_maildir(local, NULL)) {
		sb_addc(sb, ' ');
		if (mailboxes_quote(sb, local) < 0)
			sb->len--;
	}
	if ((dp = opendir(local)) == NULL)
		return;
	sv_init(&names);
	while ((d = readdir(dp)) != NULL)
		if (d->d_name[0] == '.' && strcmp(d->d_name, ".") != 0 &&
		    strcmp(d->d_name, "..") != 0 &&
		    is_maildir(local, d->d_name))
			sv_push(&names, d->d_name);
	closedir(dp);
	if (names.n > 0)
		qsort(names.v, names.n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < names.n; i++) {
		char *p = xasprintf("%s/%s", local, names.v[i]);

		sb_addc(sb, ' ');
		if (mailboxes_quote(sb, p) < 0)
			sb->len--;
		free(p);
	}
	sv_free(&names);
}

char *
mailboxes_line(const struct strvec *locals)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_adds(&sb, "mailboxes");
	for (size_t i = 0; i < locals->n; i++)
		add_local(&sb, locals->v[i]);
	sb_addc(&sb, '\n');
	return sb_steal(&sb);
}

/* Does file hold exactly line? */
static bool
same(const char *file, const char *line)
{
	size_t len = strlen(line), got = 0;
	char *buf;
	bool eq;
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size != len || len > MAILBOXES_MAX) {
		close(fd);
		return false;
	}
	buf = xmalloc(len + 1);
	while (got <= len) {
		ssize_t n = read(fd, buf + got, len + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	eq = got == len && memcmp(buf, line, len) == 0;
	free(buf);
	return eq;
}

int
mailboxes_write(const char *file, const struct strvec *locals,
    bool *changed, struct err *e)
{
	char *line = mailboxes_line(locals);
	char *tmp = xasprintf("%s.tmp%ld", file, (long)getpid());
	char *d = xstrdup(file);
	int fd = -1, rc = 0;

	*changed = false;
	if (same(file, line))
		goto out;
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0 && errno == ENOENT) {
		rc = err_set(e, err_from_errno(errno), "cannot write %s: its "
		    "directory does not exist (create it, or change "
		    "mailboxes)", file);
		goto out;
	}
	if (fd < 0 || util_write_all(fd, line, strlen(line)) < 0 ||
	    fsync(fd) < 0) {
		rc = err_set(e, err_from_errno(errno), "cannot write %s: %s",
		    fd < 0 ? tmp : file, strerror(errno));
		if (fd >= 0)
			(void)unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, file) < 0) {
		fd = -1;
		rc = err_set(e, err_from_errno(errno), "cannot replace %s: %s",
		    file, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	fd = -1;
	if (util_fsync_dir(dirname(d), e) < 0) {
		rc = -1;
		goto out;
	}
	*changed = true;
out:
	if (fd >= 0)
		close(fd);
	free(d);
	free(tmp);
	free(line);
	return rc;
}
