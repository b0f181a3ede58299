/* reply.c - SMTP replies from a server, parsed with bounds. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "reply.h"

void
reply_init(struct reply *r)
{
	r->len = r->line = 0;
	r->lines = 0;
	r->code = 0;
	r->done = false;
	r->error[0] = '\0';
}

static ssize_t
refuse(struct reply *r, const char *why)
{
	snprintf(r->error, sizeof(r->error), "%s", why);
	return -1;
}

/* The line buf[r->line..r->len) is whole (its LF seen, not stored). */
static int
end_line(struct reply *r)
{
	char *s = r->buf + r->line;
	size_t n = r->len - r->line;
	int code;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n > REPLY_LINE_MAX)
		return (int)refuse(r, "sent a reply line over 2048 bytes");
	if (n < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '9' ||
	    s[2] < '0' || s[2] > '9' || (n > 3 && s[3] != ' ' && s[3] != '-'))
		return (int)refuse(r, "sent a malformed reply line");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			s[i] = '?';
	code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (r->lines == 0)
		r->code = code;
	else if (code != r->code)	/* RFC 5321 4.2.1: one code a reply */
		return (int)refuse(r, "sent a reply whose lines have different "
		    "codes");
	if (++r->lines > REPLY_LINES_MAX)
		return (int)refuse(r, "sent a reply over 100 lines");
	if (r->line + n + 2 > REPLY_BYTES_MAX)
		return (int)refuse(r, "sent a reply over 65536 bytes");
	s[n] = '\r';
	s[n + 1] = '\n';
	r->len = r->line + n + 2;
	r->done = n == 3 || s[3] == ' ';
	r->line = r->len;
	return 0;
}

ssize_t
reply_feed(struct reply *r, const char *p, size_t n)
{
	size_t i = 0;

	if (r->done)
		return 0;
	while (i < n && !r->done) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t take = (nl ? (size_t)(nl - (p + i)) : n - i);

		/* a line is its bytes plus perhaps a CR before the LF */
		if (r->len - r->line + take > REPLY_LINE_MAX + 1)
			return refuse(r, "sent a reply line over 2048 bytes");
		memcpy(r->buf + r->len, p + i, take);
		r->len += take;
		i += take;
		if (nl == NULL)
			break;
		i++;	/* the LF */
		if (end_line(r) < 0)
			return -1;
	}
	return (ssize_t)i;
}

/* Is the EHLO line s (without its "250-") keyword kw? */
static bool
is_keyword(const char *s, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n >= k && strncasecmp(s, kw, k) == 0 &&
	    (n == k || s[k] == ' ' || s[k] == '\r');
}

static bool
dropped(const char *s, size_t n)
{
	return is_keyword(s, n, "CHUNKING") || is_keyword(s, n, "STARTTLS") ||
	    is_keyword(s, n, "XUSR") || is_keyword(s, n, "AUTH") ||
	    (n > 5 && strncasecmp(s, "AUTH=", 5) == 0);
}

void
reply_shape_ehlo(struct reply *r)
{
	size_t in = 0, out = 0, last = 0;
	int lines = 0;

	if (!r->done || r->code != 250)
		return;
	while (in < r->len) {
		const char *nl = memchr(r->buf + in, '\n', r->len - in);
		size_t n = (size_t)(nl - (r->buf + in)) + 1;

		/* the first line names the server: never a keyword */
		if (lines == 0 || n < 6 ||
		    !dropped(r->buf + in + 4, n - 4)) {
			memmove(r->buf + out, r->buf + in, n);
			if (n > 5)
				r->buf[out + 3] = '-';
			last = out;
			out += n;
			lines++;
		}
		in += n;
	}
	if (r->buf[last + 3] == '-')
		r->buf[last + 3] = ' ';
	r->len = r->line = out;
	r->lines = lines;
}

bool
reply_has_keyword(const struct reply *r, const char *kw)
{
	size_t in = 0;

	while (in < r->len) {
		const char *nl = memchr(r->buf + in, '\n', r->len - in);
		size_t n = (size_t)(nl - (r->buf + in)) + 1;

		if (in > 0 && n > 6 && is_keyword(r->buf + in + 4, n - 4, kw))
			return true;
		in += n;
	}
	return false;
}

void
reply_text(const struct reply *r, char *out, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	for (size_t i = 0; i < r->len && o + 1 < len; i++) {
		char c = r->buf[i];

		if (c == '\r')
			continue;
		if (c == '\n') {
			if (i + 1 == r->len)
				break;
			if (o + 3 >= len)
				break;
			memcpy(out + o, " / ", 3);
			o += 3;
			continue;
		}
		out[o++] = c;
	}
	out[o] = '\0';
}

void
reply_status(const struct reply *r, char *out, size_t len)
{
	size_t o = 0;
	bool first = true;

	if (len == 0)
		return;
	for (size_t i = 0; i < r->len; ) {
		const char *nl = memchr(r->buf + i, '\n', r->len - i);
		size_t end = nl ? (size_t)(nl - r->buf) : r->len;
		size_t tlen = end > i && r->buf[end - 1] == '\r' ? end - 1 - i :
		    end - i;
		const char *t = r->buf + i;
		size_t k;

		if (first) {
			/* "DDD text" from "DDD-text" or "DDD text" */
			k = tlen < len - 1 - o ? tlen : len - 1 - o;
			memcpy(out + o, t, k);
			if (k > 3)
				out[o + 3] = ' ';
			o += k;
			first = false;
		} else if (tlen > 4) {
			/* later lines: "??" and the text, as libESMTP joins
			 * them (CRLF, then made printable) */
			for (size_t j = 0; j < 2 && o + 1 < len; j++)
				out[o++] = '?';
			k = tlen - 4 < len - 1 - o ? tlen - 4 : len - 1 - o;
			memcpy(out + o, t + 4, k);
			o += k;
		}
		i = end + 1;
	}
	out[o] = '\0';
}

size_t
reply_for_rcpt(const struct reply *mail, char *out, size_t cap)
{
	static const char note[] = "(reply to MAIL FROM)";
	const char *b = mail->buf;
	size_t at, o;

	if (!mail->done || mail->len < 5 || cap < mail->len + sizeof(note) + 1)
		return 0;
	/* the text starts after "DDD " or "DDD-" ("DDD\r\n" has none) */
	at = b[3] == '\r' ? 3 : 4;
	/* and after an enhanced status code (RFC 3463: c.sss.ddd) */
	if (at == 4 && b[at] >= '2' && b[at] <= '5' && b[at + 1] == '.') {
		size_t k = at + 2, dots = 0;

		while (b[k] == '.' || (b[k] >= '0' && b[k] <= '9'))
			dots += b[k++] == '.';
		if (dots == 1 && b[k] == ' ')
			at = k + 1;
		else if (dots == 1 && b[k] == '\r')
			at = k;
	}
	memcpy(out, b, at);
	o = at;
	if (b[at - 1] != ' ' && b[at - 1] != '-')
		out[o++] = ' ';	/* "451\r\n", "451 4.3.0\r\n" */
	memcpy(out + o, note, sizeof(note) - 1);
	o += sizeof(note) - 1;
	if (b[at] != '\r')
		out[o++] = ' ';
	memcpy(out + o, b + at, mail->len - at);
	return o + mail->len - at;
}
