/* pump.c - the byte stream between libESMTP and the upstream. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "handoff.h"
#include "pump.h"
#include "reply.h"
#include "tls.h"
#include "util.h"

#define PUMP_AGAIN	(-2)	/* an operation would block */
#define CBUF		65536	/* libESMTP -> server, one read */
#define SBUF		16384	/* server -> us, one read */
#define OBUF		(REPLY_BYTES_MAX + REPLY_LINE_MAX + 4 * SBUF)

#define HOLD_MS		500	/* the longest a MAIL group is held */
#define DATA_BATCH	16384	/* message data goes on in pieces this big
				 * (one TLS record) ... */
#define DATA_HOLD_MS	5	/* ... or after this long, or with its end */
#define HOLD_MAX	(CBUF / 2)	/* the most bytes held in one */
#define RELAY_GAP_MS	20	/* replies this far apart through a relay */
#define RELAY_GAP_MAX_MS 300	/* ... and not further: its delayed ACK
				 * (40 ms on Linux, 200 ms at most on other
				 * systems), not the server's own time
				 * (relay_timing) */
#define REFUSAL_MAX	(REPLY_BYTES_MAX + REPLY_LINE_MAX + 64)

/* libESMTP's MAIL, answered by the pump itself (PIPELINING) */
static const char mail_held[] = "250 2.1.0 postie: sent on with the "
    "recipients; the server's reply follows\r\n";

/* The end of the message data, answered by the pump itself (PIPELINING) */
static const char end_held[] = "250 2.0.0 postie: the end of the data went "
    "on; the server's reply follows\r\n";

/* What a reply due answers. DUE_MAIL: a MAIL the pump answered itself,
 * whose real reply it takes. DUE_ENDH: likewise, the end of the data. */
enum due_kind { DUE_OTHER, DUE_EHLO, DUE_DATA, DUE_END, DUE_MAIL, DUE_RCPT,
	DUE_ENDH };

/* The server's reply to an end of data the pump answered itself. */
struct end_reply {
	bool		 got;		/* code and text are set, and the
					 * accept hook (if due) has run */
	int		 code;
	char		*text;		/* "250 2.0.0 queued", sanitized */
};

struct due {
	enum due_kind	 kind;
	char		 what[32];	/* "the reply to RCPT" */
	size_t		 nth;		/* DUE_MAIL: the session's nth MAIL;
					 * DUE_ENDH: its nth end answered */
	size_t		 mail;		/* DUE_ENDH: the nth MAIL it ends */
	bool		 mail_cmd;	/* the reply to a MAIL, held or not */
	long long	 since;		/* ms: when it became due */
};

/* Where the end-of-data scan stands: CR LF . CR LF. */
enum data_scan { D_MID, D_CR, D_BOL, D_DOT, D_DOTCR, D_END };

struct pump_state {
	char		 cbuf[CBUF];	/* from libESMTP, not yet sent on */
	size_t		 cstart, cend;
	size_t		 lim;		/* cbuf[cstart, lim) may go on */
	size_t		 scanned;	/* cbuf lines up to here classified */
	bool		 holding;	/* a MAIL group is held */
	size_t		 hold_from;	/* where it starts in cbuf */
	long long	 hold_since;	/* ms */
	bool		 pipelining;	/* the server offered PIPELINING */
	size_t		 mails_held;	/* answered here, not yet sent on */
	char		*refusal;	/* the RCPT reply standing for a
					 * refused held MAIL, or NULL */
	size_t		 refusal_len;
	size_t		 mails;		/* MAIL lines sent on */
	pthread_mutex_t	 lock;		/* refused[], ends[], nends: read
					 * while running */
	bool		*refused;	/* [nth]: the held MAIL was refused */
	size_t		 refused_cap;
	struct end_reply *ends;		/* [nth]: the real reply to the nth
					 * end of data answered here */
	size_t		 nends, ends_cap;
	size_t		 ends_due;	/* DUE_ENDH replies still due */
	pump_accept_fn	 accept;	/* pump_on_accept's hook, or NULL */
	pump_wants_fn	 wants;		/* does it act on this MAIL? */
	void		*accept_arg;
	bool		 txn_ok;	/* MAIL and every RCPT so far of the
					 * transaction the replies are in
					 * got a 2xx */
	struct accepted { size_t end, mail; } *acc;	/* ends accepted
					 * whole, the hook still to run */
	size_t		 nacc, acc_cap;
	bool		 end_ahead;	/* the coming end of the data is
					 * answered already (with the 354) */
	size_t		 end_ahead_nth;	/* its place in ends[] */
	bool		 mail_ahead;	/* so is the next MAIL */
	bool		 group_open;	/* a MAIL group (or QUIT) is to
					 * follow what was sent on */
	bool		 corked;	/* TCP_CORK: the end of the data
					 * waits for the next group */
	bool		 nocork;	/* the upstream cannot (not TCP) */
	long long	 batch_since;	/* ms: message data waiting since */
	bool		 noquickack;	/* the upstream has no TCP_QUICKACK
					 * (the SSH tunnel's socketpair) */
	bool		 relayed;	/* the server is reached through a
					 * relay (SSH tunnel, SOCKS proxy) */
	bool		 ends_first;	/* the next group waits for the
					 * reply to the end of the data
					 * (relay_timing) */
	long long	 end_rtt;	/* ms: the last end's reply took */
	long long	 end_replied;	/* ms: it came; 0: no reply since */
	bool		 up_unread;	/* a read of the upstream may find
					 * bytes (false: it found all there
					 * were; poll says when more come) */
	bool		 loc_unread;	/* the same for libESMTP's side */
	bool		 client_gone;	/* libESMTP is done; the replies to
					 * ends answered here still count */
	char		 sbuf[SBUF];
	size_t		 spos, slen;	/* sbuf bytes not yet taken */
	char		 obuf[OBUF];	/* whole replies for libESMTP */
	size_t		 ostart, oend;
	struct reply	 reply;		/* the reply being read */
	struct due	*q;		/* replies due, oldest first */
	size_t		 qhead, qlen, qcap;
	bool		 data;		/* inside DATA */
	enum data_scan	 scan;
	char		 verb[16];	/* start of the command line */
	size_t		 vlen;
	long long	 progress;	/* ms: the last byte sent on */
	char		*ehlo;		/* answer libESMTP's EHLO with this,
					 * never sending it on; NULL once done
					 * (or when the server is to answer) */
	char		 eline[1024];	/* libESMTP's EHLO line so far */
	size_t		 elen;
};

static void
fail(struct pump *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record why the session ends (the first reason wins). */
static void
fail(struct pump *p, const char *fmt, ...)
{
	va_list ap;

	if (p->error[0] != '\0' || __atomic_load_n(&p->cut, __ATOMIC_ACQUIRE))
		return;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
}

long
pump_session_limit(long timeout, size_t messages, size_t recipients,
    unsigned long long bytes)
{
	unsigned long long waits = 6 + 3 * (unsigned long long)messages +
	    recipients;
	unsigned long long s = waits * (unsigned long long)timeout +
	    bytes / PUMP_FLOOR_RATE;

	return s > LONG_MAX / 1000 ? LONG_MAX / 1000 : (long)s;
}

/* ---- the replies due ---------------------------------------------- */

static void
due_push(struct pump_state *s, enum due_kind kind, const char *what,
    long long now)
{
	struct due *d;

	if (s->qhead > 0 && s->qhead == s->qlen)
		s->qhead = s->qlen = 0;
	if (s->qlen == s->qcap) {
		s->qcap = s->qcap ? 2 * s->qcap : 64;
		s->q = xrealloc(s->q, s->qcap * sizeof(*s->q));
	}
	d = &s->q[s->qlen++];
	d->kind = kind;
	d->mail_cmd = false;
	d->nth = d->mail = 0;
	snprintf(d->what, sizeof(d->what), "%s", what);
	/* a pipelined command's reply is due once the one before it came */
	d->since = now;
}

static struct due *
due_head(struct pump_state *s)
{
	return s->qhead < s->qlen ? &s->q[s->qhead] : NULL;
}

static struct due
due_pop(struct pump_state *s, long long now)
{
	struct due d = s->q[s->qhead++];
	struct due *next = due_head(s);

	if (next != NULL && next->since < now)
		next->since = now;
	return d;
}

/* A command line libESMTP sent (its first bytes in s->verb). */
static void
due_command(struct pump_state *s, long long now)
{
	static const char *const verbs[] = { "EHLO", "HELO", "MAIL", "RCPT",
	    "DATA", "RSET", "NOOP", "QUIT", "AUTH", "VRFY", "BDAT",
	    "STARTTLS" };
	const char *verb = "AUTH";	/* a line with no verb answers a 334
					 * and carries credentials: unnamed */
	char what[32];
	size_t n = strcspn(s->verb, " \r\n");

	s->verb[s->vlen] = '\0';
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (n == strlen(verbs[i]) && strncasecmp(s->verb, verbs[i],
		    n) == 0)
			verb = verbs[i];
	snprintf(what, sizeof(what), "the reply to %s", verb);
	if (strcmp(verb, "MAIL") == 0) {
		s->mails++;
		s->mail_ahead = false;
	}
	s->group_open = strcmp(verb, "MAIL") == 0 || strcmp(verb, "RCPT") == 0;
	if (strcmp(verb, "MAIL") == 0 && s->mails_held > 0) {
		s->mails_held--;
		due_push(s, DUE_MAIL, what, now);
		s->q[s->qlen - 1].nth = s->mails - 1;
	} else
		due_push(s, strcmp(verb, "EHLO") == 0 ||
		    strcmp(verb, "HELO") == 0 ? DUE_EHLO :
		    strcmp(verb, "DATA") == 0 ? DUE_DATA :
		    strcmp(verb, "RCPT") == 0 ? DUE_RCPT : DUE_OTHER, what,
		    now);
	s->q[s->qlen - 1].mail_cmd = strcmp(verb, "MAIL") == 0;
	s->vlen = 0;
}

/* ---- libESMTP's side, as it is sent on -------------------------------- */

/* Scan message data for CRLF.CRLF; how many bytes belong to the data. */
static size_t
scan_data(enum data_scan *st, const char *b, size_t n)
{
	size_t i = 0;

	while (i < n) {
		char c;

		if (*st == D_MID) {
			const char *cr = memchr(b + i, '\r', n - i);

			if (cr == NULL)
				return n;
			i = (size_t)(cr - b) + 1;
			*st = D_CR;
			continue;
		}
		c = b[i++];
		switch (*st) {
		case D_CR:
			*st = c == '\n' ? D_BOL : c == '\r' ? D_CR : D_MID;
			break;
		case D_BOL:
			*st = c == '.' ? D_DOT : c == '\r' ? D_CR : D_MID;
			break;
		case D_DOT:
			*st = c == '\r' ? D_DOTCR : D_MID;
			break;
		case D_DOTCR:
			if (c == '\n') {
				*st = D_END;
				return i;
			}
			*st = c == '\r' ? D_CR : D_MID;
			break;
		default:
			break;
		}
	}
	return i;
}

/* A place in ends[] for the real reply to an end answered here. */
static size_t
end_slot(struct pump_state *s)
{
	size_t nth;

	pthread_mutex_lock(&s->lock);
	if (s->nends == s->ends_cap) {
		s->ends_cap = s->ends_cap ? 2 * s->ends_cap : 16;
		s->ends = xrealloc(s->ends, s->ends_cap * sizeof(*s->ends));
	}
	memset(&s->ends[s->nends], 0, sizeof(s->ends[0]));
	nth = s->nends++;
	pthread_mutex_unlock(&s->lock);
	return nth;
}

/*
 * The server's 354 just went into obuf. Under PIPELINING the pump answers
 * the end of the data that is to follow right behind it (libESMTP 1.1
 * waits for that reply before the next MAIL), and, when the caller said
 * another message follows (pump_expect_mails), that next MAIL too: a
 * 250 to the end takes libESMTP to its next message's MAIL or to QUIT,
 * nothing else (its rsp_data2), and it waits for MAIL's reply before the
 * recipients. So libESMTP writes the data, its end, the next MAIL, RCPT
 * lines and DATA without waiting once, and the only wait left in a
 * message is the one for the server's 354. The server's real replies to
 * that end and MAIL are taken here (DUE_ENDH, DUE_MAIL): the end's is
 * kept for the caller (pump_end_reply), a refused MAIL becomes the
 * recipients' refusal (reply_for_client). Nothing else is due to
 * libESMTP after a 354 (DATA ends a group), so these replies take their
 * place in order.
 */
static void
answer_ahead(struct pump *p, struct pump_state *s)
{
	if (!s->pipelining || sizeof(s->obuf) - s->oend < sizeof(end_held) +
	    sizeof(mail_held))
		return;
	s->end_ahead = true;
	s->end_ahead_nth = end_slot(s);
	memcpy(s->obuf + s->oend, end_held, sizeof(end_held) - 1);
	s->oend += sizeof(end_held) - 1;
	if (s->mails < __atomic_load_n(&p->mails_expected, __ATOMIC_ACQUIRE)) {
		s->mail_ahead = true;
		s->mails_held++;
		memcpy(s->obuf + s->oend, mail_held, sizeof(mail_held) - 1);
		s->oend += sizeof(mail_held) - 1;
	}
}

/* The end of the data has gone on: its reply is due. Answered here
 * (answer_ahead), the server's real reply is taken and kept. */
static void
end_of_data(struct pump_state *s, long long now)
{
	s->group_open = true;	/* the next MAIL group or QUIT */
	if (!s->end_ahead) {
		due_push(s, DUE_END, "the reply to the message data", now);
		return;
	}
	s->end_ahead = false;
	due_push(s, DUE_ENDH, "the reply to the message data", now);
	s->q[s->qlen - 1].nth = s->end_ahead_nth;
	/* the data ends the transaction of the last MAIL sent on */
	s->q[s->qlen - 1].mail = s->mails > 0 ? s->mails - 1 : 0;
	pthread_mutex_lock(&s->lock);
	s->ends_due++;
	pthread_mutex_unlock(&s->lock);
}

/* Follow what was just sent on: command lines make replies due; the
 * data's end makes the final reply due and ends DATA. */
static void
track_client(struct pump_state *s, const char *b, size_t n, long long now)
{
	size_t i = 0;

	while (i < n) {
		const char *nl;
		size_t len;

		if (s->data) {
			i += scan_data(&s->scan, b + i, n - i);
			if (s->scan == D_END) {
				s->data = false;
				end_of_data(s, now);
			}
			continue;
		}
		nl = memchr(b + i, '\n', n - i);
		len = nl ? (size_t)(nl - (b + i)) : n - i;
		for (size_t j = 0; j < len && s->vlen < sizeof(s->verb) - 1;
		    j++)
			s->verb[s->vlen++] = b[i + j];
		if (nl == NULL)
			break;
		i += len + 1;
		due_command(s, now);
	}
}

/* ---- the server's side ------------------------------------------------ */

/* The first line of raw server bytes, printable, for a reason. */
static void
first_line(const char *b, size_t n, char *out, size_t len)
{
	size_t k = strcspn(b, "\r\n");

	(void)n;
	if (k >= len)
		k = len - 1;
	memcpy(out, b, k);
	out[k] = '\0';
	util_sanitize_ascii(out);
}

/* With -v, show a reply libESMTP does not see as the server sent it. */
static void
show_reply(const struct pump *p, const struct reply *r, const char *note)
{
	size_t in = 0;

	if (!p->verbose)
		return;
	while (in < r->len) {
		const char *nl = memchr(r->buf + in, '\n', r->len - in);
		size_t n = nl ? (size_t)(nl - (r->buf + in)) + 1 : r->len - in;

		fprintf(stderr, "deliver: < %.*s  (%s)\n", (int)(n > 1 ? n - 2 :
		    0), r->buf + in, note);
		in += n;
	}
}

/*
 * What libESMTP gets for the reply just read (s->reply), due as d: the
 * reply itself, nothing (the real reply to a MAIL answered here), or, for
 * a RCPT after such a MAIL was refused, the MAIL reply standing for it:
 * libESMTP then fails or defers each recipient exactly as it would have
 * on the refused MAIL. Anything else ends the group: DATA's reply goes
 * through as it is.
 */
static void
reply_for_client(struct pump *p, struct pump_state *s, const struct due *d,
    const char **out, size_t *len)
{
	enum due_kind kind = d->kind;

	*out = s->reply.buf;
	*len = s->reply.len;
	if (kind == DUE_ENDH) {
		char text[512];

		show_reply(p, &s->reply, "the server's reply to the end of "
		    "the data");
		reply_status(&s->reply, text, sizeof(text));
		pthread_mutex_lock(&s->lock);
		if (s->accept != NULL && s->txn_ok && s->reply.code / 100 ==
		    2 && (s->wants == NULL || s->wants(s->accept_arg,
		    d->mail))) {
			/* got once the hook ran (run_accepts) */
			if (s->nacc == s->acc_cap) {
				s->acc_cap = s->acc_cap ? 2 * s->acc_cap : 8;
				s->acc = xrealloc(s->acc, s->acc_cap *
				    sizeof(*s->acc));
			}
			s->acc[s->nacc].end = d->nth;
			s->acc[s->nacc++].mail = d->mail;
		} else
			s->ends[d->nth].got = true;
		s->ends[d->nth].code = s->reply.code;
		s->ends[d->nth].text = xstrdup(text);
		s->ends_due--;
		pthread_mutex_unlock(&s->lock);
		*len = 0;
		return;
	}
	if (kind == DUE_MAIL) {
		show_reply(p, &s->reply, "the server's reply to MAIL FROM");
		free(s->refusal);
		s->refusal = NULL;
		if (s->reply.code / 100 != 2) {
			s->refusal = xmalloc(REFUSAL_MAX);
			s->refusal_len = reply_for_rcpt(&s->reply, s->refusal,
			    REFUSAL_MAX);
			pthread_mutex_lock(&s->lock);
			if (d->nth >= s->refused_cap) {
				size_t cap = 2 * d->nth + 16;

				s->refused = xrealloc(s->refused, cap *
				    sizeof(*s->refused));
				memset(s->refused + s->refused_cap, 0, (cap -
				    s->refused_cap) * sizeof(*s->refused));
				s->refused_cap = cap;
			}
			s->refused[d->nth] = true;
			pthread_mutex_unlock(&s->lock);
		}
		*len = 0;
		return;
	}
	if (kind == DUE_RCPT && s->refusal != NULL) {
		show_reply(p, &s->reply, "the server's reply to RCPT; the "
		    "reply to MAIL FROM stands for it");
		*out = s->refusal;
		*len = s->refusal_len;
		return;
	}
	if (kind != DUE_RCPT) {
		free(s->refusal);
		s->refusal = NULL;
	}
}

/* Only replies libESMTP never sees (ends of data answered here) due. */
static bool
quiet(const struct pump_state *s)
{
	for (size_t i = s->qhead; i < s->qlen; i++)
		if (s->q[i].kind != DUE_ENDH)
			return false;
	return s->qhead < s->qlen || (s->reply.len == 0 && s->spos == s->slen);
}

/*
 * Through a relay (the SSH tunnel, a SOCKS proxy), does the next MAIL
 * group cost less sent after the reply to the end of the data than with
 * it? Over TLS a server answers the end, then the group (Postfix flushes
 * its replies when its input is read, and a TLS record that ends at the
 * end of the data is all it reads at once). Its second write waits under
 * Nagle for the ACK of its first, and that ACK comes from the relay's own
 * TCP connection, which a client cannot hurry (TCP_QUICKACK is ours
 * alone): Linux delays it 40 ms while the relay talks back and forth
 * quickly (a nearby server; measured against Postfix on loopback through
 * sshd: 48 ms a message). Waiting for the end's reply before sending the
 * group costs one round trip a message instead, and then the group's data
 * carries that ACK. So the session starts pipelined, measures how long
 * the end's reply took (what waiting for it would cost) and how long after
 * it the group's first reply came, and when the gap is the longer (and
 * as long as a delayed ACK: not noise, not a slow check of a recipient,
 * which waiting would not shorten), the rest of the session waits for
 * each end's reply. A far server (50 ms and more) shows no gap:
 * the relay's connection ACKs at once when it is slow to talk back.
 */
static void
relay_timing(struct pump *p, struct pump_state *s, const struct due *d,
    long long now)
{
	long long gap;

	if (!s->relayed || s->ends_first)
		return;
	if (d->kind == DUE_ENDH) {
		s->end_rtt = now - d->since;
		s->end_replied = now > 0 ? now : 1;
		return;
	}
	if (s->end_replied == 0)
		return;
	gap = now - s->end_replied;
	s->end_replied = 0;
	if (!d->mail_cmd)
		return;	/* QUIT: no group follows to wait */
	if (gap < RELAY_GAP_MS || gap > RELAY_GAP_MAX_MS || gap <= s->end_rtt)
		return;
	s->ends_first = true;
	if (p->verbose)
		fprintf(stderr, "deliver: the reply to the next group came %lld "
		    "ms after the reply to the end of the data, which took "
		    "%lld ms: through this relay each group now waits for the "
		    "reply to the end before it goes on\n", gap, s->end_rtt);
}

/* Server bytes in sbuf[spos, slen): whole replies go to libESMTP's queue
 * while it has room for the largest. -1: cut. */
static int
take_server(struct pump *p, struct pump_state *s, long long now)
{
	while (s->spos < s->slen) {
		struct due *head = due_head(s), d;
		ssize_t took;
		char text[200];
		const char *out;
		size_t len;

		if (sizeof(s->obuf) - s->oend < REFUSAL_MAX && s->ostart > 0) {
			memmove(s->obuf, s->obuf + s->ostart, s->oend -
			    s->ostart);
			s->oend -= s->ostart;
			s->ostart = 0;
		}
		if (sizeof(s->obuf) - s->oend < REFUSAL_MAX)
			break;	/* libESMTP is to take some first */
		if (s->data) {
			s->sbuf[s->slen] = '\0';
			first_line(s->sbuf + s->spos, s->slen - s->spos, text,
			    sizeof(text));
			fail(p, "%s answered before the end of the message "
			    "data (protocol error): %s", p->host, text);
			return -1;
		}
		took = reply_feed(&s->reply, s->sbuf + s->spos, s->slen -
		    s->spos);
		if (took < 0) {
			fail(p, "%s %s (%s)", p->host, s->reply.error,
			    head ? head->what : "a reply nobody asked for");
			return -1;
		}
		s->spos += (size_t)took;
		if (!s->reply.done)
			break;
		if (head == NULL) {
			reply_text(&s->reply, text, sizeof(text));
			fail(p, "%s sent a reply nobody asked for (protocol "
			    "error): %s", p->host, text);
			return -1;
		}
		d = due_pop(s, now);
		relay_timing(p, s, &d, now);
		if (d.mail_cmd)
			s->txn_ok = s->reply.code / 100 == 2;
		else if (d.kind == DUE_RCPT && s->reply.code / 100 != 2)
			s->txn_ok = false;
		if (d.kind == DUE_EHLO) {
			reply_shape_ehlo(&s->reply);
			s->pipelining = s->reply.code / 100 == 2 &&
			    reply_has_keyword(&s->reply, "PIPELINING");
		}
		if (d.kind == DUE_DATA && s->reply.code / 100 == 3) {
			s->data = true;
			s->scan = D_BOL;
		}
		reply_for_client(p, s, &d, &out, &len);
		if (s->oend + len > sizeof(s->obuf)) {
			fail(p, "%s: too many replies at once", p->host);
			return -1;
		}
		memcpy(s->obuf + s->oend, out, len);
		s->oend += len;
		if (s->data)
			answer_ahead(p, s);
		reply_init(&s->reply);
	}
	return 0;
}

/* ---- upstream I/O: > 0 bytes, 0 end, -1 broken, PUMP_AGAIN ----------- */

/* The upstream's TLS result r (tls_io_result), what it waits for added
 * to *want. */
static ssize_t
ssl_result(SSL *ssl, int r, short *want)
{
	short w = 0;
	int k = tls_io_result(ssl, r, &w);

	*want |= w;
	return k == TLS_AGAIN ? PUMP_AGAIN : k;
}

static ssize_t
up_read(struct pump *p, char *b, size_t n, short *want)
{
	ssize_t r;

	errno = 0;
	if (p->up_ssl != NULL) {
		int k = SSL_read(p->up_ssl, b, (int)n);

		return k > 0 ? k : ssl_result(p->up_ssl, k, want);
	}
	r = read(p->up_fd, b, n);
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		*want |= POLLIN;
		return PUMP_AGAIN;
	}
	return r;
}

static ssize_t
up_write(struct pump *p, const char *b, size_t n, short *want)
{
	ssize_t r;

	errno = 0;
	if (p->up_ssl != NULL) {
		int k = SSL_write(p->up_ssl, b, n > INT_MAX ? INT_MAX : (int)n);

		return k > 0 ? k : ssl_result(p->up_ssl, k, want);
	}
	r = send(p->up_fd, b, n, MSG_NOSIGNAL);	/* a socket either way */
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		*want |= POLLOUT;
		return PUMP_AGAIN;
	}
	return r < 0 ? -1 : r;
}

/* ---- the loop ---------------------------------------------------------- */

/*
 * The server is gone with replies still due. libESMTP 1.1 reads one reply
 * for each command it pipelined, and when a third read in a row fails it
 * crashes (it reads on after its QUIT handler ended the session). So each
 * RCPT still due gets a reply here, and libESMTP meets the end at the one
 * after (DATA's): the refusal of its MAIL if the server refused it
 * (reply_for_client), else no_reply, which libESMTP keeps as no status at
 * all, exactly what a failed read leaves (smtp.c keeps it out of the
 * reasons). A held MAIL's reply was never to reach libESMTP.
 */
static const char no_reply[] = "000 postie: no reply, the connection is "
    "gone\r\n";

static void
hand_on_the_rest(struct pump *p, struct pump_state *s)
{
	struct due *head;

	while ((head = due_head(s)) != NULL && (head->kind == DUE_MAIL ||
	    head->kind == DUE_RCPT || head->kind == DUE_ENDH)) {
		bool silent = head->kind != DUE_RCPT;
		const char *r = silent ? "" : s->refusal ? s->refusal :
		    no_reply;
		size_t n = silent ? 0 : s->refusal ? s->refusal_len :
		    sizeof(no_reply) - 1;

		if (sizeof(s->obuf) - s->oend < n)
			break;
		memcpy(s->obuf + s->oend, r, n);
		s->oend += n;
		(void)due_pop(s, util_mono_ms());
	}
	if (s->ostart < s->oend)	/* one try: libESMTP reads them */
		(void)send(p->local, s->obuf + s->ostart, s->oend - s->ostart,
		    MSG_NOSIGNAL);
}

/* The server closed its side: say so if something was due. */
static void
server_closed(struct pump *p, struct pump_state *s)
{
	struct due *head = due_head(s);

	p->dropped = p->error[0] == '\0';
	if (s->data)
		fail(p, "%s closed the connection during the message data",
		    p->host);
	else if (head != NULL)
		fail(p, "%s closed the connection while waiting for %s",
		    p->host, head->what);
	hand_on_the_rest(p, s);
}

/*
 * The ends of data the server accepted whole (reply_for_client): run the
 * caller's hook for each (pump_on_accept), then let pump_end_reply see
 * the reply. Called once libESMTP has been handed the replies that came
 * with them and before anything more goes on to the server.
 */
static void
run_accepts(struct pump_state *s)
{
	for (size_t i = 0; i < s->nacc; i++) {
		s->accept(s->accept_arg, s->acc[i].mail);
		pthread_mutex_lock(&s->lock);
		s->ends[s->acc[i].end].got = true;
		pthread_mutex_unlock(&s->lock);
	}
	s->nacc = 0;
}

/*
 * Replies came and more are due: ACK what came now. A server that writes
 * its replies one at a time without TCP_NODELAY (as many small ones do;
 * and over TLS a server answers the end of the data before it reads the
 * record with the next group) holds each reply after the first until the
 * one before it is ACKed (Nagle), and Linux delays our ACK by 40 ms when
 * we have nothing to send with it: 40 ms a message, seen with the tests'
 * scripted server. TCP_QUICKACK sends the pending ACK at once (and the
 * kernel clears it again as it goes: set after each read).
 */
static void
ack_now(struct pump *p, struct pump_state *s)
{
	util_quickack(p->up_fd, &s->noquickack);
}

/* Move the server's bytes on. 1 progress, 0 none, -1 end. */
static int
step_server(struct pump *p, struct pump_state *s, short *up_ev,
    short *loc_ev, long long now)
{
	int progress = 0;

	if (s->ostart == s->oend)
		s->ostart = s->oend = 0;
	if (s->spos == s->slen && s->ostart == s->oend && !s->up_unread)
		*up_ev |= POLLIN;	/* read dry: poll says when */
	else if (s->spos == s->slen && s->ostart == s->oend) {
		short want = 0;
		ssize_t n = up_read(p, s->sbuf, sizeof(s->sbuf) - 1, &want);

		*up_ev |= want;
		/* a short read took all there was; over TLS what OpenSSL
		 * holds read ahead (poll cannot see it) is still to take,
		 * and a read that waits for a write (renegotiation) is
		 * tried again */
		s->up_unread = p->up_ssl != NULL ? (n > 0 &&
		    SSL_has_pending(p->up_ssl)) || want == POLLOUT :
		    n == (ssize_t)sizeof(s->sbuf) - 1;

		if (n == 0) {
			server_closed(p, s);
			return -1;
		}
		if (n == -1) {
			p->dropped = p->error[0] == '\0';
			fail(p, "the connection to %s broke: %s", p->host,
			    strerror(errno));
			hand_on_the_rest(p, s);
			return -1;
		}
		if (n > 0) {
			s->spos = 0;
			s->slen = (size_t)n;
			progress = 1;
		}
	}
	if (s->spos < s->slen) {
		size_t before = s->spos;

		if (take_server(p, s, now) < 0) {
			run_accepts(s);
			return -1;
		}
		progress |= s->spos != before;
		if (progress && due_head(s) != NULL)
			ack_now(p, s);
	}
	if (s->ostart < s->oend && s->client_gone) {
		s->ostart = s->oend;	/* nobody to read them */
		progress = 1;
	} else if (s->ostart < s->oend) {
		ssize_t w = send(p->local, s->obuf + s->ostart,
		    s->oend - s->ostart, MSG_NOSIGNAL);

		if (w > 0) {
			s->ostart += (size_t)w;
			progress = 1;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR))
			*loc_ev |= POLLOUT;
		else
			progress = -1;	/* libESMTP has gone */
	}
	/* libESMTP works on while the hook runs */
	run_accepts(s);
	return progress;
}

/*
 * libESMTP's first line is its EHLO: take it out of what goes on and
 * queue the EHLO reply postie shaped (session.h) in the server's place.
 * The server got its one EHLO before TLS ended and AUTH; a second one
 * after AUTH is what a server may take as a reset. 0 ok, -1 cut.
 */
static int
answer_ehlo(struct pump *p, struct pump_state *s)
{
	const char *b = s->cbuf + s->cstart;
	size_t n = s->cend - s->cstart, m;
	const char *nl = memchr(b, '\n', n);
	size_t take = nl ? (size_t)(nl - b) + 1 : n;

	if (s->elen + take >= sizeof(s->eline)) {
		fail(p, "%s: the client's first line is over %zu bytes",
		    p->host, sizeof(s->eline));
		return -1;
	}
	memcpy(s->eline + s->elen, b, take);
	s->elen += take;
	s->cstart += take;
	if (nl == NULL)
		return 0;
	s->eline[s->elen] = '\0';
	if (strncasecmp(s->eline, "EHLO ", 5) != 0 &&
	    strncasecmp(s->eline, "HELO ", 5) != 0) {
		fail(p, "%s: the client began with something else than EHLO",
		    p->host);
		return -1;
	}
	m = strlen(s->ehlo);
	if (s->oend + m > sizeof(s->obuf)) {
		fail(p, "%s: too many replies at once", p->host);
		return -1;
	}
	memcpy(s->obuf + s->oend, s->ehlo, m);
	s->oend += m;
	free(s->ehlo);
	s->ehlo = NULL;
	return 0;
}

/* Does the command line at b begin with verb (4 letters)? */
static bool
is_verb(const char *b, const char *verb)
{
	return strncasecmp(b, verb, 4) == 0 && (b[4] == ' ' || b[4] == '\r' ||
	    b[4] == '\n');
}

/* How much of cbuf from cstart is message data (up to its end). */
static size_t
data_length(const struct pump_state *s)
{
	enum data_scan st = s->scan;

	return scan_data(&st, s->cbuf + s->cstart, s->cend - s->cstart);
}

/* Do the bytes about to go on end the message data? */
static bool
ends_data(const struct pump_state *s)
{
	enum data_scan st = s->scan;

	(void)scan_data(&st, s->cbuf + s->cstart, s->lim - s->cstart);
	return st == D_END;
}

/* Let what is held go on as it is (its MAIL stays answered here). */
static void
release(struct pump_state *s)
{
	s->holding = false;
	s->lim = s->scanned;
}

/*
 * Classify libESMTP's whole command lines in cbuf[scanned, cend) and
 * move lim past what may go on. Under PIPELINING a MAIL line is answered
 * here at once (libESMTP 1.1 waits for MAIL's reply before it sends the
 * recipients, even when pipelining) and held with the RCPT lines after
 * it until the line that ends the group (DATA, RSET, QUIT, ...): then
 * all of it goes on in one write, and the server's real reply to MAIL
 * is taken here (reply_for_client). Only a MAIL with nothing before it
 * still to send or to answer to libESMTP is held (the real reply to an
 * end of data answered here may still be on its way), so that the local
 * reply takes its place in the order of replies.
 */
static void
classify(struct pump_state *s, long long now)
{
	if (!s->pipelining || s->data) {
		/* not a command line among them (the message data): up to
		 * its end, the lines after it are classified once it went */
		if (!s->holding)
			s->lim = s->scanned = s->data ? s->cstart +
			    data_length(s) : s->cend;
		return;
	}
	for (;;) {
		const char *b = s->cbuf + s->scanned;
		const char *nl = memchr(b, '\n', s->cend - s->scanned);
		size_t start = s->scanned, end;

		if (nl == NULL)
			break;
		end = (size_t)(nl - s->cbuf) + 1;
		s->scanned = end;
		if (s->holding) {
			if (!is_verb(b, "RCPT")) {
				s->holding = false;
				s->lim = end;
			}
			continue;
		}
		if (is_verb(b, "MAIL") && start == s->cstart && start ==
		    s->lim && (s->mail_ahead || (quiet(s) &&
		    sizeof(s->obuf) - s->oend >= sizeof(mail_held)))) {
			s->holding = true;
			s->hold_from = start;
			s->hold_since = now;
			if (s->mail_ahead)
				continue;	/* answered with the 354 */
			s->mails_held++;
			memcpy(s->obuf + s->oend, mail_held,
			    sizeof(mail_held) - 1);
			s->oend += sizeof(mail_held) - 1;
			continue;
		}
		s->lim = end;
	}
	if (s->holding && s->scanned - s->hold_from > HOLD_MAX)
		release(s);
}

/* Read from libESMTP after what cbuf holds. 1 read, 0 none, -1 end. */
static int
read_client(struct pump *p, struct pump_state *s, short *loc_ev,
    long long now)
{
	ssize_t n;

	if (s->cstart == s->cend)
		s->cstart = s->cend = s->lim = s->scanned = 0;
	else if (s->cstart > 0) {
		memmove(s->cbuf, s->cbuf + s->cstart, s->cend - s->cstart);
		s->cend -= s->cstart;
		s->lim -= s->cstart;
		s->scanned -= s->cstart;
		s->hold_from -= s->holding ? s->cstart : 0;
		s->cstart = 0;
	}
	if (s->cend == sizeof(s->cbuf)) {
		/* a line as long as the buffer: it goes on as it is */
		s->holding = false;
		s->lim = s->scanned = s->cend;
		return 1;
	}
	if (!s->loc_unread) {
		*loc_ev |= POLLIN;	/* read dry: poll says when */
		return 0;
	}
	n = read(p->local, s->cbuf + s->cend, sizeof(s->cbuf) - s->cend);
	s->loc_unread = n == (ssize_t)(sizeof(s->cbuf) - s->cend);
	if (n == 0)
		return -1;	/* libESMTP is done */
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return -1;
	if (n < 0) {
		*loc_ev |= POLLIN;
		return 0;
	}
	s->cend += (size_t)n;
	s->progress = now;
	return 1;
}

/*
 * May the message data in cbuf go on now? libESMTP writes it in pieces of
 * 2 KiB; sent on over TLS as they come, each would be a TLS record of its
 * own, to encrypt, send and decrypt. So over TLS the data waits until
 * there is DATA_BATCH of it, or its end, or for DATA_HOLD_MS at most.
 * Over plain TCP it goes on at once: the server reads the first piece
 * while libESMTP writes the next (measured: batching there is slower).
 */
static bool
data_ready(const struct pump *p, const struct pump_state *s, long long now)
{
	return p->up_ssl == NULL || s->lim - s->cstart >= DATA_BATCH || s->cend == sizeof(s->cbuf) ||
	    now >= s->batch_since + DATA_HOLD_MS || s->client_gone ||
	    ends_data(s);
}

/*
 * Hold (on) or send (off) what the upstream socket has: the end of the
 * data waits in the kernel for the next MAIL group (or QUIT), the pump
 * answering the end itself, and both go in one segment. Sent apart, a
 * server that answers the end at once and then the group's replies has
 * its second write held by Nagle until our delayed ACK (40 ms on Linux).
 * The kernel sends what is corked after 200 ms in any case. Returns the
 * new state; not a TCP socket (the SSH tunnel's pair): nothing.
 */
static bool
cork(struct pump *p, int on)
{
	return setsockopt(p->up_fd, IPPROTO_TCP, TCP_CORK, &on,
	    sizeof(on)) == 0 && on;
}

/* Move libESMTP's bytes on. 1 progress, 0 none, -1 end. */
static int
step_client(struct pump *p, struct pump_state *s, short *up_ev,
    short *loc_ev, long long now)
{
	int progress = 0;

	bool was_empty = s->cstart == s->lim;
	bool batching = s->data && !was_empty && !data_ready(p, s, now);

	if ((was_empty || batching) && !s->client_gone &&
	    (progress = read_client(p, s, loc_ev, now)) < 0) {
		/* libESMTP is done; the real replies to the ends of data
		 * answered here are still to come */
		if (s->ends_due == 0 || __atomic_load_n(&p->cut,
		    __ATOMIC_ACQUIRE))
			return -1;
		s->client_gone = true;
		if (s->holding) {
			/* a MAIL group nobody will finish: not sent */
			s->holding = false;
			s->cend = s->scanned = s->lim;
		}
		progress = 1;
	}
	if (s->ehlo != NULL && answer_ehlo(p, s) < 0)
		return -1;
	if (s->scanned < s->cstart)
		s->scanned = s->cstart;
	if (s->lim < s->cstart)
		s->lim = s->cstart;
	{
		size_t oend = s->oend;

		classify(s, now);
		if (s->oend != oend)
			progress = 1;	/* a MAIL answered: to libESMTP now */
	}
	if (s->cstart == s->lim)
		return progress;
	if (s->data && was_empty)
		s->batch_since = now;	/* the first of a batch */
	if (s->data && !data_ready(p, s, now))
		return progress;
	if (s->ends_first && !s->data && s->ends_due > 0)
		return progress;	/* after the reply to the end */
	{
		ssize_t w;

		/* only when the end is to be answered here (end_of_data):
		 * else libESMTP waits for the real reply, and nothing would
		 * send what is corked */
		if (s->data && s->end_ahead && !s->corked && !s->nocork &&
		    !s->ends_first && !(s->corked = cork(p, 1)))
			s->nocork = true;	/* not TCP (the SSH channel) */
		w = up_write(p, s->cbuf + s->cstart, s->lim - s->cstart, up_ev);
		if (w > 0) {
			track_client(s, s->cbuf + s->cstart, (size_t)w, now);
			/* the group after the end has gone on whole */
			if (s->corked && !s->data && !s->group_open &&
			    s->vlen == 0)
				s->corked = cork(p, 0);
			s->cstart += (size_t)w;
			s->progress = now;
			return 1;
		}
		if (w != PUMP_AGAIN) {
			int saved = errno;
			short ignore = 0;
			ssize_t n;

			/* a server that answered early and closed: its
			 * words explain the broken pipe better */
			if (s->spos == s->slen && (n = up_read(p, s->sbuf,
			    sizeof(s->sbuf) - 1, &ignore)) > 0) {
				s->spos = 0;
				s->slen = (size_t)n;
			}
			if (take_server(p, s, now) < 0) {
				run_accepts(s);
				return -1;
			}
			run_accepts(s);
			if (s->data)
				fail(p, "%s stopped taking the message data: "
				    "%s", p->host, strerror(saved ? saved :
				    EPIPE));
			else {
				p->dropped = p->error[0] == '\0';
				fail(p, "the connection to %s broke while "
				    "sending: %s", p->host, strerror(saved ?
				    saved : EPIPE));
				hand_on_the_rest(p, s);
			}
			return -1;
		}
	}
	return progress;
}

/* Nothing moved: wait for a side until the nearest deadline. 0 ok, -1
 * a deadline passed (the reason recorded). */
static int
wait_sides(struct pump *p, struct pump_state *s, short up_ev, short loc_ev,
    long long now, long long session_end)
{
	long long t = p->timeout * 1000, deadline = session_end;
	struct due *head = due_head(s);
	int which = 0;	/* 0 session, 1 reply, 2 sending */
	/* a side with nothing to wait for stays out (its hang-up would
	 * wake the loop for nothing); pump_cut shuts down a side polled */
	struct pollfd pfd[2] = {
		{ .fd = loc_ev ? p->local : -1, .events = loc_ev },
		{ .fd = up_ev ? p->up_fd : -1, .events = up_ev },
	};

	if (head != NULL && head->since + t < deadline) {
		deadline = head->since + t;
		which = 1;
	}
	if (s->cstart < s->lim && s->progress + t < deadline) {
		deadline = s->progress + t;
		which = 2;
	}
	if (s->holding && s->hold_since + HOLD_MS < deadline) {
		deadline = s->hold_since + HOLD_MS;
		which = 3;
	}
	if (s->data && s->cstart < s->lim && !data_ready(p, s, now) &&
	    s->batch_since + DATA_HOLD_MS < deadline) {
		deadline = s->batch_since + DATA_HOLD_MS;
		which = 4;	/* the data waiting goes on */
	}
	if (now >= deadline) {
		if (which == 4)
			return 0;
		if (which == 3) {
			/* the rest of the group is late: what is held goes
			 * on, the rest follows as it comes */
			release(s);
			return 0;
		}
		if (which == 1)
			fail(p, "%s timed out waiting for %s (%ld s)", p->host,
			    head->what, p->timeout);
		else if (which == 2)
			fail(p, "%s stopped reading %s (nothing taken for "
			    "%ld s)", p->host, s->data ? "the message data" :
			    "the commands", p->timeout);
		else
			fail(p, "%s: the session went over its time bound of "
			    "%ld s (see timeout in postie.conf(5))", p->host,
			    p->limit);
		/* libESMTP reads a reply for each command it pipelined, and
		 * crashes on the third failed read (a tarpit's late reply to
		 * the first of two RCPTs did it) */
		hand_on_the_rest(p, s);
		return -1;
	}
	if (poll(pfd, 2, deadline - now > 60000 ? 60000 :
	    (int)(deadline - now)) < 0 && errno != EINTR) {
		fail(p, "poll: %s", strerror(errno));
		return -1;
	}
	/* bytes, an end or an error to read: the next read finds it */
	s->loc_unread |= (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
	s->up_unread |= (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
	return 0;
}

static void
pump_loop(struct pump *p, struct pump_state *s)
{
	long long session_end = util_mono_ms() + (long long)p->limit * 1000;

	for (;;) {
		long long now = util_mono_ms();
		short up_ev = 0, loc_ev = 0;
		int a, b;

		if (__atomic_load_n(&p->cut, __ATOMIC_ACQUIRE) ||
		    (s->client_gone && s->ends_due == 0 && s->cstart ==
		    s->lim))
			return;
		/* the server first: an early reply is seen before a write
		 * into a closed connection fails */
		if ((a = step_server(p, s, &up_ev, &loc_ev, now)) < 0 ||
		    (b = step_client(p, s, &up_ev, &loc_ev, now)) < 0)
			return;
		if (a > 0 || b > 0)
			continue;
		if (wait_sides(p, s, up_ev, loc_ev, now, session_end) < 0)
			return;
	}
}

static void *
pump_main(void *arg)
{
	struct pump *p = arg;

	pump_loop(p, p->st);
	run_accepts(p->st);	/* none left on any way out; to be sure */
	/* libESMTP sees the end at once, whoever ended it */
	shutdown(p->local, SHUT_RDWR);
	if (p->up_ssl != NULL && p->error[0] == '\0')
		SSL_shutdown(p->up_ssl);
	shutdown(p->up_fd, SHUT_RDWR);
	return NULL;
}

int
pump_start(struct pump *p, int up_fd, SSL *up_ssl, const char *host,
    const char *greeting, const char *ehlo, long timeout, long limit,
    bool verbose, bool relayed, struct err *e)
{
	int sp[2];

	memset(p, 0, sizeof(*p));
	p->up_fd = up_fd;
	p->up_ssl = up_ssl;
	p->local = p->client = -1;
	p->timeout = timeout > 0 ? timeout : 30;
	p->limit = limit > 0 ? limit : p->timeout;
	p->server = HANDOFF_SERVER;
	p->verbose = verbose;
	snprintf(p->host, sizeof(p->host), "%s", host);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return err_set(e, ERR_OSERR, "socketpair: %s",
		    strerror(errno));
	p->local = sp[0];
	p->client = sp[1];
	fcntl(p->local, F_SETFL, fcntl(p->local, F_GETFL) | O_NONBLOCK);
	fcntl(up_fd, F_SETFL, fcntl(up_fd, F_GETFL) | O_NONBLOCK);
	p->st = xcalloc(1, sizeof(*p->st));
	p->st->up_unread = p->st->loc_unread = true;
	p->st->relayed = relayed;
	pthread_mutex_init(&p->st->lock, NULL);
	reply_init(&p->st->reply);
	if (greeting != NULL) {
		size_t n = strlen(greeting);

		memcpy(p->st->obuf, greeting, n);
		p->st->oend = n;
	} else
		due_push(p->st, DUE_OTHER, "the greeting", util_mono_ms());
	if (ehlo != NULL) {
		struct reply *r = xcalloc(1, sizeof(*r));

		p->st->ehlo = xstrdup(ehlo);
		reply_init(r);
		p->st->pipelining = reply_feed(r, ehlo, strlen(ehlo)) > 0 &&
		    r->done && r->code / 100 == 2 &&
		    reply_has_keyword(r, "PIPELINING");
		free(r);
	}
	if (pthread_create(&p->thread, NULL, pump_main, p) != 0) {
		close(p->local);
		close(p->client);
		free(p->st->ehlo);
		pthread_mutex_destroy(&p->st->lock);
		free(p->st);
		p->st = NULL;
		p->local = p->client = -1;
		return err_set(e, ERR_OSERR, "cannot start the pump thread");
	}
	p->running = true;
	handoff_arm(p->client);
	return 0;
}

void
pump_cut(struct pump *p)
{
	__atomic_store_n(&p->cut, 1, __ATOMIC_RELEASE);
	if (p->local >= 0)
		shutdown(p->local, SHUT_RDWR);
	if (p->up_fd >= 0)
		shutdown(p->up_fd, SHUT_RDWR);
}

void
pump_wait(struct pump *p)
{
	handoff_disarm();
	if (p->running) {
		pthread_join(p->thread, NULL);
		p->running = false;
	}
}

void
pump_on_accept(struct pump *p, pump_accept_fn fn, pump_wants_fn wants,
    void *arg)
{
	pthread_mutex_lock(&p->st->lock);
	p->st->accept = fn;
	p->st->wants = wants;
	p->st->accept_arg = arg;
	pthread_mutex_unlock(&p->st->lock);
}

void
pump_expect_mails(struct pump *p, size_t mails)
{
	__atomic_store_n(&p->mails_expected, mails, __ATOMIC_RELEASE);
}

void
pump_drain(struct pump *p)
{
	/* EOF for the pump once it has read what libESMTP wrote (shutdown
	 * acts on the socket, whoever else holds it) */
	if (p->client >= 0)
		shutdown(p->client, SHUT_WR);
}

size_t
pump_ends(const struct pump *p)
{
	struct pump_state *s = p->st;
	size_t n;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->lock);
	n = s->nends;
	pthread_mutex_unlock(&s->lock);
	return n;
}

bool
pump_end_reply(const struct pump *p, size_t nth, int *code, char **text)
{
	struct pump_state *s = p->st;
	bool got = false;

	*code = 0;
	*text = NULL;
	if (s == NULL)
		return false;
	pthread_mutex_lock(&s->lock);
	if (nth < s->nends && s->ends[nth].got) {
		got = true;
		*code = s->ends[nth].code;
		*text = xstrdup(s->ends[nth].text);
	}
	pthread_mutex_unlock(&s->lock);
	return got;
}

bool
pump_end_got(const struct pump *p, size_t nth)
{
	struct pump_state *s = p->st;
	bool got;

	if (s == NULL)
		return false;
	pthread_mutex_lock(&s->lock);
	got = nth < s->nends && s->ends[nth].got;
	pthread_mutex_unlock(&s->lock);
	return got;
}

bool
pump_mail_refused(const struct pump *p, size_t nth)
{
	struct pump_state *s = p->st;
	bool r;

	if (s == NULL)
		return false;
	pthread_mutex_lock(&s->lock);
	r = nth < s->refused_cap && s->refused[nth];
	pthread_mutex_unlock(&s->lock);
	return r;
}

void
pump_finish(struct pump *p)
{
	pump_wait(p);
	if (p->local >= 0)
		close(p->local);
	if (p->client >= 0)
		close(p->client);
	if (p->up_ssl != NULL)
		SSL_free(p->up_ssl);
	if (p->up_fd >= 0)
		close(p->up_fd);
	if (p->st != NULL) {
		free(p->st->ehlo);
		free(p->st->refusal);
		free(p->st->refused);
		free(p->st->acc);
		for (size_t i = 0; i < p->st->nends; i++)
			free(p->st->ends[i].text);
		free(p->st->ends);
		pthread_mutex_destroy(&p->st->lock);
		free(p->st->q);
		free(p->st);
	}
	p->local = p->client = p->up_fd = -1;
	p->up_ssl = NULL;
	p->st = NULL;
}
