/* session.c - TLS, greeting, EHLO and AUTH on the upstream, each bounded. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "auth.h"
#include "session.h"
#include "util.h"

#define AUTH_STEPS_MAX	4	/* 334s answered before giving up */

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

/* ---- TLS ---------------------------------------------------------------- */

/* What to do, after what went wrong: " (hint)" at the end of e. */
static void hint(struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
hint(struct err *e, const char *fmt, ...)
{
	size_t len = strlen(e->msg);
	va_list ap;

	if (len + 3 >= sizeof(e->msg))
		return;
	snprintf(e->msg + len, sizeof(e->msg) - len, " (");
	len += 2;
	va_start(ap, fmt);
	vsnprintf(e->msg + len, sizeof(e->msg) - len, fmt, ap);
	va_end(ap);
	len = strlen(e->msg);
	snprintf(e->msg + len, sizeof(e->msg) - len, ")");
}

static int
handshake(struct session *s, const struct session_params *p, struct err *e)
{
	struct tls_policy *policy = p->tls;
	SSL *ssl = SSL_new(policy->ctx);
	long long deadline = util_mono_ms() + p->timeout * 1000;
	int r;

	policy->reason[0] = '\0';
	if (ssl == NULL || SSL_set_fd(ssl, s->fd) != 1) {
		SSL_free(ssl);
		return err_set(e, ERR_SOFTWARE, "cannot set up TLS");
	}
	/* the pump retries a partial write with the rest of its buffer */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* one read(2) takes every record that is there, not two a record
	 * (header, then body); whoever reads calls SSL_read until it wants
	 * more before it polls, as poll cannot see what OpenSSL holds */
	SSL_set_read_ahead(ssl, 1);
	if (!policy->is_ip)
		SSL_set_tlsext_host_name(ssl, policy->host);
	while ((r = SSL_connect(ssl)) != 1) {
		int err = SSL_get_error(ssl, r);
		short ev = err == SSL_ERROR_WANT_READ ? POLLIN :
		    err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
		unsigned long code;
		char buf[200];

		if (ev != 0 && wait_until(s->fd, ev, deadline))
			continue;
		if (ev != 0) {
			SSL_free(ssl);
			return err_set(e, ERR_TEMPFAIL, "TLS handshake with %s "
			    "timed out (%ld s)", policy->host, p->timeout);
		}
		code = ERR_get_error();
		ERR_error_string_n(code, buf, sizeof(buf));
		ERR_clear_error();
		SSL_free(ssl);
		if (policy->reason[0] != '\0')
			return err_set(e, ERR_TEMPFAIL, "TLS with %s: %s",
			    policy->host, policy->reason);
		err_set(e, ERR_TEMPFAIL, "TLS handshake with %s failed: %s",
		    policy->host, code ? buf : "the connection closed");
		/* what a plain greeting ("220 ...") looks like to TLS */
		if (p->mode == TLS_IMPLICIT && ERR_GET_LIB(code) ==
		    ERR_LIB_SSL && ERR_GET_REASON(code) ==
		    SSL_R_WRONG_VERSION_NUMBER)
			hint(e, "port %d does not start with TLS: for a port "
			    "that offers STARTTLS (as 587 does) set tls "
			    "starttls", p->port);
		return -1;
	}
	if (!tls_peer_ok(policy, ssl)) {
		SSL_free(ssl);
		return err_set(e, ERR_TEMPFAIL, "TLS with %s: %s",
		    policy->host, policy->reason);
	}
	s->ssl = ssl;
	return 0;
}

/* ---- bytes: > 0 moved, 0 closed, -1 broken, -2 would block -------------- */

static ssize_t
conn_read(struct session *s, char *b, size_t n, short *want)
{
	ssize_t r;

	errno = 0;
	if (s->ssl != NULL) {
		int k = SSL_read(s->ssl, b, n > INT_MAX ? INT_MAX : (int)n);

		return k > 0 ? k : tls_io_result(s->ssl, k, want);
	}
	r = read(s->fd, b, n);
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		*want = POLLIN;
		return -2;
	}
	return r;
}

static ssize_t
conn_write(struct session *s, const char *b, size_t n, short *want)
{
	ssize_t r;

	errno = 0;
	if (s->ssl != NULL) {
		int k = SSL_write(s->ssl, b, n > INT_MAX ? INT_MAX : (int)n);

		return k > 0 ? k : tls_io_result(s->ssl, k, want);
	}
	r = send(s->fd, b, n, MSG_NOSIGNAL);
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		*want = POLLOUT;
		return -2;
	}
	return r < 0 ? -1 : r;
}

/* ---- the dialogue ------------------------------------------------------- */

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

/* One whole reply into r within the timeout; stage names what it
 * answers ("the greeting"). */
static int
read_reply(struct session *s, const struct session_params *p,
    struct reply *r, const char *stage, struct err *e)
{
	long long deadline = util_mono_ms() + p->timeout * 1000;

	reply_init(r);
	while (!r->done) {
		char buf[4096];
		size_t shown = r->line;
		short want = POLLIN;
		ssize_t n = conn_read(s, buf, sizeof(buf), &want), took;

		if (n == -2) {
			/* ACK what came at once: over TLS 1.3 the server's
			 * session ticket comes after its handshake, and its
			 * reply to our EHLO then waited under Nagle for our
			 * ACK of the ticket, which Linux delays 40 ms (seen
			 * with Postfix in about one session of three) */
			util_quickack(s->fd, NULL);
			if (!wait_until(s->fd, want, deadline))
				return err_set(e, ERR_TEMPFAIL, "%s timed out "
				    "waiting for %s (%ld s)", p->host, stage,
				    p->timeout);
			continue;
		}
		if (n <= 0)
			return err_set(e, ERR_TEMPFAIL, "%s closed the "
			    "connection while waiting for %s%s%s", p->host,
			    stage, n < 0 ? ": " : "", n < 0 ?
			    strerror(errno) : "");
		took = reply_feed(r, buf, (size_t)n);
		show(r, shown, p->verbose);
		if (took < 0)
			return err_set(e, ERR_TEMPFAIL, "%s %s (%s)", p->host,
			    r->error, stage);
		if (took < n || (r->done && s->ssl != NULL &&
		    SSL_pending(s->ssl) > 0))
			return err_set(e, ERR_TEMPFAIL, "%s sent more than %s "
			    "(protocol error)", p->host, stage);
		if (!r->done && util_mono_ms() >= deadline)
			return err_set(e, ERR_TEMPFAIL, "%s timed out waiting "
			    "for %s (%ld s)", p->host, stage, p->timeout);
	}
	return 0;
}

/* Send line and CRLF; shown is what -v prints in its place (NULL: the
 * line itself). */
static int
send_line(struct session *s, const struct session_params *p,
    const char *line, const char *shown, struct err *e)
{
	long long deadline = util_mono_ms() + p->timeout * 1000;
	size_t n = strlen(line) + 2, off = 0;
	char *buf = xmalloc(n + 1);
	int rc = 0;

	memcpy(buf, line, n - 2);
	memcpy(buf + n - 2, "\r\n", 3);
	if (p->verbose)
		fprintf(stderr, "deliver: > %s\n", shown ? shown : line);
	while (off < n) {
		short want = POLLOUT;
		ssize_t w = conn_write(s, buf + off, n - off, &want);

		if (w == -2 && wait_until(s->fd, want, deadline))
			continue;
		if (w <= 0) {
			rc = err_set(e, ERR_TEMPFAIL, "%s: cannot send %.*s: %s",
			    p->host, (int)strcspn(shown ? shown : line, " "),
			    shown ? shown : line, w == -2 ? "timed out" :
			    strerror(errno ? errno : EPIPE));
			break;
		}
		off += (size_t)w;
	}
	OPENSSL_cleanse(buf, n);	/* it may carry a secret */
	free(buf);
	return rc;
}

/* Send cmd, read its reply into r; it must have code want. */
static int
command(struct session *s, const struct session_params *p, struct reply *r,
    const char *cmd, int want, const char *failed, struct err *e)
{
	char stage[64], text[400];

	snprintf(stage, sizeof(stage), "the reply to %.*s",
	    (int)strcspn(cmd, " "), cmd);
	if (send_line(s, p, cmd, NULL, e) < 0 ||
	    read_reply(s, p, r, stage, e) < 0)
		return -1;
	if (r->code != want) {
		reply_text(r, text, sizeof(text));
		/* a refusal is a 4xx or 5xx; anything else is a server (or
		 * something in the way) out of step with the dialogue */
		if (r->code >= 400)
			return err_set(e, ERR_TEMPFAIL, "%s %s: %s", p->host,
			    failed, text);
		return err_set(e, ERR_TEMPFAIL, "%s answered %.*s out of step "
		    "(a server or proxy that sent more than it was asked "
		    "for?): %s", p->host, (int)strcspn(cmd, " "), cmd, text);
	}
	return 0;
}

static int
ehlo(struct session *s, const struct session_params *p, struct err *e)
{
	char line[600];

	snprintf(line, sizeof(line), "EHLO %s", p->helo);
	return command(s, p, s->ehlo, line, 250, "refused EHLO", e);
}

/* ---- AUTH --------------------------------------------------------------- */

/* The decoded text of a 334 (malloc'd, NUL after it), or NULL. */
static unsigned char *
challenge(const struct reply *r, size_t *len)
{
	size_t n = 0;

	if (r->len > 4 && r->buf[3] == ' ')
		n = strcspn(r->buf + 4, "\r\n");
	return auth_b64_decode(r->buf + 4, r->len > 4 ? n : 0, len);
}

static int
auth_failed(struct session *s, const struct session_params *p,
    const struct reply *r, const char *status, struct err *e)
{
	char text[400];

	s->auth_failed = true;
	reply_text(r, text, sizeof(text));
	if (status[0] != '\0')
		return err_set(e, ERR_TEMPFAIL, "authentication failed for "
		    "user '%s' (%s, status %s): %s", p->user,
		    auth_mech_names[s->mech], status, text);
	return err_set(e, ERR_TEMPFAIL, "authentication failed for user '%s' "
	    "(%s): %s", p->user, auth_mech_names[s->mech], text);
}

/* The steps after "AUTH MECH [response]": answer each 334 until 235. */
static int
auth_steps(struct session *s, const struct session_params *p,
    struct reply *r, bool sent, struct err *e)
{
	bool oauth = s->mech == AUTH_XOAUTH2 || s->mech == AUTH_OAUTHBEARER;
	char status[64] = "";
	int step = sent ? 1 : 0;

	for (int round = 0;; round++) {
		unsigned char *ch;
		size_t clen = 0;
		char *resp;
		int rc;

		if (read_reply(s, p, r, "the reply to AUTH", e) < 0)
			return -1;
		if (r->code == 235)
			return 0;
		if (r->code != 334 || status[0] != '\0' ||
		    round >= AUTH_STEPS_MAX)
			break;
		ch = challenge(r, &clen);
		if (oauth && sent) {
			/* an OAuth2 error (RFC 7628 3.2.2): JSON whose status
			 * says why; answer it, the final reply follows */
			if (ch == NULL || !auth_oauth_status(ch, clen, status,
			    sizeof(status)))
				snprintf(status, sizeof(status), "unknown");
			free(ch);
			if (send_line(s, p, s->mech == AUTH_OAUTHBEARER ?
			    "AQ==" : "", NULL, e) < 0)
				return -1;
			continue;
		}
		resp = ch == NULL && s->mech == AUTH_CRAM_MD5 ? NULL :
		    auth_response((enum auth_mech)s->mech, sent && !oauth ?
		    step : 0, p->user, p->secret, p->host, p->port, ch, clen);
		if (ch != NULL)
			OPENSSL_cleanse(ch, clen);
		free(ch);
		if (resp == NULL) {
			/* a challenge the mechanism has no answer for:
			 * cancel (RFC 4954), the server says 501 */
			if (send_line(s, p, "*", NULL, e) < 0)
				return -1;
			continue;
		}
		rc = send_line(s, p, resp, "(redacted)", e);
		auth_wipe(resp);
		if (rc < 0)
			return -1;
		sent = true;
		step++;
	}
	return auth_failed(s, p, r, status, e);
}

static int
authenticate(struct session *s, const struct session_params *p,
    struct reply *r, struct err *e)
{
	struct auth_offer offer;
	char allowed[128], line[64];
	char *first = NULL;
	bool sent = false;
	int rc;

	auth_parse_offer(s->ehlo, &offer);
	s->mech = auth_choose(p->mechs, p->nmechs, &offer);
	if (s->mech < 0) {
		s->auth_failed = true;
		auth_allowed_text(p->mechs, p->nmechs, allowed,
		    sizeof(allowed));
		if (offer.names[0] == '\0')
			return err_set(e, ERR_TEMPFAIL, "%s offers no AUTH; "
			    "the identity allows %s (auth in postie.conf(5))",
			    p->host, allowed);
		return err_set(e, ERR_TEMPFAIL, "%s offers AUTH %s; the "
		    "identity allows %s (auth in postie.conf(5))", p->host,
		    offer.names, allowed);
	}
	if (s->mech == AUTH_PLAIN || s->mech == AUTH_XOAUTH2 ||
	    s->mech == AUTH_OAUTHBEARER)
		first = auth_response((enum auth_mech)s->mech, 0, p->user,
		    p->secret, p->host, p->port, NULL, 0);
	snprintf(line, sizeof(line), "AUTH %s", auth_mech_names[s->mech]);
	if (first != NULL && auth_inline((enum auth_mech)s->mech,
	    strlen(first))) {
		char *full = xasprintf("%s %s", line, first);
		char shown[80];

		snprintf(shown, sizeof(shown), "%s (redacted)", line);
		rc = send_line(s, p, full, shown, e);
		auth_wipe(full);
		sent = true;
	} else
		rc = send_line(s, p, line, NULL, e);
	auth_wipe(first);
	if (rc < 0)
		return -1;
	return auth_steps(s, p, r, sent, e);
}

/* ---- the opening -------------------------------------------------------- */

static int
opening(struct session *s, const struct session_params *p, struct reply *r,
    struct err *e)
{
	char text[400];

	if (p->mode == TLS_IMPLICIT && handshake(s, p, e) < 0)
		return -1;
	if (read_reply(s, p, r, "the greeting", e) < 0) {
		/* a port that wants TLS at once waits for our handshake, as
		 * we wait for its greeting: not a byte came */
		if (p->mode != TLS_IMPLICIT && r->len == 0 &&
		    strstr(e->msg, "timed out") != NULL)
			hint(e, "if port %d wants TLS at once (as 465 does), "
			    "set tls tls", p->port);
		return -1;
	}
	if (r->code != 220) {
		reply_text(r, text, sizeof(text));
		return err_set(e, ERR_TEMPFAIL, "%s said: %s", p->host, text);
	}
	if (ehlo(s, p, e) < 0)
		return -1;
	if (p->mode == TLS_STARTTLS) {
		if (!reply_has_keyword(s->ehlo, "STARTTLS"))
			return err_set(e, ERR_TEMPFAIL, "%s does not offer "
			    "STARTTLS and the identity requires it (tls "
			    "starttls)", p->host);
		if (command(s, p, r, "STARTTLS", 220, "refused STARTTLS",
		    e) < 0 || handshake(s, p, e) < 0 || ehlo(s, p, e) < 0)
			return -1;
	}
	if (p->user != NULL && authenticate(s, p, r, e) < 0)
		return -1;
	return 0;
}

int
session_open(struct session *s, int fd, const struct session_params *p,
    struct err *e)
{
	/* replies are 66 KiB each: not on a stack */
	struct reply *r = xmalloc(sizeof(*r));
	int rc;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->mech = -1;
	s->ehlo = xmalloc(sizeof(*s->ehlo));
	reply_init(s->ehlo);
	set_nonblocking(fd);
	rc = opening(s, p, r, e);
	free(r);
	if (rc < 0) {
		session_free(s, false);
		return -1;
	}
	return 0;
}

void
session_quit(struct session *s, const struct session_params *p)
{
	struct reply *r = xmalloc(sizeof(*r));
	struct err e;

	if (send_line(s, p, "QUIT", NULL, &e) == 0)
		(void)read_reply(s, p, r, "the reply to QUIT", &e);
	free(r);
	if (s->ssl != NULL)
		SSL_shutdown(s->ssl);
}

char *
session_ehlo_for_client(const struct session *s)
{
	struct reply *r = xmalloc(sizeof(*r));
	char *out;

	memcpy(r, s->ehlo, sizeof(*r));
	reply_shape_ehlo(r);
	out = xmalloc(r->len + 1);
	memcpy(out, r->buf, r->len);
	out[r->len] = '\0';
	free(r);
	return out;
}

void
session_free(struct session *s, bool close_conn)
{
	if (s->ssl != NULL)
		SSL_free(s->ssl);
	if (close_conn && s->fd >= 0)
		close(s->fd);
	free(s->ehlo);
	s->ssl = NULL;
	s->ehlo = NULL;
	s->fd = -1;
}
