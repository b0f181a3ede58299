/*
 * queue.h - the on-disk queue (documented in queue/README.md).
 *
 *   DIR/tmp/ID    a message being written; not in the queue yet
 *   DIR/msg/ID    a committed message: envelope + message, never rewritten
 *   DIR/state/ID  its delivery journal: one fsync'd line per event
 *
 * A message enters the queue by one rename tmp/ID -> msg/ID (after fsync
 * of the file; the directory is fsync'd after). It leaves by unlinking
 * msg/ID, then state/ID. The run that works on a message holds flock(2)
 * on msg/ID.
 */
#ifndef POSTIE_QUEUE_H
#define POSTIE_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "crash.h"
#include "err.h"
#include "util.h"

#define QUEUE_TMP_MAX_AGE	(36 * 3600)
/* How long, at most, queue control (hold, release, remove, show) waits
 * in all for messages that a deliver run holds locked. */
#define QUEUE_LOCK_WAIT		5
/* The latest time a queue file may hold: 9999-12-31T23:59:59Z. Any
 * sum or difference of two such times fits in a time_t. */
#define QUEUE_TIME_MAX		253402300799LL

struct queue {
	char		*dir;
	char		*tmp;
	char		*msg;
	char		*state;
	struct crash	*crash;		/* may be NULL */
	int		 ballast;	/* room held for the journal (an
					 * unnamed file), or -1 */
	bool		 clean_on_signal;	/* queue_clean_on_signal */
};

/* The envelope stored at the top of msg/ID. */
struct envelope {
	time_t		 queued;
	char		*sender;	/* "" for the null sender <> */
	char		*identity;	/* NULL: none matched at enqueue */
	char		*notify;	/* DSN NOTIFY, NULL if not asked */
	char		*ret;		/* DSN RET: "full", "hdrs" or NULL */
	char		*body;		/* "8bitmime" if any byte is 8-bit, "7bit" */
	char		*envid;		/* DSN ENVID or NULL */
	struct strvec	 rcpts;
	uint64_t	 offset;	/* where the message starts in msg/ID */
	uint64_t	 size;		/* message bytes */
};

enum rcpt_state { RCPT_WAITING, RCPT_SENT, RCPT_DEFERRED, RCPT_FAILED };

struct rcpt_status {
	enum rcpt_state	 state;
	char		*reply;		/* last upstream reply, sanitized */
	time_t		 when;
};

/* The delivery state of one message, folded from state/ID. */
struct msgstate {
	size_t		 n;		/* = envelope rcpts */
	struct rcpt_status *r;
	int		 attempts;
	time_t		 last_attempt;
	time_t		 next_try;	/* 0: as soon as possible */
	bool		 bounced;
	bool		 held;		/* "hold" without a "release" after it */
	time_t		 held_since;	/* when held */
	long long	 held_secs;	/* held time of the holds released */
	bool		 removed;	/* "removed": being removed by hand */
	bool		 warned;	/* the delay warning is written */
};

/* A message being written into tmp/. */
struct qfile {
	struct queue	*q;
	int		 fd;
	char		*id;
	char		*tmp_path;
	char		 buf[65536];
	size_t		 buffered;
	uint64_t	 written;
};

/*
 * Set up paths; with create, make the directories (0700). Then
 * queue_check: a queue that is not ours is refused (ERR_CONFIG).
 */
int	queue_open(struct queue *q, const char *dir, bool create,
	    struct err *e);
/*
 * Are the queue directory and every directory in it (tmp/, msg/, state/
 * and any other) owned by the running user and not writable by group or
 * others? 0 yes, or no queue yet; -1 with e (ERR_CONFIG) naming the
 * first one that is not, why, and what to do.
 */
int	queue_check(const struct queue *q, struct err *e);
void	queue_close(struct queue *q);

/*
 * sendmail killed (SIGTERM, SIGINT, SIGHUP) while it writes a message
 * takes its tmp/ file along: from now on a signal removes the tmp/ file
 * being written, if any, then ends the process as the signal would. (A
 * SIGKILL leaves it to deliver's cleaning of tmp/.) Process-wide.
 */
void	queue_clean_on_signal(struct queue *q);

/* Start a new message: a fresh tmp/ID opened O_EXCL, 0600. */
int	queue_begin(struct queue *q, struct qfile *qf, struct err *e);
/* Buffered write into the message file. */
int	queue_write(struct qfile *qf, const void *p, size_t n, struct err *e);
/* Overwrite n bytes at offset of what was written so far (before the
 * commit: used to fill in a field of the envelope once known). */
int	queue_patch(struct qfile *qf, uint64_t offset, const void *p, size_t n,
	    struct err *e);
/* Flush, fsync, close, rename tmp/ID -> msg/ID (never replacing), fsync
 * msg/. On success qf->id is the queue id; on failure nothing is queued
 * and the tmp file is gone. */
int	queue_commit(struct qfile *qf, struct err *e);
/* Throw the tmp file away. */
void	queue_abort(struct qfile *qf);
void	qfile_free(struct qfile *qf);

/* Envelope text: "postie-queue 1\n" ... "end\n". */
void	envelope_format(const struct envelope *env, struct strbuf *out);
/*
 * Parse an envelope from the start of buf; *used = its length. Every
 * value is checked as envelope_check does: a queue file is read as
 * hostile. On failure why (whylen bytes) says what is wrong.
 */
int	envelope_parse(const char *buf, size_t len, struct envelope *env,
	    size_t *used, char *why, size_t whylen);
/*
 * Can env be stored and sent as it is? The one check of envelope
 * values, made by the spool before it writes and by envelope_parse
 * after it reads: a queued time in range, a sender (empty for <>) and
 * recipients that are envelope addresses (addr_valid_envelope), DSN
 * values envelope_dsn_value_ok accepts, an identity name without control
 * characters, a body of 7bit or 8bitmime. -1 with why set otherwise.
 */
int	envelope_check(const struct envelope *env, char *why, size_t len);
/* A DSN value (NOTIFY, RET, ENVID, BODY) as stored: NULL, or 1 to 100
 * printable ASCII bytes without blanks. */
bool	envelope_dsn_value_ok(const char *v);
/* 0 < t <= QUEUE_TIME_MAX: a time a queue file may hold. */
bool	queue_time_ok(long long t);
void	envelope_free(struct envelope *env);

/* Read msg/ID's envelope; size and offset filled in. */
int	queue_read_envelope(struct queue *q, const char *id,
	    struct envelope *env, struct err *e);
/* The same from fd, msg/ID already open (and locked: queue_lock). */
int	queue_read_envelope_fd(struct queue *q, const char *id, int fd,
	    struct envelope *env, struct err *e);

/* The committed ids, oldest first. */
int	queue_list(struct queue *q, struct strvec *ids, struct err *e);

/*
 * flock msg/ID without waiting: 1 locked (*fd set), 0 busy or gone, -1
 * with e set when it cannot be used (a link, a FIFO, not ours: see
 * safefile.h) or another error.
 */
int	queue_lock(struct queue *q, const char *id, int *fd, struct err *e);
/*
 * flock msg/ID, waiting while another process holds it, until deadline
 * (CLOCK_MONOTONIC): 1 locked (*fd set), 0 no such message, 2 it was
 * there and left the queue while we waited (a deliver run sent it, or
 * something removed it), -1 with e set: ERR_TEMPFAIL when it was still
 * locked at the deadline, else as queue_lock.
 */
int	queue_lock_wait(struct queue *q, const char *id,
	    const struct timespec *deadline, int *fd, struct err *e);
void	queue_unlock(int fd);

/* Append one event line to state/ID and fsync it. On failure the line is
 * taken back (the file is cut to where it ended): the journal is as it was. */
int	queue_state_append(struct queue *q, const char *id, const char *line,
	    struct err *e);

/*
 * Hold bytes of the queue's file system for the journal lines a run is
 * about to need (an unnamed file, O_TMPFILE, its blocks allocated): a
 * line that then finds the disk full gets the room (the ballast goes,
 * queue_state_append tries once more), so a message the server took is
 * never left unrecorded by a disk that filled meanwhile. -1 with e set
 * when the room is not there (send nothing); 0 also where the file
 * system cannot hold room (no promise then). Released by
 * queue_ballast_drop or queue_close; a crash releases it too.
 */
int	queue_ballast_take(struct queue *q, off_t bytes, struct err *e);
void	queue_ballast_drop(struct queue *q);
/* Fold state/ID into st (all waiting if there is none). */
int	queue_state_read(struct queue *q, const char *id,
	    const struct envelope *env, struct msgstate *st, struct err *e);
/* Fold journal text (for tests and recovery tools). */
void	msgstate_fold(struct msgstate *st, size_t nrcpts, const char *text,
	    size_t len);
void	msgstate_free(struct msgstate *st);
/*
 * How long the message has waited, in seconds, at now: since it was
 * queued, less the time it was held (a held message does not age). Never
 * negative, never overflows.
 */
long long queue_age(const struct envelope *env, const struct msgstate *st,
	    time_t now);
const char *rcpt_state_name(enum rcpt_state s);

/* Remove a finished message: msg/ID, fsync msg/, then state/ID. */
int	queue_remove(struct queue *q, const char *id, struct err *e);
/* Only unlink msg/ID: the caller gets msg/ to the disk (dirsync.h);
 * state/ID, if any, goes with the next run's orphan clean-up. */
int	queue_remove_nosync(struct queue *q, const char *id, struct err *e);

/* Remove state/ files whose message is gone (a crash between the two
 * unlinks of queue_remove); *removed counts them. */
int	queue_clean_orphans(struct queue *q, int *removed, struct err *e);

/* Remove tmp/ files older than max_age; *removed counts them. */
int	queue_clean_tmp(struct queue *q, time_t now, long max_age,
	    int *removed, struct err *e);

#endif
