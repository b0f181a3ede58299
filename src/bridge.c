/* bridge.c - upstream connections and the loopback bridge for libESMTP. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bridge.h"
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
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
		return err_set(e, ERR_TEMPFAIL, "cannot resolve %s: %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		*fd = connect_one(ai, timeout, &last);
		if (*fd >= 0) {
			freeaddrinfo(res);
			set_timeouts(*fd, timeout * 6);
			return 0;
		}
	}
	freeaddrinfo(res);
	return err_set(e, ERR_TEMPFAIL, "cannot connect to %s port %d: %s",
	    host, port, last == ETIMEDOUT ? "no answer (connect timeout)" :
	    strerror(last));
}

int
bridge_tls(struct tls_policy *policy, int fd, long timeout, SSL **out,
    struct err *e)
{
	SSL *ssl = SSL_new(policy->ctx);

	(void)timeout;
	policy->reason[0] = '\0';
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return err_set(e, ERR_SOFTWARE, "cannot set up TLS");
	}
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

bool
bridge_peer_is_ours(int fd, int skip1, int skip2)
{
	struct sockaddr_storage peer, mine;
	socklen_t plen = sizeof(peer), mlen;
	DIR *d;
	struct dirent *de;
	bool found = false;

	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		return false;
	d = opendir("/proc/self/fd");
	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		char *end;
		long other = strtol(de->d_name, &end, 10);

		if (*end != '\0' || end == de->d_name || other == fd ||
		    other == skip1 || other == skip2 || other == dirfd(d))
			continue;
		mlen = sizeof(mine);
		if (getsockname((int)other, (struct sockaddr *)&mine,
		    &mlen) < 0 || mlen != plen)
			continue;
		found = memcmp(&mine, &peer, plen) == 0;
	}
	closedir(d);
	return found;
}

static ssize_t
up_read(struct bridge *b, char *buf, size_t n)
{
	if (b->up_ssl == NULL)
		return read(b->up_fd, buf, n);
	for (;;) {
		int r = SSL_read(b->up_ssl, buf, (int)n);

		if (r > 0)
			return r;
		switch (SSL_get_error(b->up_ssl, r)) {
		case SSL_ERROR_ZERO_RETURN:
			return 0;
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			continue;
		default:
			ERR_clear_error();
			return -1;
		}
	}
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

			if (err == SSL_ERROR_WANT_READ ||
			    err == SSL_ERROR_WANT_WRITE)
				continue;
			ERR_clear_error();
			return -1;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
pump(struct bridge *b)
{
	char buf[65536];

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = b->local_fd, .events = POLLIN },
			{ .fd = b->up_fd, .events = POLLIN },
		};
		bool up_ready = b->up_ssl != NULL && SSL_pending(b->up_ssl) > 0;

		if (!up_ready && poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(b->error, sizeof(b->error), "poll: %s",
			    strerror(errno));
			return;
		}
		if (!up_ready && pfd[0].revents) {
			ssize_t n = read(b->local_fd, buf, sizeof(buf));

			if (n <= 0)
				return;		/* libESMTP is done */
			if (up_write(b, buf, (size_t)n) < 0) {
				snprintf(b->error, sizeof(b->error), "the "
				    "upstream connection broke while sending");
				return;
			}
		}
		if (up_ready || pfd[1].revents) {
			ssize_t n = up_read(b, buf, sizeof(buf));

			if (n <= 0) {
				if (n < 0)
					snprintf(b->error, sizeof(b->error),
					    "the upstream connection broke");
				return;		/* the server hung up */
			}
			if (util_write_all(b->local_fd, buf, (size_t)n) < 0)
				return;
		}
	}
}

static void *
bridge_main(void *arg)
{
	struct bridge *b = arg;

	/* Accept until our own libESMTP connects (bounded). */
	while (b->rejected < 16) {
		struct pollfd pfd = { .fd = b->listen_fd, .events = POLLIN };
		int fd;

		if (poll(&pfd, 1, (int)(b->timeout * 1000)) <= 0) {
			snprintf(b->error, sizeof(b->error), "the SMTP client "
			    "never connected to the bridge");
			break;
		}
		fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (!bridge_peer_is_ours(fd, b->listen_fd, b->up_fd)) {
			close(fd);	/* someone else's connection */
			b->rejected++;
			continue;
		}
		b->local_fd = fd;
		break;
	}
	close(b->listen_fd);
	b->listen_fd = -1;
	if (b->local_fd >= 0)
		pump(b);
	if (b->up_ssl != NULL)
		SSL_shutdown(b->up_ssl);
	shutdown(b->up_fd, SHUT_RDWR);
	if (b->local_fd >= 0)
		shutdown(b->local_fd, SHUT_RDWR);
	return NULL;
}

int
bridge_start(struct bridge *b, int up_fd, SSL *up_ssl, long timeout,
    struct err *e)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(b, 0, sizeof(*b));
	b->local_fd = -1;
	b->up_fd = up_fd;
	b->up_ssl = up_ssl;
	b->timeout = timeout > 0 ? timeout : 30;
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
	if (b->local_fd >= 0)
		shutdown(b->local_fd, SHUT_RDWR);
	shutdown(b->up_fd, SHUT_RDWR);
}

void
bridge_finish(struct bridge *b)
{
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
