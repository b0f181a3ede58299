/* test_queue.c - the on-disk queue: commit, envelope, journal, locks. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
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
	char why[256] = "";
	size_t used = 0;

	(void)state;
	sb_init(&sb);
	envelope_format(&env, &sb);
	sb_adds(&sb, "Subject: x\n\nbody\n");
	assert_int_equal(envelope_parse(sb.s, sb.len, &back, &used, why,
	    sizeof(why)), 0);
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
	char why[256] = "";
	size_t used;

	(void)state;
	assert_int_equal(envelope_parse(text, strlen(text), &env, &used,
	    why, sizeof(why)), 0);
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
		char why[256] = "";
		size_t used;

		assert_int_equal(envelope_parse(cases[i].text,
		    strlen(cases[i].text), &env, &used, why, sizeof(why)), -1);
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
test_fold_hold_release_removed(void **state)
{
	const char *j =
	    "100 attempt\n"
	    "101 defer 0 451 later\n"
	    "102 next 5000\n"
	    "200 hold\n"
	    "250 hold\n"		/* held already: since stays 200 */
	    "300 release\n"		/* held 100 s; due at once */
	    "350 release\n"		/* not held: nothing */
	    "400 hold\n"
	    "390 release\n"		/* before its hold: adds nothing */
	    "500 hold\n"
	    "500 removed";		/* torn: ignored */
	struct envelope env = { .queued = 50 };
	struct msgstate st;

	(void)state;
	msgstate_fold(&st, 1, j, strlen(j));
	assert_true(st.held);
	assert_int_equal(st.held_since, 500);
	assert_int_equal(st.held_secs, 100);
	assert_int_equal(st.next_try, 0);
	assert_false(st.removed);
	/* age at 1000: 950 since queued, less 100 held and 500 held now */
	assert_int_equal(queue_age(&env, &st, 1000), 350);
	msgstate_free(&st);

	msgstate_fold(&st, 1, "100 hold\n200 release\n300 next 900\n", 35);
	assert_false(st.held);
	assert_int_equal(st.next_try, 900);	/* a later next wins */
	assert_int_equal(queue_age(&env, &st, 1000), 850);
	msgstate_free(&st);

	msgstate_fold(&st, 1, "100 removed\n", 12);
	assert_true(st.removed);
	assert_false(st.held);
	msgstate_free(&st);

	/* a journal without these lines: not held, the age as it was */
	msgstate_fold(&st, 1, "100 attempt\n", 12);
	assert_false(st.held);
	assert_false(st.removed);
	assert_int_equal(queue_age(&env, &st, 1000), 950);
	env.queued = 2000;		/* queued in the future: age 0 */
	assert_int_equal(queue_age(&env, &st, 1000), 0);
	msgstate_free(&st);
}

static void
test_held_time_is_bounded(void **state)
{
	struct strbuf sb;
	struct envelope env = { .queued = 1 };
	struct msgstate st;

	(void)state;
	sb_init(&sb);
	/* many holds of the widest span: the sum saturates, no overflow */
	for (int i = 0; i < 2000; i++)
		sb_addf(&sb, "1 hold\n%lld release\n", QUEUE_TIME_MAX);
	msgstate_fold(&st, 1, sb.s, sb.len);
	assert_int_equal(st.held_secs, QUEUE_TIME_MAX);
	assert_int_equal(queue_age(&env, &st, (time_t)QUEUE_TIME_MAX), 0);
	msgstate_free(&st);
	sb_free(&sb);
}

static void
test_lock_wait(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct qfile qf;
	struct err e;
	struct timespec deadline, t0, t1;
	int fd1 = -1, fd2 = -1;

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	assert_int_equal(queue_begin(&q, &qf, &e), 0);
	assert_int_equal(queue_write(&qf, "x", 1, &e), 0);
	assert_int_equal(queue_commit(&qf, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_nsec += 300 * 1000 * 1000;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	assert_int_equal(queue_lock_wait(&q, "no-such-id", &deadline, &fd1,
	    &e), 0);
	assert_int_equal(queue_lock_wait(&q, qf.id, &deadline, &fd1, &e), 1);
	/* a second open file description: waits until the deadline */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(queue_lock_wait(&q, qf.id, &deadline, &fd2, &e), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(e.code, ERR_TEMPFAIL);
	assert_non_null(strstr(e.msg, "is being sent by a deliver run"));
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 200);
	queue_unlock(fd1);
	assert_int_equal(queue_lock_wait(&q, qf.id, &deadline, &fd2, &e), 1);
	queue_unlock(fd2);
	qfile_free(&qf);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
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

/* Every value is checked when read, as the spool checks it when written. */
static void
test_envelope_hostile_values(void **state)
{
	static const struct {
		const char *text;
		size_t len;		/* 0: strlen */
		const char *why;	/* a part of the reason */
	} cases[] = {
		{ "postie-queue 1\nqueued 5\nsender a@b\0evil\nrcpt c@d\nend\n",
		    53, "NUL byte" },
		{ "postie-queue 1\nqueued 5\nsender a@b\nrcpt c@d\rRSET\nend\n",
		    0, "recipient 'c@d\\x0dRSET' has control characters" },
		{ "postie-queue 1\nqueued 5\nsender a@b\nrcpt c@d\x1b[2J\nend\n",
		    0, "recipient" },
		{ "postie-queue 1\nqueued 5\nsender a b@c\nrcpt c@d\nend\n",
		    0, "sender 'a b@c' has a blank" },
		{ "postie-queue 1\nqueued 5\nsender a@b\nnotify NEVER\r\n"
		    "rcpt c@d\nend\n", 0, "DSN option notify" },
		{ "postie-queue 1\nqueued 5\nsender a@b\nenvid a b\nrcpt c@d\n"
		    "end\n", 0, "DSN option envid" },
		{ "postie-queue 1\nqueued 5\nsender a@b\nret \n"
		    "rcpt c@d\nend\n", 0, "DSN option ret" },
		{ "postie-queue 1\nqueued 5\nsender a@b\nidentity w\x1bx\n"
		    "rcpt c@d\nend\n", 0, "identity" },
		{ "postie-queue 1\nqueued 5\nsender a@b\nbody binarymime\n"
		    "rcpt c@d\nend\n", 0, "body" },
		{ "postie-queue 1\nsender a@b\nrcpt c@d\nend\n", 0,
		    "no queued time" },
		{ "postie-queue 1\nqueued soon\nsender a@b\nrcpt c@d\nend\n", 0,
		    "queued time" },
		{ "postie-queue 1\nqueued -9223372036854775808\nsender a@b\n"
		    "rcpt c@d\nend\n", 0, "queued time" },
		{ "postie-queue 1\nqueued 0\nsender a@b\nrcpt c@d\nend\n", 0,
		    "queued time" },
		{ "postie-queue 1\nqueued 253402300800\nsender a@b\nrcpt c@d\n"
		    "end\n", 0, "queued time" },
		{ "postie-queue 1\nqueued 99999999999999999999\nsender a@b\n"
		    "rcpt c@d\nend\n", 0, "queued time" },
		{ "postie-queue 1\nqueued 5x\nsender a@b\nrcpt c@d\nend\n", 0,
		    "queued time" },
	};
	const char *ok = "postie-queue 1\nqueued 253402300799\nsender \n"
	    "body 7bit    \nrcpt c@d\nend\n";
	struct envelope env;
	char why[256];
	size_t used;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len :
		    strlen(cases[i].text);

		why[0] = '\0';
		assert_int_equal(envelope_parse(cases[i].text, len, &env,
		    &used, why, sizeof(why)), -1);
		if (strstr(why, cases[i].why) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, why,
			    cases[i].why);
	}
	assert_int_equal(envelope_parse(ok, strlen(ok), &env, &used, why,
	    sizeof(why)), 0);
	assert_int_equal(env.queued, QUEUE_TIME_MAX);
	envelope_free(&env);
}

/* The writer's check is the reader's: what the spool would refuse. */
static void
test_envelope_check(void **state)
{
	struct envelope env = sample_env();
	char why[256];

	(void)state;
	assert_int_equal(envelope_check(&env, why, sizeof(why)), 0);
	sv_push(&env.rcpts, "x@example.com\rRSET");
	assert_int_equal(envelope_check(&env, why, sizeof(why)), -1);
	assert_string_equal(why, "recipient 'x@example.com\\x0dRSET' has control "
	    "characters");
	envelope_free(&env);
	env = sample_env();
	env.queued = 0;
	assert_int_equal(envelope_check(&env, why, sizeof(why)), -1);
	env.queued = 1;
	free(env.sender);
	env.sender = xstrdup("");	/* the null sender is fine */
	assert_int_equal(envelope_check(&env, why, sizeof(why)), 0);
	envelope_free(&env);
}

static void
test_fold_ignores_absurd_times(void **state)
{
	const char *j =
	    "9223372036854775807 attempt\n"
	    "-5 attempt\n"
	    "attempt\n"
	    "5 next 9223372036854775807\n"
	    "6 next -9223372036854775808\n"
	    "7 next 12x\n"
	    "8 defer 0 fine\n"
	    "253402300800 ok 0 a time too late to be true\n";
	struct msgstate st;

	(void)state;
	msgstate_fold(&st, 1, j, strlen(j));
	assert_int_equal(st.attempts, 0);
	assert_int_equal(st.next_try, 0);
	assert_int_equal(st.r[0].state, RCPT_DEFERRED);
	assert_int_equal(st.r[0].when, 8);
	msgstate_free(&st);
	msgstate_fold(&st, 1, "5 next 900\n6 next 0\n", 20);
	assert_int_equal(st.next_try, 0);	/* "next 0": as soon as possible */
	msgstate_free(&st);
}

static void
on_alarm(int sig)
{
	(void)sig;
	fail_msg("blocked on a FIFO");
}

/* A FIFO or a link in msg/ or state/ is refused at once, never opened
 * for good, never written through. */
static void
test_hostile_entries(void **state)
{
	char *dir = tu_tmpdir();
	struct queue q;
	struct err e;
	struct envelope env = sample_env();
	struct msgstate ms;
	struct strbuf sb;
	char *fifo, *victim, *link_path, *msg;
	char buf[64];
	int fd = -1;

	(void)state;
	signal(SIGALRM, on_alarm);
	alarm(10);
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	fifo = xasprintf("%s/1", q.msg);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(queue_read_envelope(&q, "1", &env, &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file (a FIFO)"));
	assert_int_equal(queue_lock(&q, "1", &fd, &e), -1);
	assert_non_null(strstr(e.msg, "a FIFO"));

	/* state/2 -> a file elsewhere: not read, not cut, not appended to */
	sb_init(&sb);
	envelope_format(&env, &sb);
	msg = xasprintf("%s/2", q.msg);
	fd = open(msg, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, sb.s, sb.len), (ssize_t)sb.len);
	close(fd);
	victim = xasprintf("%s/victim", dir);
	fd = open(victim, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "a\nb", 3), 3);
	close(fd);
	link_path = xasprintf("%s/2", q.state);
	assert_int_equal(symlink(victim, link_path), 0);
	assert_int_equal(queue_state_append(&q, "2", "1 attempt", &e), -1);
	assert_non_null(strstr(e.msg, "a symbolic link"));
	assert_int_equal(queue_state_read(&q, "2", &env, &ms, &e), -1);
	fd = open(victim, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 3);
	close(fd);
	assert_memory_equal(buf, "a\nb", 3);

	/* msg/3 -> msg/2: not read through the link */
	free(link_path);
	link_path = xasprintf("%s/3", q.msg);
	assert_int_equal(symlink(msg, link_path), 0);
	envelope_free(&env);
	assert_int_equal(queue_read_envelope(&q, "3", &env, &e), -1);
	assert_non_null(strstr(e.msg, "a symbolic link"));
	assert_int_equal(queue_lock(&q, "3", &fd, &e), -1);
	alarm(0);
	sb_free(&sb);
	free(fifo);
	free(victim);
	free(link_path);
	free(msg);
	queue_close(&q);
	tu_rmtree(dir);
	free(dir);
}

/* A queue or a directory in it that someone else owns or may write. */
static void
test_foreign_queue_refused(void **state)
{
	static const char *subs[] = { "", "/tmp", "/msg", "/state", "/other" };
	char *dir = tu_tmpdir();
	struct queue q;
	struct err e;

	(void)state;
	assert_int_equal(queue_open(&q, dir, true, &e), 0);
	queue_close(&q);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char *d = xasprintf("%s%s", dir, subs[i]);

		mkdir(d, 0700);
		assert_int_equal(chmod(d, 0777), 0);
		e.code = ERR_OK;
		assert_int_equal(queue_open(&q, dir, false, &e), -1);
		assert_int_equal(e.code, ERR_CONFIG);
		assert_non_null(strstr(e.msg, d));
		assert_non_null(strstr(e.msg, "(mode 0777)"));
		assert_int_equal(chmod(d, 0700), 0);
		if (geteuid() == 0) {
			assert_int_equal(chown(d, 65534, 65534), 0);
			assert_int_equal(queue_open(&q, dir, false, &e), -1);
			assert_non_null(strstr(e.msg, "owned by uid 65534"));
			assert_int_equal(chown(d, 0, 0), 0);
		}
		assert_int_equal(queue_open(&q, dir, false, &e), 0);
		queue_close(&q);
		free(d);
	}
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
		cmocka_unit_test(test_fold_hold_release_removed),
		cmocka_unit_test(test_held_time_is_bounded),
		cmocka_unit_test(test_lock_wait),
		cmocka_unit_test(test_commit_and_list),
		cmocka_unit_test(test_abort_leaves_nothing),
		cmocka_unit_test(test_lock_is_exclusive),
		cmocka_unit_test(test_clean_tmp_by_age),
		cmocka_unit_test(test_ids_sort_by_time),
		cmocka_unit_test(test_torn_journal_line_is_cut),
		cmocka_unit_test(test_orphan_state_removed),
		cmocka_unit_test(test_envelope_hostile_values),
		cmocka_unit_test(test_envelope_check),
		cmocka_unit_test(test_fold_ignores_absurd_times),
		cmocka_unit_test(test_hostile_entries),
		cmocka_unit_test(test_foreign_queue_refused),
	};

	return cmocka_run_group_tests_name("test_queue", tests, NULL, NULL);
}
