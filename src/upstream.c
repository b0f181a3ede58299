/* upstream.c - implicit TLS and postie's own STARTTLS, each bounded. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "upstream.h"
#include "util.h"

static void
set_nonblocking(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Wait for events on fd until deadline (ms): 1 ready, 0 too late. */
static int
wait_until(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		long long left = deadline - util_mono_ms();
		int r;

		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return 1;	/* let the read or write say why */
	}
}

int
upstream_tls(struct tls_policy *policy, int fd, long timeout, SSL **out,
    struct err *e)
{
	SSL *ssl = SSL_new(policy->ctx);
	long long deadline = util_mono_ms() + timeout * 1000;
	int r;

	policy->reason[0] = '\0';
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return err_set(e, ERR_SOFTWARE, "cannot set up TLS");
	}
	/* the pump retries a partial write with the rest of its buffer */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!policy->is_ip)
		SSL_set_tlsext_host_name(ssl, policy->host);
	set_nonblocking(fd);
	while ((r = SSL_connect(ssl)) != 1) {
		int err = SSL_get_error(ssl, r);
		short ev = err == SSL_ERROR_WANT_READ ? POLLIN :
		    err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;

		if (ev != 0 && wait_until(fd, ev, deadline))
			continue;
		if (ev != 0) {
			SSL_free(ssl);
			return err_set(e, ERR_TEMPFAIL, "TLS handshake with %s "
			    "timed out (%ld s)", policy->host, timeout);
		}
		{
			unsigned long code = ERR_get_error();
			char buf[200];

			ERR_error_string_n(code, buf, sizeof(buf));
			ERR_clear_error();
			SSL_free(ssl);
			if (policy->reason[0] != '\0')
				return err_set(e, ERR_TEMPFAIL, "TLS with %s: "
				    "%s", policy->host, policy->reason);
			return err_set(e, ERR_TEMPFAIL, "TLS handshake with "
			    "%s failed: %s", policy->host, code ? buf :
			    "the connection closed");
		}
	}
	if (!tls_peer_ok(policy, ssl)) {
		SSL_free(ssl);
		return err_set(e, ERR_TEMPFAIL, "TLS with %s: %s",
		    policy->host, policy->reason);
	}
	*out = ssl;
	return 0;
}

static void
show(const struct reply *r, size_t from, bool verbose)
{
	if (!verbose)
		return;
	for (size_t i = from; i < r->line; ) {
		const char *nl = memchr(r->buf + i, '\n', r->len - i);
		size_t n = (size_t)(nl - (r->buf + i));

		fprintf(stderr, "deliver: < %.*s\n", (int)(n > 0 ? n - 1 : 0),
		    r->buf + i);
		i += n + 1;
	}
}

int
upstream_read_reply(int fd, struct reply *r, const char *host,
    const char *stage, long timeout, bool verbose, struct err *e)
{
	long long deadline = util_mono_ms() + timeout * 1000;

	reply_init(r);
	while (!r->done) {
		char buf[4096];
		size_t shown = r->line;
		ssize_t n = read(fd, buf, sizeof(buf)), took;

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_until(fd, POLLIN, deadline))
				return err_set(e, ERR_TEMPFAIL, "%s timed out "
				    "waiting for %s (%ld s)", host, stage,
				    timeout);
			continue;
		}
		if (n <= 0)
			return err_set(e, ERR_TEMPFAIL, "%s closed the "
			    "connection while waiting for %s%s%s", host, stage,
			    n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		took = reply_feed(r, buf, (size_t)n);
		show(r, shown, verbose);
		if (took < 0)
			return err_set(e, ERR_TEMPFAIL, "%s %s (%s)", host,
			    r->error, stage);
		if (took < n)
			return err_set(e, ERR_TEMPFAIL, "%s sent more than %s "
			    "before TLS (protocol error)", host, stage);
		if (!r->done && util_mono_ms() >= deadline)
			return err_set(e, ERR_TEMPFAIL, "%s timed out waiting "
			    "for %s (%ld s)", host, stage, timeout);
	}
	return 0;
}

static int
send_line(int fd, const char *line, long timeout, bool verbose)
{
	long long deadline = util_mono_ms() + timeout * 1000;
	char buf[600];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s\r\n", line), off = 0;

	if (verbose)
		fprintf(stderr, "deliver: > %s\n", line);
	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_until(fd, POLLOUT, deadline)) {
				errno = ETIMEDOUT;
				return -1;
			}
			continue;
		}
		if (w < 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

static int
dialogue(struct tls_policy *policy, int fd, const char *helo, long timeout,
    bool verbose, struct reply *rp, struct err *e)
{
	const char *host = policy->host;
	char line[600], text[400];

	set_nonblocking(fd);
	if (upstream_read_reply(fd, rp, host, "the greeting", timeout,
	    verbose, e) < 0)
		return -1;
	reply_text(rp, text, sizeof(text));
	if (rp->code != 220)
		return err_set(e, ERR_TEMPFAIL, "%s said: %s", host, text);
	snprintf(line, sizeof(line), "EHLO %s", helo);
	if (send_line(fd, line, timeout, verbose) < 0)
		return err_set(e, ERR_TEMPFAIL, "%s: cannot send EHLO: %s",
		    host, strerror(errno));
	if (upstream_read_reply(fd, rp, host, "the reply to EHLO", timeout,
	    verbose, e) < 0)
		return -1;
	reply_text(rp, text, sizeof(text));
	if (rp->code != 250)
		return err_set(e, ERR_TEMPFAIL, "%s refused EHLO: %s", host,
		    text);
	if (!reply_has_keyword(rp, "STARTTLS"))
		return err_set(e, ERR_TEMPFAIL, "%s does not offer STARTTLS "
		    "and the identity requires it (tls starttls)", host);
	if (send_line(fd, "STARTTLS", timeout, verbose) < 0)
		return err_set(e, ERR_TEMPFAIL, "%s: cannot send STARTTLS: "
		    "%s", host, strerror(errno));
	if (upstream_read_reply(fd, rp, host, "the reply to STARTTLS",
	    timeout, verbose, e) < 0)
		return -1;
	reply_text(rp, text, sizeof(text));
	if (rp->code != 220)
		return err_set(e, ERR_TEMPFAIL, "%s refused STARTTLS: %s",
		    host, text);
	return 0;
}

int
upstream_starttls(struct tls_policy *policy, int fd, const char *helo,
    long timeout, bool verbose, SSL **out, struct err *e)
{
	struct reply *r = xmalloc(sizeof(*r));	/* 66 KiB: not on a stack */
	int rc = dialogue(policy, fd, helo, timeout, verbose, r, e);

	free(r);
	return rc < 0 ? -1 : upstream_tls(policy, fd, timeout, out, e);
}
