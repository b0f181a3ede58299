/* dirsync.c - background group commit of a directory's fsync. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dirsync.h"

static void *
dirsync_main(void *arg)
{
	struct dirsync *d = arg;

	pthread_mutex_lock(&d->mu);
	for (;;) {
		unsigned long target;
		int rc;

		while (d->done == d->want && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->done == d->want && d->stop)
			break;
		target = d->want;
		pthread_mutex_unlock(&d->mu);
		rc = fsync(d->fd);	/* covers every unlink up to target */
		pthread_mutex_lock(&d->mu);
		if (rc < 0 && errno != EINVAL)
			d->error = errno;
		d->done = target;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

int
dirsync_start(struct dirsync *d, const char *dir, struct err *e)
{
	memset(d, 0, sizeof(*d));
	d->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0)
		return err_set(e, err_from_errno(errno), "cannot open %s: %s",
		    dir, strerror(errno));
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	if (pthread_create(&d->thread, NULL, dirsync_main, d) != 0) {
		close(d->fd);
		return err_set(e, ERR_OSERR, "cannot start the fsync thread");
	}
	d->running = true;
	return 0;
}

void
dirsync_kick(struct dirsync *d)
{
	pthread_mutex_lock(&d->mu);
	d->want++;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
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
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	d->running = false;
	error = d->error;
	close(d->fd);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	if (error != 0)
		return err_set(e, err_from_errno(error), "cannot fsync the "
		    "queue directory: %s", strerror(error));
	return 0;
}
