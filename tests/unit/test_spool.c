/* test_spool.c - accepting a message: headers, envelope, refusals. */
#include "testutil.h"

#include <dirent.h>

#include "spool.h"

struct fixture {
	char		*dir;
	struct config	*cfg;
	struct queue	 q;
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct err e;
	char *text;

	f->dir = tu_tmpdir();
	text = xasprintf("queue %s/queue\nmax-size 2k\n"
	    "identity work\n  from *@corp.example.com\n  host smtp.corp\n"
	    "  force-sender me@corp.example.com\n"
	    "identity home\n  default\n  host smtp.home\n", f->dir);
	f->cfg = config_parse_string(text, "test.conf", &e);
	free(text);
	assert_non_null(f->cfg);
	assert_int_equal(queue_open(&f->q, f->cfg->queue, true, &e), 0);
	setenv("USER", "tester", 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	queue_close(&f->q);
	config_free(f->cfg);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static size_t
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Spool len bytes of text; on success return the stored message and
 * fill env. */
static char *
spool_len(struct fixture *f, const char *text, size_t len,
    struct spool_opts *o, struct envelope *env, struct err *e)
{
	struct input *in = xmalloc(sizeof(*in));
	struct spool_result res;
	int p[2];
	char *path, *out = NULL;
	FILE *fp;
	long sz;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, len), (ssize_t)len);
	close(p[1]);
	input_init(in, p[0], INPUT_DOT);
	if (spool_message(f->cfg, &f->q, in, o, &res, e) < 0) {
		close(p[0]);
		free(in);
		return NULL;
	}
	close(p[0]);
	free(in);
	assert_int_equal(queue_read_envelope(&f->q, res.id, env, e), 0);
	path = xasprintf("%s/%s", f->q.msg, res.id);
	fp = fopen(path, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	sz = ftell(fp);
	out = xcalloc(1, (size_t)sz + 1);
	fseek(fp, (long)env->offset, SEEK_SET);
	assert_int_equal(fread(out, 1, (size_t)sz - env->offset, fp),
	    (size_t)sz - env->offset);
	fclose(fp);
	unlink(path);
	free(path);
	assert_int_equal(res.size, (uint64_t)sz - env->offset);
	spool_result_free(&res);
	return out;
}

static char *
spool(struct fixture *f, const char *text, struct spool_opts *o,
    struct envelope *env, struct err *e)
{
	return spool_len(f, text, strlen(text), o, env, e);
}

static void
opts_rcpt(struct spool_opts *o, const char *r)
{
	sv_push(&o->rcpts, r);
}

static void
test_complete_headers_kept_exactly(void **state)
{
	struct fixture *f = *state;
	const char *msg = "From: Alice <alice@example.org>\r\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <x@y>\r\nSubject: 8-bit \xc3\xa9\r\n\r\n"
	    "body with bare LF\nand CRLF\r\n";
	struct spool_opts o;
	struct envelope env;
	struct err e;
	char *out;

	(void)state;
	spool_opts_init(&o);
	opts_rcpt(&o, "bob@example.com");
	out = spool(f, msg, &o, &env, &e);
	assert_non_null(out);
	assert_string_equal(out, msg);
	assert_string_equal(env.sender, "alice@example.org");
	assert_string_equal(env.identity, "home");	/* the default */
	assert_int_equal(env.rcpts.n, 1);
	free(out);
	envelope_free(&env);
	spool_opts_free(&o);
}

static void
test_missing_fields_added_in_style(void **state)
{
	struct fixture *f = *state;
	struct spool_opts o;
	struct envelope env;
	struct err e;
	char *out;

	spool_opts_init(&o);
	opts_rcpt(&o, "bob@example.com");
	o.sender = "me@example.org";
	o.fullname = "Smith, John";
	out = spool(f, "Subject: hi\r\n\r\nbody\r\n", &o, &env, &e);
	assert_non_null(out);
	assert_true(strncmp(out, "Subject: hi\r\nDate: ", 19) == 0);
	assert_non_null(strstr(out, "\r\nMessage-ID: <"));
	assert_non_null(strstr(out,
	    "\r\nFrom: \"Smith, John\" <me@example.org>\r\n\r\nbody\r\n"));
	assert_null(strstr(out, "\n\n"));	/* no bare LF was added */
	free(out);
	envelope_free(&env);
	spool_opts_free(&o);
	(void)state;
}

static void
test_bcc_removed_recipients_kept(void **state)
{
	struct fixture *f = *state;
	const char *msg = "To: a@example.com\nBcc: hidden@example.com,\n"
	    " also@example.com\nCc: \"Smith, J\" <c@example.com>\n"
	    "Subject: s\nFrom: x@example.org\n\nb\n";
	struct spool_opts o;
	struct envelope env;
	struct err e;
	char *out;

	spool_opts_init(&o);
	o.extract = true;
	opts_rcpt(&o, "arg@example.com");
	opts_rcpt(&o, "A@example.com");
	out = spool(f, msg, &o, &env, &e);
	assert_non_null(out);
	assert_null(strstr(out, "Bcc"));
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "To: a@example.com\nCc: \"Smith, J\""));
	assert_int_equal(env.rcpts.n, 5);
	assert_string_equal(env.rcpts.v[0], "arg@example.com");
	assert_string_equal(env.rcpts.v[1], "A@example.com");
	assert_string_equal(env.rcpts.v[2], "c@example.com");
	assert_string_equal(env.rcpts.v[3], "hidden@example.com");
	assert_string_equal(env.rcpts.v[4], "also@example.com");
	free(out);
	envelope_free(&env);
	spool_opts_free(&o);
	(void)state;
}

static void
test_resent_headers_win(void **state)
{
	struct fixture *f = *state;
	const char *msg = "To: orig@example.com\nFrom: x@example.org\n"
	    "Resent-To: new@example.com\nResent-Bcc: rb@example.com\n\nb\n";
	struct spool_opts o;
	struct envelope env;
	struct err e;
	char *out;

	spool_opts_init(&o);
	o.extract = true;
	out = spool(f, msg, &o, &env, &e);
	assert_non_null(out);
	assert_int_equal(env.rcpts.n, 2);
	assert_string_equal(env.rcpts.v[0], "new@example.com");
	assert_string_equal(env.rcpts.v[1], "rb@example.com");
	assert_null(strstr(out, "Resent-Bcc"));
	assert_non_null(strstr(out, "To: orig@example.com\n"));
	free(out);
	envelope_free(&env);
	spool_opts_free(&o);
	(void)state;
}

static void
test_sender_rules(void **state)
{
	struct fixture *f = *state;
	struct spool_opts o;
	struct envelope env;
	struct err e;
	char *out, *expect;

	/* force-sender of the matching identity rewrites the envelope */
	spool_opts_init(&o);
	opts_rcpt(&o, "r@example.com");
	out = spool(f, "From: Boss <BOSS@corp.example.com>\n\nx\n", &o, &env,
	    &e);
	assert_non_null(out);
	assert_string_equal(env.sender, "me@corp.example.com");
	assert_string_equal(env.identity, "work");
	free(out);
	envelope_free(&env);

	/* no -f, no From: -> $USER@hostname, and From: is added */
	out = spool(f, "Subject: x\n\nx\n", &o, &env, &e);
	assert_non_null(out);
	expect = xasprintf("tester@%s", util_hostname());
	assert_string_equal(env.sender, expect);
	free(expect);
	expect = xasprintf("\nFrom: tester@%s\n", util_hostname());
	assert_non_null(strstr(out, expect));
	free(expect);
	free(out);
	envelope_free(&env);

	/* -f <> is the null sender; -f root is qualified */
	o.sender = "<>";
	out = spool(f, "Subject: x\n\nx\n", &o, &env, &e);
	assert_non_null(out);
	assert_string_equal(env.sender, "");
	free(out);
	envelope_free(&env);
	o.sender = "root";
	out = spool(f, "Subject: x\n\nx\n", &o, &env, &e);
	assert_non_null(out);
	expect = xasprintf("root@%s", util_hostname());
	assert_string_equal(env.sender, expect);
	free(expect);
	free(out);
	envelope_free(&env);
	spool_opts_free(&o);
	(void)state;
}

static void
test_body_without_header_section(void **state)
{
	struct fixture *f = *state;
	struct spool_opts o;
	struct envelope env;
	struct err e;
	char *out, *body;

	spool_opts_init(&o);
	opts_rcpt(&o, "root");
	o.sender = "a@example.org";
	out = spool(f, "From a@b Mon Jan  1 00:00:00 2024\nhello world\n"
	    "Second: line\n", &o, &env, &e);
	assert_non_null(out);
	assert_null(strstr(out, "From a@b"));		/* mbox line dropped */
	body = strstr(out, "\n\nhello world\nSecond: line\n");
	assert_non_null(body);
	assert_true(strncmp(out, "Date: ", 6) == 0);
	assert_string_equal(env.rcpts.v[0], "root");	/* local recipient */
	free(out);
	envelope_free(&env);
	spool_opts_free(&o);
	(void)state;
}

static void
test_refusals_leave_nothing(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *msg;
		const char *rcpt;
		const char *sender;
		const char *error;
	} cases[] = {
		{ "Subject: a\0b\n\nx\n", "r@example.com", NULL,
		    "the message header has a NUL byte: refusing it" },
		{ "Subject: x\n\nx\n", NULL, NULL,
		    "no recipients: give them as arguments, or use -t to read "
		    "To:, Cc: and Bcc:" },
		{ "Subject: x\n\nx\n", "j\xc3\xb6rg@example.com", NULL,
		    "recipient 'j\xc3\xb6rg@example.com' has a non-ASCII "
		    "local part (SMTPUTF8 is not supported, and a local part "
		    "has no ASCII form: use an ASCII address)" },
		{ "Subject: x\n\nx\n", "r@b\xc3\xbc" "cher.example", NULL,
		    "recipient 'r@b\xc3\xbc" "cher.example' has a non-ASCII "
		    "domain (SMTPUTF8 is not supported: write the domain in "
		    "its ASCII xn-- form)" },
		{ "Subject: x\n\nx\n", "r@example.com", "s\xc3\xa9@example.com",
		    "sender 's\xc3\xa9@example.com' has a non-ASCII local "
		    "part (SMTPUTF8 is not supported, and a local part has no "
		    "ASCII form: use an ASCII address)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct spool_opts o;
		struct envelope env;
		struct err e = { 0 };
		size_t len;

		spool_opts_init(&o);
		if (cases[i].rcpt)
			opts_rcpt(&o, cases[i].rcpt);
		o.sender = cases[i].sender;
		/* the first case has a NUL: its real length, not strlen */
		len = i == 0 ? 16 : strlen(cases[i].msg);
		assert_null(spool_len(f, cases[i].msg, len, &o, &env, &e));
		assert_int_equal(e.code, ERR_DATA);
		assert_string_equal(e.msg, cases[i].error);
		assert_int_equal(count_files(f->q.msg), 0);
		assert_int_equal(count_files(f->q.tmp), 0);
		spool_opts_free(&o);
	}
	(void)state;
}

static void
test_max_size(void **state)
{
	struct fixture *f = *state;
	struct spool_opts o;
	struct envelope env;
	struct err e = { 0 };
	char *big = xmalloc(4096), *out;

	spool_opts_init(&o);
	opts_rcpt(&o, "r@example.com");
	o.sender = "a@example.org";
	memset(big, 'x', 4095);
	big[4095] = '\0';
	memcpy(big, "Subject: x\n\n", 12);
	assert_null(spool(f, big, &o, &env, &e));
	assert_int_equal(e.code, ERR_DATA);
	assert_string_equal(e.msg, "the message is larger than max-size "
	    "(2048 bytes): refusing it");
	assert_int_equal(count_files(f->q.msg), 0);
	assert_int_equal(count_files(f->q.tmp), 0);
	/* just under the limit (with the added headers) is fine */
	big[1500] = '\0';
	out = spool(f, big, &o, &env, &e);
	assert_non_null(out);
	free(out);
	envelope_free(&env);
	free(big);
	spool_opts_free(&o);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_complete_headers_kept_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_missing_fields_added_in_style, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bcc_removed_recipients_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resent_headers_win,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender_rules, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_body_without_header_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_leave_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_size, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("test_spool", tests, NULL, NULL);
}
