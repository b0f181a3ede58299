/*
 * fetchsync.h - a fetch job's downloads made durable in the background.
 *
 * A batch's downloads are fsync'd before they are taken into new/ (and
 * before the server's copies go). Done in the SFTP loop, the fsyncs stop
 * the downloads of the next batch while the disk works; a thread of this
 * module fsyncs one batch while the loop goes on with the next, and the
 * loop takes the batch in (links, directory fsyncs, removes) once the
 * thread says it is on disk. One batch at a time; nothing else is shared.
 *
 * A batch is made durable by one syncfs(2) for each file system its
 * files are on, not an fsync for each file: every fsync of a new file
 * waits for a journal commit of its own, so 64 files cost 64 commits
 * where syncfs costs one (measured: the thread's time for 2000 messages
 * went from 0.34-0.43 s to 0.11 s). syncfs reports write errors only
 * from Linux 5.8 on; before that each file is fsync'd as before.
 */
#ifndef POSTIE_FETCHSYNC_H
#define POSTIE_FETCHSYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct fetchsync {
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		*fds;		/* the batch's files (not owned) */
	size_t		 n, cap;
	bool		 busy;		/* a batch is being synced */
	bool		 stop;
	bool		 running;	/* the thread runs */
	size_t		 failed;	/* index of the file that failed, or n */
	int		 error;		/* its errno */
	bool		 per_file;	/* fsync each file (syncfs would not
					 * report errors: Linux before 5.8) */
	size_t		 syncs;		/* sync calls the last batch took */
	int		 wake[2];	/* a byte in wake[0] when a batch is
					 * done: the SFTP loop polls it
					 * (-1: none) */
};

/* Start the thread; false if it cannot be had (then sync inline).
 * s->wake[0] becomes readable each time a batch is done. */
bool	fetchsync_start(struct fetchsync *s);

/* Hand over a batch (the descriptors stay the caller's, open, until
 * fetchsync_wait says it is done). Only when idle. */
void	fetchsync_submit(struct fetchsync *s, const int *fds, size_t n);

/* Is the batch handed over done (or none was)? */
bool	fetchsync_idle(struct fetchsync *s);

/* Wait for the batch; -1 with *failed (its index) and errno if a file
 * could not be made durable, else 0. */
int	fetchsync_wait(struct fetchsync *s, size_t *failed);

/* Stop the thread (after fetchsync_wait). */
void	fetchsync_stop(struct fetchsync *s);

#endif
