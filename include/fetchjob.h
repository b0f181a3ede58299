/*
 * fetchjob.h - one fetch job's state, shared by the two halves of fetch
 * (not a public interface: fetch.h is).
 *
 * fetch.c decides what to take (the name rules, the local index, the
 * copy-mode journal), commits batches (fsync, link, fsync dirs, then the
 * server's removes) and runs the job. fetchget.c moves it over postie's
 * SFTP engine (sftp.h): every folder's listing at once, then the
 * downloads, many in flight, each ending in IT_DONE (tmp/NAME written,
 * its fd open) or IT_SKIP (refused and said why, or dropped).
 */
#ifndef POSTIE_FETCHJOB_H
#define POSTIE_FETCHJOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "crash.h"
#include "err.h"
#include "fetch.h"
#include "fetchsync.h"
#include "log.h"
#include "mda.h"
#include "sftp.h"
#include "sshconn.h"
#include "util.h"

#define FILES_INFLIGHT	256	/* downloads open at once */

/*
 * Move mode claims a message before it downloads it: an atomic RENAME of
 * FOLDER/new/NAME (or cur/NAME, with "take new cur") to
 * FOLDER/postie-claims/CLIENT/NAME on the server. A claim's name tells
 * where it came from: ":2," (the info of a message seen) is cur/'s. Not
 * new/, cur/ or tmp/ and no leading dot: no Maildir reader takes it for a
 * folder or a message, and no tmp/ cleaner removes it.
 */
#define CLAIMS_DIR	"postie-claims"
/* JOB.unremoved's folder for a message fetched whose claim was gone when
 * removed (its folder renamed on the server takes the claim along): a
 * claim of that name is removed in any folder, never fetched again.
 * No Maildir++ folder is called that (they start with a dot). */
#define ANY_FOLDER	"*"
#define CLAIM_FAILS_SAID 3	/* refused claims said one by one */
#define MDA_HANGS_MAX	2	/* an mda that hung on this many messages
				 * in a row gets no more this run: one
				 * message that hangs it (a filter stuck on
				 * it) does not hold up the rest */
#define CLAIM_STALE	(7 * 86400)	/* other clients' claims older are
					 * reported */
#define RELEASE_QUIET	600	/* --release takes a client's claims only
				 * when its claim directory has not changed
				 * for this long (s): it is not running */

/* A folder's listings. */
enum { L_NEW, L_CUR, L_TMP, L_CLAIMED, L_CLAIMS, L_N };

struct local_ent {
	char		*uniq;
	uint64_t	 size;
	bool		 planned;	/* not here: a listing of this run's,
					 * to be fetched (a second listing of
					 * the name waits for the next run) */
};

/* A listed entry kept (new/, cur/: one to take; tmp/: an old one; the
 * top: a folder); a name of at most 255 bytes. */
struct dent {
	char			*name;
	size_t			 len;
	struct sftp_attrs	 a;
};

struct folder;

/* One directory being listed: OPENDIR, READDIRs in flight, CLOSE. */
struct listing {
	struct job		*j;
	struct folder		*f;	/* NULL: the job's top (folders) */
	const char		*sub;	/* "new", "cur", "tmp" */
	char			*path;
	bool			 missing_ok;
	bool			 count_only;	/* cur/ move mode leaves: counted */
	unsigned long		 counted;
	unsigned char		 h[SFTP_HANDLE_MAX];
	size_t			 hlen;
	unsigned		 out;	/* READDIRs waiting */
	bool			 eof, done;
	bool			 missing;	/* not there (missing_ok) */
	bool			 linked;	/* LSTAT: a symbolic link (or
						 * not a directory): never read */
	struct dent		*v;
	size_t			 n, cap;
};

struct folder {
	char			*name;	/* "INBOX", ".lists.dev" */
	char			*rdir, *ldir;
	struct listing		*lists[L_N];	/* new, cur (copy mode), tmp,
					 * this client's claims, every
					 * client's claim directory (move) */
	bool			 failed;	/* its listing failed */
	bool			 touched;	/* linked into by the batch */
	bool			 local_made;	/* its local tmp/ new/ cur/ */
	bool			 claims_made;	/* its claim directory: made,
						 * or listed there */
	int			 top_status;	/* the reply to the MKDIR of
						 * its postie-claims/ (-1: none
						 * yet), for a refusal's reason */
	char			 why[300];	/* why that failed */
	uint64_t		 avail;		/* free bytes in its local tmp/ */
	long long		 avail_ms;	/* when that was asked (mono ms),
						 * 0: never; asked again after
						 * a second */
};

enum item_state { IT_WAIT, IT_CLAIM, IT_RUN, IT_DONE, IT_SKIP,
	IT_COMMITTED };

/* A message to take: downloaded into tmp/ (fd), or already here. */
struct item {
	struct job		*j;
	struct folder		*f;
	const char		*sub;	/* the server's "new", "cur", or
					 * the claims (job's csub) */
	const char		*dst;	/* the local "new" or "cur" */
	const char		*home;	/* the server's "new" or "cur" it
					 * is claimed from, given back to */
	char			*name;
	char			*tmp;	/* the local tmp/ file: a name of
					 * this run's own (downloads) */
	uint64_t		 size;
	bool			 unsized;	/* listed without a size: it
						 * comes from FSTAT */
	int64_t			 mtime;	/* the server's, -1: none listed */
	enum item_state		 st;
	bool			 download;	/* else already here */
	bool			 keep;	/* leave the server's copy alone */
	bool			 already;	/* here already: only removed
						 * (move mode) */
	bool			 retry_remove;	/* fetched before; its remove
						 * was refused: try again */
	bool			 claim;	/* claim it before its download */
	bool			 claimed;	/* in this client's claims */
	bool			 linked;	/* in the local new/ or cur/ */
	bool			 given_back;	/* claim renamed back to new/ */
	/* for JOB.claims: a claim sent, refused, a give-back done (the
	 * claim gone from this client's claims) */
	bool			 claim_sent, claim_refused, returned;
	bool			 handed;	/* the mda took it (exit 0) */
	bool			 remove_sent;	/* its REMOVE went out */
	bool			 removed;	/* its remove was answered */
	bool			 recorded;	/* copy mode: in JOB.seen */
	bool			 expire;	/* copy mode: older than its
						 * keep age: removed once
						 * recorded */
	int			 fd;	/* tmp/NAME, written, not yet synced */
	unsigned char		*h;	/* the server's handle, while open */
	size_t			 hlen;
	uint64_t		 next_off, got;
	unsigned		 reads;	/* READs and FSTAT waiting */
	bool			 open_out;	/* the OPEN sent right behind
						 * its claim is unanswered */
	bool			 open_early;	/* it was answered before the
						 * claim (handle in h, if any) */
	bool			 stat_done, stat_bad, grew, empty, probed;
};

/* A READ of an item: where and how much. Owned by the job (a READ may
 * still be out when the link breaks and its reply never comes). */
struct rd_req {
	struct item	*it;
	uint64_t	 off;
	uint32_t	 len;
	struct rd_req	*next;		/* the free list */
	struct rd_req	*all;		/* every one the job made */
};

struct job {
	const struct config	*cfg;
	const struct fetch_job	*job;
	const struct fetch_opts	*o;
	struct log		*log;
	struct sshconn		 ssh;
	struct sftp_chan	 chan;
	bool			 chan_open;
	int			 lock_fd;
	int			 maildir_fd;	/* the local Maildir, locked */
	char			*csub;	/* "postie-claims/CLIENT" */
	char			*tmp_stem;	/* TIME.MusecPpid */
	char			*tmp_host;	/* ".HOST,postie" */
	size_t			 tmp_seq;
	int			 seen_fd;	/* copy mode: JOB.seen */
	struct strvec		 seen;		/* "FOLDER/UNIQUE", sorted */
	/* with an mda */
	bool			 use_mda;
	struct mda		 mda;
	int			 handed_fd;	/* move mode: JOB.mda */
	struct strvec		 handed;	/* its "FOLDER/UNIQUE", sorted */
	struct strvec		 handed_tried;	/* of those, listed now */
	/* move mode: fetched, but the server refused to remove them
	 * (JOB.unremoved); "FOLDER/UNIQUE", sorted */
	struct strvec		 unremoved, unremoved_now, retried;
	unsigned long		 remove_refused;	/* newly, this run */
	/* move mode: the claims this job made (JOB.claims, fetchclaims.c) */
	int			 claims_fd;
	struct strvec		 claims;	/* "*\/UNIQUE", sorted */
	bool			 claims_known;	/* the file was there */
	unsigned long		 foreign;	/* claims found, not this job's */
	unsigned long		 folders_left;	/* folders that could not be
						 * listed or claimed in (the
						 * others went on) */
	int			 folders_left_code;	/* the first one's exit
							 * code */
	unsigned long		 nospace;	/* bigger than the free space */
	unsigned long		 claim_failed;	/* claims the server refused
						 * (not lost to another) */
	char			 claim_why[300];	/* the first one's reason */
	/* the folder at hand (planning, progress) */
	const char		*folder;
	char			*ldir;
	struct local_ent	*local;
	size_t			 nlocal, alocal;
	/* the folders and their listings */
	struct folder		**folders;
	size_t			 nfolders;
	struct listing		*top;
	unsigned		 listing;	/* listings not done */
	/* the messages to take, in order; committed up to `committed' */
	struct item		*items;
	size_t			 nitems, aitems;
	size_t			 active;	/* downloads running */
	struct rd_req		*rd_free, *rd_all;
	/* a failure: the first one is the job's */
	struct err		 err;
	bool			 failed;
	/* counts */
	unsigned long		 fetched, already, refused;
	unsigned long		 taken;	/* claimed by another client first */
	unsigned long		 released;	/* claims given back */
	unsigned long		 unreleased;	/* --release: renames refused */
	unsigned long		 deferred;	/* by the mda (75) */
	unsigned long		 mda_failed;	/* by the mda (other) */
	unsigned		 mda_hangs;	/* timeouts in a row: at
						 * MDA_HANGS_MAX no more go */
	unsigned long		 mda_skipped;	/* not handed for that */
	unsigned long		 expired;	/* removed by keep */
	struct crash		*crash;
	struct fetchsync	 sync;		/* fsyncs a batch meanwhile */
	bool			 progress;	/* a terminal, not -v */
	int			 progress_fd;	/* a job of several: its
						 * counts to the parent, or
						 * -1 (fetchprog.h) */
	bool			 progress_line;	/* one is on the screen */
	unsigned long		 progress_shown;	/* the counts on it */
	long long		 progress_at;	/* ms: when it was drawn */
};

/* --- fetch.c, for fetchget.c --- */

/*
 * Folder f cannot be worked on this run (its directory could not be
 * listed, its claim directory not made): said once, with "; folder F is
 * left for a later run, the others go on" after the printf-style text;
 * the job goes on and ends with code (the first such folder's).
 */
void	fetch_folder_left(struct job *j, struct folder *f, enum err_code code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A line to the log; problems also to stderr (the user must hear). */
void	fetch_say(struct job *j, int prio, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* A server's name, printable, for messages. */
void	fetch_shown(const char *name, size_t len, char *out, size_t outlen);
/* Keep the job's first failure; -1. */
int	fetch_fail(struct job *j, const struct err *e);
/* A listed entry of new/ or cur/ as it arrives: 1 to keep it, 0 when it
 * is not mail, fetched before (copy mode), or refused (said, counted). */
int	fetch_listed(struct job *j, const struct folder *f, const char *sub,
	    const char *name, size_t len, const struct sftp_attrs *a);
char	*fetch_local_path(const struct folder *f, const char *sub,
	    const char *name);
char	*fetch_remote_path(const struct item *it);
/* "FOLDER/UNIQUE": an item's key in the state files. */
char	*fetch_key(const struct item *it);
/* Is "FOLDER/UNIQUE" of name in the sorted set? */
bool	fetch_in_set(const char *folder, const struct strvec *set,
	    const char *name);
/* Open an append-only list of "FOLDER/UNIQUE" lines in the state
 * directory (made 0600 if missing), a torn last line cut off; *set
 * gets its lines, sorted. */
int	fetch_journal_open(const char *path, int *fd, struct strvec *set,
	    struct err *e);
/* Append one line to such a list and fsync it. */
int	fetch_journal_add(int fd, const char *key, const char *path,
	    struct err *e);
int	fetch_cmp_str(const void *a, const void *b);
/* The state directory (freed by the caller). */
char	*fetch_state_dir(const struct config *cfg);
/* A state file in dir written whole: a temporary file, fsync'd, renamed
 * over path, dir fsync'd. 0, or -1 and e. */
int	fetch_state_write(const char *dir, const char *path,
	    const struct strbuf *sb, struct err *e);
/* Is the folder of a "FOLDER/UNIQUE" key one this run listed whole? */
bool	fetch_folder_listed(const struct job *j, const char *key);

/* --- fetchmda.c: the mda, for fetch.c --- */

/* Check the job's mda; in move mode open its journal (JOB.mda). */
/* fsync the downloads of items [from, to) in tmp/ (their writes started
 * together first), each a crash step: 0, or -1 and e. */
int	fetch_sync_downloads(struct job *j, size_t from, size_t to,
	    struct err *e);
int	fetchmda_open(struct job *j, const char *dir, struct err *e);
/* Hand the downloads of items [from, to) to the mda, one at a time; the
 * ones it took are recorded durably (JOB.mda, or JOB.seen in copy
 * mode) before the next. -1 (e) when a record could not be made. */
int	fetchmda_commit(struct job *j, size_t from, size_t to, struct err *e);
/* Write JOB.mda again: what the mda took whose remove is not done. */
int	fetchmda_save(struct job *j, struct err *e);
void	fetchmda_close(struct job *j);

/* --- fetchclaims.c: move mode's claims journal (JOB.claims) --- */

/* Read JOB.claims (move mode; not for --release). */
int	fetchclaims_open(struct job *j, const char *dir, struct err *e);
/* Is a message found in this client's claims one this job claimed (or
 * is there no journal yet, so that every one counts as before)? */
bool	fetchclaims_mine(const struct job *j, const char *name);
/* Before any claim goes out: the names of the items to claim, appended
 * and fsync'd. 0, or -1 and e (then nothing may be claimed). */
int	fetchclaims_ahead(struct job *j, struct err *e);
/* At the end of the run: JOB.claims again, the claims still this job's. */
int	fetchclaims_save(struct job *j, struct err *e);
void	fetchclaims_close(struct job *j);

/* --- fetchkeep.c: retention (copy mode), for fetch.c --- */

/* Is a message of the folder older than its keep age? */
bool	fetchkeep_expired(const struct fetch_job *job, const char *folder,
	    const char *name, const struct sftp_attrs *a);
/* Items [from, to) recorded, expired: their server copies are removed. */
void	fetchkeep_remove(struct job *j, size_t from, size_t to);
/* "45 days old, keep 30d", for -n and the log. */
void	fetchkeep_why(const struct fetch_job *job, const char *folder,
	    const char *name, const struct sftp_attrs *a, char *out,
	    size_t len);

/* --- fetchget.c, for fetch.c --- */

/* List every wanted folder (INBOX, and the top directory's folders that
 * match the globs), all at once; each folder's lists[] filled, sorted.
 * A folder whose listing failed is marked failed (and the job too). */
int	fetchget_list(struct job *j);
void	fetchget_listing_free(struct listing *l);
/* Start a listing of path (missing: an empty listing) that belongs to no
 * folder; it is done when j->listing is back to what it was. */
struct listing *fetchget_list_dir(struct job *j, const char *path);
/* Wait once for the channel (replies handled by their callbacks); a
 * failure fails the job (a broken link said as such) and gives -1. */
int	fetchget_wait(struct job *j);
/* The local folders of the folders found so far are made while their
 * listings are out (when every request queued has gone): the disk's
 * time overlaps the round trip. One that fails is left to the plan,
 * which says why. */
void	fetch_locals_early(struct job *j);
/* Start a download (IT_WAIT to IT_RUN). */
void	fetchget_start(struct item *it);
/* The OPEN of a claimed path, sent right behind its RENAME (the claim),
 * so the two cost one round trip. */
void	fetchget_claim_open(struct item *it);
/* Does the download fit the local disk? Said when not (IT_SKIP). */
bool	fetchget_fits(struct item *it);
/* The free bytes where it downloads (asked of the disk at most once a
 * second per folder); false: unknown. */
bool	fetchget_room(const struct item *it, uint64_t *avail);
/* The claim was answered OK (IT_CLAIM to IT_RUN): the download goes on
 * with what the OPEN sent behind it brought, or brings. */
void	fetchget_claimed(struct item *it);
/* The claim failed or the item was dropped: the OPEN behind it is
 * forgotten (a handle it brought is closed). */
void	fetchget_unclaimed(struct item *it);
/* End an item: IT_DONE, or IT_SKIP (its tmp/ file removed). */
void	fetchget_end(struct item *it, enum item_state st);
/* Free what the downloads hold for READs never answered. */
void	fetchget_free(struct job *j);
/* A STATUS reply, printable. */
void	fetchget_status(const struct sftp_reply *r, char *out, size_t len);

#endif
