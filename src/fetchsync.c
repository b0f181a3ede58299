/* fetchsync.c - a fetch job's downloads made durable in the background;
 * see fetchsync.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fetchsync.h"
#include "util.h"

/* Does this kernel's syncfs report write errors (Linux 5.8 and later)? */
static bool
syncfs_reports(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 8);
}

/*
 * An fsync for each file, their writes started together first: each
 * fsync would otherwise wait for its own data, one file after another.
 * The index of the file that failed, or n.
 */
static size_t
sync_each(struct fetchsync *s, const int *fds, size_t n, int *error)
{
	for (size_t i = 0; i < n; i++)
		(void)sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
	for (size_t i = 0; i < n; i++) {
		s->syncs++;
		if (fsync(fds[i]) < 0) {
			*error = errno;
			return i;
		}
	}
	return n;
}

/*
 * One syncfs for each file system among the files (the first file on it
 * stands for it). The index of the file that failed, or n.
 */
static size_t
sync_by_fs(struct fetchsync *s, const int *fds, size_t n, int *error)
{
	dev_t *devs = xcalloc(n, sizeof(*devs));
	size_t failed = n;

	for (size_t i = 0; i < n && failed == n; i++) {
		struct stat st;
		bool seen = false;

		if (fstat(fds[i], &st) < 0) {
			failed = i;
			*error = errno;
			break;
		}
		devs[i] = st.st_dev;
		for (size_t k = 0; k < i && !seen; k++)
			seen = devs[k] == devs[i];
		if (seen)
			continue;
		s->syncs++;
		if (syncfs(fds[i]) < 0) {
			failed = i;
			*error = errno;
		}
	}
	free(devs);
	return failed;
}

static void
close_wake(struct fetchsync *s)
{
	for (int i = 0; i < 2; i++)
		if (s->wake[i] >= 0)
			close(s->wake[i]);
	s->wake[0] = s->wake[1] = -1;
}

static void *
sync_main(void *arg)
{
	struct fetchsync *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		size_t n, failed;
		int error = 0;

		while (!s->busy && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop)
			break;
		n = s->n;
		pthread_mutex_unlock(&s->mu);
		s->syncs = 0;
		failed = n;	/* none failed */
		if (n > 0 && s->per_file)
			failed = sync_each(s, s->fds, n, &error);
		else if (n > 0)
			failed = sync_by_fs(s, s->fds, n, &error);
		pthread_mutex_lock(&s->mu);
		s->failed = failed;
		s->error = error;
		s->busy = false;
		pthread_cond_broadcast(&s->cv);
		if (s->wake[1] >= 0)	/* full: a wake-up is pending */
			(void)!write(s->wake[1], "", 1);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

bool
fetchsync_start(struct fetchsync *s)
{
	memset(s, 0, sizeof(*s));
	s->per_file = !syncfs_reports();
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0)
		s->wake[0] = s->wake[1] = -1;	/* the loop polls on */
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		close_wake(s);
		return false;
	}
	s->running = true;
	return true;
}

void
fetchsync_submit(struct fetchsync *s, const int *fds, size_t n)
{
	pthread_mutex_lock(&s->mu);
	if (n > s->cap) {
		s->cap = n;
		s->fds = xrealloc(s->fds, n * sizeof(*s->fds));
	}
	if (n > 0)	/* a batch of files all already here: none */
		memcpy(s->fds, fds, n * sizeof(*fds));
	s->n = n;
	s->failed = n;
	s->error = 0;
	s->busy = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

bool
fetchsync_idle(struct fetchsync *s)
{
	bool idle;

	pthread_mutex_lock(&s->mu);
	idle = !s->busy;
	pthread_mutex_unlock(&s->mu);
	return idle;
}

int
fetchsync_wait(struct fetchsync *s, size_t *failed)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	while (s->busy)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->failed < s->n) {
		*failed = s->failed;
		errno = s->error;
		rc = -1;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void
fetchsync_stop(struct fetchsync *s)
{
	if (!s->running)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->fds);
	s->fds = NULL;
	close_wake(s);
	s->running = false;
}
