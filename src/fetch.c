/* fetch.c - new mail from a server's Maildir over SFTP (see fetch.h). */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <libssh2_sftp.h>

#include "crash.h"
#include "fetch.h"
#include "sshconn.h"
#include "util.h"

#define BUFSZ	(1024 * 1024)	/* libssh2 pipelines reads of this size */
#define NAMEBUF	32768		/* a listed name, as the server sends it */

/* --- the pure rules ---------------------------------------------------- */

const char *
fetch_name_problem(const char *name, size_t len)
{
	if (len == 0)
		return "an empty name";
	if (len > 255)
		return "a name over 255 bytes";
	if (memchr(name, '\0', len) != NULL || strlen(name) != len)
		return "a NUL byte in the name";
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "a name that is a directory reference";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/')
			return "a '/' in the name";
		if (c < 0x20 || c == 0x7f)
			return "a control character in the name";
		if (c >= 0x80)	/* Maildir names are ASCII; C1 controls */
			return "a byte that is not ASCII in the name";
	}
	return NULL;
}

size_t
fetch_unique_len(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon != NULL ? (size_t)(colon - name) : strlen(name);
}

int
fetch_name_size(const char *name, uint64_t *size)
{
	size_t ulen = fetch_unique_len(name);
	const char *p = name;

	for (;;) {
		const char *s = memmem(p, ulen - (size_t)(p - name), ",S=", 3);
		uint64_t v = 0;
		int digits = 0;

		if (s == NULL)
			return 0;
		for (p = s + 3; p < name + ulen && *p >= '0' && *p <= '9'; p++) {
			if (v > (UINT64_MAX - 9) / 10)
				return 0;	/* absurd: no hint */
			v = v * 10 + (uint64_t)(*p - '0');
			digits++;
		}
		if (digits > 0 && (p == name + ulen || *p == ',')) {
			*size = v;
			return 1;
		}
		if (p >= name + ulen)
			return 0;
	}
}

bool
fetch_folder_wanted(const struct strvec *globs, const char *folder)
{
	for (size_t i = 0; i < globs->n; i++) {
		if (strcmp(globs->v[i], "INBOX") == 0) {
			if (strcmp(folder, "INBOX") == 0)
				return true;
			continue;
		}
		if (strcmp(folder, "INBOX") != 0 &&
		    fnmatch(globs->v[i], folder, 0) == 0)
			return true;
	}
	return false;
}

/* --- one job ------------------------------------------------------------ */

struct local_ent {
	char		*uniq;
	uint64_t	 size;
};

struct job {
	const struct config	*cfg;
	const struct fetch_job	*job;
	const struct fetch_opts	*o;
	struct log		*log;
	struct sshconn		 ssh;
	LIBSSH2_SFTP		*sftp;
	int			 lock_fd;
	int			 seen_fd;	/* copy mode: JOB.seen */
	struct strvec		 seen;		/* "FOLDER/UNIQUE", sorted */
	char			*buf;
	/* the folder at hand */
	const char		*folder;
	char			*rdir, *ldir;
	struct local_ent	*local;
	size_t			 nlocal, alocal;
	struct pend		*pend;		/* the batch: FETCH_BATCH */
	size_t			 npend;
	/* counts */
	unsigned long		 fetched, already, refused;
	struct crash		*crash;
	bool			 progress;	/* a terminal, not -v */
	bool			 progress_line;	/* one is on the screen */
};

/* On a terminal a long fetch shows how far it got, on one line. */
static void
progress(struct job *j)
{
	if (!j->progress)
		return;
	fprintf(stderr, "\rfetch: %s: %s: %lu fetched, %lu already here",
	    j->job->name, j->folder, j->fetched, j->already);
	j->progress_line = true;
}

static void
progress_end(struct job *j)
{
	if (j->progress_line)
		fputc('\n', stderr);
	j->progress_line = false;
}

static void
say(struct job *j, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line to the log; problems also to stderr (the user must hear). */
static void
say(struct job *j, int prio, const char *fmt, ...)
{
	char line[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(j->log, prio, "%s: %s", j->job->name, line);
	/* log_msg itself writes to stderr with -v or "log stderr" */
	if (prio <= LOG_WARNING && !j->log->verbose &&
	    j->log->kind != LOGTO_STDERR) {
		progress_end(j);
		util_sanitize(line);
		fprintf(stderr, "fetch: %s: %s\n", j->job->name, line);
	}
}

/* A server's name, printable, for messages. */
static void
shown(const char *name, size_t len, char *out, size_t outlen)
{
	snprintf(out, outlen, "%.*s", (int)(len > 255 ? 255 : len), name);
	util_sanitize_ascii(out);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmp_local(const void *a, const void *b)
{
	return strcmp(((const struct local_ent *)a)->uniq,
	    ((const struct local_ent *)b)->uniq);
}

static struct local_ent *
local_find(struct job *j, const char *name)
{
	size_t ulen = fetch_unique_len(name);
	char *u = xstrndup(name, ulen);
	struct local_ent key = { .uniq = u }, *hit = NULL;

	if (j->nlocal > 0)
		hit = bsearch(&key, j->local, j->nlocal, sizeof(key),
		    cmp_local);
	free(u);
	return hit;
}

static void
local_add(struct job *j, const char *name, uint64_t size)
{
	if (j->nlocal == j->alocal) {
		j->alocal = j->alocal ? j->alocal * 2 : 64;
		j->local = xrealloc(j->local, j->alocal * sizeof(*j->local));
	}
	j->local[j->nlocal].uniq = xstrndup(name, fetch_unique_len(name));
	j->local[j->nlocal].size = size;
	j->nlocal++;
}

/* Add in place, keeping the index sorted for local_find. */
static void
local_insert(struct job *j, const char *name, uint64_t size)
{
	size_t lo = 0, hi = j->nlocal;
	struct local_ent ent;

	local_add(j, name, size);	/* at the end, then moved in place */
	ent = j->local[j->nlocal - 1];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(j->local[mid].uniq, ent.uniq) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&j->local[lo + 1], &j->local[lo],
	    (j->nlocal - 1 - lo) * sizeof(*j->local));
	j->local[lo] = ent;
}

static void
local_free(struct job *j)
{
	for (size_t i = 0; i < j->nlocal; i++)
		free(j->local[i].uniq);
	free(j->local);
	j->local = NULL;
	j->nlocal = j->alocal = 0;
}

/* What the local folder holds (new/ and cur/), by unique name. */
static int
local_scan(struct job *j, struct err *e)
{
	static const char *const subs[] = { "new", "cur" };

	local_free(j);
	for (size_t s = 0; s < 2; s++) {
		char *dir = xasprintf("%s/%s", j->ldir, subs[s]);
		DIR *d = opendir(dir);
		struct dirent *de;

		if (d == NULL) {
			int saved = errno;

			free(dir);
			return err_set(e, err_from_errno(saved), "cannot read "
			    "%s/%s: %s", j->ldir, subs[s], strerror(saved));
		}
		while ((de = readdir(d)) != NULL) {
			struct stat st;

			if (de->d_name[0] == '.')
				continue;
			if (fstatat(dirfd(d), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
				local_add(j, de->d_name, (uint64_t)st.st_size);
		}
		closedir(d);
		free(dir);
	}
	if (j->nlocal > 1)
		qsort(j->local, j->nlocal, sizeof(*j->local), cmp_local);
	return 0;
}

static bool
seen(struct job *j, const char *name)
{
	char *key = xasprintf("%s/%.*s", j->folder,
	    (int)fetch_unique_len(name), name);
	bool hit = j->seen.n > 0 && bsearch(&key, j->seen.v, j->seen.n,
	    sizeof(char *), cmp_str) != NULL;

	free(key);
	return hit;
}

/* The state directory: beside the queue, "fetch/". */
static char *
state_dir(const struct config *cfg)
{
	char *q = xstrdup(cfg->queue);
	char *dir = xasprintf("%s/fetch", dirname(q));

	free(q);
	return dir;
}

static int
open_state(struct job *j, struct err *e)
{
	char *dir = state_dir(j->cfg), *path;
	int rc = 0;

	if (util_mkdir_p(dir, e) < 0) {
		free(dir);
		return -1;
	}
	path = xasprintf("%s/%s.lock", dir, j->job->name);
	j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->lock_fd < 0)
		rc = err_set(e, err_from_errno(errno), "cannot open %s: %s",
		    path, strerror(errno));
	else if (flock(j->lock_fd, LOCK_EX | LOCK_NB) < 0)
		rc = err_set(e, ERR_TEMPFAIL, "another fetch of job '%s' is "
		    "running (%s is locked); nothing was done",
		    j->job->name, path);
	free(path);
	if (rc == 0 && j->job->mode == FETCH_COPY) {
		struct strbuf sb;
		char chunk[65536];
		ssize_t r;

		path = xasprintf("%s/%s.seen", dir, j->job->name);
		j->seen_fd = open(path, O_RDWR | O_CREAT | O_APPEND |
		    O_CLOEXEC, 0600);
		if (j->seen_fd < 0)
			rc = err_set(e, err_from_errno(errno), "cannot open "
			    "%s: %s", path, strerror(errno));
		sb_init(&sb);
		while (rc == 0 && (r = pread(j->seen_fd, chunk, sizeof(chunk),
		    (off_t)sb.len)) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = err_set(e, ERR_IOERR, "cannot read %s: %s",
				    path, strerror(errno));
				break;
			}
			sb_add(&sb, chunk, (size_t)r);
		}
		/*
		 * Whole lines only: a line torn by a crash or a full disk is
		 * cut off, so the next name is not glued to it (and counts as
		 * not fetched: the local copy, if any, is found by name).
		 */
		if (rc == 0 && sb.len > 0 && sb.s[sb.len - 1] != '\n') {
			char *last = memrchr(sb.s, '\n', sb.len);
			size_t keep = last ? (size_t)(last - sb.s) + 1 : 0;

			if (ftruncate(j->seen_fd, (off_t)keep) < 0 ||
			    fsync(j->seen_fd) < 0)
				rc = err_set(e, err_from_errno(errno), "cannot "
				    "repair %s: %s", path, strerror(errno));
			sb.len = keep;
		}
		for (char *p = sb.s, *nl; rc == 0 && p != NULL &&
		    (nl = memchr(p, '\n', sb.len - (size_t)(p - sb.s))) != NULL;
		    p = nl + 1)
			sv_push_owned(&j->seen, xstrndup(p, (size_t)(nl - p)));
		if (j->seen.n > 1)
			qsort(j->seen.v, j->seen.n, sizeof(char *), cmp_str);
		sb_free(&sb);
		free(path);
	}
	free(dir);
	return rc;
}

static const char *
sftp_why(struct job *j)
{
	static const char *const names[] = {
		"ok", "end of file", "no such file", "permission denied",
		"failure", "bad message", "no connection", "connection lost",
		"operation unsupported",
	};
	unsigned long code;

	if (libssh2_session_last_errno(j->ssh.s) != LIBSSH2_ERROR_SFTP_PROTOCOL)
		return sshconn_errmsg(j->ssh.s);
	code = libssh2_sftp_last_error(j->sftp);
	return code < sizeof(names) / sizeof(names[0]) ? names[code] :
	    "SFTP error";
}

/* A file of the batch: downloaded (fd) or already here (fd -1). */
struct pend {
	char		*rpath;		/* on the server */
	char		*name;
	const char	*sub;		/* "new" or "cur", locally */
	int		 fd;		/* tmp/NAME, written, not yet synced */
	bool		 keep;		/* leave the server's copy alone */
};

static char *
local_path(struct job *j, const char *sub, const char *name)
{
	return xasprintf("%s/%s/%s", j->ldir, sub, name);
}

static void
pend_free(struct job *j)
{
	for (size_t i = 0; i < j->npend; i++) {
		struct pend *p = &j->pend[i];

		if (p->fd >= 0) {
			char *tmp = local_path(j, "tmp", p->name);

			close(p->fd);
			unlink(tmp);	/* not linked: the next run fetches */
			free(tmp);
		}
		free(p->rpath);
		free(p->name);
	}
	j->npend = 0;
}

/* sync and link the downloads of the batch. */
static int
commit_links(struct job *j, struct err *e)
{
	for (size_t i = 0; i < j->npend; i++) {
		struct pend *p = &j->pend[i];

		if (p->fd < 0)
			continue;
		/* one journal commit carries the batch: the first fsync
		 * writes them all, the others find little left to do */
		if (fsync(p->fd) < 0)
			return err_set(e, err_from_errno(errno), "cannot write "
			    "%s/tmp/%s: %s", j->ldir, p->name, strerror(errno));
		crash_step(j->crash, "downloaded into tmp/");
	}
	for (size_t i = 0; i < j->npend; i++) {
		struct pend *p = &j->pend[i];
		char *tmp, *dst;
		struct stat st;
		int rc = 0;

		if (p->fd < 0)
			continue;
		close(p->fd);
		p->fd = -1;
		tmp = local_path(j, "tmp", p->name);
		dst = local_path(j, p->sub, p->name);
		if (link(tmp, dst) == 0) {
			crash_step(j->crash, "linked into new/");
			log_msg(j->log, LOG_INFO, "%s: %s: %s fetched",
			    j->job->name, j->folder, p->name);
			j->fetched++;
		} else if (errno != EEXIST) {
			rc = err_set(e, err_from_errno(errno), "cannot link "
			    "%s: %s", dst, strerror(errno));
		} else {
			/* the name is here: the same message, or another */
			struct stat mine;

			if (stat(tmp, &mine) == 0 && lstat(dst, &st) == 0 &&
			    S_ISREG(st.st_mode) && st.st_size == mine.st_size) {
				log_msg(j->log, LOG_INFO, "%s: %s: %s already "
				    "here", j->job->name, j->folder, p->name);
				j->already++;
			} else {
				say(j, LOG_WARNING, "%s: a different %s/%s is "
				    "here already; left on the server",
				    p->rpath, p->sub, p->name);
				j->refused++;
				p->keep = true;
			}
		}
		unlink(tmp);
		free(tmp);
		free(dst);
		if (rc < 0) {
			p->keep = true;
			return -1;
		}
		progress(j);
	}
	return 0;
}

/*
 * The batch: sync and link the downloads, fsync the local directories,
 * then remove the server's copies (move) or record them (copy).
 */
static int
commit_pending(struct job *j, struct err *e)
{
	int rc = 0;

	if (j->npend == 0)
		return 0;
	if (commit_links(j, e) < 0) {
		pend_free(j);
		return -1;	/* nothing removed on the server */
	}
	{
		char *nd = xasprintf("%s/new", j->ldir);
		char *cd = xasprintf("%s/cur", j->ldir);

		rc = util_fsync_dir(nd, e) < 0 ||
		    util_fsync_dir(cd, e) < 0 ? -1 : 0;
		free(nd);
		free(cd);
		if (rc < 0) {
			pend_free(j);
			return -1;	/* nothing removed on the server */
		}
	}
	crash_step(j->crash, "local directories synced");
	if (j->job->mode == FETCH_MOVE) {
		for (size_t i = 0; i < j->npend && rc == 0; i++) {
			struct pend *p = &j->pend[i];

			if (p->keep)
				continue;
			if (libssh2_sftp_unlink(j->sftp, p->rpath) != 0 &&
			    !(libssh2_session_last_errno(j->ssh.s) ==
			    LIBSSH2_ERROR_SFTP_PROTOCOL &&
			    libssh2_sftp_last_error(j->sftp) ==
			    LIBSSH2_FX_NO_SUCH_FILE)) {
				say(j, LOG_WARNING, "%s: fetched, but cannot "
				    "remove it from the server: %s (the next "
				    "run removes it)", p->rpath, sftp_why(j));
				if (libssh2_session_last_errno(j->ssh.s) !=
				    LIBSSH2_ERROR_SFTP_PROTOCOL)
					rc = err_set(e, ERR_TEMPFAIL, "the SSH "
					    "connection to %s broke: %s",
					    j->job->ssh.host,
					    sshconn_errmsg(j->ssh.s));
			}
			crash_step(j->crash, "removed on the server");
		}
	} else {
		struct strbuf sb;

		sb_init(&sb);
		for (size_t i = 0; i < j->npend; i++)
			if (!j->pend[i].keep)
				sb_addf(&sb, "%s/%.*s\n", j->folder,
				    (int)fetch_unique_len(j->pend[i].name),
				    j->pend[i].name);
		if (sb.len > 0 && (util_write_all(j->seen_fd, sb.s,
		    sb.len) < 0 || fsync(j->seen_fd) < 0))
			rc = err_set(e, err_from_errno(errno), "cannot "
			    "record fetched names for job '%s': %s",
			    j->job->name, strerror(errno));
		sb_free(&sb);
		if (rc == 0)
			crash_step(j->crash, "fetched names recorded");
	}
	pend_free(j);
	return rc;
}

/* Is a download of this very name waiting in the batch? */
static bool
pending(const struct job *j, const char *name)
{
	for (size_t i = 0; i < j->npend; i++)
		if (j->pend[i].fd >= 0 && strcmp(j->pend[i].name, name) == 0)
			return true;
	return false;
}

/* Add to the batch; commit it when full. */
static int
pend_add(struct job *j, const char *rpath, const char *name,
    const char *sub, int fd, struct err *e)
{
	struct pend *p = &j->pend[j->npend++];

	p->rpath = xstrdup(rpath);
	p->name = xstrdup(name);
	p->sub = sub;
	p->fd = fd;
	p->keep = false;
	return j->npend == FETCH_BATCH ? commit_pending(j, e) : 0;
}

/*
 * Download rpath into tmp/NAME and check it; *fd is the written file
 * (the batch syncs and links it). 1 downloaded, 0 skipped (reported),
 * -1 stop the job.
 */
static int
download(struct job *j, const char *rpath, const char *name, uint64_t size,
    int *out, struct err *e)
{
	LIBSSH2_SFTP_HANDLE *h;
	LIBSSH2_SFTP_ATTRIBUTES a;
	char *tmp = local_path(j, "tmp", name);
	uint64_t got = 0, hint;
	int fd = -1, rc = -1;

	h = libssh2_sftp_open(j->sftp, rpath, LIBSSH2_FXF_READ, 0);
	if (h == NULL) {
		if (libssh2_session_last_errno(j->ssh.s) ==
		    LIBSSH2_ERROR_SFTP_PROTOCOL) {
			/* gone meanwhile (another client), or unreadable */
			say(j, LOG_WARNING, "%s: cannot open it on the "
			    "server: %s; left there", rpath, sftp_why(j));
			rc = 0;
		} else
			err_set(e, ERR_TEMPFAIL, "the SSH connection to %s "
			    "broke: %s", j->job->ssh.host,
			    sshconn_errmsg(j->ssh.s));
		goto out;
	}
	/* open follows symlinks: what was opened must be what was listed */
	if (libssh2_sftp_fstat(h, &a) != 0 ||
	    !(a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
	    !LIBSSH2_SFTP_S_ISREG(a.permissions) ||
	    !(a.flags & LIBSSH2_SFTP_ATTR_SIZE) || a.filesize != size) {
		say(j, LOG_WARNING, "%s: refused: it changed between listing "
		    "and opening (not the regular file of %" PRIu64 " bytes "
		    "listed); left on the server", rpath, size);
		j->refused++;
		rc = 0;
		goto out;
	}
	/*
	 * A fresh file: a tmp/NAME left by a run cut off after its link may
	 * be the delivered message itself, and must never be truncated.
	 */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		err_set(e, err_from_errno(errno), "cannot remove %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		err_set(e, err_from_errno(errno), "cannot create %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	for (;;) {
		/*
		 * libssh2 pipelines read requests for 4x the length asked:
		 * ask for what is left (plus one byte, to see the end or a
		 * file that grew), or a 4 KiB message costs ~140 requests.
		 */
		uint64_t left = size - got + 1;
		ssize_t n = libssh2_sftp_read(h, j->buf,
		    left < BUFSZ ? (size_t)left : BUFSZ);

		if (n == 0)
			break;
		if (n < 0) {
			err_set(e, ERR_TEMPFAIL, "reading %s from %s failed: "
			    "%s", rpath, j->job->ssh.host, sftp_why(j));
			goto out_unlink;
		}
		got += (uint64_t)n;
		if (got > size) {
			say(j, LOG_WARNING, "%s: refused: it grew while being "
			    "fetched; left on the server", rpath);
			j->refused++;
			rc = 0;
			goto out_unlink;
		}
		if (util_write_all(fd, j->buf, (size_t)n) < 0) {
			err_set(e, err_from_errno(errno), "cannot write %s: "
			    "%s", tmp, strerror(errno));
			goto out_unlink;
		}
	}
	if (got != size || (fetch_name_size(name, &hint) && hint != got)) {
		say(j, LOG_WARNING, "%s: refused: %" PRIu64 " bytes arrived, "
		    "the listing said %" PRIu64 "%s; left on the server", rpath,
		    got, size, got == size ? " but the name's S= differs" : "");
		j->refused++;
		rc = 0;
		goto out_unlink;
	}
	*out = fd;
	fd = -1;
	rc = 1;
	goto out;
out_unlink:
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	if (h != NULL)
		libssh2_sftp_close(h);
	free(tmp);
	return rc;
}

/* One listed file of the server's new/ or cur/. 0 go on, -1 stop. */
static int
one_file(struct job *j, const char *sub, const char *name, size_t len,
    const LIBSSH2_SFTP_ATTRIBUTES *a, struct err *e)
{
	char show[300], *rpath;
	const char *why = fetch_name_problem(name, len);
	const char *dst = strcmp(sub, "cur") == 0 &&
	    j->job->mode == FETCH_COPY ? "cur" : "new";
	struct local_ent *here;
	uint64_t hint;
	int rc = 0, fd = -1;

	if (len > 0 && name[0] == '.')
		return 0;	/* ".", "..", and not mail (Maildir) */
	shown(name, len, show, sizeof(show));
	if (why != NULL) {
		say(j, LOG_WARNING, "%s/%s/%s: refused: %s", j->rdir, sub,
		    show, why);
		j->refused++;
		return 0;
	}
	rpath = xasprintf("%s/%s/%s", j->rdir, sub, name);
	if (!(a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
	    !LIBSSH2_SFTP_S_ISREG(a->permissions)) {
		say(j, LOG_WARNING, "%s: refused: not a regular file%s", rpath,
		    (a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
		    LIBSSH2_SFTP_S_ISLNK(a->permissions) ?
		    " (a symbolic link, never followed)" : "");
		j->refused++;
		goto out;
	}
	if (!(a->flags & LIBSSH2_SFTP_ATTR_SIZE) ||
	    (j->cfg->max_size > 0 && a->filesize > j->cfg->max_size)) {
		say(j, LOG_WARNING, "%s: refused: %" PRIu64 " bytes is over "
		    "max-size (%" PRIu64 "); left on the server", rpath,
		    (uint64_t)a->filesize, j->cfg->max_size);
		j->refused++;
		goto out;
	}
	if (fetch_name_size(name, &hint) && hint != a->filesize) {
		say(j, LOG_WARNING, "%s: refused: %" PRIu64 " bytes, but its "
		    "name says S=%" PRIu64 "; left on the server", rpath,
		    (uint64_t)a->filesize, hint);
		j->refused++;
		goto out;
	}
	if (j->job->mode == FETCH_COPY && seen(j, name))
		goto out;
	here = local_find(j, name);
	if (here != NULL) {
		if (here->size != a->filesize) {
			say(j, LOG_WARNING, "%s: a different message of that "
			    "name is here already; left on the server", rpath);
			j->refused++;
			goto out;
		}
		if (j->o->dry_run) {
			printf("%s %s %s %" PRIu64 " already here\n",
			    j->job->name, j->folder, name,
			    (uint64_t)a->filesize);
			goto out;
		}
		log_msg(j->log, LOG_INFO, "%s: %s: %s already here%s",
		    j->job->name, j->folder, name,
		    j->job->mode == FETCH_MOVE ? ", removed from the server" :
		    "");
		if (!pending(j, name)) {
			/* a run cut off between link and unlink left it (not
			 * this batch's own download of the name) */
			char *tmp = local_path(j, "tmp", name);

			unlink(tmp);
			free(tmp);
		}
		j->already++;
		rc = pend_add(j, rpath, name, dst, -1, e);
		goto out;
	}
	if (j->o->dry_run) {
		printf("%s %s %s %" PRIu64 "\n", j->job->name, j->folder, name,
		    (uint64_t)a->filesize);
		goto out;
	}
	switch (download(j, rpath, name, (uint64_t)a->filesize, &fd, e)) {
	case -1:
		rc = -1;
		break;
	case 1:
		/* a second listing of the name (new/ and cur/) is here */
		local_insert(j, name, a->filesize);
		rc = pend_add(j, rpath, name, dst, fd, e);
		break;
	}
out:
	free(rpath);
	return rc;
}

/* A listed entry; the name may hold a NUL (a hostile server). */
struct dent {
	char			*name;
	size_t			 len;
	LIBSSH2_SFTP_ATTRIBUTES	 a;
};

static int
cmp_dent(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* List a server directory, sorted; each entry to fn. 0, or -1 with e. */
static int
list_dir(struct job *j, const char *path, bool missing_ok,
    int (*fn)(struct job *, const char *, size_t,
    const LIBSSH2_SFTP_ATTRIBUTES *, void *, struct err *), void *arg,
    struct err *e)
{
	LIBSSH2_SFTP_HANDLE *d = libssh2_sftp_opendir(j->sftp, path);
	char *name;
	struct dent *v = NULL;
	size_t n_ent = 0, cap = 0;
	int rc = 0;

	if (d == NULL) {
		if (missing_ok && libssh2_session_last_errno(j->ssh.s) ==
		    LIBSSH2_ERROR_SFTP_PROTOCOL &&
		    libssh2_sftp_last_error(j->sftp) == LIBSSH2_FX_NO_SUCH_FILE)
			return 0;
		return err_set(e, sshconn_class(j->ssh.s, ERR_PROTOCOL),
		    "cannot list %s on %s: %s",
		    path, j->job->ssh.host, sftp_why(j));
	}
	/* room for any name a server may send: a long one is refused by
	 * fetch_name_problem, not a listing that fails for ever */
	name = xmalloc(NAMEBUF);
	for (;;) {
		LIBSSH2_SFTP_ATTRIBUTES a;
		int n = libssh2_sftp_readdir_ex(d, name, NAMEBUF - 1, NULL, 0,
		    &a);

		if (n == 0)
			break;
		if (n < 0) {
			rc = err_set(e, ERR_TEMPFAIL, "listing %s on %s failed: "
			    "%s", path, j->job->ssh.host, sftp_why(j));
			break;
		}
		if (n_ent == FETCH_LIST_MAX) {
			say(j, LOG_WARNING, "%s holds more than %d entries; the "
			    "rest waits for the next run", path,
			    FETCH_LIST_MAX);
			break;
		}
		if (n_ent == cap) {
			cap = cap ? cap * 2 : 256;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n_ent].name = xmalloc((size_t)n + 1);	/* not strndup: */
		memcpy(v[n_ent].name, name, (size_t)n);	/* a NUL inside */
		v[n_ent].name[n] = '\0';			/* stays visible */
		v[n_ent].len = (size_t)n;
		v[n_ent].a = a;
		n_ent++;
	}
	libssh2_sftp_closedir(d);
	/* oldest first: Maildir names start with the delivery time */
	if (n_ent > 1)
		qsort(v, n_ent, sizeof(*v), cmp_dent);
	for (size_t i = 0; i < n_ent; i++) {
		if (rc == 0) {
			memcpy(name, v[i].name, v[i].len);
			name[v[i].len] = '\0';
			rc = fn(j, name, v[i].len, &v[i].a, arg, e);
		}
		free(v[i].name);
	}
	free(v);
	free(name);
	return rc;
}

static int
on_mail(struct job *j, const char *name, size_t len,
    const LIBSSH2_SFTP_ATTRIBUTES *a, void *arg, struct err *e)
{
	return one_file(j, arg, name, len, a, e);
}

static int
on_tmp(struct job *j, const char *name, size_t len,
    const LIBSSH2_SFTP_ATTRIBUTES *a, void *arg, struct err *e)
{
	char show[300];
	time_t now = time(NULL);

	(void)arg;
	(void)e;
	if (name[0] == '.' || !(a->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) ||
	    (time_t)a->mtime > now - FETCH_TMP_WARN)
		return 0;
	shown(name, len, show, sizeof(show));
	say(j, LOG_WARNING, "%s/tmp/%s has been on the server for %ld hours "
	    "(a delivery that never finished?); not fetched",
	    j->rdir, show, (long)(now - (time_t)a->mtime) / 3600);
	return 0;
}

static int
make_local(struct job *j, struct err *e)
{
	static const char *const subs[] = { "tmp", "new", "cur" };

	for (size_t i = 0; i < 3; i++) {
		char *d = xasprintf("%s/%s", j->ldir, subs[i]);
		int rc = util_mkdir_p(d, e);

		free(d);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int
do_folder(struct job *j, const char *folder, struct err *e)
{
	int rc = -1;

	j->folder = folder;
	if (strcmp(folder, "INBOX") == 0) {
		j->rdir = xstrdup(j->job->remote);
		j->ldir = xstrdup(j->job->local);
	} else {
		j->rdir = xasprintf("%s/%s", j->job->remote, folder);
		j->ldir = xasprintf("%s/%s", j->job->local, folder);
	}
	/* -n changes nothing here, not even a missing folder */
	if (!j->o->dry_run && make_local(j, e) < 0)
		goto out;
	if ((!j->o->dry_run || access(j->ldir, F_OK) == 0) &&
	    local_scan(j, e) < 0)
		goto out;
	{
		char *p = xasprintf("%s/new", j->rdir);

		rc = list_dir(j, p, false, on_mail, "new", e);
		free(p);
	}
	if (rc == 0 && j->job->mode == FETCH_COPY) {
		char *p = xasprintf("%s/cur", j->rdir);

		rc = list_dir(j, p, true, on_mail, "cur", e);
		free(p);
	}
	if (rc == 0) {
		char *p = xasprintf("%s/tmp", j->rdir);

		rc = list_dir(j, p, true, on_tmp, NULL, e);
		free(p);
	}
	/* what arrived is committed even when the listing broke off */
	if (commit_pending(j, rc == 0 ? e : &(struct err){ 0 }) < 0)
		rc = -1;
out:
	local_free(j);
	free(j->rdir);
	free(j->ldir);
	j->rdir = j->ldir = NULL;
	return rc;
}

static int
on_folder(struct job *j, const char *name, size_t len,
    const LIBSSH2_SFTP_ATTRIBUTES *a, void *arg, struct err *e)
{
	struct strvec *folders = arg;

	(void)e;
	if (name[0] != '.' || fetch_name_problem(name, len) != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	if (!(a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
	    !LIBSSH2_SFTP_S_ISDIR(a->permissions))
		return 0;	/* symlinked folders are not followed */
	if (fetch_folder_wanted(&j->job->folders, name))
		sv_push(folders, name);
	return 0;
}

static int
run_job(struct job *j, struct err *e)
{
	struct ssh_params p;
	struct strvec folders;
	int rc = 0;

	if (open_state(j, e) < 0)
		return -1;
	memset(&p, 0, sizeof(p));
	p.target = &j->job->ssh;
	p.key = j->job->ssh_key;
	p.known_hosts = j->job->ssh_known_hosts;
	p.fingerprint = j->job->ssh_fingerprint;
	p.connect_timeout = j->job->connect_timeout;
	p.timeout = j->job->timeout;
	p.verbose = j->o->verbose;
	p.prog = "fetch";
	if (sshconn_open(&p, &j->ssh, e) < 0)
		return -1;
	j->sftp = libssh2_sftp_init(j->ssh.s);
	if (j->sftp == NULL)
		return err_set(e, sshconn_class(j->ssh.s, ERR_PROTOCOL),
		    "%s offers no SFTP: %s",
		    j->job->ssh.host, sshconn_errmsg(j->ssh.s));
	sv_init(&folders);
	if (sv_contains(&j->job->folders, "INBOX"))
		sv_push(&folders, "INBOX");
	for (size_t i = 0; i < j->job->folders.n; i++)
		if (strcmp(j->job->folders.v[i], "INBOX") != 0) {
			rc = list_dir(j, j->job->remote, false, on_folder,
			    &folders, e);
			break;
		}
	/* INBOX first, then the folders in name order (list_dir sorts) */
	for (size_t i = 0; rc == 0 && i < folders.n; i++)
		rc = do_folder(j, folders.v[i], e);
	sv_free(&folders);
	progress_end(j);
	if (rc == 0 && (j->fetched || j->already || j->refused))
		log_msg(j->log, LOG_INFO, "%s: %lu fetched, %lu already here, "
		    "%lu refused", j->job->name, j->fetched, j->already,
		    j->refused);
	return rc;
}

static void
job_free(struct job *j)
{
	if (j->sftp != NULL)
		libssh2_sftp_shutdown(j->sftp);
	j->sftp = NULL;
	sshconn_close(&j->ssh);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	if (j->seen_fd >= 0)
		close(j->seen_fd);
	sv_free(&j->seen);
	pend_free(j);
	free(j->pend);
	free(j->buf);
}

/* Which error wins the exit code: a refusal over a deferral. */
static bool
worse(enum err_code a, enum err_code b)
{
	return b == ERR_OK || (b == ERR_TEMPFAIL && a != ERR_TEMPFAIL);
}

int
fetch_run(const struct config *cfg, const struct fetch_opts *o,
    struct log *log, struct err *e)
{
	struct err *errs = xcalloc(cfg->njobs + 1, sizeof(*errs));
	size_t nerrs = 0, pick = 0;
	struct crash crash;

	crash_init(&crash);
	if (cfg->njobs == 0) {
		free(errs);
		return err_set(e, ERR_CONFIG, "no fetch job in %s: add a "
		    "\"fetch NAME\" block (see postie.conf(5))",
		    cfg->path ? cfg->path : "the configuration");
	}
	for (size_t i = 0; i < o->jobs.n; i++) {
		bool found = false;

		for (size_t k = 0; k < cfg->njobs; k++)
			found = found || strcmp(cfg->jobs[k].name,
			    o->jobs.v[i]) == 0;
		if (!found) {
			free(errs);
			return err_set(e, ERR_USAGE, "no fetch job named '%s' "
			    "in %s", o->jobs.v[i], cfg->path ? cfg->path :
			    "the configuration");
		}
	}
	for (size_t k = 0; k < cfg->njobs; k++) {
		struct job j;
		struct err je = { 0 };

		if (o->jobs.n > 0 && !sv_contains(&o->jobs, cfg->jobs[k].name))
			continue;
		memset(&j, 0, sizeof(j));
		j.cfg = cfg;
		j.job = &cfg->jobs[k];
		j.o = o;
		j.log = log;
		j.crash = &crash;
		j.progress = isatty(STDERR_FILENO) && !o->verbose &&
		    !o->dry_run;
		j.lock_fd = j.seen_fd = -1;
		j.ssh.fd = -1;
		sv_init(&j.seen);
		j.pend = xcalloc(FETCH_BATCH, sizeof(*j.pend));
		j.buf = xmalloc(BUFSZ);
		if (run_job(&j, &je) < 0) {
			log_msg(log, LOG_ERR, "%s: %s", j.job->name, je.msg);
			errs[nerrs].code = je.code;
			snprintf(errs[nerrs].msg, sizeof(errs[nerrs].msg),
			    "job '%s': %.900s", j.job->name, je.msg);
			if (nerrs == 0 || worse(je.code, errs[pick].code))
				pick = nerrs;
			nerrs++;
		}
		job_free(&j);
	}
	/* every failed job is named; the worst one is the exit code (and
	 * main's line) */
	for (size_t i = 0; i < nerrs; i++)
		if (i != pick)
			fprintf(stderr, "fetch: %s\n", errs[i].msg);
	if (nerrs > 0)
		*e = errs[pick];
	free(errs);
	return nerrs > 0 ? -1 : 0;
}
