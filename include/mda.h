/*
 * mda.h - run a mail delivery agent on one message: execv (no shell),
 * the message on stdin, its stdout thrown away, the first line of its
 * stderr kept, bounded in time. fetch hands each message through here;
 * this is the one place that starts the process, so where it starts
 * (here, or a runner process) can change behind mda_run.
 */
#ifndef POSTIE_MDA_H
#define POSTIE_MDA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "util.h"

#define MDA_ERRLINE_MAX	200	/* bytes of its stderr's first line kept */
#define MDA_EX_TEMPFAIL	75	/* "try again later" (sysexits) */

/* The program to run, checked once (trust.h) and run by that path. */
struct mda {
	char	*prog;		/* the real path trust_program gave */
	char	*shown;		/* argv[0] as the config says it */
};

enum mda_outcome {
	MDA_DELIVERED,		/* exit 0: the MDA has it */
	MDA_DEFERRED,		/* exit 75: keep it, try again later */
	MDA_FAILED		/* any other exit, a signal, the timeout */
};

struct mda_result {
	int	status;		/* as waitpid gives it */
	bool	timed_out;	/* killed after the timeout */
	char	errline[MDA_ERRLINE_MAX];	/* printable, may be "" */
};

/* Check argv[0] (the trust rule of trust.h); 0, or -1 and e. */
int	mda_open(struct mda *m, const struct strvec *argv, struct err *e);
void	mda_close(struct mda *m);

/*
 * The template with "%F" (folder), "%N" (the message's name) and "%%"
 * expanded in every argument, into out (initialized by the caller).
 */
void	mda_expand(const struct strvec *tmpl, const char *folder,
	    const char *name, struct strvec *out);

/*
 * Run m with argv (argv[0] shown to the program) and msg_fd's file, from
 * offset, on stdin; wait at most timeout seconds, then kill it (its
 * process group). It runs under a keeper process that leads the group
 * and ends as the MDA ends; a caller killed outright has the kernel send
 * the keeper SIGTERM (PR_SET_PDEATHSIG), and the keeper kills the group:
 * an MDA, or a child of it, left running would deliver what the next
 * run hands it again. 0 and *r when it ran (whatever its exit), -1 and
 * e when it could not be started.
 */
int	mda_run(const struct mda *m, char *const argv[], int msg_fd,
	    off_t offset, long timeout, struct mda_result *r, struct err *e);

enum mda_outcome mda_outcome(const struct mda_result *r);

/* "exit 1: why", "killed by signal 9", "no exit within 60 s", in out. */
void	mda_describe(const struct mda_result *r, long timeout, char *out,
	    size_t len);

#endif
