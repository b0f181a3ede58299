/* test_auth.c - AUTH mechanisms, EHLO offers, OAuth2 error challenges. */
#include "testutil.h"

#include "auth.h"
#include "reply.h"

static struct reply *
ehlo(const char *s)
{
	static struct reply r;

	reply_init(&r);
	assert_int_equal(reply_feed(&r, s, strlen(s)), (ssize_t)strlen(s));
	assert_true(r.done);
	return &r;
}

/* Decode a base64 response back to its bytes (for the checks). */
static char *
decoded(const char *b64, size_t *n)
{
	char *out = (char *)auth_b64_decode(b64, strlen(b64), n);

	assert_non_null(out);
	return out;
}

static void
test_offer_parsed(void **state)
{
	struct auth_offer o;

	(void)state;
	auth_parse_offer(ehlo("250-mx.test\r\n250-PIPELINING\r\n"
	    "250-AUTH PLAIN LOGIN GSSAPI xoauth2\r\n250 8BITMIME\r\n"), &o);
	assert_int_equal(o.mask, (1u << AUTH_PLAIN) | (1u << AUTH_LOGIN) |
	    (1u << AUTH_XOAUTH2));
	assert_string_equal(o.names, "PLAIN LOGIN GSSAPI xoauth2");
	/* the old AUTH= form adds to it, without repeating a name */
	auth_parse_offer(ehlo("250-mx\r\n250-AUTH=LOGIN PLAIN\r\n"
	    "250 AUTH CRAM-MD5 LOGIN\r\n"), &o);
	assert_int_equal(o.mask, (1u << AUTH_PLAIN) | (1u << AUTH_LOGIN) |
	    (1u << AUTH_CRAM_MD5));
	assert_string_equal(o.names, "LOGIN PLAIN CRAM-MD5");
	/* the first line names the server, never a keyword */
	auth_parse_offer(ehlo("250-AUTH PLAIN\r\n250 SIZE\r\n"), &o);
	assert_int_equal(o.mask, 0);
	assert_string_equal(o.names, "");
	/* a keyword that starts like AUTH is not it */
	auth_parse_offer(ehlo("250-mx\r\n250 AUTHX PLAIN\r\n"), &o);
	assert_int_equal(o.mask, 0);
}

static void
test_choice(void **state)
{
	struct auth_offer o;
	int xo[] = { AUTH_XOAUTH2 };
	int order[] = { AUTH_OAUTHBEARER, AUTH_LOGIN, AUTH_PLAIN };
	char text[128];

	(void)state;
	auth_parse_offer(ehlo("250-mx\r\n250 AUTH CRAM-MD5 LOGIN PLAIN "
	    "XOAUTH2 OAUTHBEARER\r\n"), &o);
	/* without `auth`: PLAIN first, never an OAuth2 mechanism */
	assert_int_equal(auth_choose(NULL, 0, &o), AUTH_PLAIN);
	auth_parse_offer(ehlo("250-mx\r\n250 AUTH XOAUTH2 OAUTHBEARER "
	    "CRAM-MD5\r\n"), &o);
	assert_int_equal(auth_choose(NULL, 0, &o), AUTH_CRAM_MD5);
	auth_parse_offer(ehlo("250-mx\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n"),
	    &o);
	assert_int_equal(auth_choose(NULL, 0, &o), -1);
	/* `auth` orders: its first the server offers */
	assert_int_equal(auth_choose(order, 3, &o), AUTH_OAUTHBEARER);
	assert_int_equal(auth_choose(xo, 1, &o), AUTH_XOAUTH2);
	auth_parse_offer(ehlo("250-mx\r\n250 AUTH PLAIN LOGIN\r\n"), &o);
	assert_int_equal(auth_choose(order, 3, &o), AUTH_LOGIN);
	assert_int_equal(auth_choose(xo, 1, &o), -1);
	auth_allowed_text(NULL, 0, text, sizeof(text));
	assert_string_equal(text, "PLAIN LOGIN CRAM-MD5");
	auth_allowed_text(order, 3, text, sizeof(text));
	assert_string_equal(text, "OAUTHBEARER LOGIN PLAIN");
	assert_int_equal(auth_mech_parse("xoauth2"), AUTH_XOAUTH2);
	assert_int_equal(auth_mech_parse("Cram-Md5"), AUTH_CRAM_MD5);
	assert_int_equal(auth_mech_parse("SCRAM-SHA-1"), -1);
}

static void
test_plain_login(void **state)
{
	char *r, *d;
	size_t n;

	(void)state;
	r = auth_response(AUTH_PLAIN, 0, "me", "pw", "mx", 587, NULL, 0);
	assert_string_equal(r, "AG1lAHB3");	/* "\0me\0pw" */
	auth_wipe(r);
	assert_null(auth_response(AUTH_PLAIN, 1, "me", "pw", "mx", 587, NULL,
	    0));
	r = auth_response(AUTH_LOGIN, 0, "me", "pw", "mx", 587, NULL, 0);
	d = decoded(r, &n);
	assert_string_equal(d, "me");
	free(d);
	auth_wipe(r);
	r = auth_response(AUTH_LOGIN, 1, "me", "pw", "mx", 587, NULL, 0);
	d = decoded(r, &n);
	assert_string_equal(d, "pw");
	free(d);
	auth_wipe(r);
	assert_null(auth_response(AUTH_LOGIN, 2, "me", "pw", "mx", 587, NULL,
	    0));
}

/* RFC 2195's own example. */
static void
test_cram_md5(void **state)
{
	const char ch[] = "<1896.697170952@postoffice.reston.mci.net>";
	char *r, *d;
	size_t n;

	(void)state;
	r = auth_response(AUTH_CRAM_MD5, 0, "tim", "tanstaaftanstaaf", "mx",
	    25, (const unsigned char *)ch, strlen(ch));
	assert_string_equal(r, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzO"
	    "Dkw");
	d = decoded(r, &n);
	assert_string_equal(d, "tim b913a602c7eda7a495b4e6e7334d3890");
	free(d);
	auth_wipe(r);
	/* no challenge, no answer */
	assert_null(auth_response(AUTH_CRAM_MD5, 0, "tim", "x", "mx", 25,
	    NULL, 0));
}

static void
test_oauth2_framing(void **state)
{
	char *r, *d;
	size_t n;

	(void)state;
	r = auth_response(AUTH_XOAUTH2, 0, "me@example.com", "TOKEN", "mx",
	    587, NULL, 0);
	d = decoded(r, &n);
	assert_int_equal(n, strlen("user=me@example.com\001auth=Bearer "
	    "TOKEN\001\001"));
	assert_memory_equal(d, "user=me@example.com\001auth=Bearer TOKEN"
	    "\001\001", n);
	free(d);
	auth_wipe(r);
	/* RFC 7628: the GS2 header with the user escaped, host, port */
	r = auth_response(AUTH_OAUTHBEARER, 0, "a,b=c@x", "TOKEN",
	    "smtp.test", 465, NULL, 0);
	d = decoded(r, &n);
	assert_string_equal(d, "n,a=a=2Cb=3Dc@x,\001host=smtp.test\001"
	    "port=465\001auth=Bearer TOKEN\001\001");
	free(d);
	auth_wipe(r);
}

static void
test_inline_or_after_334(void **state)
{
	(void)state;
	/* "AUTH PLAIN " + response + CRLF within 512 octets: on the line */
	assert_true(auth_inline(AUTH_PLAIN, 512 - 13));
	assert_false(auth_inline(AUTH_PLAIN, 512 - 12));
	assert_true(auth_inline(AUTH_OAUTHBEARER, 100));
	assert_false(auth_inline(AUTH_OAUTHBEARER, 8192));
	/* XOAUTH2 always after the 334, LOGIN and CRAM-MD5 have no
	 * initial response */
	assert_false(auth_inline(AUTH_XOAUTH2, 10));
	assert_false(auth_inline(AUTH_LOGIN, 4));
	assert_false(auth_inline(AUTH_CRAM_MD5, 4));
}

static void
test_base64(void **state)
{
	size_t n = 99;
	unsigned char *d;

	(void)state;
	d = auth_b64_decode("", 0, &n);
	assert_non_null(d);
	assert_int_equal(n, 0);
	free(d);
	d = auth_b64_decode("YQ==", 4, &n);
	assert_int_equal(n, 1);
	assert_int_equal(d[0], 'a');
	free(d);
	d = auth_b64_decode("YWI=", 4, &n);
	assert_int_equal(n, 2);
	free(d);
	assert_null(auth_b64_decode("YQ=", 3, &n));
	assert_null(auth_b64_decode("Y===", 4, &n));
	assert_null(auth_b64_decode("YQ=a", 4, &n));
	assert_null(auth_b64_decode("Y Q=", 4, &n));
	assert_null(auth_b64_decode("=YQ=", 4, &n));
}

static void
test_oauth_status(void **state)
{
	char st[32];
	const char ms[] = "{\"status\":\"401\",\"schemes\":\"bearer\","
	    "\"scope\":\"https://mail.google.com/\"}";
	const char rfc[] = "{ \"status\" : \"invalid_token\" }";
	const char evil[] = "{\"status\":\"a\x1b[2Jb\"}";
	const char esc[] = "{\"status\":\"\\u001b]0;x\\u0007\\\"\\u0034"
	    "0\\\\1\\/\\n\\u12\"}";

	(void)state;
	assert_true(auth_oauth_status((const unsigned char *)ms,
	    strlen(ms), st, sizeof(st)));
	assert_string_equal(st, "401");
	assert_true(auth_oauth_status((const unsigned char *)rfc,
	    strlen(rfc), st, sizeof(st)));
	assert_string_equal(st, "invalid_token");
	/* a server's bytes: printable only, bounded */
	assert_true(auth_oauth_status((const unsigned char *)evil,
	    strlen(evil), st, sizeof(st)));
	assert_string_equal(st, "a?[2Jb");
	/* JSON escapes decoded, then held to printable ASCII */
	assert_true(auth_oauth_status((const unsigned char *)esc,
	    strlen(esc), st, sizeof(st)));
	assert_string_equal(st, "?]0;x?\"40\\1/?u12");
	assert_true(auth_oauth_status((const unsigned char *)rfc,
	    strlen(rfc), st, 4));
	assert_string_equal(st, "inv");
	assert_false(auth_oauth_status((const unsigned char *)"{}", 2, st,
	    sizeof(st)));
	assert_false(auth_oauth_status((const unsigned char *)"{\"status\":4}",
	    12, st, sizeof(st)));
	assert_false(auth_oauth_status((const unsigned char *)"\"status\"",
	    8, st, sizeof(st)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offer_parsed),
		cmocka_unit_test(test_choice),
		cmocka_unit_test(test_plain_login),
		cmocka_unit_test(test_cram_md5),
		cmocka_unit_test(test_oauth2_framing),
		cmocka_unit_test(test_inline_or_after_334),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_oauth_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
