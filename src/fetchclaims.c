/*
 * fetchclaims.c - move mode's claims journal, fetch/JOB.claims: the
 * messages this job on this machine claimed on the server, so that a run
 * finishes its own leftover claims and no one else's.
 *
 * A claim is a rename into postie-claims/CLIENT/, and a run takes up the
 * claims it finds there as the leftovers of a run of its own that was cut
 * off. Two fetchers with one client name (two machines of the same host
 * name, or two jobs of one machine whose folders overlap) each took the
 * other's claims while that one was still downloading them: both got the
 * message. Now every name is written here (appended, fsync'd) before its
 * claim goes out, and a claim found that is not here is another
 * fetcher's: left alone and said (exit 78: give each its own client).
 * Without the file (the first run of this version) every claim found is
 * taken, as before.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetchjob.h"
#include "util.h"

static char *
claims_path(const struct job *j, const char *dir)
{
	return xasprintf("%s/%s.claims", dir, j->job->name);
}

int
fetchclaims_open(struct job *j, const char *dir, struct err *e)
{
	char *path;
	int rc;

	if (j->job->mode != FETCH_MOVE || j->o->release != NULL)
		return 0;
	path = claims_path(j, dir);
	j->claims_known = access(path, F_OK) == 0;
	rc = j->o->dry_run && !j->claims_known ? 0 :
	    fetch_journal_open(path, &j->claims_fd, &j->claims, e);
	free(path);
	return rc;
}

bool
fetchclaims_mine(const struct job *j, const char *name)
{
	return !j->claims_known || fetch_in_set(ANY_FOLDER, &j->claims, name);
}

/* The key of a claim: its unique name in any folder (a folder renamed on
 * the server carries the claims along). */
static void
add_key(struct strbuf *sb, const char *name)
{
	sb_addf(sb, "%s/%.*s\n", ANY_FOLDER, (int)fetch_unique_len(name),
	    name);
}

int
fetchclaims_ahead(struct job *j, struct err *e)
{
	struct strbuf sb;
	int rc = 0;

	if (j->claims_fd < 0)
		return 0;
	sb_init(&sb);
	for (size_t i = 0; i < j->nitems; i++)
		if (j->items[i].claim && !j->items[i].claimed &&
		    j->items[i].st == IT_WAIT)
			add_key(&sb, j->items[i].name);
	if (sb.len > 0 && (util_write_all(j->claims_fd, sb.s, sb.len) < 0 ||
	    fsync(j->claims_fd) < 0))
		rc = err_set(e, err_from_errno(errno), "cannot write %s.claims "
		    "(the names this job claims, written before it claims "
		    "them): %s; nothing was claimed", j->job->name,
		    strerror(errno));
	else if (sb.len > 0)
		crash_step(j->crash, "claims written ahead");
	sb_free(&sb);
	return rc;
}

int
fetchclaims_save(struct job *j, struct err *e)
{
	char *dir, *path;
	struct strbuf sb;
	bool keep_old = j->failed || j->folders_left > 0;
	int rc;

	if (j->claims_fd < 0)
		return 0;
	sb_init(&sb);
	/* a run that did not list every folder, or failed, keeps the old
	 * lines too: a name there that is no longer a claim is harmless */
	for (size_t i = 0; keep_old && i < j->claims.n; i++)
		sb_addf(&sb, "%s\n", j->claims.v[i]);
	for (size_t i = 0; i < j->nitems; i++) {
		const struct item *it = &j->items[i];

		/* a claim that may still be there: found there, or sent
		 * (its answer may never have come), and not known gone */
		if ((it->claimed || it->claim_sent) && !it->claim_refused &&
		    !it->removed && !it->returned && !(keep_old &&
		    fetch_in_set(ANY_FOLDER, &j->claims, it->name)))
			add_key(&sb, it->name);
	}
	dir = fetch_state_dir(j->cfg);
	path = claims_path(j, dir);
	rc = fetch_state_write(dir, path, &sb, e);
	sb_free(&sb);
	free(path);
	free(dir);
	return rc;
}

void
fetchclaims_close(struct job *j)
{
	if (j->claims_fd >= 0)
		close(j->claims_fd);
	j->claims_fd = -1;
	sv_free(&j->claims);
}
