/*
 * fetchkeep.c - copy mode's retention (`keep'): a server copy older
 * than its folder's age is removed once the message is recorded as
 * fetched (JOB.seen, written and fsync'd after the local copy or the
 * mda's exit 0). Nothing else is ever removed in copy mode.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetchjob.h"

long
fetch_keep_age(const struct fetch_job *job, const char *folder)
{
	for (size_t i = 0; i < job->nkeep; i++)
		if (job->keep[i].glob != NULL &&
		    fetch_glob_matches(job->keep[i].glob, folder))
			return job->keep[i].age;
	for (size_t i = 0; i < job->nkeep; i++)
		if (job->keep[i].glob == NULL)
			return job->keep[i].age;
	return KEEP_FOREVER;
}

int64_t
fetch_msg_time(const char *name, int64_t mtime)
{
	int64_t t = 0;
	size_t n = 0;

	/* a Maildir name starts with the delivery time: "1700000000." */
	while (name[n] >= '0' && name[n] <= '9' && n < 12)
		t = t * 10 + (name[n++] - '0');
	if (n > 0 && name[n] == '.')
		return t;
	return mtime >= 0 ? mtime : -1;
}

static int64_t
listed_mtime(const struct sftp_attrs *a)
{
	return a->flags & SFTP_ATTR_ACMODTIME ? (int64_t)a->mtime : -1;
}

bool
fetchkeep_expired(const struct fetch_job *job, const char *folder,
    const char *name, const struct sftp_attrs *a)
{
	long age = fetch_keep_age(job, folder);
	int64_t t = fetch_msg_time(name, listed_mtime(a));

	return age != KEEP_FOREVER && t >= 0 && (int64_t)time(NULL) - t >= age;
}

void
fetchkeep_why(const struct fetch_job *job, const char *folder,
    const char *name, const struct sftp_attrs *a, char *out, size_t len)
{
	long age = fetch_keep_age(job, folder);
	int64_t t = fetch_msg_time(name, listed_mtime(a));
	int64_t old = (int64_t)time(NULL) - t;

	if (age % 86400 == 0)
		snprintf(out, len, "%" PRId64 " days old, keep %ldd",
		    old / 86400, age / 86400);
	else
		snprintf(out, len, "%" PRId64 " s old, keep %ld s", old, age);
}

static int
on_expired(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct item *it = arg;
	struct job *j = it->j;

	(void)e;
	it->removed = true;
	if (r->status == SFTP_FX_OK || r->status == SFTP_FX_NO_SUCH_FILE) {
		log_msg(j->log, LOG_INFO, "%s: %s: %s (%" PRIu64 " bytes) "
		    "removed from the server (older than its keep age)",
		    j->job->name, it->f->name, it->name, it->size);
		j->expired++;
	} else {
		char why[300], *rpath = fetch_remote_path(it);

		fetchget_status(r, why, sizeof(why));
		/* said once (exit 77); remembered in JOB.unremoved, so later
		 * runs try again quietly (cron mailed a line a message a run) */
		if (it->retry_remove)
			log_msg(j->log, LOG_INFO, "%s: %s: still cannot remove "
			    "it from the server (keep): %s", j->job->name, rpath,
			    why);
		else {
			fetch_say(j, LOG_ERR, "%s: older than its keep age, but "
			    "the server refused to remove it: %s; it stays there "
			    "(later runs try again, quietly)", rpath, why);
			j->remove_refused++;
		}
		sv_push_owned(&j->unremoved_now, xasprintf("%s/%.*s",
		    it->f->name, (int)fetch_unique_len(it->name), it->name));
		free(rpath);
	}
	crash_step(j->crash, "removed on the server (keep)");
	return 0;
}

void
fetchkeep_remove(struct job *j, size_t from, size_t to)
{
	for (size_t i = from; i < to && !j->chan.broken; i++) {
		struct item *it = &j->items[i];
		char *rpath;

		/* only what JOB.seen holds now: safely fetched */
		if (it->st != IT_DONE || it->keep || !it->expire ||
		    !it->recorded)
			continue;
		rpath = fetch_remote_path(it);
		sftp_remove(j->chan.p, rpath, on_expired, it);
		free(rpath);
	}
}
