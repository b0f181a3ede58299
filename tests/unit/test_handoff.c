/* test_handoff.c - the connect() that hands libESMTP postie's socket. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "handoff.h"

static struct sockaddr_in
loopback(int port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	return sin;
}

static int
connect_to(int port)
{
	struct sockaddr_in sin = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Armed: the client's socket becomes (a dup of) the armed one. */
static void
test_armed(void **state)
{
	int sp[2], fd;
	char buf[8];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	handoff_arm(sp[0]);
	fd = connect_to(0);
	assert_true(fd >= 0);
	assert_int_not_equal(fd, sp[0]);
	assert_true(handoff_taken());
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(write(fd, "hello", 5), 5);
	assert_int_equal(read(sp[1], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	/* the caller keeps its own descriptor: shutting it down cuts the
	 * client's too (pump_cut), closing the client's does not */
	close(fd);
	assert_int_equal(write(sp[0], "x", 1), 1);
	shutdown(sp[0], SHUT_RDWR);
	assert_int_equal(read(sp[1], buf, sizeof(buf)), 1);
	assert_int_equal(read(sp[1], buf, sizeof(buf)), 0);
	close(sp[0]);
	close(sp[1]);
}

/* One-shot; unarmed or disarmed, port 0 reaches nobody. */
static void
test_unarmed(void **state)
{
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	handoff_arm(sp[0]);
	handoff_disarm();
	assert_int_equal(connect_to(0), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_false(handoff_taken());

	handoff_arm(sp[0]);
	close(connect_to(0));
	assert_int_equal(connect_to(0), -1);	/* taken once only */
	close(sp[0]);
	close(sp[1]);
}

/* Every other connect() goes through untouched, armed or not. */
static void
test_others_pass(void **state)
{
	struct sockaddr_in sin = loopback(0);
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM, 0), c, a, sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	handoff_arm(sp[0]);
	c = connect_to(ntohs(sin.sin_port));
	assert_true(c >= 0);
	a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_false(handoff_taken());
	handoff_disarm();
	close(a);
	close(c);
	close(l);
	close(sp[0]);
	close(sp[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_armed),
		cmocka_unit_test(test_unarmed),
		cmocka_unit_test(test_others_pass),
	};

	return cmocka_run_group_tests_name("test_handoff", tests, NULL, NULL);
}
