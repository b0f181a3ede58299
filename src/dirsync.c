/* dirsync.c - background group commit of a directory's fsync. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dirsync.h"

/* Let the removals of the next period gather (d->mu held): ms, or until
 * dirsync_finish, which then need not wait out the period. */
static void
pause_ms(struct dirsync *d, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	/* 0: woken (the end, or spuriously); anything else ends the pause */
	while (!d->stop && pthread_cond_timedwait(&d->stop_cv, &d->mu,
	    &until) == 0)
		;
}

static void *
dirsync_main(void *arg)
{
	struct dirsync *d = arg;
	int fds[DIRSYNC_MAX_FDS];

	pthread_mutex_lock(&d->mu);
	for (;;) {
		unsigned long target;
		size_t n;
		int rc, err;

		while (d->done == d->want && d->nfds == 0 && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->done == d->want && d->nfds == 0 && d->stop)
			break;
		target = d->want;
		n = d->nfds;
		memcpy(fds, d->fds, n * sizeof(int));
		d->nfds = 0;
		pthread_mutex_unlock(&d->mu);
		rc = target != d->done ? fsync(d->fd) : 0; /* up to target */
		err = rc < 0 ? errno : 0;
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		pthread_mutex_lock(&d->mu);
		if (rc < 0 && err != EINVAL)
			d->error = err;
		d->done = target;
		pthread_cond_broadcast(&d->cv);
		pause_ms(d, d->period_ms);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

int
dirsync_start(struct dirsync *d, const char *dir, struct err *e)
{
	memset(d, 0, sizeof(*d));
	d->period_ms = DIRSYNC_PERIOD_MS;
	d->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0)
		return err_set(e, err_from_errno(errno), "cannot open %s: %s",
		    dir, strerror(errno));
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&d->stop_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (pthread_create(&d->thread, NULL, dirsync_main, d) != 0) {
		close(d->fd);
		pthread_mutex_destroy(&d->mu);
		pthread_cond_destroy(&d->cv);
		pthread_cond_destroy(&d->stop_cv);
		return err_set(e, ERR_OSERR, "cannot start the fsync thread");
	}
	d->running = true;
	return 0;
}

void
dirsync_removed(struct dirsync *d, int fd)
{
	bool inline_close = false;

	pthread_mutex_lock(&d->mu);
	d->want++;
	if (fd >= 0 && d->nfds < DIRSYNC_MAX_FDS)
		d->fds[d->nfds++] = fd;
	else
		inline_close = fd >= 0;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (inline_close)
		close(fd);
}

int
dirsync_finish(struct dirsync *d, struct err *e)
{
	int error;

	if (!d->running)
		return 0;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_cond_broadcast(&d->stop_cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	d->running = false;
	error = d->error;
	close(d->fd);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->stop_cv);
	if (error != 0)
		return err_set(e, err_from_errno(error), "cannot fsync the "
		    "queue directory: %s", strerror(error));
	return 0;
}
