/*
 * dirsync.h - fsync a directory in the background, as a group commit.
 *
 * deliver records a delivered message by unlinking it; the unlink must
 * reach the disk, but waiting for each fsync(msg/) in the SMTP session
 * would cost more than sending the next message. A thread fsyncs the
 * directory whenever unlinks happened since its last fsync (at most one
 * fsync per DIRSYNC_PERIOD_MS, so a fast run shares each fsync among the
 * messages of that period), while the session goes on; dirsync_finish
 * waits until every unlink so far is on disk (ending the thread's pause
 * at once, so the run's end does not wait out a period). A process crash loses
 * nothing either way (the unlink is done); a power cut may undo the
 * unlinks of the last fsync period, and those messages are sent again:
 * the duplicate window, not a loss.
 *
 * The thread also closes the removed files' descriptors: the last close
 * of an unlinked file is where the file system frees it, which costs as
 * much as a small write and need not hold up the session.
 */
#ifndef POSTIE_DIRSYNC_H
#define POSTIE_DIRSYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define DIRSYNC_PERIOD_MS	5
#define DIRSYNC_MAX_FDS		256	/* closed inline when more wait */

struct dirsync {
	int		 fd;
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	pthread_cond_t	 stop_cv;	/* ends the period's pause at the
					 * end (CLOCK_MONOTONIC) */
	unsigned long	 want;		/* unlinks so far */
	unsigned long	 done;		/* unlinks known to be on disk */
	int		 fds[DIRSYNC_MAX_FDS];	/* to close after the fsync */
	size_t		 nfds;
	long		 period_ms;	/* DIRSYNC_PERIOD_MS (tests may
					 * change it, holding mu) */
	bool		 stop;
	bool		 running;
	int		 error;		/* errno of a failed fsync */
};

int	dirsync_start(struct dirsync *d, const char *dir, struct err *e);
/*
 * An unlink happened in the directory: get it to the disk soon. fd, if
 * not -1, is the removed file's descriptor, now the thread's to close.
 */
void	dirsync_removed(struct dirsync *d, int fd);
/* Wait until every unlink so far is on disk, then stop the thread. */
int	dirsync_finish(struct dirsync *d, struct err *e);

#endif
