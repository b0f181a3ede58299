/*
 * fuzz_cli.c - sendmail's command line (cli_sendmail) and the common
 * flags of mailq, deliver and fetch (cli_command). The input is argv
 * after argv[0], one argument per NUL-separated piece.
 *
 * Checked: every recipient is one whole argument as given (a flag's value
 * never becomes a recipient, and no argument is split), and the DSN
 * values are only ever the ones the envelope may hold.
 */
#include <strings.h>

#include "cli.h"
#include "fuzz.h"

static bool
is_argument(int argc, char **argv, const char *s)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], s) == 0)
			return true;
	return false;
}

static void
check_sendmail(int argc, char **argv)
{
	struct sendmail_args a;
	struct err e = { 0 };

	if (cli_sendmail(argc, argv, &a, &e) < 0) {
		FUZZ_CHECK(e.code == ERR_USAGE && e.msg[0] != '\0');
		cli_sendmail_free(&a);
		return;
	}
	for (size_t i = 0; i < a.rcpts.n; i++) {
		const char *r = a.rcpts.v[i];

		FUZZ_CHECK(is_argument(argc, argv, r));
		/* a flag is never taken for a recipient, unless after -- */
		FUZZ_CHECK(r[0] != '-' || r[1] == '\0' ||
		    is_argument(argc, argv, "--"));
	}
	FUZZ_CHECK(a.ret == NULL || strcmp(a.ret, "full") == 0 ||
	    strcmp(a.ret, "hdrs") == 0);
	FUZZ_CHECK(a.body == NULL || strcmp(a.body, "7bit") == 0 ||
	    strcmp(a.body, "8bitmime") == 0);
	if (a.notify != NULL && strcmp(a.notify, "NEVER") != 0) {
		char *copy = xstrdup(a.notify), *save = NULL;

		FUZZ_CHECK(*copy != '\0' && copy[strlen(copy) - 1] != ',');
		for (char *t = strtok_r(copy, ",", &save); t != NULL;
		    t = strtok_r(NULL, ",", &save))
			FUZZ_CHECK(strcasecmp(t, "success") == 0 ||
			    strcasecmp(t, "failure") == 0 ||
			    strcasecmp(t, "delay") == 0);
		free(copy);
	}
	cli_sendmail_free(&a);
}

static void
check_command(const char *cmd, const char *allowed, int argc, char **argv)
{
	struct cmd_args a;
	struct err e = { 0 };

	if (cli_command(cmd, argc, argv, allowed, &a, &e) < 0)
		FUZZ_CHECK(e.code == ERR_USAGE && e.msg[0] != '\0');
	else
		for (size_t i = 0; i < a.names.n; i++)
			FUZZ_CHECK(is_argument(argc, argv, a.names.v[i]));
	cli_command_free(&a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_strndup(data, size);
	char **argv = xcalloc(size + 3, sizeof(*argv));
	int argc = 0;

	argv[argc++] = "sendmail";
	for (size_t pos = 0; pos < size; ) {
		argv[argc++] = buf + pos;
		pos += strlen(buf + pos) + 1;
	}
	argv[argc] = NULL;
	check_sendmail(argc, argv);
	check_command("mailq", "jq", argc, argv);
	check_command("deliver", "Nb", argc, argv);
	check_command("fetch", "n", argc, argv);
	free(argv);
	free(buf);
	return 0;
}
