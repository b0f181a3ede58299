/* test_confine.c - Landlock as fetch uses it: writes beneath the write
 * paths only (a link from tmp/ into new/ too), reads beneath the read
 * paths, no exec; each check in a child, which is confined for good. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "confine.h"

static char *
path(const char *dir, const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* The checks, in the confined child: 0, or the number of the first one
 * that failed. */
static int
confined_checks(const char *dir)
{
	char *w = path(dir, "w"), *r = path(dir, "r");
	char *in = path(w, "tmp/m"), *linked = path(w, "new/m");
	char *out = path(dir, "escape"), *rfile = path(r, "f");
	char *rnew = path(r, "new");
	struct strvec wr, rd;
	struct err e;
	char *const argv[] = { "/bin/true", NULL };
	int fd;

	sv_init(&wr);
	sv_init(&rd);
	sv_push(&wr, w);
	sv_push(&wr, "/nonexistent/left/out");	/* missing: left out */
	sv_push(&rd, r);
	sv_push(&rd, "/usr");
	if (confine_apply(&wr, &rd, false, &e) != confine_abi())
		return 1;
	if ((fd = open(in, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
		return 2;
	close(fd);
	if (link(in, linked) < 0 || unlink(in) < 0)
		return 3;	/* a refer within the Maildir */
	if (open(out, O_WRONLY | O_CREAT | O_EXCL, 0600) >= 0 ||
	    errno != EACCES)
		return 4;
	if ((fd = open(rfile, O_RDONLY)) < 0)
		return 5;
	close(fd);
	if (open(rfile, O_WRONLY) >= 0 || errno != EACCES)
		return 6;
	if (mkdir(rnew, 0700) == 0 || errno != EACCES)
		return 7;
	if (link(linked, rnew) == 0 || (errno != EACCES && errno != EXDEV))
		return 8;	/* not out of the Maildir either */
	if (open("/etc/passwd", O_RDONLY) >= 0 || errno != EACCES)
		return 9;
	execv(argv[0], argv);
	if (errno != EACCES)
		return 10;
	return 0;
}

static void
test_confine(void **state)
{
	char *dir;
	char *sub[] = { "w", "w/tmp", "w/new", "r" };
	char *f;
	int status, fd;
	pid_t pid;

	(void)state;
	if (confine_abi() < 2) {
		/* nothing to test: say so, do not pass quietly */
		print_message("the kernel has no Landlock ABI 2: skipped\n");
		skip();
	}
	dir = tu_tmpdir();
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		f = path(dir, sub[i]);
		assert_int_equal(mkdir(f, 0700), 0);
		free(f);
	}
	f = path(dir, "r/f");
	fd = open(f, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	free(f);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(confined_checks(dir));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* this process was not touched */
	f = path(dir, "after");
	fd = open(f, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	free(f);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_confine),
	};

	return cmocka_run_group_tests_name("test_confine", tests, NULL, NULL);
}
