/* bounce.c - RFC 3464 failure notices and delay warnings. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "bounce.h"
#include "message.h"

#define ORIG_HEADER_MAX (64 * 1024)

/* The enhanced code of "550 5.1.1 text": 1 and buf, or 0. */
static int
enhanced_code(const char *reply, char *buf, size_t len)
{
	int a, b, c;

	if (reply != NULL && strlen(reply) > 4 && reply[3] == ' ' &&
	    sscanf(reply + 4, "%1d.%3d.%3d", &a, &b, &c) == 3 &&
	    (a == 4 || a == 5) && b >= 0 && c >= 0) {
		snprintf(buf, len, "%d.%d.%d", a, b, c);
		return 1;
	}
	return 0;
}

/*
 * The Status: of a failed recipient: the server's enhanced code; for a
 * lifetime expiry that of the last reply, else 4.4.7 (RFC 3463: delivery
 * time expired); else 5.0.0.
 */
static void
status_of(const char *reply, char *buf, size_t len)
{
	static const char expired[] = "not delivered in ";
	static const char last[] = "last reply: ";
	const char *p;

	if (enhanced_code(reply, buf, len))
		return;
	if (reply != NULL && strncmp(reply, expired, sizeof(expired) - 1) ==
	    0) {
		p = strstr(reply, last);
		if (p == NULL || !enhanced_code(p + sizeof(last) - 1, buf, len))
			snprintf(buf, len, "4.4.7");
		return;
	}
	snprintf(buf, len, "5.0.0");
}

static bool
memchr_high(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

static int
isdigit_reply(const char *r)
{
	return r[0] >= '2' && r[0] <= '5' && r[1] >= '0' && r[1] <= '9' &&
	    r[2] >= '0' && r[2] <= '9';
}

/* The original header section (LF line ends), at most 64 KiB. */
static void
original_headers(int fd, const struct envelope *env, struct strbuf *out)
{
	char *buf = xmalloc(ORIG_HEADER_MAX + 1);
	ssize_t n = pread(fd, buf, ORIG_HEADER_MAX, (off_t)env->offset);
	size_t i, len;

	if (n < 0)
		n = 0;
	buf[n] = '\0';
	len = (size_t)n;
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n' && (i + 1 == len || buf[i + 1] == '\n' ||
		    (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
			len = i + 1;
			break;
		}
	}
	for (i = 0; i < len; i++)
		if (buf[i] != '\r')
			sb_addc(out, buf[i]);
	if (out->len > 0 && out->s[out->len - 1] != '\n')
		sb_addc(out, '\n');
	free(buf);
}

/*
 * RET=FULL: the whole original message (LF line ends) as message/rfc822,
 * when it could be read whole; false (and out unchanged) otherwise.
 */
static bool
original_message(int fd, const struct envelope *env, struct strbuf *out,
    const char *boundary)
{
	size_t start = out->len;
	char *buf = xmalloc(env->size + 1);
	ssize_t n = pread(fd, buf, env->size, (off_t)env->offset);

	if (n < 0 || (size_t)n != env->size) {
		free(buf);
		return false;
	}
	sb_addf(out, "--%s\nContent-Type: message/rfc822\n%s\n", boundary,
	    memchr_high(buf, (size_t)n) ? "Content-Transfer-Encoding: 8bit\n" :
	    "");
	for (size_t i = 0; i < (size_t)n; i++)
		if (buf[i] != '\r')
			sb_addc(out, buf[i]);
	if (out->len > start && out->s[out->len - 1] != '\n')
		sb_addc(out, '\n');
	free(buf);
	return true;
}

/* What a notice is about: the failed recipients, or the late ones. */
struct notice {
	bool		 delayed;
	time_t		 next_try;	/* delayed: the next attempt */
	time_t		 until;		/* delayed: when it gives up */
	const char	*unreached;	/* delayed: why the server was not
					 * reached, or NULL */
	const char	*host;		/* names the mail system */
};

static bool
listed(const struct notice *n, const struct msgstate *st, size_t i)
{
	if (n->delayed)
		return st->r[i].state == RCPT_WAITING ||
		    st->r[i].state == RCPT_DEFERRED;
	return st->r[i].state == RCPT_FAILED;
}

static void
notice_text(const struct notice *n, const char *id, const struct envelope *env,
    const struct msgstate *st, const char *host, struct strbuf *out)
{
	char when[64];

	if (!n->delayed) {
		sb_addf(out, "postie on %s could not deliver your message (queue "
		    "id %s)\nto the recipients below. The reason is given for "
		    "each, with the mail\nserver's reply where there was "
		    "one.\n\n", host, id);
	} else {
		msg_format_date(env->queued, when, sizeof(when));
		sb_addf(out, "postie on %s has not yet delivered your message "
		    "(queue id %s),\nqueued %s, to the recipients below. "
		    "This is a warning only:\nyou do not need to send it "
		    "again. The last reply is given for each.\n\n", host,
		    id, when);
	}
	for (size_t i = 0; i < st->n; i++) {
		if (!listed(n, st, i))
			continue;
		if (st->r[i].reply && *st->r[i].reply)
			sb_addf(out, "<%s>: %s\n", env->rcpts.v[i],
			    st->r[i].reply);
		else if (n->delayed && n->unreached != NULL)
			sb_addf(out, "<%s>: no reply yet: the mail server was "
			    "not reached: %s\n", env->rcpts.v[i], n->unreached);
		else
			sb_addf(out, "<%s>: %s\n", env->rcpts.v[i],
			    n->delayed ? "no reply yet" : "failed");
	}
	if (n->delayed) {
		msg_format_date(n->next_try, when, sizeof(when));
		sb_addf(out, "\nNext try: %s\n", when);
		msg_format_date(n->until, when, sizeof(when));
		sb_addf(out, "It gives up, and sends a failure notice, at: "
		    "%s\n", when);
	}
	sb_adds(out, "\n");
}

static void
notice_status(const struct notice *n, const struct envelope *env,
    const struct msgstate *st, struct strbuf *out)
{
	char until[64];

	if (n->delayed)
		msg_format_date(n->until, until, sizeof(until));
	for (size_t i = 0; i < st->n; i++) {
		char status[40];
		const char *reply = st->r[i].reply;

		if (!listed(n, st, i))
			continue;
		if (n->delayed) {
			if (!enhanced_code(reply, status, sizeof(status)) ||
			    status[0] != '4')
				snprintf(status, sizeof(status), "4.0.0");
		} else
			status_of(reply, status, sizeof(status));
		sb_addf(out, "\nFinal-Recipient: rfc822; %s\n",
		    env->rcpts.v[i]);
		sb_addf(out, "Action: %s\n", n->delayed ? "delayed" : "failed");
		sb_addf(out, "Status: %s\n", status);
		if (reply != NULL && *reply != '\0' && isdigit_reply(reply))
			sb_addf(out, "Diagnostic-Code: smtp; %s\n", reply);
		else if (reply != NULL && *reply != '\0')
			sb_addf(out, "Diagnostic-Code: X-postie; %s\n", reply);
		if (n->delayed)
			sb_addf(out, "Will-Retry-Until: %s\n", until);
	}
}

static void
notice_build(const struct notice *n, const char *id,
    const struct envelope *env, const struct msgstate *st, int fd,
    time_t now, struct strbuf *out)
{
	const char *host = n->host;
	unsigned int rnd = 0;
	char date[64], boundary[64];

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)now;
	snprintf(boundary, sizeof(boundary), "%lld.%08x/%s", (long long)now,
	    rnd, host);
	msg_format_date(now, date, sizeof(date));
	sb_addf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", host);
	sb_addf(out, "To: <%s>\n", env->sender);
	sb_addf(out, "Subject: %s\n", n->delayed ?
	    "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender");
	sb_addf(out, "Date: %s\n", date);
	sb_addf(out, "Message-ID: <%lld.%08x.%s@%s>\n", (long long)now,
	    rnd, n->delayed ? "delay" : "bounce", host);
	sb_adds(out, "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
	sb_addf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s\"\n\n", boundary);
	sb_adds(out, "This is a MIME-encapsulated message.\n\n");

	sb_addf(out, "--%s\nContent-Type: text/plain; charset=us-ascii\n\n",
	    boundary);
	notice_text(n, id, env, st, host, out);

	sb_addf(out, "--%s\nContent-Type: message/delivery-status\n\n",
	    boundary);
	sb_addf(out, "Reporting-MTA: dns; %s\n", host);
	sb_addf(out, "X-Postie-Queue-ID: %s\n", id);
	if (env->envid != NULL)
		sb_addf(out, "Original-Envelope-Id: %s\n", env->envid);
	msg_format_date(env->queued, date, sizeof(date));
	sb_addf(out, "Arrival-Date: %s\n", date);
	notice_status(n, env, st, out);
	sb_adds(out, "\n");

	/* a warning carries the headers only: the message is still queued */
	if (!n->delayed && env->ret != NULL &&
	    strcasecmp(env->ret, "full") == 0 && env->size <= BOUNCE_FULL_MAX &&
	    original_message(fd, env, out, boundary)) {
		sb_addf(out, "\n--%s--\n", boundary);
		return;
	}
	sb_addf(out, "--%s\nContent-Type: text/rfc822-headers\n\n", boundary);
	original_headers(fd, env, out);
	sb_addf(out, "\n--%s--\n", boundary);
}

void
bounce_build(const char *id, const struct envelope *env,
    const struct msgstate *st, int fd, time_t now, const char *host,
    struct strbuf *out)
{
	struct notice n = { .delayed = false, .host = host };

	notice_build(&n, id, env, st, fd, now, out);
}

void
bounce_build_delay(const char *id, const struct envelope *env,
    const struct msgstate *st, int fd, time_t now, const char *host,
    time_t next_try, time_t until, const char *unreached,
    struct strbuf *out)
{
	struct notice n = { .delayed = true, .next_try = next_try,
	    .until = until, .unreached = unreached, .host = host };

	notice_build(&n, id, env, st, fd, now, out);
}
