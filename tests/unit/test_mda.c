/* test_mda.c - running an mda: the expansion, the outcomes, stderr's
 * first line, the timeout. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mda.h"

static void
test_expand(void **state)
{
	struct strvec t, out;

	(void)state;
	sv_init(&t);
	sv_init(&out);
	sv_push(&t, "/usr/bin/maildrop");
	sv_push(&t, "-f%F");
	sv_push(&t, "%N");
	sv_push(&t, "100%%/%X%");
	mda_expand(&t, ".lists.dev", "1700000000.M1P1.host:2,S", &out);
	assert_int_equal(out.n, 4);
	assert_string_equal(out.v[0], "/usr/bin/maildrop");
	assert_string_equal(out.v[1], "-f.lists.dev");
	assert_string_equal(out.v[2], "1700000000.M1P1.host:2,S");
	assert_string_equal(out.v[3], "100%/%X%");
	assert_null(out.v[4]);
	sv_free(&t);
	sv_free(&out);
}

/* Run /bin/sh -c script on a message file; the outcome. */
static enum mda_outcome
run(const char *script, long timeout, struct mda_result *r, char *why,
    size_t len)
{
	struct strvec av;
	struct mda m;
	struct err e;
	char path[] = "/tmp/postie-mda.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "Subject: x\n\nbody\n", 17), 17);
	sv_init(&av);
	sv_push(&av, "/bin/sh");
	sv_push(&av, "-c");
	sv_push(&av, script);
	assert_int_equal(mda_open(&m, &av, &e), 0);
	assert_int_equal(mda_run(&m, av.v, fd, 0, timeout, r, &e), 0);
	mda_describe(r, timeout, why, len);
	mda_close(&m);
	sv_free(&av);
	close(fd);
	return mda_outcome(r);
}

static void
test_outcomes(void **state)
{
	struct mda_result r;
	char why[300];

	(void)state;
	/* stdin is the message from its start, whatever the offset */
	assert_int_equal(run("test \"$(cat)\" = \"$(printf 'Subject: x\\n\\n"
	    "body')\"", 10, &r, why, sizeof(why)), MDA_DELIVERED);
	assert_string_equal(why, "exit 0");
	assert_int_equal(run("echo 'over quota\x1b[1m' >&2; echo more >&2; "
	    "exit 75", 10, &r, why, sizeof(why)), MDA_DEFERRED);
	assert_string_equal(why, "exit 75: over quota?[1m");
	assert_int_equal(run("exit 1", 10, &r, why, sizeof(why)), MDA_FAILED);
	assert_string_equal(why, "exit 1");
	assert_int_equal(run("kill -TERM $$", 10, &r, why, sizeof(why)),
	    MDA_FAILED);
	assert_string_equal(why, "killed by signal 15 (Terminated)");
	/* a long first line is cut; a flood of stderr does not block it */
	assert_int_equal(run("head -c 300000 /dev/zero | tr '\\0' x >&2; "
	    "exit 0", 10, &r, why, sizeof(why)), MDA_DELIVERED);
	assert_int_equal(strlen(r.errline), MDA_ERRLINE_MAX - 1);
}

static void
test_timeout(void **state)
{
	struct mda_result r;
	char why[300];
	long long t0 = util_mono_ms();

	(void)state;
	/* its children go too (a process group), and they hold stderr */
	assert_int_equal(run("sleep 30 & sleep 30", 1, &r, why, sizeof(why)),
	    MDA_FAILED);
	assert_true(r.timed_out);
	assert_string_equal(why, "no exit within 1 s (killed)");
	assert_true(util_mono_ms() - t0 < 5000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_timeout),
	};

	return cmocka_run_group_tests_name("test_mda", tests, NULL, NULL);
}
