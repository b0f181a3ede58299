/*
 * socks.h - a SOCKS5 client (RFC 1928), with user/password (RFC 1929).
 *
 * The CONNECT names the upstream as given (ATYP domain name unless it is
 * an address literal): the proxy resolves it, so a name never leaks to
 * the local resolver and Tor works. Every byte from the proxy is hostile:
 * the parsers below take what has arrived and say whether it is a whole,
 * valid answer, how much more they need, or why it is not one.
 */
#ifndef POSTIE_SOCKS_H
#define POSTIE_SOCKS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* The longest message either side sends: an RFC 1929 request. */
#define SOCKS_MSG_MAX	(3 + 255 + 255)

/* Greeting offering "no auth", or user/password only (auth). */
size_t	socks_hello(bool auth, unsigned char *buf);

/*
 * The method choice (2 bytes): 0 the method we offered, -1 with e set
 * (wrong version, no acceptable method, one we did not offer).
 */
int	socks_parse_choice(const unsigned char *b, size_t n, bool auth,
	    struct err *e);

/* RFC 1929 request into buf (SOCKS_MSG_MAX); -1 if a part is too long. */
int	socks_auth_request(const char *user, const char *password,
	    unsigned char *buf, size_t *len, struct err *e);

/* The RFC 1929 answer (2 bytes): 0 accepted, -1 with e set. */
int	socks_parse_auth(const unsigned char *b, size_t n, struct err *e);

/* CONNECT host:port into buf (SOCKS_MSG_MAX); -1 if host is too long. */
int	socks_connect_request(const char *host, int port, unsigned char *buf,
	    size_t *len, struct err *e);

/*
 * The CONNECT reply so far (n bytes): 0 a whole reply granting the
 * connection, in *need its length; 1 not whole yet, *need the length it
 * will have (more than n); -1 with e set: garbage or a refusal, whose
 * reason names the code ("host unreachable (4)").
 */
int	socks_parse_reply(const unsigned char *b, size_t n, size_t *need,
	    struct err *e);

/* The text for a reply code: "host unreachable". */
const char *socks_reply_text(unsigned code);

/*
 * The whole exchange on fd, connected to the proxy (named proxy in
 * errors), within timeout seconds: greeting, login when user is set,
 * CONNECT host:port. 0 when the proxy has connected; -1 with e set.
 */
int	socks_connect(int fd, const char *proxy, const char *user,
	    const char *password, const char *host, int port, long timeout,
	    struct err *e);

#endif
