/* smtpd.c - a minimal SMTP server on a pipe, feeding the spool. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "message.h"
#include "alias.h"
#include "smtpd.h"
#include "spool.h"

#define LINE_MAX_SMTP 4096

struct session {
	const struct config *cfg;
	struct queue	*q;
	FILE		*out;
	struct log	*log;
	size_t		 queued;
	struct input	 in;
	bool		 have_mail;
	char		*sender;
	struct spool_opts opts;
	char		 notify[128];
	char		 envid[128];
};

static void
reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(s->out, fmt, ap);
	va_end(ap);
	fputs("\r\n", s->out);
	fflush(s->out);
}

static void
reset(struct session *s)
{
	free(s->sender);
	s->sender = NULL;
	s->have_mail = false;
	spool_opts_free(&s->opts);
	spool_opts_init(&s->opts);
}

/* "<addr> PARAMS..." after "MAIL FROM:" / "RCPT TO:". */
static char *
path_arg(const char *p, const char **params)
{
	const char *end;

	while (*p == ' ')
		p++;
	if (*p != '<')
		return NULL;
	end = strchr(p, '>');
	if (end == NULL)
		return NULL;
	*params = end + 1;
	return xstrndup(p + 1, (size_t)(end - p - 1));
}

/*
 * The ESMTP parameters of MAIL or RCPT, checked: each one known, each
 * value whole (never cut to fit) and one the queue can honour. A reply
 * is given and false returned at the first that is not.
 */
enum { P_SIZE, P_BODY, P_RET, P_ENVID, P_NOTIFY, P_ORCPT, P_N };

struct params {
	char	val[P_N][128];
	bool	have[P_N];
};

static const char *const param_names[P_N] = {
	"SIZE", "BODY", "RET", "ENVID", "NOTIFY", "ORCPT"
};

/* RFC 3461 xtext: printable ASCII but "+" and "=", or "+" and 2 hex. */
static bool
xtext_valid(const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '+') {
			if (!isxdigit((unsigned char)p[1]) ||
			    !isxdigit((unsigned char)p[2]))
				return false;
			p += 2;
		} else if (*p < '!' || *p > '~' || *p == '=')
			return false;
	}
	return true;
}

static bool
value_ok(int which, const char *v)
{
	switch (which) {
	case P_SIZE:
		return *v && strspn(v, "0123456789") == strlen(v);
	case P_BODY:
		return strcasecmp(v, "7BIT") == 0 ||
		    strcasecmp(v, "8BITMIME") == 0;
	case P_RET:
		return strcasecmp(v, "FULL") == 0 || strcasecmp(v, "HDRS") == 0;
	case P_ENVID:
		return *v && strlen(v) <= 100 && xtext_valid(v);
	case P_NOTIFY:
		return cli_notify_valid(v);
	default:	/* ORCPT: accepted, not kept */
		return true;
	}
}

static bool
parse_params(struct session *s, const char *params, unsigned allowed,
    struct params *out)
{
	memset(out, 0, sizeof(*out));
	for (const char *p = params; p && *p; ) {
		size_t len, nl;
		const char *eq;
		int w;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " ");
		eq = memchr(p, '=', len);
		nl = eq ? (size_t)(eq - p) : len;
		for (w = 0; w < P_N; w++)
			if ((allowed & (1u << w)) &&
			    strlen(param_names[w]) == nl &&
			    strncasecmp(p, param_names[w], nl) == 0)
				break;
		if (w == P_N || eq == NULL) {
			/* the client's text is not echoed: it may hold
			 * any byte, a reply line may not */
			reply(s, "555 5.5.4 A parameter was not recognised "
			    "(postie takes SIZE, BODY, RET, ENVID; NOTIFY, "
			    "ORCPT)");
			return false;
		}
		if (len - nl - 1 >= sizeof(out->val[w])) {
			reply(s, "501 5.5.4 %s value too long", param_names[w]);
			return false;
		}
		memcpy(out->val[w], eq + 1, len - nl - 1);
		out->val[w][len - nl - 1] = '\0';
		if (out->have[w] || !value_ok(w, out->val[w])) {
			reply(s, "501 5.5.4 Bad %s value", param_names[w]);
			return false;
		}
		out->have[w] = true;
		p += len;
	}
	return true;
}

static void
cmd_mail(struct session *s, const char *arg)
{
	const char *params = NULL, *why;
	struct params pv;
	char *addr;

	if (s->have_mail) {
		reply(s, "503 5.5.1 MAIL already given; RSET first");
		return;
	}
	addr = path_arg(arg, &params);
	if (addr == NULL) {
		reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (*addr && !addr_valid_envelope(addr, &why)) {
		reply(s, "553 5.1.7 Sender address %s", why);
		free(addr);
		return;
	}
	if (!parse_params(s, params, 1u << P_SIZE | 1u << P_BODY |
	    1u << P_RET | 1u << P_ENVID, &pv)) {
		free(addr);
		return;
	}
	if (pv.have[P_SIZE] && s->cfg->max_size &&
	    strtoull(pv.val[P_SIZE], NULL, 10) > s->cfg->max_size) {
		reply(s, "552 5.3.4 Message larger than max-size");
		free(addr);
		return;
	}
	if (pv.have[P_BODY])
		s->opts.body = strcasecmp(pv.val[P_BODY], "8BITMIME") == 0 ?
		    "8bitmime" : "7bit";
	if (pv.have[P_RET])
		s->opts.ret = strcasecmp(pv.val[P_RET], "FULL") == 0 ?
		    "full" : "hdrs";
	if (pv.have[P_ENVID]) {
		snprintf(s->envid, sizeof(s->envid), "%s", pv.val[P_ENVID]);
		s->opts.envid = s->envid;
	}
	s->sender = addr;
	s->opts.sender = s->sender;
	s->have_mail = true;
	reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, const char *arg)
{
	const char *params = NULL, *why;
	struct params pv;
	char *addr;

	if (!s->have_mail) {
		reply(s, "503 5.5.1 MAIL first");
		return;
	}
	addr = path_arg(arg, &params);
	if (addr == NULL || *addr == '\0') {
		reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		free(addr);
		return;
	}
	if (!addr_valid_envelope(addr, &why)) {
		reply(s, "553 5.1.3 Recipient address %s", why);
		free(addr);
		return;
	}
	if (!parse_params(s, params, 1u << P_NOTIFY | 1u << P_ORCPT, &pv)) {
		free(addr);
		return;
	}
	/* an alias that refuses mail (a program's entry) says so here, for
	 * this recipient alone, not after the data for the whole message */
	{
		struct strvec out;
		struct addr_set seen;
		struct err e = { 0 };
		int rc;

		sv_init(&out);
		addr_set_init(&seen);
		rc = alias_expand(&s->cfg->aliases, s->cfg->domain, addr, &out,
		    &seen, &e);
		addr_set_free(&seen);
		sv_free(&out);
		if (rc < 0) {
			reply(s, "550 5.1.1 %s", e.msg);
			free(addr);
			return;
		}
	}
	if (pv.have[P_NOTIFY]) {
		snprintf(s->notify, sizeof(s->notify), "%s", pv.val[P_NOTIFY]);
		s->opts.notify = s->notify;
	}
	if (!addr_list_contains(&s->opts.rcpts, addr))
		sv_push(&s->opts.rcpts, addr);
	free(addr);
	reply(s, "250 2.1.5 Ok");
}

static int
cmd_data(struct session *s, struct err *out)
{
	struct spool_result res;
	struct err e = { 0 };
	const char *p;
	size_t n;
	bool bol;

	if (s->have_mail && s->opts.rcpts.n == 0) {
		reply(s, "554 5.5.1 No valid recipients");
		return 0;
	}
	if (!s->have_mail) {
		reply(s, "503 5.5.1 MAIL and RCPT first");
		return 0;
	}
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	input_restart(&s->in, INPUT_SMTP);
	if (spool_message(s->cfg, s->q, &s->in, &s->opts, &res, &e) < 0) {
		int r;

		/* read to the final "." so the dialogue stays in step */
		while ((r = input_next(&s->in, &p, &n, &bol, NULL)) == 1)
			;
		log_msg(s->log, LOG_ERR, "-bs message refused: %s", e.msg);
		if (r < 0 || s->in.eof) {
			/* the client went away in the middle of DATA */
			err_set(out, ERR_DATA, "the client closed the "
			    "connection during DATA; that message was not "
			    "queued");
			reset(s);
			return -1;
		}
		if (e.code == ERR_DATA)
			reply(s, "554 5.6.0 %s", e.msg);
		else
			reply(s, "451 4.3.0 %s", e.msg);
	} else {
		log_msg(s->log, LOG_INFO, "queued %s from=<%s> rcpts=%zu "
		    "size=%llu via -bs", res.id, res.sender, res.nrcpts,
		    (unsigned long long)res.size);
		reply(s, "250 2.0.0 Ok: queued as %s", res.id);
		s->queued++;
		spool_result_free(&res);
	}
	input_restart(&s->in, INPUT_RAW);
	reset(s);
	return 0;
}

static bool
is_cmd(const char *line, const char *cmd)
{
	size_t n = strlen(cmd);

	return strncasecmp(line, cmd, n) == 0 &&
	    (line[n] == '\0' || line[n] == ' ' || cmd[n - 1] == ':');
}

int
smtpd_run(const struct config *cfg, struct queue *q, int in_fd, FILE *out,
    struct log *log, size_t *queued, struct err *e)
{
	struct session *s = xcalloc(1, sizeof(*s));
	struct strbuf line;
	const char *host = util_hostname();
	int rc = 0;

	s->cfg = cfg;
	s->q = q;
	s->out = out;
	s->log = log;
	spool_opts_init(&s->opts);
	input_init(&s->in, in_fd, INPUT_RAW);
	sb_init(&line);
	reply(s, "220 %s ESMTP postie", host);
	for (;;) {
		const char *p;
		size_t n;
		bool bol, too_long = false;
		int r;

		sb_reset(&line);
		while ((r = input_next(&s->in, &p, &n, &bol, e)) == 1) {
			if (line.len + n > LINE_MAX_SMTP)
				too_long = true;
			else
				sb_add(&line, p, n);
			if (n > 0 && p[n - 1] == '\n')
				break;
		}
		if (r < 0) {
			rc = -1;
			break;
		}
		if (r == 0 && line.len == 0)
			break;		/* end of input without QUIT */
		while (line.len > 0 && (line.s[line.len - 1] == '\n' ||
		    line.s[line.len - 1] == '\r'))
			line.s[--line.len] = '\0';
		if (too_long)
			reply(s, "500 5.5.2 Line too long");
		else if (is_cmd(line.s, "EHLO"))
			reply(s, "250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
			    "250-SIZE %llu\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES",
			    host, (unsigned long long)cfg->max_size);
		else if (is_cmd(line.s, "HELO"))
			reply(s, "250 %s", host);
		else if (is_cmd(line.s, "MAIL FROM:"))
			cmd_mail(s, line.s + 10);
		else if (is_cmd(line.s, "RCPT TO:"))
			cmd_rcpt(s, line.s + 8);
		else if (is_cmd(line.s, "DATA")) {
			if (cmd_data(s, e) < 0) {
				rc = -1;
				break;
			}
		} else if (is_cmd(line.s, "RSET")) {
			reset(s);
			reply(s, "250 2.0.0 Ok");
		} else if (is_cmd(line.s, "NOOP"))
			reply(s, "250 2.0.0 Ok");
		else if (is_cmd(line.s, "VRFY"))
			reply(s, "252 2.5.2 Cannot VRFY; send some mail");
		else if (is_cmd(line.s, "HELP"))
			reply(s, "214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP "
			    "QUIT");
		else if (is_cmd(line.s, "QUIT")) {
			reply(s, "221 2.0.0 Bye");
			break;
		} else
			reply(s, "500 5.5.1 Unknown command");
		if (r == 0)
			break;
	}
	reset(s);
	spool_opts_free(&s->opts);
	sb_free(&line);
	*queued = s->queued;
	free(s);
	return rc;
}
