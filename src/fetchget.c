/* fetchget.c - a fetch job's listings and downloads over postie's SFTP
 * engine, many requests in flight (see fetchjob.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fetchjob.h"
#include "stopsig.h"

#define CHUNK		65536	/* bytes a READ asks */
#define FILE_READS	8	/* READs in flight for one file */
#define LIST_READS	4	/* READDIRs in flight for one directory */

void
fetchget_status(const struct sftp_reply *r, char *out, size_t len)
{
	const char *text = sftp_status_text(r->status);

	/* the server's words, unless they only repeat the status's own
	 * ("no such file (No such file)") */
	if (r->msglen > 0 && r->status != SFTP_FX_EOF &&
	    !(r->msglen == strlen(text) &&
	    strncasecmp(r->msg, text, r->msglen) == 0))
		snprintf(out, len, "%s (%.*s)", text,
		    (int)(r->msglen > 200 ? 200 : r->msglen), r->msg);
	else
		snprintf(out, len, "%s", text);
	util_sanitize_ascii(out);
}

/* --- listings: every folder's at once ------------------------------------ */

static int
cmp_dent(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;
	size_t xl = x->name ? x->len : 0, yl = y->name ? y->len : 0;
	int c = memcmp(x->name ? x->name : "", y->name ? y->name : "",
	    xl < yl ? xl : yl);

	return c != 0 ? c : (xl > yl) - (xl < yl);
}

static void listing_start(struct job *j, struct folder *f, const char *sub,
    const char *path, bool missing_ok);
static void folder_lists(struct job *j, struct folder *f);
static int on_readdir(void *arg, const struct sftp_reply *r, struct err *e);

/* A glob that matches no folder on the server is said: a typo, or a
 * folder gone, would otherwise be fetched from never again in silence. */
static void
folders_found(struct job *j, const struct listing *top)
{
	const struct strvec *g = &j->job->folders;

	for (size_t k = 0; k < g->n; k++) {
		bool hit = fetch_glob_matches(g->v[k], "INBOX");

		for (size_t i = 0; i < top->n && !hit; i++)
			hit = (top->v[i].a.flags & SFTP_ATTR_PERMISSIONS) &&
			    (top->v[i].a.perm & SFTP_S_IFMT) == SFTP_S_IFDIR &&
			    fetch_glob_matches(g->v[k], top->v[i].name);
		if (!hit) {
			char show[300];

			fetch_shown(g->v[k], strlen(g->v[k]), show,
			    sizeof(show));
			fetch_say(j, LOG_WARNING, "folders: '%s' matches no "
			    "folder in %s (a folder is named as IMAP shows it, "
			    "\"lists.dev\", or as on the server, "
			    "\".lists.dev\")", show, top->path);
		}
	}
}

static void
listing_done(struct listing *l)
{
	struct job *j = l->j;

	if (l->hlen > 0)
		sftp_close(j->chan.p, l->h, l->hlen, NULL, NULL);
	l->hlen = 0;
	/* oldest first: Maildir names start with the delivery time */
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_dent);
	l->done = true;
	j->listing--;
	if (l == j->top && !j->failed) {
		folders_found(j, l);
		/* the folders the job wants, in name order, after INBOX */
		for (size_t i = 0; i < l->n; i++) {
			struct dent *d = &l->v[i];
			struct folder *f;

			if (d->name == NULL || d->name[0] != '.' ||
			    fetch_name_problem(d->name, d->len) != NULL ||
			    strcmp(d->name, ".") == 0 ||
			    strcmp(d->name, "..") == 0)
				continue;
			if (!(d->a.flags & SFTP_ATTR_PERMISSIONS) ||
			    (d->a.perm & SFTP_S_IFMT) != SFTP_S_IFDIR)
				continue;	/* symlinked folders are not
						 * followed */
			if (!fetch_folder_wanted(&j->job->folders, d->name))
				continue;
			f = xcalloc(1, sizeof(*f));
			f->name = xstrdup(d->name);
			f->rdir = xasprintf("%s/%s", j->job->remote, d->name);
			f->ldir = xasprintf("%s/%s", j->job->local, d->name);
			j->folders = xrealloc(j->folders, (j->nfolders + 1) *
			    sizeof(*j->folders));
			j->folders[j->nfolders++] = f;
			folder_lists(j, f);
		}
	}
}

/*
 * A listing that failed: the folder is left alone. A folder's directory
 * that could not be opened (status: refused, or gone: the user removed
 * or renamed the folder meanwhile) is said, and the other folders go on;
 * the run then exits non-zero (fetch.c). The Maildir itself (its top, or
 * INBOX's directories), or a reading that broke off, fails the job.
 */
static int
listing_failed(struct listing *l, int status, const char *why)
{
	struct job *j = l->j;
	struct err e;

	if (status >= 0 && l->f != NULL && l != j->top &&
	    l->f->name[0] == '.') {	/* not INBOX: the Maildir itself */
		fetch_folder_left(j, l->f, status == SFTP_FX_NO_SUCH_FILE ?
		    ERR_TEMPFAIL : status == SFTP_FX_PERMISSION_DENIED ?
		    ERR_NOPERM : ERR_PROTOCOL, "cannot list %s on %s: %s",
		    l->path, j->job->ssh.host, why);
	} else if (status >= 0) {
		err_set(&e, ERR_PROTOCOL, "cannot list %s on %s: %s", l->path,
		    j->job->ssh.host, why);
		fetch_fail(j, &e);
	} else {
		err_set(&e, ERR_TEMPFAIL, "listing %s on %s failed: %s",
		    l->path, j->job->ssh.host, why);
		fetch_fail(j, &e);
	}
	if (l->f != NULL)
		l->f->failed = true;
	l->eof = true;
	if (l->out == 0 && !l->done)
		listing_done(l);
	return 0;
}

static int
on_list_lstat(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct listing *l = arg;

	(void)e;
	l->linked = sftp_reply_not_dir(r);
	return 0;
}

static int
on_opendir(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct listing *l = arg;
	struct job *j = l->j;
	char why[300];

	(void)e;
	if (l->linked) {
		if (r->type == SFTP_HANDLE && !j->chan.broken)
			sftp_close(j->chan.p, r->data, r->len, NULL, NULL);
		fetch_folder_left(j, l->f, ERR_PROTOCOL, "%s on %s is a "
		    "symbolic link (or not a directory): never followed, "
		    "nothing in it claimed or removed", l->path,
		    j->job->ssh.host);
		l->eof = true;
		listing_done(l);
		return 0;
	}
	if (r->type == SFTP_STATUS) {
		if (l->missing_ok && r->status == SFTP_FX_NO_SUCH_FILE) {
			l->missing = true;
			listing_done(l);
			return 0;
		}
		fetchget_status(r, why, sizeof(why));
		return listing_failed(l, (int)r->status, why);
	}
	memcpy(l->h, r->data, r->len);
	l->hlen = r->len;
	for (l->out = 0; l->out < LIST_READS; l->out++)
		sftp_readdir(j->chan.p, l->h, l->hlen, on_readdir, l);
	return 0;
}

/* At the top: a folder (a directory named ".NAME")? A name that could
 * be one but is refused, or a link, is said (escaped) and skipped. */
static bool
top_keeps(struct listing *l, const struct sftp_name *n)
{
	char show[300];
	const char *why;

	if (n->too_long || n->len > 255) {
		if (n->too_long || n->name[0] == '.')
			fetch_say(l->j, LOG_WARNING, "%s: a folder name of %zu "
			    "bytes is skipped: a name over 255 bytes", l->path,
			    n->len);
		return false;
	}
	if (n->len == 0 || n->name[0] != '.' || (n->len == 1) ||
	    (n->len == 2 && n->name[1] == '.'))
		return false;	/* not a folder (Maildir++), ".", ".." */
	fetch_shown(n->name, n->len, show, sizeof(show));
	why = fetch_name_problem(n->name, n->len);
	if (why == NULL && (n->a.flags & SFTP_ATTR_PERMISSIONS) &&
	    (n->a.perm & SFTP_S_IFMT) == SFTP_S_IFLNK)
		why = "a symbolic link, never followed";
	if (why != NULL) {
		fetch_say(l->j, LOG_WARNING, "%s/%s: folder skipped: %s",
		    l->path, show, why);
		return false;
	}
	return true;
}

/*
 * Is a listed entry worth keeping? Only what a run may use is kept, so
 * memory follows that, not what the server sends: in new/ and cur/ the
 * messages to take (fetch_listed says why the others are not), in tmp/
 * the old files to report, at the top the folders (fetchget_list's
 * rules). Never a name over 255 bytes.
 */
static bool
listing_keeps(struct listing *l, const struct sftp_name *n)
{
	bool plain_name = !n->too_long && n->len > 0 && n->len <= 255 &&
	    n->name[0] != '.' && memchr(n->name, '\0', n->len) == NULL;

	/* the claim directory's clients, a directory listed by name
	 * (fetch --release, other clients' claims): names only */
	if ((l->f != NULL && strcmp(l->sub, CLAIMS_DIR) == 0) ||
	    (l->f == NULL && l != l->j->top))
		return plain_name;
	if (l->f != NULL && strcmp(l->sub, "tmp") != 0)
		return fetch_listed(l->j, l->f, l->sub, n->too_long ? NULL :
		    n->name, n->len, &n->a) == 1;
	if (l->f == NULL)
		return top_keeps(l, n);
	if (n->too_long || n->len == 0 || n->len > 255)
		return false;
	return n->name[0] != '.' && (n->a.flags & SFTP_ATTR_ACMODTIME) &&
	    (time_t)n->a.mtime <= time(NULL) - FETCH_TMP_WARN;
}

static void
listing_add(struct listing *l, const struct sftp_name *n)
{
	struct dent *d;

	if (l->count_only) {
		l->counted += n->too_long || n->len == 0 || n->name[0] != '.';
		return;
	}
	if (!listing_keeps(l, n))
		return;
	if (l->n == FETCH_LIST_MAX) {
		if (!l->eof)
			fetch_say(l->j, LOG_WARNING, "%s holds more than %d "
			    "messages to take; this run takes %d, the next run "
			    "the rest", l->path, FETCH_LIST_MAX,
			    FETCH_LIST_MAX);
		l->eof = true;
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	d = &l->v[l->n++];
	d->len = n->len;
	d->a = n->a;
	d->name = xmalloc(n->len + 1);	/* not strndup: a NUL inside */
	memcpy(d->name, n->name, n->len);	/* stays visible */
	d->name[n->len] = '\0';
}

static int
on_readdir(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct listing *l = arg;
	char why[300];

	(void)e;
	l->out--;
	if (r->type == SFTP_STATUS && r->status != SFTP_FX_EOF && !l->eof) {
		fetchget_status(r, why, sizeof(why));
		return listing_failed(l, -1, why);
	}
	if (r->type == SFTP_STATUS)
		l->eof = true;
	else if (!l->eof) {
		struct sftp_name n;
		size_t off = 0;

		while (sftp_name_next(r, &off, &n) == 1)
			listing_add(l, &n);
		/* more when the whole round came back with names: a round
		 * that still has READDIRs out may be ending in EOFs */
		for (; !l->eof && l->out == 0 && l->hlen > 0 &&
		    l->out < LIST_READS; l->out++)
			sftp_readdir(l->j->chan.p, l->h, l->hlen, on_readdir, l);
	}
	if (l->eof && l->out == 0 && !l->done)
		listing_done(l);
	return 0;
}

static void
listing_start(struct job *j, struct folder *f, const char *sub,
    const char *path, bool missing_ok)
{
	struct listing *l = xcalloc(1, sizeof(*l));

	l->j = j;
	l->f = f;
	l->sub = sub;
	l->missing_ok = missing_ok;
	l->path = path != NULL ? xstrdup(path) :
	    xasprintf("%s/%s", f->rdir, sub);
	if (f == NULL)
		j->top = l;
	else
		f->lists[strcmp(sub, "new") == 0 ? L_NEW :
		    strcmp(sub, "cur") == 0 ? L_CUR :
		    strcmp(sub, "tmp") == 0 ? L_TMP :
		    sub == j->csub ? L_CLAIMED : L_CLAIMS] = l;
	j->listing++;
	/* new/ and cur/ are where claims and removes go: a symbolic link
	 * there (new -> ~/Documents) would have postie rename and remove
	 * what it points to. The LSTAT's reply comes before the OPENDIR's */
	if (f != NULL && (strcmp(sub, "new") == 0 || strcmp(sub, "cur") == 0))
		sftp_lstat(j->chan.p, l->path, on_list_lstat, l);
	sftp_opendir(j->chan.p, l->path, on_opendir, l);
}

/* A folder's listings: new/, cur/ (only counted unless the job takes
 * it), tmp/; in move mode this client's claims and the claim directory
 * (every client's). */
static void
folder_lists(struct job *j, struct folder *f)
{
	listing_start(j, f, "new", NULL, false);
	listing_start(j, f, "cur", NULL, true);
	f->lists[L_CUR]->count_only = !j->job->take_cur;
	listing_start(j, f, "tmp", NULL, true);
	if (j->job->mode == FETCH_MOVE || j->o->release != NULL) {
		listing_start(j, f, j->csub, NULL, true);
		listing_start(j, f, CLAIMS_DIR, NULL, true);
	}
}

struct listing *
fetchget_list_dir(struct job *j, const char *path)
{
	struct listing *l = xcalloc(1, sizeof(*l));

	l->j = j;
	l->missing_ok = true;
	l->path = xstrdup(path);
	j->listing++;
	sftp_opendir(j->chan.p, l->path, on_opendir, l);
	return l;
}

void
fetchget_listing_free(struct listing *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	free(l->path);
	free(l);
}

/* Wait until every listing is done. */
int
fetchget_list(struct job *j)
{
	struct folder *inbox = NULL;

	if (fetch_folder_wanted(&j->job->folders, "INBOX")) {
		inbox = xcalloc(1, sizeof(*inbox));
		inbox->name = xstrdup("INBOX");
		inbox->rdir = xstrdup(j->job->remote);
		inbox->ldir = xstrdup(j->job->local);
		j->folders = xrealloc(j->folders, sizeof(*j->folders));
		j->folders[j->nfolders++] = inbox;
	}
	for (size_t i = 0; i < j->job->folders.n; i++)
		if (strcmp(j->job->folders.v[i], "INBOX") != 0) {
			listing_start(j, NULL, NULL, j->job->remote, false);
			break;
		}
	if (inbox != NULL)
		folder_lists(j, inbox);
	while (j->listing > 0) {
		if (fetchget_wait(j) < 0)
			return -1;
		fetch_locals_early(j);
	}
	return j->failed ? -1 : 0;
}

int
fetchget_wait(struct job *j)
{
	struct err e, le;

	if (sftp_chan_wait(&j->chan, &e) == 0)
		return 0;
	if (j->chan.broken && !stopsig_caught()) {	/* a stop is no break */
		err_set(&le, ERR_TEMPFAIL, "the SSH connection to %s broke: "
		    "%.800s", j->job->ssh.host, e.msg);
		e = le;
	}
	return fetch_fail(j, &e);
}

/* --- downloads, many in flight ------------------------------------------ */

static int on_read(void *arg, const struct sftp_reply *r, struct err *e);
static int item_create(struct item *it, struct err *e);
static bool free_space(const struct item *it, uint64_t *avail);
static void opened(struct item *it);

/* The end of a download: done, or refused (said why) or dropped. */
void
fetchget_end(struct item *it, enum item_state st)
{
	struct job *j = it->j;

	if (it->h != NULL && !j->chan.broken)
		sftp_close(j->chan.p, it->h, it->hlen, NULL, NULL);
	free(it->h);
	it->h = NULL;
	if (st == IT_SKIP && it->fd >= 0) {
		close(it->fd);
		it->fd = -1;
		unlink(it->tmp);	/* not linked: the next run fetches */
	}
	if (it->st == IT_RUN) {
		j->active--;
		/* a large file took (or gave back) room: the next check
		 * asks the disk again, not the second-old figure */
		if (it->size > it->f->avail / 4)
			it->f->avail_ms = 0;
	}
	it->st = st;
}

/* Where a message not taken stays on the server, for messages: a claim
 * is given back where it came from (new/ or cur/), so that is named. */
static char *
left_path(const struct item *it)
{
	return it->claimed ? xasprintf("%s/%s/%s", it->f->rdir, it->home,
	    it->name) : fetch_remote_path(it);
}

static void
item_refuse(struct item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
item_refuse(struct item *it, const char *fmt, ...)
{
	char why[400], *rpath = left_path(it);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fetch_say(it->j, LOG_WARNING, "%s: refused: %s; left on the server "
	    "(%" PRIu64 " bytes listed)", rpath, why, it->size);
	it->j->refused++;
	free(rpath);
	fetchget_end(it, IT_SKIP);
}

/* The server's delivery time becomes the local file's (mail readers
 * show it as the received date), before the file is linked. */
static int
item_mtime(struct item *it, struct err *e)
{
	struct timespec ts[2];

	if (it->mtime < 0)
		return 0;
	ts[0].tv_sec = ts[1].tv_sec = (time_t)it->mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(it->fd, ts) < 0) {
		char *tmp = fetch_local_path(it->f, "tmp", it->name);

		err_set(e, err_from_errno(errno), "cannot set the time of %s: "
		    "%s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	return 0;
}

/* Everything asked came back: is it the file listed? */
static void
item_check(struct item *it)
{
	if (it->st != IT_RUN || it->reads > 0 || !it->stat_done)
		return;
	if (it->stat_bad)
		item_refuse(it, "it changed between listing and opening (not "
		    "the regular file of %" PRIu64 " bytes listed)", it->size);
	else if (it->grew)
		item_refuse(it, "it grew while being fetched");
	else if (it->empty)
		item_refuse(it, "the server sent an empty read");
	else if (it->got != it->size)
		item_refuse(it, "%" PRIu64 " bytes arrived, the listing said "
		    "%" PRIu64, it->got, it->size);
	else if (it->probed) {
		struct err e;

		if ((it->fd < 0 && item_create(it, &e) < 0) ||	/* empty */
		    item_mtime(it, &e) < 0) {
			fetch_fail(it->j, &e);
			fetchget_end(it, IT_SKIP);
		} else
			fetchget_end(it, IT_DONE);
	}
}

static struct rd_req *
rd_get(struct job *j)
{
	struct rd_req *q = j->rd_free;

	if (q != NULL) {
		j->rd_free = q->next;
		return q;
	}
	q = xcalloc(1, sizeof(*q));
	q->all = j->rd_all;
	j->rd_all = q;
	return q;
}

void
fetchget_free(struct job *j)
{
	while (j->rd_all != NULL) {
		struct rd_req *q = j->rd_all;

		j->rd_all = q->all;
		free(q);
	}
	j->rd_free = NULL;
}

static void
read_one(struct item *it, uint64_t off, uint32_t len)
{
	struct rd_req *q = rd_get(it->j);

	q->it = it;
	q->off = off;
	q->len = len;
	it->reads++;
	sftp_read(it->j->chan.p, it->h, it->hlen, off, len, on_read, q);
}

/*
 * Ask for more of the file, a few READs at a time. The last READ asks one
 * byte past the listed size, which must be the end of the file: it comes
 * back short at that size (a read of a regular file stops short only at
 * its end; the FSTAT sent before it said the same size), or with the
 * byte, a file that grew. An empty file gets a READ of that one byte.
 */
static void
read_more(struct item *it)
{
	while (!it->stat_bad && it->reads < FILE_READS &&
	    it->next_off <= it->size && !it->probed) {
		uint64_t left = it->size - it->next_off;
		uint32_t len = left < CHUNK ? (uint32_t)left + 1 : CHUNK;

		if (it->next_off + len > it->size)
			it->probed = true;	/* this READ asks past the end */
		read_one(it, it->next_off, len);
		it->next_off += len;
	}
}

/*
 * The download's tmp/ file, when its first bytes come: a fresh file under
 * a name of this run's own (it->tmp), never the server's name, so no
 * other run, and no file the user linked, is ever written through.
 */
static int
item_create(struct item *it, struct err *e)
{
	if ((it->fd = open(it->tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		return err_set(e, err_from_errno(errno), "cannot create %s: "
		    "%s", it->tmp, strerror(errno));
	return 0;
}

static int
on_read(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct rd_req *q = arg;
	struct item *it = q->it;
	uint64_t off = q->off;
	uint32_t len = q->len;

	q->next = it->j->rd_free;	/* back to the pool */
	it->j->rd_free = q;
	it->reads--;
	if (it->st != IT_RUN)
		return 0;	/* dropped meanwhile: the rest is ignored */
	if (r->type == SFTP_STATUS) {
		char why[300], *rpath;

		if (r->status == SFTP_FX_EOF) {
			/* at the listed size, the end we want (an empty file);
			 * before it, a file that shrank (got tells) */
			item_check(it);
			return 0;
		}
		fetchget_status(r, why, sizeof(why));
		rpath = fetch_remote_path(it);
		err_set(e, ERR_TEMPFAIL, "reading %s from %s failed: %s",
		    rpath, it->j->job->ssh.host, why);
		free(rpath);
		fetchget_end(it, IT_SKIP);
		return -1;
	}
	if (off + r->len > it->size) {
		it->grew = true;	/* a byte past the listed size */
	} else if (r->len == 0) {
		it->empty = true;
	} else {
		ssize_t w;

		if (it->fd < 0 && item_create(it, e) < 0) {
			fetchget_end(it, IT_SKIP);
			return -1;
		}
		w = pwrite(it->fd, r->data, r->len, (off_t)off);

		if (w < 0 || (size_t)w != r->len) {
			int saved = w < 0 ? errno : ENOSPC;

			err_set(e, err_from_errno(saved), "cannot write %s: "
			    "%s", it->tmp, strerror(saved));
			fetchget_end(it, IT_SKIP);
			return -1;
		}
		it->got += r->len;
		/* a short read is legal: the rest (short at the listed size
		 * when it asked past it: the end, nothing more to ask) */
		if (r->len < len && off + r->len < it->size)
			read_one(it, off + r->len, len - (uint32_t)r->len);
		read_more(it);
	}
	item_check(it);
	return 0;
}

/*
 * An entry listed without a size: the open file's FSTAT gives it, and it
 * must pass what a listed size passes (max-size, the name's S=, the free
 * space) before a byte is asked for. -1: refused, said.
 */
static int
unsized_learn(struct item *it, const struct sftp_reply *r)
{
	const struct config *cfg = it->j->cfg;
	uint64_t hint, avail;

	if (r->type != SFTP_ATTRS || !(r->attrs.flags & SFTP_ATTR_SIZE)) {
		item_refuse(it, "the server gave no size for it, not even for "
		    "the open file");
		return -1;
	}
	if (cfg->max_size > 0 && r->attrs.size > cfg->max_size) {
		item_refuse(it, "%" PRIu64 " bytes (said when opened) is over "
		    "max-size (%" PRIu64 ")", r->attrs.size, cfg->max_size);
		return -1;
	}
	if (fetch_name_size(it->name, &hint) && hint != r->attrs.size) {
		item_refuse(it, "%" PRIu64 " bytes (said when opened), but its "
		    "name says S=%" PRIu64, r->attrs.size, hint);
		return -1;
	}
	if (free_space(it, &avail) && r->attrs.size > avail) {
		item_refuse(it, "%" PRIu64 " bytes is more than the free space "
		    "in %s/tmp (%" PRIu64 " bytes)", r->attrs.size,
		    it->f->ldir, avail);
		it->j->nospace++;
		return -1;
	}
	it->size = r->attrs.size;
	it->unsized = false;
	read_more(it);		/* the reads wait for the size */
	return 0;
}

static int
on_fstat(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;

	(void)e;
	it->reads--;
	if (it->st != IT_RUN)
		return 0;
	if (it->unsized && unsized_learn(it, r) < 0)
		return 0;	/* refused */
	it->stat_done = true;
	/* open follows symlinks: what was opened must be what was listed */
	it->stat_bad = r->type != SFTP_ATTRS ||
	    !(r->attrs.flags & SFTP_ATTR_PERMISSIONS) ||
	    (r->attrs.perm & SFTP_S_IFMT) != SFTP_S_IFREG ||
	    !(r->attrs.flags & SFTP_ATTR_SIZE) || r->attrs.size != it->size;
	item_check(it);
	return 0;
}

static int
on_open(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;
	struct job *j = it->j;

	(void)e;
	if (it->st != IT_RUN) {
		/* dropped meanwhile */
		if (r->type == SFTP_HANDLE && !j->chan.broken)
			sftp_close(j->chan.p, r->data, r->len, NULL, NULL);
		return 0;
	}
	if (r->type == SFTP_STATUS) {
		char why[300], *rpath = left_path(it);

		fetchget_status(r, why, sizeof(why));
		if (r->status == SFTP_FX_NO_SUCH_FILE && !it->claimed)
			/* copy mode: a mail reader on the server moved it
			 * (new/ to cur/) or removed it; the next run sees
			 * where it went. Not a problem to tell cron about */
			log_msg(j->log, LOG_INFO, "%s: %s: gone from the server "
			    "before it could be opened (moved or removed "
			    "there); not fetched", j->job->name, rpath);
		else
			fetch_say(j, LOG_WARNING, "%s: cannot open it on the "
			    "server: %s; left there", rpath, why);
		free(rpath);
		fetchget_end(it, IT_SKIP);
		return 0;
	}
	it->h = xmalloc(r->len);
	memcpy(it->h, r->data, r->len);
	it->hlen = r->len;
	opened(it);
	return 0;
}

/* The file is open (it->h): FSTAT and the first READs go out together;
 * tmp/NAME is made when data comes. */
static void
opened(struct item *it)
{
	struct job *j = it->j;

	it->reads++;
	sftp_fstat(j->chan.p, it->h, it->hlen, on_fstat, it);
	if (!it->unsized)
		read_more(it);
}

/* The free bytes where the item downloads; false: unknown. Asked once a
 * second per folder, not per message: it guards against a size no disk
 * has, and a write that finds the disk full still says so. */
static bool
free_space(const struct item *it, uint64_t *avail)
{
	struct folder *f = it->f;
	long long now = util_mono_ms();

	if (f->avail_ms == 0 || now - f->avail_ms >= 1000) {
		char *tmp = xasprintf("%s/tmp", f->ldir);
		struct statvfs sv;
		int rc = statvfs(tmp, &sv);

		free(tmp);
		if (rc < 0)
			return false;
		f->avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
		f->avail_ms = now > 0 ? now : 1;
	}
	*avail = f->avail;
	return true;
}

/* Does the download fit the local disk's free space? Said before a byte
 * comes when not: with no max-size, a server announcing 2^63 bytes would
 * otherwise stream until the disk is full. */
static bool
item_fits(struct item *it)
{
	char *tmp, *rpath;
	uint64_t avail;

	if (!free_space(it, &avail) || it->size <= avail)
		return true;	/* (unknown: the write says why) */
	tmp = xasprintf("%s/tmp", it->f->ldir);
	rpath = fetch_remote_path(it);
	fetch_say(it->j, LOG_WARNING, "%s: %" PRIu64 " bytes is more than the "
	    "free space in %s (%" PRIu64 " bytes); left on the server",
	    rpath, it->size, tmp, avail);
	it->j->nospace++;
	it->st = IT_SKIP;
	free(rpath);
	free(tmp);
	return false;
}

void
fetchget_start(struct item *it)
{
	char *rpath;

	if (!item_fits(it))
		return;
	rpath = fetch_remote_path(it);

	it->st = IT_RUN;
	it->j->active++;
	sftp_open(it->j->chan.p, rpath, SFTP_FXF_READ, on_open, it);
	free(rpath);
}


/* The reply to the OPEN sent behind a claim. Replies come in order from
 * servers that work through requests in order (OpenSSH's does); for one
 * that does not, an early answer is kept for the claim's, and an OPEN
 * that came before the RENAME (no such file) is sent again. */
static int
on_claim_open(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;
	struct job *j = it->j;

	it->open_out = false;
	if (it->st == IT_RUN) {
		if (r->type == SFTP_STATUS &&
		    r->status == SFTP_FX_NO_SUCH_FILE) {
			char *rpath = fetch_remote_path(it);

			sftp_open(j->chan.p, rpath, SFTP_FXF_READ, on_open, it);
			free(rpath);
			return 0;
		}
		return on_open(it, r, e);
	}
	if (it->st == IT_CLAIM) {
		it->open_early = true;
		if (r->type == SFTP_HANDLE) {
			it->h = xmalloc(r->len);
			memcpy(it->h, r->data, r->len);
			it->hlen = r->len;
		}
		return 0;
	}
	/* the claim failed, or the item was dropped */
	if (r->type == SFTP_HANDLE && !j->chan.broken)
		sftp_close(j->chan.p, r->data, r->len, NULL, NULL);
	return 0;
}

void
fetchget_claim_open(struct item *it)
{
	char *rpath;

	rpath = xasprintf("%s/%s/%s", it->f->rdir, it->j->csub, it->name);
	it->open_out = true;
	it->open_early = false;
	sftp_open(it->j->chan.p, rpath, SFTP_FXF_READ, on_claim_open, it);
	free(rpath);
}

bool
fetchget_fits(struct item *it)
{
	return item_fits(it);
}

bool
fetchget_room(const struct item *it, uint64_t *avail)
{
	return free_space(it, avail);
}

void
fetchget_claimed(struct item *it)
{
	struct job *j = it->j;

	it->st = IT_RUN;
	j->active++;
	if (it->open_out)
		return;		/* on_claim_open goes on */
	if (it->h != NULL)
		opened(it);	/* the handle came first */
	else {
		char *rpath = fetch_remote_path(it);

		sftp_open(j->chan.p, rpath, SFTP_FXF_READ, on_open, it);
		free(rpath);
	}
}

void
fetchget_unclaimed(struct item *it)
{
	if (it->h != NULL && !it->j->chan.broken)
		sftp_close(it->j->chan.p, it->h, it->hlen, NULL, NULL);
	free(it->h);
	it->h = NULL;
}
