/*
 * smtp.c - one libESMTP session per identity per run: the transaction
 * driver.
 *
 * postie opens the session itself (dial.c or tunnel.c, then session.c:
 * TLS, EHLO, AUTH); libESMTP gets the opened connection through the pump
 * (pump.c), which greets it and answers its EHLO, and runs the mail
 * transactions only. It has no SASL context and no TLS of its own.
 * libESMTP's sharp edges (see the README): it needs CRLF lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <libesmtp.h>

#include "dial.h"
#include "pump.h"
#include "session.h"
#include "tunnel.h"
#include "smtp.h"
#include "stopsig.h"
#include "tls.h"
#include "trust.h"

#define CHUNK 32768
#define PASSWORD_TIMEOUT 60	/* seconds for password-command */
#define PASSWORD_MAX	(64 * 1024)	/* bytes of its output: an OAuth2
					 * access token can be several KiB */

struct session_ctx {
	struct smtp_run		*run;
	struct tls_policy	*tls;
	struct pump		*pump;
	char			 last_reply[512];
	struct strbuf		 part[2];	/* a line not yet complete, by
						 * direction (0 read, 1 write) */
	size_t			 ends_seen;	/* pump_ends() at the last
						 * message libESMTP finished */
	smtp_message_t		*waiting;	/* finished by libESMTP, not yet
						 * reported, oldest first */
	size_t			 whead, wlen, wcap;
	size_t			*mail_msg;	/* [nth MAIL]: its index in
						 * run->msgs */
	size_t			 nmail;
};

void
smtp_msg_init(struct smtp_msg *m, const char *id, const struct envelope *env,
    int fd)
{
	memset(m, 0, sizeof(*m));
	m->id = id;
	m->env = env;
	m->fd = fd;
	m->rcpt = xcalloc(env->rcpts.n, sizeof(*m->rcpt));
	m->code = xcalloc(env->rcpts.n, sizeof(*m->code));
	m->reply = xcalloc(env->rcpts.n, sizeof(*m->reply));
	m->complete = xcalloc(env->rcpts.n, sizeof(*m->complete));
	m->end_nth = -1;
}

void
smtp_msg_free(struct smtp_msg *m)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		free(m->reply[i]);
	free(m->rcpt);
	free(m->code);
	free(m->reply);
	free(m->complete);
	free(m->msg_reply);
	free(m->mail_reply);
	memset(m, 0, sizeof(*m));
}

size_t
smtp_crlf(const char *in, size_t n, char *out, bool *last_cr)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' && !*last_cr)
			out[o++] = '\r';
		out[o++] = in[i];
		*last_cr = in[i] == '\r';
	}
	return o;
}

int
smtp_wire_size(int fd, uint64_t offset, uint64_t size, uint64_t *out)
{
	char buf[65536];
	uint64_t done = 0, bare = 0;
	char last = '\0';

	while (done < size) {
		size_t want = size - done < sizeof(buf) ? (size_t)(size - done) :
		    sizeof(buf);
		ssize_t r = pread(fd, buf, want, (off_t)(offset + done));
		const char *p = buf, *end, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;	/* shorter than its envelope */
			return -1;
		}
		end = buf + r;
		while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			if ((nl > buf ? nl[-1] : last) != '\r')
				bare++;
			p = nl + 1;
		}
		last = end[-1];
		done += (uint64_t)r;
	}
	*out = size + bare + (size > 0 && last != '\n' ? 2 : 0);
	return 0;
}

/* libESMTP asks for the message: CRLF-normalized chunks from the file. */
static const char *
message_cb(void **ctx, int *len, void *arg)
{
	struct smtp_msg *m = arg;
	struct { char in[CHUNK]; char out[2 * CHUNK]; } *buf = *ctx;
	ssize_t r;
	off_t left;

	if (buf == NULL)
		*ctx = buf = xmalloc(sizeof(*buf));	/* libESMTP frees it */
	if (len != NULL && m->pos == (off_t)m->env->offset && m->sess != NULL &&
	    (((struct session_ctx *)m->sess)->run->stop || stopsig_caught())) {
		/* an earlier outcome could not be recorded, or the run was
		 * told to stop (the messages before are recorded by now): not
		 * a byte of this message goes, nor of any after it (the
		 * connection ends before its dot), and they stay as they were */
		struct smtp_run *run = ((struct session_ctx *)m->sess)->run;

		for (struct smtp_msg *rest = m; rest < run->msgs + run->nmsgs;
		    rest++)
			rest->stopped = true;
		pump_cut(((struct session_ctx *)m->sess)->pump);
		*len = 0;
		return NULL;
	}
	if (len == NULL) {
		m->pos = (off_t)m->env->offset;
		m->last_cr = false;
		m->last_nl = false;
		m->ended = false;
		return NULL;
	}
	/* up to the size the file had when loaded (a queue file never
	 * grows): its end needs no read of its own */
	left = (off_t)(m->env->offset + m->env->size) - m->pos;
	r = 0;
	if (left > 0)
		do
			r = pread(m->fd, buf->in, left < CHUNK ? (size_t)left :
			    CHUNK, m->pos);
		while (r < 0 && errno == EINTR);
	if (r < 0) {
		/* a short message must never go out as if whole: drop the
		 * connection before the final dot */
		m->read_error = true;
		if (m->sess != NULL)
			pump_cut(((struct session_ctx *)m->sess)->pump);
		*len = 0;
		return NULL;
	}
	if (r == 0) {
		/* end the last line: BDAT adds nothing of its own */
		if (r == 0 && m->pos > (off_t)m->env->offset && !m->ended) {
			m->ended = true;
			if (!m->last_nl) {
				memcpy(buf->out, "\r\n", 2);
				*len = 2;
				return buf->out;
			}
		}
		*len = 0;
		return NULL;
	}
	m->pos += r;
	m->last_nl = buf->in[r - 1] == '\n';
	*len = (int)smtp_crlf(buf->in, (size_t)r, buf->out, &m->last_cr);
	return buf->out;
}

static void
copy_reply(char *dst, size_t len, const char *buf, int n)
{
	if (n < 0)
		n = 0;
	if ((size_t)n >= len)
		n = (int)len - 1;
	memcpy(dst, buf, (size_t)n);
	dst[n] = '\0';
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '\r'))
		dst[--n] = '\0';
	util_sanitize_ascii(dst);	/* a server's bytes: printable ASCII */
}

static void
trace(struct session_ctx *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
trace(struct session_ctx *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->run->verbose)
		return;
	va_start(ap, fmt);
	fputs("deliver: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A line of libESMTP's dialogue: shown with -v, the last reply kept. */
static void
monitor_line(struct session_ctx *s, const char *line, int writing)
{
	if (writing) {
		trace(s, "> %s", line);
		return;
	}
	trace(s, "< %s", line);
	/* "000": the pump's stand-in for a reply that never came (pump.c),
	 * no server's word */
	if (strncmp(line, "000 ", 4) != 0)
		snprintf(s->last_reply, sizeof(s->last_reply), "%s", line);
}

/*
 * Watch libESMTP's dialogue (the transactions: postie's own opening is
 * shown by session.c). A buffer may hold several lines.
 */
static void
monitor_cb(const char *buf, int n, int writing, void *arg)
{
	struct session_ctx *s = arg;
	struct strbuf *part;
	const char *p, *nl;

	if (writing == SMTP_CB_HEADERS || n <= 0)
		return;
	/*
	 * libESMTP hands over what each read or write moved, which may end
	 * in the middle of a line: judge whole lines only.
	 */
	part = &s->part[writing ? 1 : 0];
	sb_add(part, buf, (size_t)n);
	p = part->s;
	while ((nl = memchr(p, '\n', part->len - (size_t)(p - part->s))) !=
	    NULL) {
		char line[512];

		copy_reply(line, sizeof(line), p, (int)(nl - p + 1));
		monitor_line(s, line, writing);
		p = nl + 1;
	}
	if (p != part->s) {
		size_t rest = part->len - (size_t)(p - part->s);

		memmove(part->s, p, rest);
		part->len = rest;
		part->s[rest] = '\0';
	}
}

static void collect_msg(smtp_message_t msg, void *arg);

/*
 * The pump's hook (pump_on_accept), on the pump's thread: the server
 * accepted the message of the session's nth MAIL whole. The caller may
 * record it now, by its removal, while libESMTP already sends the next
 * one's data into the pump (which sends it on only after this returns).
 * libESMTP's thread reads m->removed only after pump_end_reply saw the
 * reply, which the pump makes visible after this hook.
 */
static void
accepted(void *arg, size_t mail)
{
	struct session_ctx *s = arg;
	struct smtp_msg *m;

	if (mail >= s->nmail || s->run->accepted == NULL)
		return;
	m = &s->run->msgs[s->mail_msg[mail]];
	if (m->removable && s->run->accepted(m, s->run->done_arg))
		__atomic_store_n(&m->removed, true, __ATOMIC_RELEASE);
}

/* Does accepted act on the nth MAIL's message (pump_on_accept)? Else its
 * end's reply shows at once and settle records it, before the next data. */
static bool
wants(void *arg, size_t mail)
{
	struct session_ctx *s = arg;

	return mail < s->nmail && s->run->accepted != NULL &&
	    s->run->msgs[s->mail_msg[mail]].removable;
}

/* Has the server answered the message's data (the pump answered the end
 * itself and takes the real reply, pump.h)? */
static bool
answered(const struct session_ctx *s, const struct smtp_msg *m)
{
	if (m->end_nth < 0)
		return true;	/* libESMTP had the server's own reply */
	return pump_end_got(s->pump, (size_t)m->end_nth);
}

/*
 * Report the messages libESMTP has finished whose data the server has
 * answered, in order. Called at every libESMTP event: the real reply to
 * an end of data comes before the replies to the next message's RCPT
 * lines, so a message is recorded before the next one's data goes out.
 */
static void
settle(struct session_ctx *s)
{
	while (s->whead < s->wlen) {
		smtp_message_t msg = s->waiting[s->whead];
		struct smtp_msg *m = smtp_message_get_application_data(msg);

		if (!answered(s, m))
			return;
		s->whead++;
		collect_msg(msg, s);
		m->reported = true;
		if (s->run->done != NULL)
			s->run->done(m, s->run->done_arg);
	}
}

static void
event_cb(smtp_session_t session, int event, void *arg, ...)
{
	struct session_ctx *s = arg;
	va_list ap;

	(void)session;
	va_start(ap, arg);
	settle(s);
	switch (event) {
	case SMTP_EV_MESSAGESENT: {
		smtp_message_t msg = va_arg(ap, smtp_message_t);
		struct smtp_msg *m = smtp_message_get_application_data(msg);
		size_t ends = pump_ends(s->pump);

		/* libESMTP got the pump's reply to this message's end */
		if (ends > s->ends_seen) {
			m->end_nth = (long)ends - 1;
			s->ends_seen = ends;
		}
		if (s->wlen == s->wcap) {
			s->wcap = s->wcap ? 2 * s->wcap : 16;
			s->waiting = xrealloc(s->waiting, s->wcap *
			    sizeof(*s->waiting));
		}
		s->waiting[s->wlen++] = msg;
		settle(s);
		break;
	}
	case SMTP_EV_EXTNA_8BITMIME:
		/* not reached: an 8-bit message goes only to a server that
		 * offers 8BITMIME (hold_8bit) */
		snprintf(s->run->reason, sizeof(s->run->reason), "%s does not "
		    "offer 8BITMIME for an 8-bit message",
		    s->run->id->host);
		break;
	default:
		break;
	}
	va_end(ap);
}

static enum notify_flags
notify_flags(const char *v)
{
	int f = 0;

	if (v == NULL)
		return Notify_NOTSET;
	if (strcasecmp(v, "never") == 0)
		return Notify_NEVER;
	if (strcasestr(v, "success"))
		f |= Notify_SUCCESS;
	if (strcasestr(v, "failure"))
		f |= Notify_FAILURE;
	if (strcasestr(v, "delay"))
		f |= Notify_DELAY;
	return (enum notify_flags)f;
}

static void
add_message(smtp_session_t session, struct smtp_msg *m, void *sess)
{
	smtp_message_t msg = smtp_add_message(session);
	const struct envelope *env = m->env;
	uint64_t wire;

	smtp_set_reverse_path(msg, env->sender);
	smtp_set_messagecb(msg, message_cb, m);
	m->sess = sess;
	smtp_message_set_application_data_release(msg, m, NULL);
	/* the exact size (a server near its limit refuses a guess over it);
	 * a file that cannot be read fails in message_cb, before the dot */
	if (smtp_wire_size(m->fd, env->offset, env->size, &wire) < 0)
		wire = env->size + env->size / 40;
	smtp_size_set_estimate(msg, wire > ULONG_MAX ? ULONG_MAX :
	    (unsigned long)wire);
	/* BODY=8BITMIME only for real 8-bit content: libESMTP then needs the
	 * extension (and quits without it), 7-bit mail never does */
	if (env->body != NULL && strcmp(env->body, "8bitmime") == 0)
		smtp_8bitmime_set_body(msg, E8bitmime_8BITMIME);
	if (env->ret != NULL)
		smtp_dsn_set_ret(msg, strcmp(env->ret, "full") == 0 ?
		    Ret_FULL : Ret_HDRS);
	if (env->envid != NULL)
		smtp_dsn_set_envid(msg, env->envid);
	for (size_t i = 0; i < m->nrcpt; i++) {
		smtp_recipient_t r = smtp_add_recipient(msg,
		    env->rcpts.v[m->rcpt[i]]);

		smtp_recipient_set_application_data_release(r,
		    (void *)(uintptr_t)i, NULL);
		if (env->notify != NULL)
			smtp_dsn_set_notify(r, notify_flags(env->notify));
	}
}

/*
 * The reply as the server sent it ("450 4.7.1 text"), sanitized; NULL if
 * there is none. libESMTP keeps the enhanced status code (RFC 2034) apart
 * from the text: put it back, so the journal, mailq, the log and the
 * notice's Status: field carry the server's own code.
 */
static char *
status_text(const smtp_status_t *st)
{
	char buf[512];

	if (st == NULL || st->code == 0 || st->text == NULL)
		return NULL;
	copy_reply(buf, sizeof(buf), st->text, (int)strlen(st->text));
	if (st->enh_class >= 2 && st->enh_class <= 5 &&
	    st->enh_subject >= 0 && st->enh_subject <= 999 &&
	    st->enh_detail >= 0 && st->enh_detail <= 999)
		return xasprintf("%d %d.%d.%d %s", st->code, st->enh_class,
		    st->enh_subject, st->enh_detail, buf);
	return xasprintf("%d %s", st->code, buf);
}

static void
collect_rcpt(smtp_recipient_t r, const char *mailbox, void *arg)
{
	struct smtp_msg *m = arg;
	size_t i = (size_t)(uintptr_t)smtp_recipient_get_application_data(r);
	const smtp_status_t *st = smtp_recipient_status(r);

	(void)mailbox;
	if (i >= m->nrcpt)
		return;
	m->complete[i] = smtp_recipient_check_complete(r) != 0;
	m->code[i] = st ? st->code : 0;
	free(m->reply[i]);
	m->reply[i] = status_text(st);
}

/*
 * A MAIL the pump answered itself and the server refused (pump.h):
 * libESMTP holds the refusal, prefixed, as each recipient's status and
 * DATA's reply as the message's. Put it back where libESMTP leaves a
 * refused MAIL: the sender's status, the recipients and the message not
 * attempted, so the journal, mailq and notices say what they always did.
 */
static void
mail_refused(struct smtp_msg *m)
{
	static const char note[] = "(reply to MAIL FROM)";
	char *r = m->nrcpt > 0 ? m->reply[0] : NULL;
	char *at;

	if (r == NULL || m->code[0] < 400 || (at = strstr(r, note)) == NULL)
		return;	/* libESMTP never had the refusal */
	memmove(at, at + sizeof(note) - 1, strlen(at + sizeof(note) - 1) + 1);
	if (at[0] == ' ' && at > r && at[-1] == ' ')
		memmove(at, at + 1, strlen(at + 1) + 1);
	else if (at[0] == '\0' && at > r && at[-1] == ' ')
		at[-1] = '\0';
	m->mail_code = m->code[0];
	free(m->mail_reply);
	m->mail_reply = r;
	m->reply[0] = NULL;
	for (size_t j = 0; j < m->nrcpt; j++) {
		m->complete[j] = false;
		m->code[j] = 0;
		free(m->reply[j]);
		m->reply[j] = NULL;
	}
	m->msg_code = 0;
	free(m->msg_reply);
	m->msg_reply = NULL;
}

static void
collect_msg(smtp_message_t msg, void *arg)
{
	struct smtp_msg *m = smtp_message_get_application_data(msg);
	const smtp_status_t *st = smtp_message_transfer_status(msg);
	struct session_ctx *s = arg;
	size_t nth = 0;

	st = smtp_reverse_path_status(msg);
	m->mail_code = st ? st->code : 0;
	free(m->mail_reply);
	m->mail_reply = status_text(st);
	st = smtp_message_transfer_status(msg);
	m->msg_code = st ? st->code : 0;
	free(m->msg_reply);
	m->msg_reply = status_text(st);
	smtp_enumerate_recipients(msg, collect_rcpt, m);
	if (m->end_nth >= 0) {
		/* libESMTP has the pump's reply to the end of the data: the
		 * server's own is the message's, and none means the session
		 * ended before it came (the recipients are not done) */
		int code;
		char *text;

		free(m->msg_reply);
		if (pump_end_reply(s->pump, (size_t)m->end_nth, &code,
		    &text)) {
			m->msg_code = code;
			m->msg_reply = text;
		} else {
			m->msg_code = 0;
			m->msg_reply = NULL;
			for (size_t j = 0; j < m->nrcpt; j++)
				m->complete[j] = false;
		}
	}
	/* libESMTP sends one MAIL for each message, in the order added */
	for (const struct smtp_msg *o = s->run->msgs; o < m; o++)
		nth += !o->skip;
	if (pump_mail_refused(s->pump, nth))
		mail_refused(m);
}

/* TCP to host:port, or a channel through the identity's SSH server. */
static int
dial(struct smtp_run *run, struct tunnel *tun, int *fd, struct err *e)
{
	const struct identity *id = run->id;
	struct ssh_params sp;
	bool unreachable;

	if (id->ssh.host == NULL) {
		if (dial_tcp(id->host, id->port, &id->route,
		    id->connect_timeout, fd, e) < 0) {
			run->unreachable = true;
			return -1;
		}
		return 0;
	}
	memset(&sp, 0, sizeof(sp));
	sp.target = &id->ssh;
	sp.key = id->ssh_key;
	sp.known_hosts = id->ssh_known_hosts;
	sp.fingerprint = id->ssh_fingerprint;
	sp.route = &id->route;
	sp.connect_timeout = id->connect_timeout;
	sp.timeout = id->timeout;
	sp.verbose = run->verbose;
	sp.prog = "deliver";
	if (tunnel_open(tun, &sp, id->host, id->port, fd, &unreachable,
	    e) < 0) {
		run->unreachable = unreachable;
		return -1;
	}
	return 0;
}

/* The bound on the whole session (pump.h), from what it is to send. */
static long
session_limit(const struct smtp_run *run)
{
	size_t msgs = 0, rcpts = 0;
	unsigned long long bytes = 0;

	for (size_t i = 0; i < run->nmsgs; i++) {
		if (run->msgs[i].skip)
			continue;
		msgs++;
		rcpts += run->msgs[i].nrcpt;
		bytes += (unsigned long long)run->msgs[i].env->size;
	}
	return pump_session_limit(run->id->timeout, msgs, rcpts, bytes);
}

/*
 * An 8-bit message goes only to a server that offers 8BITMIME: libESMTP
 * cannot downgrade and would end the whole session. Decided per message
 * from the EHLO reply postie read, before libESMTP starts.
 */
static size_t
hold_8bit(struct smtp_run *run, const struct reply *ehlo)
{
	bool has = reply_has_keyword(ehlo, "8BITMIME");
	size_t left = 0;

	for (size_t i = 0; i < run->nmsgs; i++) {
		struct smtp_msg *m = &run->msgs[i];

		if (!has && !m->skip && m->env->body != NULL &&
		    strcmp(m->env->body, "8bitmime") == 0) {
			m->skip = true;
			m->no_8bitmime = true;
		}
		left += !m->skip;
	}
	return left;	/* the messages libESMTP is to send */
}

/*
 * Open the upstream (TCP or SSH; then TLS, EHLO and AUTH, session.c) and
 * start the pump libESMTP talks through, whatever the upstream. 1: the
 * session is over already, with nothing this server can take.
 */
static int
open_upstream(struct smtp_run *run, struct tls_policy *tls, struct pump *p,
    struct tunnel *tun, struct err *e)
{
	const struct identity *id = run->id;
	struct session_params sp = {
		.tls = tls, .mode = id->tls, .host = id->host, .port = id->port,
		.helo = id->helo ? id->helo : util_hostname(),
		.user = run->password != NULL ? id->user : NULL,
		.secret = run->password, .mechs = id->auth_mechs,
		.nmechs = id->nauth_mechs, .timeout = id->timeout,
		.verbose = run->verbose,
	};
	struct session s;
	char *ehlo;
	int fd;

	if (dial(run, tun, &fd, e) < 0)
		return -1;
	if (tls->system) {
		/* the system's CAs were loaded meanwhile (tls.h) */
		tls_warm_finish(run->warm);
		tls_policy_system(tls, run->warm);
	}
	if (session_open(&s, fd, &sp, e) < 0) {
		run->auth_failed = s.auth_failed;
		close(fd);
		tunnel_close(tun);
		return -1;
	}
	if (hold_8bit(run, s.ehlo) == 0) {
		session_quit(&s, &sp);
		session_free(&s, true);
		tunnel_close(tun);
		return 1;
	}
	ehlo = session_ehlo_for_client(&s);
	if (pump_start(p, fd, s.ssl, id->host, "220 postie: the session is "
	    "open\r\n", ehlo, id->timeout, session_limit(run), run->verbose,
	    id->ssh.host != NULL || id->route.proxy_host != NULL, e) < 0) {
		free(ehlo);
		session_free(&s, true);
		tunnel_close(tun);
		return -1;
	}
	free(ehlo);
	s.ssl = NULL;	/* the pump's now */
	session_free(&s, false);
	return 0;
}

static void
describe_failure(struct smtp_run *run, struct session_ctx *s,
    struct pump *p, struct tunnel *tun)
{
	char buf[256];
	int err = smtp_errno();

	if (run->reason[0] != '\0')
		return;
	if (s->tls->reason[0] != '\0') {
		snprintf(run->reason, sizeof(run->reason), "TLS with %s: %s",
		    run->id->host, s->tls->reason);
		return;
	}
	if (p->error[0] != '\0' && !(p->dropped && (s->last_reply[0] == '4' ||
	    s->last_reply[0] == '5'))) {
		snprintf(run->reason, sizeof(run->reason), "%s", p->error);
		return;
	}
	if (tun->error[0] != '\0') {
		snprintf(run->reason, sizeof(run->reason), "%s (through %s): "
		    "%s", run->id->host, run->id->ssh.host, tun->error);
		return;
	}
	smtp_strerror(err, buf, sizeof(buf));
	if (s->last_reply[0] != '\0' && (s->last_reply[0] == '4' ||
	    s->last_reply[0] == '5'))
		snprintf(run->reason, sizeof(run->reason), "%s said: %.400s",
		    run->id->host, s->last_reply);
	else
		snprintf(run->reason, sizeof(run->reason), "%s: %s",
		    run->id->host, err == SMTP_ERR_DROPPED_CONNECTION ?
		    "the connection was dropped" : buf);
}

int
smtp_send(struct smtp_run *run, struct err *e)
{
	const struct identity *id = run->id;
	struct tls_policy tls;
	struct pump p;
	struct tunnel tun;
	struct session_ctx s;
	smtp_session_t session;
	static const enum rfc2822_timeouts clocks[] = { Timeout_GREETING,
	    Timeout_ENVELOPE, Timeout_DATA, Timeout_TRANSFER, Timeout_DATA2 };
	int started, rc = 0;
	size_t mails = 0;

	run->reason[0] = '\0';
	if (id->tls != TLS_NONE)
		tls_warm_ready(run->warm);
	if (tls_policy_init(&tls, id, e) < 0) {
		snprintf(run->reason, sizeof(run->reason), "%s", e->msg);
		run->session_failed = true;
		return -1;
	}
	tunnel_init(&tun);
	if ((rc = open_upstream(run, &tls, &p, &tun, e)) != 0) {
		tls_policy_free(&tls);
		if (rc > 0)
			return 0;	/* nothing it could take */
		snprintf(run->reason, sizeof(run->reason), "%s", e->msg);
		/* reached, but no session: TLS, the greeting, STARTTLS, AUTH */
		run->session_failed = !run->unreachable;
		return -1;
	}
	run->opened = true;
	memset(&s, 0, sizeof(s));
	s.run = run;
	s.tls = &tls;
	s.pump = &p;

	session = smtp_create_session();
	smtp_set_server(session, p.server);
	smtp_set_hostname(session, id->helo ? id->helo : util_hostname());
	smtp_set_eventcb(session, event_cb, &s);
	smtp_set_monitorcb(session, monitor_cb, &s, 0);
	/* the pump holds every wait to timeout and says which one passed;
	 * libESMTP's own clocks are only a backstop behind it */
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++)
		smtp_set_timeout(session, clocks[i] |
		    Timeout_OVERRIDE_RFC2822_MINIMUM,
		    (id->timeout * 2 + 5) * 1000);
	/* postie did TLS and AUTH itself (session.c): libESMTP speaks plain
	 * SMTP through the pump, its own STARTTLS off, no SASL context */
	if (tls.ctx != NULL)	/* NULL for tls none (tls.h) */
		smtp_starttls_set_ctx(session, tls.ctx);
	smtp_starttls_enable(session, Starttls_DISABLED);
	s.mail_msg = xcalloc(run->nmsgs + 1, sizeof(*s.mail_msg));
	for (size_t i = 0; i < run->nmsgs; i++)
		if (!run->msgs[i].skip) {
			add_message(session, &run->msgs[i], &s);
			mails += run->msgs[i].nrcpt > 0;
			/* libESMTP sends one MAIL for each with recipients,
			 * in this order */
			if (run->msgs[i].nrcpt > 0)
				s.mail_msg[s.nmail++] = i;
		}
	pump_expect_mails(&p, mails);
	pump_on_accept(&p, accepted, wants, &s);

	started = smtp_start_session(session);
	/* the last replies to ends of data the pump answered may still be
	 * on their way (bounded by timeout) */
	pump_drain(&p);
	pump_wait(&p);
	smtp_enumerate_messages(session, collect_msg, &s);
	settle(&s);	/* what is still waiting had no reply: not reported */
	free(s.waiting);
	free(s.mail_msg);
	s.waiting = NULL;
	s.whead = s.wlen = 0;	/* no event may settle after this */
	pump_finish(&p);
	tunnel_close(&tun);	/* after the pump closed its end */
	if (!started || run->auth_failed || tls.reason[0] != '\0' ||
	    run->reason[0] != '\0') {
		describe_failure(run, &s, &p, &tun);
		rc = -1;
	} else {
		/* the session ran; if it broke midway, say why */
		for (size_t i = 0; i < run->nmsgs && rc == 0; i++)
			for (size_t j = 0; j < run->msgs[i].nrcpt &&
			    !run->msgs[i].skip; j++)
				if (!run->msgs[i].complete[j]) {
					describe_failure(run, &s, &p, &tun);
					break;
				}
	}
	smtp_destroy_session(session);
	sb_free(&s.part[0]);
	sb_free(&s.part[1]);
	tls_policy_free(&tls);
	return rc;
}

char *
smtp_password(const struct identity *id, struct err *e)
{
	struct err te;
	char *prog;
	int p[2], status;
	pid_t pid, parent = getpid();
	char *buf;
	size_t n = 0;
	ssize_t r;
	bool toolong = false, cut = false, late = false;

	if (id->password != NULL)
		return xstrdup(id->password);
	if (id->password_command.n == 0)
		return NULL;
	/* what runs is what was checked: the real path trust_program gave */
	if ((prog = trust_program(id->password_command.v[0], &te)) == NULL) {
		err_set(e, te.code, "password-command %s", te.msg);
		return NULL;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(prog);
		err_set(e, ERR_OSERR, "pipe: %s", strerror(errno));
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		free(prog);
		err_set(e, ERR_OSERR, "fork: %s", strerror(errno));
		return NULL;
	}
	if (pid == 0) {
		/* a deliver killed takes its helper along (a token helper
		 * waiting on a browser was left running) */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 ||
		    getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		dup2(p[1], STDOUT_FILENO);
		execv(prog, id->password_command.v);
		_exit(127);
	}
	free(prog);
	close(p[1]);
	/* a password, or an OAuth2 access token of several KiB; one byte
	 * more than the bound tells a longer output from one that fits */
	buf = xmalloc(PASSWORD_MAX + 2);
	{
		time_t deadline = time(NULL) + PASSWORD_TIMEOUT;

		while (n < PASSWORD_MAX + 1) {
			struct pollfd pfd = { .fd = p[0], .events = POLLIN };
			long left = (long)(deadline - time(NULL));
			int ready = left > 0 ? poll(&pfd, 1, (int)left * 1000) :
			    0;

			if (ready < 0 && errno == EINTR && !stopsig_caught())
				continue;
			if (ready <= 0) {
				/* hung (a pinentry?), or the run told to stop */
				kill(pid, SIGKILL);
				late = true;
				break;
			}
			r = read(p[0], buf + n, PASSWORD_MAX + 1 - n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			n += (size_t)r;
		}
	}
	buf[n] = '\0';
	if (n > PASSWORD_MAX) {
		/* all that can be used is here: the rest is not waited for */
		cut = true;
		toolong = memchr(buf, '\n', PASSWORD_MAX) == NULL;
		kill(pid, SIGKILL);
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	buf[strcspn(buf, "\r\n")] = '\0';
	if (toolong || (!cut && (!WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)) || buf[0] == '\0') {
		char why[64];

		OPENSSL_cleanse(buf, PASSWORD_MAX + 2);
		free(buf);
		if (toolong)
			snprintf(why, sizeof(why), "its first line is over %d "
			    "KiB", PASSWORD_MAX / 1024);
		else if (late && stopsig_caught())
			snprintf(why, sizeof(why), "killed: the run was told "
			    "to stop");
		else if (late)
			snprintf(why, sizeof(why), "no line within %d s: "
			    "killed", PASSWORD_TIMEOUT);
		else if (!WIFEXITED(status))
			snprintf(why, sizeof(why), "killed by signal %d",
			    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		else if (WEXITSTATUS(status) == 127)
			snprintf(why, sizeof(why), "cannot run it");
		else if (WEXITSTATUS(status) != 0)
			snprintf(why, sizeof(why), "exit %d",
			    WEXITSTATUS(status));
		else
			snprintf(why, sizeof(why), n > 0 ? "an empty first "
			    "line" : "no output");
		err_set(e, ERR_TEMPFAIL, "password-command %s failed (%s)",
		    id->password_command.v[0], why);
		return NULL;
	}
	{
		char *pw = xstrdup(buf);

		OPENSSL_cleanse(buf, PASSWORD_MAX + 2);
		free(buf);
		return pw;
	}
}

enum smtp_outcome
smtp_classify(bool complete, int mail_code, int rcpt_code, int msg_code)
{
	if (mail_code >= 500 && mail_code < 600)
		return SMTP_FAIL;
	if (mail_code >= 400 && mail_code < 500)
		return SMTP_DEFER;
	if (rcpt_code >= 500 && rcpt_code < 600)
		return SMTP_FAIL;
	if (rcpt_code < 200 || rcpt_code >= 300)
		return SMTP_DEFER;
	if (msg_code >= 500 && msg_code < 600)
		return SMTP_FAIL;
	if (!complete)
		return SMTP_DEFER;
	if (msg_code >= 200 && msg_code < 300)
		return SMTP_OK;
	if (msg_code >= 500 && msg_code < 600)
		return SMTP_FAIL;
	return SMTP_DEFER;
}
