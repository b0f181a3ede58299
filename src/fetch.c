/* fetch.c - new mail from a server's Maildir over SFTP (see fetch.h): what
 * to take, the batch commit, the job; the transfer is fetchget.c. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>


#include "fetchhooks.h"
#include "fetchjob.h"
#include "fetchprog.h"
#include "stopsig.h"

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

/* Modified UTF-7 (RFC 3501): UTF-16 units of a run past ASCII in
 * base64 with ',' for '/', no padding, between '&' and '-'. */
static void
mutf7_run(struct strbuf *out, const unsigned char *s, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	    "qrstuvwxyz0123456789+,";
	unsigned long bits = 0;
	int nbits = 0;

	sb_addc(out, '&');
	for (size_t i = 0; i < n;) {
		unsigned long cp = s[i];
		int more = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : cp >= 0xc0 ? 1 : 0;
		unsigned units[2];
		int nu = 1;

		cp &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f :
		    0x7f;
		for (i++; more > 0 && i < n; more--, i++)
			cp = (cp << 6) | (s[i] & 0x3f);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[0] = 0xd800 | (unsigned)(cp >> 10);
			units[1] = 0xdc00 | (unsigned)(cp & 0x3ff);
			nu = 2;
		} else
			units[0] = (unsigned)cp;
		for (int u = 0; u < nu; u++) {
			bits = (bits << 16) | units[u];
			for (nbits += 16; nbits >= 6; nbits -= 6)
				sb_addc(out, b64[(bits >> (nbits - 6)) & 63]);
		}
	}
	if (nbits > 0)
		sb_addc(out, b64[(bits << (6 - nbits)) & 63]);
	sb_addc(out, '-');
}

/*
 * A glob as IMAP shows folders, made the server's directory name: a
 * leading "INBOX." or "INBOX/" (Courier shows every folder under INBOX)
 * dropped, "/" (Dovecot's separator when set to it) made ".", letters
 * past ASCII in modified UTF-7 as Dovecot and Courier store them
 * (German "Entwuerfe" with a u-umlaut is ".Entw&APw-rfe"), "&" as "&-". NULL when that is the
 * glob itself.
 */
static char *
imap_glob(const char *glob)
{
	const unsigned char *s = (const unsigned char *)glob;
	struct strbuf out;

	if (strncmp(glob, "INBOX.", 6) == 0 || strncmp(glob, "INBOX/", 6) == 0)
		s += 6;
	sb_init(&out);
	while (*s != '\0') {
		if (*s >= 0x80) {
			size_t n = 0;

			while (s[n] >= 0x80)
				n++;
			mutf7_run(&out, s, n);
			s += n;
			continue;
		}
		if (*s == '&')
			sb_adds(&out, "&-");
		else
			sb_addc(&out, *s == '/' ? '.' : (char)*s);
		s++;
	}
	if (out.s == NULL || strcmp(out.s, glob) == 0) {
		sb_free(&out);
		return NULL;
	}
	return out.s;	/* the strbuf's text, kept */
}

bool
fetch_glob_matches(const char *glob, const char *folder)
{
	char *disk;
	bool hit;

	if (strcmp(folder, "INBOX") == 0 || strcmp(glob, "INBOX") == 0)
		return fnmatch(glob, folder, 0) == 0 &&
		    strcmp(folder, "INBOX") == 0;
	if (fnmatch(glob, folder, 0) == 0)
		return true;
	/* "lists.*" is how IMAP shows the folder ".lists.*" */
	if (glob[0] != '.' && folder[0] == '.' &&
	    fnmatch(glob, folder + 1, 0) == 0)
		return true;
	/* "INBOX.lists.*", "lists/dev", "R&D", names past ASCII: as IMAP
	 * shows them */
	if (glob[0] == '.' || folder[0] != '.' || (disk = imap_glob(glob)) ==
	    NULL)
		return false;
	hit = fnmatch(disk, folder + 1, 0) == 0;
	free(disk);
	return hit;
}

bool
fetch_folder_wanted(const struct strvec *globs, const char *folder)
{
	for (size_t i = 0; i < globs->n; i++)
		if (fetch_glob_matches(globs->v[i], folder))
			return true;
	return false;
}

/* --- one job ------------------------------------------------------------ */

#define WINDOW_REQS	1024	/* requests in flight (5 a file) */
#define WINDOW_BYTES	(2 * 1024 * 1024)	/* READ bytes in flight */

#define PROGRESS_MS	100	/* the line is redrawn at most this often */

/*
 * On a terminal a long fetch shows how far it got, on one line: the
 * job's counts, which only grow, so a redraw covers the line before it
 * (a folder's name in it left the end of a longer one behind). Redrawn
 * at most every PROGRESS_MS (6000 messages wrote 1 MB to the terminal),
 * and once more at its end.
 */
static void
progress_draw(struct job *j)
{
	fprintf(stderr, "\rfetch: %s: %lu fetched, %lu already here",
	    j->job->name, j->fetched, j->already);
	j->progress_line = true;
	j->progress_shown = j->fetched + j->already;
	j->progress_at = util_mono_ms();
}

static void
progress(struct job *j)
{
	if (j->progress_fd >= 0)
		fetchprog_report(j->progress_fd, j->fetched, j->already);
	if (j->progress && (!j->progress_line ||
	    util_mono_ms() - j->progress_at >= PROGRESS_MS))
		progress_draw(j);
}

static void
progress_end(struct job *j)
{
	if (j->progress_line) {
		if (j->progress_shown != j->fetched + j->already)
			progress_draw(j);
		fputc('\n', stderr);
	}
	j->progress_line = false;
}

void
fetch_say(struct job *j, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line to the log; problems also to stderr (the user must hear). */
void
fetch_say(struct job *j, int prio, const char *fmt, ...)
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
void
fetch_shown(const char *name, size_t len, char *out, size_t outlen)
{
	snprintf(out, outlen, "%.*s", (int)(len > 255 ? 255 : len), name);
	util_sanitize_ascii(out);
}

int
fetch_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int unremoved_load(struct job *j, const char *dir, struct err *e);

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
	j->local[j->nlocal].planned = false;
	j->nlocal++;
}

/* A name planned for download, added in place, keeping the index sorted
 * for local_find. */
static void
local_plan(struct job *j, const char *name, uint64_t size)
{
	size_t lo = 0, hi = j->nlocal;
	struct local_ent ent;

	local_add(j, name, size);	/* at the end, then moved in place */
	j->local[j->nlocal - 1].planned = true;
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

/* Does a sorted set of "FOLDER/UNIQUE" hold the name (of the folder at
 * hand)? */
bool
fetch_in_set(const char *folder, const struct strvec *set, const char *name)
{
	char *key = xasprintf("%s/%.*s", folder,
	    (int)fetch_unique_len(name), name);
	bool hit = set->n > 0 && bsearch(&key, set->v, set->n,
	    sizeof(char *), fetch_cmp_str) != NULL;

	free(key);
	return hit;
}


/*
 * One run at a time writes into a local Maildir, whichever job it runs:
 * flock on the Maildir directory itself (the same directory under any
 * spelling or symlink). A run holding it is waited for, up to the job's
 * timeout.
 */
static int
lock_maildir(struct job *j, struct err *e)
{
	long waited = 0;

	if (util_mkdir_p(j->job->local, e) < 0)
		return -1;
	j->maildir_fd = open(j->job->local, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (j->maildir_fd < 0)
		return err_set(e, err_from_errno(errno), "cannot open %s: %s",
		    j->job->local, strerror(errno));
	while (flock(j->maildir_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return err_set(e, err_from_errno(errno), "cannot lock "
			    "%s: %s", j->job->local, strerror(errno));
		if (waited >= j->job->timeout * 10)
			return err_set(e, ERR_TEMPFAIL, "another fetch has been "
			    "writing into %s for %ld s; nothing was done, try "
			    "again later", j->job->local, j->job->timeout);
		usleep(100000);
		waited++;
	}
	return 0;
}

/*
 * Whole lines only: a line torn by a crash or a full disk is cut off, so
 * the next one is not glued to it (and counts as not written).
 */
int
fetch_journal_open(const char *path, int *fd, struct strvec *set,
    struct err *e)
{
	struct strbuf sb;
	char chunk[65536];
	ssize_t r;
	int rc = 0;

	*fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (*fd < 0)
		return err_set(e, err_from_errno(errno), "cannot open %s: %s",
		    path, strerror(errno));
	sb_init(&sb);
	while ((r = pread(*fd, chunk, sizeof(chunk), (off_t)sb.len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(e, ERR_IOERR, "cannot read %s: %s", path,
			    strerror(errno));
			break;
		}
		sb_add(&sb, chunk, (size_t)r);
	}
	if (rc == 0 && sb.len > 0 && sb.s[sb.len - 1] != '\n') {
		char *last = memrchr(sb.s, '\n', sb.len);
		size_t keep = last ? (size_t)(last - sb.s) + 1 : 0;

		if (ftruncate(*fd, (off_t)keep) < 0 || fsync(*fd) < 0)
			rc = err_set(e, err_from_errno(errno), "cannot repair "
			    "%s: %s", path, strerror(errno));
		sb.len = keep;
	}
	for (char *p = sb.s, *nl; rc == 0 && p != NULL &&
	    (nl = memchr(p, '\n', sb.len - (size_t)(p - sb.s))) != NULL;
	    p = nl + 1)
		sv_push_owned(set, xstrndup(p, (size_t)(nl - p)));
	if (set->n > 1)
		qsort(set->v, set->n, sizeof(char *), fetch_cmp_str);
	sb_free(&sb);
	return rc;
}

int
fetch_journal_add(int fd, const char *key, const char *path, struct err *e)
{
	char *line = xasprintf("%s\n", key);
	int rc = 0;

	if (util_write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
		rc = err_set(e, err_from_errno(errno), "cannot write %s: %s",
		    path, strerror(errno));
	free(line);
	return rc;
}

char *
fetch_key(const struct item *it)
{
	return xasprintf("%s/%.*s", it->f->name,
	    (int)fetch_unique_len(it->name), it->name);
}

static int
open_state(struct job *j, struct err *e)
{
	char *dir = fetch_state_dir(j->cfg), *path;
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
	if (rc == 0 && !j->o->dry_run && j->o->release == NULL)
		rc = lock_maildir(j, e);
	/* copy mode's record; read in move mode too when an earlier copy
	 * mode left it: what it fetched (and the user may have deleted
	 * locally since) is not fetched again when the mode changes */
	path = xasprintf("%s/%s.seen", dir, j->job->name);
	if (rc == 0 && (j->job->mode == FETCH_COPY || access(path, F_OK) == 0))
		rc = fetch_journal_open(path, &j->seen_fd, &j->seen, e);
	free(path);
	if (rc == 0)
		rc = fetchmda_open(j, dir, e);
	if (rc == 0)
		rc = fetchclaims_open(j, dir, e);
	/* (copy mode: keep's removes the server refused) */
	if (rc == 0)
		rc = unremoved_load(j, dir, e);
	free(dir);
	return rc;
}

/*
 * Move mode's JOB.unremoved: the messages fetched whose remove the
 * server refused, one "FOLDER/UNIQUE" a line. They are not fetched
 * again (the user may have deleted the local copy); each run tries the
 * remove again, quietly. Replaced whole (a temporary file renamed), so
 * it has no torn lines.
 */
static int
unremoved_load(struct job *j, const char *dir, struct err *e)
{
	char *path = xasprintf("%s/%s.unremoved", dir, j->job->name);
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL) {
		int saved = errno;

		free(path);
		return saved == ENOENT ? 0 : err_set(e, err_from_errno(saved),
		    "cannot read %s.unremoved: %s", j->job->name,
		    strerror(saved));
	}
	while ((n = getline(&line, &cap, f)) > 0)
		if (line[n - 1] == '\n' && n > 1)
			sv_push_owned(&j->unremoved, xstrndup(line,
			    (size_t)n - 1));
	free(line);
	fclose(f);
	free(path);
	if (j->unremoved.n > 1)
		qsort(j->unremoved.v, j->unremoved.n, sizeof(char *),
		    fetch_cmp_str);
	return 0;
}

/* Is the folder of a "FOLDER/UNIQUE" key one this run listed whole? */
bool
fetch_folder_listed(const struct job *j, const char *key)
{
	const char *slash = strrchr(key, '/');

	for (size_t i = 0; slash != NULL && i < j->nfolders; i++)
		if (!j->folders[i]->failed &&
		    strlen(j->folders[i]->name) == (size_t)(slash - key) &&
		    strncmp(j->folders[i]->name, key,
		    (size_t)(slash - key)) == 0)
			return true;
	return false;
}

/*
 * Write JOB.unremoved again: the refusals of this run, and the old
 * entries not tried this run (unless their folder was listed whole and
 * they were not in it: removed meanwhile).
 */
static int
unremoved_save(struct job *j, struct err *e)
{
	char *dir = fetch_state_dir(j->cfg);
	char *path = xasprintf("%s/%s.unremoved", dir, j->job->name);
	struct strbuf sb;
	int rc;

	sb_init(&sb);
	if (j->retried.n > 1)
		qsort(j->retried.v, j->retried.n, sizeof(char *),
		    fetch_cmp_str);
	for (size_t i = 0; i < j->unremoved.n; i++) {
		const char *k = j->unremoved.v[i];

		if ((j->failed || !fetch_folder_listed(j, k)) &&
		    (j->retried.n == 0 || bsearch(&k, j->retried.v,
		    j->retried.n, sizeof(char *), fetch_cmp_str) == NULL))
			sb_addf(&sb, "%s\n", k);
	}
	for (size_t i = 0; i < j->unremoved_now.n; i++)
		sb_addf(&sb, "%s\n", j->unremoved_now.v[i]);
	rc = fetch_state_write(dir, path, &sb, e);
	sb_free(&sb);
	free(path);
	free(dir);
	return rc;
}

int
fetch_state_write(const char *dir, const char *path, const struct strbuf *sb,
    struct err *e)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0 || util_write_all(fd, sb->s, sb->len) < 0 || fsync(fd) < 0 ||
	    rename(tmp, path) < 0)
		rc = err_set(e, err_from_errno(errno), "cannot write %s: %s",
		    path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	else
		rc = util_fsync_dir(dir, e);
	free(tmp);
	return rc;
}

/* Keep the first failure; later ones are consequences. */
int
fetch_fail(struct job *j, const struct err *e)
{
	if (!j->failed)
		j->err = *e;
	j->failed = true;
	return -1;
}

char *
fetch_local_path(const struct folder *f, const char *sub, const char *name)
{
	return xasprintf("%s/%s/%s", f->ldir, sub, name);
}

char *
fetch_remote_path(const struct item *it)
{
	return xasprintf("%s/%s/%s", it->f->rdir, it->sub, it->name);
}

/* --- what to take -------------------------------------------------------- */

/* The server's directory a message of sub is claimed from and given
 * back to: new/ or cur/ itself; for a claim, its name tells (":2,", the
 * info of a message seen, is cur/'s; Maildir keeps new/ names without). */
static const char *
claim_home(const char *sub, const char *name)
{
	if (strcmp(sub, "new") == 0 || strcmp(sub, "cur") == 0)
		return strcmp(sub, "new") == 0 ? "new" : "cur";
	return strstr(name, ":2,") != NULL ? "cur" : "new";
}

/* A new item at the end of j->items, which may move: no request may be
 * in flight for an item while items are added. */
static struct item *
item_add(struct job *j, struct folder *f, const char *sub, const char *dst,
    const char *name, uint64_t size, bool download)
{
	struct item *it;

	if (j->nitems == j->aitems) {
		j->aitems = j->aitems ? j->aitems * 2 : 64;
		j->items = xrealloc(j->items, j->aitems * sizeof(*j->items));
	}
	it = &j->items[j->nitems++];
	memset(it, 0, sizeof(*it));
	it->j = j;
	it->f = f;
	it->sub = sub;
	it->dst = dst;
	it->name = xstrdup(name);
	it->size = size;
	it->download = download;
	it->fd = -1;
	it->st = download ? IT_WAIT : IT_DONE;
	it->claimed = sub == j->csub;
	it->home = claim_home(sub, name);
	/* new/ and cur/ alike: two clients never both take a message */
	it->claim = download && j->job->mode == FETCH_MOVE &&
	    (strcmp(sub, "new") == 0 || strcmp(sub, "cur") == 0);
	it->linked = !download;	/* already here */
	if (download)
		it->tmp = xasprintf("%s/tmp/%sQ%zu%s", f->ldir, j->tmp_stem,
		    j->tmp_seq++, j->tmp_host);
	return it;
}

/*
 * As a listing of the server's new/ or cur/ arrives: is the entry one to
 * keep (1), or not (0: not mail, fetched before in copy mode, or refused,
 * said why and counted)? Only what may be taken is kept, so memory and
 * the listing cap (FETCH_LIST_MAX) count messages to take, not what the
 * server sends. name is NULL for a name over SFTP_NAME_MAX.
 */
int
fetch_listed(struct job *j, const struct folder *f, const char *sub,
    const char *name, size_t len, const struct sftp_attrs *a)
{
	char show[300];
	const char *why = name == NULL || len > 255 ? "a name over 255 "
	    "bytes" : fetch_name_problem(name, len);
	uint64_t hint;

	if (name != NULL && len > 0 && name[0] == '.')
		return 0;	/* ".", "..", and not mail (Maildir) */
	if (name != NULL && len <= 255)
		fetch_shown(name, len, show, sizeof(show));
	else
		snprintf(show, sizeof(show), "(a name of %zu bytes)", len);
	if (why == NULL && (!(a->flags & SFTP_ATTR_PERMISSIONS) ||
	    (a->perm & SFTP_S_IFMT) != SFTP_S_IFREG))
		why = (a->flags & SFTP_ATTR_PERMISSIONS) &&
		    (a->perm & SFTP_S_IFMT) == SFTP_S_IFLNK ? "not a regular "
		    "file (a symbolic link, never followed)" : "not a regular "
		    "file";
	if (why != NULL) {
		char size[40] = "";

		if (a->flags & SFTP_ATTR_SIZE)
			snprintf(size, sizeof(size), " (%" PRIu64 " bytes)",
			    a->size);
		fetch_say(j, LOG_WARNING, "%s/%s/%s: refused: %s%s", f->rdir,
		    sub, show, why, size);
	} else if ((a->flags & SFTP_ATTR_SIZE) && j->cfg->max_size > 0 &&
	    a->size > j->cfg->max_size) {
		fetch_say(j, LOG_WARNING, "%s/%s/%s: refused: %" PRIu64 " bytes "
		    "is over max-size (%" PRIu64 "); left on the server",
		    f->rdir, sub, show, a->size, j->cfg->max_size);
	} else if ((a->flags & SFTP_ATTR_SIZE) &&
	    fetch_name_size(name, &hint) && hint != a->size) {
		fetch_say(j, LOG_WARNING, "%s/%s/%s: refused: %" PRIu64 " bytes, "
		    "but its name says S=%" PRIu64 "; left on the server",
		    f->rdir, sub, show, a->size, hint);
	} else if (j->job->mode == FETCH_COPY && fetch_in_set(f->name, &j->seen,
	    name)) {
		/* fetched before: kept only to be removed (keep) */
		return fetchkeep_expired(j->job, f->name, name, a) ? 1 : 0;
	} else {
		return 1;
	}
	j->refused++;
	return 0;
}

/* Handed to the mda by a run cut off before the server's remove (its
 * line is in JOB.mda): removed now, never handed again. */
static void
plan_handed(struct job *j, struct folder *f, const char *sub,
    const char *dst, const struct dent *d)
{
	struct item *it;

	if (j->o->dry_run) {
		printf("%s %s %s %" PRIu64 " handed to the mda before, "
		    "removed\n", j->job->name, f->name, d->name, d->a.size);
		return;
	}
	it = item_add(j, f, sub, dst, d->name, d->a.size, false);
	it->handed = true;
	sv_push_owned(&j->handed_tried, fetch_key(it));
	log_msg(j->log, LOG_INFO, "%s: %s: %s (%" PRIu64 " bytes) was handed "
	    "to the mda by a run cut off; not again, removed from the server",
	    j->job->name, f->name, d->name, d->a.size);
}

/* Copy mode: fetched before (in JOB.seen) and older than its keep age
 * (fetch_listed kept it for that alone): its server copy goes. */
static void
plan_expired(struct job *j, struct folder *f, const char *sub,
    const char *dst, const struct dent *d)
{
	struct item *it;

	if (j->o->dry_run) {
		char why[100];

		fetchkeep_why(j->job, f->name, d->name, &d->a, why,
		    sizeof(why));
		printf("%s %s %s %" PRIu64 " fetched before, removed (%s)\n",
		    j->job->name, f->name, d->name, d->a.size, why);
		return;
	}
	it = item_add(j, f, sub, dst, d->name, d->a.size, false);
	it->recorded = it->expire = true;
	/* its remove refused before (JOB.unremoved): tried again quietly */
	if (fetch_in_set(f->name, &j->unremoved, d->name)) {
		it->retry_remove = true;
		sv_push_owned(&j->retried, xasprintf("%s/%.*s", f->name,
		    (int)fetch_unique_len(d->name), d->name));
	}
}

/* One kept entry of the server's new/ or cur/: skipped, or a message to
 * take. */
static void
plan_file(struct job *j, struct folder *f, const char *sub,
    const struct dent *d)
{
	char *rpath;
	/* cur/ keeps its flags; new/ goes to new/; a claim where it was
	 * taken from */
	const char *dst = claim_home(sub, d->name);
	const struct sftp_attrs *a = &d->a;
	struct local_ent *here;
	/* copy mode: removed on the server once fetched (keep)? */
	bool expire = j->job->mode == FETCH_COPY &&
	    fetchkeep_expired(j->job, f->name, d->name, a);
	char then[120] = "";

	if (expire) {
		char why[100];

		fetchkeep_why(j->job, f->name, d->name, a, why, sizeof(why));
		snprintf(then, sizeof(then), ", then removed (%s)", why);
	}
	rpath = xasprintf("%s/%s/%s", f->rdir, sub, d->name);
	if (j->job->mode == FETCH_MOVE &&
	    fetch_in_set(f->name, &j->unremoved, d->name)) {
		/* fetched before, its remove refused: not fetched again */
		if (!j->o->dry_run) {
			struct item *it = item_add(j, f, sub, dst, d->name,
			    a->size, false);

			it->retry_remove = true;
			sv_push_owned(&j->retried, xasprintf("%s/%.*s",
			    f->name, (int)fetch_unique_len(d->name), d->name));
		}
	} else if (j->job->mode == FETCH_MOVE && sub == j->csub &&
	    fetch_in_set(ANY_FOLDER, &j->unremoved, d->name)) {
		/* fetched before from another folder, whose claim was gone
		 * when removed: that folder was renamed to this one */
		if (!j->o->dry_run) {
			struct item *it = item_add(j, f, sub, dst, d->name,
			    a->size, false);

			it->retry_remove = true;
			sv_push_owned(&j->retried, xasprintf(ANY_FOLDER "/%.*s",
			    (int)fetch_unique_len(d->name), d->name));
			log_msg(j->log, LOG_INFO, "%s: %s: found again in this "
			    "client's claims, fetched before in a folder renamed "
			    "on the server since: removed, not fetched again",
			    j->job->name, rpath);
		}
	} else if (sub == j->csub && !fetchclaims_mine(j, d->name)) {
		/* in this client's claims, but not claimed by this job here:
		 * another fetcher's of the same client name, at work now */
		j->foreign++;
		log_msg(j->log, LOG_INFO, "%s: %s: not claimed by this job on "
		    "this machine: left alone", j->job->name, rpath);
	} else if (j->handed_fd >= 0 &&
	    fetch_in_set(f->name, &j->handed, d->name)) {
		plan_handed(j, f, sub, dst, d);
	} else if (j->job->mode == FETCH_COPY &&
	    fetch_in_set(f->name, &j->seen, d->name)) {
		plan_expired(j, f, sub, dst, d);
	} else if (j->job->mode == FETCH_MOVE && sub != j->csub &&
	    fetch_in_set(f->name, &j->seen, d->name)) {
		/* fetched by copy mode before (JOB.seen), perhaps deleted
		 * here since: move mode takes it off the server, not again */
		if (j->o->dry_run)
			printf("%s %s %s %" PRIu64 " fetched before (copy mode), "
			    "removed\n", j->job->name, f->name, d->name,
			    d->a.size);
		else {
			log_msg(j->log, LOG_INFO, "%s: %s: %s fetched before "
			    "(copy mode), removed from the server", j->job->name,
			    f->name, d->name);
			j->already++;
			item_add(j, f, sub, dst, d->name, d->a.size, false);
		}
	} else if (j->use_mda && local_find(j, d->name) != NULL) {
		;	/* listed twice (new/ and cur/): handed once */
	} else if ((here = local_find(j, d->name)) != NULL && here->planned) {
		/*
		 * Listed twice this run (new/ and cur/): a mail reader on the
		 * server moved it between the listings, or it is there
		 * twice. The first listing is fetched; this one is not
		 * "already here" until that download is, so it is left
		 * alone (not removed, not recorded): the next run finds it
		 * here, or fetches it if the first failed.
		 */
		log_msg(j->log, LOG_INFO, "%s: %s: %s: listed again in %s/ "
		    "while its first listing is fetched; left for the next "
		    "run", j->job->name, f->name, d->name, sub);
	} else if ((a->flags & SFTP_ATTR_SIZE) &&
	    (here = local_find(j, d->name)) != NULL) {
		/* (listed without a size: downloaded, then the link tells) */
		if (here->size != a->size) {
			fetch_say(j, LOG_WARNING, "%s: a different message of that "
			    "name is here already; left on the server%s", rpath,
			    sub == j->csub ? dst[0] == 'c' ? " (given back to "
			    "cur/)" : " (given back to new/)" : "");
			j->refused++;
			if (sub == j->csub && !j->o->dry_run) {
				struct item *it = item_add(j, f, sub, dst,
				    d->name, a->size, false);

				it->keep = true;	/* given back */
				it->linked = false;
			}
		} else if (j->o->dry_run) {
			printf("%s %s %s %" PRIu64 " already here%s\n",
			    j->job->name, f->name, d->name, a->size, then);
		} else {
			struct item *it = item_add(j, f, sub, dst, d->name,
			    a->size, false);

			/* move mode says it when the remove is done (a run
			 * cut off before it said "removed" all the same) */
			if (j->job->mode != FETCH_MOVE)
				log_msg(j->log, LOG_INFO, "%s: %s: %s already "
				    "here (%" PRIu64 " bytes)", j->job->name,
				    f->name, d->name, a->size);
			j->already++;
			it->expire = expire;
			it->already = true;
		}
	} else if (j->o->dry_run) {
		printf("%s %s %s %" PRIu64 "%s%s\n", j->job->name, f->name,
		    d->name, a->size, sub == j->csub ? " claimed" : "", then);
	} else {
		struct item *it;

		/* a second listing of the name (new/ and cur/) waits */
		if (local_find(j, d->name) == NULL)
			local_plan(j, d->name, a->size);
		it = item_add(j, f, sub, dst, d->name, a->size, true);
		it->mtime = a->flags & SFTP_ATTR_ACMODTIME ?
		    (int64_t)a->mtime : -1;
		it->expire = expire;
		it->unsized = !(a->flags & SFTP_ATTR_SIZE);
		if (it->unsized)
			it->size = 0;
	}
	free(rpath);
}

static void
plan_tmp(struct job *j, struct folder *f, const struct dent *d)
{
	char show[300];
	time_t now = time(NULL);

	if (d->name == NULL || d->name[0] == '.' ||
	    !(d->a.flags & SFTP_ATTR_ACMODTIME) ||
	    (time_t)d->a.mtime > now - FETCH_TMP_WARN)
		return;
	fetch_shown(d->name, d->len, show, sizeof(show));
	fetch_say(j, LOG_WARNING, "%s/tmp/%s has been on the server for %ld hours "
	    "(a delivery that never finished?); not fetched",
	    f->rdir, show, (long)(now - (time_t)d->a.mtime) / 3600);
}

static int
make_local(const struct folder *f, struct err *e)
{
	static const char *const subs[] = { "tmp", "new", "cur" };

	for (size_t i = 0; i < 3; i++) {
		char *d = xasprintf("%s/%s", f->ldir, subs[i]);
		int rc = util_mkdir_p(d, e);

		free(d);
		if (rc < 0)
			return -1;
	}
	return 0;
}

void
fetch_locals_early(struct job *j)
{
	const unsigned char *p;
	struct err e;

	if (j->o->dry_run || j->use_mda || j->o->release != NULL ||
	    j->chan.wlen > 0 || sftp_out(j->chan.p, &p) > 0)
		return;
	for (size_t i = 0; i < j->nfolders; i++) {
		struct folder *f = j->folders[i];

		if (!f->local_made && !f->failed)
			f->local_made = make_local(f, &e) == 0;
	}
}

/* Remove what runs of this host that were cut off left in tmp/ (only
 * its own names: an MDA may be writing there). The Maildir is locked. */
static void
sweep_tmp(struct job *j, const struct folder *f)
{
	char *dir = xasprintf("%s/tmp", f->ldir);
	size_t hl = strlen(j->tmp_host);
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n > hl && strcmp(de->d_name + n - hl, j->tmp_host) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
}

/* Another client's claims that nobody touched for a week. */
struct stale {
	const char	*folder;
	char		*client;
	long		 days;
	struct listing	*l;
};

/* Note the claim directories of other clients untouched for a week:
 * their contents are listed (stale_report). */
static void
stale_find(struct job *j, struct folder *f, struct stale **v, size_t *n)
{
	const struct listing *l = f->lists[L_CLAIMS];
	time_t now = time(NULL);

	for (size_t k = 0; l != NULL && k < l->n; k++) {
		const struct dent *d = &l->v[k];
		char *path;

		if (d->name == NULL || d->name[0] == '.' ||
		    fetch_name_problem(d->name, d->len) != NULL ||
		    strcmp(d->name, j->job->client) == 0 ||
		    !(d->a.flags & SFTP_ATTR_PERMISSIONS) ||
		    (d->a.perm & SFTP_S_IFMT) != SFTP_S_IFDIR ||
		    !(d->a.flags & SFTP_ATTR_ACMODTIME) ||
		    (time_t)d->a.mtime > now - CLAIM_STALE)
			continue;
		*v = xrealloc(*v, (*n + 1) * sizeof(**v));
		path = xasprintf("%s/" CLAIMS_DIR "/%s", f->rdir, d->name);
		(*v)[*n].folder = f->name;
		(*v)[*n].client = xstrdup(d->name);
		(*v)[*n].days = (long)(now - (time_t)d->a.mtime) / 86400;
		(*v)[*n].l = fetchget_list_dir(j, path);
		(*n)++;
		free(path);
	}
}

/* One line per client and folder whose claims have waited over a week
 * (a client that never came back would hide that mail for ever). */
static void
stale_report(struct job *j, struct stale *v, size_t n)
{
	struct err e;

	/* after a failure the engine calls back no more: free them all */
	while (j->listing > 0 && !j->failed)
		if (sftp_chan_wait(&j->chan, &e) < 0)
			fetch_fail(j, &e);
	for (size_t i = 0; i < n; i++) {
		size_t count = 0;

		for (size_t k = 0; k < v[i].l->n; k++)
			if (v[i].l->v[k].name != NULL &&
			    v[i].l->v[k].name[0] != '.')
				count++;
		if (count > 0 && v[i].l->done)
			fetch_say(j, LOG_WARNING, "%s: %zu message%s claimed "
			    "by client '%s', untouched for %ld days; if that "
			    "client is gone, 'fetch --release %s %s' gives "
			    "them back to new/", v[i].folder, count,
			    count == 1 ? "" : "s", v[i].client, v[i].days,
			    v[i].client, j->job->name);
		free(v[i].client);
		fetchget_listing_free(v[i].l);
	}
	free(v);
}

/* Decide, folder by folder (INBOX first, then by name), what to take. */
static int
plan_all(struct job *j)
{
	/* this client's claims last: a run cut off left them, and one it
	 * could not finish (a large message a slow link cannot bring
	 * within the deadline) would come first again every run, and every
	 * message behind it, downloaded, would be dropped at the deadline */
	static const int order[] = { L_NEW, L_CUR, L_CLAIMED };
	struct stale *stale = NULL;
	size_t nstale = 0;
	struct err e;

	for (size_t i = 0; i < j->nfolders && !j->failed; i++) {
		struct folder *f = j->folders[i];

		if (f->failed)
			continue;
		if (j->use_mda) {
			/* every folder's downloads wait in local's tmp/ */
			free(f->ldir);
			f->ldir = xstrdup(j->job->local);
		}
		j->folder = f->name;
		j->ldir = f->ldir;
		/* -n changes nothing here, not even a missing folder; with
		 * an mda nothing local says what was fetched */
		if ((!j->o->dry_run && !f->local_made &&
		    make_local(f, &e) < 0) ||
		    (!j->use_mda && (!j->o->dry_run ||
		    access(f->ldir, F_OK) == 0) && local_scan(j, &e) < 0)) {
			fetch_fail(j, &e);
			break;
		}
		if (!j->o->dry_run)
			sweep_tmp(j, f);
		for (size_t s = 0; s < 3; s++) {
			struct listing *l = f->lists[order[s]];

			for (size_t k = 0; l != NULL && k < l->n; k++)
				plan_file(j, f, l->sub, &l->v[k]);
		}
		for (size_t k = 0; f->lists[L_TMP] && k < f->lists[L_TMP]->n;
		    k++)
			plan_tmp(j, f, &f->lists[L_TMP]->v[k]);
		if (f->lists[L_CUR] != NULL && f->lists[L_CUR]->counted > 0)
			fetch_say(j, LOG_WARNING, "%s/cur holds %lu message%s "
			    "(seen by a mail reader on the server) that move "
			    "mode leaves there; \"take new cur\" fetches them "
			    "too", f->rdir, f->lists[L_CUR]->counted,
			    f->lists[L_CUR]->counted == 1 ? "" : "s");
		stale_find(j, f, &stale, &nstale);
		local_free(j);
		/* this client's claim directory listed: no MKDIR for it */
		if (f->lists[L_CLAIMED] != NULL && f->lists[L_CLAIMED]->done &&
		    !f->lists[L_CLAIMED]->missing)
			f->claims_made = true;
		for (size_t s = 0; s < L_N; s++) {
			fetchget_listing_free(f->lists[s]);
			f->lists[s] = NULL;
		}
	}
	stale_report(j, stale, nstale);
	return j->failed ? -1 : 0;
}

/* --- claims: a message is this client's before it is downloaded -------- */

static char *
claim_path(const struct item *it, const char *sub)
{
	return xasprintf("%s/%s/%s", it->f->rdir, sub, it->name);
}

static int
on_given_back(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;

	(void)e;
	if (r->status == SFTP_FX_OK) {
		it->returned = true;
		log_msg(it->j->log, LOG_INFO, "%s: %s: %s given back to %s/ on "
		    "the server (claimed by '%s')", it->j->job->name,
		    it->f->name, it->name, it->home, it->j->csub +
		    sizeof(CLAIMS_DIR));
		it->j->released++;
	} else if (it->j->o->release != NULL) {
		char why[300], *rpath = fetch_remote_path(it);

		/* given up by hand: nobody's next run finishes it */
		fetchget_status(r, why, sizeof(why));
		fetch_say(it->j, LOG_ERR, "%s: cannot give it back to %s/: %s%s; "
		    "it stays where it is: look at it on the server", rpath,
		    it->home, why, r->status == SFTP_FX_FAILURE ? " (a file of "
		    "that name there already?)" : "");
		free(rpath);
		it->j->unreleased++;
	} else {
		char why[300], *rpath = fetch_remote_path(it);

		fetchget_status(r, why, sizeof(why));
		fetch_say(it->j, LOG_WARNING, "%s: cannot give it back to %s/: "
		    "%s; it stays claimed, for the next run of client '%s'",
		    rpath, it->home, why, it->j->csub + sizeof(CLAIMS_DIR));
		free(rpath);
	}
	return 0;
}

/* A claimed message not taken goes back to the server's new/, for any
 * client (a link that broke leaves it claimed: this client's next run
 * finishes it). */
static void
give_back(struct item *it)
{
	struct job *j = it->j;
	char *from, *to;

	if (!it->claimed || it->linked || it->given_back || j->chan.broken)
		return;
	it->given_back = true;
	from = claim_path(it, j->csub);
	to = claim_path(it, it->home);
	sftp_rename(j->chan.p, from, to, on_given_back, it);
	free(from);
	free(to);
}

static void
give_back_range(struct job *j, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		struct item *it = &j->items[i];

		if (it->st == IT_SKIP || (it->st == IT_DONE && it->keep))
			give_back(it);
	}
}

static int
on_claimed(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;
	struct job *j = it->j;
	char why[300], *rpath;

	(void)e;
	if (r->status == SFTP_FX_OK) {
		it->claimed = true;
		it->sub = j->csub;
		crash_step(j->crash, "claimed on the server");
		if (it->st == IT_CLAIM && !j->failed)
			fetchget_claimed(it);
		else {
			fetchget_unclaimed(it);
			it->st = IT_SKIP;	/* dropped meanwhile */
			give_back(it);
		}
		return 0;
	}
	it->claim_refused = true;
	fetchget_unclaimed(it);
	if (it->st == IT_CLAIM)
		it->st = IT_SKIP;
	if (it->f->failed)
		return 0;	/* its claim directory could not be made */
	if (r->status == SFTP_FX_NO_SUCH_FILE) {
		/* another client renamed it first, or a mail reader on the
		 * server moved it (new/ to cur/) or removed it */
		log_msg(j->log, LOG_INFO, "%s: %s: %s gone before it could be "
		    "claimed (another client took it, or a mail reader on the "
		    "server moved or removed it); not fetched", j->job->name,
		    it->f->name, it->name);
		j->taken++;
		return 0;
	}
	fetchget_status(r, why, sizeof(why));
	rpath = claim_path(it, it->home);
	/* a full disk or a quota on the server refuses every claim alike:
	 * the first few said, the rest logged, one summary at the end */
	if (j->claim_failed++ < CLAIM_FAILS_SAID)
		fetch_say(j, LOG_WARNING, "%s: cannot claim it on the server: "
		    "%s; left in %s/", rpath, why, it->home);
	else
		log_msg(j->log, LOG_WARNING, "%s: %s: cannot claim it on the "
		    "server: %s; left in %s/", j->job->name, rpath, why,
		    it->home);
	if (j->claim_failed == 1)
		snprintf(j->claim_why, sizeof(j->claim_why), "%s", why);
	free(rpath);
	return 0;
}

/* RENAME new/NAME or cur/NAME to this client's claims, and right behind
 * it the OPEN of the claimed path: one round trip for both, many in
 * flight. A message that does not fit the local disk is not claimed. */
static void
claim_start(struct item *it)
{
	char *from = claim_path(it, it->home);
	char *to = claim_path(it, it->j->csub);

	if (fetchget_fits(it)) {
		it->st = IT_CLAIM;
		it->claim_sent = true;
		sftp_rename(it->j->chan.p, from, to, on_claimed, it);
		fetchget_claim_open(it);
	}
	free(from);
	free(to);
}

void
fetch_folder_left(struct job *j, struct folder *f, enum err_code code,
    const char *fmt, ...)
{
	char what[600];
	va_list ap;

	if (f->failed)
		return;		/* said already */
	f->failed = true;	/* its claims and listings end quietly */
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fetch_say(j, LOG_WARNING, "%s; folder %s is left for a later run, the "
	    "others go on", what, f->name);
	if (j->folders_left++ == 0)
		j->folders_left_code = code;
}

/* The reply to the MKDIR of a folder's postie-claims/: kept, since the
 * MKDIR of this client's directory in it then fails for want of it. */
static int
on_claims_top(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct folder *f = arg;

	(void)e;
	f->top_status = (int)r->status;
	return 0;
}

static int
on_claims_made(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;	/* the folder's first claim */
	struct folder *f = it->f;
	struct job *j = it->j;
	/* no postie-claims/ to make it in: that MKDIR's refusal says why */
	bool top_failed = r->status == SFTP_FX_NO_SUCH_FILE &&
	    f->top_status > (int)SFTP_FX_OK;
	int st = top_failed ? f->top_status : (int)r->status;
	char why[300];

	(void)e;
	/* OpenSSH says FAILURE for a directory that is there already (and
	 * for a disk full, which the claim's RENAME then meets) */
	if (r->status == SFTP_FX_OK || r->status == SFTP_FX_FAILURE)
		return 0;
	if (top_failed)
		snprintf(why, sizeof(why), "the server could not make "
		    CLAIMS_DIR "/ there%s", st == SFTP_FX_PERMISSION_DENIED ?
		    "" : " (its disk full? a quota?)");
	else
		fetchget_status(r, why, sizeof(why));
	if (st == SFTP_FX_PERMISSION_DENIED)
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "; move "
		    "mode renames and removes on the server: a folder, or a "
		    "server, read-only to this user can only be fetched with "
		    "mode copy");
	fetch_folder_left(j, f, st == SFTP_FX_PERMISSION_DENIED ? ERR_NOPERM :
	    ERR_TEMPFAIL, "cannot make the claim directory %s/%s on %s: %s",
	    f->rdir, j->csub, j->job->ssh.host, why);
	return 0;
}

/* The LSTAT after the MKDIRs: this client's claim directory is there
 * (made, or there already), or the folder is left. */
static int
on_claims_there(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;
	struct job *j = it->j;

	(void)e;
	if (r->type == SFTP_ATTRS && !sftp_reply_not_dir(r))
		return 0;
	fetch_folder_left(j, it->f, ERR_TEMPFAIL, "cannot make the claim "
	    "directory %s/%s on %s: the server could not make it (its disk "
	    "full? a quota?)", it->f->rdir, j->csub, j->job->ssh.host);
	return 0;
}

/* Wait for every request still out; -1 when the link failed. */
static int
drain(struct job *j)
{
	while (!j->chan.broken && sftp_busy(j->chan.p) > 0)
		if (fetchget_wait(j) < 0)
			return -1;
	return 0;
}

/*
 * The claim directories of the folders with mail to claim
 * (FOLDER/postie-claims/CLIENT, 0700) are made where the listing found
 * them missing. The MKDIRs go out ahead of the claims, not waited for:
 * the server works through requests in order, so a claim's RENAME comes
 * after them. One that fails leaves its folder (on_claims_made), whose
 * claims then fail quietly, never taken for another client's wins.
 */
static void
claims_prepare(struct job *j)
{
	for (size_t i = 0; i < j->nitems; i++) {
		struct folder *f = j->items[i].f;
		char *top, *mine;

		if (!j->items[i].claim || f->claims_made)
			continue;	/* (listed there already: plan_all) */
		f->claims_made = true;
		top = xasprintf("%s/" CLAIMS_DIR, f->rdir);
		mine = xasprintf("%s/%s", f->rdir, j->csub);
		f->top_status = -1;
		sftp_mkdir(j->chan.p, top, 0700, on_claims_top, f);
		sftp_mkdir(j->chan.p, mine, 0700, on_claims_made,
		    &j->items[i]);
		/* FAILURE is OpenSSH's "there already" and its "disk full"
		 * alike: whether it is there now says which */
		sftp_lstat(j->chan.p, mine, on_claims_there, &j->items[i]);
		free(top);
		free(mine);
	}
}

/* --- the commit: a batch made durable, then removed on the server ------- */

static int
on_removed(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;

	(void)e;
	it->removed = true;	/* or in JOB.unremoved */
	if (r->status != SFTP_FX_OK && r->status != SFTP_FX_NO_SUCH_FILE) {
		struct job *j = it->j;
		char why[300], *rpath = fetch_remote_path(it);

		fetchget_status(r, why, sizeof(why));
		/* said once; remembered, so it is not fetched again */
		if (it->retry_remove)
			log_msg(j->log, LOG_INFO, "%s: %s: still cannot remove "
			    "it from the server: %s", j->job->name, rpath, why);
		else
			fetch_say(j, LOG_ERR, "%s: fetched, but the server "
			    "refused to remove it: %s; it stays there and is "
			    "not fetched again (each run tries the remove "
			    "again, quietly)", rpath, why);
		j->remove_refused += !it->retry_remove;
		sv_push_owned(&j->unremoved_now, xasprintf("%s/%.*s",
		    it->f->name, (int)fetch_unique_len(it->name), it->name));
		free(rpath);
	} else if (r->status == SFTP_FX_NO_SUCH_FILE && it->sub == it->j->csub &&
	    !it->retry_remove) {
		struct job *j = it->j;
		char *rpath = fetch_remote_path(it);

		/*
		 * Fetched, and this client's claim gone when removed: removed
		 * on the server, or its folder renamed meanwhile, which takes
		 * the claim along. Remembered for any folder, so a claim of
		 * that name turning up is removed, never fetched a second
		 * time (JOB.unremoved, folder "*").
		 */
		log_msg(j->log, LOG_INFO, "%s: %s: fetched; its claim was gone "
		    "when removed (removed on the server, or the folder "
		    "renamed): if it turns up in another folder's claims, it "
		    "is removed there, not fetched again", j->job->name,
		    rpath);
		sv_push_owned(&j->unremoved_now, xasprintf(ANY_FOLDER "/%.*s",
		    (int)fetch_unique_len(it->name), it->name));
		free(rpath);
	} else if (it->retry_remove) {
		char *rpath = fetch_remote_path(it);

		log_msg(it->j->log, LOG_INFO, "%s: %s: removed from the server "
		    "at last", it->j->job->name, rpath);
		free(rpath);
	} else if (it->already && r->status == SFTP_FX_OK)
		log_msg(it->j->log, LOG_INFO, "%s: %s: %s already here, removed "
		    "from the server (%" PRIu64 " bytes)", it->j->job->name,
		    it->f->name, it->name, it->size);
	crash_step(it->j->crash, "removed on the server");
	return 0;
}

/* The same name is here: the same message, or another? */
static void
link_exists(struct job *j, struct item *it, const char *dst)
{
	struct stat st, mine;

	if (stat(it->tmp, &mine) == 0 && lstat(dst, &st) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size == mine.st_size) {
		log_msg(j->log, LOG_INFO, "%s: %s: %s already here",
		    j->job->name, it->f->name, it->name);
		j->already++;
		it->linked = true;
	} else {
		char *rpath = fetch_remote_path(it);

		fetch_say(j, LOG_WARNING, "%s: a different %s/%s is here already; "
		    "left on the server%s", rpath, it->dst, it->name,
		    it->claimed ? " (given back to new/)" : "");
		free(rpath);
		j->refused++;
		it->keep = true;
	}
}

int
fetch_sync_downloads(struct job *j, size_t from, size_t to, struct err *e)
{
	/* the batch's writes go to the disk together first: without a
	 * journal (or with one that commits per file) each fsync would
	 * otherwise wait for its own data, one file after another */
	for (size_t i = from; i < to; i++)
		if (j->items[i].st == IT_DONE && j->items[i].fd >= 0)
			(void)sync_file_range(j->items[i].fd, 0, 0,
			    SYNC_FILE_RANGE_WRITE);	/* fsync says errors */
	for (size_t i = from; i < to; i++) {
		struct item *it = &j->items[i];

		if (it->st != IT_DONE || it->fd < 0)
			continue;
		if (fsync(it->fd) < 0)
			return err_set(e, err_from_errno(errno), "cannot write "
			    "%s: %s", it->tmp, strerror(errno));
		crash_step(j->crash, "downloaded into tmp/");
	}
	return 0;
}

/*
 * Move the download tmp to dst, never over a file there (EEXIST then):
 * one rename(RENAME_NOREPLACE), or, where the file system lacks it
 * (EINVAL), link and unlink, as Maildir's rule has it. Either way dst
 * is never rewritten and a crash leaves at most the tmp/ name, which a
 * later run removes.
 */
static int
take_in(const char *tmp, const char *dst)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL)
		return -1;
	if (link(tmp, dst) < 0)
		return -1;
	unlink(tmp);
	return 0;
}

/* sync (unless fetchsync did) and take in the downloads of items
 * [from, to). */
static int
commit_links(struct job *j, size_t from, size_t to, bool synced,
    struct err *e)
{
	if (!synced && fetch_sync_downloads(j, from, to, e) < 0)
		return -1;
	for (size_t i = from; i < to; i++) {
		struct item *it = &j->items[i];
		char *dst;
		int rc = 0;

		if (it->st != IT_DONE || it->fd < 0)
			continue;
		close(it->fd);
		it->fd = -1;
		dst = fetch_local_path(it->f, it->dst, it->name);
		it->f->touched = true;
		j->folder = it->f->name;
		if (take_in(it->tmp, dst) == 0) {
			it->linked = true;
			crash_step(j->crash, "linked into new/");
			log_msg(j->log, LOG_INFO, "%s: %s: %s fetched (%"
			    PRIu64 " bytes)", j->job->name, it->f->name,
			    it->name, it->size);
			j->fetched++;
		} else if (errno != EEXIST) {
			rc = err_set(e, err_from_errno(errno), "cannot link "
			    "%s: %s", dst, strerror(errno));
		} else {
			link_exists(j, it, dst);
		}
		if (!it->linked)
			unlink(it->tmp);
		free(dst);
		if (rc < 0) {
			it->keep = true;
			return -1;
		}
		progress(j);
	}
	return 0;
}

/* Drop what items [from, to) hold locally: nothing of theirs is taken. */
static void
items_drop(struct job *j, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (j->items[i].st == IT_DONE || j->items[i].st == IT_RUN)
			fetchget_end(&j->items[i], IT_SKIP);
		else if (j->items[i].st == IT_CLAIM)
			j->items[i].st = IT_SKIP;	/* its reply gives it
							 * back */
}

static int
sync_dirs(struct job *j, struct err *e)
{
	for (size_t i = 0; i < j->nfolders; i++) {
		struct folder *f = j->folders[i];
		char *nd, *cd;
		int rc;

		if (!f->touched)
			continue;
		f->touched = false;
		nd = xasprintf("%s/new", f->ldir);
		cd = xasprintf("%s/cur", f->ldir);
		rc = util_fsync_dir(nd, e) < 0 || util_fsync_dir(cd, e) < 0 ?
		    -1 : 0;
		free(nd);
		free(cd);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/*
 * Items [from, to), all ended: sync and link the downloads, fsync the
 * local directories, then remove the server's copies (move: the REMOVEs
 * go out together, their replies come while the next batch downloads)
 * or record them (copy).
 */
static int
commit(struct job *j, size_t from, size_t to, bool synced, struct err *e)
{
	int rc = 0;

	for (size_t i = from; i < to; i++)
		if (j->items[i].st == IT_DONE && !j->items[i].download)
			j->items[i].f->touched = true;	/* already here */
	if ((j->use_mda ? fetchmda_commit(j, from, to, e) :
	    commit_links(j, from, to, synced, e)) < 0 || sync_dirs(j, e) < 0) {
		items_drop(j, from, to);
		give_back_range(j, from, to);
		return -1;	/* nothing removed on the server */
	}
	if (!j->use_mda)
		crash_step(j->crash, "local directories synced");
	if (j->job->mode == FETCH_MOVE) {
		give_back_range(j, from, to);	/* refused, not taken */
	} else {
		struct strbuf sb;

		sb_init(&sb);
		for (size_t i = from; i < to; i++)
			if (j->items[i].st == IT_DONE && !j->items[i].keep &&
			    !j->items[i].recorded)
				sb_addf(&sb, "%s/%.*s\n", j->items[i].f->name,
				    (int)fetch_unique_len(j->items[i].name),
				    j->items[i].name);
		if (sb.len > 0 && (util_write_all(j->seen_fd, sb.s,
		    sb.len) < 0 || fsync(j->seen_fd) < 0))
			rc = err_set(e, err_from_errno(errno), "cannot "
			    "record fetched names for job '%s': %s",
			    j->job->name, strerror(errno));
		sb_free(&sb);
		if (rc == 0 && sb.len > 0)
			crash_step(j->crash, "fetched names recorded");
		for (size_t i = from; i < to && rc == 0; i++)
			if (j->items[i].st == IT_DONE && !j->items[i].keep)
				j->items[i].recorded = true;
		if (rc == 0)
			fetchkeep_remove(j, from, to);
	}
	for (size_t i = from; i < to; i++)
		if (j->items[i].st == IT_DONE)
			j->items[i].st = IT_COMMITTED;
	return rc;
}

/*
 * Move mode: the server's copies of the committed items [from, to) are
 * removed, the REMOVEs in flight beside the next batches' downloads, so
 * the server unlinks while the client downloads (at the end of the run
 * it would otherwise do all of them alone, the client waiting). Until
 * its REMOVE is answered a message waits in this client's claims, which
 * a crash leaves to this client's next run. A window's worth at a time.
 */
static void
removes_send(struct job *j, size_t from, size_t to)
{
	if (j->job->mode != FETCH_MOVE)
		return;
	for (size_t i = from; i < to && !j->chan.broken; i++) {
		struct item *it = &j->items[i];
		char *rpath;

		if (it->st != IT_COMMITTED || it->keep || it->remove_sent)
			continue;
		/* a window's worth queued at most: memory stays flat */
		while (sftp_busy(j->chan.p) >= WINDOW_REQS)
			if (fetchget_wait(j) < 0)
				return;
		rpath = fetch_remote_path(it);	/* the claim */
		sftp_remove(j->chan.p, rpath, on_removed, it);
		it->remove_sent = true;	/* (a failed wait above: not yet,
					 * the run's last call sends it) */
		free(rpath);
	}
}

/* The downloads of items [from, to) to fetchsync, which fsyncs them
 * while the SFTP loop goes on. */
static void
batch_submit(struct job *j, size_t from, size_t to)
{
	int *fds = xcalloc(to - from + 1, sizeof(*fds));
	size_t n = 0;

	for (size_t i = from; i < to; i++)
		if (j->items[i].st == IT_DONE && j->items[i].fd >= 0)
			fds[n++] = j->items[i].fd;
	fetchsync_submit(&j->sync, fds, n);
	free(fds);
}

/*
 * Wait for fetchsync's batch [from, to), then take it in (commit, its
 * fsyncs done). A download that could not be made durable fails the
 * batch as a failed fsync in commit would: nothing of it is taken.
 */
static int
batch_take(struct job *j, size_t from, size_t to, struct err *e)
{
	size_t failed, k = 0;

	if (fetchsync_wait(&j->sync, &failed) < 0) {
		int saved = errno;

		for (size_t i = from; i < to; i++) {
			struct item *it = &j->items[i];

			if (it->st != IT_DONE || it->fd < 0 || k++ != failed)
				continue;
			err_set(e, err_from_errno(saved), "cannot write %s: %s",
			    it->tmp, strerror(saved));
			break;
		}
		items_drop(j, from, to);
		give_back_range(j, from, to);
		return -1;
	}
	for (size_t i = from; i < to; i++)
		if (j->items[i].st == IT_DONE && j->items[i].fd >= 0)
			crash_step(j->crash, "downloaded into tmp/");
	return commit(j, from, to, true, e);
}

/* The end of the ended items from `from' on. */
static size_t
ended_upto(const struct job *j, size_t from, size_t next)
{
	while (from < next && (j->items[from].st == IT_DONE ||
	    j->items[from].st == IT_SKIP))
		from++;
	return from;
}

/* The message for a broken link: which file it cut, if one. */
static void
link_broke(struct job *j, struct err *e)
{
	for (size_t i = 0; i < j->nitems; i++)
		if (j->items[i].st == IT_RUN) {
			char *rpath = fetch_remote_path(&j->items[i]);
			struct err le;

			err_set(&le, ERR_TEMPFAIL, "reading %s from %s failed: "
			    "%.800s", rpath, j->job->ssh.host, e->msg);
			free(rpath);
			*e = le;
			return;
		}
	if (!stopsig_caught()) {	/* a stop is no break */
		struct err le;

		err_set(&le, ERR_TEMPFAIL, "the SSH connection to %s broke: "
		    "%.800s", j->job->ssh.host, e->msg);
		*e = le;
	}
}

/*
 * Take every planned item: downloads start in order, up to
 * FILES_INFLIGHT at once and two batches ahead of the commit; a batch is
 * committed when all of its items ended. After a failure what ended
 * before it in order is still committed; the rest is dropped.
 */
/*
 * Does it fit the free space beside the claims and downloads under way
 * (items from..to)? Asked only of a file large beside that space; true
 * with none under way (fetchget_fits then decides) or the space unknown.
 */
static bool
fits_beside(const struct job *j, size_t from, size_t to,
    const struct item *it)
{
	uint64_t avail, busy = 0;

	if (!fetchget_room(it, &avail) || it->size <= avail / 8)
		return true;
	for (size_t i = from; i < to; i++)
		if (j->items[i].st == IT_CLAIM || j->items[i].st == IT_RUN)
			busy += j->items[i].size;
	return busy == 0 || (it->size <= avail && busy <= avail - it->size);
}

static int
transfer(struct job *j)
{
	size_t next = 0, done = 0, pfrom = 0, pto = 0;
	bool commit_failed = false, pending = false;
	/* without an mda the batch's fsyncs go on beside the downloads of
	 * the next (fetchsync.h); the mda's commit syncs itself */
	bool async = !j->use_mda && fetchsync_start(&j->sync);
	struct err e;

	/* every name to claim on disk before its claim goes out */
	if (fetchclaims_ahead(j, &e) < 0) {
		fetchsync_stop(&j->sync);
		return fetch_fail(j, &e);
	}
	if (async)	/* a batch on disk wakes the loop */
		j->chan.wake_fd = j->sync.wake[0];
	claims_prepare(j);
	while (done < j->nitems && !j->failed) {
		size_t upto;

		while (next < j->nitems && j->active < FILES_INFLIGHT &&
		    next - done < FILES_INFLIGHT) {
			struct item *it = &j->items[next];

			/* a file that fits the free space, but not beside
			 * the downloads running, waits for them (two large
			 * ones at once never fitted, run after run) */
			if (it->st == IT_WAIT && !fits_beside(j, done, next,
			    it))
				break;
			if (it->st == IT_WAIT && it->claim)
				claim_start(it);	/* then downloaded */
			else if (it->st == IT_WAIT)
				fetchget_start(it);
			next++;
		}
		upto = ended_upto(j, done, next);
		if (upto - done >= FETCH_BATCH || upto == j->nitems) {
			/* one batch with fetchsync at a time */
			if (pending && (pending = false, batch_take(j, pfrom,
			    pto, &e) < 0)) {
				fetch_fail(j, &e);
				commit_failed = true;
				break;
			}
			removes_send(j, pfrom, pto);
			if (async) {
				batch_submit(j, done, upto);
				pending = true;
				pfrom = done;
				pto = done = upto;
				continue;
			}
			if (commit(j, done, upto, false, &e) < 0) {
				fetch_fail(j, &e);
				commit_failed = true;
				break;
			}
			removes_send(j, done, upto);
			done = upto;
			continue;
		}
		/* fetchsync's batch is on disk (its wake-up ends the wait
		 * below), or nothing else will wake the loop: take it in */
		if (pending && (fetchsync_idle(&j->sync) ||
		    sftp_busy(j->chan.p) == 0)) {
			pending = false;
			if (batch_take(j, pfrom, pto, &e) < 0) {
				fetch_fail(j, &e);
				commit_failed = true;
				break;
			}
			removes_send(j, pfrom, pto);
			continue;
		}
		if (sftp_chan_wait(&j->chan, &e) < 0) {
			if (j->chan.broken)
				link_broke(j, &e);
			fetch_fail(j, &e);
		}
	}
	if (pending && batch_take(j, pfrom, pto, &e) < 0) {
		fetch_fail(j, &e);	/* ended before the loop's failure: kept */
		commit_failed = true;
	}
	j->chan.wake_fd = -1;
	fetchsync_stop(&j->sync);
	if (j->failed) {
		/* every file that ended is kept, not only those before the
		 * first still running (commit passes over those): one that a
		 * slow link cannot bring within the deadline would otherwise
		 * cost every download after it, run after run */
		bool ended = false;

		for (size_t i = done; i < next && !ended; i++)
			ended = j->items[i].st == IT_DONE ||
			    j->items[i].st == IT_SKIP;
		if (!commit_failed && ended && commit(j, done, next, false,
		    &e) < 0)
			fetch_fail(j, &e);
		/* the rest: claims not taken go back to new/ */
		items_drop(j, done, j->nitems);
		give_back_range(j, done, j->nitems);
	}
	removes_send(j, 0, j->nitems);
	/* the claims, REMOVEs, give-backs and CLOSEs still out */
	drain(j);
	return j->failed ? -1 : 0;
}

/*
 * The run's deadline: FETCH_DEADLINE_STEPS x timeout from its start (the
 * connection, the listings, the round trips), plus the bytes to download
 * at FETCH_RATE_FLOOR. A server that drips (a byte a second, an entry
 * every two) makes progress, so the timeout alone never ends it.
 */
static void
set_deadline(struct job *j, const struct timespec *start, uint64_t bytes)
{
	long steps = FETCH_DEADLINE_STEPS * j->job->timeout;
	uint64_t extra = bytes / FETCH_RATE_FLOOR;

	j->chan.end = *start;
	j->chan.end.tv_sec += (time_t)steps + (time_t)extra;
	snprintf(j->chan.end_why, sizeof(j->chan.end_why), "%" PRIu64 " s "
	    "(%d x timeout %ld s + %" PRIu64 " bytes to fetch at %d bytes/s, "
	    "the slowest rate waited for); what came before it is kept, the "
	    "next run goes on", (uint64_t)steps + extra, FETCH_DEADLINE_STEPS,
	    j->job->timeout, bytes, FETCH_RATE_FLOOR);
}

static uint64_t
bytes_to_fetch(const struct job *j)
{
	uint64_t n = 0;

	for (size_t i = 0; i < j->nitems; i++)
		if (j->items[i].download)
			n += j->items[i].size;
	return n;
}

/*
 * fetch --release CLIENT: that client's claims, in every folder of the
 * job, go back to the server's new/ (renames, all in flight), where any
 * client takes them. For a client that is gone for good.
 */
static int
release(struct job *j)
{
	size_t first = j->nitems;
	time_t now = time(NULL);

	/* a client at work now: what it claimed and is fetching would be
	 * taken a second time (a user trial: 217 of 20000 doubled) */
	for (size_t i = 0; i < j->nfolders; i++) {
		const struct listing *l = j->folders[i]->lists[L_CLAIMS];

		for (size_t k = 0; l != NULL && k < l->n; k++) {
			const struct dent *d = &l->v[k];
			struct err e;

			if (d->name == NULL || strcmp(d->name, j->o->release) != 0 ||
			    !(d->a.flags & SFTP_ATTR_ACMODTIME) ||
			    (time_t)d->a.mtime <= now - RELEASE_QUIET)
				continue;
			err_set(&e, ERR_TEMPFAIL, "client '%s' looks active: its "
			    "claims in %s changed %lld s ago; --release is for a "
			    "client that no longer runs (what it is fetching "
			    "would be fetched twice): try again once they have "
			    "been left alone for %d minutes", j->o->release,
			    j->folders[i]->name, (long long)(now -
			    (time_t)d->a.mtime), RELEASE_QUIET / 60);
			return fetch_fail(j, &e);
		}
	}

	/* every item first, then the renames: a request in flight holds
	 * its item's address, which item_add's realloc would move (a
	 * client with more than 64 claims crashed here) */
	for (size_t i = 0; i < j->nfolders; i++) {
		struct folder *f = j->folders[i];
		struct listing *l = f->lists[L_CLAIMED];

		for (size_t k = 0; l != NULL && k < l->n; k++) {
			const struct dent *d = &l->v[k];

			if (d->name == NULL || d->name[0] == '.' ||
			    fetch_name_problem(d->name, d->len) != NULL)
				continue;
			if (j->o->dry_run)
				printf("%s %s %s %" PRIu64 " claimed by %s\n",
				    j->job->name, f->name, d->name, d->a.size,
				    j->o->release);
			else {
				struct item *it = item_add(j, f, j->csub,
				    claim_home(j->csub, d->name), d->name,
				    d->a.size, false);

				it->linked = false;	/* not here */
			}
		}
	}
	for (size_t i = first; i < j->nitems; i++)
		give_back(&j->items[i]);
	drain(j);
	if (!j->o->dry_run) {
		log_msg(j->log, LOG_NOTICE, "%s: %lu message%s claimed by "
		    "client '%s' given back to new/ (cur/ for those seen)", j->job->name,
		    j->released, j->released == 1 ? "" : "s", j->o->release);
		/* asked for by hand: the answer goes where it was asked */
		printf("%s: %lu message%s claimed by client '%s' given back to "
		    "new/ (cur/ for those seen)\n", j->job->name, j->released,
		    j->released == 1 ? "" : "s", j->o->release);
	}
	if (j->unreleased > 0) {
		struct err e;

		err_set(&e, ERR_TEMPFAIL, "%lu claim%s of client '%s' could not "
		    "be given back (said above)", j->unreleased,
		    j->unreleased == 1 ? "" : "s", j->o->release);
		fetch_fail(j, &e);
	}
	return j->failed ? -1 : 0;
}

/* This run's own tmp/ names: TIME.MusecPpidQn.HOST,postie-fetch (the
 * Maildir rule; the tail marks the leftovers a later run removes). */
static void
tmp_names(struct job *j)
{
	struct timeval tv;
	char host[256] = "";

	gettimeofday(&tv, NULL);
	if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
		strcpy(host, "localhost");
	for (char *c = host; *c; c++)
		if (*c == '/' || *c == ':' || *c == ',' ||
		    (unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			*c = '_';
	j->tmp_stem = xasprintf("%lld.M%ldP%ld", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid());
	j->tmp_host = xasprintf(".%s,postie-fetch", host);
}

/* The summary's tail: the mda's deferrals, keep's removes. */
static const char *
summary_more(const struct job *j, char *buf, size_t len)
{
	buf[0] = '\0';
	if (j->use_mda)
		snprintf(buf, len, ", %lu deferred by the mda", j->deferred);
	if (j->job->nkeep > 0)
		snprintf(buf + strlen(buf), len - strlen(buf),
		    ", %lu removed (keep)", j->expired);
	return buf;
}

static int
run_job(struct job *j, struct err *e)
{
	struct ssh_params p;
	struct timespec start;
	char more[120];

	clock_gettime(CLOCK_MONOTONIC, &start);
	j->csub = xasprintf(CLAIMS_DIR "/%s", j->o->release != NULL ?
	    j->o->release : j->job->client);
	tmp_names(j);
	if (open_state(j, e) < 0)
		return -1;
	memset(&p, 0, sizeof(p));
	p.target = &j->job->ssh;
	p.key = j->job->ssh_key;
	p.known_hosts = j->job->ssh_known_hosts;
	p.fingerprint = j->job->ssh_fingerprint;
	p.route = &j->job->route;
	p.connect_timeout = j->job->connect_timeout;
	p.timeout = j->job->timeout;
	p.end = start;	/* the run's deadline, as set_deadline reckons it */
	p.end.tv_sec += (time_t)FETCH_DEADLINE_STEPS * j->job->timeout;
	p.verbose = j->o->verbose;
	p.prog = "fetch";
	if (sshconn_open(&p, &j->ssh, e) < 0)
		return -1;
	if (sftp_chan_open(&j->chan, &j->ssh, j->job->ssh.host,
	    j->job->timeout, WINDOW_REQS, WINDOW_BYTES, e) < 0) {
		struct err le;

		err_set(&le, e->code, "%s: %.900s", j->job->ssh.host, e->msg);
		*e = le;
		return -1;
	}
	j->chan_open = true;
	set_deadline(j, &start, 0);
	/* a listing that failed leaves its folder alone; the others go on */
	fetchget_list(j);
	if (j->o->release != NULL && !j->chan.broken && !j->failed)
		release(j);
	else if (j->o->release == NULL && !j->chan.broken &&
	    plan_all(j) == 0 && !j->o->dry_run) {
		set_deadline(j, &start, bytes_to_fetch(j));
		transfer(j);
	}
	progress_end(j);
	/* a release run took nothing: what it remembers stays as it was */
	if (!j->o->dry_run && j->o->release == NULL && (j->unremoved.n > 0 ||
	    j->unremoved_now.n > 0 || j->job->mode == FETCH_MOVE) &&
	    unremoved_save(j, e) < 0)
		fetch_fail(j, e);
	/* after JOB.unremoved: a refused remove is remembered there */
	if (!j->o->dry_run && j->o->release == NULL &&
	    fetchmda_save(j, e) < 0)
		fetch_fail(j, e);
	if (!j->o->dry_run && fetchclaims_save(j, e) < 0)
		fetch_fail(j, e);
	if (!j->failed && j->foreign > 0) {
		struct err le;

		err_set(&le, ERR_CONFIG, "%lu message%s in this client's claims "
		    "(%s) %s not claimed by this job on this machine: another "
		    "machine or job fetches from this server as client '%s' "
		    "and is at work on %s; left alone. Give each machine and "
		    "each job whose folders overlap a client name of its own "
		    "(client in postie.conf(5))", j->foreign,
		    j->foreign == 1 ? "" : "s", j->csub, j->foreign == 1 ?
		    "was" : "were", j->job->client, j->foreign == 1 ? "it" :
		    "them");
		fetch_fail(j, &le);
	}
	if (!j->failed && j->mda_failed > 0) {
		struct err le;

		char hung[96] = "";

		if (j->mda_skipped > 0)
			snprintf(hung, sizeof(hung), ", and %lu more were not "
			    "handed to it after it hung", j->mda_skipped);
		err_set(&le, ERR_UNAVAILABLE, "the mda %s failed on %lu "
		    "message%s (said above)%s; %s on the server: fix the mda, "
		    "then run fetch again", j->mda.shown, j->mda_failed,
		    j->mda_failed == 1 ? "" : "s", hung, j->mda_failed +
		    j->mda_skipped == 1 ? "it stays" : "they stay");
		fetch_fail(j, &le);
	}
	if (!j->failed && j->claim_failed > 0) {
		struct err le;

		err_set(&le, ERR_TEMPFAIL, "%lu message%s could not be claimed "
		    "on the server: %s (a full disk or a quota there?)%s; %s "
		    "for the next run", j->claim_failed, j->claim_failed == 1 ?
		    "" : "s", j->claim_why, j->claim_failed >
		    CLAIM_FAILS_SAID ? "; the first said above, every one in "
		    "the log" : "", j->claim_failed == 1 ? "it stays where it "
		    "is" : "they stay where they are");
		fetch_fail(j, &le);
	}
	if (!j->failed && j->nospace > 0) {
		struct err le;

		err_set(&le, ERR_TEMPFAIL, "%lu message%s bigger than the free "
		    "space in %s (said above) stay%s on the server: free some "
		    "space", j->nospace, j->nospace == 1 ? " is" : "s are",
		    j->job->local, j->nospace == 1 ? "s" : "");
		fetch_fail(j, &le);
	}
	if (!j->failed && j->folders_left > 0) {
		struct err le;

		err_set(&le, (enum err_code)j->folders_left_code, "%lu folder%s "
		    "could not be worked on (said above) and %s left for a "
		    "later run; the others were fetched", j->folders_left,
		    j->folders_left == 1 ? "" : "s", j->folders_left == 1 ?
		    "is" : "are");
		fetch_fail(j, &le);
	}
	if (!j->failed && j->remove_refused > 0) {
		struct err le;

		err_set(&le, ERR_NOPERM, "the server refused to remove %lu "
		    "fetched message%s (said above): remove %s by hand or let "
		    "the server allow it", j->remove_refused,
		    j->remove_refused == 1 ? "" : "s",
		    j->remove_refused == 1 ? "it" : "them");
		fetch_fail(j, &le);
	}
	if (!j->failed && (j->fetched || j->already || j->refused ||
	    j->taken || j->deferred || j->expired))
		log_msg(j->log, LOG_INFO, "%s: %lu fetched, %lu already here, "
		    "%lu refused, %lu gone before claimed%s", j->job->name,
		    j->fetched, j->already, j->refused, j->taken,
		    summary_more(j, more, sizeof(more)));
	if (j->failed) {
		*e = j->err;
		return -1;
	}
	return 0;
}

static void
job_free(struct job *j)
{
	items_drop(j, 0, j->nitems);
	if (j->chan_open) {
		if (j->chan.broken)
			j->ssh.no_goodbye = true;
		sftp_chan_close(&j->chan);
	}
	sshconn_close(&j->ssh);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	if (j->maildir_fd >= 0)
		close(j->maildir_fd);
	free(j->csub);
	free(j->tmp_stem);
	free(j->tmp_host);
	if (j->seen_fd >= 0)
		close(j->seen_fd);
	sv_free(&j->seen);
	sv_free(&j->unremoved);
	sv_free(&j->unremoved_now);
	sv_free(&j->retried);
	fetchmda_close(j);
	fetchclaims_close(j);
	for (size_t i = 0; i < j->nitems; i++) {
		free(j->items[i].name);
		free(j->items[i].tmp);
		free(j->items[i].h);	/* an OPEN's early answer */
	}
	free(j->items);
	for (size_t i = 0; i < j->nfolders; i++) {
		struct folder *f = j->folders[i];

		for (size_t s = 0; s < L_N; s++)
			fetchget_listing_free(f->lists[s]);
		free(f->name);
		free(f->rdir);
		free(f->ldir);
		free(f);
	}
	free(j->folders);
	fetchget_listing_free(j->top);
	fetchget_free(j);
	local_free(j);
}

/* Which error wins the exit code: a refusal over a deferral. */
static bool
worse(enum err_code a, enum err_code b)
{
	return b == ERR_OK || (b == ERR_TEMPFAIL && a != ERR_TEMPFAIL);
}

/* One job, in this process: 0, or -1 and *je (logged). */
static int
job_one(const struct config *cfg, size_t k, const struct fetch_opts *o,
    struct log *log, struct crash *crash, bool alone, int progress_fd,
    struct err *je)
{
	struct job j;
	unsigned long fetched;
	int rc;

	memset(&j, 0, sizeof(j));
	j.cfg = cfg;
	j.job = &cfg->jobs[k];
	j.o = o;
	j.log = log;
	j.crash = crash;
	/* one progress line on a terminal: only when one job runs */
	j.progress = alone && isatty(STDERR_FILENO) && !o->verbose &&
	    !o->dry_run;
	j.progress_fd = progress_fd;
	j.lock_fd = j.seen_fd = j.maildir_fd = j.handed_fd = j.claims_fd = -1;
	j.ssh.fd = -1;
	sv_init(&j.seen);
	sv_init(&j.unremoved);
	sv_init(&j.unremoved_now);
	sv_init(&j.retried);
	sv_init(&j.handed);
	sv_init(&j.handed_tried);
	rc = run_job(&j, je);
	if (rc < 0)
		log_msg(log, LOG_ERR, "%s: %s", j.job->name, je->msg);
	fetched = j.fetched;
	job_free(&j);
	if (!o->dry_run && o->release == NULL)
		fetch_hooks_job(o->hooks, cfg, k, fetched, log);
	return rc;
}

/* A job running in a child process of its own. */
struct child {
	pid_t	pid;	/* 0: not running */
	int	fd;	/* the child's report: its struct err, on failure */
	size_t	k;
};

/* The child's side: run the job, report, exit. Never returns. */
static void child_run(const struct config *cfg, size_t k,
    const struct fetch_opts *o, struct log *log, struct crash *crash, int fd,
    int progress_fd, pid_t parent) __attribute__((noreturn));

static void
child_run(const struct config *cfg, size_t k, const struct fetch_opts *o,
    struct log *log, struct crash *crash, int fd, int progress_fd,
    pid_t parent)
{
	struct err je = { 0 };
	int code = 0;

#ifdef __linux__
	/* a parent that dies (kill -9, power cut) takes its jobs along */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(EX_OSERR);
#else
	(void)parent;
#endif
	/* the parent says it once on a terminal, not each job */
	stopsig_catch(NULL);
	/* -n lists one whole line per write: jobs never tear each other's */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (job_one(cfg, k, o, log, crash, false, progress_fd, &je) < 0) {
		(void)util_write_all(fd, &je, sizeof(je));
		code = err_exit_code(je.code);
	}
	fflush(stdout);
	fflush(stderr);
	_exit(code);
}

/* What a finished child said: 0, or -1 and *je (logged by the child,
 * or here when it could not). Its report is bytes from another process:
 * checked before it is believed. */
static int
child_result(const struct child *c, int status, const char *name,
    struct log *log, struct err *je)
{
	struct err got;
	size_t n = 0;

	while (n < sizeof(got)) {
		ssize_t r = read(c->fd, (char *)&got + n, sizeof(got) - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (WIFSIGNALED(status))
		err_set(je, ERR_SOFTWARE, "killed by signal %d (%s): nothing "
		    "is lost, the next run finishes its work; run fetch again",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (n == sizeof(got) && got.code > ERR_OK &&
	    got.code <= ERR_CONFIG) {
		got.msg[sizeof(got.msg) - 1] = '\0';
		*je = got;
		return -1;
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		err_set(je, ERR_SOFTWARE, "ended with status %d and no "
		    "reason: run fetch -v %s to see why",
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1, name);
	else
		return 0;
	log_msg(log, LOG_ERR, "%s: %s", name, je->msg);
	return -1;
}

/* On a terminal: the pipes of a child's counts and stderr (pp, ep),
 * the parent's ends in pk. 0, or -1 (no progress for it). */
static int
child_pipes(struct fetchprog_kid *pk, int pp[2], int ep[2])
{
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(ep, O_CLOEXEC) < 0) {
		close(pp[0]);
		close(pp[1]);
		return -1;
	}
	/* a parent that falls behind drops counts, never holds the job */
	(void)fcntl(pp[1], F_SETFL, O_NONBLOCK);
	pk->pfd = pp[0];
	pk->efd = ep[0];
	return 0;
}

/* In the child: its stderr into the pipe, the parent's ends closed. */
static void
child_pipes_take(int pp[2], int ep[2])
{
	close(pp[0]);
	close(ep[0]);
	if (dup2(ep[1], STDERR_FILENO) < 0)
		_exit(EX_OSERR);
	close(ep[1]);
}

/* Start job k in a child (kids[slot]): 0, or -1 and *je (it does not
 * run). With progress (pks, one a slot), its counts and stderr come
 * through pipes (fetchprog.h). */
static int
child_start(const struct config *cfg, size_t k, const struct fetch_opts *o,
    struct log *log, struct crash *crash, struct child *kids,
    struct fetchprog_kid *pks, size_t nkids, size_t slot, struct err *je)
{
	struct child *c = &kids[slot];
	pid_t parent = getpid();
	int p[2], pp[2] = { -1, -1 }, ep[2] = { -1, -1 };

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(je, ERR_OSERR, "cannot start the job: pipe: %s",
		    strerror(errno));
	if (pks != NULL && child_pipes(&pks[slot], pp, ep) < 0)
		pp[0] = pp[1] = ep[0] = ep[1] = -1;
	fflush(stdout);
	fflush(stderr);
	c->pid = fork();
	if (c->pid < 0) {
		int errnum = errno;
		int fds[] = { p[0], p[1], pp[0], pp[1], ep[0], ep[1] };

		c->pid = 0;
		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (pks != NULL)
			fetchprog_kid_init(&pks[slot]);
		return err_set(je, ERR_OSERR, "cannot start the job: fork: "
		    "%s; run fetch again", strerror(errnum));
	}
	if (c->pid == 0) {
		close(p[0]);
		for (size_t i = 0; i < nkids; i++)
			if (kids[i].pid > 0 && i != slot) {
				close(kids[i].fd);
				if (pks != NULL && pks[i].pfd >= 0)
					close(pks[i].pfd);
				if (pks != NULL && pks[i].efd >= 0)
					close(pks[i].efd);
			}
		if (pp[1] >= 0)
			child_pipes_take(pp, ep);
		child_run(cfg, k, o, log, crash, p[1], pp[1], parent);
	}
	close(p[1]);
	if (pp[1] >= 0) {
		close(pp[1]);
		close(ep[1]);
	}
	c->fd = p[0];
	c->k = k;
	return 0;
}

/* Wait for one of the children: its slot, or NULL if none runs. With
 * progress (prog), the children's counts and lines are taken meanwhile,
 * and those of the one that ended to their end. */
static struct child *
child_wait(struct child *kids, struct fetchprog_kid *pks, size_t nkids,
    struct fetchprog *prog, int *status)
{
	for (;;) {
		bool any = false;
		pid_t pid;

		for (size_t i = 0; i < nkids; i++)
			any = any || kids[i].pid > 0;
		if (!any)
			return NULL;
		pid = waitpid(-1, status, prog != NULL ? WNOHANG : 0);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			return NULL;
		for (size_t i = 0; i < nkids; i++)
			if (pid > 0 && kids[i].pid == pid) {
				if (prog != NULL)
					fetchprog_drain(prog, pks, nkids,
					    &pks[i]);
				return &kids[i];
			}
		if (pid == 0)
			fetchprog_pump(prog, pks, nkids, 100);
	}
}

/* The selected jobs, FETCH_PARALLEL at a time, each in a child process;
 * errs[k] is job k's result. */
static void
run_parallel(const struct config *cfg, const struct fetch_opts *o,
    struct log *log, struct crash *crash, const bool *chosen,
    struct err *errs)
{
	struct child kids[FETCH_PARALLEL];
	struct fetchprog_kid pks[FETCH_PARALLEL];
	struct fetchprog prog;
	/* one progress line for the run, on a terminal (fetchprog.h) */
	bool progress = isatty(STDERR_FILENO) && !o->verbose && !o->dry_run;
	size_t running = 0;
	size_t k = 0;

	memset(kids, 0, sizeof(kids));
	memset(&prog, 0, sizeof(prog));
	for (size_t i = 0; i < FETCH_PARALLEL; i++)
		fetchprog_kid_init(&pks[i]);
	for (size_t i = 0; i < cfg->njobs; i++)
		prog.njobs += chosen[i];
	for (;;) {
		struct child *c;
		int status;

		while (running < FETCH_PARALLEL && k < cfg->njobs) {
			if (chosen[k] && stopsig_caught())
				err_set(&errs[k], ERR_TEMPFAIL, "not started: "
				    "the run was told to stop (%s)",
				    strsignal(stopsig_caught()));
			else if (chosen[k]) {
				size_t slot = 0;

				while (kids[slot].pid > 0)
					slot++;
				if (child_start(cfg, k, o, log, crash, kids,
				    progress ? pks : NULL, FETCH_PARALLEL, slot,
				    &errs[k]) < 0)
					log_msg(log, LOG_ERR, "%s: %s",
					    cfg->jobs[k].name, errs[k].msg);
				else
					running++;
			}
			k++;
		}
		c = child_wait(kids, pks, FETCH_PARALLEL, progress ? &prog :
		    NULL, &status);
		if (c == NULL)
			break;
		(void)child_result(c, status, cfg->jobs[c->k].name, log,
		    &errs[c->k]);
		close(c->fd);
		c->pid = 0;
		running--;
	}
	fetchprog_end(&prog);
}

int
fetch_run(const struct config *cfg, const struct fetch_opts *opts,
    struct log *log, struct err *e)
{
	struct fetch_hooks hooks;
	struct fetch_opts run = *opts, *o = &run;
	struct err *errs;
	bool *chosen;
	size_t nchosen = 0, nerrs = 0, pick = 0;
	const char *pick_job = "";
	struct crash crash;

	crash_init(&crash);
	if (cfg->njobs == 0)
		return err_set(e, ERR_CONFIG, "no fetch job in %s: add a "
		    "\"fetch NAME\" block (see postie.conf(5))",
		    cfg->path ? cfg->path : "the configuration");
	for (size_t i = 0; i < o->jobs.n; i++) {
		bool found = false;

		for (size_t k = 0; k < cfg->njobs; k++)
			found = found || strcmp(cfg->jobs[k].name,
			    o->jobs.v[i]) == 0;
		if (!found)
			return err_set(e, ERR_USAGE, "no fetch job named '%s' "
			    "in %s", o->jobs.v[i], cfg->path ? cfg->path :
			    "the configuration");
	}
	errs = xcalloc(cfg->njobs, sizeof(*errs));
	chosen = xcalloc(cfg->njobs, sizeof(*chosen));
	for (size_t k = 0; k < cfg->njobs; k++) {
		chosen[k] = o->jobs.n == 0 ||
		    sv_contains(&o->jobs, cfg->jobs[k].name);
		nchosen += chosen[k];
	}
	/* before any connection: the runner, then the confinement */
	if (fetch_hooks_start(&hooks, cfg, chosen, o->dry_run,
	    o->release != NULL, log, e) < 0) {
		fetch_hooks_end(&hooks);
		free(errs);
		free(chosen);
		return -1;
	}
	run.hooks = &hooks;
	/* a signal now stops the run at its next safe point: a message at
	 * the mda is recorded first (the runner's mda handlers ignore it) */
	stopsig_catch("\nfetch: stopping: what was fetched is kept, and a "
	    "message at the mda is waited for (again to stop at once)\n");
	/* one job runs here (a crash step or a kill hits the command
	 * itself); several go at once, each in a process of its own */
	if (nchosen == 1) {
		for (size_t k = 0; k < cfg->njobs; k++)
			if (chosen[k])
				(void)job_one(cfg, k, o, log, &crash, true,
				    -1, &errs[k]);
	} else
		run_parallel(cfg, o, log, &crash, chosen, errs);
	/* in the config's order: the worst failure is the exit code (and
	 * main's line), every other one is named */
	for (size_t k = 0; k < cfg->njobs; k++) {
		struct err je = errs[k];

		if (je.code == ERR_OK)
			continue;
		snprintf(errs[nerrs].msg, sizeof(errs[nerrs].msg),
		    "job '%s': %.900s", cfg->jobs[k].name, je.msg);
		errs[nerrs].code = je.code;
		if (nerrs == 0 || worse(je.code, errs[pick].code)) {
			pick = nerrs;
			pick_job = cfg->jobs[k].name;
		}
		nerrs++;
	}
	/* several: each named in the config's order, then a summary with
	 * the worst code (main prints it) */
	for (size_t i = 0; i < nerrs && nerrs > 1; i++)
		fprintf(stderr, "fetch: %s\n", errs[i].msg);
	if (nerrs == 1)
		*e = errs[0];
	else if (nerrs > 1)
		err_set(e, errs[pick].code, "%zu of %zu jobs failed (each is "
		    "named above); the exit status is that of job '%s'", nerrs,
		    nchosen, pick_job);
	fetch_hooks_end(&hooks);
	free(errs);
	free(chosen);
	return nerrs > 0 ? -1 : 0;
}
