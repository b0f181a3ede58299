/*
 * log.h - one line per event to syslog (facility mail), stderr or a file;
 * with -v also to stderr. Control characters never reach a log line.
 */
#ifndef POSTIE_LOG_H
#define POSTIE_LOG_H

#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

#include "config.h"

struct log {
	enum log_kind	 kind;
	int		 fd;		/* LOG_FILE, O_APPEND */
	long		 pid;		/* in each file line */
	const char	*prog;
	bool		 verbose;
};

void	log_open(struct log *l, const struct config *cfg, const char *prog,
	    bool verbose);
void	log_msg(struct log *l, int prio, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	log_close(struct log *l);

#endif
