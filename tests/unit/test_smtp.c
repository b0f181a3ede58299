/* test_smtp.c - outcome classification, CRLF, retry times, bounces,
 * and the SSH fingerprint format. */
#include "testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bounce.h"
#include "config.h"
#include "deliver.h"
#include "dirsync.h"
#include "smtp.h"
#include "sshconn.h"

static void
test_classify(void **state)
{
	static const struct {
		bool complete;
		int mail, rcpt, msg;
		enum smtp_outcome out;
	} cases[] = {
		{ true, 250, 250, 250, SMTP_OK },
		{ false, 250, 250, 250, SMTP_DEFER },	/* not finished */
		{ true, 250, 550, 0, SMTP_FAIL },
		{ true, 250, 451, 0, SMTP_DEFER },
		{ true, 250, 250, 554, SMTP_FAIL },	/* 5xx after DATA */
		{ false, 250, 250, 554, SMTP_FAIL },
		{ true, 250, 250, 452, SMTP_DEFER },
		{ false, 250, 250, 0, SMTP_DEFER },	/* dropped after RCPT */
		{ false, 553, 0, 0, SMTP_FAIL },	/* MAIL refused */
		{ false, 451, 0, 0, SMTP_DEFER },
		{ false, 0, 0, 0, SMTP_DEFER },		/* never connected */
		{ true, 250, 0, 0, SMTP_DEFER },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(smtp_classify(cases[i].complete,
		    cases[i].mail, cases[i].rcpt, cases[i].msg), cases[i].out);
}

static void
test_crlf(void **state)
{
	char out[64];
	bool cr = false;
	size_t n;

	(void)state;
	n = smtp_crlf("a\nb\r\nc", 6, out, &cr);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "a\r\nb\r\nc", 7);
	/* a CR at the end of one chunk and its LF at the start of the next */
	cr = false;
	n = smtp_crlf("x\r", 2, out, &cr);
	assert_true(cr);
	n = smtp_crlf("\ny\n", 3, out, &cr);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\ny\r\n", 4);
	/* bare CR stays as it is */
	cr = false;
	n = smtp_crlf("a\rb", 3, out, &cr);
	assert_memory_equal(out, "a\rb", 3);
}

static void
test_next_try(void **state)
{
	struct err e;
	struct config *c = config_parse_string("retry 1m 5m 1h\n", "t", &e);

	(void)state;
	assert_non_null(c);
	assert_int_equal(deliver_next_try(c, 1, 1000), 1060);
	assert_int_equal(deliver_next_try(c, 2, 1000), 1300);
	assert_int_equal(deliver_next_try(c, 3, 1000), 4600);
	assert_int_equal(deliver_next_try(c, 9, 1000), 4600);	/* last repeats */
	config_free(c);
}

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
	bounce_build("ID1", &env, &st, fd, 1700000000, &sb);
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
	sb_free(&sb);
	/* RET=FULL: the whole message, as message/rfc822 */
	env.ret = xstrdup("FULL");
	sb_init(&sb);
	bounce_build("ID1", &env, &st, fd, 1700000000, &sb);
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
		bounce_build("ID1", &env, &st, fd8, 1700000000, &sb);
		assert_non_null(strstr(sb.s, "Content-Type: message/rfc822\n"
		    "Content-Transfer-Encoding: 8bit\n\nSubject: caf"));
		sb_free(&sb);
		close(fd8);
	}
	/* too big to return whole: the headers after all */
	env.size = BOUNCE_FULL_MAX + 1;
	sb_init(&sb);
	bounce_build("ID1", &env, &st, fd, 1700000000, &sb);
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

/* Host key fingerprints read as ssh-keygen -l prints them. */
static void
test_ssh_fingerprint(void **state)
{
	unsigned char h[32];
	char out[64], small[12];

	(void)state;
	for (int i = 0; i < 32; i++)
		h[i] = (unsigned char)i;
	sshconn_fp_format(h, out, sizeof(out));
	assert_string_equal(out,
	    "SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
	memset(h, 0xff, sizeof(h));
	sshconn_fp_format(h, out, sizeof(out));
	assert_int_equal(strlen(out), 7 + 43);		/* no '=' padding */
	assert_null(strchr(out, '='));
	sshconn_fp_format(h, small, sizeof(small));	/* cut, terminated */
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void
test_dirsync(void **state)
{
	char *dir = tu_tmpdir();
	struct dirsync d;
	struct err e;
	int fds[DIRSYNC_MAX_FDS + 50];
	size_t n = sizeof(fds) / sizeof(fds[0]);

	(void)state;
	assert_int_equal(dirsync_start(&d, dir, &e), 0);
	/* more descriptors than the thread holds at once: the rest are
	 * closed at once, and every one of them is closed in the end */
	for (size_t i = 0; i < n; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(fds[i] >= 0);
		dirsync_removed(&d, fds[i]);
	}
	dirsync_removed(&d, -1);		/* an unlink with no file */
	assert_int_equal(dirsync_finish(&d, &e), 0);
	assert_int_equal(d.done, n + 1);	/* all covered */
	assert_int_equal(d.want, n + 1);
	assert_false(d.running);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(fcntl(fds[i], F_GETFD), -1);
	/* a directory that is not there is an error at once */
	assert_int_equal(dirsync_start(&d, "/nonexistent/dir", &e), -1);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_next_try),
		cmocka_unit_test(test_bounce),
		cmocka_unit_test(test_ssh_fingerprint),
		cmocka_unit_test(test_dirsync),
	};

	return cmocka_run_group_tests_name("test_smtp", tests, NULL, NULL);
}
