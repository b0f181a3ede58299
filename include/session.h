/*
 * session.h - the opening of an upstream SMTP session, done by postie on
 * a connection dial.h or tunnel.h made: TLS (implicit, RFC 8314, or
 * STARTTLS), the greeting, EHLO, AUTH (auth.h). What is left (the mail
 * transactions) is libESMTP's, through the pump (pump.h), which answers
 * libESMTP's EHLO from the capabilities read here: the server sees one
 * EHLO after TLS, AUTH once, then MAIL.
 *
 * Every wait has a deadline: a reply must be whole within timeout seconds
 * of becoming due and the handshake must end within timeout seconds,
 * however slowly the server drips its bytes; replies are bounded as in
 * reply.h. A server that sends more than the reply it owes is refused
 * (nothing is pipelined here: bytes injected before TLS or before AUTH
 * ends). The descriptor is left non-blocking (the pump wants it so).
 */
#ifndef POSTIE_SESSION_H
#define POSTIE_SESSION_H

#include <stdbool.h>
#include <openssl/ssl.h>

#include "config.h"
#include "err.h"
#include "reply.h"
#include "tls.h"

struct session_params {
	struct tls_policy	*tls;		/* verifies the server */
	enum tls_mode		 mode;
	const char		*host;		/* the identity's host */
	int			 port;
	const char		*helo;
	const char		*user;		/* NULL: no AUTH */
	const char		*secret;	/* password or access token */
	const int		*mechs;		/* the `auth` key, in order */
	size_t			 nmechs;	/* 0: the default order */
	long			 timeout;	/* seconds, per step */
	bool			 verbose;	/* the dialogue to stderr,
						 * AUTH payloads redacted */
};

struct session {
	int		 fd;
	SSL		*ssl;		/* NULL without TLS */
	struct reply	*ehlo;		/* the server's EHLO reply, after TLS */
	bool		 auth_failed;	/* AUTH refused or no mechanism fits */
	int		 mech;		/* the mechanism used, or -1 */
};

/*
 * Open the session on fd (connected): TLS as p->mode says, greeting,
 * EHLO, STARTTLS and EHLO again, AUTH when p->user is set. On success
 * s->fd and s->ssl carry the session (free with session_free unless the
 * pump took them). On -1 the reason is in e (ERR_TEMPFAIL: a deferral)
 * and s->auth_failed says whether AUTH was the cause; fd stays the
 * caller's, any TLS on it is freed.
 */
int	session_open(struct session *s, int fd, const struct session_params *p,
	    struct err *e);

/* The EHLO reply libESMTP is to see: the server's, without AUTH, STARTTLS
 * and CHUNKING (reply_shape_ehlo), CRLF lines, malloc'd. */
char	*session_ehlo_for_client(const struct session *s);

/* End a session with nothing to send: QUIT, its reply awaited (bounded),
 * whatever it says. */
void	session_quit(struct session *s, const struct session_params *p);

/* Free what session_open left (the EHLO reply; TLS and fd if kept). */
void	session_free(struct session *s, bool close_conn);

#endif
