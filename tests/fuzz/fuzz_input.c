/*
 * fuzz_input.c - message input framing (input.h): the lone-dot rule,
 * SMTP dot-unstuffing, line endings, lines longer than the buffer, and
 * one message after another on the same descriptor (as sendmail -bs
 * reads them).
 *
 * The input: a first byte choosing the mode of each message (two bits
 * each: raw, dot, smtp; up to four messages), then the bytes on the
 * descriptor, where each of the first MAX_RUNS 0xFE bytes stands for
 * LONG_RUN bytes 'x' (so that lines longer than INPUT_BUFSZ cost the
 * fuzzer a few bytes, and the input stays bounded).
 *
 * The pieces input_next returns are checked against a plain line-by-line
 * reading of the same bytes: same content, same end, the same error, and
 * each piece's bol flag true exactly when it starts a line.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "input.h"

#define LONG_RUN	4099
#define MAX_RUNS	32
#define MAX_MSGS	4

/* The bytes on the descriptor: 0xFE expanded. */
static void
expand(const uint8_t *data, size_t size, struct strbuf *out)
{
	char run[LONG_RUN];
	int runs = 0;

	memset(run, 'x', sizeof(run));
	for (size_t i = 0; i < size; i++) {
		if (data[i] == 0xFE && runs < MAX_RUNS) {
			sb_add(out, run, sizeof(run));
			runs++;
		} else
			sb_addc(out, (char)data[i]);
	}
}

static bool
lone_dot(const char *line, size_t n)
{
	return (n == 1 && line[0] == '.') ||
	    (n == 2 && memcmp(line, ".\n", 2) == 0) ||
	    (n == 3 && memcmp(line, ".\r\n", 3) == 0);
}

/*
 * One message read line by line from s at *pos: its content into out;
 * 0 at its end, -1 for an SMTP message cut short by end of file.
 */
static int
reference(const struct strbuf *s, size_t *pos, enum input_mode mode,
    struct strbuf *out)
{
	while (*pos < s->len) {
		const char *line = s->s + *pos;
		const char *nl = memchr(line, '\n', s->len - *pos);
		size_t n = nl != NULL ? (size_t)(nl - line) + 1 : s->len - *pos;

		*pos += n;
		if (mode != INPUT_RAW && lone_dot(line, n))
			return 0;
		if (mode == INPUT_SMTP && line[0] == '.')
			sb_add(out, line + 1, n - 1);
		else
			sb_add(out, line, n);
	}
	return mode == INPUT_SMTP ? -1 : 0;
}

/* The same message through input_next. */
static int
pieces(struct input *in, struct strbuf *out)
{
	struct err e = { 0 };
	const char *p;
	size_t n;
	bool bol, at_line_start = true;
	int r;

	while ((r = input_next(in, &p, &n, &bol, &e)) == 1) {
		FUZZ_CHECK(n >= 1 && n <= INPUT_BUFSZ);
		FUZZ_CHECK(bol == at_line_start);
		sb_add(out, p, n);
		at_line_start = p[n - 1] == '\n';
	}
	FUZZ_CHECK(r == 0 || (r == -1 && e.code == ERR_DATA));
	/* once over, the message stays over */
	FUZZ_CHECK(input_next(in, &p, &n, &bol, &e) == 0);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum input_mode modes[] = { INPUT_RAW, INPUT_DOT,
		INPUT_SMTP, INPUT_SMTP };
	struct input *in;
	struct strbuf s, want, got;
	size_t pos = 0;
	int fd;

	if (size == 0)
		return 0;
	sb_init(&s);
	expand(data + 1, size - 1, &s);
	fd = memfd_create("fuzz_input", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(s.len == 0 ||
	    util_write_all(fd, s.s, s.len) == (ssize_t)s.len);
	FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	in = xmalloc(sizeof(*in));
	input_init(in, fd, INPUT_RAW);
	sb_init(&want);
	sb_init(&got);
	for (int m = 0; m < MAX_MSGS; m++) {
		enum input_mode mode = modes[(data[0] >> (2 * m)) & 3];
		int rw, rg;

		input_restart(in, mode);
		sb_reset(&want);
		sb_reset(&got);
		rw = reference(&s, &pos, mode, &want);
		rg = pieces(in, &got);
		FUZZ_CHECK(rw == rg);
		FUZZ_CHECK(want.len == got.len &&
		    (want.len == 0 || memcmp(want.s, got.s, want.len) == 0));
		if (rg < 0 || pos == s.len)
			break;
	}
	sb_free(&got);
	sb_free(&want);
	free(in);
	close(fd);
	sb_free(&s);
	return 0;
}
