/* test_runner.c - the command runner (only the config's commands, names
 * checked, bounded, stdin passed, stderr's first line back) and mutt's
 * mailboxes line (quoted, written only when it changed). */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "mailboxes.h"
#include "runner.h"

static struct strvec
argv_of(const char *const *w)
{
	struct strvec sv;

	sv_init(&sv);
	for (; *w != NULL; w++)
		sv_push(&sv, *w);
	return sv;
}

static void
test_values(void **state)
{
	(void)state;
	assert_null(runner_value_problem("INBOX"));
	assert_null(runner_value_problem(".lists.dev"));
	assert_null(runner_value_problem("1700000000.M1P2.host,S=10:2,S"));
	assert_non_null(runner_value_problem(""));
	assert_non_null(runner_value_problem("."));
	assert_non_null(runner_value_problem(".."));
	assert_non_null(runner_value_problem("a/b"));
	assert_non_null(runner_value_problem("-rf"));
	assert_non_null(runner_value_problem("a b"));
	assert_non_null(runner_value_problem("a\nb"));
	assert_non_null(runner_value_problem("a\x7f"));
}

static void
test_expand(void **state)
{
	const char *w[] = { "/usr/bin/x", "-f", "%F/%N", "100%%", "%x", NULL };
	const char *ok[] = { ".lists.dev", "1.M1P1.h", NULL };
	const char *bad[] = { "../..", "1.M1P1.h", NULL };
	const char *none[] = { NULL, NULL, NULL };
	struct strvec argv = argv_of(w), out;
	const char *why = NULL;

	(void)state;
	assert_int_equal(runner_expand(&argv, ok, &out, &why), 0);
	assert_int_equal(out.n, 5);
	assert_string_equal(out.v[2], ".lists.dev/1.M1P1.h");
	assert_string_equal(out.v[3], "100%");
	assert_string_equal(out.v[4], "%x");
	sv_free(&out);
	assert_int_equal(runner_expand(&argv, bad, &out, &why), -1);
	assert_non_null(why);
	assert_int_equal(runner_expand(&argv, none, &out, &why), -1);
	assert_string_equal(why, "%F with no folder");
	assert_int_equal(runner_expand(&argv, NULL, &out, &why), -1);
	sv_free(&argv);
}

/* The runner with: 0 exit 3 and a stderr line; 1 sleep; 2 cat stdin
 * into a file named by %N in dir; 3 a mailboxes file. */
struct fixture {
	char			*dir;
	struct strvec		 a[3];
	struct runner_task	 t[4];
	struct runner		 r;
};

static void
start(struct fixture *f)
{
	const char *fail[] = { "/bin/sh", "-c",
	    "echo first line >&2; echo second >&2; exit 3", NULL };
	const char *slow[] = { "/bin/sleep", "30", NULL };
	char *cat = NULL;
	struct err e;

	f->dir = tu_tmpdir();
	assert_true(asprintf(&cat, "cat > %s/\"$0\"", f->dir) > 0);
	{
		const char *store[] = { "/bin/sh", "-c", cat, "%N", NULL };

		f->a[2] = argv_of(store);
	}
	free(cat);
	f->a[0] = argv_of(fail);
	f->a[1] = argv_of(slow);
	memset(f->t, 0, sizeof(f->t));
	for (size_t i = 0; i < 3; i++) {
		f->t[i].kind = TASK_COMMAND;
		f->t[i].argv = &f->a[i];
	}
	f->t[3].kind = TASK_MAILBOXES;
	f->t[3].file = "/nonexistent/dir/mailboxes";
	sv_init(&f->t[3].locals);
	assert_int_equal(runner_start(&f->r, f->t, 4, &e), 0);
}

static void
stop(struct fixture *f)
{
	runner_stop(&f->r);
	assert_int_equal(f->r.fd, -1);
	for (size_t i = 0; i < 3; i++)
		sv_free(&f->a[i]);
	tu_rmtree(f->dir);
	free(f->dir);
}

static void
test_runner(void **state)
{
	struct fixture f;
	struct run_result res;
	struct err e;
	const char *name[] = { NULL, "1.M1P1.h", NULL };
	const char *evil[] = { NULL, "../../escape", NULL };
	char *path = NULL;
	bool changed;
	int p[2];
	time_t t0;

	(void)state;
	start(&f);
	/* exit status and stderr's first line */
	assert_int_equal(runner_run(&f.r, 0, NULL, -1, 10, &res, &e), 0);
	assert_true(res.exited);
	assert_int_equal(res.code, 3);
	assert_false(res.timed_out);
	assert_string_equal(res.line, "first line");
	/* bounded: killed at the deadline */
	t0 = time(NULL);
	assert_int_equal(runner_run(&f.r, 1, NULL, -1, 1, &res, &e), 0);
	assert_true(res.timed_out);
	assert_false(res.exited);
	assert_int_equal(res.sig, SIGKILL);
	assert_true(time(NULL) - t0 < 10);
	/* stdin passed, a checked name expanded */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "hello\n", 6), 6);
	close(p[1]);
	assert_int_equal(runner_run(&f.r, 2, name, p[0], 10, &res, &e), 0);
	close(p[0]);
	assert_true(res.exited);
	assert_int_equal(res.code, 0);
	assert_true(asprintf(&path, "%s/1.M1P1.h", f.dir) > 0);
	{
		char buf[16] = "";
		int fd = open(path, O_RDONLY);

		assert_true(fd >= 0);
		assert_int_equal(read(fd, buf, sizeof(buf)), 6);
		assert_string_equal(buf, "hello\n");
		close(fd);
	}
	free(path);
	/* refused: a bad name, a task it does not have, the wrong kind */
	assert_int_equal(runner_run(&f.r, 2, evil, -1, 10, &res, &e), -1);
	assert_non_null(strstr(e.msg, "refused"));
	assert_int_equal(runner_run(&f.r, 2, NULL, -1, 10, &res, &e), -1);
	assert_int_equal(runner_run(&f.r, 9, NULL, -1, 10, &res, &e), -1);
	assert_non_null(strstr(e.msg, "malformed"));
	assert_int_equal(runner_run(&f.r, 3, NULL, -1, 10, &res, &e), -1);
	assert_int_equal(runner_mailboxes(&f.r, 0, &changed, &e), -1);
	/* a mailboxes file it cannot write: said */
	assert_int_equal(runner_mailboxes(&f.r, 3, &changed, &e), -1);
	assert_non_null(strstr(e.msg, "cannot write /nonexistent/dir"));
	stop(&f);
	/* gone: said, not hung */
	assert_int_equal(runner_run(&f.r, 0, NULL, -1, 10, &res, &e), -1);
}

static void
test_quote(void **state)
{
	struct strbuf sb;

	(void)state;
	sb_init(&sb);
	assert_int_equal(mailboxes_quote(&sb, "/m/.a\"b\\c`d`$e'f"), 0);
	sb_addc(&sb, '\0');
	assert_string_equal(sb.s, "\"/m/.a\\\"b\\\\c\\`d\\`\\$e'f\"");
	sb_reset(&sb);
	assert_int_equal(mailboxes_quote(&sb, "/m/.a\nb"), -1);
	assert_int_equal(sb.len, 0);
	sb_free(&sb);
}

static void
mkmaildir(const char *dir, const char *folder)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", dir, folder) > 0);
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
	assert_true(asprintf(&p, "%s/%s/cur", dir, folder) > 0);
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
}

static void
test_mailboxes(void **state)
{
	char *dir = tu_tmpdir(), *local = NULL, *file = NULL, *want = NULL;
	struct strvec locals;
	struct stat st, st2;
	struct err e;
	bool changed;
	char *line;

	(void)state;
	assert_true(asprintf(&local, "%s/Maildir", dir) > 0);
	assert_true(asprintf(&file, "%s/mailboxes", dir) > 0);
	sv_init(&locals);
	sv_push(&locals, local);
	mkmaildir(dir, "Maildir");
	mkmaildir(local, ".z");
	mkmaildir(local, ".a");
	mkmaildir(local, ".bad\tname");
	/* not a Maildir: no cur/ */
	{
		char *p = NULL;

		assert_true(asprintf(&p, "%s/.notafolder", local) > 0);
		assert_int_equal(mkdir(p, 0700), 0);
		free(p);
	}
	line = mailboxes_line(&locals);
	assert_true(asprintf(&want, "mailboxes \"%s\" \"%s/.a\" \"%s/.z\"\n",
	    local, local, local) > 0);
	assert_string_equal(line, want);
	free(line);
	assert_int_equal(mailboxes_write(file, &locals, &changed, &e), 0);
	assert_true(changed);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(mailboxes_write(file, &locals, &changed, &e), 0);
	assert_false(changed);
	assert_int_equal(stat(file, &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(st.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	mkmaildir(local, ".m");
	assert_int_equal(mailboxes_write(file, &locals, &changed, &e), 0);
	assert_true(changed);
	assert_int_equal(stat(file, &st2), 0);
	assert_int_not_equal(st.st_ino, st2.st_ino);
	/* a directory that is not there: the file named, not a temp name,
	 * and what to do */
	{
		char *nodir = NULL, *msg = NULL;

		assert_true(asprintf(&nodir, "%s/nodir/mailboxes", dir) > 0);
		assert_int_equal(mailboxes_write(nodir, &locals, &changed,
		    &e), -1);
		assert_false(changed);
		assert_true(asprintf(&msg, "cannot write %s: its directory "
		    "does not exist (create it, or change mailboxes)",
		    nodir) > 0);
		assert_string_equal(e.msg, msg);
		free(msg);
		free(nodir);
	}
	sv_free(&locals);
	free(want);
	free(file);
	free(local);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_runner),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_mailboxes),
	};

	return cmocka_run_group_tests_name("test_runner", tests, NULL, NULL);
}
