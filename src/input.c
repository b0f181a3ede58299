/* input.c - read a message from a descriptor in bounded pieces. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "input.h"

void
input_init(struct input *in, int fd, enum input_mode mode)
{
	in->fd = fd;
	in->pos = in->len = 0;
	in->eof = false;
	input_restart(in, mode);
}

void
input_restart(struct input *in, enum input_mode mode)
{
	in->mode = mode;
	in->ended = false;
	in->bol = true;
}

/* Read more into the buffer, keeping unread bytes. 0 ok, -1 error. */
static int
fill(struct input *in, struct err *e)
{
	ssize_t r;

	if (in->pos > 0) {
		memmove(in->buf, in->buf + in->pos, in->len - in->pos);
		in->len -= in->pos;
		in->pos = 0;
	}
	if (in->len == sizeof(in->buf) || in->eof)
		return 0;
	do
		r = read(in->fd, in->buf + in->len, sizeof(in->buf) - in->len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return err_set(e, ERR_IOERR, "cannot read the message: %s",
		    strerror(errno));
	if (r == 0)
		in->eof = true;
	in->len += (size_t)r;
	return 0;
}

/* Is the line at p (n bytes, ending in LF or at EOF) a lone dot? */
static bool
lone_dot(const char *p, size_t n)
{
	return (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' &&
	    p[1] == '\n') || (n == 3 && p[0] == '.' && p[1] == '\r' &&
	    p[2] == '\n');
}

int
input_next(struct input *in, const char **p, size_t *n, bool *bol,
    struct err *e)
{
	const char *start, *nl;
	size_t avail;

	if (in->ended)
		return 0;
	for (;;) {
		start = in->buf + in->pos;
		avail = in->len - in->pos;
		nl = memchr(start, '\n', avail);
		if (nl != NULL || in->eof || avail == sizeof(in->buf) ||
		    (!in->bol && avail > 0))
			break;
		if (fill(in, e) < 0)
			return -1;
	}
	if (avail == 0) {
		/* end of file */
		in->ended = true;
		if (in->mode == INPUT_SMTP)
			return err_set(e, ERR_DATA, "the connection ended "
			    "before the final '.'");
		return 0;
	}
	*n = nl != NULL ? (size_t)(nl - start) + 1 : avail;
	*bol = in->bol;
	if (in->bol && in->mode != INPUT_RAW && (nl != NULL || in->eof) &&
	    lone_dot(start, *n)) {
		in->pos += *n;
		in->ended = true;
		return 0;
	}
	*p = start;
	if (in->bol && in->mode == INPUT_SMTP && start[0] == '.') {
		(*p)++;		/* dot-unstuffing */
		(*n)--;
		in->pos++;
	}
	in->pos += *n;
	in->bol = nl != NULL;
	return 1;
}
