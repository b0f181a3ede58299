/* test_knownmark.c - @revoked and @cert-authority lines of known_hosts. */
#include "testutil.h"

#include <errno.h>

#include "knownmark.h"

/* "abcd" in base64, and another key */
static const unsigned char key[] = "abcd";
#define KLEN	4

static bool
revokes(const char *line)
{
	struct known_marks m = { .revoked = false };
	bool hit = knownmark_line(line, strlen(line), key, KLEN, &m);

	assert_int_equal(hit, m.revoked);
	knownmark_free(&m);
	return hit;
}

static void
test_revoked(void **state)
{
	(void)state;
	assert_true(revokes("@revoked * ssh-ed25519 YWJjZA=="));
	assert_true(revokes("  @revoked\texample.org,[h]:22\tssh-ed25519\tYWJjZA== c"));
	assert_true(revokes("@revoked |1|c2FsdA==|aGFzaA== ecdsa-sha2-nistp256 YWJjZA=="));
	/* another key, another marker, no marker, cut short, not base64 */
	assert_false(revokes("@revoked * ssh-ed25519 YWJjZQ=="));
	assert_false(revokes("@revoked * ssh-ed25519 YWJjZGU="));
	assert_false(revokes("@cert-authority * ssh-ed25519 YWJjZA=="));
	assert_false(revokes("example.org ssh-ed25519 YWJjZA=="));
	assert_false(revokes("@revokedx * ssh-ed25519 YWJjZA=="));
	assert_false(revokes("@revoked * ssh-ed25519"));
	assert_false(revokes("@revoked *"));
	assert_false(revokes("@revoked"));
	assert_false(revokes("@revoked * ssh-ed25519 !!!!"));
	assert_false(revokes(""));
	assert_false(revokes("# @revoked * ssh-ed25519 YWJjZA=="));
}

static void
test_cert_authority_counted(void **state)
{
	struct known_marks m = { .revoked = false };
	const char *l = "@cert-authority *.example.org ssh-ed25519 YWJjZA==";

	(void)state;
	assert_false(knownmark_line(l, strlen(l), key, KLEN, &m));
	assert_false(knownmark_line(l, strlen(l), key, KLEN, &m));
	assert_int_equal(m.cert_authority, 2);
	assert_false(m.revoked);
	knownmark_free(&m);
}

static void
test_file(void **state)
{
	char path[] = "/tmp/test_knownmark.XXXXXX";
	int fd = mkstemp(path);
	struct known_marks m = { .revoked = false };
	const char text[] = "h ssh-ed25519 YWJjZA==\r\n# c\n"
	    "@cert-authority * ssh-ed25519 eHl6\n@revoked * t YWJjZA==\r\n"
	    "@revoked * t YWJjZA==\n";

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1),
	    (ssize_t)sizeof(text) - 1);
	close(fd);
	assert_int_equal(knownmark_file(path, key, KLEN, &m), 0);
	assert_true(m.revoked);
	assert_string_equal(m.revoked_file, path);
	assert_int_equal(m.revoked_line, 4);	/* the first that revokes */
	assert_int_equal(m.cert_authority, 1);
	knownmark_free(&m);
	unlink(path);
	assert_int_equal(knownmark_file(path, key, KLEN, &m), 0); /* gone */
	assert_false(m.revoked);
	assert_null(m.revoked_file);
	/* there and unreadable (a loop of links: ELOOP, as root too): an
	 * error, never "no revocation" */
	{
		char a[] = "/tmp/test_knownmark.loopXXXXXX", b[64];

		assert_non_null(mkdtemp(a));
		snprintf(b, sizeof(b), "%s/kh", a);
		assert_int_equal(symlink(b, b), 0);
		assert_int_equal(knownmark_file(b, key, KLEN, &m), -1);
		assert_int_equal(errno, ELOOP);
		unlink(b);
		rmdir(a);
	}
	assert_int_equal(knownmark_file("/nonexistent/dir/kh", key, KLEN, &m),
	    0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_revoked),
		cmocka_unit_test(test_cert_authority_counted),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests_name("test_knownmark", tests, NULL, NULL);
}
