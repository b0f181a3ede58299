/* test_reach.c - QUEUE/unreachable: parsing hostile text, the streak. */
#include "testutil.h"

#include <sys/stat.h>

#include "reach.h"
#include "util.h"

#define S(x) x, sizeof(x) - 1

static void
test_parse_good_and_hostile(void **state)
{
	static const char text[] =
	    "work\t1700000000\t1700000900\tcannot connect: refused\n"
	    "nofields\n"
	    "two\t1\n"
	    "\t1700000000\t1700000000\tno name\n"
	    "badtime\tx\t1700000000\tr\n"
	    "zero\t0\t1700000000\tr\n"
	    "huge\t1700000000\t99999999999999999999\tr\n"
	    "backwards\t1700000900\t1700000000\tsince after last\n"
	    "ctl\x01name\t1700000000\t1700000000\tr\n"
	    "work\t1600000000\t1600000000\ta second line for work\n"
	    "esc\t1700000000\t1700000000\tbad \x1b[31m reply\n"
	    "torn\t1700000000\t1700000000\tno newline";
	struct reach r;
	const struct reach_entry *en;

	(void)state;
	reach_parse(S(text), &r);
	assert_int_equal(r.n, 2);
	en = reach_find(&r, "work");
	assert_non_null(en);
	assert_int_equal(en->since, 1700000000);
	assert_int_equal(en->last, 1700000900);
	assert_string_equal(en->reason, "cannot connect: refused");
	en = reach_find(&r, "esc");
	assert_non_null(en);
	assert_string_equal(en->reason, "bad ?[31m reply");
	assert_null(reach_find(&r, "torn"));
	assert_null(reach_find(&r, "backwards"));
	reach_free(&r);
}

static void
test_parse_nul_and_bounds(void **state)
{
	static const char nul[] = "a\t1700000000\t1700000000\tx\0y\n"
	    "b\t1700000000\t1700000000\tok\n";
	struct strbuf sb;
	struct reach r;

	(void)state;
	reach_parse(nul, sizeof(nul) - 1, &r);
	assert_int_equal(r.n, 1);
	assert_non_null(reach_find(&r, "b"));
	reach_free(&r);

	sb_init(&sb);
	for (int i = 0; i < REACH_MAX + 50; i++)
		sb_addf(&sb, "id%d\t1700000000\t1700000000\treason\n", i);
	reach_parse(sb.s, sb.len, &r);
	assert_int_equal(r.n, REACH_MAX);
	reach_free(&r);
	sb_free(&sb);
}

static void
test_streak_and_file(void **state)
{
	char *dir = tu_tmpdir(), *tmp = NULL, *path = NULL;
	struct reach r, back;
	struct err e;
	struct stat st;

	(void)state;
	assert_true(asprintf(&tmp, "%s/tmp", dir) > 0);
	assert_true(asprintf(&path, "%s/unreachable", dir) > 0);
	assert_int_equal(mkdir(tmp, 0700), 0);
	memset(&r, 0, sizeof(r));
	reach_set(&r, "work", 1000, "refused\twith a tab");
	reach_set(&r, "work", 2000, "timed out");	/* the streak goes on */
	reach_set(&r, "home", 1500, "no DNS");
	assert_int_equal(reach_write(dir, &r, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	reach_read(dir, &back);
	assert_int_equal(back.n, 2);
	assert_int_equal(reach_find(&back, "work")->since, 1000);
	assert_int_equal(reach_find(&back, "work")->last, 2000);
	assert_string_equal(reach_find(&back, "work")->reason, "timed out");
	assert_true(reach_clear(&back, "work"));
	assert_false(reach_clear(&back, "work"));
	assert_true(reach_clear(&back, "home"));
	assert_int_equal(reach_write(dir, &back, &e), 0);
	assert_int_not_equal(stat(path, &st), 0);	/* empty: no file */
	reach_free(&back);
	reach_free(&r);
	/* a link in its place is not read */
	assert_int_equal(symlink("/etc/passwd", path), 0);
	reach_read(dir, &back);
	assert_int_equal(back.n, 0);
	unlink(path);
	tu_rmtree(dir);
	free(path);
	free(tmp);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good_and_hostile),
		cmocka_unit_test(test_parse_nul_and_bounds),
		cmocka_unit_test(test_streak_and_file),
	};

	return cmocka_run_group_tests_name("test_reach", tests, NULL, NULL);
}
