/* reach.c - QUEUE/unreachable, the upstreams not reached (see reach.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reach.h"
#include "safefile.h"
#include "util.h"

#define REACH_TIME_MAX	253402300799LL	/* the end of year 9999 */
#define REACH_NAME_MAX	255
#define REACH_REASON_MAX 512

static bool
parse_time(const char *s, time_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 ||
	    v > REACH_TIME_MAX)
		return false;
	*out = (time_t)v;
	return true;
}

static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > REACH_NAME_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* One line "NAME\tSINCE\tLAST\tREASON"; a malformed one is skipped. */
static void
parse_line(char *line, struct reach *r)
{
	char *f[4];
	time_t since, last;

	f[0] = line;
	for (int i = 1; i < 4; i++) {
		char *tab = strchr(f[i - 1], '\t');

		if (tab == NULL)
			return;
		*tab = '\0';
		f[i] = tab + 1;
	}
	if (!name_ok(f[0]) || !parse_time(f[1], &since) ||
	    !parse_time(f[2], &last) || since > last ||
	    reach_find(r, f[0]) != NULL || r->n >= REACH_MAX)
		return;
	r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
	r->v[r->n].name = xstrdup(f[0]);
	r->v[r->n].since = since;
	r->v[r->n].last = last;
	r->v[r->n].reason = xstrndup(f[3], strnlen(f[3], REACH_REASON_MAX));
	util_sanitize(r->v[r->n].reason);
	r->n++;
}

void
reach_parse(const char *text, size_t len, struct reach *r)
{
	size_t pos = 0;

	memset(r, 0, sizeof(*r));
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		char *line;

		if (nl == NULL)
			break;		/* a torn last line */
		line = xstrndup(text + pos, (size_t)(nl - text - pos));
		if (strlen(line) == (size_t)(nl - text - pos))
			parse_line(line, r);	/* a NUL inside: skipped */
		free(line);
		pos = (size_t)(nl - text) + 1;
	}
}

void
reach_read(const char *queue_dir, struct reach *r)
{
	char *path = xasprintf("%s/unreachable", queue_dir);
	char *buf = NULL;
	size_t n = 0;
	struct err e;
	int fd;

	memset(r, 0, sizeof(*r));
	fd = safefile_open(path, O_RDONLY, 0, NULL, &e);
	free(path);
	if (fd < 0)
		return;		/* none, or not ours: nothing to say */
	buf = xmalloc(REACH_FILE_MAX);
	while (n < REACH_FILE_MAX) {
		ssize_t got = read(fd, buf + n, REACH_FILE_MAX - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	reach_parse(buf, n, r);
	free(buf);
}

const struct reach_entry *
reach_find(const struct reach *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].name, name) == 0)
			return &r->v[i];
	return NULL;
}

void
reach_set(struct reach *r, const char *name, time_t now, const char *reason)
{
	struct reach_entry *en = (struct reach_entry *)reach_find(r, name);

	if (!name_ok(name))
		return;
	if (en == NULL) {
		if (r->n >= REACH_MAX)
			return;
		r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
		en = &r->v[r->n++];
		en->name = xstrdup(name);
		en->since = now;
		en->reason = NULL;
	}
	en->last = now;
	if (en->since > now)
		en->since = now;	/* the clock went back */
	free(en->reason);
	en->reason = xstrndup(reason, strnlen(reason, REACH_REASON_MAX));
	util_sanitize(en->reason);
	for (char *p = en->reason; *p; p++)
		if (*p == '\t')
			*p = ' ';
}

bool
reach_clear(struct reach *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->v[i].name, name) != 0)
			continue;
		free(r->v[i].name);
		free(r->v[i].reason);
		memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) *
		    sizeof(*r->v));
		r->n--;
		return true;
	}
	return false;
}

int
reach_write(const char *queue_dir, const struct reach *r, struct err *e)
{
	char *path = xasprintf("%s/unreachable", queue_dir);
	char *tmp;
	struct strbuf sb;
	int fd, rc = 0;

	if (r->n == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			rc = err_set(e, ERR_IOERR, "cannot remove %s: %s",
			    path, strerror(errno));
		free(path);
		return rc;
	}
	sb_init(&sb);
	for (size_t i = 0; i < r->n; i++)
		sb_addf(&sb, "%s\t%lld\t%lld\t%s\n", r->v[i].name,
		    (long long)r->v[i].since, (long long)r->v[i].last,
		    r->v[i].reason);
	/* in tmp/: a crash leaves it to the 36-hour clean-up */
	tmp = xasprintf("%s/tmp/unreachable.%ld", queue_dir, (long)getpid());
	unlink(tmp);
	fd = safefile_open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600, NULL, e);
	if (fd < 0)
		rc = -1;
	else {
		if (util_write_all(fd, sb.s, sb.len) < 0)
			rc = err_set(e, ERR_IOERR, "cannot write %s: %s", tmp,
			    strerror(errno));
		if (close(fd) < 0 && rc == 0)
			rc = err_set(e, ERR_IOERR, "cannot write %s: %s", tmp,
			    strerror(errno));
		if (rc == 0 && rename(tmp, path) < 0)
			rc = err_set(e, ERR_IOERR, "cannot rename %s: %s", tmp,
			    strerror(errno));
		if (rc < 0)
			unlink(tmp);
	}
	sb_free(&sb);
	free(tmp);
	free(path);
	return rc;
}

void
reach_free(struct reach *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].name);
		free(r->v[i].reason);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}
