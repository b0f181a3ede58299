/* test_tls.c - OpenSSL's set-up begun ahead (tls_warm_*), the system's CA
 * store built there once and shared, and a client context for an identity
 * after it. */
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
	tls_warm_start(&w, false);
	assert_true(w.running);
	first = w.thread;
	tls_warm_ready(&w);		/* the first context is done */
	assert_true(w.inited);
	tls_warm_start(&w, true);	/* one warm-up a run, not two */
	assert_true(w.running);
	assert_true(pthread_equal(first, w.thread));
	tls_warm_finish(&w);
	assert_false(w.running);
	assert_int_equal(threads(), before);	/* joined, not left running */
	tls_warm_finish(&w);
	assert_false(w.running);
	assert_null(w.system);		/* not asked for */
	tls_warm_ready(NULL);
	tls_warm_finish(NULL);

	assert_int_equal(tls_policy_init(&p, &id, &e), 0);
	assert_non_null(p.ctx);
	assert_string_equal(p.host, "mail.example.org");
	assert_false(p.is_ip);
	assert_true(p.system);		/* the system's CAs still to come */
	tls_policy_system(&p, &w);	/* no store there: loaded here */
	assert_false(p.system);
	tls_policy_free(&p);
	tls_warm_free(&w);
}

/* The objects (certificates) in ctx's store. */
static int
store_count(SSL_CTX *ctx)
{
	return sk_X509_OBJECT_num(X509_STORE_get0_objects(
	    SSL_CTX_get_cert_store(ctx)));
}

/*
 * The system store is built once, in the thread, and every identity that
 * verifies with the system's CAs gets that store, not a load of its own;
 * one with tls-ca or a pin never gets it.
 */
static void
test_system_store_shared(void **state)
{
	struct tls_warm w = { .running = false };
	struct identity sys = { .name = "a", .host = "mail.example.org",
	    .tls = TLS_IMPLICIT };
	struct identity sys2 = { .name = "b", .host = "smtp.example.net",
	    .tls = TLS_STARTTLS };
	struct identity pinned = { .name = "c", .host = "mail.example.org",
	    .tls = TLS_IMPLICIT, .tls_fingerprint = "sha256:00" };
	struct identity plain = { .name = "d", .host = "mail.example.org",
	    .tls = TLS_NONE };
	struct identity own = { .name = "e", .host = "mail.example.org",
	    .tls = TLS_IMPLICIT, .tls_ca = "/nonexistent/ca.pem" };
	struct tls_policy a, b, c;
	struct err e = { ERR_OK, "" };

	(void)state;
	assert_true(tls_wants_system(&sys));
	assert_true(tls_wants_system(&sys2));
	assert_false(tls_wants_system(&pinned));
	assert_false(tls_wants_system(&plain));
	assert_false(tls_wants_system(&own));

	tls_warm_start(&w, true);
	tls_warm_ready(&w);
	assert_int_equal(tls_policy_init(&a, &sys, &e), 0);
	assert_int_equal(tls_policy_init(&b, &sys2, &e), 0);
	assert_int_equal(tls_policy_init(&c, &pinned, &e), 0);
	assert_true(a.system);
	assert_false(c.system);		/* the pin decides */
	tls_warm_finish(&w);
	assert_non_null(w.system);
	tls_policy_system(&a, &w);
	tls_policy_system(&b, &w);
	tls_policy_system(&c, &w);
	assert_ptr_equal(SSL_CTX_get_cert_store(a.ctx), w.system);
	assert_ptr_equal(SSL_CTX_get_cert_store(b.ctx), w.system);
	assert_ptr_not_equal(SSL_CTX_get_cert_store(c.ctx), w.system);
	assert_int_equal(store_count(c.ctx), 0);
	tls_policy_system(&a, &w);	/* once only */
	assert_ptr_equal(SSL_CTX_get_cert_store(a.ctx), w.system);
	tls_policy_free(&a);
	tls_policy_free(&b);
	tls_policy_free(&c);
	tls_warm_free(&w);		/* the contexts' references gone first */
	assert_null(w.system);
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
		cmocka_unit_test(test_system_store_shared),
	};

	return cmocka_run_group_tests_name("test_tls", tests, NULL, NULL);
}
