/*
 * fetchprog.h - the progress line of a run whose jobs go at once, each in
 * a child process (fetch.c), on a terminal.
 *
 * Each child sends its counts through a pipe (fetchprog_report: a
 * record of fixed size, written whole or not at all) and its stderr
 * through another. The parent owns the terminal: it adds the counts up
 * on one line ("fetch: 3 jobs: 120 fetched, 4 already here") and prints
 * each child's lines whole, on lines of their own, ending the progress
 * line first, so nothing is torn or glued to it.
 */
#ifndef POSTIE_FETCHPROG_H
#define POSTIE_FETCHPROG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fetchprog_rec {
	uint64_t	fetched, already;
};

/* The parent's side of one child. */
struct fetchprog_kid {
	int			pfd;	/* its counts; -1: none */
	int			efd;	/* its stderr; -1: none */
	struct fetchprog_rec	last;	/* its latest counts */
	char			line[1024];	/* its stderr, to the newline */
	size_t			len;
};

struct fetchprog {
	size_t			njobs;
	struct fetchprog_rec	done;	/* of the children that ended */
	struct fetchprog_rec	shown;
	bool			line_on;	/* the progress line is up */
};

/* A child's counts so far, to the parent (fd non-blocking: a full pipe
 * drops the record; the next one carries the counts on). */
void	fetchprog_report(int fd, unsigned long fetched, unsigned long already);

void	fetchprog_kid_init(struct fetchprog_kid *k);
/* Wait up to ms for the children's pipes, take what came, redraw. */
void	fetchprog_pump(struct fetchprog *p, struct fetchprog_kid *kids,
	    size_t n, int ms);
/* A child ended: read its pipes to the end, count it as done, close. */
void	fetchprog_drain(struct fetchprog *p, struct fetchprog_kid *kids,
	    size_t n, struct fetchprog_kid *k);
/* The run ended: the progress line gets its newline. */
void	fetchprog_end(struct fetchprog *p);

#endif
