/*
 * input.h - a message arriving on a file descriptor, piece by piece.
 *
 * Pieces are whole lines (with their line ending) or, for lines longer
 * than the buffer, consecutive parts of one line; memory stays bounded
 * whatever the message size. Three ways to end:
 *   INPUT_RAW   end of file only (sendmail -i)
 *   INPUT_DOT   end of file, or a line that is a lone "." (sendmail)
 *   INPUT_SMTP  a lone "." line; leading dots are unstuffed; end of file
 *               before it is an error (SMTP DATA in sendmail -bs)
 */
#ifndef POSTIE_INPUT_H
#define POSTIE_INPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define INPUT_BUFSZ 65536

enum input_mode { INPUT_RAW, INPUT_DOT, INPUT_SMTP };

struct input {
	int		 fd;
	enum input_mode	 mode;
	char		 buf[INPUT_BUFSZ];
	size_t		 pos;		/* next unread byte */
	size_t		 len;		/* bytes in buf */
	bool		 eof;		/* read() returned 0 */
	bool		 ended;		/* this message is over */
	bool		 bol;		/* the next piece starts a line */
};

void	input_init(struct input *in, int fd, enum input_mode mode);

/* Start reading a new message (after SMTP DATA) in the given mode. */
void	input_restart(struct input *in, enum input_mode mode);

/*
 * The next piece: 1 with p, n and bol (the piece starts a line) set, 0 when the
 * message ended, -1 on a read error or, in INPUT_SMTP, end of file
 * before the final ".".
 */
int	input_next(struct input *in, const char **p, size_t *n, bool *bol,
	    struct err *e);

#endif
