/*
 * runner.h - the commands fetch runs (`after', an MDA), run by a small
 * process started before fetch confines itself (confine.h): Landlock
 * passes to every child, and a command may need to write where fetch
 * may not (procmail into ~/Mail, notmuch into its database).
 *
 * The runner is forked with its tasks, fixed from the config: commands
 * (argv, no shell) and mutt `mailboxes' files to write. The confined
 * fetch asks it over a socket to do task N, with at most the two
 * expansions below and a stdin fd (passed with SCM_RIGHTS); it cannot
 * name a command, a path or an argument of its own. Expansions are
 * checked by the runner: a Maildir folder or file name, nothing else
 * (no '/', no space or control character, not "." or "..", no leading
 * '-'). A command runs unconfined, as the user, in a process group of
 * its own, stdout to /dev/null, bounded in time (killed after it); the
 * runner gives back its exit status or signal and the first line of its
 * stderr. Several requests (the jobs run at once) run at once.
 */
#ifndef POSTIE_RUNNER_H
#define POSTIE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "util.h"

#define RUNNER_LINE_MAX	200	/* bytes of stderr's first line kept */
#define RUNNER_TIMEOUT_MAX 3600	/* seconds a command may be given */

/* The expansions of a command's words: "%F" the folder ("INBOX",
 * ".lists.dev"), "%N" the message's name; "%%" is "%". */
enum { RUN_F, RUN_N, RUN_NEXPAND };

enum runner_kind { TASK_COMMAND, TASK_MAILBOXES };

struct runner_task {
	enum runner_kind	 kind;
	const struct strvec	*argv;	/* TASK_COMMAND */
	bool			 finish;	/* TASK_COMMAND: a SIGINT,
					 * SIGTERM or SIGHUP (^C reaches the
					 * runner too) does not cut it short:
					 * the mda, whose delivery cut short
					 * unrecorded is handed again */
	const char		*file;	/* TASK_MAILBOXES: the file ... */
	struct strvec		 locals;	/* ... for these Maildirs */
};

struct runner {
	pid_t	pid;	/* 0: not started */
	int	fd;	/* to the runner; -1 */
};

struct run_result {
	bool	exited;		/* else killed by sig */
	int	code;		/* exit status */
	int	sig;
	bool	timed_out;	/* killed at the deadline */
	char	line[RUNNER_LINE_MAX + 1];	/* stderr's first line,
						 * sanitized; "" */
};

/* Fork the runner with its tasks (copied by the fork): 0, or -1 and *e. */
int	runner_start(struct runner *r, const struct runner_task *tasks,
	    size_t ntasks, struct err *e);

/*
 * Run command task `task' with expand[RUN_F], expand[RUN_N] (NULL: not
 * given; a word that needs it is refused), stdin_fd (-1: /dev/null), for
 * at most timeout_s seconds: 0 and *res (whatever the command did), or
 * -1 and *e when it did not run (refused, the runner gone).
 */
int	runner_run(struct runner *r, size_t task, const char *const expand[],
	    int stdin_fd, int timeout_s, struct run_result *res,
	    struct err *e);

/* Write mailboxes task `task' if its line changed: 0 (*changed), or -1. */
int	runner_mailboxes(struct runner *r, size_t task, bool *changed,
	    struct err *e);

/* Tell the runner to go (it ends once no process holds its socket). */
void	runner_stop(struct runner *r);

/* --- exported for the unit tests --- */

/* May s be expanded into a command's argument? NULL, or why not. */
const char *runner_value_problem(const char *s);

/* argv with its expansions: 0 and *out, or -1 and *why. */
int	runner_expand(const struct strvec *argv, const char *const expand[],
	    struct strvec *out, const char **why);

#endif
