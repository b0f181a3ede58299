/* dial.c - TCP to host:port: DNS and connect, each bounded. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dial.h"
#include "util.h"

static void
set_timeouts(int fd, long seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Non-blocking connect that gives up after timeout seconds. */
static int
connect_one(const struct addrinfo *ai, long timeout, int *err_out)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
	    ai->ai_protocol);
	int flags, soerr = 0, one = 1;
	socklen_t len = sizeof(soerr);
	struct pollfd pfd;

	if (fd < 0) {
		*err_out = errno;
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			*err_out = errno;
			close(fd);
			return -1;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)(timeout * 1000)) <= 0) {
			*err_out = ETIMEDOUT;
			close(fd);
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 ||
		    soerr != 0) {
			*err_out = soerr ? soerr : errno;
			close(fd);
			return -1;
		}
	}
	fcntl(fd, F_SETFL, flags);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/*
 * getaddrinfo within timeout seconds. A resolver that does not answer
 * (a dead DNS server, a captive network) must not hold deliver beyond
 * its connect timeout: the lookup runs in a detached thread that owns
 * its request; when it comes too late it cleans up after itself.
 */
#define RESOLVE_TIMEOUT	1	/* getaddrinfo's own codes are negative */

struct lookup {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	bool			 done, abandoned;
	int			 rc, err;
	struct addrinfo		 hints, *res;
	char			*host, service[16];
};

static void
lookup_free(struct lookup *l)
{
	if (l->res != NULL)
		freeaddrinfo(l->res);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l->host);
	free(l);
}

static void *
lookup_main(void *arg)
{
	struct lookup *l = arg;
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(l->host, l->service, &l->hints, &res);
	int err = errno;
	bool abandoned;

	pthread_mutex_lock(&l->mu);
	l->rc = rc;
	l->err = err;
	l->res = res;
	l->done = true;
	abandoned = l->abandoned;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	if (abandoned)
		lookup_free(l);
	return NULL;
}

static int
resolve(const char *host, const char *service,
    const struct addrinfo *hints, long timeout, struct addrinfo **res)
{
	struct lookup *l = xcalloc(1, sizeof(*l));
	struct timespec until;
	pthread_attr_t attr;
	pthread_t t;
	int rc = 0, err;

	pthread_mutex_init(&l->mu, NULL);
	{
		/* a clock step (NTP at boot) must not stretch the bound */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&l->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	l->hints = *hints;
	l->host = xstrdup(host);
	snprintf(l->service, sizeof(l->service), "%s", service);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, lookup_main, l) != 0) {
		/* no thread to spare: an unbounded lookup beats none */
		pthread_attr_destroy(&attr);
		lookup_free(l);
		return getaddrinfo(host, service, hints, res);
	}
	pthread_attr_destroy(&attr);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout > 0 ? timeout : 10;
	pthread_mutex_lock(&l->mu);
	while (!l->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&l->cv, &l->mu, &until);
	if (!l->done) {
		l->abandoned = true;	/* the thread frees it */
		pthread_mutex_unlock(&l->mu);
		return RESOLVE_TIMEOUT;
	}
	pthread_mutex_unlock(&l->mu);
	rc = l->rc;
	err = l->err;
	*res = l->res;
	l->res = NULL;
	lookup_free(l);
	errno = err;	/* for EAI_SYSTEM */
	return rc;
}

int
dial_tcp(const char *host, int port, long timeout, int *fd,
    struct err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int rc, last = ETIMEDOUT;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	snprintf(service, sizeof(service), "%d", port);
	rc = resolve(host, service, &hints, timeout, &res);
	if (rc == RESOLVE_TIMEOUT)
		return err_set(e, ERR_TEMPFAIL, "cannot resolve %s: no answer "
		    "from DNS within %ld s (the connect timeout)", host,
		    timeout);
	if (rc != 0)
		return err_set(e, ERR_TEMPFAIL, "cannot resolve %s: %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		*fd = connect_one(ai, timeout, &last);
		if (*fd >= 0) {
			freeaddrinfo(res);
			return 0;
		}
	}
	freeaddrinfo(res);
	return err_set(e, ERR_TEMPFAIL, "cannot connect to %s port %d: %s",
	    host, port, last == ETIMEDOUT ? "no answer (connect timeout)" :
	    strerror(last));
}

void
dial_set_timeout(int fd, long seconds)
{
	set_timeouts(fd, seconds);
}
