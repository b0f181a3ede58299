/* test_tls.c - OpenSSL's set-up begun ahead (tls_warm_*), and a client
 * context for an identity after it. */
#include "testutil.h"

#include <dirent.h>

#include "tls.h"

/* The threads of this process (/proc/self/task). */
static int
threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
test_warm_then_context(void **state)
{
	struct tls_warm w = { .running = false };
	struct identity id = { .name = "t", .host = "mail.example.org",
	    .tls = TLS_STARTTLS };
	struct tls_policy p;
	struct err e = { ERR_OK, "" };
	int before = threads();
	pthread_t first;

	(void)state;
	tls_warm_finish(&w);		/* never started: nothing to wait for */
	assert_false(w.running);
	tls_warm_start(&w);
	assert_true(w.running);
	first = w.thread;
	tls_warm_start(&w);		/* one warm-up a run, not two */
	assert_true(w.running);
	assert_true(pthread_equal(first, w.thread));
	tls_warm_finish(&w);
	assert_false(w.running);
	assert_int_equal(threads(), before);	/* joined, not left running */
	tls_warm_finish(&w);
	assert_false(w.running);

	assert_int_equal(tls_policy_init(&p, &id, &e), 0);
	assert_non_null(p.ctx);
	assert_string_equal(p.host, "mail.example.org");
	assert_false(p.is_ip);
	tls_policy_free(&p);
}

/* tls none: no context, so no OpenSSL set-up at all */
static void
test_no_tls_no_context(void **state)
{
	struct identity id = { .name = "t", .host = "192.0.2.1",
	    .tls = TLS_NONE };
	struct tls_policy p;
	struct err e = { ERR_OK, "" };

	(void)state;
	assert_int_equal(tls_policy_init(&p, &id, &e), 0);
	assert_null(p.ctx);
	tls_policy_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_warm_then_context),
		cmocka_unit_test(test_no_tls_no_context),
	};

	return cmocka_run_group_tests_name("test_tls", tests, NULL, NULL);
}
