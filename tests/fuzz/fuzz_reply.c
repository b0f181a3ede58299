/*
 * fuzz_reply.c - SMTP replies from a server (reply.h), the parser the
 * pump and postie's own STARTTLS dialogue read every server byte with.
 * The first input byte picks how the rest is split into feeds (a server
 * may send any split); the rest is what the server sends, read as
 * successive replies until the input or a refusal ends.
 *
 * Checked: the bounds hold (REPLY_LINE_MAX, REPLY_LINES_MAX,
 * REPLY_BYTES_MAX); a done reply is whole CRLF lines of "DDD", "DDD "
 * or "DDD-" with one code 200-599 and only printable ASCII in between,
 * its last line the only one without '-'; a refused one says why; EHLO
 * shaping keeps it well-formed and drops CHUNKING and STARTTLS; the
 * one-line text and the status (reply_status) are terminated and hold
 * no control byte.
 */
#include "fuzz.h"
#include "reply.h"

static void
check_done(const struct reply *r)
{
	size_t pos = 0;
	int lines = 0;

	FUZZ_CHECK(r->len <= REPLY_BYTES_MAX);
	FUZZ_CHECK(r->code >= 200 && r->code <= 599);
	while (pos < r->len) {
		const char *l = r->buf + pos;
		const char *end = memchr(l, '\n', r->len - pos);
		size_t n;

		FUZZ_CHECK(end != NULL && end > l && end[-1] == '\r');
		n = (size_t)(end - l) - 1;
		FUZZ_CHECK(n >= 3 && n <= REPLY_LINE_MAX);
		FUZZ_CHECK(atoi(l) == r->code);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(l[i] >= 0x20 && l[i] < 0x7f);
		pos += n + 2;
		lines++;
		/* only the last line lacks the '-' */
		if (pos < r->len)
			FUZZ_CHECK(n > 3 && l[3] == '-');
		else
			FUZZ_CHECK(n == 3 || l[3] == ' ');
	}
	FUZZ_CHECK(lines == r->lines && lines <= REPLY_LINES_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reply *r = xmalloc(sizeof(*r));
	size_t step, pos = 1;
	char text[300];

	if (size == 0) {
		free(r);
		return 0;
	}
	step = (size_t)data[0] % 17 + 1;	/* 1 byte at a time, or more */
	reply_init(r);
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;
		ssize_t took = reply_feed(r, (const char *)data + pos, n);

		if (took < 0) {
			FUZZ_CHECK(r->error[0] != '\0');
			break;
		}
		FUZZ_CHECK((size_t)took <= n);
		pos += (size_t)took;
		if (!r->done) {
			FUZZ_CHECK((size_t)took == n);
			continue;
		}
		check_done(r);
		reply_text(r, text, sizeof(text));
		FUZZ_CHECK(strlen(text) < sizeof(text));
		for (const char *p = text; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
		/* the status as the journal gets it: terminated, printable,
		 * starting with the code */
		reply_status(r, text, sizeof(text));
		FUZZ_CHECK(strlen(text) < sizeof(text));
		FUZZ_CHECK(strlen(text) >= 3 && atoi(text) == r->code);
		for (const char *p = text; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
		if (r->code == 250) {
			reply_shape_ehlo(r);
			check_done(r);
			FUZZ_CHECK(!reply_has_keyword(r, "CHUNKING"));
			FUZZ_CHECK(!reply_has_keyword(r, "STARTTLS"));
		}
		reply_init(r);
	}
	free(r);
	return 0;
}
