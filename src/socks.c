/* socks.c - a SOCKS5 client (RFC 1928, RFC 1929): see socks.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "socks.h"
#include "util.h"

#define VER		5
#define M_NONE		0x00
#define M_USERPASS	0x02
#define M_NOTHING	0xff
#define CMD_CONNECT	1
#define AT_IPV4		1
#define AT_NAME		3
#define AT_IPV6		4

size_t
socks_hello(bool auth, unsigned char *buf)
{
	buf[0] = VER;
	buf[1] = 1;
	buf[2] = auth ? M_USERPASS : M_NONE;
	return 3;
}

int
socks_parse_choice(const unsigned char *b, size_t n, bool auth,
    struct err *e)
{
	if (n < 2 || b[0] != VER)
		return err_set(e, ERR_TEMPFAIL, "it does not speak SOCKS5 "
		    "(its answer to the greeting is not one)");
	if (b[1] == M_NOTHING)
		return err_set(e, ERR_TEMPFAIL, "it accepts none of the "
		    "login methods offered (%s); %s", auth ? "user/password" :
		    "none", auth ? "check the proxy's user and password" :
		    "add USER:PASSWORD@ to proxy");
	if (b[1] != (auth ? M_USERPASS : M_NONE))
		return err_set(e, ERR_TEMPFAIL, "it chose login method %u, "
		    "which was not offered", b[1]);
	return 0;
}

int
socks_auth_request(const char *user, const char *password,
    unsigned char *buf, size_t *len, struct err *e)
{
	size_t ul = strlen(user), pl = strlen(password);

	if (ul < 1 || ul > 255 || pl < 1 || pl > 255)
		return err_set(e, ERR_CONFIG, "the proxy's user and password "
		    "must each be 1 to 255 bytes");
	buf[0] = 1;
	buf[1] = (unsigned char)ul;
	memcpy(buf + 2, user, ul);
	buf[2 + ul] = (unsigned char)pl;
	memcpy(buf + 3 + ul, password, pl);
	*len = 3 + ul + pl;
	return 0;
}

int
socks_parse_auth(const unsigned char *b, size_t n, struct err *e)
{
	if (n < 2 || b[0] != 1)
		return err_set(e, ERR_TEMPFAIL, "its answer to the login is "
		    "not RFC 1929");
	if (b[1] != 0)
		return err_set(e, ERR_TEMPFAIL, "it refused the user and "
		    "password (status %u); check them", b[1]);
	return 0;
}

int
socks_connect_request(const char *host, int port, unsigned char *buf,
    size_t *len, struct err *e)
{
	unsigned char a6[16];
	size_t n = 0, hl;

	buf[n++] = VER;
	buf[n++] = CMD_CONNECT;
	buf[n++] = 0;
	if (inet_pton(AF_INET, host, buf + n + 1) == 1) {
		buf[n++] = AT_IPV4;
		n += 4;
	} else if (inet_pton(AF_INET6, host, a6) == 1) {
		buf[n++] = AT_IPV6;
		memcpy(buf + n, a6, 16);
		n += 16;
	} else {
		hl = strlen(host);
		if (hl < 1 || hl > 255)
			return err_set(e, ERR_CONFIG, "the host name %s is too "
			    "long for SOCKS5 (at most 255 bytes)", host);
		buf[n++] = AT_NAME;
		buf[n++] = (unsigned char)hl;
		memcpy(buf + n, host, hl);
		n += hl;
	}
	buf[n++] = (unsigned char)(port >> 8);
	buf[n++] = (unsigned char)(port & 0xff);
	*len = n;
	return 0;
}

const char *
socks_reply_text(unsigned code)
{
	static const char *const text[] = {
		"succeeded", "general failure", "not allowed by its rules",
		"network unreachable", "host unreachable",
		"connection refused", "TTL expired", "command not supported",
		"address type not supported",
	};

	/* Tor's own, for onion services (its socks-extensions.txt) */
	static const char *const tor[] = {
		"onion service descriptor not found",
		"onion service descriptor invalid",
		"onion service introduction failed",
		"onion service rendezvous failed",
		"onion service needs client authorization",
		"onion service refused the client authorization",
		"invalid onion address", "onion service introduction timed out",
	};

	if (code < sizeof(text) / sizeof(text[0]))
		return text[code];
	if (code >= 0xf0 && code - 0xf0 < sizeof(tor) / sizeof(tor[0]))
		return tor[code - 0xf0];
	return "an unknown reply code";
}

int
socks_parse_reply(const unsigned char *b, size_t n, size_t *need,
    struct err *e)
{
	size_t addr;

	*need = 5;	/* up to the first byte of the address */
	if (n >= 1 && b[0] != VER)
		return err_set(e, ERR_TEMPFAIL, "its reply to CONNECT is "
		    "not SOCKS5");
	if (n >= 2 && b[1] != 0)
		return err_set(e, ERR_TEMPFAIL, "the proxy refused: %s (%u)",
		    socks_reply_text(b[1]), b[1]);
	if (n >= 3 && b[2] != 0)
		return err_set(e, ERR_TEMPFAIL, "its reply to CONNECT is "
		    "not SOCKS5 (reserved byte %u)", b[2]);
	if (n < 5)
		return 1;
	switch (b[3]) {
	case AT_IPV4:
		addr = 4;
		break;
	case AT_IPV6:
		addr = 16;
		break;
	case AT_NAME:
		if (b[4] == 0)
			return err_set(e, ERR_TEMPFAIL, "its reply to CONNECT "
			    "has an empty address");
		addr = 1 + (size_t)b[4];
		break;
	default:
		return err_set(e, ERR_TEMPFAIL, "its reply to CONNECT has "
		    "an unknown address type %u", b[3]);
	}
	*need = 4 + addr + 2;
	return n >= *need ? 0 : 1;
}

/* Wait for fd (POLLIN or POLLOUT) until deadline (util_mono_ms). */
static int
wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	long long left;
	int rc;

	do {
		left = deadline - (long long)util_mono_ms();
		if (left <= 0)
			return 0;
		rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
	} while (rc == 0 || (rc < 0 && errno == EINTR));
	return rc < 0 ? -1 : 1;
}

struct conv {
	int		 fd;
	const char	*proxy;
	const char	*host;
	int		 port;
	long		 timeout;
	long long	 deadline;
	struct err	*e;
};

/* n: 0 the proxy closed, -2 the deadline passed, -1 errno. */
static int
io_fail(struct conv *c, ssize_t n, const char *what)
{
	if (n == 0)
		return err_set(c->e, ERR_TEMPFAIL, "cannot connect to %s port "
		    "%d through the proxy %s: it closed the connection instead "
		    "of answering %s%s", c->host, c->port, c->proxy, what,
		    strcmp(what, "CONNECT") == 0 ? " (it could not reach the "
		    "host, or may not)" : "");
	if (n == -2)
		return err_set(c->e, ERR_TEMPFAIL, "cannot connect to %s port "
		    "%d through the proxy %s: no answer to %s within %ld s "
		    "(connect-timeout)", c->host, c->port, c->proxy, what,
		    c->timeout);
	return err_set(c->e, ERR_TEMPFAIL, "cannot connect to %s port %d "
	    "through the proxy %s: %s (sending %s)", c->host, c->port,
	    c->proxy, strerror(errno), what);
}

static int
send_all(struct conv *c, const unsigned char *b, size_t n, const char *what)
{
	while (n > 0) {
		ssize_t w;
		int rc = wait_fd(c->fd, POLLOUT, c->deadline);

		if (rc <= 0)
			return io_fail(c, rc == 0 ? -2 : -1, what);
		w = send(c->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w < 0)
			return io_fail(c, -1, what);
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Read into b until it holds want bytes (*have so far), or, with some,
 * until at least one more byte came.
 */
static int
recv_to(struct conv *c, unsigned char *b, size_t *have, size_t want,
    bool some, const char *what)
{
	size_t had = *have;

	while (*have < want && !(some && *have > had)) {
		ssize_t r;
		int rc = wait_fd(c->fd, POLLIN, c->deadline);

		if (rc <= 0)
			return io_fail(c, rc == 0 ? -2 : -1, what);
		r = recv(c->fd, b + *have, want - *have, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return io_fail(c, r, what);
		*have += (size_t)r;
	}
	return 0;
}

/* "cannot connect to H port P through the proxy X: " + the reason. */
static int
refused(struct conv *c)
{
	char why[ERR_MSG_MAX];

	snprintf(why, sizeof(why), "%s", c->e ? c->e->msg : "");
	return err_set(c->e, c->e ? c->e->code : ERR_TEMPFAIL, "cannot "
	    "connect to %s port %d through the proxy %s: %s", c->host,
	    c->port, c->proxy, why);
}

int
socks_connect(int fd, const char *proxy, const char *user,
    const char *password, const char *host, int port, long timeout,
    struct err *e)
{
	struct conv c = { fd, proxy, host, port, timeout > 0 ? timeout : 10,
	    0, e };
	unsigned char buf[SOCKS_MSG_MAX];
	size_t n, have = 0, need;
	bool auth = user != NULL;
	int rc;

	c.deadline = (long long)util_mono_ms() + c.timeout * 1000LL;
	n = socks_hello(auth, buf);
	if (send_all(&c, buf, n, "the greeting") < 0 ||
	    recv_to(&c, buf, &have, 2, false, "the greeting") < 0)
		return -1;
	if (socks_parse_choice(buf, have, auth, e) < 0)
		return refused(&c);
	if (auth) {
		if (socks_auth_request(user, password, buf, &n, e) < 0)
			return refused(&c);
		rc = send_all(&c, buf, n, "the login");
		explicit_bzero(buf, sizeof(buf));
		have = 0;
		if (rc < 0 || recv_to(&c, buf, &have, 2, false,
		    "the login") < 0)
			return -1;
		if (socks_parse_auth(buf, have, e) < 0)
			return refused(&c);
	}
	if (socks_connect_request(host, port, buf, &n, e) < 0)
		return refused(&c);
	if (send_all(&c, buf, n, "CONNECT") < 0)
		return -1;
	have = 0;
	/* parsed as it comes (a refusal may be all there is); its length
	 * shows in its fifth byte: never read a byte of the upstream's */
	while ((rc = socks_parse_reply(buf, have, &need, e)) == 1)
		if (recv_to(&c, buf, &have, need, true, "CONNECT") < 0)
			return -1;
	if (rc < 0)
		return refused(&c);
	return 0;
}
