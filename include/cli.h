/*
 * cli.h - command lines: sendmail's flags (with its legacy flags listed
 * explicitly), and those of mailq, deliver and fetch.
 */
#ifndef POSTIE_CLI_H
#define POSTIE_CLI_H

#include <stdbool.h>

#include "err.h"
#include "util.h"

enum sm_mode { SM_SEND, SM_MAILQ, SM_RUNQ, SM_SMTP, SM_ALIASES };
enum sm_delivery { SM_DELIVER_BACKGROUND, SM_DELIVER_QUEUE_ONLY,
	SM_DELIVER_NOW };

struct sendmail_args {
	enum sm_mode	 mode;
	enum sm_delivery delivery;
	const char	*config;	/* -C */
	bool		 verbose;	/* -v */
	bool		 json;		/* --json, with -bp */
	bool		 extract;	/* -t */
	bool		 ignore_dots;	/* -i, -oi */
	const char	*sender;	/* -f, -r */
	const char	*fullname;	/* -F */
	const char	*notify;	/* -N */
	const char	*ret;		/* -R */
	const char	*body;		/* -B */
	const char	*envid;		/* -V */
	struct strvec	 rcpts;
};

/* Parse sendmail's argv (argv[0] is the command name). */
int	cli_sendmail(int argc, char **argv, struct sendmail_args *a,
	    struct err *e);
void	cli_sendmail_free(struct sendmail_args *a);

/* The common flags of mailq, deliver and fetch. */
struct cmd_args {
	const char	*config;	/* -C */
	bool		 verbose;	/* -v */
	bool		 json;		/* mailq --json */
	bool		 runq;		/* mailq -q */
	bool		 now;		/* deliver --now */
	bool		 batch;		/* deliver --batch */
	bool		 dry_run;	/* fetch -n */
	const char	*release;	/* fetch --release CLIENT */
	bool		 all;		/* queue --all */
	struct strvec	 names;		/* deliver and queue ids, fetch jobs */
};

/* allowed: the long and short flags this command takes, e.g. "jq". */
int	cli_command(const char *cmd, int argc, char **argv,
	    const char *allowed, struct cmd_args *a, struct err *e);
void	cli_command_free(struct cmd_args *a);

extern const char cli_sendmail_usage[];

/* A DSN NOTIFY value: NEVER, or a list of SUCCESS, FAILURE, DELAY. */
bool	cli_notify_valid(const char *v);

#endif
