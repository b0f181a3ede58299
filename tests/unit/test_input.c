/* test_input.c - message input: lone dots, SMTP unstuffing, long lines. */
#include "testutil.h"

#include <sys/wait.h>

#include "input.h"
#include "util.h"

/* A pipe already holding text, closed for writing. */
static int
feed(const char *text, size_t len)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, len), (ssize_t)len);
	close(p[1]);
	return p[0];
}

/* Read all pieces; joined with '|' between pieces. */
static char *
read_all(const char *text, enum input_mode mode, int *rc)
{
	struct input *in = xmalloc(sizeof(*in));
	struct strbuf sb;
	const char *p;
	size_t n;
	bool bol;
	int fd = feed(text, strlen(text)), r;

	sb_init(&sb);
	sb_add(&sb, "", 0);
	input_init(in, fd, mode);
	while ((r = input_next(in, &p, &n, &bol, NULL)) == 1) {
		sb_add(&sb, p, n);
		sb_addc(&sb, '|');
	}
	*rc = r;
	close(fd);
	free(in);
	return sb_steal(&sb);
}

static void
test_modes(void **state)
{
	static const struct {
		const char *in;
		enum input_mode mode;
		const char *out;
		int rc;
	} cases[] = {
		{ "a\nb\n", INPUT_RAW, "a\n|b\n|", 0 },
		{ "a\n.\nb\n", INPUT_RAW, "a\n|.\n|b\n|", 0 },
		{ "a\n.\nb\n", INPUT_DOT, "a\n|", 0 },
		{ "a\r\n.\r\nb\r\n", INPUT_DOT, "a\r\n|", 0 },
		{ "a\n.", INPUT_DOT, "a\n|", 0 },
		{ "a\n..\n.x\n", INPUT_DOT, "a\n|..\n|.x\n|", 0 },
		{ "no newline", INPUT_DOT, "no newline|", 0 },
		{ "a\r\n..b\r\n.\r\nnext", INPUT_SMTP, "a\r\n|.b\r\n|", 0 },
		{ "a\r\nb\r\n", INPUT_SMTP, "a\r\n|b\r\n|", -1 },
		{ "", INPUT_DOT, "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;
		char *got = read_all(cases[i].in, cases[i].mode, &rc);

		assert_string_equal(got, cases[i].out);
		assert_int_equal(rc, cases[i].rc);
		free(got);
	}
}

static void
test_long_line_in_pieces(void **state)
{
	size_t len = INPUT_BUFSZ * 2 + 100;
	char *big = xmalloc(len + 4);
	struct input *in = xmalloc(sizeof(*in));
	const char *p;
	size_t n, total = 0, pieces = 0, bols = 0;
	bool bol;
	int fds[2], r;

	(void)state;
	memset(big, 'x', len);
	memcpy(big + len, "\n.\n", 3);
	assert_int_equal(pipe(fds), 0);
	if (fork() == 0) {
		close(fds[0]);
		(void)!write(fds[1], big, len + 3);
		free(in);
		free(big);
		_exit(0);
	}
	close(fds[1]);
	input_init(in, fds[0], INPUT_DOT);
	while ((r = input_next(in, &p, &n, &bol, NULL)) == 1) {
		assert_true(n <= INPUT_BUFSZ);
		total += n;
		pieces++;
		bols += bol;
	}
	assert_int_equal(r, 0);
	assert_int_equal(total, len + 1);	/* the line and its LF */
	assert_true(pieces >= 3);
	assert_int_equal(bols, 1);
	close(fds[0]);
	wait(NULL);
	free(in);
	free(big);
}

static void
test_restart_after_data(void **state)
{
	const char *text = "DATA-LINE\r\n.\r\nQUIT\r\n";
	struct input *in = xmalloc(sizeof(*in));
	const char *p;
	size_t n;
	bool bol;
	int fd = feed(text, strlen(text));

	(void)state;
	input_init(in, fd, INPUT_SMTP);
	assert_int_equal(input_next(in, &p, &n, &bol, NULL), 1);
	assert_int_equal(input_next(in, &p, &n, &bol, NULL), 0);
	input_restart(in, INPUT_RAW);
	assert_int_equal(input_next(in, &p, &n, &bol, NULL), 1);
	assert_int_equal(n, 6);
	assert_memory_equal(p, "QUIT\r\n", 6);
	assert_int_equal(input_next(in, &p, &n, &bol, NULL), 0);
	close(fd);
	free(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_long_line_in_pieces),
		cmocka_unit_test(test_restart_after_data),
	};

	return cmocka_run_group_tests_name("test_input", tests, NULL, NULL);
}
