/* test_bounce.c - the RFC 3464 failure notice. */
#include "testutil.h"

#include <fcntl.h>

#include "bounce.h"

static void
test_bounce(void **state)
{
	const char *text = "Subject: hello\r\nFrom: a@b\r\n\r\nbody must not "
	    "appear\r\n";
	struct envelope env;
	struct msgstate st;
	struct strbuf sb;
	char *dir = tu_tmpdir(), *path = xasprintf("%s/m", dir);
	int fd;

	(void)state;
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	memset(&env, 0, sizeof(env));
	sv_init(&env.rcpts);
	env.sender = xstrdup("a@b");
	env.envid = xstrdup("ENV1");
	sv_push(&env.rcpts, "ok@x");
	sv_push(&env.rcpts, "bad@x");
	env.offset = 0;
	env.size = strlen(text);
	{
		const char *j = "1 ok 0 250 fine\n2 fail 1 550 5.1.1 unknown\n";

		msgstate_fold(&st, 2, j, strlen(j));
	}
	sb_init(&sb);
	bounce_build("ID1", &env, &st, fd, 1700000000, "mx.example", &sb);
	assert_non_null(strstr(sb.s, "To: <a@b>\n"));
	assert_non_null(strstr(sb.s, "report-type=delivery-status"));
	assert_non_null(strstr(sb.s, "Final-Recipient: rfc822; bad@x\n"
	    "Action: failed\nStatus: 5.1.1\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 unknown\n"));
	assert_null(strstr(sb.s, "rfc822; ok@x"));
	assert_non_null(strstr(sb.s, "Original-Envelope-Id: ENV1\n"));
	assert_non_null(strstr(sb.s, "text/rfc822-headers\n\nSubject: hello\n"
	    "From: a@b\n\n--"));
	assert_null(strstr(sb.s, "body must not appear"));
	assert_non_null(strstr(sb.s, "Auto-Submitted: auto-replied\n"));
	/* the mail system is named as the caller says (the domain) */
	assert_non_null(strstr(sb.s, "From: Mail Delivery System "
	    "<MAILER-DAEMON@mx.example>\n"));
	assert_non_null(strstr(sb.s, "Reporting-MTA: dns; mx.example\n"));
	sb_free(&sb);
	/* RET=FULL: the whole message, as message/rfc822 */
	env.ret = xstrdup("FULL");
	sb_init(&sb);
	bounce_build("ID1", &env, &st, fd, 1700000000, "mx.example", &sb);
	assert_non_null(strstr(sb.s, "Content-Type: message/rfc822\n\n"
	    "Subject: hello\nFrom: a@b\n\nbody must not appear\n\n--"));
	assert_null(strstr(sb.s, "text/rfc822-headers"));
	assert_null(strstr(sb.s, "Content-Transfer-Encoding"));
	sb_free(&sb);
	/* 8-bit content is labelled so */
	{
		const char *eight = "Subject: caf\xc3\xa9\r\n\r\nx\r\n";
		int fd8 = open(path, O_RDWR | O_TRUNC);

		assert_int_equal(write(fd8, eight, strlen(eight)),
		    (ssize_t)strlen(eight));
		env.size = strlen(eight);
		sb_init(&sb);
		bounce_build("ID1", &env, &st, fd8, 1700000000, "mx.example", &sb);
		assert_non_null(strstr(sb.s, "Content-Type: message/rfc822\n"
		    "Content-Transfer-Encoding: 8bit\n\nSubject: caf"));
		sb_free(&sb);
		close(fd8);
	}
	/* too big to return whole: the headers after all */
	env.size = BOUNCE_FULL_MAX + 1;
	sb_init(&sb);
	bounce_build("ID1", &env, &st, fd, 1700000000, "mx.example", &sb);
	assert_non_null(strstr(sb.s, "text/rfc822-headers\n\n"
	    "Subject: caf\xc3\xa9\n\n--"));
	assert_null(strstr(sb.s, "message/rfc822"));
	sb_free(&sb);
	msgstate_free(&st);
	envelope_free(&env);
	close(fd);
	free(path);
	tu_rmtree(dir);
	free(dir);
}

/* The delay warning: the recipients still to go, never the body. */
static void
test_delay_warning(void **state)
{
	const char *text = "Subject: hello\nFrom: a@b\n\nbody\n";
	struct envelope env;
	struct msgstate st;
	struct strbuf sb;
	char *dir = tu_tmpdir(), *path = xasprintf("%s/m", dir);
	const char *j = "1 ok 0 250 fine\n2 fail 1 550 5.1.1 unknown\n"
	    "3 defer 2 451 4.7.1 greylisted\n";
	int fd;

	(void)state;
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	memset(&env, 0, sizeof(env));
	sv_init(&env.rcpts);
	env.sender = xstrdup("a@b");
	env.ret = xstrdup("full");	/* a warning still has headers only */
	env.queued = 1700000000;
	sv_push(&env.rcpts, "ok@x");
	sv_push(&env.rcpts, "bad@x");
	sv_push(&env.rcpts, "late@x");
	sv_push(&env.rcpts, "new@x");
	env.size = strlen(text);
	msgstate_fold(&st, 4, j, strlen(j));
	sb_init(&sb);
	bounce_build_delay("ID1", &env, &st, fd, 1700018000, "mx.example",
	    1700018060,
	    1700432000, NULL, &sb);
	assert_non_null(strstr(sb.s, "Subject: Delayed Mail (still being "
	    "retried)\n"));
	assert_non_null(strstr(sb.s, "<late@x>: 451 4.7.1 greylisted\n"
	    "<new@x>: no reply yet\n\nNext try: Wed, 15 Nov 2023 "
	    "03:14:20 +0000\nIt gives up, and sends a failure notice, at: "
	    "Sun, 19 Nov 2023 22:13:20 +0000\n"));
	assert_non_null(strstr(sb.s, "\nFinal-Recipient: rfc822; late@x\n"
	    "Action: delayed\nStatus: 4.7.1\n"
	    "Diagnostic-Code: smtp; 451 4.7.1 greylisted\n"
	    "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\n"
	    "\nFinal-Recipient: rfc822; new@x\nAction: delayed\n"
	    "Status: 4.0.0\nWill-Retry-Until: "));
	assert_null(strstr(sb.s, "rfc822; ok@x"));
	assert_null(strstr(sb.s, "bad@x"));
	assert_null(strstr(sb.s, "Action: failed"));
	assert_non_null(strstr(sb.s, "text/rfc822-headers\n\nSubject: hello\n"
	    "From: a@b\n\n--"));
	assert_null(strstr(sb.s, "body"));
	sb_free(&sb);
	/* the upstream not reached: said for a recipient without a reply */
	sb_init(&sb);
	bounce_build_delay("ID1", &env, &st, fd, 1700018000, "mx.example",
	    1700018060,
	    1700432000, "cannot connect to smtp.example port 587: "
	    "Connection refused", &sb);
	assert_non_null(strstr(sb.s, "<late@x>: 451 4.7.1 greylisted\n"
	    "<new@x>: no reply yet: the mail server was not reached: "
	    "cannot connect to smtp.example port 587: Connection refused\n"));
	sb_free(&sb);
	msgstate_free(&st);
	envelope_free(&env);
	close(fd);
	free(path);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounce),
		cmocka_unit_test(test_delay_warning),
	};

	return cmocka_run_group_tests_name("test_bounce", tests, NULL, NULL);
}
