/* test_dirsync.c - the group-commit thread: every descriptor closed,
 * every removal covered. */
#include "testutil.h"

#include <fcntl.h>
#include <time.h>

#include "dirsync.h"

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

/* The end of a run does not wait out the thread's pause between fsyncs:
 * with a pause of 900 ms (under a second: a plain nanosleep of it is
 * valid), finish still returns well before it is over. */
static void
test_finish_ends_pause(void **state)
{
	char *dir = tu_tmpdir();
	struct dirsync d;
	struct err e;
	struct timespec t0, t1;
	unsigned long done = 0;

	(void)state;
	assert_int_equal(dirsync_start(&d, dir, &e), 0);
	pthread_mutex_lock(&d.mu);
	d.period_ms = 900;
	pthread_mutex_unlock(&d.mu);
	dirsync_removed(&d, -1);
	for (int i = 0; i < 2000 && done == 0; i++) {	/* <= 20 s */
		struct timespec ms = { 0, 10 * 1000 * 1000 };

		pthread_mutex_lock(&d.mu);
		done = d.done;
		pthread_mutex_unlock(&d.mu);
		if (done == 0)
			nanosleep(&ms, NULL);
	}
	assert_int_equal(done, 1);	/* the thread is in its pause now */
	dirsync_removed(&d, -1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dirsync_finish(&d, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(d.done, 2);	/* the second removal covered too */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec -
	    t0.tv_nsec) / 1000000 < 600);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirsync),
		cmocka_unit_test(test_finish_ends_pause),
	};

	return cmocka_run_group_tests_name("test_dirsync", tests, NULL, NULL);
}
