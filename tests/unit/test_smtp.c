/* test_smtp.c - outcome classification and the CRLF conversion of the
 * message stream. */
#include "testutil.h"

#include "smtp.h"

/*
 * Convert in[0..n) with smtp_crlf into a buffer filled with '#' and
 * check the result: exactly want, of exactly its length, and nothing
 * written past it.
 */
static void
crlf_is(const char *in, size_t n, bool *cr, const char *want, bool cr_after)
{
	char out[160];
	size_t wlen = strlen(want), got;

	assert_true(2 * n < sizeof(out));
	memset(out, '#', sizeof(out));
	got = smtp_crlf(in, n, out, cr);
	assert_int_equal(got, wlen);
	assert_memory_equal(out, want, wlen);
	assert_int_equal(out[got], '#');
	assert_int_equal(*cr, cr_after);
}

static void
test_classify(void **state)
{
	static const struct {
		bool complete;
		int mail, rcpt, msg;
		enum smtp_outcome out;
	} cases[] = {
		{ true, 250, 250, 250, SMTP_OK },
		{ false, 250, 250, 250, SMTP_DEFER },	/* not finished */
		{ true, 250, 550, 0, SMTP_FAIL },
		{ true, 250, 451, 0, SMTP_DEFER },
		{ true, 250, 250, 554, SMTP_FAIL },	/* 5xx after DATA */
		{ false, 250, 250, 554, SMTP_FAIL },
		{ true, 250, 250, 452, SMTP_DEFER },
		{ false, 250, 250, 0, SMTP_DEFER },	/* dropped after RCPT */
		{ false, 553, 0, 0, SMTP_FAIL },	/* MAIL refused */
		{ false, 451, 0, 0, SMTP_DEFER },
		{ false, 0, 0, 0, SMTP_DEFER },		/* never connected */
		{ true, 250, 0, 0, SMTP_DEFER },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(smtp_classify(cases[i].complete,
		    cases[i].mail, cases[i].rcpt, cases[i].msg), cases[i].out);
}

static void
test_crlf(void **state)
{
	char lfs[64], crlfs[129];
	bool cr = false;

	(void)state;
	crlf_is("a\nb\r\nc", 6, &cr, "a\r\nb\r\nc", false);
	/* a CR at the end of one chunk and its LF at the start of the next */
	cr = false;
	crlf_is("x\r", 2, &cr, "x\r", true);
	crlf_is("\ny\n", 3, &cr, "\ny\r\n", false);
	/* a bare CR stays as it is */
	cr = false;
	crlf_is("a\rb", 3, &cr, "a\rb", false);
	/* LF at the start, LF after LF, nothing at all */
	crlf_is("\n\n", 2, &cr, "\r\n\r\n", false);
	crlf_is("", 0, &cr, "", false);
	/* the worst case the header promises room for: twice the input */
	memset(lfs, '\n', sizeof(lfs));
	for (size_t i = 0; i < sizeof(lfs); i++)
		memcpy(crlfs + 2 * i, "\r\n", 2);
	crlfs[sizeof(crlfs) - 1] = '\0';
	crlf_is(lfs, sizeof(lfs), &cr, crlfs, false);
}

/* smtp_wire_size of data at offset 5 of a temporary file */
static int
wire_of(const char *data, size_t n, uint64_t size, uint64_t *out)
{
	char path[] = "/tmp/test_smtp.XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "ENV\n\n", 5), 5);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	rc = smtp_wire_size(fd, 5, size, out);
	close(fd);
	return rc;
}

static uint64_t
wire(const char *data, size_t n)
{
	uint64_t out = 0;

	assert_int_equal(wire_of(data, n, n, &out), 0);
	return out;
}

/* What message_cb sends for data: smtp_crlf in 4 KiB chunks, then CR LF
 * if the last byte is not a LF. */
static uint64_t
sent(const char *data, size_t n)
{
	static char out[2 * 4096];
	bool cr = false;
	uint64_t total = 0;

	for (size_t i = 0; i < n; i += 4096)
		total += smtp_crlf(data + i, n - i < 4096 ? n - i : 4096, out, &cr);
	return total + (n > 0 && data[n - 1] != '\n' ? 2 : 0);
}

static void
test_wire_size(void **state)
{
	static char big[3 * 65536 + 10];
	uint64_t out;

	(void)state;
	assert_int_equal(wire("", 0), 0);
	assert_int_equal(wire("a\nb\n", 4), 6);
	assert_int_equal(wire("a\r\nb\r\n", 6), 6);
	assert_int_equal(wire("a\nb", 3), 6);		/* the last line ended */
	assert_int_equal(wire("a\rb\n", 4), 5);	/* a bare CR stays */
	assert_int_equal(wire("\n\n\n", 3), 6);
	/* a CR at the end of one read, its LF at the start of the next */
	memset(big, 'x', sizeof(big));
	big[65535] = '\r';
	big[65536] = '\n';
	big[2 * 65536] = '\n';			/* a bare LF first in a read */
	big[sizeof(big) - 1] = '\n';
	assert_int_equal(wire(big, sizeof(big)), sizeof(big) + 2);
	/* what the message callback really sends, for mixed line ends */
	srand(7);
	for (int t = 0; t < 50; t++) {
		size_t n = (size_t)rand() % sizeof(big);

		for (size_t i = 0; i < n; i++)
			big[i] = "xx\r\n"[rand() % 4];
		assert_int_equal(wire(big, n), sent(big, n));
	}
	/* a file shorter than its envelope says */
	assert_int_equal(wire_of("abc", 3, 10, &out), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_wire_size),
	};

	return cmocka_run_group_tests_name("test_smtp", tests, NULL, NULL);
}
