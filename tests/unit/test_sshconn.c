/* test_sshconn.c - SSH host key fingerprints. */
#include "testutil.h"

#include "sshconn.h"

/* Host key fingerprints read as ssh-keygen -l prints them. */
static void
test_ssh_fingerprint(void **state)
{
	unsigned char h[32];
	char out[64], small[12];

	(void)state;
	for (int i = 0; i < 32; i++)
		h[i] = (unsigned char)i;
	sshconn_fp_format(h, out, sizeof(out));
	assert_string_equal(out,
	    "SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
	memset(h, 0xff, sizeof(h));
	sshconn_fp_format(h, out, sizeof(out));
	assert_int_equal(strlen(out), 7 + 43);		/* no '=' padding */
	assert_null(strchr(out, '='));
	sshconn_fp_format(h, small, sizeof(small));	/* cut, terminated */
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ssh_fingerprint),
	};

	return cmocka_run_group_tests_name("test_sshconn", tests, NULL, NULL);
}
