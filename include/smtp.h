/*
 * smtp.h - one SMTP session with libESMTP: messages in, a status per
 * recipient out. The session runs over a connection postie opened and
 * authenticated itself (session.h: TCP or SSH, TLS, EHLO, AUTH); libESMTP
 * runs the mail transactions through the pump (pump.h).
 */
#ifndef POSTIE_SMTP_H
#define POSTIE_SMTP_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "queue.h"
#include "tls.h"

/* One queued message with the recipients this session should try. */
struct smtp_msg {
	const char		*id;
	const struct envelope	*env;
	int			 fd;		/* msg/ID, open and locked */
	size_t			*rcpt;		/* indexes into env->rcpts */
	size_t			 nrcpt;
	/* results, one per rcpt[] entry */
	int			*code;		/* 0: not attempted */
	char			**reply;	/* sanitized, or NULL */
	bool			*complete;	/* libESMTP finished with it */
	int			 mail_code;	/* reply to MAIL FROM */
	char			*mail_reply;
	int			 msg_code;	/* after DATA; 0: not reached */
	bool			 reported;	/* done() was called */
	bool			 skip;		/* not in this session */
	bool			 unreached;	/* the session broke before the
						 * server answered anything of
						 * it: deferred, no attempt */
	bool			 read_error;	/* the queue file failed us */
	bool			 stopped;	/* not sent: run->stop came
						 * before its data */
	bool			 no_8bitmime;	/* 8-bit, and the server lacks
						 * 8BITMIME: not sent */
	bool			 removable;	/* set by the caller: accepted
						 * whole, its removal records it
						 * (run->accepted) */
	bool			 removed;	/* run->accepted removed it
						 * (atomic: the pump's thread) */
	void			*sess;		/* the session (smtp.c) */
	long			 end_nth;	/* the pump answered the end of
						 * its data, the nth such end
						 * (pump_end_reply); -1: not */
	char			*msg_reply;
	/* message callback state */
	off_t			 pos;
	bool			 last_cr;
	bool			 last_nl;	/* the data so far ends a line */
	bool			 ended;		/* the final CRLF is out */
};

struct smtp_run {
	const struct config	*cfg;
	const struct identity	*id;
	struct log		*log;
	const char		*password;	/* or access token; NULL: no AUTH */
	struct smtp_msg		*msgs;
	size_t			 nmsgs;
	char			 reason[ERR_MSG_MAX];	/* why it failed */
	bool			 auth_failed;
	bool			 unreachable;	/* DNS or connect failed */
	bool			 opened;	/* the session opened (TLS, EHLO,
						 * AUTH done): what broke after
						 * broke in the transactions */
	bool			 session_failed;	/* reached, but no session
						 * (TLS, greeting, STARTTLS) */
	bool			 verbose;	/* the dialogue to stderr */
	struct tls_warm		*warm;		/* OpenSSL's set-up under way
						 * (tls.h), or NULL */
	/* set by done(): an outcome could not be recorded; the session ends
	 * before the next message's data goes out */
	bool			 stop;
	/* called as soon as the server answered a message's data, so the
	 * outcome is recorded before the next message's data goes out */
	void			(*done)(struct smtp_msg *m, void *arg);
	void			*done_arg;
	/* called, with done_arg, on the pump's thread (pump.h,
	 * pump_on_accept) for a removable message the moment the server
	 * accepted it whole (MAIL, every RCPT, the data: 2xx), before the
	 * next message's data goes out, while libESMTP goes on with it: true
	 * if it recorded the message by its removal (then m->removed; done()
	 * follows on libESMTP's thread as always) */
	bool			(*accepted)(struct smtp_msg *m, void *arg);
};

/* What a recipient's result means. */
enum smtp_outcome { SMTP_OK, SMTP_DEFER, SMTP_FAIL };

/* complete: libESMTP finished with it; codes 0 = no reply. */
enum smtp_outcome smtp_classify(bool complete, int mail_code, int rcpt_code,
	    int msg_code);

void	smtp_msg_init(struct smtp_msg *m, const char *id,
	    const struct envelope *env, int fd);
void	smtp_msg_free(struct smtp_msg *m);

/*
 * Send every message of run through one connection. Returns 0 when the
 * session ran (per-recipient results filled, some may be deferred), -1
 * when it could not start or broke (run->reason says why; every result
 * not complete is a deferral).
 */
int	smtp_send(struct smtp_run *run, struct err *e);

/* Run password-command (execve, no shell); its first line (up to 64 KiB:
 * an OAuth2 access token fits). Free it with auth_wipe (auth.h). */
char	*smtp_password(const struct identity *id, struct err *e);

/*
 * The message callback's conversion, for tests: copy in[0..n) to out
 * making every bare LF a CRLF; *last_cr carries across chunks. Returns
 * the output length (out must hold 2n bytes).
 */
size_t	smtp_crlf(const char *in, size_t n, char *out, bool *last_cr);

/*
 * The size SIZE= declares for size bytes of fd from offset, as RFC 1870
 * counts it: the octets sent after the 354 with CRLF pairs (every bare LF
 * goes as CR LF, and a last line without one gets it), not the dot
 * stuffing nor the final dot. -1 (errno set) if the file cannot be read.
 */
int	smtp_wire_size(int fd, uint64_t offset, uint64_t size, uint64_t *out);

#endif
