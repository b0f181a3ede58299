/* test_fetchsync.c - a batch of downloads fsync'd by the background
 * thread: done, or the first file that failed named by its index. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>

#include "fetchsync.h"
#include "util.h"

static void
test_fetchsync(void **state)
{
	char *dir = tu_tmpdir();
	struct fetchsync s;
	int fds[5];
	size_t failed = 99;

	(void)state;
	assert_true(fetchsync_start(&s));
	assert_true(fetchsync_idle(&s));	/* nothing handed over */
	/* a batch without a download (all already here): done at once */
	fetchsync_submit(&s, NULL, 0);
	assert_int_equal(fetchsync_wait(&s, &failed), 0);
	for (size_t i = 0; i < 5; i++) {
		char *p = xasprintf("%s/f%zu", dir, i);

		fds[i] = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		assert_true(fds[i] >= 0);
		assert_int_equal(write(fds[i], "x", 1), 1);
		free(p);
	}
	fetchsync_submit(&s, fds, 5);
	assert_int_equal(fetchsync_wait(&s, &failed), 0);
	assert_true(fetchsync_idle(&s));
	assert_int_equal(failed, 99);		/* untouched */
	/* a file that cannot be synced: its index and errno, the batch
	 * stops there */
	close(fds[2]);
	fds[2] = -1;
	fetchsync_submit(&s, fds, 5);
	assert_int_equal(fetchsync_wait(&s, &failed), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(failed, 2);
	/* the next batch starts clean */
	fetchsync_submit(&s, fds, 2);
	assert_int_equal(fetchsync_wait(&s, &failed), 0);
	fetchsync_stop(&s);
	assert_false(s.running);
	fetchsync_stop(&s);			/* twice: nothing */
	for (size_t i = 0; i < 5; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fetchsync),
	};

	return cmocka_run_group_tests_name("test_fetchsync", tests, NULL, NULL);
}
