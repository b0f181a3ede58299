/* test_queue.c - the on-disk queue: commit, envelope, journal, locks. */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <utime.h>

#include "queue.h"

static struct envelope
sample_env(void)
{
	struct envelope env;

	memset(&env, 0, sizeof(env));
	sv_init(&env.rcpts);
	env.queued = 1700000000;
	env.sender = xstrdup("alice@example.org");
	env.identity = xstrdup("work");
	env.notify = xstrdup("failure,delay");
	env.ret = xstrdup("hdrs");
	env.body = xstrdup("8bitmime");
	sv_push(&env.rcpts, "bob@example.com");
	sv_push(&env.rcpts, "\"john smith\"@example.com");
	sv_push(&env.rcpts, "root");
	return env;
}

static void
test_envelope_roundtrip(void **state)
{
	struct envelope env = sample_env(), back;
	struct strbuf sb;
	const char *why = NULL;
	size_t used = 0;

	(void)state;
	sb_init(&sb);
	envelope_format(&env, &sb);
	sb_adds(&sb, "Subject: x\n\nbody\n");
	assert_int_equal(envelope_parse(sb.s, sb.len, &back, &used, &why), 0);
	assert_string_equal(back.sender, "alice@example.org");
	assert_string_equal(back.identity, "work");
	assert_string_equal(back.notify, "failure,delay");
	assert_string_equal(back.ret, "hdrs");
	assert_string_equal(back.body, "8bitmime");
	assert_null(back.envid);
	assert_int_equal(back.queued, 1700000000);
	assert_int_equal(back.rcpts.n, 3);
	assert_string_equal(back.rcpts.v[1], "\"john smith\"@example.com");
	assert_string_equal(sb.s + used, "Subject: x\n\nbody\n");
	envelope_free(&back);
	envelope_free(&env);
	sb_free(&sb);
}

static void
test_envelope_null_sender(void **state)
{
	const char *text = "postie-queue 1\nqueued 5\nsender \nrcpt a@b\n"
	    "future-key whatever\nend\nX";
	struct envelope env;
	const char *why = NULL;
	size_t used;

	(void)state;
	assert_int_equal(envelope_parse(text, strlen(text), &env, &used,
	    &why), 0);
	assert_string_equal(env.sender, "");
	assert_int_equal(text[used], 'X');
	envelope_free(&env);
}

static void
test_envelope_broken(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{ "From: x\n", "not a postie queue file (no 'postie-queue 1' "
		    "line)" },
		{ "postie-queue 1\nsender a@b\nrcpt c@d\n",
		    "the envelope has no 'end' line" },
		{ "postie-queue 1\nrcpt c@d\nend\n",
		    "the envelope has no sender" },
		{ "postie-queue 1\nsender a@b\nend\n",
		    "the envelope has no recipients" },
		{ "postie-queue 1\nsender a@b\nsender c@d\nrcpt x@y\nend\n",
		    "a field is given twice" },
		{ "postie-queue 1\nsender a@b\nrcpt\nend\n",
		    "an envelope line without a value" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct envelope env;
		const char *why = NULL;
		size_t used;

		assert_int_equal(envelope_parse(cases[i].text,
		    strlen(cases[i].text), &env, &used, &why), -1);
		assert_string_equal(why, cases[i].why);
	}
}

static void
test_fold_journal(void **state)
{
	const char *j =
	    "100 attempt\n"
	    "101 defer * 421 4.3.0 try later\n"
	    "102 next 400\n"
	    "200 attempt\n"
	    "201 ok 0 250 2.0.0 queued as X\n"
	    "202 fail 1 550 5.1.1 no such user\n"
	    "203 defer 2 451 greylisted\x01\n"
	    "204 defer 0 late deferral must not undo ok\n"
	    "205 ok 9 index out of range is ignored\n"
	    "206 unknown-event 1 2 3\n"
	    "207 next 900\n"
	    "208 bounced\n"
	    "209 ok 2 250 torn line without newline";
	struct msgstate st;

	(void)state;
	msgstate_fold(&st, 3, j, strlen(j));
	assert_int_equal(st.attempts, 2);
	assert_int_equal(st.last_attempt, 200);
	assert_int_equal(st.next_try, 900);
	assert_true(st.bounced);
	assert_int_equal(st.r[0].state, RCPT_SENT);
	assert_string_equal(st.r[0].reply, "250 2.0.0 queued as X");
	assert_int_equal(st.r[1].state, RCPT_FAILED);
	assert_string_equal(st.r[1].reply, "550 5.1.1 no such user");
	assert_int_equal(st.r[2].state, RCPT_DEFERRED);
	assert_string_equal(st.r[2].reply, "451 greylisted?");
	msgstate_free(&st);
}

static void
test_commit_and_list(void **state)
{
	char *dir = tu_tmpdir();
	char *qdir = xasprintf("%s/q/sub", dir);
	struct queue q;
	struct qfile qf;
	struct err e;
	struct strvec ids;
	struct envelope env = sample_env(), back;
	struct strbuf sb;
	struct stat st;
	char *path;

	(void)state;
	assert_int_equal(queue_open(&q, qdir, false, &e), 0);
	/* the first message creates the queue directories, 0700 */
	assert_int_equal(queue_begin(&q, &qf, &e), 0);
	sb_init(&sb);
	envelope_format(&env, &sb);
	assert_int_equal(queue_write(&qf, sb.s, sb.len, &e), 0);
	assert_int_equal(queue_write(&qf, "Subject: t\n\nhello\n", 18, &e), 0);
	assert_int_equal(queue_commit(&qf, &e), 0);
	assert_int_equal(stat(q.msg, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	path = xasprintf("%s/%s", q.msg, qf.id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);
	path = xasprintf("%s/%s", q.tmp, qf.id);
	assert_int_not_equal(access(path, F_OK), 0);	/* tmp is gone */
	free(path);

	sv_init(&ids);
	assert_int_equal(queue_list(&q, &ids, &e), 0);
	assert_int_equal(ids.n, 1);
	assert_string_equal(ids.v[0], qf.id);
	assert_int_equal(queue_read_envelope(&q, qf.id, &back, &e), 0);
	assert_int_equal(back.size, 18);
	assert_int_equal(back.offset, sb.len);
	assert_int_equal(back.rcpts.n, 3);
	envelope_free(&back);

	/* journal: append, read back, remove */
	{
		struct msgstate ms;

		assert_int_equal(queue_state_append(&q, qf.id,
		    "10 attempt", &e), 0);
		assert_int_equal(queue_state_append(&q, qf.id,
		    "11 ok 1 250 fine\n", &e), 0);
		assert_int_equal(queue_read_envelope(&q, qf.id, &back, &e), 0);
		assert_int_equal(queue_state_read(&q, qf.id, &back, &ms, &e), 0);
		assert_int_equal(ms.attempts, 1);
		assert_int_equal(ms.r[1].state, RCPT_SENT);
		assert_int_equal(ms.r[0].state, RCPT_WAITING);
		msgstate_free(&ms);
		envelope_free(&back);
	}
	assert_int_equal(queue_remove(&q, qf.id, &e), 0);
	sv_free(&ids);
	sv_init(&ids);
	assert_int_equal(queue_list(&q, &ids, &e), 0);
	assert_int_equal(ids.n, 0);
	path = xasprintf("%s/%s", q.state, qf.id);
	assert_int_not_equal(access(path, F_OK), 0);
	free(path);

	qfile_free(&qf);
	sv_free(&ids);
	sb_free(&sb);
	envelope_free(&env);
	queue_close(&q);
	tu_rmtree(dir);
	free(qdir);
	free(dir);
}

static void
test_abort_leaves_nothing(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct qfile qf;
	struct err e;
	struct strvec ids;
	char *path;

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	assert_int_equal(queue_begin(&q, &qf, &e), 0);
	assert_int_equal(queue_write(&qf, "x", 1, &e), 0);
	path = xasprintf("%s/%s", q.tmp, qf.id);
	assert_int_equal(access(path, F_OK), 0);
	queue_abort(&qf);
	assert_int_not_equal(access(path, F_OK), 0);
	sv_init(&ids);
	assert_int_equal(queue_list(&q, &ids, &e), 0);
	assert_int_equal(ids.n, 0);
	free(path);
	qfile_free(&qf);
	sv_free(&ids);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
}

static void
test_lock_is_exclusive(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct qfile qf;
	struct err e;
	int fd1 = -1, fd2 = -1;

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	assert_int_equal(queue_begin(&q, &qf, &e), 0);
	assert_int_equal(queue_write(&qf, "x", 1, &e), 0);
	assert_int_equal(queue_commit(&qf, &e), 0);
	assert_int_equal(queue_lock(&q, qf.id, &fd1, &e), 1);
	/* a second open file description cannot take it */
	assert_int_equal(queue_lock(&q, qf.id, &fd2, &e), 0);
	queue_unlock(fd1);
	assert_int_equal(queue_lock(&q, qf.id, &fd2, &e), 1);
	queue_unlock(fd2);
	/* a message that is gone is "busy or gone", not an error */
	assert_int_equal(queue_lock(&q, "no-such-id", &fd1, &e), 0);
	qfile_free(&qf);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
}

static void
test_clean_tmp_by_age(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct err e;
	struct utimbuf old;
	char *fresh, *stale;
	int removed = -1, fd;

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	fresh = xasprintf("%s/fresh", q.tmp);
	stale = xasprintf("%s/stale", q.tmp);
	fd = open(fresh, O_CREAT | O_WRONLY, 0600);
	close(fd);
	fd = open(stale, O_CREAT | O_WRONLY, 0600);
	close(fd);
	old.actime = old.modtime = time(NULL) - QUEUE_TMP_MAX_AGE - 60;
	assert_int_equal(utime(stale, &old), 0);
	assert_int_equal(queue_clean_tmp(&q, time(NULL), QUEUE_TMP_MAX_AGE,
	    &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(access(fresh, F_OK), 0);
	assert_int_not_equal(access(stale, F_OK), 0);
	free(fresh);
	free(stale);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
}

static void
test_ids_sort_by_time(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct err e;
	struct strvec ids;
	const char *names[] = { "1700000002.000001.5", "1700000001.999999.9",
	    "1700000002.000000.1" };

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", q.msg, names[i]);
		int fd = open(p, O_CREAT | O_WRONLY, 0600);

		close(fd);
		free(p);
	}
	sv_init(&ids);
	assert_int_equal(queue_list(&q, &ids, &e), 0);
	assert_int_equal(ids.n, 3);
	assert_string_equal(ids.v[0], "1700000001.999999.9");
	assert_string_equal(ids.v[1], "1700000002.000000.1");
	assert_string_equal(ids.v[2], "1700000002.000001.5");
	sv_free(&ids);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
}

static void
test_torn_journal_line_is_cut(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct err e;
	struct msgstate ms;
	char *path, buf[256];
	FILE *fp;
	size_t n;

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	path = xasprintf("%s/ID", q.state);
	fp = fopen(path, "w");
	fputs("1 attempt\n2 ok 0 250 torn-by-a-cra", fp);
	fclose(fp);
	assert_int_equal(queue_state_append(&q, "ID", "3 ok 1 250 fine", &e),
	    0);
	fp = fopen(path, "r");
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	assert_string_equal(buf, "1 attempt\n3 ok 1 250 fine\n");
	msgstate_fold(&ms, 2, buf, n);
	assert_int_equal(ms.r[0].state, RCPT_WAITING);	/* torn: not sent */
	assert_int_equal(ms.r[1].state, RCPT_SENT);
	msgstate_free(&ms);
	free(path);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
}

static void
test_orphan_state_removed(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct err e;
	int removed = -1;
	char *m, *s1, *s2;
	FILE *fp;

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	m = xasprintf("%s/A", q.msg);
	s1 = xasprintf("%s/A", q.state);
	s2 = xasprintf("%s/B", q.state);
	fclose(fopen(m, "w"));
	fp = fopen(s1, "w");
	fclose(fp);
	fp = fopen(s2, "w");
	fclose(fp);
	assert_int_equal(queue_clean_orphans(&q, &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(access(s1, F_OK), 0);
	assert_int_not_equal(access(s2, F_OK), 0);
	free(m);
	free(s1);
	free(s2);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_roundtrip),
		cmocka_unit_test(test_envelope_null_sender),
		cmocka_unit_test(test_envelope_broken),
		cmocka_unit_test(test_fold_journal),
		cmocka_unit_test(test_commit_and_list),
		cmocka_unit_test(test_abort_leaves_nothing),
		cmocka_unit_test(test_lock_is_exclusive),
		cmocka_unit_test(test_clean_tmp_by_age),
		cmocka_unit_test(test_ids_sort_by_time),
		cmocka_unit_test(test_torn_journal_line_is_cut),
		cmocka_unit_test(test_orphan_state_removed),
	};

	return cmocka_run_group_tests_name("test_queue", tests, NULL, NULL);
}
