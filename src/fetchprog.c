/* fetchprog.c - the progress line of several jobs at once (see
 * fetchprog.h). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fetchprog.h"

void
fetchprog_report(int fd, unsigned long fetched, unsigned long already)
{
	struct fetchprog_rec r = { fetched, already };

	/* smaller than PIPE_BUF: written whole, or not at all (EAGAIN) */
	(void)!write(fd, &r, sizeof(r));
}

void
fetchprog_kid_init(struct fetchprog_kid *k)
{
	memset(k, 0, sizeof(*k));
	k->pfd = k->efd = -1;
}

static void
redraw(struct fetchprog *p, const struct fetchprog_kid *kids, size_t n)
{
	struct fetchprog_rec t = p->done;

	for (size_t i = 0; i < n; i++) {
		t.fetched += kids[i].last.fetched;
		t.already += kids[i].last.already;
	}
	if (p->line_on && t.fetched == p->shown.fetched &&
	    t.already == p->shown.already)
		return;
	fprintf(stderr, "\rfetch: %zu jobs: %" PRIu64 " fetched, %" PRIu64
	    " already here", p->njobs, t.fetched, t.already);
	fflush(stderr);
	p->shown = t;
	p->line_on = true;
}

/* A child's line, whole, on a line of its own. */
static void
say_line(struct fetchprog *p, const char *s, size_t len)
{
	if (p->line_on)
		fputc('\n', stderr);
	p->line_on = false;
	fwrite(s, 1, len, stderr);
	fputc('\n', stderr);
}

/* The counts in the pipe now (fd readable or at its end). */
static void
take_counts(struct fetchprog_kid *k)
{
	struct fetchprog_rec r[64];
	ssize_t got = read(k->pfd, r, sizeof(r));

	/* records are written whole: a read holds whole ones */
	if (got >= (ssize_t)sizeof(r[0]))
		k->last = r[(size_t)got / sizeof(r[0]) - 1];
	if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
		close(k->pfd);
		k->pfd = -1;
	}
}

/* The stderr in the pipe now, said line by line. */
static void
take_lines(struct fetchprog *p, struct fetchprog_kid *k)
{
	ssize_t got = read(k->efd, k->line + k->len, sizeof(k->line) - k->len);
	bool end = got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN);
	char *nl;

	if (got > 0)
		k->len += (size_t)got;
	while ((nl = memchr(k->line, '\n', k->len)) != NULL) {
		size_t ll = (size_t)(nl - k->line);

		say_line(p, k->line, ll);
		memmove(k->line, nl + 1, k->len - ll - 1);
		k->len -= ll + 1;
	}
	if (k->len == sizeof(k->line) || (end && k->len > 0)) {
		say_line(p, k->line, k->len);	/* no newline came */
		k->len = 0;
	}
	if (end) {
		close(k->efd);
		k->efd = -1;
	}
}

void
fetchprog_pump(struct fetchprog *p, struct fetchprog_kid *kids, size_t n,
    int ms)
{
	struct pollfd pfd[2 * 8];
	struct fetchprog_kid *who[2 * 8];
	size_t m = 0;

	for (size_t i = 0; i < n && m + 2 <= sizeof(pfd) / sizeof(pfd[0]);
	    i++) {
		int fds[2] = { kids[i].pfd, kids[i].efd };

		for (size_t f = 0; f < 2; f++)
			if (fds[f] >= 0) {
				pfd[m].fd = fds[f];
				pfd[m].events = POLLIN;
				who[m++] = &kids[i];
			}
	}
	if (poll(pfd, m, ms) > 0)
		for (size_t i = 0; i < m; i++) {
			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].fd == who[i]->pfd)
				take_counts(who[i]);
			else if (pfd[i].fd == who[i]->efd)
				take_lines(p, who[i]);
		}
	redraw(p, kids, n);
}

void
fetchprog_drain(struct fetchprog *p, struct fetchprog_kid *kids, size_t n,
    struct fetchprog_kid *k)
{
	/* the child is gone: the reads end */
	while (k->pfd >= 0)
		take_counts(k);
	while (k->efd >= 0)
		take_lines(p, k);
	p->done.fetched += k->last.fetched;
	p->done.already += k->last.already;
	memset(&k->last, 0, sizeof(k->last));
	redraw(p, kids, n);
}

void
fetchprog_end(struct fetchprog *p)
{
	if (p->line_on)
		fputc('\n', stderr);
	p->line_on = false;
}
