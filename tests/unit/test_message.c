/* test_message.c - header lines, fields, address lists, envelope checks. */
#include "testutil.h"

#include <time.h>

#include "message.h"

/* --- lines ------------------------------------------------------------- */

static const char *
kind_name(enum line_kind k)
{
	switch (k) {
	case LINE_FIELD: return "FIELD";
	case LINE_CONT: return "CONT";
	case LINE_BLANK: return "BLANK";
	case LINE_OTHER: return "OTHER";
	}
	return "?";
}

static void
test_line_kind(void **state)
{
	static const struct {
		const char	*line;
		enum line_kind	 kind;
	} cases[] = {
		{ "Subject: hello\n", LINE_FIELD },
		{ "Subject: hello\r\n", LINE_FIELD },
		{ "Subject: hello", LINE_FIELD },
		{ "Subject:hello\n", LINE_FIELD },
		{ "X-Empty:\n", LINE_FIELD },
		{ "X-Empty:", LINE_FIELD },
		{ "Message-ID: <1@x>\n", LINE_FIELD },
		{ "Subject : obsolete form\n", LINE_FIELD },
		{ "Subject\t: obsolete form\r\n", LINE_FIELD },
		{ "Subject  \t  :x\n", LINE_FIELD },
		{ "X-8bit: J\xc3\xb6rg\n", LINE_FIELD },
		{ " folded part\n", LINE_CONT },
		{ "\tfolded part\r\n", LINE_CONT },
		{ " \n", LINE_CONT },
		{ "\t", LINE_CONT },
		{ "\n", LINE_BLANK },
		{ "\r\n", LINE_BLANK },
		{ "", LINE_BLANK },
		{ "\r", LINE_BLANK },
		{ "Hello world, this is the body\n", LINE_OTHER },
		{ "Hello: world\n", LINE_FIELD },
		{ "NoColonHere\n", LINE_OTHER },
		{ "NoColonHere", LINE_OTHER },
		{ "NoColon\r\n", LINE_OTHER },
		{ ":starts with a colon\n", LINE_OTHER },
		{ "From alice@example.org Mon Jan  1 00:00:00 2024\n",
		    LINE_OTHER },
		{ ">From: quoted\n", LINE_FIELD },
		{ "Two words: value\n", LINE_OTHER },
		{ "Subject x: value\n", LINE_OTHER },
		{ "S\xc3\xbc" "bject: value\n", LINE_OTHER },
		{ "X\x7fY: value\n", LINE_OTHER },
		{ "X\x01Y: value\n", LINE_OTHER },
		{ "--boundary\n", LINE_OTHER },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum line_kind k = msg_line_kind(cases[i].line,
		    strlen(cases[i].line));

		if (k != cases[i].kind)
			fail_msg("'%s': %s, want %s", cases[i].line,
			    kind_name(k), kind_name(cases[i].kind));
	}
}

static void
test_line_kind_respects_len(void **state)
{
	static const char buf[] = "To: a@b\nCc: c@d\n";

	(void)state;
	/* Only len bytes are looked at: "To" alone has no colon. */
	assert_int_equal(msg_line_kind(buf, 2), LINE_OTHER);
	assert_int_equal(msg_line_kind(buf, 3), LINE_FIELD);
	assert_int_equal(msg_line_kind(buf, 8), LINE_FIELD);
	assert_int_equal(msg_line_kind(buf, 0), LINE_BLANK);
	assert_int_equal(msg_line_kind("Subject : x", 8), LINE_OTHER);
	assert_int_equal(msg_line_kind("Subject : x", 9), LINE_FIELD);
	/* A lone CR counts as blank only as the whole line. */
	assert_int_equal(msg_line_kind("\rX: y", 5), LINE_OTHER);
}

/* --- header blocks ----------------------------------------------------- */

static void
check_name(const struct headers *h, size_t i, const char *name)
{
	assert_true(i < h->n);
	assert_int_equal(h->f[i].name_len, strlen(name));
	assert_memory_equal(h->buf + h->f[i].start, name, strlen(name));
}

static void
check_value(const struct headers *h, size_t i, const char *want)
{
	char *v = hdr_value(h, i);

	assert_string_equal(v, want);
	free(v);
}

static void
test_hdr_parse_lf(void **state)
{
	static const char blk[] =
	    "From: Alice <alice@example.org>\n"
	    "To: bob@example.com,\n"
	    " carol@example.com\n"
	    "Subject: Hello\n";
	struct headers h;

	(void)state;
	hdr_parse(&h, blk, strlen(blk));
	assert_ptr_equal(h.buf, blk);
	assert_int_equal(h.len, strlen(blk));
	assert_int_equal(h.n, 3);
	check_name(&h, 0, "From");
	check_name(&h, 1, "To");
	check_name(&h, 2, "Subject");
	/* field 1 covers both of its lines */
	assert_int_equal(h.f[0].start, 0);
	assert_int_equal(h.f[0].end, strlen("From: Alice <alice@example.org>\n"));
	assert_int_equal(h.f[1].start, h.f[0].end);
	assert_int_equal(h.f[2].start, h.f[1].end);
	assert_int_equal(h.f[1].end - h.f[1].start,
	    strlen("To: bob@example.com,\n carol@example.com\n"));
	assert_int_equal(h.f[2].end, strlen(blk));
	check_value(&h, 0, "Alice <alice@example.org>");
	check_value(&h, 1, "bob@example.com, carol@example.com");
	check_value(&h, 2, "Hello");
	hdr_free(&h);
	assert_null(h.f);
	assert_int_equal(h.n, 0);
}

static void
test_hdr_parse_crlf(void **state)
{
	static const char blk[] =
	    "From: Alice <alice@example.org>\r\n"
	    "To: bob@example.com,\r\n"
	    "\tcarol@example.com,\r\n"
	    "   dave@example.com\r\n"
	    "Subject: Hello\r\n";
	struct headers h;

	(void)state;
	hdr_parse(&h, blk, strlen(blk));
	assert_int_equal(h.n, 3);
	check_name(&h, 1, "To");
	/* unfolding drops only the line breaks, the blanks stay */
	check_value(&h, 1, "bob@example.com,\tcarol@example.com,   "
	    "dave@example.com");
	check_value(&h, 2, "Hello");
	assert_int_equal(h.f[2].end, strlen(blk));
	hdr_free(&h);
}

static void
test_hdr_find(void **state)
{
	static const char blk[] =
	    "Received: from a\n"
	    "Received: from b\n"
	    "\tby c\n"
	    "To: x@y\n"
	    "received: from d\n"
	    "Subject: s\n"
	    "Subjects: plural\n";
	struct headers h;

	(void)state;
	hdr_parse(&h, blk, strlen(blk));
	assert_int_equal(h.n, 6);
	assert_int_equal(hdr_find(&h, "Received", 0), 0);
	assert_int_equal(hdr_find(&h, "Received", 1), 1);
	assert_int_equal(hdr_find(&h, "Received", 2), 3);
	assert_int_equal(hdr_find(&h, "Received", 4), -1);
	assert_int_equal(hdr_find(&h, "RECEIVED", 0), 0);
	assert_int_equal(hdr_find(&h, "to", 0), 2);
	assert_int_equal(hdr_find(&h, "tO", 0), 2);
	assert_int_equal(hdr_find(&h, "To", 3), -1);
	/* whole names only, not prefixes */
	assert_int_equal(hdr_find(&h, "Subject", 0), 4);
	assert_int_equal(hdr_find(&h, "subjects", 0), 5);
	assert_int_equal(hdr_find(&h, "Subj", 0), -1);
	assert_int_equal(hdr_find(&h, "Subjectss", 0), -1);
	assert_int_equal(hdr_find(&h, "Cc", 0), -1);
	assert_int_equal(hdr_find(&h, "Received", 99), -1);
	check_value(&h, 1, "from b\tby c");
	check_value(&h, 3, "from d");
	hdr_free(&h);
}

static void
test_hdr_value_edges(void **state)
{
	static const char blk[] =
	    "Subject:   spaced out  \t\n"
	    "X-Empty:\n"
	    "X-Blank:   \n"
	    "Subject : obsolete\n"
	    "X-Colons: a: b: c\n"
	    "X-Fold:\n"
	    " starts on the next line\n"
	    "X-8bit: J\xc3\xb6rg M\xc3\xbcller\r\n"
	    "X-Last: no line ending";
	struct headers h;

	(void)state;
	hdr_parse(&h, blk, strlen(blk));
	assert_int_equal(h.n, 8);
	check_value(&h, 0, "spaced out");
	check_value(&h, 1, "");
	check_value(&h, 2, "");
	check_name(&h, 3, "Subject");
	assert_int_equal(hdr_find(&h, "Subject", 1), 3);
	check_value(&h, 3, "obsolete");
	check_value(&h, 4, "a: b: c");
	check_value(&h, 5, "starts on the next line");
	check_value(&h, 6, "J\xc3\xb6rg M\xc3\xbcller");
	check_value(&h, 7, "no line ending");
	assert_int_equal(h.f[7].end, strlen(blk));
	hdr_free(&h);
}

static void
test_hdr_parse_empty(void **state)
{
	struct headers h;

	(void)state;
	hdr_parse(&h, "", 0);
	assert_int_equal(h.n, 0);
	assert_int_equal(hdr_find(&h, "To", 0), -1);
	hdr_free(&h);
}

/* --- address lists ----------------------------------------------------- */

#define MAXA 4

static const struct {
	const char	*value;
	size_t		 n;
	const char	*addr[MAXA];
} good_lists[] = {
	{ "alice@example.org", 1, { "alice@example.org" } },
	{ "  alice@example.org  ", 1, { "alice@example.org" } },
	{ "john.q.public@mail.example.com", 1,
	    { "john.q.public@mail.example.com" } },
	{ "Alice Example <alice@example.org>", 1, { "alice@example.org" } },
	{ "<alice@example.org>", 1, { "alice@example.org" } },
	{ "Alice<alice@example.org>", 1, { "alice@example.org" } },
	{ "\"Smith, John\" <js@x.org>", 1, { "js@x.org" } },
	{ "\"Joe Q. Public\" <john.q.public@example.com>", 1,
	    { "john.q.public@example.com" } },
	{ "\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>", 1,
	    { "sysservices@example.net" } },
	{ "John Q. Public <jqp@example.com>", 1, { "jqp@example.com" } },
	{ "a@b (Alice)", 1, { "a@b" } },
	{ "(first) a@b", 1, { "a@b" } },
	{ "a@b (Alice (the (real) one))", 1, { "a@b" } },
	{ "a@b (paren \\) inside)", 1, { "a@b" } },
	{ "a@b (it's \"quoted)", 1, { "a@b" } },
	{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 1,
	    { "pete@silly.test" } },
	{ "Team: a@b, c@d;", 2, { "a@b", "c@d" } },
	{ "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	    3, { "c@a.test", "joe@where.test", "jdoe@one.test" } },
	{ "Team: a@b;, c@d", 2, { "a@b", "c@d" } },
	{ "A: a@b;, B: c@d;", 2, { "a@b", "c@d" } },
	{ "\"The Team\": \"Smith, J\" <js@x.org>;", 1, { "js@x.org" } },
	{ "undisclosed-recipients:;", 0, { NULL } },
	{ "Undisclosed recipients:;", 0, { NULL } },
	{ "<>", 0, { NULL } },
	{ "Nobody <>", 0, { NULL } },
	{ "<@relay.example:u@h.example>", 1, { "u@h.example" } },
	{ "<@a.example,@b.example:u@h.example>", 1, { "u@h.example" } },
	{ "Routed <@relay:u@h>, x@y", 2, { "u@h", "x@y" } },
	{ "=?UTF-8?Q?J=C3=B6rg?= <j@x>", 1, { "j@x" } },
	{ "=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>", 1,
	    { "PIRARD@vm1.ulg.ac.be" } },
	{ "=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>", 1,
	    { "joerg@example.de" } },
	{ "J\xc3\xb6rg M\xc3\xbcller <joerg@example.de>", 1,
	    { "joerg@example.de" } },
	{ "\"J\xc3\xb6rg, M\xc3\xbcller\" <joerg@example.de>", 1,
	    { "joerg@example.de" } },
	{ "\"john smith\"@example.com", 1, { "\"john smith\"@example.com" } },
	{ "John <\"john smith\"@example.com>", 1,
	    { "\"john smith\"@example.com" } },
	{ "u@[192.0.2.1]", 1, { "u@[192.0.2.1]" } },
	{ "u@[IPv6:2001:db8::1]", 1, { "u@[IPv6:2001:db8::1]" } },
	{ "a@b,,c@d", 2, { "a@b", "c@d" } },
	{ ", a@b ,", 1, { "a@b" } },
	{ "root", 1, { "root" } },
	{ "root, alice@example.org", 2, { "root", "alice@example.org" } },
	{ "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>", 3,
	    { "mary@x.test", "jdoe@example.org", "one@y.test" } },
	{ "Alice <a@example.org>,\tBob <b@example.org>,  c@example.org", 3,
	    { "a@example.org", "b@example.org", "c@example.org" } },
	{ "foo@bar.example <foo@bar.example>", 1, { "foo@bar.example" } },
	{ "a+tag@example.org", 1, { "a+tag@example.org" } },
	{ "", 0, { NULL } },
	{ "   ", 0, { NULL } },
	{ "(only a comment)", 0, { NULL } },
	{ ",,,", 0, { NULL } },
};

static const struct {
	const char	*value;
	const char	*bad;
} bad_lists[] = {
	{ "\"unclosed <a@b>", "unclosed quoted string" },
	{ "a@b, \"Smith, John <js@x.org>", "unclosed quoted string" },
	{ "Name <a@b", "'<' without '>'" },
	{ "Name <a@b, c@d", "'<' without '>'" },
	{ "a@b (unclosed", "unclosed comment" },
	{ "a@b (nested (unclosed)", "unclosed comment" },
	{ "u@[192.0.2.1", "unclosed domain literal" },
	{ "a b c", "not an address" },
	{ "Alice Example", "not an address" },
	{ "a@b c@d", "not an address" },
	{ "a@", "not an address" },
	{ "@b", "not an address" },
	{ "a@b.", "not an address" },
	{ ".a@b", "not an address" },
	{ "a@b..c", "not an address" },
	{ "a@b>", "not an address" },
	{ "a@b; c@d", "';' outside a group" },
	{ ";", "';' outside a group" },
	{ "<a@b> <c@d>", "text after '>'" },
	{ "<a@b> junk", "text after '>'" },
	{ "a@b)", "stray special character" },
	{ "a\\@b", "stray special character" },
	{ "A: B: c@d;;", "a group inside a group" },
	{ "a@b: c@d;", "':' in the wrong place" },
};

static void
test_addr_parse_good(void **state)
{
	const char *bad;
	struct strvec sv;
	size_t nfail = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(good_lists) / sizeof(good_lists[0]);
	    i++) {
		bool ok = true;

		sv_init(&sv);
		bad = NULL;
		if (addr_parse_list(good_lists[i].value, &sv, &bad) != 0) {
			print_error("'%s' rejected: %s\n", good_lists[i].value,
			    bad ? bad : "(no reason)");
			nfail++;
			sv_free(&sv);
			continue;
		}
		if (sv.n != good_lists[i].n)
			ok = false;
		for (size_t k = 0; ok && k < sv.n; k++)
			if (strcmp(sv.v[k], good_lists[i].addr[k]) != 0)
				ok = false;
		if (!ok) {
			print_error("'%s' gave %zu address(es):\n",
			    good_lists[i].value, sv.n);
			for (size_t k = 0; k < sv.n; k++)
				print_error("  [%s]\n", sv.v[k]);
			nfail++;
		}
		sv_free(&sv);
	}
	if (nfail > 0)
		fail_msg("%zu address lists parsed wrongly", nfail);
}

static void
test_addr_parse_bad(void **state)
{
	const char *bad;
	struct strvec sv;
	size_t nfail = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
		sv_init(&sv);
		bad = NULL;
		if (addr_parse_list(bad_lists[i].value, &sv, &bad) != -1) {
			print_error("'%s' accepted (%zu addresses)\n",
			    bad_lists[i].value, sv.n);
			nfail++;
		} else if (bad == NULL ||
		    strcmp(bad, bad_lists[i].bad) != 0) {
			print_error("'%s': reason '%s', want '%s'\n",
			    bad_lists[i].value, bad ? bad : "(null)",
			    bad_lists[i].bad);
			nfail++;
		}
		sv_free(&sv);
	}
	if (nfail > 0)
		fail_msg("%zu malformed address lists handled wrongly", nfail);
}

static void
test_addr_parse_appends(void **state)
{
	struct strvec sv;
	const char *bad = NULL;

	(void)state;
	sv_init(&sv);
	sv_push(&sv, "already@there");
	assert_int_equal(addr_parse_list("a@b, c@d", &sv, &bad), 0);
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[0], "already@there");
	assert_string_equal(sv.v[1], "a@b");
	assert_string_equal(sv.v[2], "c@d");
	assert_null(sv.v[3]);
	sv_free(&sv);
}

static void
test_addr_parse_folded_header(void **state)
{
	static const char blk[] =
	    "To: Alice Example <alice@example.org>,\r\n"
	    "\t\"Smith, John\" <js@x.org>,\r\n"
	    "  (the boss) boss@example.org,\r\n"
	    " Team: c@example.com,\r\n"
	    "   d@example.com;\r\n"
	    "Cc: undisclosed-recipients:;\r\n";
	struct headers h;
	struct strvec sv;
	const char *bad = NULL;
	char *v;
	long i;

	(void)state;
	hdr_parse(&h, blk, strlen(blk));
	i = hdr_find(&h, "to", 0);
	assert_int_equal(i, 0);
	v = hdr_value(&h, (size_t)i);
	sv_init(&sv);
	assert_int_equal(addr_parse_list(v, &sv, &bad), 0);
	assert_int_equal(sv.n, 5);
	assert_string_equal(sv.v[0], "alice@example.org");
	assert_string_equal(sv.v[1], "js@x.org");
	assert_string_equal(sv.v[2], "boss@example.org");
	assert_string_equal(sv.v[3], "c@example.com");
	assert_string_equal(sv.v[4], "d@example.com");
	free(v);
	v = hdr_value(&h, (size_t)hdr_find(&h, "CC", 0));
	assert_int_equal(addr_parse_list(v, &sv, &bad), 0);
	assert_int_equal(sv.n, 5);
	free(v);
	sv_free(&sv);
	hdr_free(&h);
}

/* --- envelope addresses ------------------------------------------------ */

static void
test_addr_valid_envelope(void **state)
{
	static const char *ok[] = {
		"alice@example.org",
		"a+tag@example.org",
		"root",
		"\"john smith\"@example.com",
		"\"a\\\"b\"@example.com",
		"\"back\\\\slash\"@example.com",
		"u@[192.0.2.1]",
		"first.last@sub.example.co.uk",
	};
	static const struct {
		const char	*addr;
		const char	*why;
	} bad[] = {
		{ "", "is empty" },
		{ "a b@example.org", "has a blank or special character "
		    "outside quotes" },
		{ "<a@example.org>", "has a blank or special character "
		    "outside quotes" },
		{ "a,b@example.org", "has a blank or special character "
		    "outside quotes" },
		{ "a(b)@example.org", "has a blank or special character "
		    "outside quotes" },
		{ "a@b;c", "has a blank or special character outside quotes" },
		{ "a\tb@example.org", "has control characters" },
		{ "a@example.org\r\n", "has control characters" },
		{ "a@exa\x7fmple.org", "has control characters" },
		{ "\"a\tb\"@example.org", "has control characters" },
		{ "\"unclosed@example.org", "has an unclosed quote" },
		{ "\"escaped end\\\"@example.org", "has an unclosed quote" },
		/* a backslash does not smuggle a line break into SMTP */
		{ "\"a\\\r\\\nRCPT TO:<x@evil.example>\"@example.org",
		    "has control characters" },
		{ "\"\\\x01\"@example.org", "has control characters" },
		{ "\"\\\x7f\"@example.org", "has control characters" },
	};
	const char *why;
	char big[300];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		why = NULL;
		if (!addr_valid_envelope(ok[i], &why))
			fail_msg("'%s' refused: %s", ok[i], why);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (addr_valid_envelope(bad[i].addr, &why))
			fail_msg("'%s' accepted", bad[i].addr);
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
	}

	/* non-ASCII: refused, and the reason names SMTPUTF8 */
	why = NULL;
	assert_false(addr_valid_envelope("j\xc3\xb6rg@example.de", &why));
	assert_non_null(why);
	assert_non_null(strstr(why, "SMTPUTF8"));
	why = NULL;
	assert_false(addr_valid_envelope("joerg@b\xc3\xbc\x63her.example",
	    &why));
	assert_non_null(strstr(why, "SMTPUTF8"));
	why = NULL;
	assert_false(addr_valid_envelope("\"\\\xc3\\\xb6\"@example.de", &why));
	assert_non_null(why);
	assert_non_null(strstr(why, "SMTPUTF8"));

	/* 254 bytes is the limit */
	memset(big, 'a', sizeof(big));
	memcpy(big + 254 - strlen("@example.org"), "@example.org",
	    strlen("@example.org"));
	big[254] = '\0';
	assert_int_equal(strlen(big), 254);
	why = NULL;
	if (!addr_valid_envelope(big, &why))
		fail_msg("254 bytes refused: %s", why);
	memset(big, 'a', sizeof(big));
	memcpy(big + 255 - strlen("@example.org"), "@example.org",
	    strlen("@example.org"));
	big[255] = '\0';
	why = NULL;
	assert_false(addr_valid_envelope(big, &why));
	assert_string_equal(why, "is longer than 254 bytes");
}

static void
test_addr_list_contains(void **state)
{
	struct strvec sv;

	(void)state;
	sv_init(&sv);
	assert_false(addr_list_contains(&sv, "a@b"));
	sv_push(&sv, "Alice@Example.ORG");
	sv_push(&sv, "root");
	assert_true(addr_list_contains(&sv, "Alice@Example.ORG"));
	assert_true(addr_list_contains(&sv, "alice@example.org"));
	assert_true(addr_list_contains(&sv, "ALICE@EXAMPLE.ORG"));
	assert_true(addr_list_contains(&sv, "ROOT"));
	assert_false(addr_list_contains(&sv, "bob@example.org"));
	assert_false(addr_list_contains(&sv, "alice@example.or"));
	assert_false(addr_list_contains(&sv, "alice@example.org."));
	assert_false(addr_list_contains(&sv, "roo"));
	assert_false(addr_list_contains(&sv, ""));
	sv_free(&sv);
}

/* addr_list_add keeps what the linear addr_list_contains loop kept: the
 * first spelling of each address, in order, case folded as strcasecmp. */
static void
test_addr_list_add(void **state)
{
	static const char *in[] = {
		"Alice@Example.ORG", "bob@x", "alice@example.org", "root",
		"ROOT", "BOB@X", "carol@x", "alice@example.or", "",
		"alice@example.org.", "Carol@X", "", "\"A B\"@x", "\"a b\"@X",
		"j\xc3\xb6rg@x", "J\xc3\xb6RG@X", "j\xc3\x96rg@x",
	};
	static const char *want[] = {
		"Alice@Example.ORG", "bob@x", "root", "carol@x",
		"alice@example.or", "", "alice@example.org.", "\"A B\"@x",
		"j\xc3\xb6rg@x", "j\xc3\x96rg@x",	/* only ASCII folds */
	};
	struct strvec got, ref;
	struct addr_set seen;
	size_t n = sizeof(in) / sizeof(in[0]);

	(void)state;
	sv_init(&got);
	sv_init(&ref);
	addr_set_init(&seen);
	for (size_t i = 0; i < n; i++) {
		bool fresh = !addr_list_contains(&ref, in[i]);

		if (fresh)
			sv_push(&ref, in[i]);
		assert_int_equal(addr_list_add(&got, &seen, in[i]), fresh);
	}
	assert_int_equal(got.n, sizeof(want) / sizeof(want[0]));
	assert_int_equal(got.n, ref.n);
	for (size_t i = 0; i < got.n; i++) {
		assert_string_equal(got.v[i], want[i]);
		assert_string_equal(got.v[i], ref.v[i]);
	}
	sv_free(&got);
	addr_set_free(&seen);

	/* many, so the set grows several times; every one found after */
	sv_init(&got);
	for (int i = 0; i < 5000; i++) {
		char a[32];

		snprintf(a, sizeof(a), "u%d@Host", i);
		assert_true(addr_list_add(&got, &seen, a));
	}
	for (int i = 4999; i >= 0; i--) {
		char a[32];

		snprintf(a, sizeof(a), "U%d@hOST", i);
		assert_false(addr_list_add(&got, &seen, a));
	}
	assert_int_equal(got.n, 5000);
	assert_string_equal(got.v[0], "u0@Host");
	assert_string_equal(got.v[4999], "u4999@Host");
	sv_free(&got);
	sv_free(&ref);
	addr_set_free(&seen);
}

/* --- Date: ------------------------------------------------------------- */

static void
set_tz(const char *tz)
{
	if (tz == NULL)
		assert_int_equal(unsetenv("TZ"), 0);
	else
		assert_int_equal(setenv("TZ", tz, 1), 0);
	tzset();
}

static void
check_date(time_t t, const char *want)
{
	char buf[64];

	memset(buf, 'x', sizeof(buf));
	msg_format_date(t, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void
test_format_date_utc(void **state)
{
	char small[12];

	(void)state;
	set_tz("UTC");
	check_date(1700000000, "Tue, 14 Nov 2023 22:13:20 +0000");
	check_date(0, "Thu, 1 Jan 1970 00:00:00 +0000");
	check_date(951782400, "Tue, 29 Feb 2000 00:00:00 +0000");
	check_date(1688000000, "Thu, 29 Jun 2023 00:53:20 +0000");

	/* a short buffer gets a terminated prefix, nothing past its end */
	memset(small, '#', sizeof(small));
	msg_format_date(1700000000, small, 10);
	assert_string_equal(small, "Tue, 14 N");
	assert_int_equal(small[10], '#');
	assert_int_equal(small[11], '#');
	set_tz(NULL);
}

static void
test_format_date_offsets(void **state)
{
	(void)state;
	/* POSIX TZ strings need no zoneinfo files. */
	set_tz("IST-5:30");
	check_date(1700000000, "Wed, 15 Nov 2023 03:43:20 +0530");
	set_tz("NST+3:30");
	check_date(1700000000, "Tue, 14 Nov 2023 18:43:20 -0330");
	set_tz("EST+5");
	check_date(0, "Wed, 31 Dec 1969 19:00:00 -0500");
	set_tz(NULL);
}

static void
test_format_date_new_york(void **state)
{
	(void)state;
	if (access("/usr/share/zoneinfo/America/New_York", R_OK) != 0)
		skip();
	set_tz("America/New_York");
	check_date(1700000000, "Tue, 14 Nov 2023 17:13:20 -0500");
	check_date(951782400, "Mon, 28 Feb 2000 19:00:00 -0500");
	/* summer time */
	check_date(1688000000, "Wed, 28 Jun 2023 20:53:20 -0400");
	set_tz(NULL);
}

/* base64 back to bytes (the test's own, for round trips) */
static size_t
unb64(const char *s, size_t n, unsigned char *out)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	    "qrstuvwxyz0123456789+/";
	size_t o = 0;
	unsigned v = 0;
	int bits = 0;

	for (size_t i = 0; i < n && s[i] != '='; i++) {
		v = (v << 6) | (unsigned)(strchr(b64, s[i]) - b64);
		if ((bits += 6) >= 8) {
			out[o++] = (unsigned char)(v >> (bits - 8));
			bits -= 8;
		}
	}
	return o;
}

static void
test_encode_phrase(void **state)
{
	struct strbuf sb;
	/* 30 x "é" (60 bytes): a 45-byte word would split one in two */
	char longname[200] = "";
	unsigned char back[400];
	size_t got = 0;

	(void)state;
	sb_init(&sb);
	assert_false(msg_encode_phrase("Cron Daemon", &sb));
	assert_int_equal(sb.len, 0);
	assert_true(msg_encode_phrase("José Pérez", &sb));
	assert_string_equal(sb.s, "=?UTF-8?B?Sm9zw6kgUMOpcmV6?=");
	sb_free(&sb);

	for (int i = 0; i < 30; i++)
		strcat(longname, "\xc3\xa9");
	sb_init(&sb);
	assert_true(msg_encode_phrase(longname, &sb));
	for (char *w = strtok(sb.s, " "); w != NULL; w = strtok(NULL, " ")) {
		size_t wl = strlen(w), n;

		assert_true(wl <= 75);
		assert_memory_equal(w, "=?UTF-8?B?", 10);
		assert_string_equal(w + wl - 2, "?=");
		n = unb64(w + 10, wl - 12, back + got);
		/* each word whole UTF-8: it starts with no continuation */
		assert_true((back[got] & 0xc0) != 0x80);
		got += n;
	}
	assert_int_equal(got, strlen(longname));
	assert_memory_equal(back, longname, got);
	sb_free(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_kind),
		cmocka_unit_test(test_line_kind_respects_len),
		cmocka_unit_test(test_hdr_parse_lf),
		cmocka_unit_test(test_hdr_parse_crlf),
		cmocka_unit_test(test_hdr_find),
		cmocka_unit_test(test_hdr_value_edges),
		cmocka_unit_test(test_hdr_parse_empty),
		cmocka_unit_test(test_addr_parse_good),
		cmocka_unit_test(test_addr_parse_bad),
		cmocka_unit_test(test_addr_parse_appends),
		cmocka_unit_test(test_addr_parse_folded_header),
		cmocka_unit_test(test_addr_valid_envelope),
		cmocka_unit_test(test_addr_list_contains),
		cmocka_unit_test(test_addr_list_add),
		cmocka_unit_test(test_format_date_utc),
		cmocka_unit_test(test_format_date_offsets),
		cmocka_unit_test(test_format_date_new_york),
		cmocka_unit_test(test_encode_phrase),
	};

	return cmocka_run_group_tests_name("test_message", tests, NULL, NULL);
}
