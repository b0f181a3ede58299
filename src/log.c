/* log.c - event lines to syslog, stderr or a file. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void
log_open(struct log *l, const struct config *cfg, const char *prog,
    bool verbose)
{
	memset(l, 0, sizeof(*l));
	l->kind = cfg != NULL ? cfg->log : LOGTO_STDERR;
	l->prog = prog;
	l->verbose = verbose;
	if (l->kind == LOGTO_SYSLOG)
		openlog(prog, LOG_PID, LOG_MAIL);
	else if (l->kind == LOGTO_FILE) {
		int fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC, 0600);

		l->fp = fd >= 0 ? fdopen(fd, "a") : NULL;
		if (l->fp == NULL) {
			if (fd >= 0)
				close(fd);
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
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(l->fp, "%s %s[%ld]: %s\n", ts, l->prog,
		    (long)getpid(), line);
		fflush(l->fp);
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
	if (l->fp != NULL)
		fclose(l->fp);
	l->fp = NULL;
}
