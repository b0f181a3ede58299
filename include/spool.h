/*
 * spool.h - accept one message: read it, build its envelope, add the
 * missing Date:, Message-ID: and From:, drop Bcc:, and commit it to the
 * queue. Used by sendmail (stdin) and by sendmail -bs (SMTP DATA).
 */
#ifndef POSTIE_SPOOL_H
#define POSTIE_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "input.h"
#include "queue.h"
#include "util.h"

#define SPOOL_HEADER_MAX (1024 * 1024)

struct spool_opts {
	const char	*sender;	/* -f/-r or MAIL FROM; NULL: derive */
	const char	*fullname;	/* -F, for an added From: */
	bool		 extract;	/* -t */
	struct strvec	 rcpts;		/* argument / RCPT TO recipients */
	const char	*notify;	/* -N */
	const char	*ret;		/* -R */
	const char	*body;		/* -B */
	const char	*envid;		/* -V */
	const struct identity *identity;	/* set: this identity, not
					 * the one the sender picks (a
					 * failure notice goes the way its
					 * message came) */
};

struct spool_result {
	char		*id;
	char		*sender;
	const struct identity *identity;
	size_t		 nrcpts;
	uint64_t	 size;
};

void	spool_opts_init(struct spool_opts *o);
void	spool_opts_free(struct spool_opts *o);
void	spool_result_free(struct spool_result *r);

/*
 * Read one message from in and commit it to q. Returns 0 with res filled
 * once the message is durable; -1 with nothing left in the queue.
 */
int	spool_message(const struct config *cfg, struct queue *q,
	    struct input *in, const struct spool_opts *o,
	    struct spool_result *res, struct err *e);

/* The sender used when neither -f nor From: gives one: $USER@domain
 * (config_domain: `domain`, else the host name). */
char	*spool_default_sender(const char *domain);

/* Normalize a -f argument: "<a@b>" -> "a@b", "<>" -> "". */
char	*spool_clean_sender(const char *s);

#endif
