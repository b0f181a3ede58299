/* test_bridge.c - the bridge's check that a connection is the
 * process's own. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bridge.h"

static void
test_peer_is_ours(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int l, c, a;

	(void)state;
	l = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	getsockname(l, (struct sockaddr *)&sin, &len);
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_true(bridge_peer_is_ours(a, l, -1));
	/* once our end is gone, the peer is nobody we hold */
	{
		int dup_c = dup(c);

		close(c);
		assert_true(bridge_peer_is_ours(a, l, -1));	/* dup holds it */
		close(dup_c);
		assert_false(bridge_peer_is_ours(a, l, -1));
	}
	close(a);
	close(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_is_ours),
	};

	return cmocka_run_group_tests_name("test_bridge", tests, NULL, NULL);
}
