/* test_fetchsync.c - a batch of downloads fsync'd by the background
 * thread: done, or the first file that failed named by its index. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#include "fetchsync.h"
#include "util.h"

/* Each batch done makes wake[0] readable, the SFTP loop's signal to
 * take it in (else it would sleep until a server reply came). */
static void
test_wake(void **state)
{
	struct fetchsync s;
	struct pollfd pfd;
	size_t failed;
	char b[8];

	(void)state;
	assert_true(fetchsync_start(&s));
	assert_true(s.wake[0] >= 0);
	pfd.fd = s.wake[0];
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 0), 0);	/* nothing done yet */
	fetchsync_submit(&s, NULL, 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);	/* woken, not timed */
	assert_int_equal(fetchsync_wait(&s, &failed), 0);
	assert_true(read(s.wake[0], b, sizeof(b)) >= 1);
	assert_int_equal(poll(&pfd, 1, 0), 0);	/* drained */
	fetchsync_stop(&s);
	assert_int_equal(s.wake[0], -1);
}

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
	/* one file system: one syncfs for the five (Linux 5.8 on: it
	 * reports write errors), else an fsync each */
	assert_int_equal(s.syncs, s.per_file ? 5 : 1);
	if (!s.per_file) {
		s.per_file = true;
		fetchsync_submit(&s, fds, 5);
		assert_int_equal(fetchsync_wait(&s, &failed), 0);
		assert_int_equal(s.syncs, 5);
		s.per_file = false;
	}
	/* a file that cannot be synced: its index and errno, the batch
	 * stops there */
	close(fds[2]);
	fds[2] = -1;
	fetchsync_submit(&s, fds, 5);
	assert_int_equal(fetchsync_wait(&s, &failed), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(failed, 2);
	/* the same with an fsync each */
	s.per_file = !s.per_file;
	fetchsync_submit(&s, fds, 5);
	assert_int_equal(fetchsync_wait(&s, &failed), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(failed, 2);
	s.per_file = !s.per_file;
	/* the next batch starts clean */
	fetchsync_submit(&s, fds, 2);
	assert_int_equal(fetchsync_wait(&s, &failed), 0);
	/* files on two file systems: a syncfs for each */
	if (!s.per_file) {
		int two[3] = { fds[0], -1, fds[1] };
		int fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			struct stat a, b;

			two[1] = fd;
			assert_int_equal(fstat(fds[0], &a), 0);
			assert_int_equal(fstat(fd, &b), 0);
			fetchsync_submit(&s, two, 3);
			assert_int_equal(fetchsync_wait(&s, &failed), 0);
			assert_int_equal(s.syncs, a.st_dev == b.st_dev ? 1 : 2);
			close(fd);
		}
	}
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
		cmocka_unit_test(test_wake),
	};

	return cmocka_run_group_tests_name("test_fetchsync", tests, NULL, NULL);
}
