/* bridge.c - upstream connections and the loopback bridge for libESMTP. */
#include <arpa/inet.h>
#include <dirent.h>
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
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bridge.h"
#include "handoff.h"
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
bridge_connect(const char *host, int port, long timeout, int *fd,
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
bridge_set_timeout(int fd, long seconds)
{
	set_timeouts(fd, seconds);
}

int
bridge_tls(struct tls_policy *policy, int fd, long timeout, SSL **out,
    struct err *e)
{
	SSL *ssl = SSL_new(policy->ctx);

	(void)timeout;	/* the socket's SO_RCVTIMEO/SO_SNDTIMEO bound it */
	policy->reason[0] = '\0';
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return err_set(e, ERR_SOFTWARE, "cannot set up TLS");
	}
	if (!policy->is_ip)
		SSL_set_tlsext_host_name(ssl, policy->host);
	if (SSL_connect(ssl) != 1) {
		unsigned long code = ERR_get_error();
		char buf[200];

		ERR_error_string_n(code, buf, sizeof(buf));
		ERR_clear_error();
		SSL_free(ssl);
		if (policy->reason[0] != '\0')
			return err_set(e, ERR_TEMPFAIL, "TLS with %s: %s",
			    policy->host, policy->reason);
		return err_set(e, ERR_TEMPFAIL, "TLS handshake with %s "
		    "failed: %s", policy->host, code ? buf :
		    "the connection closed");
	}
	if (!tls_peer_ok(policy, ssl)) {
		SSL_free(ssl);
		return err_set(e, ERR_TEMPFAIL, "TLS with %s: %s",
		    policy->host, policy->reason);
	}
	*out = ssl;
	return 0;
}

/* One SMTP reply (all its lines) from fd; its code, 0 on EOF/garbage. */
static int
read_reply(int fd, char *buf, size_t len, bool verbose)
{
	size_t n = 0;
	int code = 0;

	buf[0] = '\0';
	for (;;) {
		char line[1024];
		size_t l = 0;
		char c;

		while (l < sizeof(line) - 1) {
			ssize_t r = read(fd, &c, 1);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return 0;
			if (c == '\n')
				break;
			if (c != '\r')
				line[l++] = c;
		}
		line[l] = '\0';
		util_sanitize_ascii(line);
		if (verbose)
			fprintf(stderr, "deliver: < %s\n", line);
		if (l < 3 || line[0] < '1' || line[0] > '5')
			return 0;
		code = atoi(line);
		if (n + l + 2 < len) {
			memcpy(buf + n, line, l);
			n += l;
			buf[n++] = '\n';
			buf[n] = '\0';
		}
		if (l == 3 || line[3] != '-')
			break;
	}
	if (n > 0)
		buf[n - 1] = '\0';	/* no final newline */
	return code;
}

static int
send_line(int fd, const char *line, bool verbose)
{
	if (verbose)
		fprintf(stderr, "deliver: > %s\n", line);
	return util_write_all(fd, line, strlen(line)) < 0 ||
	    util_write_all(fd, "\r\n", 2) < 0 ? -1 : 0;
}

/* Does a multi-line EHLO reply list the keyword? */
static bool
ehlo_has(const char *reply, const char *kw)
{
	size_t n = strlen(kw);

	for (const char *p = reply; p != NULL && *p; ) {
		if (strlen(p) >= 4 + n && strncasecmp(p + 4, kw, n) == 0 &&
		    (p[4 + n] == '\0' || p[4 + n] == '\n' || p[4 + n] == ' '))
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

int
bridge_starttls(struct tls_policy *policy, int fd, const char *helo,
    bool verbose, SSL **out, struct err *e)
{
	char reply[2048], line[600];
	int code;

	code = read_reply(fd, reply, sizeof(reply), verbose);
	if (code != 220)
		return err_set(e, ERR_TEMPFAIL, "%s %s: %.400s", policy->host,
		    code ? "said" : "did not greet",
		    code ? reply : "the connection closed");
	snprintf(line, sizeof(line), "EHLO %s", helo);
	if (send_line(fd, line, verbose) < 0 ||
	    (code = read_reply(fd, reply, sizeof(reply), verbose)) != 250)
		return err_set(e, ERR_TEMPFAIL, "%s refused EHLO: %.400s",
		    policy->host, code ? reply : "the connection closed");
	if (!ehlo_has(reply, "STARTTLS"))
		return err_set(e, ERR_TEMPFAIL, "%s does not offer STARTTLS "
		    "and the identity requires it (tls starttls)",
		    policy->host);
	if (send_line(fd, "STARTTLS", verbose) < 0 ||
	    (code = read_reply(fd, reply, sizeof(reply), verbose)) != 220)
		return err_set(e, ERR_TEMPFAIL, "%s refused STARTTLS: %.400s",
		    policy->host, code ? reply : "the connection closed");
	return bridge_tls(policy, fd, 0, out, e);
}

int
bridge_peer_fd(int fd, int skip1, int skip2)
{
	struct sockaddr_storage peer, mine;
	socklen_t plen = sizeof(peer), mlen;
	DIR *d;
	struct dirent *de;
	int found = -1;

	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		return -1;
	d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	while (found < 0 && (de = readdir(d)) != NULL) {
		char *end;
		long other = strtol(de->d_name, &end, 10);

		if (*end != '\0' || end == de->d_name || other == fd ||
		    other == skip1 || other == skip2 || other == dirfd(d))
			continue;
		mlen = sizeof(mine);
		if (getsockname((int)other, (struct sockaddr *)&mine,
		    &mlen) < 0 || mlen != plen)
			continue;
		if (memcmp(&mine, &peer, plen) == 0)
			found = (int)other;
	}
	closedir(d);
	return found;
}

bool
bridge_peer_is_ours(int fd, int skip1, int skip2)
{
	return bridge_peer_fd(fd, skip1, skip2) >= 0;
}

/*
 * Upstream reads: > 0 bytes, 0 end, -1 error, -2 nothing yet. With TLS
 * the socket is non-blocking: a readable socket may carry only TLS 1.3
 * post-handshake records (tickets), and a blocking SSL_read would then
 * wait for data the server will not send until it hears from us.
 */
static ssize_t
up_read(struct bridge *b, char *buf, size_t n)
{
	int r;

	if (b->up_ssl == NULL)
		return read(b->up_fd, buf, n);
	r = SSL_read(b->up_ssl, buf, (int)n);
	if (r > 0)
		return r;
	switch (SSL_get_error(b->up_ssl, r)) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -2;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN || errno == EINTR)
			return -2;
		ERR_clear_error();
		return r == 0 ? 0 : -1;
	default:
		ERR_clear_error();
		return -1;
	}
}

static bool
wait_fd(int fd, short events, long timeout)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&pfd, 1, (int)(timeout * 1000));
	while (r < 0 && errno == EINTR);
	return r > 0;
}

static int
up_write(struct bridge *b, const char *buf, size_t n)
{
	if (b->up_ssl == NULL)
		return util_write_all(b->up_fd, buf, n) < 0 ? -1 : 0;
	while (n > 0) {
		int w = SSL_write(b->up_ssl, buf, (int)n);

		if (w <= 0) {
			int err = SSL_get_error(b->up_ssl, w);

			/* retry with the same buffer once the socket is ready */
			if (err == SSL_ERROR_WANT_READ &&
			    wait_fd(b->up_fd, POLLIN, b->timeout))
				continue;
			if (err == SSL_ERROR_WANT_WRITE &&
			    wait_fd(b->up_fd, POLLOUT, b->timeout))
				continue;
			ERR_clear_error();
			return -1;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Hand what the upstream has to libESMTP: 1 go on, 0 stop. */
static int
pump_up(struct bridge *b, char *buf, size_t len)
{
	ssize_t n = up_read(b, buf, len);

	if (n == -2)
		return 1;
	if (n <= 0) {
		if (n < 0)
			snprintf(b->error, sizeof(b->error), "the upstream "
			    "connection broke: %s", strerror(errno));
		return 0;	/* the server hung up */
	}
	return util_write_all(b->local_fd, buf, (size_t)n) < 0 ? 0 : 1;
}

static void
pump(struct bridge *b)
{
	char buf[65536];

	if (b->up_ssl != NULL)
		fcntl(b->up_fd, F_SETFL, fcntl(b->up_fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = b->local_fd, .events = POLLIN },
			{ .fd = b->up_fd, .events = POLLIN },
		};

		/*
		 * Bytes OpenSSL already holds are invisible to poll: read them
		 * first. A partial record reads as "nothing yet" and the rest
		 * arrives on the socket.
		 */
		if (b->up_ssl != NULL && SSL_has_pending(b->up_ssl)) {
			ssize_t n = up_read(b, buf, sizeof(buf));

			if (n > 0) {
				if (util_write_all(b->local_fd, buf,
				    (size_t)n) < 0)
					return;
				continue;
			}
			if (n != -2) {
				if (n < 0)
					snprintf(b->error, sizeof(b->error),
					    "the upstream connection broke");
				return;
			}
		}
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(b->error, sizeof(b->error), "poll: %s",
			    strerror(errno));
			return;
		}
		if (pfd[0].revents) {
			ssize_t n = read(b->local_fd, buf, sizeof(buf));

			if (n <= 0)
				return;		/* libESMTP is done */
			if (up_write(b, buf, (size_t)n) < 0) {
				snprintf(b->error, sizeof(b->error), "the "
				    "upstream connection broke while sending: "
				    "%s", strerror(errno));
				return;
			}
		}
		if (pfd[1].revents && !pump_up(b, buf, sizeof(buf)))
			return;
	}
}

static void *
bridge_main(void *arg)
{
	struct bridge *b = arg;

	/* Accept until our own libESMTP connects (bounded). */
	while (b->rejected < 16) {
		struct pollfd pfd = { .fd = b->listen_fd, .events = POLLIN };
		int fd, client, one = 1;

		if (poll(&pfd, 1, (int)(b->timeout * 1000)) <= 0) {
			snprintf(b->error, sizeof(b->error), "the SMTP client "
			    "never connected to the bridge");
			break;
		}
		fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if ((client = bridge_peer_fd(fd, b->listen_fd, b->up_fd)) < 0) {
			close(fd);	/* someone else's connection */
			b->rejected++;
			continue;
		}
		/*
		 * libESMTP writes a message in 2 KiB pieces; with Nagle on its
		 * socket and delayed ACKs on ours each message would stall
		 * ~40 ms. Both ends of the loopback hop send at once.
		 */
		setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* bridge_cut reads it from the session's thread */
		__atomic_store_n(&b->local_fd, fd, __ATOMIC_RELEASE);
		break;
	}
	close(b->listen_fd);
	b->listen_fd = -1;
	if (b->local_fd >= 0 && b->greeting[0] != '\0' &&
	    util_write_all(b->local_fd, b->greeting,
	    strlen(b->greeting)) < 0)
		snprintf(b->error, sizeof(b->error), "cannot greet the SMTP "
		    "client");
	else if (b->local_fd >= 0)
		pump(b);
	if (b->up_ssl != NULL)
		SSL_shutdown(b->up_ssl);
	shutdown(b->up_fd, SHUT_RDWR);
	if (b->local_fd >= 0)
		shutdown(b->local_fd, SHUT_RDWR);
	return NULL;
}

int
bridge_start(struct bridge *b, int up_fd, SSL *up_ssl, const char *greeting,
    long timeout, struct err *e)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(b, 0, sizeof(*b));
	b->local_fd = -1;
	b->up_fd = up_fd;
	b->up_ssl = up_ssl;
	b->timeout = timeout > 0 ? timeout : 30;
	if (up_ssl == NULL && greeting == NULL) {
		/* plain: libESMTP gets the socket itself (handoff.h) */
		handoff_arm(up_fd);
		b->handoff = true;
		snprintf(b->server, sizeof(b->server), "%s", HANDOFF_SERVER);
		return 0;
	}
	snprintf(b->greeting, sizeof(b->greeting), "%s",
	    greeting ? greeting : "");
	b->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (b->listen_fd < 0 || bind(b->listen_fd, (struct sockaddr *)&sin,
	    sizeof(sin)) < 0 || listen(b->listen_fd, 4) < 0 ||
	    getsockname(b->listen_fd, (struct sockaddr *)&sin, &len) < 0) {
		int saved = errno;

		if (b->listen_fd >= 0)
			close(b->listen_fd);
		return err_set(e, ERR_OSERR, "cannot open the loopback bridge: "
		    "%s", strerror(saved));
	}
	b->port = ntohs(sin.sin_port);
	snprintf(b->server, sizeof(b->server), "127.0.0.1:%d", b->port);
	if (pthread_create(&b->thread, NULL, bridge_main, b) != 0) {
		close(b->listen_fd);
		return err_set(e, ERR_OSERR, "cannot start the bridge thread");
	}
	b->running = true;
	return 0;
}

void
bridge_cut(struct bridge *b)
{
	int local = __atomic_load_n(&b->local_fd, __ATOMIC_ACQUIRE);

	if (local >= 0)
		shutdown(local, SHUT_RDWR);
	shutdown(b->up_fd, SHUT_RDWR);
}

void
bridge_finish(struct bridge *b)
{
	if (b->handoff)
		handoff_disarm();
	if (b->running) {
		pthread_join(b->thread, NULL);
		b->running = false;
	}
	if (b->local_fd >= 0)
		close(b->local_fd);
	if (b->up_ssl != NULL)
		SSL_free(b->up_ssl);
	if (b->up_fd >= 0)
		close(b->up_fd);
	b->local_fd = b->up_fd = -1;
	b->up_ssl = NULL;
}
