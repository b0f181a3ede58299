/*
 * smtpd.h - sendmail -bs: an SMTP dialogue on stdin/stdout for clients
 * that speak SMTP to a pipe. Each completed DATA is one spooled message.
 */
#ifndef POSTIE_SMTPD_H
#define POSTIE_SMTPD_H

#include <stdio.h>

#include "config.h"
#include "log.h"
#include "queue.h"

/* Serve until QUIT or end of input; *queued counts the messages
 * spooled. -1 only if the dialogue broke. */
int	smtpd_run(const struct config *cfg, struct queue *q, int in_fd,
	    FILE *out, struct log *log, size_t *queued, struct err *e);

#endif
