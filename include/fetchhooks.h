/*
 * fetchhooks.h - what fetch sets up before it talks to a server, and
 * runs after a job: the command runner (runner.h), the confinement
 * (confine.h), the `after' command and the `mailboxes' file.
 *
 * Before any connection: the runner is forked (unconfined) with every
 * chosen job's `mda' and `after' commands and `mailboxes' file as its
 * tasks; then
 * the local Maildirs and the state directory are made, and the process
 * confines itself: it may write beneath the chosen jobs' local Maildirs
 * and the state directory (and the log file it holds open), read its
 * config, the SSH keys and known_hosts it names, ~/.ssh, /etc/ssh, the
 * CA store, the resolver's and NSS's files in /etc, /usr and /lib (its
 * libraries), its own binary, /dev/null and /dev/urandom; it executes
 * nothing. The `mda', `after' and `mailboxes' run in the runner: as the
 * user, unconfined.
 */
#ifndef POSTIE_FETCHHOOKS_H
#define POSTIE_FETCHHOOKS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "mda.h"
#include "runner.h"

#define AFTER_TIMEOUT	600	/* seconds an `after' command may take */

struct fetch_hooks {
	struct runner		 runner;
	struct runner_task	*tasks;
	size_t			 ntasks;
	size_t			*after;		/* per job: its task, or
						 * SIZE_MAX */
	size_t			*mailboxes;	/* per job: its task, or
						 * SIZE_MAX */
	size_t			*mda;		/* per job: its task, or
						 * SIZE_MAX */
	int			 abi;	/* Landlock ABI confined with, 0 */
};

/* Start the runner, make the directories, confine: 0, or -1 and *e (a
 * confinement that failed half-way: nothing may run). */
int	fetch_hooks_start(struct fetch_hooks *h, const struct config *cfg,
	    const bool *chosen, bool dry_run, bool release, struct log *log,
	    struct err *e);

/* After job k (fetched: messages it brought): the mailboxes file, then
 * the after command if it brought mail. A failure is logged and said on
 * stderr; it does not change the job's result (the mail is safe). */
void	fetch_hooks_job(struct fetch_hooks *h, const struct config *cfg,
	    size_t k, unsigned long fetched, struct log *log);

/*
 * Hand a message to job k's mda through the runner: the mda's argv with
 * folder and name expanded, stdin msg_fd's file from its start, at most
 * timeout seconds. 0 and *r (whatever the mda did), -1 and *e when it
 * did not run.
 */
int	fetch_hooks_mda(struct fetch_hooks *h, size_t k, const char *folder,
	    const char *name, int msg_fd, long timeout, struct mda_result *r,
	    struct err *e);

void	fetch_hooks_end(struct fetch_hooks *h);

/* The state directory of fetch (locks, journals): beside the queue. */
char	*fetch_state_dir(const struct config *cfg);

#endif
