/*
 * main.c - postie acts as sendmail, mailq, deliver or fetch by the name
 * it is called by, or by "postie COMMAND" (also "postie queue ..").
 * Errors are printed and mapped to sysexits(3) codes here and nowhere
 * else.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifndef POSTIE_VERSION
#define POSTIE_VERSION "0.1"
#endif

struct command {
	const char	*name;
	int		(*run)(int, char **, struct err *);
};

static const struct command commands[] = {
	{ "sendmail",	cmd_sendmail },
	{ "mailq",	cmd_mailq },
	{ "deliver",	cmd_deliver },
	{ "fetch",	cmd_fetch },
	{ "queue",	cmd_queue },
	{ "newaliases",	cmd_newaliases },
};

static int
usage(FILE *fp)
{
	fprintf(fp, "usage: postie sendmail|mailq|deliver|fetch|newaliases "
	    "[flags...]\n"
	    "       postie queue show|hold|release|remove (--all | ID...)\n"
	    "       postie --version\n"
	    "See postie(1).\n");
	return fp == stdout ? 0 : 64;
}

static const struct command *
find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	const struct command *cmd;
	struct err e = { ERR_OK, "" };

	signal(SIGPIPE, SIG_IGN);
	/*
	 * Every command reads postie.conf, which may hold passwords, and
	 * deliver and fetch hold what password-command printed: no core
	 * dump (and no ptrace by the same user) may expose them.
	 */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	name = name ? name + 1 : argv[0];
	if ((cmd = find(name)) == NULL) {
		/* "postie COMMAND ..." */
		if (argc < 2)
			return usage(stderr);
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
			return usage(stdout);
		if (strcmp(argv[1], "--version") == 0) {
			printf("postie %s\n", POSTIE_VERSION);
			return 0;
		}
		if ((cmd = find(argv[1])) == NULL) {
			fprintf(stderr, "postie: unknown command '%s'\n",
			    argv[1]);
			return usage(stderr);
		}
		argv++;
		argc--;
		name = cmd->name;
	}
	/* "deliver --help": no command takes --help otherwise (sendmail's
	 * -h is its hop count, so only the long form) */
	if (argc == 2 && strcmp(argv[1], "--help") == 0)
		return usage(stdout);
	if (cmd->run(argc, argv, &e) == 0)
		return 0;
	fprintf(stderr, "%s: %s\n", name, e.msg);
	return err_exit_code(e.code);
}
