/* test_deliver.c - the retry schedule, ages in words. */
#include "testutil.h"

#include "config.h"
#include "deliver.h"

static void
test_next_try(void **state)
{
	struct err e;
	struct config *c = config_parse_string("retry 1m 5m 1h\n", "t", &e);

	(void)state;
	assert_non_null(c);
	assert_int_equal(deliver_next_try(c, 1, 1000), 1060);
	assert_int_equal(deliver_next_try(c, 2, 1000), 1300);
	assert_int_equal(deliver_next_try(c, 3, 1000), 4600);
	assert_int_equal(deliver_next_try(c, 9, 1000), 4600);	/* last repeats */
	config_free(c);
}

static void
test_format_age(void **state)
{
	char b[64];

	(void)state;
	deliver_format_age(6 * 86400 + 5, b, sizeof(b));
	assert_string_equal(b, "6 days");
	deliver_format_age(86400, b, sizeof(b));
	assert_string_equal(b, "1 day");
	deliver_format_age(3 * 3600 + 60, b, sizeof(b));
	assert_string_equal(b, "3 hours");
	deliver_format_age(60, b, sizeof(b));
	assert_string_equal(b, "1 minute");
	deliver_format_age(59, b, sizeof(b));
	assert_string_equal(b, "less than a minute");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_try),
		cmocka_unit_test(test_format_age),
	};

	return cmocka_run_group_tests_name("test_deliver", tests, NULL, NULL);
}
