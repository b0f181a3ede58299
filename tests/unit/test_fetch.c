/* test_fetch.c - the rules fetch applies to what a server lists. */
#include "testutil.h"

#include "fetch.h"
#include "fetchjob.h"

#define PROBLEM(s)	fetch_name_problem((s), sizeof(s) - 1)

static void
test_name_problem(void **state)
{
	char long_name[300];

	(void)state;
	assert_null(PROBLEM("1700000000.M1P1.host"));
	assert_null(PROBLEM("1700000000.M1P1.host,S=4096:2,S"));
	assert_null(PROBLEM(".hidden"));	/* not mail, not bad */
	assert_string_equal(PROBLEM(""), "an empty name");
	assert_string_equal(PROBLEM("."), "a name that is a directory reference");
	assert_string_equal(PROBLEM(".."), "a name that is a directory reference");
	assert_string_equal(PROBLEM("a/b"), "a '/' in the name");
	assert_string_equal(PROBLEM("../etc"), "a '/' in the name");
	assert_string_equal(PROBLEM("a\nb"), "a control character in the name");
	assert_string_equal(PROBLEM("a\x1b[31m"), "a control character in the name");
	assert_string_equal(PROBLEM("a\x7f"), "a control character in the name");
	assert_string_equal(PROBLEM("a\0b"), "a NUL byte in the name");
	assert_string_equal(PROBLEM("a\x9b" "31m"),
	    "a byte that is not ASCII in the name");	/* C1 CSI */
	assert_string_equal(PROBLEM("caf\xc3\xa9"),
	    "a byte that is not ASCII in the name");
	memset(long_name, 'x', sizeof(long_name));
	long_name[255] = '\0';
	assert_null(fetch_name_problem(long_name, 255));
	long_name[255] = 'x';
	long_name[256] = '\0';
	assert_string_equal(fetch_name_problem(long_name, 256),
	    "a name over 255 bytes");
}

static void
test_name_size(void **state)
{
	uint64_t s = 0;

	(void)state;
	assert_int_equal(fetch_name_size("1.M1.host,S=4096", &s), 1);
	assert_int_equal(s, 4096);
	assert_int_equal(fetch_name_size("1.M1.host,S=12,W=14:2,S", &s), 1);
	assert_int_equal(s, 12);
	/* the flags after ':' are not the size */
	assert_int_equal(fetch_name_size("1.M1.host:2,S=5", &s), 0);
	assert_int_equal(fetch_name_size("1.M1.host", &s), 0);
	assert_int_equal(fetch_name_size("1.M1.host,S=", &s), 0);
	assert_int_equal(fetch_name_size("1.M1.host,S=12x", &s), 0);
	/* a bad one first, a good one later */
	assert_int_equal(fetch_name_size("1,S=x,S=7", &s), 1);
	assert_int_equal(s, 7);
	assert_int_equal(fetch_name_size("1,S=99999999999999999999999", &s), 0);
}

static void
test_unique(void **state)
{
	(void)state;
	assert_int_equal(fetch_unique_len("abc:2,S"), 3);
	assert_int_equal(fetch_unique_len("abc"), 3);
	assert_int_equal(fetch_unique_len(":2,"), 0);
}

static void
test_folders(void **state)
{
	struct strvec g;

	(void)state;
	sv_init(&g);
	sv_push(&g, "INBOX");
	sv_push(&g, ".lists.*");
	assert_true(fetch_folder_wanted(&g, "INBOX"));
	assert_true(fetch_folder_wanted(&g, ".lists.dev"));
	assert_false(fetch_folder_wanted(&g, ".other"));
	sv_free(&g);
	sv_init(&g);
	sv_push(&g, "*");		/* everything: INBOX too */
	assert_true(fetch_folder_wanted(&g, "INBOX"));
	assert_true(fetch_folder_wanted(&g, ".Sent"));
	sv_free(&g);
	sv_init(&g);
	sv_push(&g, "lists.*");		/* the name IMAP shows */
	assert_true(fetch_folder_wanted(&g, ".lists.dev"));
	assert_false(fetch_folder_wanted(&g, ".other"));
	assert_false(fetch_folder_wanted(&g, "INBOX"));
	assert_true(fetch_glob_matches("lists.*", ".lists.dev"));
	assert_true(fetch_glob_matches(".*", ".Sent"));
	assert_false(fetch_glob_matches(".*", "INBOX"));
	assert_true(fetch_glob_matches("INBOX", "INBOX"));
	assert_false(fetch_glob_matches("INBOX", ".INBOX"));
	assert_false(fetch_glob_matches("Sent", ".Sent.old"));
	sv_free(&g);

	/* as IMAP shows them on other servers and settings: Courier's
	 * INBOX. prefix, Dovecot with "/" as its separator, modified UTF-7
	 * for letters past ASCII (what Dovecot and Courier store), "&" */
	assert_true(fetch_glob_matches("INBOX.lists.*", ".lists.dev"));
	assert_true(fetch_glob_matches("INBOX/lists/*", ".lists.dev"));
	assert_true(fetch_glob_matches("lists/*", ".lists.dev"));
	assert_false(fetch_glob_matches("lists/*", ".other"));
	assert_true(fetch_glob_matches("Entw\xc3\xbcrfe", ".Entw&APw-rfe"));
	assert_true(fetch_glob_matches("R&D", ".R&-D"));
	/* three bytes (U+20AC), and past U+FFFF (a surrogate pair) */
	assert_true(fetch_glob_matches("\xe2\x82\xac", ".&IKw-"));
	assert_true(fetch_glob_matches("x\xf0\x9f\x93\xa7y",
	    ".x&2D3c5w-y"));
	assert_true(fetch_glob_matches("Archiv/*", ".Archiv.2024"));
	assert_false(fetch_glob_matches("INBOX.*", "INBOX"));
}

static void
test_keep(void **state)
{
	struct keep_rule rules[] = {
		{ NULL, 30 * 86400 }, { "lists.*", 86400 },
		{ ".Archive", KEEP_FOREVER }, { "*", 7 * 86400 },
	};
	struct fetch_job job;

	(void)state;
	memset(&job, 0, sizeof(job));
	assert_int_equal(fetch_keep_age(&job, "INBOX"), KEEP_FOREVER);
	job.keep = rules;
	job.nkeep = 3;
	/* a glob's rule wins over the plain one, whatever the order */
	assert_int_equal(fetch_keep_age(&job, ".lists.dev"), 86400);
	assert_int_equal(fetch_keep_age(&job, ".Archive"), KEEP_FOREVER);
	assert_int_equal(fetch_keep_age(&job, "INBOX"), 30 * 86400);
	assert_int_equal(fetch_keep_age(&job, ".Sent"), 30 * 86400);
	job.nkeep = 4;		/* "*" matches every folder: no default left */
	assert_int_equal(fetch_keep_age(&job, "INBOX"), 7 * 86400);
	assert_int_equal(fetch_keep_age(&job, ".lists.dev"), 86400);
	/* the message's time: the name's leading seconds, else mtime */
	assert_int_equal(fetch_msg_time("1700000000.M1P1.host", 5), 1700000000);
	assert_int_equal(fetch_msg_time("1700000000.M1P1.host:2,S", -1),
	    1700000000);
	assert_int_equal(fetch_msg_time("msg-1", 42), 42);
	assert_int_equal(fetch_msg_time("msg-1", -1), -1);
	assert_int_equal(fetch_msg_time("1700000000", 42), 42);	/* no dot */
	assert_int_equal(fetch_msg_time(".1700000000", 42), 42);
	assert_int_equal(fetch_msg_time("9999999999999999.x", 42), 42);
}

/* A status is said once: the server's words only when they add some. */
static void
test_status(void **state)
{
	struct sftp_reply r;
	char out[300];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.status = SFTP_FX_NO_SUCH_FILE;
	r.msg = "No such file";
	r.msglen = strlen(r.msg);
	fetchget_status(&r, out, sizeof(out));
	assert_string_equal(out, "no such file");
	r.msg = "No such file or directory";
	r.msglen = strlen(r.msg);
	fetchget_status(&r, out, sizeof(out));
	assert_string_equal(out, "no such file (No such file or directory)");
	r.msg = "No such file\x1b[31m";
	r.msglen = strlen(r.msg);
	fetchget_status(&r, out, sizeof(out));
	assert_string_equal(out, "no such file (No such file?[31m)");
	r.msglen = 0;
	fetchget_status(&r, out, sizeof(out));
	assert_string_equal(out, "no such file");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_problem),
		cmocka_unit_test(test_name_size),
		cmocka_unit_test(test_unique),
		cmocka_unit_test(test_folders),
		cmocka_unit_test(test_keep),
		cmocka_unit_test(test_status),
	};

	return cmocka_run_group_tests_name("test_fetch", tests, NULL, NULL);
}
