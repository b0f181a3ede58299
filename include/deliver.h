/*
 * deliver.h - the queue run: lock each due message, deliver local
 * recipients, group the rest by identity, one SMTP session (one
 * connection) per identity, record every outcome the moment it is known,
 * schedule retries, bounce and remove finished messages.
 */
#ifndef POSTIE_DELIVER_H
#define POSTIE_DELIVER_H

#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "util.h"

struct deliver_opts {
	bool		 verbose;
	bool		 now;		/* ignore retry times */
	bool		 batch;		/* wait batch-delay first */
	struct strvec	 ids;		/* only these (also ignore retry) */
};

/*
 * One queue run. 0 when everything tried was delivered or deferred as
 * the policy says; -1 with ERR_TEMPFAIL when an upstream could not be
 * reached (mail stays queued), or another error when the run could not
 * work at all.
 */
int	deliver_run(const struct config *cfg, const struct deliver_opts *o,
	    struct log *log, struct err *e);

/* When to try again after the n-th attempt (n >= 1). */
time_t	deliver_next_try(const struct config *cfg, int attempts, time_t now);

/* An age in its largest whole unit: "6 days", "3 hours", "1 minute". */
void	deliver_format_age(long secs, char *buf, size_t len);

#endif
