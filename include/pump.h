/*
 * pump.h - the byte stream between libESMTP and the upstream, bounded
 * and shaped.
 *
 * postie opens the upstream itself (dial.h, tunnel.h, session.h: TCP or
 * an SSH channel, then TLS, EHLO, AUTH). libESMTP gets one end of a socketpair(2) at
 * its connect() (handoff.h); a thread serves the other end against the
 * upstream (a descriptor, or an SSL connection over it), the same way for
 * every upstream. It follows the dialogue enough to hold it to its bounds:
 *
 * - It parses every server reply (reply.h: line, line-count and byte
 *   bounds) and forwards only whole, sanitized replies.
 * - It knows when a reply is due (every command line libESMTP sent, the
 *   greeting, the end of the message data) and gives each one timeout
 *   seconds from becoming due to arrive whole, however it drips. Bytes it
 *   cannot hand on (a server that stops reading) get timeout seconds of
 *   no progress. The whole session gets pump_session_limit seconds.
 * - It answers libESMTP's EHLO itself with the reply postie shaped from
 *   the server's (no CHUNKING: libESMTP's pipelined BDAT crashes it on a
 *   dropped connection; no STARTTLS, no AUTH: postie did both), so the
 *   server never sees a second EHLO.
 * - When the server offers PIPELINING it answers libESMTP's MAIL FROM
 *   itself ("250 2.1.0"; libESMTP 1.1 would wait for MAIL's reply before
 *   sending the recipients) and sends MAIL with the RCPT lines and DATA
 *   (or whatever ends the group) in one write, which saves a message a
 *   round trip. It takes the server's reply to MAIL itself:
 *   if MAIL was refused, each RCPT reply libESMTP gets is that refusal
 *   ("451 4.3.0 (reply to MAIL FROM) ..."), so every recipient is
 *   deferred or failed exactly as on the refused MAIL; DATA's reply goes
 *   through. What it holds is bounded (HOLD_MAX bytes, HOLD_MS).
 * - Under PIPELINING it answers the end of the message data itself too
 *   ("250 2.0.0 postie: ..."), so libESMTP's next MAIL group goes out in
 *   the same round trip as the end of the data (RFC 2920: message content
 *   may begin a group): a message costs one round trip, not two. The
 *   server's real reply to each such end is kept (pump_end_reply); the
 *   caller records the message's outcome from it, never from libESMTP's.
 * - Inside DATA (from the server's 354 until libESMTP's CRLF.CRLF has been
 *   forwarded) the server has nothing to say: a reply then, such as an
 *   early "250 queued", is a protocol error, never a delivery.
 *
 * When the pump cuts the session it says why in error[], naming the host
 * and the stage ("mx.example.com timed out waiting for the reply to RCPT
 * (10 s)"); libESMTP sees the connection close and defers what is left.
 */
#ifndef POSTIE_PUMP_H
#define POSTIE_PUMP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "err.h"

struct pump_state;

struct pump {
	int			 up_fd;		/* the upstream descriptor */
	SSL			*up_ssl;	/* TLS over it, or NULL */
	int			 local;		/* the pump's end of the pair */
	int			 client;	/* libESMTP's end, handed over */
	char			 host[256];	/* for the reasons */
	long			 timeout;	/* seconds: per reply, per write */
	long			 limit;		/* seconds: the whole session */
	pthread_t		 thread;
	bool			 running;
	int			 cut;		/* pump_cut was called (atomic) */
	char			 error[ERR_MSG_MAX];	/* why it cut, or "" */
	bool			 dropped;	/* error[] only says the server
						 * closed or reset: its last
						 * 4xx/5xx says more */
	const char		*server;	/* for smtp_set_server */
	bool			 verbose;	/* -v: show the replies the
						 * pump takes (held MAIL) */
	size_t			 mails_expected;	/* pump_expect_mails
							 * (atomic) */
	struct pump_state	*st;
};

/*
 * Start the pump over an open upstream (takes up_fd and up_ssl: closed by
 * pump_finish) and arm the handoff so that libESMTP's next connect() to
 * p->server on this thread gets the client end. greeting, if not NULL, is
 * sent to libESMTP in the server's place (postie read the server's own,
 * session.h); otherwise the server's greeting is the first reply due.
 * ehlo, if not NULL, answers libESMTP's EHLO (its first line), which is
 * then never sent on: the server had its EHLO from postie.
 * relayed: the server is reached through a relay (the SSH tunnel, a SOCKS
 * proxy), whose own TCP connection to the server ACKs late: the next MAIL
 * group (or QUIT) then goes on only after the real reply to the end of
 * the data (see step_client in pump.c).
 */
int	pump_start(struct pump *p, int up_fd, SSL *up_ssl, const char *host,
	    const char *greeting, const char *ehlo, long timeout, long limit,
	    bool verbose, bool relayed, struct err *e);

/* Cut both sides now (an AUTH failure, a short read of the queue file):
 * the caller has its own reason, so the pump records none. */
void	pump_cut(struct pump *p);

/* Wait for the pump to end (pump_finish does it too). */
void	pump_wait(struct pump *p);

/*
 * Was the session's nth MAIL (from 0, in the order
 * libESMTP sent them) one the pump answered itself and the server
 * refused? libESMTP then holds that refusal as each recipient's RCPT
 * status, prefixed (reply_for_rcpt), and the message's own status is
 * DATA's reply; the caller puts them back where a refused MAIL leaves
 * them (smtp.c). Known by the time libESMTP has the first RCPT reply.
 */
bool	pump_mail_refused(const struct pump *p, size_t nth);

/*
 * The caller's hook for a transaction the server accepted whole, whose
 * end of data the pump answered itself: MAIL FROM, every RCPT and the end
 * of the data each got a 2xx. mail is the session's nth MAIL (from 0, in
 * the order libESMTP sent them). It runs on the pump's thread after
 * libESMTP was handed the replies that came with the end's (so libESMTP
 * already works on the next message) and before anything more goes on to
 * the server; pump_end_reply sees the end's reply only once it returned.
 * What the hook records is so recorded before the next message's data
 * goes out, without libESMTP waiting for it. Set it before libESMTP's
 * session starts.
 */
typedef void (*pump_accept_fn)(void *arg, size_t mail);
/* wants (NULL: always) says whether fn acts on the nth MAIL at all; for
 * one it does not, the end's reply shows at once, as without a hook, so
 * the caller records that message itself before the next data goes. */
typedef bool (*pump_wants_fn)(void *arg, size_t mail);
void	pump_on_accept(struct pump *p, pump_accept_fn fn, pump_wants_fn wants,
	    void *arg);

/*
 * libESMTP will send this many MAIL commands in the session (one for each
 * message it was given with recipients). Under PIPELINING the pump then
 * answers the MAIL after a message's data ahead, with the 354 and the
 * end of the data (pump.c, answer_ahead), so that libESMTP never waits
 * for a reply the pump gives itself. Without it (0) only the end is
 * answered ahead. Call before libESMTP's session starts.
 */
void	pump_expect_mails(struct pump *p, size_t mails);

/*
 * libESMTP is done (smtp_start_session returned): the pump goes on only
 * until the real replies to the ends of data it answered have come (each
 * within timeout), then ends by itself; pump_wait waits for that.
 */
void	pump_drain(struct pump *p);

/* How many ends of data the pump has answered itself so far: the end of
 * the message libESMTP just finished was the last one if this grew. */
size_t	pump_ends(const struct pump *p);

/*
 * The server's reply to the nth end of data the pump answered itself
 * (from 0): true and *code, *text (malloc'd, "250 2.0.0 queued", as
 * reply_status gives it) once it has come; false while it has not (or
 * never will: the connection ended first).
 */
bool	pump_end_reply(const struct pump *p, size_t nth, int *code,
	    char **text);

/* Has the reply to the nth end answered here come (pump_end_reply would
 * give it)? Copies nothing: libESMTP's thread asks at every event. */
bool	pump_end_got(const struct pump *p, size_t nth);

/* Wait for the pump to end and close everything. */
void	pump_finish(struct pump *p);

/*
 * The bound on a whole session, in seconds: timeout for each reply it may
 * wait for (6 for greeting, EHLO, AUTH and QUIT; 3 per message; 1 per
 * recipient), plus the bytes to send at a floor rate of PUMP_FLOOR_RATE
 * bytes a second. A session cannot hang past it, and a slow link that
 * still moves PUMP_FLOOR_RATE is never cut.
 */
#define PUMP_FLOOR_RATE	4096
long	pump_session_limit(long timeout, size_t messages, size_t recipients,
	    unsigned long long bytes);

#endif
