/* log.c - event lines to syslog, stderr or a file. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void
log_open(struct log *l, const struct config *cfg, const char *prog,
    bool verbose)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->kind = cfg != NULL ? cfg->log : LOGTO_STDERR;
	l->prog = prog;
	l->verbose = verbose;
	if (l->kind == LOGTO_SYSLOG)
		openlog(prog, LOG_PID, LOG_MAIL);
	else if (l->kind == LOGTO_FILE) {
		l->fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC, 0600);
		l->pid = (long)getpid();
		if (l->fd < 0) {
			fprintf(stderr, "%s: cannot open the log file %s; "
			    "logging to stderr instead\n", prog,
			    cfg->log_file);
			l->kind = LOGTO_STDERR;
		}
	}
}

void
log_msg(struct log *l, int prio, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	util_sanitize(line);
	switch (l->kind) {
	case LOGTO_SYSLOG:
		syslog(prio, "%s", line);
		break;
	case LOGTO_FILE: {
		char ts[32], out[sizeof(line) + 128];
		time_t now = time(NULL);
		struct tm tm;
		int n;

		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		/* one write(2) per line: O_APPEND keeps the lines of
		 * concurrent runs whole */
		n = snprintf(out, sizeof(out), "%s %s[%ld]: %s\n", ts, l->prog,
		    l->pid, line);
		if (n > 0 && (size_t)n >= sizeof(out)) {
			n = (int)sizeof(out) - 1;
			out[n - 1] = '\n';
		}
		if (n > 0)
			(void)util_write_all(l->fd, out, (size_t)n);
		break;
	}
	case LOGTO_STDERR:
		fprintf(stderr, "%s: %s\n", l->prog, line);
		return;	/* already on stderr: no -v echo */
	}
	if (l->verbose)
		fprintf(stderr, "%s: %s\n", l->prog, line);
}

void
log_close(struct log *l)
{
	if (l->kind == LOGTO_SYSLOG)
		closelog();
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}
