/* test_fetchprog.c - the progress line of several jobs: counts added up,
 * the children's lines passed on whole. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "testutil.h"

#include "fetchprog.h"

/* stderr into a file while fn runs; what it wrote, in out. */
static void
captured(void (*fn)(void *), void *arg, char *out, size_t len)
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(f);
	fflush(stderr);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	fn(arg);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

struct two {
	struct fetchprog	p;
	struct fetchprog_kid	k[2];
	int			cnt[2][2], err[2][2];
};

static void
two_init(struct two *t)
{
	memset(&t->p, 0, sizeof(t->p));
	t->p.njobs = 2;
	for (int i = 0; i < 2; i++) {
		fetchprog_kid_init(&t->k[i]);
		assert_int_equal(pipe(t->cnt[i]), 0);
		assert_int_equal(pipe(t->err[i]), 0);
		fcntl(t->cnt[i][1], F_SETFL, O_NONBLOCK);
		t->k[i].pfd = t->cnt[i][0];
		t->k[i].efd = t->err[i][0];
	}
}

static void
pump(void *arg)
{
	struct two *t = arg;

	fetchprog_pump(&t->p, t->k, 2, 0);
}

static void
drain_both(void *arg)
{
	struct two *t = arg;

	for (int i = 0; i < 2; i++) {
		close(t->cnt[i][1]);
		close(t->err[i][1]);
		fetchprog_drain(&t->p, t->k, 2, &t->k[i]);
	}
	fetchprog_end(&t->p);
}

/* The latest counts of each child, added up, on one line; a child's
 * line comes whole and ends the progress line first; a line cut in two
 * writes is joined; what ended is still counted. */
static void
test_counts_and_lines(void **state)
{
	struct two t;
	char out[1024];

	(void)state;
	two_init(&t);
	fetchprog_report(t.cnt[0][1], 1, 0);
	fetchprog_report(t.cnt[0][1], 3, 1);	/* the latest counts */
	fetchprog_report(t.cnt[1][1], 2, 0);
	captured(pump, &t, out, sizeof(out));
	assert_string_equal(out, "\rfetch: 2 jobs: 5 fetched, 1 already here");
	captured(pump, &t, out, sizeof(out));
	assert_string_equal(out, "");		/* nothing new: not redrawn */
	assert_int_equal(write(t.err[1][1], "fetch: two: a warn", 18), 18);
	captured(pump, &t, out, sizeof(out));
	assert_string_equal(out, "");		/* no newline yet: held */
	assert_int_equal(write(t.err[1][1], "ing\n", 4), 4);
	fetchprog_report(t.cnt[1][1], 4, 0);
	captured(pump, &t, out, sizeof(out));
	assert_string_equal(out, "\nfetch: two: a warning\n"
	    "\rfetch: 2 jobs: 7 fetched, 1 already here");
	captured(drain_both, &t, out, sizeof(out));
	assert_string_equal(out, "\n");		/* the same counts: kept */
	assert_int_equal(t.p.done.fetched, 7);
	assert_int_equal(t.p.done.already, 1);
	assert_int_equal(t.k[0].pfd, -1);
	assert_int_equal(t.k[1].efd, -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_and_lines),
	};

	return cmocka_run_group_tests_name("test_fetchprog", tests, NULL,
	    NULL);
}
