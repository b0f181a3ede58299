/*
 * dial.c - TCP to host:port: DNS and connect, each bounded; from
 * source-address, through a SOCKS5 proxy.
 */
#include <arpa/inet.h>
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
#include "socks.h"
#include "util.h"

static void
set_timeouts(int fd, long seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The address to bind before connect (source-address), parsed once. */
struct source {
	const char		*text;	/* NULL: let the kernel choose */
	struct sockaddr_storage	 sa;
	socklen_t		 len;
};

static int
source_parse(const char *text, struct source *src, struct err *e)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&src->sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&src->sa;

	memset(src, 0, sizeof(*src));
	src->text = text;
	if (text == NULL)
		return 0;
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		src->len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		src->len = sizeof(*v6);
	} else
		return err_set(e, ERR_CONFIG, "source-address %s is not an "
		    "IPv4 or IPv6 address", text);
	return 0;
}

/*
 * Non-blocking connect that gives up after timeout seconds, from src
 * when it is set. -1 with *err_out; *bind_err too when the bind failed.
 */
static int
connect_one(const struct addrinfo *ai, const struct source *src,
    long timeout, int *err_out, int *bind_err)
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
	if (src->text != NULL && bind(fd, (const struct sockaddr *)&src->sa,
	    src->len) < 0) {
		*err_out = *bind_err = errno;
		close(fd);
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

/* TCP to host:port (resolved here), from src; what names it in errors. */
static int
connect_host(const char *host, int port, const struct source *src,
    long timeout, const char *what, int *fd, struct err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int rc, last = ETIMEDOUT, bind_err = 0;
	bool tried = false;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = src->text == NULL ? AF_UNSPEC :
	    src->sa.ss_family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	snprintf(service, sizeof(service), "%d", port);
	rc = resolve(host, service, &hints, timeout, &res);
	if (rc == RESOLVE_TIMEOUT)
		return err_set(e, ERR_TEMPFAIL, "cannot resolve %s%s: no "
		    "answer from DNS within %ld s (the connect timeout)", what,
		    host, timeout);
	if ((rc == EAI_NONAME || rc == EAI_ADDRFAMILY) && src->text != NULL) {
		char v = src->sa.ss_family == AF_INET ? '4' : '6';

		return err_set(e, ERR_TEMPFAIL, "cannot connect to %s%s from "
		    "source-address %s: %s has no IPv%c address, and an IPv%c "
		    "source reaches only those (give a source-address of the "
		    "other family, or none)", what, host, src->text, host, v,
		    v);
	}
	if (rc != 0)
		return err_set(e, ERR_TEMPFAIL, "cannot resolve %s%s: %s", what,
		    host, rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
	for (ai = res; ai != NULL && bind_err == 0; ai = ai->ai_next) {
		tried = true;
		*fd = connect_one(ai, src, timeout, &last, &bind_err);
		if (*fd >= 0) {
			freeaddrinfo(res);
			return 0;
		}
	}
	freeaddrinfo(res);
	if (bind_err != 0)
		return err_set(e, ERR_TEMPFAIL, "cannot bind to source-address "
		    "%s: %s%s", src->text, strerror(bind_err),
		    bind_err == EADDRNOTAVAIL ? " (it is not an address of "
		    "this machine now: check source-address, or the "
		    "interface that has it)" : "");
	return err_set(e, ERR_TEMPFAIL, "cannot connect to %s%s port %d: %s",
	    what, host, port, !tried || last == ETIMEDOUT ? "no answer "
	    "(connect timeout)" : strerror(last));
}

int
dial_tcp(const char *host, int port, const struct route *via, long timeout,
    int *fd, struct err *e)
{
	struct source src;
	char *proxy;
	int rc;

	if (source_parse(via ? via->source : NULL, &src, e) < 0)
		return -1;
	if (via == NULL || via->proxy_host == NULL)
		return connect_host(host, port, &src, timeout, "", fd, e);
	if (connect_host(via->proxy_host, via->proxy_port, &src, timeout,
	    "the proxy ", fd, e) < 0)
		return -1;
	proxy = strchr(via->proxy_host, ':') ? xasprintf("[%s]:%d",
	    via->proxy_host, via->proxy_port) : xasprintf("%s:%d",
	    via->proxy_host, via->proxy_port);
	rc = socks_connect(*fd, proxy, via->proxy_user, via->proxy_password,
	    host, port, timeout, e);
	free(proxy);
	if (rc < 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

void
dial_set_timeout(int fd, long seconds)
{
	set_timeouts(fd, seconds);
}
