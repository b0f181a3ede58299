/*
 * queue.c - the on-disk queue: ids, the envelope and state files,
 * commit, locks, listing and clean-up. See queue/README.md.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "message.h"
#include "queue.h"
#include "safefile.h"

#define ENVELOPE_MAGIC	"postie-queue 1\n"
#define ENVELOPE_MAX	(4 * 1024 * 1024)

int
queue_check(const struct queue *q, struct err *e)
{
	DIR *d;
	struct dirent *de;
	bool exists;
	int rc = 0;

	if (safefile_check_dir(q->dir, "the queue directory", &exists, e) < 0)
		return -1;
	if (!exists)
		return 0;
	if ((d = opendir(q->dir)) == NULL)
		return err_set(e, err_from_errno(errno), "cannot read the queue "
		    "directory %s: %s", q->dir, strerror(errno));
	/* tmp/, msg/, state/ and any other directory in it */
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		char *sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		sub = xasprintf("%s/%s", q->dir, de->d_name);
		rc = safefile_check_dir(sub, "the queue directory", &exists, e);
		free(sub);
	}
	closedir(d);
	return rc;
}

int
queue_open(struct queue *q, const char *dir, bool create, struct err *e)
{
	q->dir = xstrdup(dir);
	q->tmp = xasprintf("%s/tmp", dir);
	q->msg = xasprintf("%s/msg", dir);
	q->state = xasprintf("%s/state", dir);
	q->crash = NULL;
	q->ballast = -1;
	q->clean_on_signal = false;	/* queue_clean_on_signal sets it */
	if ((create && (util_mkdir_p(q->tmp, e) < 0 ||
	    util_mkdir_p(q->msg, e) < 0 || util_mkdir_p(q->state, e) < 0)) ||
	    queue_check(q, e) < 0) {
		queue_close(q);
		return -1;
	}
	return 0;
}

void
queue_close(struct queue *q)
{
	if (q->dir != NULL)
		queue_ballast_drop(q);
	free(q->dir);
	free(q->tmp);
	free(q->msg);
	free(q->state);
	memset(q, 0, sizeof(*q));
}

static char *
new_id(int attempt)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	if (attempt == 0)
		return xasprintf("%lld.%06ld.%ld", (long long)tv.tv_sec,
		    (long)tv.tv_usec, (long)getpid());
	return xasprintf("%lld.%06ld.%ld.%d", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), attempt);
}

/* The tmp/ file being written, for the signal handler (a handler can
 * reach nothing else); set only with queue_clean_on_signal. */
static char sig_tmp[4096];
static volatile sig_atomic_t sig_tmp_set;
static const int clean_sigs[] = { SIGTERM, SIGINT, SIGHUP };

static void
on_stop_signal(int sig)
{
	if (sig_tmp_set)
		(void)unlink(sig_tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

void
queue_clean_on_signal(struct queue *q)
{
	q->clean_on_signal = true;
	util_catch_stop_signals(on_stop_signal, 0);
}

/* The handler's tmp/ path, set or cleared with the signals held off. */
static void
sig_tmp_note(const struct queue *q, const char *path)
{
	sigset_t block, old;

	if (!q->clean_on_signal)
		return;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(clean_sigs) / sizeof(clean_sigs[0]); i++)
		sigaddset(&block, clean_sigs[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	sig_tmp_set = 0;
	if (path != NULL && strlen(path) < sizeof(sig_tmp)) {
		memcpy(sig_tmp, path, strlen(path) + 1);
		sig_tmp_set = 1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int
queue_begin(struct queue *q, struct qfile *qf, struct err *e)
{
	memset(qf, 0, sizeof(*qf));
	qf->q = q;
	qf->fd = -1;
	bool made_dirs = false;

	for (int attempt = 0; attempt < 100; attempt++) {
		qf->id = new_id(attempt);
		qf->tmp_path = xasprintf("%s/%s", q->tmp, qf->id);
		qf->fd = open(qf->tmp_path, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (qf->fd >= 0) {
			sig_tmp_note(q, qf->tmp_path);
			crash_step(q->crash, "tmp file created");
			return 0;
		}
		if (errno == ENOENT && !made_dirs &&
		    util_mkdir_p(q->tmp, NULL) == 0 &&
		    util_mkdir_p(q->msg, NULL) == 0 &&
		    util_mkdir_p(q->state, NULL) == 0) {
			/* the queue was new: directories made, same id again */
			made_dirs = true;
			attempt--;
			if (queue_check(q, e) < 0) {
				qfile_free(qf);
				return -1;	/* someone else's, after all */
			}
		} else if (errno != EEXIST) {
			int saved = errno;

			err_set(e, err_from_errno(saved), "cannot create a "
			    "queue file in %s: %s", q->tmp, strerror(saved));
			qfile_free(qf);
			return -1;
		}
		free(qf->id);
		free(qf->tmp_path);
		qf->id = qf->tmp_path = NULL;
	}
	return err_set(e, ERR_TEMPFAIL, "cannot find a free queue file name "
	    "in %s", q->tmp);
}

static int
qf_flush(struct qfile *qf, struct err *e)
{
	if (qf->buffered == 0)
		return 0;
	if (util_write_all(qf->fd, qf->buf, qf->buffered) < 0) {
		int saved = errno;

		return err_set(e, err_from_errno(saved), "cannot write the "
		    "queue file %s: %s", qf->tmp_path, strerror(saved));
	}
	qf->buffered = 0;
	crash_step(qf->q->crash, "data written");
	return 0;
}

int
queue_write(struct qfile *qf, const void *p, size_t n, struct err *e)
{
	const char *s = p;

	qf->written += n;
	while (n > 0) {
		size_t room = sizeof(qf->buf) - qf->buffered;
		size_t take = n < room ? n : room;

		memcpy(qf->buf + qf->buffered, s, take);
		qf->buffered += take;
		s += take;
		n -= take;
		if (qf->buffered == sizeof(qf->buf) && qf_flush(qf, e) < 0)
			return -1;
	}
	return 0;
}

int
queue_patch(struct qfile *qf, uint64_t offset, const void *p, size_t n,
    struct err *e)
{
	uint64_t flushed = qf->written - qf->buffered;

	if (offset >= flushed && offset + n <= qf->written) {
		memcpy(qf->buf + (offset - flushed), p, n);
		return 0;
	}
	if (offset + n <= flushed && pwrite(qf->fd, p, n, (off_t)offset) ==
	    (ssize_t)n)
		return 0;
	return err_set(e, err_from_errno(errno), "cannot write the queue file "
	    "%s: %s", qf->tmp_path, strerror(errno));
}

/* rename(2) that never replaces an existing message. */
static int
rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* file system without RENAME_NOREPLACE: link + unlink */
	if (link(from, to) < 0)
		return -1;
	unlink(from);
	return 0;
}

int
queue_commit(struct qfile *qf, struct err *e)
{
	struct queue *q = qf->q;
	char *dst = NULL;
	int rc;

	if (qf_flush(qf, e) < 0)
		goto fail;
	if (fsync(qf->fd) < 0) {
		err_set(e, err_from_errno(errno), "cannot fsync %s: %s",
		    qf->tmp_path, strerror(errno));
		goto fail;
	}
	crash_step(q->crash, "tmp file fsync'd");
	rc = close(qf->fd);
	qf->fd = -1;
	if (rc < 0) {
		err_set(e, err_from_errno(errno), "cannot close %s: %s",
		    qf->tmp_path, strerror(errno));
		goto fail;
	}
	crash_step(q->crash, "tmp file closed");
	for (int attempt = 1; ; attempt++) {
		dst = xasprintf("%s/%s", q->msg, qf->id);
		if (rename_noreplace(qf->tmp_path, dst) == 0)
			break;
		if (errno == ENOENT && attempt == 1 &&
		    util_mkdir_p(q->msg, NULL) == 0) {
			free(dst);
			dst = NULL;
			continue;	/* msg/ was missing: made, try again */
		}
		if (errno != EEXIST || attempt > 100) {
			err_set(e, err_from_errno(errno), "cannot move %s into "
			    "%s: %s", qf->tmp_path, q->msg, strerror(errno));
			goto fail;
		}
		/* an id taken in msg/ (clock stepped back): pick another */
		free(dst);
		dst = NULL;
		free(qf->id);
		qf->id = new_id(attempt);
	}
	sig_tmp_note(q, NULL);	/* renamed: nothing in tmp/ to remove */
	crash_step(q->crash, "renamed into msg/");
	free(qf->tmp_path);
	qf->tmp_path = NULL;
	if (util_fsync_dir(q->msg, e) < 0 && util_fsync_dir(q->msg, e) < 0) {
		/*
		 * Renamed but not known to be durable: take it back, so that
		 * a failure exit never leaves a message that will be sent.
		 */
		unlink(dst);
		util_fsync_dir(q->msg, NULL);
		free(dst);
		return -1;
	}
	crash_step(q->crash, "msg/ fsync'd");
	free(dst);
	return 0;
fail:
	free(dst);
	queue_abort(qf);
	return -1;
}

void
queue_abort(struct qfile *qf)
{
	if (qf->fd >= 0)
		close(qf->fd);
	qf->fd = -1;
	if (qf->tmp_path != NULL)
		unlink(qf->tmp_path);
	if (qf->q != NULL)
		sig_tmp_note(qf->q, NULL);
	free(qf->tmp_path);
	qf->tmp_path = NULL;
}

void
qfile_free(struct qfile *qf)
{
	if (qf->fd >= 0)
		close(qf->fd);
	free(qf->id);
	free(qf->tmp_path);
	qf->fd = -1;
	qf->id = qf->tmp_path = NULL;
}

/* --- envelope ---------------------------------------------------------- */

static void
kv(struct strbuf *sb, const char *k, const char *v)
{
	if (v != NULL)
		sb_addf(sb, "%s %s\n", k, v);
}

void
envelope_format(const struct envelope *env, struct strbuf *out)
{
	sb_adds(out, ENVELOPE_MAGIC);
	sb_addf(out, "queued %lld\n", (long long)env->queued);
	sb_addf(out, "sender %s\n", env->sender);
	kv(out, "identity", env->identity);
	kv(out, "notify", env->notify);
	kv(out, "ret", env->ret);
	kv(out, "body", env->body);
	kv(out, "envid", env->envid);
	for (size_t i = 0; i < env->rcpts.n; i++)
		sb_addf(out, "rcpt %s\n", env->rcpts.v[i]);
	sb_adds(out, "end\n");
}

bool
queue_time_ok(long long t)
{
	return t > 0 && t <= QUEUE_TIME_MAX;
}

/* A decimal time in range, the whole value: else -1. */
static long long
parse_time(const char *v, size_t n)
{
	long long t = 0;

	if (n == 0 || n > 12)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		t = t * 10 + (v[i] - '0');
	}
	return queue_time_ok(t) ? t : -1;
}

bool
envelope_dsn_value_ok(const char *v)
{
	if (v == NULL)
		return true;
	if (*v == '\0' || strlen(v) > 100)
		return false;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return true;
}

/*
 * One bad value: "what 'value' why", the value made printable: control
 * bytes as \xNN, as mailq shows what it reads (so ESC[31m is seen as
 * \x1b[31m, not run by the terminal, and not hidden as '?').
 */
static int
bad_value(char *why, size_t len, const char *what, const char *v,
    const char *reason)
{
	struct strbuf shown;

	sb_init(&shown);
	for (const unsigned char *p = (const unsigned char *)v;
	    *p && shown.len < 300; p++) {
		if (*p < 0x20 || *p == 0x7f)
			sb_addf(&shown, "\\x%02x", *p);
		else
			sb_addc(&shown, (char)*p);
	}
	snprintf(why, len, "%s '%s' %s", what, shown.s ? shown.s : "",
	    reason);
	sb_free(&shown);
	return -1;
}

int
envelope_check(const struct envelope *env, char *why, size_t len)
{
	static const char dsn_why[] = "has blanks, control or non-ASCII "
	    "characters, or is over 100 bytes";
	const char *r;
	size_t n;

	if (!queue_time_ok((long long)env->queued)) {
		snprintf(why, len, "the queued time %lld is not between 1 and "
		    "%lld", (long long)env->queued, QUEUE_TIME_MAX);
		return -1;
	}
	if (env->sender == NULL || env->rcpts.n == 0) {
		snprintf(why, len, "the envelope has no %s", env->sender ?
		    "recipients" : "sender");
		return -1;
	}
	if (*env->sender != '\0' && !addr_valid_envelope(env->sender, &r))
		return bad_value(why, len, "sender", env->sender, r);
	for (size_t i = 0; i < env->rcpts.n; i++)
		if (!addr_valid_envelope(env->rcpts.v[i], &r))
			return bad_value(why, len, "recipient",
			    env->rcpts.v[i], r);
	if (!envelope_dsn_value_ok(env->notify))
		return bad_value(why, len, "the DSN option notify", env->notify,
		    dsn_why);
	if (!envelope_dsn_value_ok(env->ret))
		return bad_value(why, len, "the DSN option ret", env->ret,
		    dsn_why);
	if (!envelope_dsn_value_ok(env->envid))
		return bad_value(why, len, "the DSN option envid", env->envid,
		    dsn_why);
	if (env->identity != NULL)
		for (const unsigned char *p = (const unsigned char *)
		    env->identity; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				return bad_value(why, len, "the identity",
				    env->identity, "has control characters");
	/* stored padded with blanks until the message is read */
	n = env->body ? strlen(env->body) : 0;
	while (n > 0 && env->body[n - 1] == ' ')
		n--;
	if (env->body != NULL && !(n == 4 && memcmp(env->body, "7bit", 4) ==
	    0) && !(n == 8 && memcmp(env->body, "8bitmime", 8) == 0))
		return bad_value(why, len, "the body value", env->body,
		    "is neither 7bit nor 8bitmime");
	return 0;
}

static int
set_once(char **dst, const char *v, size_t n, const char **why)
{
	if (*dst != NULL) {
		*why = "a field is given twice";
		return -1;
	}
	*dst = xstrndup(v, n);
	return 0;
}

int
envelope_parse(const char *buf, size_t len, struct envelope *env,
    size_t *used, char *why, size_t whylen)
{
	size_t pos, mlen = strlen(ENVELOPE_MAGIC);
	const char *bad = "the envelope has no 'end' line";
	bool queued = false;

	memset(env, 0, sizeof(*env));
	sv_init(&env->rcpts);
	if (len < mlen || memcmp(buf, ENVELOPE_MAGIC, mlen) != 0) {
		bad = "not a postie queue file (no 'postie-queue 1' line)";
		goto fail;
	}
	for (pos = mlen; pos < len; ) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		const char *sp, *v;
		size_t n, klen, vlen;
		int rc = 0;

		if (nl == NULL)
			break;
		n = (size_t)(nl - line);
		pos += n + 1;
		if (n == 3 && memcmp(line, "end", 3) == 0) {
			if (env->sender == NULL)
				bad = "the envelope has no sender";
			else if (env->rcpts.n == 0)
				bad = "the envelope has no recipients";
			else if (!queued)
				bad = "the envelope has no queued time";
			else if (envelope_check(env, why, whylen) < 0)
				goto fail_why;
			else {
				*used = pos;
				return 0;
			}
			goto fail;
		}
		/* a value is a C string: a NUL would cut it short unseen */
		if (memchr(line, '\0', n) != NULL) {
			bad = "an envelope line has a NUL byte";
			goto fail;
		}
		sp = memchr(line, ' ', n);
		if (sp == NULL) {
			bad = "an envelope line without a value";
			goto fail;
		}
		klen = (size_t)(sp - line);
		v = sp + 1;
		vlen = n - klen - 1;
#define KEY(s) (klen == sizeof(s) - 1 && memcmp(line, s, klen) == 0)
		if (KEY("queued")) {
			long long t = parse_time(v, vlen);

			if (t < 0) {
				snprintf(why, whylen, "the queued time is not "
				    "a number from 1 to %lld", QUEUE_TIME_MAX);
				goto fail_why;
			}
			env->queued = (time_t)t;
			queued = true;
		} else if (KEY("sender"))
			rc = set_once(&env->sender, v, vlen, &bad);
		else if (KEY("identity"))
			rc = set_once(&env->identity, v, vlen, &bad);
		else if (KEY("notify"))
			rc = set_once(&env->notify, v, vlen, &bad);
		else if (KEY("ret"))
			rc = set_once(&env->ret, v, vlen, &bad);
		else if (KEY("body")) {
			while (vlen > 0 && v[vlen - 1] == ' ')
				vlen--;		/* padded: filled in at the end */
			rc = set_once(&env->body, v, vlen, &bad);
		}
		else if (KEY("envid"))
			rc = set_once(&env->envid, v, vlen, &bad);
		else if (KEY("rcpt"))
			sv_push_owned(&env->rcpts, xstrndup(v, vlen));
		/* unknown keys: written by a newer postie, ignored */
#undef KEY
		if (rc < 0)
			goto fail;
	}
fail:
	snprintf(why, whylen, "%s", bad);
fail_why:
	envelope_free(env);
	return -1;
}

void
envelope_free(struct envelope *env)
{
	free(env->sender);
	free(env->identity);
	free(env->notify);
	free(env->ret);
	free(env->body);
	free(env->envid);
	sv_free(&env->rcpts);
	memset(env, 0, sizeof(*env));
	sv_init(&env->rcpts);
}

/* The envelope at the start of the open queue file fd (named path). */
static int
read_envelope(int fd, const char *path, struct envelope *env, struct err *e)
{
	struct strbuf sb;
	struct stat st;
	char why[ERR_MSG_MAX / 2];
	size_t used;
	off_t pos = 0;
	int rc = -1;

	sb_init(&sb);
	for (;;) {
		char chunk[8192];
		ssize_t r = pread(fd, chunk, sizeof(chunk), pos);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(e, ERR_IOERR, "cannot read %s: %s", path,
			    strerror(errno));
			goto out;
		}
		pos += r;
		sb_add(&sb, chunk, (size_t)r);
		if (r == 0 || memmem(sb.s, sb.len, "\nend\n", 5) != NULL ||
		    sb.len > ENVELOPE_MAX)
			break;
	}
	if (envelope_parse(sb.s ? sb.s : "", sb.len, env, &used, why,
	    sizeof(why)) < 0) {
		err_set(e, ERR_DATA, "%s: %s", path, why);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		envelope_free(env);
		err_set(e, ERR_IOERR, "cannot stat %s: %s", path,
		    strerror(errno));
		goto out;
	}
	env->offset = used;
	env->size = (uint64_t)st.st_size > used ? (uint64_t)st.st_size - used
	    : 0;
	rc = 0;
out:
	sb_free(&sb);
	return rc;
}

int
queue_read_envelope(struct queue *q, const char *id, struct envelope *env,
    struct err *e)
{
	char *path = xasprintf("%s/%s", q->msg, id);
	int fd = safefile_open(path, O_RDONLY, 0, NULL, e);
	int rc = -1;

	if (fd >= 0) {
		rc = read_envelope(fd, path, env, e);
		close(fd);
	}
	free(path);
	return rc;
}

int
queue_read_envelope_fd(struct queue *q, const char *id, int fd,
    struct envelope *env, struct err *e)
{
	char *path = xasprintf("%s/%s", q->msg, id);
	int rc = read_envelope(fd, path, env, e);

	free(path);
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
queue_list(struct queue *q, struct strvec *ids, struct err *e)
{
	DIR *d = opendir(q->msg);
	struct dirent *de;

	if (d == NULL) {
		if (errno == ENOENT)
			return 0;	/* nothing was ever queued */
		return err_set(e, ERR_IOERR, "cannot read the queue %s: %s",
		    q->msg, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		sv_push(ids, de->d_name);
	}
	closedir(d);
	if (ids->n > 1)
		qsort(ids->v, ids->n, sizeof(char *), cmp_str);
	return 0;
}

int
queue_lock(struct queue *q, const char *id, int *fd, struct err *e)
{
	char *path = xasprintf("%s/%s", q->msg, id);
	int f = safefile_open(path, O_RDONLY, 0, NULL, e);

	free(path);
	if (f < 0)
		return e->code == ERR_NOINPUT ? 0 : -1;	/* 0: delivered */
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		int saved = errno;

		close(f);
		if (saved == EWOULDBLOCK)
			return 0;
		return err_set(e, ERR_IOERR, "cannot lock %s/%s: %s", q->msg,
		    id, strerror(saved));
	}
	{
		struct stat st;

		/* removed by another run between our open and flock? */
		if (fstat(f, &st) < 0 || st.st_nlink == 0) {
			close(f);
			return 0;
		}
	}
	*fd = f;
	return 1;
}

static bool
past(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec || (now.tv_sec ==
	    deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

int
queue_lock_wait(struct queue *q, const char *id,
    const struct timespec *deadline, int *fd, struct err *e)
{
	const struct timespec pause = { 0, 50 * 1000 * 1000 };
	char *path = xasprintf("%s/%s", q->msg, id);
	int f = safefile_open(path, O_RDONLY, 0, NULL, e);
	struct stat st;

	free(path);
	if (f < 0)
		return e->code == ERR_NOINPUT ? 0 : -1;
	while (flock(f, LOCK_EX | LOCK_NB) < 0) {
		int saved = errno;

		if (saved != EWOULDBLOCK && saved != EINTR) {
			close(f);
			return err_set(e, ERR_IOERR, "cannot lock %s/%s: %s",
			    q->msg, id, strerror(saved));
		}
		if (past(deadline)) {
			close(f);
			return err_set(e, ERR_TEMPFAIL, "%s is being sent by "
			    "a deliver run (still locked after %d seconds); "
			    "nothing was changed: try again when the run is "
			    "over", id, QUEUE_LOCK_WAIT);
		}
		nanosleep(&pause, NULL);
	}
	/* removed by the run we waited for? */
	if (fstat(f, &st) < 0 || st.st_nlink == 0) {
		close(f);
		return 2;
	}
	*fd = f;
	return 1;
}

void
queue_unlock(int fd)
{
	if (fd >= 0)
		close(fd);	/* closing releases the flock */
}

/* --- delivery state journal ------------------------------------------ */

/*
 * A journal whose last line was torn by a crash or a full disk loses that
 * fragment before the next append: a cut-off "ok 12 ..." must never read
 * as "ok 1". Only whole lines count.
 */
static int
cut_torn_line(int fd)
{
	struct stat st;
	off_t end;
	char c;

	if (fstat(fd, &st) < 0)
		return -1;
	for (end = st.st_size; end > 0; end--) {
		if (pread(fd, &c, 1, end - 1) != 1)
			return -1;
		if (c == '\n')
			break;
	}
	if (end == st.st_size)
		return 0;
	return ftruncate(fd, end);
}

int
queue_ballast_take(struct queue *q, off_t bytes, struct err *e)
{
	int fd;

	queue_ballast_drop(q);
	fd = open(q->state, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
	    errno == EINVAL))
		return 0;	/* no unnamed files here: no promise */
	if (fd < 0)
		return err_set(e, err_from_errno(errno), "cannot hold room in "
		    "%s for the journal: %s", q->state, strerror(errno));
	if (fallocate(fd, 0, 0, bytes) < 0) {
		int err = errno;

		close(fd);
		if (err == EOPNOTSUPP || err == ENOSYS)
			return 0;
		return err_set(e, err_from_errno(err), "cannot hold %lld "
		    "bytes in %s for the journal: %s", (long long)bytes,
		    q->state, strerror(err));
	}
	q->ballast = fd;
	return 0;
}

void
queue_ballast_drop(struct queue *q)
{
	if (q->ballast >= 0)
		close(q->ballast);	/* unnamed: its blocks are free */
	q->ballast = -1;
}

static int	state_append(struct queue *, const char *, const char *,
		    struct err *);

int
queue_state_append(struct queue *q, const char *id, const char *line,
    struct err *e)
{
	int rc = state_append(q, id, line, e);

	/* the disk filled since the run took its room: the room goes to
	 * this line, and to the rest of the run's */
	if (rc < 0 && q->ballast >= 0 && (errno == ENOSPC ||
	    errno == EDQUOT)) {
		queue_ballast_drop(q);
		rc = state_append(q, id, line, e);
	}
	return rc;
}

static int
state_append(struct queue *q, const char *id, const char *line,
    struct err *e)
{
	char *path = xasprintf("%s/%s", q->state, id);
	size_t len = strlen(line);
	off_t end = -1;
	bool created;
	int fd = safefile_open(path, O_RDWR | O_CREAT | O_APPEND, 0600,
	    &created, e);
	int rc = 0;

	if (fd < 0) {
		rc = -1;
		goto out;
	}
	if (cut_torn_line(fd) < 0 || (end = lseek(fd, 0, SEEK_END)) < 0 ||
	    util_write_all(fd, line, len) < 0 ||
	    (len > 0 && line[len - 1] != '\n' &&
	    util_write_all(fd, "\n", 1) < 0) || fsync(fd) < 0) {
		int err = errno;

		rc = err_set(e, err_from_errno(err), "cannot write %s: %s",
		    path, strerror(err));
		/* a line not known to be durable is no line: the journal
		 * stays as it was, as the caller is told */
		if (end >= 0 && ftruncate(fd, end) == 0)
			(void)fsync(fd);
		close(fd);
		errno = err;	/* the caller's to see (ENOSPC) */
		goto out;
	}
	if (close(fd) < 0) {
		rc = err_set(e, err_from_errno(errno), "cannot close %s: %s",
		    path, strerror(errno));
		goto out;
	}
	if (created)
		rc = util_fsync_dir(q->state, e);
	crash_step(q->crash, "state line appended");
out:
	free(path);
	return rc;
}

const char *
rcpt_state_name(enum rcpt_state s)
{
	switch (s) {
	case RCPT_WAITING:	return "waiting";
	case RCPT_SENT:		return "sent";
	case RCPT_DEFERRED:	return "deferred";
	case RCPT_FAILED:	return "failed";
	}
	return "?";
}

static void
set_rcpt(struct msgstate *st, size_t i, enum rcpt_state s, const char *reply,
    time_t when)
{
	struct rcpt_status *r = &st->r[i];

	if (r->state == RCPT_SENT || r->state == RCPT_FAILED)
		return;		/* final states stay final */
	r->state = s;
	free(r->reply);
	r->reply = xstrdup(reply);
	util_sanitize(r->reply);
	r->when = when;
}

/* One journal line: "<time> <event> [args]". Unknown events are skipped. */
static void
fold_line(struct msgstate *st, char *line)
{
	char *p = line, *ev, *arg;
	long long when = strtoll(p, &p, 10);
	enum rcpt_state s;

	if (*p != ' ' || p == line || !queue_time_ok(when))
		return;		/* garbled, or a time out of range */
	ev = ++p;
	p = strchr(p, ' ');
	if (p != NULL)
		*p++ = '\0';
	arg = p;
	if (strcmp(ev, "attempt") == 0) {
		st->attempts++;
		st->last_attempt = when;
		return;
	}
	if (strcmp(ev, "next") == 0 && arg != NULL) {
		char *end;
		long long t = strtoll(arg, &end, 10);

		if (*end == '\0' && end != arg && (t == 0 || queue_time_ok(t)))
			st->next_try = (time_t)t;
		return;
	}
	if (strcmp(ev, "bounced") == 0) {
		st->bounced = true;
		return;
	}
	if (strcmp(ev, "warned") == 0) {
		st->warned = true;
		return;
	}
	if (strcmp(ev, "hold") == 0) {
		if (!st->held) {
			st->held = true;
			st->held_since = when;
		}
		return;
	}
	if (strcmp(ev, "release") == 0) {
		if (st->held) {
			st->held = false;
			/* both times are in range: no overflow, and the sum
			 * stops at QUEUE_TIME_MAX */
			if (when > st->held_since)
				st->held_secs += when - st->held_since;
			if (st->held_secs > QUEUE_TIME_MAX)
				st->held_secs = QUEUE_TIME_MAX;
			st->next_try = 0;	/* due at once */
		}
		return;
	}
	if (strcmp(ev, "removed") == 0) {
		st->removed = true;
		return;
	}
	if (strcmp(ev, "ok") == 0)
		s = RCPT_SENT;
	else if (strcmp(ev, "defer") == 0)
		s = RCPT_DEFERRED;
	else if (strcmp(ev, "fail") == 0)
		s = RCPT_FAILED;
	else
		return;
	if (arg == NULL)
		return;
	p = strchr(arg, ' ');
	if (p != NULL)
		*p++ = '\0';
	if (strcmp(arg, "*") == 0) {
		for (size_t i = 0; i < st->n; i++)
			set_rcpt(st, i, s, p ? p : "", when);
	} else {
		char *end;
		unsigned long i = strtoul(arg, &end, 10);

		if (*end == '\0' && end != arg && i < st->n)
			set_rcpt(st, i, s, p ? p : "", when);
	}
}

void
msgstate_fold(struct msgstate *st, size_t nrcpts, const char *text,
    size_t len)
{
	size_t pos = 0;

	memset(st, 0, sizeof(*st));
	st->n = nrcpts;
	st->r = xcalloc(nrcpts, sizeof(*st->r));
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		char *line;

		if (nl == NULL)
			break;	/* a torn last line: the write never ended */
		line = xstrndup(text + pos, (size_t)(nl - text - pos));
		fold_line(st, line);
		free(line);
		pos = (size_t)(nl - text) + 1;
	}
}

void
msgstate_free(struct msgstate *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->r[i].reply);
	free(st->r);
	memset(st, 0, sizeof(*st));
}

long long
queue_age(const struct envelope *env, const struct msgstate *st, time_t now)
{
	long long age, held = st->held_secs;

	if (st->held && now > st->held_since)
		held += (long long)now - st->held_since;
	if (__builtin_sub_overflow((long long)now, (long long)env->queued,
	    &age) || __builtin_sub_overflow(age, held, &age) || age < 0)
		return 0;
	return age;
}

int
queue_state_read(struct queue *q, const char *id, const struct envelope *env,
    struct msgstate *st, struct err *e)
{
	char *path = xasprintf("%s/%s", q->state, id);
	int fd = safefile_open(path, O_RDONLY, 0, NULL, e);
	struct strbuf sb;

	sb_init(&sb);
	if (fd < 0 && e->code != ERR_NOINPUT) {
		free(path);
		return -1;	/* a link, a FIFO, not ours */
	}
	if (fd >= 0) {
		char chunk[8192];
		ssize_t r;

		while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				err_set(e, ERR_IOERR, "cannot read %s: %s",
				    path, strerror(errno));
				close(fd);
				sb_free(&sb);
				free(path);
				return -1;
			}
			sb_add(&sb, chunk, (size_t)r);
		}
		close(fd);
	}
	msgstate_fold(st, env->rcpts.n, sb.s ? sb.s : "", sb.len);
	sb_free(&sb);
	free(path);
	return 0;
}

int
queue_remove(struct queue *q, const char *id, struct err *e)
{
	char *m = xasprintf("%s/%s", q->msg, id);
	char *s = xasprintf("%s/%s", q->state, id);
	int rc = 0;

	if (unlink(m) < 0 && errno != ENOENT) {
		rc = err_set(e, ERR_IOERR, "cannot remove %s: %s", m,
		    strerror(errno));
		goto out;
	}
	crash_step(q->crash, "msg removed");
	if (util_fsync_dir(q->msg, e) < 0) {
		rc = -1;
		goto out;
	}
	if (unlink(s) < 0 && errno != ENOENT)
		rc = err_set(e, ERR_IOERR, "cannot remove %s: %s", s,
		    strerror(errno));
	crash_step(q->crash, "state removed");
out:
	free(m);
	free(s);
	return rc;
}

int
queue_remove_nosync(struct queue *q, const char *id, struct err *e)
{
	char *m = xasprintf("%s/%s", q->msg, id);
	int rc = 0;

	/* state/ID stays until the next run's orphan clean-up: it must not
	 * reach the disk as gone before msg/ID does */
	if (unlink(m) < 0 && errno != ENOENT)
		rc = err_set(e, ERR_IOERR, "cannot remove %s: %s", m,
		    strerror(errno));
	else
		crash_step(q->crash, "msg removed");
	free(m);
	return rc;
}

int
queue_clean_tmp(struct queue *q, time_t now, long max_age, int *removed,
    struct err *e)
{
	DIR *d = opendir(q->tmp);
	struct dirent *de;

	*removed = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : err_set(e, ERR_IOERR,
		    "cannot read %s: %s", q->tmp, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (now - st.st_mtime > max_age &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			(*removed)++;
	}
	closedir(d);
	return 0;
}

int
queue_clean_orphans(struct queue *q, int *removed, struct err *e)
{
	DIR *d = opendir(q->state);
	struct dirent *de;

	*removed = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : err_set(e, ERR_IOERR,
		    "cannot read %s: %s", q->state, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char *m;

		if (de->d_name[0] == '.')
			continue;

		m = xasprintf("%s/%s", q->msg, de->d_name);
		if (lstat(m, &st) != 0 && errno == ENOENT &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			(*removed)++;
		free(m);
	}
	closedir(d);
	return 0;
}
