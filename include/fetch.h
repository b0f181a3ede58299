/*
 * fetch.h - new mail from a server's Maildir down to a local one, over
 * SFTP, never lost and never doubled.
 *
 * Per job: one SSH session (sshconn.h), one SFTP channel spoken by
 * postie's own engine (sftp.h), many requests in flight. The listings of
 * every folder go out at once (the server's new/, oldest first; in copy
 * mode cur/ too; in move mode this client's claims). In move mode each
 * message is first claimed: renamed on the server into
 * FOLDER/postie-claims/CLIENT/ (the rename fails for every client but
 * one), many renames in flight; a run finishes the claims a killed run
 * left, never another client's, and gives back to new/ what it claimed
 * and did not take. Then each regular file is downloaded into the local
 * folder's tmp/ under a name of the run's own (many at once: OPEN, then
 * FSTAT and the READs together), its fstat compared with the listing
 * (OPEN follows links) and its bytes with the listed size (and ",S=" in
 * its name). A batch of downloads, in listing order, is fsync'd, linked
 * into new/ (or cur/) under the server's names, the directories fsync'd,
 * and only then are the server's files (the claims) removed (move mode;
 * the batch's REMOVEs go out together) or their names recorded (copy
 * mode). A local file of the same name and size means "already here":
 * the server's copy is removed, not fetched again. Names, types and sizes
 * from the server are checked before they touch the local disk. The
 * local Maildir is locked (flock on its directory) for the run: two jobs
 * writing into it take turns. Memory is bounded by the window
 * (FETCH_BATCH, the files and requests in flight), plus the names kept:
 * as a listing arrives, what is refused (said and counted), not mail or
 * fetched before (copy mode) is dropped, and at most FETCH_LIST_MAX
 * messages to take are kept per directory (the rest waits for the next
 * run, said so); a name over 255 bytes is never copied.
 */
#ifndef POSTIE_FETCH_H
#define POSTIE_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "log.h"

#define FETCH_TMP_WARN		(36 * 3600)	/* server tmp/ files older */
#define FETCH_BATCH		64	/* downloads per commit (fsync, link,
					 * fsync new/, remove on the server) */
#define FETCH_RATE_FLOOR	8192	/* bytes/s: the slowest download a
					 * run waits for */
#define FETCH_DEADLINE_STEPS	3	/* a run's deadline: this many times
					 * the job's timeout, plus its bytes at
					 * FETCH_RATE_FLOOR */
#define FETCH_PARALLEL		4	/* jobs of one run at once, each in
					 * a process of its own */
#define FETCH_LIST_MAX		100000	/* messages to take from one listing
					 * (what is skipped does not count) */

struct fetch_opts {
	bool		 verbose;
	bool		 dry_run;	/* -n: list, move nothing */
	const char	*release;	/* --release CLIENT: give that
					 * client's claims back to new/ */
	struct strvec	 jobs;		/* empty: every job */
	struct fetch_hooks *hooks;	/* set by fetch_run (fetchhooks.h) */
};

/* Run the jobs; 0 when every job ran (refused files are reported). */
int	fetch_run(const struct config *cfg, const struct fetch_opts *o,
	    struct log *log, struct err *e);

/* --- the pure rules, exported for the unit tests --------------------- */

/* May a name from the server become a local file name? NULL if so, or
 * why not. Names starting with '.' are not mail (Maildir) but not bad. */
const char *fetch_name_problem(const char *name, size_t len);

/* The ",S=SIZE" a Maildir name carries, if any: 1 and *size, or 0. */
int	fetch_name_size(const char *name, uint64_t *size);

/* The unique part of a Maildir name: everything before ':' (the flags). */
size_t	fetch_unique_len(const char *name);

/* Does a folder (a server directory ".NAME", or "INBOX", the top level)
 * match a glob? As on the server (".lists.*") or as IMAP shows it
 * ("lists.*"); "*" matches INBOX too. */
bool	fetch_glob_matches(const char *glob, const char *folder);

/* Does the folder match one of the globs? */
bool	fetch_folder_wanted(const struct strvec *globs, const char *folder);

/* A folder's keep age in seconds (KEEP_FOREVER: never removed): the
 * first `keep GLOB AGE' whose glob matches, else `keep AGE', else for
 * ever. */
long	fetch_keep_age(const struct fetch_job *job, const char *folder);

/* A message's time: its Maildir name's leading seconds ("1700000000."),
 * else mtime; -1 when neither (mtime < 0: none). */
int64_t	fetch_msg_time(const char *name, int64_t mtime);

#endif
