/* test_cli.c - sendmail's command line as real clients write it, and the
 * flags of mailq, deliver and fetch. */
#include "testutil.h"

#include "cli.h"
#include "qctl.h"
#include "textout.h"

static int
sm_run(struct sendmail_args *a, struct err *e, char **argv)
{
	int argc = 0;

	while (argv[argc] != NULL)
		argc++;
	memset(e, 0, sizeof(*e));
	return cli_sendmail(argc, argv, a, e);
}

/* SM(&a, &e, "-t", "x@y"): argv[0] is "sendmail". */
#define SM(a, e, ...) \
	sm_run((a), (e), (char *[]){ "sendmail", __VA_ARGS__, NULL })

static void
check_rcpts(const struct sendmail_args *a, size_t n, ...)
{
	va_list ap;

	assert_int_equal(a->rcpts.n, n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(a->rcpts.v[i], va_arg(ap, const char *));
	va_end(ap);
}

/* The parse fails with ERR_USAGE and exactly this message. */
static void
sm_fails(char **argv, const char *want)
{
	struct sendmail_args a;
	struct err e;

	if (sm_run(&a, &e, argv) != -1) {
		cli_sendmail_free(&a);
		fail_msg("accepted, wanted \"%s\"", want);
	}
	cli_sendmail_free(&a);
	assert_int_equal(e.code, ERR_USAGE);
	assert_string_equal(e.msg, want);
}

#define SM_FAILS(want, ...) \
	sm_fails((char *[]){ "sendmail", __VA_ARGS__, NULL }, (want))

/* --- real clients ------------------------------------------------------ */

static void
test_mutt(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-oem", "-oi", "-B8BITMIME", "-f",
	    "me@x.org", "-N", "failure,delay", "--", "a@b", "c@d"), 0);
	assert_int_equal(a.mode, SM_SEND);
	assert_int_equal(a.delivery, SM_DELIVER_BACKGROUND);
	assert_true(a.ignore_dots);
	assert_false(a.extract);
	assert_false(a.verbose);
	assert_string_equal(a.body, "8bitmime");
	assert_string_equal(a.sender, "me@x.org");
	assert_string_equal(a.notify, "failure,delay");
	assert_null(a.fullname);
	assert_null(a.config);
	assert_null(a.ret);
	assert_null(a.envid);
	check_rcpts(&a, 2, "a@b", "c@d");
	cli_sendmail_free(&a);
}

static void
test_cronie(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-FCronDaemon", "-i", "-B8BITMIME",
	    "-oem", "user"), 0);
	assert_int_equal(a.mode, SM_SEND);
	assert_string_equal(a.fullname, "CronDaemon");
	assert_true(a.ignore_dots);
	assert_string_equal(a.body, "8bitmime");
	assert_null(a.sender);
	assert_false(a.extract);
	check_rcpts(&a, 1, "user");
	cli_sendmail_free(&a);
}

static void
test_git_send_email(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-i", "a@b", "c@d"), 0);
	assert_true(a.ignore_dots);
	assert_false(a.extract);
	assert_null(a.sender);
	check_rcpts(&a, 2, "a@b", "c@d");
	cli_sendmail_free(&a);
}

static void
test_no_arguments(void **state)
{
	struct sendmail_args a;
	struct err e;
	char *argv[] = { "sendmail", NULL };

	(void)state;
	assert_int_equal(sm_run(&a, &e, argv), 0);
	assert_int_equal(a.mode, SM_SEND);
	assert_int_equal(a.delivery, SM_DELIVER_BACKGROUND);
	assert_false(a.extract);
	assert_false(a.ignore_dots);
	assert_false(a.verbose);
	assert_null(a.sender);
	assert_null(a.config);
	check_rcpts(&a, 0);
	cli_sendmail_free(&a);
}

/* --- flags ------------------------------------------------------------- */

static void
test_fullname_is_one_argument(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-F", "John Smith", "-t"), 0);
	assert_string_equal(a.fullname, "John Smith");
	assert_true(a.extract);
	check_rcpts(&a, 0);
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-F", "Smith, John <js@x.org>", "a@b"),
	    0);
	assert_string_equal(a.fullname, "Smith, John <js@x.org>");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-F", "", "a@b"), 0);
	assert_string_equal(a.fullname, "");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);
}

static void
test_extract_and_clusters(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-t"), 0);
	assert_true(a.extract);
	assert_false(a.ignore_dots);
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-ti"), 0);
	assert_true(a.extract);
	assert_true(a.ignore_dots);
	assert_false(a.verbose);
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-it"), 0);
	assert_true(a.extract);
	assert_true(a.ignore_dots);
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-tiv", "extra@x"), 0);
	assert_true(a.extract);
	assert_true(a.ignore_dots);
	assert_true(a.verbose);
	check_rcpts(&a, 1, "extra@x");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-t", "-i"), 0);
	assert_true(a.extract);
	assert_true(a.ignore_dots);
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-v"), 0);
	assert_true(a.verbose);
	assert_false(a.extract);
	cli_sendmail_free(&a);
}

static void
test_sender_flags(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	/* -f '' is the null sender: set, and empty */
	assert_int_equal(SM(&a, &e, "-f", "", "a@b"), 0);
	assert_non_null(a.sender);
	assert_string_equal(a.sender, "");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-fme@x.org", "a@b"), 0);
	assert_string_equal(a.sender, "me@x.org");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-r", "me@x.org", "a@b"), 0);
	assert_string_equal(a.sender, "me@x.org");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-rme@x.org"), 0);
	assert_string_equal(a.sender, "me@x.org");
	check_rcpts(&a, 0);
	cli_sendmail_free(&a);

	/* the value of -f is taken whatever it looks like */
	assert_int_equal(SM(&a, &e, "-f", "-t", "a@b"), 0);
	assert_string_equal(a.sender, "-t");
	assert_false(a.extract);
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);
}

static void
test_config_flag(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-C", "/etc/alt.conf", "a@b"), 0);
	assert_string_equal(a.config, "/etc/alt.conf");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-C/etc/alt.conf", "a@b"), 0);
	assert_string_equal(a.config, "/etc/alt.conf");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);
}

static void
test_modes(void **state)
{
	static const struct {
		const char	*flag;
		enum sm_mode	 mode;
	} cases[] = {
		{ "-bm", SM_SEND },
		{ "-bp", SM_MAILQ },
		{ "-bs", SM_SMTP },
		{ "-bi", SM_ALIASES },
		{ "-I", SM_ALIASES },	/* sendmail's newaliases */
		{ "-q", SM_RUNQ },
		{ "-q30m", SM_RUNQ },
		{ "-qf", SM_RUNQ },
	};
	struct sendmail_args a;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { "sendmail", (char *)cases[i].flag, NULL };

		assert_int_equal(sm_run(&a, &e, argv), 0);
		if (a.mode != cases[i].mode)
			fail_msg("%s: mode %d, want %d", cases[i].flag,
			    a.mode, cases[i].mode);
		check_rcpts(&a, 0);
		cli_sendmail_free(&a);
	}

	/* the last mode flag wins */
	assert_int_equal(SM(&a, &e, "-bp", "-bm"), 0);
	assert_int_equal(a.mode, SM_SEND);
	cli_sendmail_free(&a);
	assert_int_equal(SM(&a, &e, "-bs", "-bp"), 0);
	assert_int_equal(a.mode, SM_MAILQ);
	cli_sendmail_free(&a);
}

static void
test_delivery_modes(void **state)
{
	static const struct {
		const char		*flag;
		enum sm_delivery	 d;
	} cases[] = {
		{ "-odq", SM_DELIVER_QUEUE_ONLY },
		{ "-odb", SM_DELIVER_BACKGROUND },
		{ "-odi", SM_DELIVER_NOW },
	};
	struct sendmail_args a;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* start from another mode so each flag visibly changes it */
		char *argv[] = { "sendmail",
		    i == 0 ? "-odi" : "-odq", (char *)cases[i].flag, "a@b",
		    NULL };

		assert_int_equal(sm_run(&a, &e, argv), 0);
		if (a.delivery != cases[i].d)
			fail_msg("%s: delivery %d, want %d", cases[i].flag,
			    a.delivery, cases[i].d);
		assert_int_equal(a.mode, SM_SEND);
		check_rcpts(&a, 1, "a@b");
		cli_sendmail_free(&a);
	}
}

static void
test_dsn_flags(void **state)
{
	static const struct {
		const char	*n;
		const char	*want;
	} notify[] = {
		{ "never", "NEVER" },
		{ "NEVER", "NEVER" },
		{ "Never", "NEVER" },
		{ "success", "success" },
		{ "failure", "failure" },
		{ "delay", "delay" },
		{ "success,failure,delay", "success,failure,delay" },
		{ "FAILURE,DELAY", "FAILURE,DELAY" },
	};
	struct sendmail_args a;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(notify) / sizeof(notify[0]); i++) {
		char *argv[] = { "sendmail", "-N", (char *)notify[i].n, NULL };

		if (sm_run(&a, &e, argv) != 0)
			fail_msg("-N %s refused: %s", notify[i].n, e.msg);
		assert_string_equal(a.notify, notify[i].want);
		cli_sendmail_free(&a);
	}

	assert_int_equal(SM(&a, &e, "-Nsuccess"), 0);
	assert_string_equal(a.notify, "success");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-R", "full"), 0);
	assert_string_equal(a.ret, "full");
	cli_sendmail_free(&a);
	assert_int_equal(SM(&a, &e, "-R", "HDRS"), 0);
	assert_string_equal(a.ret, "hdrs");
	cli_sendmail_free(&a);
	assert_int_equal(SM(&a, &e, "-Rhdrs"), 0);
	assert_string_equal(a.ret, "hdrs");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-B", "7BIT"), 0);
	assert_string_equal(a.body, "7bit");
	cli_sendmail_free(&a);
	assert_int_equal(SM(&a, &e, "-B", "8bitmime"), 0);
	assert_string_equal(a.body, "8bitmime");
	cli_sendmail_free(&a);

	assert_int_equal(SM(&a, &e, "-V", "envid-123", "a@b"), 0);
	assert_string_equal(a.envid, "envid-123");
	check_rcpts(&a, 1, "a@b");
	cli_sendmail_free(&a);
}

static void
test_ignored_legacy_flags(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-oem", "-oee", "-L", "tag", "-h", "5",
	    "-em", "-m", "-n", "-U", "-G", "-X", "file", "-O", "opt=val",
	    "-pprot", "-oQ/var/spool", "-om", "-ep", "-s", "-Am", "-A", "c",
	    "-Ac", "a@b"), 0);
	/* none of the values became a recipient (-A c: sendmail 8.12's
	 * submission config, not a local recipient c), nothing changed */
	check_rcpts(&a, 1, "a@b");
	assert_int_equal(a.mode, SM_SEND);
	assert_int_equal(a.delivery, SM_DELIVER_BACKGROUND);
	assert_false(a.ignore_dots);
	assert_false(a.extract);
	assert_false(a.verbose);
	assert_null(a.sender);
	assert_null(a.fullname);
	assert_null(a.config);
	assert_null(a.notify);
	assert_null(a.ret);
	assert_null(a.body);
	assert_null(a.envid);
	cli_sendmail_free(&a);

	/* attached values too */
	assert_int_equal(SM(&a, &e, "-Ltag", "-h5", "-Xfile", "-Oopt=val",
	    "-p", "esmtp", "b@c"), 0);
	check_rcpts(&a, 1, "b@c");
	cli_sendmail_free(&a);
}

static void
test_flags_after_recipients(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "a@b", "-t", "-f", "me@x", "c@d", "-oi"),
	    0);
	assert_true(a.extract);
	assert_true(a.ignore_dots);
	assert_string_equal(a.sender, "me@x");
	check_rcpts(&a, 2, "a@b", "c@d");
	cli_sendmail_free(&a);
}

static void
test_double_dash(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-t", "--", "-x", "-f", "--", "a@b"), 0);
	assert_true(a.extract);
	assert_null(a.sender);
	check_rcpts(&a, 4, "-x", "-f", "--", "a@b");
	cli_sendmail_free(&a);

	/* a lone "-" is no flag: it is kept as an argument */
	assert_int_equal(SM(&a, &e, "-", "-i"), 0);
	assert_true(a.ignore_dots);
	check_rcpts(&a, 1, "-");
	cli_sendmail_free(&a);

	/* "--" as the value of a flag is that value */
	assert_int_equal(SM(&a, &e, "-F", "--", "-t"), 0);
	assert_string_equal(a.fullname, "--");
	assert_true(a.extract);
	check_rcpts(&a, 0);
	cli_sendmail_free(&a);
}

/* --- errors ------------------------------------------------------------ */

static void
test_usage_errors(void **state)
{
	(void)state;
	SM_FAILS("unknown flag '-Z' in '-Z'", "-Z", "a@b");
	SM_FAILS("unknown flag '-Z' in '-tZ'", "-tZ", "a@b");
	SM_FAILS("unknown flag '-x' in '-x'", "a@b", "-x");
	SM_FAILS("unknown flag '--' in '---'", "---");
	SM_FAILS("unknown flag '--' in '--help'", "--help");
	SM_FAILS("-bd is not supported (postie takes -bm, -bp, -bs and -bi)",
	    "-bd");
	SM_FAILS("-bD is not supported (postie takes -bm, -bp, -bs and -bi)",
	    "-bD");
	SM_FAILS("-bpx is not supported (postie takes -bm, -bp, -bs and -bi)",
	    "-bpx");
	SM_FAILS("-f needs a value", "a@b", "-f");
	SM_FAILS("-r needs a value", "-r");
	SM_FAILS("-F needs a value", "-i", "-F");
	SM_FAILS("-C needs a value", "-C");
	SM_FAILS("-N needs a value", "-N");
	SM_FAILS("-L needs a value", "-L");
	SM_FAILS("-N takes never or a list of success,failure,delay, not "
	    "'sometimes'", "-N", "sometimes");
	SM_FAILS("-N takes never or a list of success,failure,delay, not "
	    "'never,success'", "-N", "never,success");
	SM_FAILS("-N takes never or a list of success,failure,delay, not "
	    "'success,never'", "-N", "success,never");
	SM_FAILS("-N takes never or a list of success,failure,delay, not ''",
	    "-N", "");
	SM_FAILS("-N takes never or a list of success,failure,delay, not "
	    "'success,'", "-N", "success,");
	SM_FAILS("-N takes never or a list of success,failure,delay, not "
	    "',success'", "-N", ",success");
	SM_FAILS("-N takes never or a list of success,failure,delay, not "
	    "'success,,delay'", "-N", "success,,delay");
	SM_FAILS("-N takes never or a list of success,failure,delay, not "
	    "'success failure'", "-N", "success failure");
	SM_FAILS("-R takes full or hdrs, not 'bogus'", "-R", "bogus");
	SM_FAILS("-R takes full or hdrs, not ''", "-R", "");
	SM_FAILS("-B takes 7BIT or 8BITMIME, not '8BIT'", "-B", "8BIT");
	SM_FAILS("-B takes 7BIT or 8BITMIME, not 'binarymime'", "-B",
	    "binarymime");
}

static void
test_usage_line(void **state)
{
	(void)state;
	assert_int_equal(strncmp(cli_sendmail_usage, "usage: sendmail ", 16),
	    0);
	assert_null(strchr(cli_sendmail_usage, '\n'));
}

/* --- mailq, deliver, fetch --------------------------------------------- */

static int
cmd_run(const char *cmd, const char *allowed, struct cmd_args *a,
    struct err *e, char **argv)
{
	int argc = 0;

	while (argv[argc] != NULL)
		argc++;
	memset(e, 0, sizeof(*e));
	return cli_command(cmd, argc, argv, allowed, a, e);
}

#define CMD(cmd, allowed, a, e, ...) \
	cmd_run((cmd), (allowed), (a), (e), \
	    (char *[]){ (char *)(cmd), __VA_ARGS__, NULL })

static void
cmd_fails(const char *cmd, const char *allowed, char **argv,
    const char *want)
{
	struct cmd_args a;
	struct err e;

	if (cmd_run(cmd, allowed, &a, &e, argv) != -1) {
		cli_command_free(&a);
		fail_msg("%s accepted, wanted \"%s\"", cmd, want);
	}
	cli_command_free(&a);
	assert_int_equal(e.code, ERR_USAGE);
	assert_string_equal(e.msg, want);
}

#define CMD_FAILS(cmd, allowed, want, ...) \
	cmd_fails((cmd), (allowed), \
	    (char *[]){ (char *)(cmd), __VA_ARGS__, NULL }, (want))

static void
test_mailq_flags(void **state)
{
	struct cmd_args a;
	struct err e;
	char *none[] = { "mailq", NULL };

	(void)state;
	assert_int_equal(cmd_run("mailq", "jq", &a, &e, none), 0);
	assert_false(a.json);
	assert_false(a.runq);
	assert_false(a.verbose);
	assert_null(a.config);
	assert_int_equal(a.names.n, 0);
	cli_command_free(&a);

	assert_int_equal(CMD("mailq", "jq", &a, &e, "--json", "-v", "-C",
	    "/etc/alt.conf"), 0);
	assert_true(a.json);
	assert_false(a.runq);
	assert_true(a.verbose);
	assert_string_equal(a.config, "/etc/alt.conf");
	cli_command_free(&a);

	assert_int_equal(CMD("mailq", "jq", &a, &e, "-q", "-C/x.conf"), 0);
	assert_true(a.runq);
	assert_false(a.json);
	assert_string_equal(a.config, "/x.conf");
	cli_command_free(&a);

	CMD_FAILS("mailq", "jq", "unknown flag '--now' (see postie(1) for the flags of mailq)", "--now");
	CMD_FAILS("mailq", "jq", "unknown flag '-n' (see postie(1) for the flags of mailq)", "-n");
	CMD_FAILS("mailq", "jq", "unknown flag '-j' (see postie(1) for the flags of mailq)", "-j");
	CMD_FAILS("mailq", "jq", "unknown flag '--jsonx' (see postie(1) for the flags of mailq)", "--jsonx");
	CMD_FAILS("mailq", "jq", "unknown flag '-vq' (see postie(1) for the flags of mailq)", "-vq");
	CMD_FAILS("mailq", "jq", "-C needs a config file", "-v", "-C");
}

static void
test_deliver_flags(void **state)
{
	struct cmd_args a;
	struct err e;

	(void)state;
	assert_int_equal(CMD("deliver", "N", &a, &e, "-v", "--now",
	    "1700000000.1.1", "1700000001.2.2"), 0);
	assert_true(a.verbose);
	assert_true(a.now);
	assert_false(a.json);
	assert_false(a.runq);
	assert_false(a.dry_run);
	assert_int_equal(a.names.n, 2);
	assert_string_equal(a.names.v[0], "1700000000.1.1");
	assert_string_equal(a.names.v[1], "1700000001.2.2");
	cli_command_free(&a);

	/* flags and names in any order; "--" ends the flags */
	assert_int_equal(CMD("deliver", "N", &a, &e, "id1", "-v", "id2",
	    "--", "-weird", "--now"), 0);
	assert_true(a.verbose);
	assert_false(a.now);
	assert_int_equal(a.names.n, 4);
	assert_string_equal(a.names.v[0], "id1");
	assert_string_equal(a.names.v[1], "id2");
	assert_string_equal(a.names.v[2], "-weird");
	assert_string_equal(a.names.v[3], "--now");
	cli_command_free(&a);

	CMD_FAILS("deliver", "N", "unknown flag '--json' (see postie(1) for the flags of deliver)", "--json");
	CMD_FAILS("deliver", "N", "unknown flag '-q' (see postie(1) for the flags of deliver)", "-q");
	CMD_FAILS("deliver", "N", "unknown flag '-n' (see postie(1) for the flags of deliver)", "-n");
	CMD_FAILS("deliver", "N", "unknown flag '-x' (see postie(1) for the flags of deliver)", "id", "-x");
}

static void
test_fetch_flags(void **state)
{
	struct cmd_args a;
	struct err e;

	(void)state;
	assert_int_equal(CMD("fetch", "n", &a, &e, "-n", "inbox", "lists",
	    "-C", "/c"), 0);
	assert_true(a.dry_run);
	assert_false(a.verbose);
	assert_false(a.now);
	assert_string_equal(a.config, "/c");
	assert_int_equal(a.names.n, 2);
	assert_string_equal(a.names.v[0], "inbox");
	assert_string_equal(a.names.v[1], "lists");
	cli_command_free(&a);

	assert_int_equal(CMD("fetch", "n", &a, &e, "-v"), 0);
	assert_true(a.verbose);
	assert_false(a.dry_run);
	assert_int_equal(a.names.n, 0);
	cli_command_free(&a);

	CMD_FAILS("fetch", "n", "unknown flag '--now' (see postie(1) for the flags of fetch)", "--now");
	CMD_FAILS("fetch", "n", "unknown flag '--json' (see postie(1) for the flags of fetch)", "--json");
	CMD_FAILS("fetch", "n", "unknown flag '-q' (see postie(1) for the flags of fetch)", "-q");
	CMD_FAILS("fetch", "n", "unknown flag '-nv' (see postie(1) for the flags of fetch)", "-nv");
}

static void
test_bp_json(void **state)
{
	struct sendmail_args a;
	struct err e;

	(void)state;
	assert_int_equal(SM(&a, &e, "-bp", "--json"), 0);
	assert_int_equal(a.mode, SM_MAILQ);
	assert_true(a.json);
	assert_int_equal(a.rcpts.n, 0);
	cli_sendmail_free(&a);
	assert_int_equal(SM(&a, &e, "--json", "-bp"), 0);
	assert_true(a.json);
	cli_sendmail_free(&a);
	assert_int_equal(SM(&a, &e, "-bp"), 0);
	assert_false(a.json);
	cli_sendmail_free(&a);
	SM_FAILS("--json goes with -bp (the queue listing), not with sending",
	    "--json", "x@example.org");
	SM_FAILS("--json goes with -bp (the queue listing), not with sending",
	    "-bs", "--json");
}

static void
test_queue_flags(void **state)
{
	struct cmd_args a;
	struct err e;
	enum qctl_op op;

	(void)state;
	assert_int_equal(CMD("queue", "a", &a, &e, "--all", "-v"), 0);
	assert_true(a.all);
	assert_int_equal(a.names.n, 0);
	cli_command_free(&a);
	assert_int_equal(CMD("queue", "a", &a, &e, "1.2.3", "--", "-x"), 0);
	assert_false(a.all);
	assert_int_equal(a.names.n, 2);
	cli_command_free(&a);
	CMD_FAILS("deliver", "Nb", "unknown flag '--all' (see postie(1) for "
	    "the flags of deliver)", "--all");

	assert_int_equal(qctl_op_parse("show", &op), 0);
	assert_int_equal(op, QCTL_SHOW);
	assert_int_equal(qctl_op_parse("hold", &op), 0);
	assert_int_equal(op, QCTL_HOLD);
	assert_int_equal(qctl_op_parse("release", &op), 0);
	assert_int_equal(op, QCTL_RELEASE);
	assert_int_equal(qctl_op_parse("remove", &op), 0);
	assert_int_equal(op, QCTL_REMOVE);
	assert_int_equal(qctl_op_parse("delete", &op), -1);
	assert_int_equal(qctl_op_parse("", &op), -1);
	/* which failure decides the exit: the queue's own, then an
	 * unknown id (67), then a busy message (75) */
	assert_true(qctl_err_rank(ERR_IOERR) > qctl_err_rank(ERR_NOUSER));
	assert_true(qctl_err_rank(ERR_DATA) > qctl_err_rank(ERR_NOUSER));
	assert_true(qctl_err_rank(ERR_NOUSER) > qctl_err_rank(ERR_TEMPFAIL));
	assert_true(qctl_err_rank(ERR_TEMPFAIL) > qctl_err_rank(ERR_OK));
	assert_int_equal(err_exit_code(ERR_NOUSER), 67);
}

static char *
line_out(const char *s, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	textout_line(f, s, n);
	fclose(f);
	return buf;
}

static void
test_textout_line(void **state)
{
	static const char nul[] = "a\0b\n";
	char *o;

	(void)state;
	o = line_out("Subject: \x1b[31mred\tx\r\n", 21);
	assert_string_equal(o, "Subject: \\x1b[31mred\tx\n");
	free(o);
	o = line_out("caf\xc3\xa9 \xff\x9b\r\r\n", 11);
	assert_string_equal(o, "caf\xc3\xa9 \\xff\\x9b\\x0d\n");
	free(o);
	o = line_out(nul, sizeof(nul) - 1);
	assert_string_equal(o, "a\\x00b\n");
	free(o);
	/* a UTF-8 sequence cut by the end of what is shown */
	o = line_out("x\xc3\xa9", 2);
	assert_string_equal(o, "x\\xc3");
	free(o);
	o = line_out("no newline", 10);
	assert_string_equal(o, "no newline");
	free(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bp_json),
		cmocka_unit_test(test_queue_flags),
		cmocka_unit_test(test_textout_line),
		cmocka_unit_test(test_mutt),
		cmocka_unit_test(test_cronie),
		cmocka_unit_test(test_git_send_email),
		cmocka_unit_test(test_no_arguments),
		cmocka_unit_test(test_fullname_is_one_argument),
		cmocka_unit_test(test_extract_and_clusters),
		cmocka_unit_test(test_sender_flags),
		cmocka_unit_test(test_config_flag),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_delivery_modes),
		cmocka_unit_test(test_dsn_flags),
		cmocka_unit_test(test_ignored_legacy_flags),
		cmocka_unit_test(test_flags_after_recipients),
		cmocka_unit_test(test_double_dash),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_usage_line),
		cmocka_unit_test(test_mailq_flags),
		cmocka_unit_test(test_deliver_flags),
		cmocka_unit_test(test_fetch_flags),
	};

	return cmocka_run_group_tests_name("test_cli", tests, NULL, NULL);
}
