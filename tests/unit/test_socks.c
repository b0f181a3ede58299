/* test_socks.c - SOCKS5 (RFC 1928, RFC 1929) messages built and parsed,
 * and the whole exchange against a scripted proxy on a socketpair. */
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "socks.h"
#include "util.h"

static void
test_hello(void **state)
{
	unsigned char b[SOCKS_MSG_MAX];

	(void)state;
	assert_int_equal(socks_hello(false, b), 3);
	assert_memory_equal(b, "\x05\x01\x00", 3);
	assert_int_equal(socks_hello(true, b), 3);
	assert_memory_equal(b, "\x05\x01\x02", 3);
}

static void
test_choice(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(socks_parse_choice((const unsigned char *)"\x05\x00",
	    2, false, &e), 0);
	assert_int_equal(socks_parse_choice((const unsigned char *)"\x05\x02",
	    2, true, &e), 0);
	/* a method we did not offer */
	assert_int_equal(socks_parse_choice((const unsigned char *)"\x05\x02",
	    2, false, &e), -1);
	assert_non_null(strstr(e.msg, "method 2, which was not offered"));
	assert_int_equal(socks_parse_choice((const unsigned char *)"\x05\xff",
	    2, false, &e), -1);
	assert_non_null(strstr(e.msg, "add USER:PASSWORD@ to proxy"));
	assert_int_equal(socks_parse_choice((const unsigned char *)"\x04\x00",
	    2, false, &e), -1);
	assert_non_null(strstr(e.msg, "does not speak SOCKS5"));
	assert_int_equal(e.code, ERR_TEMPFAIL);
}

static void
test_auth(void **state)
{
	unsigned char b[SOCKS_MSG_MAX];
	char long_user[300];
	size_t n;
	struct err e;

	(void)state;
	assert_int_equal(socks_auth_request("me", "s3cret", b, &n, &e), 0);
	assert_int_equal(n, 11);
	assert_memory_equal(b, "\x01\x02me\x06s3cret", 11);
	memset(long_user, 'u', 256);
	long_user[256] = '\0';
	assert_int_equal(socks_auth_request(long_user, "p", b, &n, &e), -1);
	long_user[255] = '\0';
	assert_int_equal(socks_auth_request(long_user, long_user, b, &n, &e),
	    0);
	assert_int_equal(n, SOCKS_MSG_MAX);
	assert_int_equal(socks_parse_auth((const unsigned char *)"\x01\x00", 2,
	    &e), 0);
	assert_int_equal(socks_parse_auth((const unsigned char *)"\x01\x01", 2,
	    &e), -1);
	assert_non_null(strstr(e.msg, "refused the user and password"));
	assert_int_equal(socks_parse_auth((const unsigned char *)"\x05\x00", 2,
	    &e), -1);
}

static void
test_connect_request(void **state)
{
	unsigned char b[SOCKS_MSG_MAX];
	char name[300];
	size_t n;
	struct err e;

	(void)state;
	/* a name goes to the proxy as a name: it resolves it */
	assert_int_equal(socks_connect_request("mail.example.org", 587, b, &n,
	    &e), 0);
	assert_int_equal(n, 4 + 1 + 16 + 2);
	assert_memory_equal(b, "\x05\x01\x00\x03\x10mail.example.org\x02\x4b",
	    n);
	assert_int_equal(socks_connect_request("192.0.2.7", 25, b, &n, &e), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(b, "\x05\x01\x00\x01\xc0\x00\x02\x07\x00\x19", n);
	assert_int_equal(socks_connect_request("2001:db8::1", 465, b, &n, &e),
	    0);
	assert_int_equal(n, 22);
	assert_int_equal(b[3], 4);
	assert_memory_equal(b + 4, "\x20\x01\x0d\xb8", 4);
	assert_memory_equal(b + 20, "\x01\xd1", 2);
	memset(name, 'a', 256);
	name[256] = '\0';
	assert_int_equal(socks_connect_request(name, 25, b, &n, &e), -1);
	assert_non_null(strstr(e.msg, "at most 255 bytes"));
	name[255] = '\0';
	assert_int_equal(socks_connect_request(name, 25, b, &n, &e), 0);
	assert_int_equal(n, 4 + 1 + 255 + 2);
}

static void
test_reply(void **state)
{
	const unsigned char v4[] = "\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x00";
	const unsigned char nm[] = "\x05\x00\x00\x03\x03" "abc\x00\x19";
	size_t need;
	struct err e;

	(void)state;
	assert_int_equal(socks_parse_reply(v4, 0, &need, &e), 1);
	assert_int_equal(need, 5);
	assert_int_equal(socks_parse_reply(v4, 5, &need, &e), 1);
	assert_int_equal(need, 10);
	assert_int_equal(socks_parse_reply(v4, 10, &need, &e), 0);
	assert_int_equal(socks_parse_reply(nm, 5, &need, &e), 1);
	assert_int_equal(need, 4 + 4 + 2);
	assert_int_equal(socks_parse_reply(nm, 10, &need, &e), 0);
	/* every refusal is named, with its code */
	assert_int_equal(socks_parse_reply((const unsigned char *)"\x05\x04",
	    2, &need, &e), -1);
	assert_string_equal(e.msg, "the proxy refused: host unreachable (4)");
	assert_int_equal(socks_parse_reply((const unsigned char *)"\x05\x05",
	    2, &need, &e), -1);
	assert_string_equal(e.msg, "the proxy refused: connection refused (5)");
	assert_int_equal(socks_parse_reply((const unsigned char *)"\x05\xf0",
	    2, &need, &e), -1);
	assert_string_equal(e.msg, "the proxy refused: onion service "
	    "descriptor not found (240)");
	assert_int_equal(socks_parse_reply((const unsigned char *)"\x05\xf7",
	    2, &need, &e), -1);
	assert_string_equal(e.msg, "the proxy refused: onion service "
	    "introduction timed out (247)");
	assert_int_equal(socks_parse_reply((const unsigned char *)"\x05\xf8",
	    2, &need, &e), -1);
	assert_string_equal(e.msg, "the proxy refused: an unknown reply code "
	    "(248)");
	assert_int_equal(socks_parse_reply((const unsigned char *)"\x05\x09",
	    2, &need, &e), -1);
	assert_string_equal(e.msg, "the proxy refused: an unknown reply code "
	    "(9)");
	/* garbage */
	assert_int_equal(socks_parse_reply((const unsigned char *)"HTTP/1.1",
	    8, &need, &e), -1);
	assert_non_null(strstr(e.msg, "not SOCKS5"));
	assert_int_equal(socks_parse_reply((const unsigned char *)
	    "\x05\x00\x00\x09\x00", 5, &need, &e), -1);
	assert_non_null(strstr(e.msg, "unknown address type 9"));
	assert_int_equal(socks_parse_reply((const unsigned char *)
	    "\x05\x00\x00\x03\x00", 5, &need, &e), -1);
	assert_int_equal(socks_parse_reply((const unsigned char *)
	    "\x05\x00\x01\x01", 4, &need, &e), -1);
}

/* A scripted proxy on the other end of a socketpair. */
struct script {
	int		 fd;
	const char	*answer;	/* sent after the greeting's 3 bytes */
	size_t		 len;
	bool		 hangup;	/* close after the answer */
	unsigned char	 got[600];
	size_t		 ngot;
};

static void *
proxy_main(void *arg)
{
	struct script *s = arg;
	ssize_t n;

	/* the greeting, then the whole answer, then what else comes */
	n = read(s->fd, s->got, 3);
	if (n > 0)
		s->ngot = (size_t)n;
	if (write(s->fd, s->answer, s->len) < 0)
		return NULL;
	if (s->hangup)
		shutdown(s->fd, SHUT_WR);
	while ((n = read(s->fd, s->got + s->ngot, sizeof(s->got) - s->ngot)) >
	    0)
		s->ngot += (size_t)n;
	return NULL;
}

static int
run_script(const char *answer, size_t len, const char *user, bool hangup,
    struct script *s, struct err *e)
{
	int sv[2], rc;
	pthread_t t;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s->fd = sv[1];
	s->answer = answer;
	s->len = len;
	s->ngot = 0;
	s->hangup = hangup;
	assert_int_equal(pthread_create(&t, NULL, proxy_main, s), 0);
	rc = socks_connect(sv[0], "proxy.test:1080", user, "pw", "mx.test",
	    25, 2, e);
	close(sv[0]);
	pthread_join(t, NULL);
	close(sv[1]);
	return rc;
}

static void
test_exchange(void **state)
{
	/* the choice, the login answer, the reply: then the upstream's
	 * greeting, which must stay unread */
	const char ok[] = "\x05\x02\x01\x00\x05\x00\x00\x01\x7f\x00\x00\x01"
	    "\x00\x19" "220 mx\r\n";
	struct script s;
	struct err e;

	(void)state;
	assert_int_equal(run_script(ok, sizeof(ok) - 1, "me", false, &s, &e), 0);
	assert_int_equal(s.ngot, 3 + 7 + 14);
	assert_memory_equal(s.got, "\x05\x01\x02\x01\x02me\x02pw", 3 + 7);
	assert_memory_equal(s.got + 10, "\x05\x01\x00\x03\x07mx.test\x00\x19",
	    14);
	/* a refusal cut short after its code is still named */
	assert_int_equal(run_script("\x05\x00\x05\x04", 4, NULL, false, &s,
	    &e), -1);
	assert_string_equal(e.msg, "cannot connect to mx.test port 25 through "
	    "the proxy proxy.test:1080: the proxy refused: host unreachable "
	    "(4)");
	/* the proxy hangs up halfway: named, no wait */
	assert_int_equal(run_script("\x05\x00\x05\x00\x00\x01\x7f", 7,
	    NULL, true, &s, &e), -1);
	assert_string_equal(e.msg, "cannot connect to mx.test port 25 through "
	    "the proxy proxy.test:1080: it closed the connection instead of "
	    "answering CONNECT (it could not reach the host, or may not)");
}

static void
test_stall(void **state)
{
	int sv[2];
	struct err e;
	long long t0;

	(void)state;
	/* a proxy that never answers: bounded by the timeout */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t0 = util_mono_ms();
	assert_int_equal(socks_connect(sv[0], "p:1", NULL, NULL, "mx.test",
	    25, 1, &e), -1);
	assert_true(util_mono_ms() - t0 < 3000);
	assert_string_equal(e.msg, "cannot connect to mx.test port 25 through "
	    "the proxy p:1: no answer to the greeting within 1 s "
	    "(connect-timeout)");
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_choice),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_connect_request),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_stall),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("test_socks", tests, NULL, NULL);
}
