/*
 * reply.h - SMTP replies from a server, parsed with bounds.
 *
 * Every byte a server sends is hostile: a reply is taken in whole lines,
 * each line at most REPLY_LINE_MAX bytes, at most REPLY_LINES_MAX lines
 * and REPLY_BYTES_MAX bytes in all, each line "DDD", "DDD text" or
 * "DDD-text" with a code 200-599. The parser is fed bytes as they come
 * (any split) and keeps the reply normalized: CRLF line ends, every
 * other control byte, NUL and non-ASCII byte turned into '?', so nothing
 * raw reaches libESMTP, the terminal or a log.
 *
 * Used by postie's own session opening (session.c) and by the pump
 * between libESMTP and the server (pump.c): one implementation.
 */
#ifndef POSTIE_REPLY_H
#define POSTIE_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define REPLY_LINE_MAX	2048	/* bytes in a line, without its CRLF */
#define REPLY_LINES_MAX	100
#define REPLY_BYTES_MAX	65536	/* the whole reply, CRLFs included */

struct reply {
	char	buf[REPLY_BYTES_MAX + REPLY_LINE_MAX + 4];
	size_t	len;		/* whole lines, then the line being read */
	size_t	line;		/* where the line being read starts */
	int	lines;		/* whole lines so far */
	int	code;		/* of the first line */
	bool	done;		/* a whole reply is in buf[0..len) */
	char	error[96];	/* why the reply was refused: "sent ..." */
};

/* An empty reply, ready to be fed. */
void	reply_init(struct reply *r);

/*
 * Feed n bytes. Returns how many were taken: all of them, or fewer when
 * the reply ended (r->done; the rest belongs to what follows). -1 when
 * the reply breaks a bound or is malformed (r->error says how, e.g.
 * "sent a reply line over 2048 bytes").
 */
ssize_t	reply_feed(struct reply *r, const char *p, size_t n);

/*
 * Drop the EHLO keywords postie keeps from libESMTP (CHUNKING, whose
 * pipelined BDAT libESMTP mishandles on a dropped connection; STARTTLS
 * and AUTH: postie does TLS and AUTH itself, session.h; XUSR, which would
 * put a command of libESMTP's between a message's end and the next MAIL
 * the pump answers ahead, pump.c), keeping the reply well-formed (the
 * last line kept gets the "250 " form). Only a done 250 reply changes.
 */
void	reply_shape_ehlo(struct reply *r);

/* Does a done EHLO reply offer keyword kw (case-insensitive)? */
bool	reply_has_keyword(const struct reply *r, const char *kw);

/* The reply as one line of text for a reason: lines joined by ' / ',
 * cut to fit out (always terminated). */
void	reply_text(const struct reply *r, char *out, size_t len);

/*
 * The reply as libESMTP's status would give it to smtp.c's journal: the
 * first line as "DDD text", each further line's text after "??" (where
 * libESMTP's CRLF is made printable): "451 4.3.0 a??4.3.0 b". Always
 * terminated, cut to fit out.
 */
void	reply_status(const struct reply *r, char *out, size_t len);

/*
 * The reply libESMTP gets for a RCPT when postie answered its MAIL FROM
 * itself and the server then refused it (pump.h): the MAIL reply, its
 * code and enhanced code, the first line's text prefixed with "(reply to
 * MAIL FROM)", continuation lines as they were. Returns its length, 0 if
 * mail is not a done reply or out (cap bytes) is too small.
 */
size_t	reply_for_rcpt(const struct reply *mail, char *out, size_t cap);

#endif
