/*
 * cli.c - command-line parsing. sendmail's flags are a table of what we
 * do with each; the legacy ones we accept and ignore are listed, so an
 * unknown flag is a usage error and never a recipient.
 */
#include <string.h>
#include <strings.h>

#include "cli.h"

const char cli_sendmail_usage[] =
    "usage: sendmail [-t] [-i] [-f sender] [-F name] [-C config] [-v] "
    "[-N dsn] [-R full|hdrs] [-B 7BIT|8BITMIME] [-bm|-bp [--json]|-bs|-q] "
    "[-odq|-odb|-odi] [--] [recipient ...]";

/* Flags taking a value: attached ("-fme@x") or as the next argument
 * (-A c|m: sendmail 8.12's submission or daemon config, ignored). */
static const char value_flags[] = "fFrCNRBVLhXpOA";
/* Flags without a value we accept and ignore (sendmail compatibility). */
static const char ignored_flags[] = "mnUGs";

bool
cli_notify_valid(const char *v)
{
	char buf[64];
	char *save = NULL, *tok;

	if (strcasecmp(v, "never") == 0)
		return true;
	/* strtok_r skips empty items: refuse them here ("a,,b", ",a"). */
	if (strlen(v) >= sizeof(buf) || *v == '\0' || *v == ',' ||
	    strstr(v, ",,") != NULL)
		return false;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save))
		if (strcasecmp(tok, "success") != 0 &&
		    strcasecmp(tok, "failure") != 0 &&
		    strcasecmp(tok, "delay") != 0)
			return false;
	return v[strlen(v) - 1] != ',';
}

static int
set_value(struct sendmail_args *a, char flag, const char *v, struct err *e)
{
	switch (flag) {
	case 'f':
	case 'r':
		a->sender = v;
		return 0;
	case 'F':
		a->fullname = v;
		return 0;
	case 'C':
		a->config = v;
		return 0;
	case 'N':
		if (!cli_notify_valid(v))
			return err_set(e, ERR_USAGE, "-N takes never or a list "
			    "of success,failure,delay, not '%s'", v);
		a->notify = strcasecmp(v, "never") == 0 ? "NEVER" : v;
		return 0;
	case 'R':
		if (strcasecmp(v, "full") != 0 && strcasecmp(v, "hdrs") != 0)
			return err_set(e, ERR_USAGE, "-R takes full or hdrs, "
			    "not '%s'", v);
		a->ret = strcasecmp(v, "full") == 0 ? "full" : "hdrs";
		return 0;
	case 'B':
		if (strcasecmp(v, "7BIT") == 0)
			a->body = "7bit";
		else if (strcasecmp(v, "8BITMIME") == 0)
			a->body = "8bitmime";
		else
			return err_set(e, ERR_USAGE, "-B takes 7BIT or "
			    "8BITMIME, not '%s'", v);
		return 0;
	case 'V':
		a->envid = v;
		return 0;
	default:	/* -L tag, -h hops, -X file, -p proto, -O opt, -A c|m:
			 * ignored */
		return 0;
	}
}

static int
mode_flag(struct sendmail_args *a, const char *m, struct err *e)
{
	if (strcmp(m, "m") == 0)
		a->mode = SM_SEND;
	else if (strcmp(m, "p") == 0)
		a->mode = SM_MAILQ;
	else if (strcmp(m, "s") == 0)
		a->mode = SM_SMTP;
	else if (strcmp(m, "i") == 0)
		a->mode = SM_ALIASES;	/* newaliases: check the aliases */
	else
		return err_set(e, ERR_USAGE, "-b%s is not supported (postie "
		    "takes -bm, -bp, -bs and -bi)", m);
	return 0;
}

static void
option_flag(struct sendmail_args *a, const char *o)
{
	if (strcmp(o, "i") == 0)
		a->ignore_dots = true;
	else if (strcmp(o, "dq") == 0)
		a->delivery = SM_DELIVER_QUEUE_ONLY;
	else if (strcmp(o, "db") == 0)
		a->delivery = SM_DELIVER_BACKGROUND;
	else if (strcmp(o, "di") == 0)
		a->delivery = SM_DELIVER_NOW;
	/* every other -o option (-oem, -oee, -om, -oQ...) is ignored */
}

int
cli_sendmail(int argc, char **argv, struct sendmail_args *a, struct err *e)
{
	bool flags_done = false;

	memset(a, 0, sizeof(*a));
	sv_init(&a->rcpts);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (flags_done || arg[0] != '-' || arg[1] == '\0') {
			sv_push(&a->rcpts, arg);
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			flags_done = true;
			continue;
		}
		if (strcmp(arg, "--json") == 0) {	/* -bp --json = mailq --json */
			a->json = true;
			continue;
		}
		switch (arg[1]) {
		case 'b':
			if (mode_flag(a, arg + 2, e) < 0)
				return -1;
			continue;
		case 'o':
			option_flag(a, arg + 2);
			continue;
		case 'e':	/* -e* error modes: ignored */
			continue;
		case 'q':	/* -q, -q30m, -qI...: run the queue once */
			a->mode = SM_RUNQ;
			continue;
		default:
			break;
		}
		if (strchr(value_flags, arg[1]) != NULL) {
			const char *v = arg[2] ? arg + 2 : NULL;

			if (v == NULL) {
				if (i + 1 >= argc)
					return err_set(e, ERR_USAGE, "-%c needs "
					    "a value", arg[1]);
				v = argv[++i];
			}
			if (set_value(a, arg[1], v, e) < 0)
				return -1;
			continue;
		}
		/* a cluster of flags without values: -t, -i, -v, -ti... */
		for (const char *c = arg + 1; *c; c++) {
			if (*c == 't')
				a->extract = true;
			else if (*c == 'i')
				a->ignore_dots = true;
			else if (*c == 'v')
				a->verbose = true;
			else if (*c == 'I')	/* sendmail's -I: newaliases */
				a->mode = SM_ALIASES;
			else if (strchr(ignored_flags, *c) == NULL)
				return err_set(e, ERR_USAGE, "unknown flag "
				    "'-%c' in '%s'", *c, arg);
		}
	}
	if (a->json && a->mode != SM_MAILQ)
		return err_set(e, ERR_USAGE, "--json goes with -bp (the queue "
		    "listing), not with sending");
	return 0;
}

void
cli_sendmail_free(struct sendmail_args *a)
{
	sv_free(&a->rcpts);
}

int
cli_command(const char *cmd, int argc, char **argv, const char *allowed,
    struct cmd_args *a, struct err *e)
{
	bool flags_done = false;

	memset(a, 0, sizeof(*a));
	sv_init(&a->names);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (flags_done || arg[0] != '-') {
			sv_push(&a->names, arg);
			continue;
		}
		if (strcmp(arg, "--") == 0)
			flags_done = true;
		else if (strcmp(arg, "-C") == 0) {
			if (i + 1 >= argc)
				return err_set(e, ERR_USAGE, "-C needs a "
				    "config file");
			a->config = argv[++i];
		} else if (strncmp(arg, "-C", 2) == 0)
			a->config = arg + 2;
		else if (strcmp(arg, "-v") == 0)
			a->verbose = true;
		else if (strcmp(arg, "--json") == 0 && strchr(allowed, 'j'))
			a->json = true;
		else if (strcmp(arg, "-q") == 0 && strchr(allowed, 'q'))
			a->runq = true;
		else if (strcmp(arg, "--now") == 0 && strchr(allowed, 'N'))
			a->now = true;
		else if (strcmp(arg, "--batch") == 0 && strchr(allowed, 'b'))
			a->batch = true;
		else if (strcmp(arg, "--all") == 0 && strchr(allowed, 'a'))
			a->all = true;
		else if (strcmp(arg, "-n") == 0 && strchr(allowed, 'n'))
			a->dry_run = true;
		else if (strcmp(arg, "--release") == 0 &&
		    strchr(allowed, 'r')) {
			if (i + 1 >= argc)
				return err_set(e, ERR_USAGE, "--release needs "
				    "a client name");
			a->release = argv[++i];
		}
		else
			return err_set(e, ERR_USAGE, "unknown flag '%s' (see "
			    "postie(1) for the flags of %s)", arg, cmd);
	}
	return 0;
}

void
cli_command_free(struct cmd_args *a)
{
	sv_free(&a->names);
}
