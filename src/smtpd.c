/* smtpd.c - a minimal SMTP server on a pipe, feeding the spool. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "message.h"
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
	char		 notify[64];
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

/* Value of NAME=value in an ESMTP parameter list, copied into buf. */
static bool
param(const char *params, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = params; p && *p; ) {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, name, n) == 0 && p[n] == '=') {
			size_t vl = strcspn(p + n + 1, " ");

			if (vl >= len)
				vl = len - 1;
			memcpy(buf, p + n + 1, vl);
			buf[vl] = '\0';
			return true;
		}
		p = strchr(p, ' ');
	}
	return false;
}

static void
cmd_mail(struct session *s, const char *arg)
{
	const char *params = NULL, *why;
	char *addr, val[64];

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
	if (param(params, "SIZE", val, sizeof(val)) && s->cfg->max_size &&
	    strtoull(val, NULL, 10) > s->cfg->max_size) {
		reply(s, "552 5.3.4 Message larger than max-size");
		free(addr);
		return;
	}
	if (param(params, "BODY", val, sizeof(val)))
		s->opts.body = strcasecmp(val, "8BITMIME") == 0 ? "8bitmime" :
		    "7bit";
	if (param(params, "RET", val, sizeof(val)))
		s->opts.ret = strcasecmp(val, "FULL") == 0 ? "full" : "hdrs";
	if (param(params, "ENVID", s->envid, sizeof(s->envid)))
		s->opts.envid = s->envid;
	s->sender = addr;
	s->opts.sender = s->sender;
	s->have_mail = true;
	reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, const char *arg)
{
	const char *params = NULL, *why;
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
	if (param(params, "NOTIFY", s->notify, sizeof(s->notify)))
		s->opts.notify = s->notify;
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

	if (!s->have_mail || s->opts.rcpts.n == 0) {
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
