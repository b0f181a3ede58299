/*
 * spool.c - one message in: headers parsed in memory (bounded), the body
 * streamed straight into the queue file, then the one commit step.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "alias.h"
#include "message.h"
#include "spool.h"

void
spool_opts_init(struct spool_opts *o)
{
	memset(o, 0, sizeof(*o));
	sv_init(&o->rcpts);
}

void
spool_opts_free(struct spool_opts *o)
{
	sv_free(&o->rcpts);
}

void
spool_result_free(struct spool_result *r)
{
	free(r->id);
	free(r->sender);
	memset(r, 0, sizeof(*r));
}

char *
spool_default_sender(const char *domain)
{
	const char *user = getenv("USER");
	struct passwd *pw;

	if (user == NULL || *user == '\0') {
		pw = getpwuid(getuid());
		user = pw != NULL ? pw->pw_name : "postie";
	}
	return xasprintf("%s@%s", user, domain);
}

char *
spool_clean_sender(const char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
		return xstrndup(s + 1, n - 2);
	return xstrdup(s);
}

/* What we know of the header section once it is read. */
struct head {
	struct strbuf	 block;		/* the fields, as read */
	bool		 crlf;		/* its line ending style */
	bool		 had_blank;	/* ended by an empty line */
	struct strbuf	 sep;		/* that empty line, as read */
	struct strbuf	 first_body;	/* a body line that ended it */
	bool		 first_body_bol;
	bool		 input_over;	/* the message ended in the header */
};

static void
head_init(struct head *h)
{
	memset(h, 0, sizeof(*h));
	sb_init(&h->block);
	sb_init(&h->sep);
	sb_init(&h->first_body);
}

static void
head_free(struct head *h)
{
	sb_free(&h->block);
	sb_free(&h->sep);
	sb_free(&h->first_body);
}

/* Read the header section into h. */
static int
read_head(struct input *in, struct head *h, struct err *e)
{
	const char *p;
	size_t n;
	bool bol, first = true, in_line = false;
	enum line_kind cur = LINE_FIELD;
	int r;

	while ((r = input_next(in, &p, &n, &bol, e)) == 1) {
		if (bol) {
			cur = msg_line_kind(p, n);
			if (first && cur == LINE_OTHER && n >= 5 &&
			    memcmp(p, "From ", 5) == 0) {
				/* an mbox "From " line: not part of the mail */
				in_line = true;
				cur = LINE_CONT;
				first = false;
				continue;
			}
			if (first && cur == LINE_CONT)
				cur = LINE_OTHER;	/* nothing to continue */
			if (first && cur == LINE_FIELD)
				h->crlf = n >= 2 && p[n - 2] == '\r';
			first = false;
			in_line = false;
		} else if (in_line) {
			continue;	/* rest of a dropped "From " line */
		}
		if (cur == LINE_BLANK) {
			h->had_blank = true;
			sb_add(&h->sep, p, n);
			return 0;
		}
		if (cur == LINE_OTHER) {
			sb_add(&h->first_body, p, n);
			h->first_body_bol = bol;
			return 0;
		}
		if (memchr(p, '\0', n) != NULL)
			return err_set(e, ERR_DATA, "the message header has a "
			    "NUL byte: refusing it");
		if (h->block.len + n > SPOOL_HEADER_MAX)
			return err_set(e, ERR_DATA, "the message header is "
			    "larger than %d bytes: refusing it",
			    SPOOL_HEADER_MAX);
		sb_add(&h->block, p, n);
	}
	if (r < 0)
		return -1;
	h->input_over = true;
	return 0;
}

/* Append the addresses of every field called name to out, but those
 * in seen already. */
static int
collect(const struct headers *hd, const char *name, struct strvec *out,
    struct addr_set *seen, struct err *e)
{
	for (long i = hdr_find(hd, name, 0); i >= 0;
	    i = hdr_find(hd, name, (size_t)i + 1)) {
		char *v = hdr_value(hd, (size_t)i);
		struct strvec tmp;
		const char *bad = NULL;

		sv_init(&tmp);
		if (addr_parse_list(v, &tmp, &bad) < 0) {
			util_sanitize(v);
			err_set(e, ERR_DATA, "cannot read the %s: header "
			    "'%.200s': %s", name, v, bad);
			free(v);
			sv_free(&tmp);
			return -1;
		}
		for (size_t j = 0; j < tmp.n; j++)
			addr_list_add(out, seen, tmp.v[j]);
		sv_free(&tmp);
		free(v);
	}
	return 0;
}

static bool
has_resent(const struct headers *hd)
{
	for (size_t i = 0; i < hd->n; i++)
		if (hd->f[i].name_len > 7 &&
		    strncasecmp(hd->buf + hd->f[i].start, "Resent-", 7) == 0)
			return true;
	return false;
}

/*
 * The first address of From:, or NULL. A resent message (mutt's bounce,
 * a forward with Resent-* fields) is the resender's: its newest
 * Resent-From: (the resent fields are prepended, RFC 5322 3.6.6).
 */
static char *
from_address(const struct headers *hd)
{
	long i = hdr_find(hd, "Resent-From", 0);
	struct strvec tmp;
	const char *bad;
	char *v, *a = NULL;

	if (i < 0)
		i = hdr_find(hd, "From", 0);
	if (i < 0)
		return NULL;
	sv_init(&tmp);
	v = hdr_value(hd, (size_t)i);
	if (addr_parse_list(v, &tmp, &bad) == 0 && tmp.n > 0)
		a = xstrdup(tmp.v[0]);
	sv_free(&tmp);
	free(v);
	return a;
}

static bool
has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return true;
	return false;
}

/* Replace every local name with an alias by its addresses. */
static int
expand_aliases(const struct config *cfg, struct strvec *rcpts, struct err *e)
{
	struct strvec out;
	struct addr_set seen;
	int rc = 0;

	if (cfg->aliases.n == 0)
		return 0;
	sv_init(&out);
	addr_set_init(&seen);
	for (size_t i = 0; i < rcpts->n && rc == 0; i++)
		rc = alias_expand(&cfg->aliases, cfg->domain, rcpts->v[i], &out,
		    &seen, e);
	addr_set_free(&seen);
	if (rc == 0) {
		sv_free(rcpts);
		*rcpts = out;
	} else
		sv_free(&out);
	return rc;
}

static int
build_envelope(const struct config *cfg, const struct spool_opts *o,
    const struct headers *hd, struct envelope *env, char **from_sender,
    const struct identity **idp, struct err *e)
{
	const char *why;
	char *sender;
	const struct identity *id;
	struct addr_set seen;

	memset(env, 0, sizeof(*env));
	sv_init(&env->rcpts);
	addr_set_init(&seen);
	for (size_t i = 0; i < o->rcpts.n; i++) {
		/* an argument is an address list, as sendmail and Postfix
		 * read it: cron passes MAILTO="a@x,b@y" as one, and
		 * 'Name <a@x>' is one address (a group naming nobody, none);
		 * what is no list stays whole, for the envelope check to say
		 * why */
		struct strvec list;
		const char *bad;

		sv_init(&list);
		if (addr_parse_list(o->rcpts.v[i], &list, &bad) < 0)
			addr_list_add(&env->rcpts, &seen, o->rcpts.v[i]);
		for (size_t k = 0; k < list.n; k++)
			addr_list_add(&env->rcpts, &seen, list.v[k]);
		sv_free(&list);
	}
	if (o->extract) {
		bool resent = has_resent(hd);

		if (collect(hd, resent ? "Resent-To" : "To", &env->rcpts,
		    &seen, e) ||
		    collect(hd, resent ? "Resent-Cc" : "Cc", &env->rcpts,
		    &seen, e) ||
		    collect(hd, resent ? "Resent-Bcc" : "Bcc", &env->rcpts,
		    &seen, e)) {
			addr_set_free(&seen);
			return -1;
		}
	}
	addr_set_free(&seen);
	if (env->rcpts.n == 0 && o->extract)
		return err_set(e, ERR_DATA, "no recipients: -t found no "
		    "address in To:, Cc: or Bcc: (a group such as "
		    "'undisclosed-recipients:;' names nobody)");
	if (env->rcpts.n == 0)
		return err_set(e, ERR_DATA, "no recipients: give them as "
		    "arguments, or use -t to read To:, Cc: and Bcc:");
	if (expand_aliases(cfg, &env->rcpts, e) < 0)
		return -1;

	if (o->sender != NULL)
		sender = spool_clean_sender(o->sender);
	else if ((sender = from_address(hd)) == NULL)
		sender = spool_default_sender(config_domain(cfg));
	if (*sender != '\0' && strchr(sender, '@') == NULL) {
		char *q = xasprintf("%s@%s", sender, config_domain(cfg));

		free(sender);
		sender = q;
	}
	/* the sender as given picks the identity: it must be an address
	 * even when force-sender replaces it */
	if (*sender != '\0' && !addr_valid_envelope(sender, &why)) {
		util_sanitize(sender);
		err_set(e, ERR_DATA, "sender '%.300s' %s", sender, why);
		free(sender);
		return -1;
	}
	if (!envelope_dsn_value_ok(o->body)) {
		free(sender);
		return err_set(e, ERR_DATA, "the DSN option -B has blanks, "
		    "control or non-ASCII characters, or is over 100 bytes");
	}
	id = o->identity != NULL ? o->identity :
	    config_identity_for(cfg, sender);
	*from_sender = sender;
	/* the null sender (bounces) is never rewritten: a notice sent as
	 * force-sender could bounce back, and loop */
	env->sender = xstrdup(id != NULL && id->force_sender != NULL &&
	    *sender != '\0' ? id->force_sender : sender);
	env->identity = id != NULL ? xstrdup(id->name) : NULL;
	env->notify = o->notify ? xstrdup(o->notify) : NULL;
	env->ret = o->ret ? xstrdup(o->ret) : NULL;
	/* what the body is, not what -B said: filled in once read (8 wide) */
	env->body = xstrdup("7bit    ");
	env->envid = o->envid ? xstrdup(o->envid) : NULL;
	*idp = id;
	return 0;
}

static bool
needs_quotes(const char *name)
{
	for (const char *p = name; *p; p++)
		if (strchr("()<>[]:;@\\,.\"", *p) != NULL)
			return true;
	return false;
}

/* The fields postie adds: Date:, Message-ID:, From: where missing. */
static void
added_fields(const struct config *cfg, const struct headers *hd,
    const struct spool_opts *o, const char *sender, const char *eol,
    struct strbuf *out)
{
	if (hdr_find(hd, "Date", 0) < 0) {
		char date[64];

		msg_format_date(time(NULL), date, sizeof(date));
		sb_addf(out, "Date: %s%s", date, eol);
	}
	if (hdr_find(hd, "Message-ID", 0) < 0) {
		struct timeval tv;
		unsigned int rnd = 0;

		gettimeofday(&tv, NULL);
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (unsigned int)tv.tv_usec ^ (unsigned int)getpid();
		/* the domain, not the machine's name, when one is set: the
		 * left side is unique by itself (time, pid, 32 random bits) */
		sb_addf(out, "Message-ID: <%lld.%06ld.%ld.%08x@%s>%s",
		    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), rnd,
		    config_domain(cfg), eol);
	}
	if (hdr_find(hd, "From", 0) < 0) {
		char *daemon = xasprintf("MAILER-DAEMON@%s",
		    config_domain(cfg));
		const char *addr = *sender ? sender : daemon;

		if (o->fullname != NULL && *o->fullname != '\0') {
			char *name = xstrdup(o->fullname);
			struct strbuf enc;

			util_sanitize(name);
			sb_init(&enc);
			if (msg_encode_phrase(name, &enc))
				/* 8-bit: encoded words, no quotes (RFC 2047) */
				sb_addf(out, "From: %s <%s>%s", enc.s, addr, eol);
			else if (needs_quotes(name)) {
				struct strbuf q;

				sb_init(&q);
				sb_addc(&q, '"');
				for (const char *p = name; *p; p++) {
					if (*p == '"' || *p == '\\')
						sb_addc(&q, '\\');
					sb_addc(&q, *p);
				}
				sb_addc(&q, '"');
				sb_addf(out, "From: %s <%s>%s", q.s, addr, eol);
				sb_free(&q);
			} else
				sb_addf(out, "From: %s <%s>%s", name, addr, eol);
			sb_free(&enc);
			free(name);
		} else
			sb_addf(out, "From: %s%s", addr, eol);
		free(daemon);
	}
}

static bool
field_is(const struct headers *hd, const struct field *f, const char *name)
{
	return f->name_len == strlen(name) &&
	    strncasecmp(hd->buf + f->start, name, f->name_len) == 0;
}

/*
 * Write the header block without Bcc: and Resent-Bcc: fields, and with
 * the bare addresses of From: qualified as the envelope sender is (an
 * upstream refuses "From: root", and would qualify it with its own
 * domain at best).
 */
static int
write_head(const struct config *cfg, struct qfile *qf,
    const struct headers *hd, struct err *e)
{
	struct strbuf q;
	size_t pos = 0;
	int rc = 0;

	sb_init(&q);
	for (size_t i = 0; i < hd->n && rc == 0; i++) {
		const struct field *f = &hd->f[i];
		bool bcc = field_is(hd, f, "Bcc") ||
		    field_is(hd, f, "Resent-Bcc");

		sb_reset(&q);
		if (!bcc && !(field_is(hd, f, "From") &&
		    msg_qualify_field(hd->buf + f->start, f->end - f->start,
		    config_domain(cfg), &q)))
			continue;
		if (queue_write(qf, hd->buf + pos, f->start - pos, e) < 0 ||
		    queue_write(qf, q.s, q.len, e) < 0)
			rc = -1;
		pos = f->end;
	}
	sb_free(&q);
	if (rc < 0)
		return -1;
	return queue_write(qf, hd->buf + pos, hd->len - pos, e);
}

static int
check_size(const struct config *cfg, const struct qfile *qf, uint64_t base,
    struct err *e)
{
	if (cfg->max_size > 0 && qf->written - base > cfg->max_size)
		return err_set(e, ERR_DATA, "the message is larger than "
		    "max-size (%llu bytes): refusing it",
		    (unsigned long long)cfg->max_size);
	return 0;
}

int
spool_message(const struct config *cfg, struct queue *q, struct input *in,
    const struct spool_opts *o, struct spool_result *res, struct err *e)
{
	struct head h;
	struct headers hd = { 0 };
	struct envelope env;
	struct strbuf sb;
	struct qfile qf;
	char *from_sender = NULL;
	const struct identity *id = NULL;
	const char *eol;
	uint64_t base, body_at;
	bool eight;
	const char *p;
	size_t n;
	bool bol;
	int r, rc = -1;

	memset(res, 0, sizeof(*res));
	memset(&env, 0, sizeof(env));
	sv_init(&env.rcpts);
	memset(&qf, 0, sizeof(qf));
	qf.fd = -1;
	head_init(&h);
	sb_init(&sb);
	if (read_head(in, &h, e) < 0)
		goto out;
	if (h.block.len > 0 && h.block.s[h.block.len - 1] != '\n')
		sb_adds(&h.block, h.crlf ? "\r\n" : "\n");
	hdr_parse(&hd, h.block.s ? h.block.s : "", h.block.len);
	if (build_envelope(cfg, o, &hd, &env, &from_sender, &id, e) < 0)
		goto out;
	env.queued = time(NULL);
	/* what is stored is checked as every reader will check it */
	{
		char why[ERR_MSG_MAX / 2];

		if (envelope_check(&env, why, sizeof(why)) < 0) {
			err_set(e, ERR_DATA, "%s", why);
			goto out;
		}
	}

	if (queue_begin(q, &qf, e) < 0)
		goto out;
	envelope_format(&env, &sb);
	body_at = (uint64_t)(strstr(sb.s, "\nbody ") - sb.s) + 6;
	eight = has_8bit(h.block.s, h.block.len) ||
	    has_8bit(h.first_body.s, h.first_body.len);
	if (queue_write(&qf, sb.s, sb.len, e) < 0)
		goto abort;
	base = qf.written;
	eol = h.crlf ? "\r\n" : "\n";
	if (write_head(cfg, &qf, &hd, e) < 0)
		goto abort;
	sb_reset(&sb);
	added_fields(cfg, &hd, o, from_sender, eol, &sb);
	if (queue_write(&qf, sb.s, sb.len, e) < 0)
		goto abort;
	if (h.had_blank) {
		if (queue_write(&qf, h.sep.s, h.sep.len, e) < 0)
			goto abort;
	} else if (h.first_body.len > 0) {
		if (queue_write(&qf, eol, strlen(eol), e) < 0 ||
		    queue_write(&qf, h.first_body.s, h.first_body.len, e) < 0)
			goto abort;
	}
	if (check_size(cfg, &qf, base, e) < 0)
		goto abort;
	if (!h.input_over) {
		while ((r = input_next(in, &p, &n, &bol, e)) == 1) {
			if (!eight)
				eight = has_8bit(p, n);
			if (queue_write(&qf, p, n, e) < 0 ||
			    check_size(cfg, &qf, base, e) < 0)
				goto abort;
		}
		if (r < 0)
			goto abort;
	}
	res->size = qf.written - base;
	if (eight && queue_patch(&qf, body_at, "8bitmime", 8, e) < 0)
		goto abort;
	if (queue_commit(&qf, e) < 0)
		goto out;
	res->id = qf.id;
	qf.id = NULL;
	res->sender = xstrdup(env.sender);
	res->identity = id;
	res->nrcpts = env.rcpts.n;
	rc = 0;
	goto out;
abort:
	queue_abort(&qf);
out:
	qfile_free(&qf);
	free(from_sender);
	envelope_free(&env);
	hdr_free(&hd);
	head_free(&h);
	sb_free(&sb);
	return rc;
}
