/*
 * reach.h - QUEUE/unreachable: the upstreams the last runs could not
 * reach, for mailq to say why mail waits.
 *
 * A run that cannot reach an identity's upstream (DNS, connect, the SSH
 * server or its channel) writes nothing into its messages' journals:
 * that is no attempt (see deliver.h). What it learnt goes here instead,
 * one line per identity:
 *
 *	NAME <TAB> SINCE <TAB> LAST <TAB> REASON <LF>
 *
 * SINCE is when the identity was first found unreachable in the current
 * streak, LAST the latest run that found it so (epoch seconds). A run
 * that reaches the upstream drops its line. The file is advisory: it is
 * replaced whole by a rename (written in tmp/ first), not fsync'd; a
 * crash leaves the old or the new one, and a lost update only costs a
 * line of mailq's explanation. It is read as hostile input: bounded in
 * size and entries, malformed lines skipped.
 */
#ifndef POSTIE_REACH_H
#define POSTIE_REACH_H

#include <stdbool.h>
#include <time.h>

#include "err.h"

#define REACH_FILE_MAX	(64 * 1024)	/* bytes read */
#define REACH_MAX	256		/* entries kept */

struct reach_entry {
	char	*name;
	time_t	 since;
	time_t	 last;
	char	*reason;
};

struct reach {
	struct reach_entry	*v;
	size_t			 n;
};

/* Read QUEUE/unreachable into r; a missing or unusable file is empty. */
void	reach_read(const char *queue_dir, struct reach *r);

/* Parse the file's text (for the reader and the tests). */
void	reach_parse(const char *text, size_t len, struct reach *r);

/* The entry for an identity, or NULL. */
const struct reach_entry *reach_find(const struct reach *r, const char *name);

/* Record that name could not be reached at now; its streak's start stays. */
void	reach_set(struct reach *r, const char *name, time_t now,
	    const char *reason);

/* name was reached: drop its entry. true if there was one. */
bool	reach_clear(struct reach *r, const char *name);

/* Replace QUEUE/unreachable by r (removed when r is empty). */
int	reach_write(const char *queue_dir, const struct reach *r,
	    struct err *e);

void	reach_free(struct reach *r);

#endif
