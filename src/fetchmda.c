/*
 * fetchmda.c - a fetch job with an mda: each download, fsync'd in the
 * local tmp/, is piped to the mda (mda.h) instead of being linked into
 * the local Maildir. Exit 0: the mda has it; that is recorded durably
 * (move mode: a line in JOB.mda, the journal; copy mode: a line in
 * JOB.seen) before anything else happens, and only then is the server's
 * copy removed (move mode). Exit 75: left on the server for the next
 * run; anything else: said, and left there too.
 *
 * The journal is what keeps a message from reaching the mda twice: a
 * run cut off after the mda's exit 0 and before the server's remove
 * leaves the message claimed on the server and its line in JOB.mda; the
 * next run finds it there, removes it on the server without handing it
 * again, and then forgets it. A run cut off while the mda runs (before
 * the line is written) hands the message again: an mda may then deliver
 * it twice, never lose it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetchhooks.h"
#include "fetchjob.h"
#include "stopsig.h"

static char *
journal_path(const struct job *j, const char *dir)
{
	return xasprintf("%s/%s.mda", dir, j->job->name);
}

int
fetchmda_open(struct job *j, const char *dir, struct err *e)
{
	char *path;
	int rc;

	if (j->job->mda.n > 0) {
		if (mda_open(&j->mda, &j->job->mda, e) < 0)
			return -1;
		j->use_mda = true;
	}
	if (j->job->mode != FETCH_MOVE)
		return 0;	/* JOB.seen records what the mda took */
	path = journal_path(j, dir);
	/* without an mda now, what one took before is still not fetched
	 * again: a journal left is honoured */
	if (j->use_mda || access(path, F_OK) == 0)
		rc = fetch_journal_open(path, &j->handed_fd, &j->handed, e);
	else
		rc = 0;
	free(path);
	return rc;
}

void
fetchmda_close(struct job *j)
{
	if (j->use_mda)
		mda_close(&j->mda);
	if (j->handed_fd >= 0)
		close(j->handed_fd);
	j->handed_fd = -1;
	sv_free(&j->handed);
	sv_free(&j->handed_tried);
}

/* The mda took it: recorded before the next step (the remove). */
static int
record(struct job *j, struct item *it, struct err *e)
{
	char *dir = fetch_state_dir(j->cfg), *key = fetch_key(it), *path;
	int rc;

	path = j->job->mode == FETCH_MOVE ? journal_path(j, dir) :
	    xasprintf("%s/%s.seen", dir, j->job->name);
	rc = fetch_journal_add(j->job->mode == FETCH_MOVE ? j->handed_fd :
	    j->seen_fd, key, path, e);
	if (rc < 0) {
		struct err le;

		/* the mda has it, but a later run cannot know: said */
		err_set(&le, e->code, "%.700s; the mda took %s/%s, which stays "
		    "on the server and reaches the mda again next run",
		    e->msg, it->f->name, it->name);
		*e = le;
	}
	free(path);
	free(key);
	free(dir);
	return rc;
}

/*
 * Room for the line that records what the mda takes, made before it takes
 * it (blocks past the end of the journal, which the append then fills): a
 * full disk stops the run before the hand-over, not after it, when the
 * next run would hand the message to the mda again. A file system that
 * cannot reserve (no fallocate) is written as before.
 */
static int
reserve_record(struct job *j, struct item *it, struct err *e)
{
	int fd = j->job->mode == FETCH_MOVE ? j->handed_fd : j->seen_fd;
	char *key = fetch_key(it);
	off_t len = (off_t)strlen(key) + 1;
	struct stat st;
	int rc = 0;

	free(key);
	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;	/* record() says what is wrong */
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, len) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS) {
		char *dir = fetch_state_dir(j->cfg);
		char *path = j->job->mode == FETCH_MOVE ?
		    journal_path(j, dir) : xasprintf("%s/%s.seen", dir,
		    j->job->name);

		rc = err_set(e, err_from_errno(errno), "no room to record "
		    "what the mda takes in %s: %s; %s/%s and the rest stay on "
		    "the server, none handed to the mda", path,
		    strerror(errno), it->f->name, it->name);
		free(path);
		free(dir);
	}
	return rc;
}

/* The run's deadline (fetch.h) bounds the server's work: the time an
 * mda took (each run bounded by the timeout) moves it on. */
static void
deadline_later(struct job *j, long long ms)
{
	if (j->chan.end.tv_sec == 0 || ms <= 0)
		return;
	j->chan.end.tv_sec += (time_t)(ms / 1000);
	j->chan.end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (j->chan.end.tv_nsec >= 1000000000L) {
		j->chan.end.tv_sec++;
		j->chan.end.tv_nsec -= 1000000000L;
	}
}

/* One download through the mda: 0 (taken or left, said), -1 and e when
 * the mda could not start or its exit 0 could not be recorded. */
static int
hand(struct job *j, struct item *it, int fd, struct err *e)
{
	struct strvec av;
	struct mda_result r;
	char why[400];
	long long t0;
	int rc;

	if (j->mda_hangs >= MDA_HANGS_MAX) {
		/* it hung on an earlier message: each would wait the whole
		 * timeout too (hours for a big folder, the job locked) */
		it->keep = true;
		j->mda_skipped++;
		return 0;
	}
	if (reserve_record(j, it, e) < 0) {
		it->keep = true;
		return -1;
	}
	sv_init(&av);
	t0 = util_mono_ms();
	if (j->o->hooks != NULL)	/* confined: the runner starts it */
		rc = fetch_hooks_mda(j->o->hooks,
		    (size_t)(j->job - j->cfg->jobs), it->f->name, it->name, fd,
		    j->job->timeout, &r, e);
	else {
		mda_expand(&j->job->mda, it->f->name, it->name, &av);
		rc = mda_run(&j->mda, av.v, fd, 0, j->job->timeout, &r, e);
	}
	deadline_later(j, util_mono_ms() - t0);
	sv_free(&av);
	if (rc < 0) {
		it->keep = true;
		return -1;
	}
	mda_describe(&r, j->job->timeout, why, sizeof(why));
	switch (mda_outcome(&r)) {
	case MDA_DELIVERED:
		if (record(j, it, e) < 0) {
			it->keep = true;
			return -1;
		}
		it->handed = it->linked = true;
		it->recorded = j->job->mode == FETCH_COPY;
		crash_step(j->crash, "handed to the mda, recorded");
		log_msg(j->log, LOG_INFO, "%s: %s: %s fetched (%" PRIu64
		    " bytes), handed to the mda", j->job->name, it->f->name,
		    it->name, it->size);
		j->fetched++;
		break;
	case MDA_DEFERRED:
		it->keep = true;
		log_msg(j->log, LOG_NOTICE, "%s: %s: %s (%" PRIu64 " bytes) "
		    "deferred by the mda (%s); left on the server for the next "
		    "run", j->job->name, it->f->name, it->name, it->size, why);
		j->deferred++;
		break;
	case MDA_FAILED:
		it->keep = true;
		j->mda_hangs = r.timed_out ? j->mda_hangs + 1 : 0;
		fetch_say(j, LOG_WARNING, "%s: %s (%" PRIu64 " bytes): the mda "
		    "%s failed: %s; left on the server%s", it->f->name, it->name,
		    it->size, j->mda.shown, why, !r.timed_out ? "" :
		    j->mda_hangs >= MDA_HANGS_MAX ? "; it hung on the one before "
		    "too: no more messages go to it this run" : "; the next "
		    "one is tried (if it hangs too, no more go to it this "
		    "run)");
		j->mda_failed++;
		break;
	}
	if (mda_outcome(&r) != MDA_FAILED)
		j->mda_hangs = 0;	/* not hung on everything */
	return 0;
}

int
fetchmda_commit(struct job *j, size_t from, size_t to, struct err *e)
{
	if (fetch_sync_downloads(j, from, to, e) < 0)
		return -1;
	for (size_t i = from; i < to; i++) {
		struct item *it = &j->items[i];
		int rc;

		if (it->st != IT_DONE || it->fd < 0)
			continue;
		j->folder = it->f->name;
		/* told to stop: the message at the mda was recorded; the
		 * rest stay on the server (claimed: the next run's) */
		if (stopsig_caught()) {
			it->keep = true;
			close(it->fd);
			it->fd = -1;
			unlink(it->tmp);
			continue;
		}
		rc = hand(j, it, it->fd, e);
		close(it->fd);
		it->fd = -1;
		unlink(it->tmp);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/*
 * JOB.mda again, whole (a temporary file renamed): the lines whose
 * remove is not done. An old line stays unless its message was removed
 * now, or its folder was listed whole without it (removed meanwhile).
 */
int
fetchmda_save(struct job *j, struct err *e)
{
	char *dir, *path;
	struct strbuf sb;
	bool any = j->handed.n > 0;
	int rc = 0;

	if (j->handed_fd < 0)
		return 0;
	for (size_t i = 0; i < j->nitems && !any; i++)
		any = j->items[i].handed;
	if (!any)
		return 0;	/* empty, and nothing was added */
	sb_init(&sb);
	if (j->handed_tried.n > 1)
		qsort(j->handed_tried.v, j->handed_tried.n, sizeof(char *),
		    fetch_cmp_str);
	for (size_t i = 0; i < j->handed.n; i++) {
		const char *k = j->handed.v[i];

		if ((j->failed || !fetch_folder_listed(j, k)) &&
		    (j->handed_tried.n == 0 || bsearch(&k, j->handed_tried.v,
		    j->handed_tried.n, sizeof(char *), fetch_cmp_str) == NULL))
			sb_addf(&sb, "%s\n", k);
	}
	for (size_t i = 0; i < j->nitems; i++)
		if (j->items[i].handed && !j->items[i].removed) {
			char *k = fetch_key(&j->items[i]);

			sb_addf(&sb, "%s\n", k);
			free(k);
		}
	dir = fetch_state_dir(j->cfg);
	path = journal_path(j, dir);
	if ((rc = fetch_state_write(dir, path, &sb, e)) == 0)
		crash_step(j->crash, "mda journal rewritten");
	sb_free(&sb);
	free(path);
	free(dir);
	return rc;
}
