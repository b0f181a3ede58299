/*
 * upstream.h - TLS on the upstream before libESMTP sees it: implicit TLS
 * (RFC 8314) or postie's own STARTTLS dialogue, then the handshake,
 * verified by the identity's policy (tls.h).
 *
 * Every wait has a deadline: a reply must be whole within timeout seconds
 * of becoming due and the handshake must end within timeout seconds,
 * however slowly the server drips its bytes; replies are bounded as in
 * reply.h. The descriptor is left non-blocking (the pump wants it so).
 */
#ifndef POSTIE_UPSTREAM_H
#define POSTIE_UPSTREAM_H

#include <stdbool.h>
#include <openssl/ssl.h>

#include "err.h"
#include "reply.h"
#include "tls.h"

/* TLS on fd now, verified by policy. */
int	upstream_tls(struct tls_policy *policy, int fd, long timeout,
	    SSL **out, struct err *e);

/*
 * Read the greeting, EHLO as helo, STARTTLS, then TLS verified by policy.
 * libESMTP then speaks plain SMTP through the pump, which greets it in
 * the server's place (pump.h). A server without STARTTLS is refused:
 * never a silent plain session. A server that sends anything after its
 * 220 to STARTTLS is refused too (bytes injected before TLS).
 */
int	upstream_starttls(struct tls_policy *policy, int fd, const char *helo,
	    long timeout, bool verbose, SSL **out, struct err *e);

/*
 * One whole reply from fd (non-blocking or not) into r, within timeout
 * seconds; stage names what it answers ("the greeting", "the reply to
 * EHLO") for the error. Bytes after the reply are refused. With verbose,
 * each line goes to stderr (sanitized, bounded).
 */
int	upstream_read_reply(int fd, struct reply *r, const char *host,
	    const char *stage, long timeout, bool verbose, struct err *e);

#endif
