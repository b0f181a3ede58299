/* test_pump.c - server replies parsed with bounds, the EHLO reply libESMTP
 * sees, and the pump between a client and an upstream (socketpairs). */
#include "testutil.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "pump.h"
#include "reply.h"
#include "util.h"

static struct reply *
feed(const char *s)
{
	static struct reply r;

	reply_init(&r);
	assert_int_equal(reply_feed(&r, s, strlen(s)), (ssize_t)strlen(s));
	return &r;
}

static void
test_reply_whole_and_split(void **state)
{
	const char *text = "250-mx.example\r\n250-SIZE 10\n250 OK\r\nrest";
	struct reply r;
	size_t i = 0;
	ssize_t k;

	(void)state;
	reply_init(&r);
	/* byte by byte: the reply ends where it ends, the rest is left */
	while (!r.done) {
		k = reply_feed(&r, text + i, 1);
		assert_true(k == 1);
		i++;
	}
	assert_string_equal(text + i, "rest");
	assert_int_equal(r.code, 250);
	assert_int_equal(r.lines, 3);
	assert_memory_equal(r.buf, "250-mx.example\r\n250-SIZE 10\r\n250 OK\r\n",
	    r.len);
	reply_init(&r);
	k = reply_feed(&r, text, strlen(text));
	assert_int_equal(k, (ssize_t)(strlen(text) - 4));
	assert_true(reply_has_keyword(&r, "size"));
	assert_false(reply_has_keyword(&r, "SIZ"));
}

static void
test_reply_bounds(void **state)
{
	struct reply r;
	char line[REPLY_LINE_MAX + 16];
	size_t n;

	(void)state;
	/* a line of exactly REPLY_LINE_MAX bytes passes, one more does not */
	memset(line, 'a', sizeof(line));
	memcpy(line, "250 ", 4);
	memcpy(line + REPLY_LINE_MAX, "\r\n", 2);
	reply_init(&r);
	assert_int_equal(reply_feed(&r, line, REPLY_LINE_MAX + 2),
	    REPLY_LINE_MAX + 2);
	assert_true(r.done);
	line[REPLY_LINE_MAX] = 'a';
	reply_init(&r);
	assert_int_equal(reply_feed(&r, line, REPLY_LINE_MAX + 2), -1);
	assert_string_equal(r.error, "sent a reply line over 2048 bytes");
	/* 100 lines pass, 101 do not */
	reply_init(&r);
	for (int i = 0; i < REPLY_LINES_MAX; i++)
		assert_int_equal(reply_feed(&r, "250-x\r\n", 7), 7);
	assert_int_equal(reply_feed(&r, "250 x\r\n", 7), -1);
	assert_string_equal(r.error, "sent a reply over 100 lines");
	/* 64 KiB in all */
	memset(line, 'b', sizeof(line));
	memcpy(line, "250-", 4);
	memcpy(line + 1000, "\r\n", 2);
	reply_init(&r);
	for (n = 0; n < REPLY_BYTES_MAX / 1002; n++)
		assert_int_equal(reply_feed(&r, line, 1002), 1002);
	assert_int_equal(reply_feed(&r, line, 1002), -1);
	assert_string_equal(r.error, "sent a reply over 65536 bytes");
	/* malformed */
	reply_init(&r);
	assert_int_equal(reply_feed(&r, "hello\r\n", 7), -1);
	assert_string_equal(r.error, "sent a malformed reply line");
	reply_init(&r);
	assert_int_equal(reply_feed(&r, "250x\r\n", 6), -1);
	/* one code a reply (found by fuzz_reply): a 249- line among 250s
	 * would let the pump and libESMTP read the reply differently */
	reply_init(&r);
	assert_int_equal(reply_feed(&r, "250-a\r\n", 7), 7);
	assert_int_equal(reply_feed(&r, "249-b\r\n250 c\r\n", 14), -1);
	assert_string_equal(r.error,
	    "sent a reply whose lines have different codes");
}

static void
test_reply_sanitized(void **state)
{
	struct reply *r;
	const char evil[] = "550 a\x1b[2J\0b\x07\xc3\xa9\r\n";

	(void)state;
	r = feed("");
	assert_int_equal(reply_feed(r, evil, sizeof(evil) - 1),
	    (ssize_t)sizeof(evil) - 1);
	assert_true(r->done);
	assert_memory_equal(r->buf, "550 a?[2J?b???\r\n", r->len);
}

static void
test_ehlo_shaped(void **state)
{
	struct reply *r;

	(void)state;
	/* the dropped line was the last: the one before becomes last */
	r = feed("250-mx\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 CHUNKING\r\n");
	reply_shape_ehlo(r);
	assert_memory_equal(r->buf, "250-mx\r\n250 PIPELINING\r\n", r->len);
	r = feed("250-mx\r\n250-chunking\r\n250-SIZE 5\r\n250 8BITMIME\r\n");
	reply_shape_ehlo(r);
	assert_memory_equal(r->buf, "250-mx\r\n250-SIZE 5\r\n250 8BITMIME\r\n",
	    r->len);
	/* only the keyword itself, not one it starts */
	r = feed("250-mx\r\n250 CHUNKINGX\r\n");
	reply_shape_ehlo(r);
	assert_memory_equal(r->buf, "250-mx\r\n250 CHUNKINGX\r\n", r->len);
	r = feed("250-mx\r\n250 STARTTLS\r\n");
	reply_shape_ehlo(r);
	assert_memory_equal(r->buf, "250 mx\r\n", r->len);
	/* postie did AUTH: libESMTP never sees it, in either form */
	r = feed("250-mx\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN\r\n"
	    "250-AUTHX\r\n250 DSN\r\n");
	reply_shape_ehlo(r);
	assert_memory_equal(r->buf, "250-mx\r\n250-AUTHX\r\n250 DSN\r\n",
	    r->len);
	/* sendmail's XUSR: libESMTP would send it before each MAIL */
	r = feed("250-mx\r\n250-XUSR\r\n250 PIPELINING\r\n");
	reply_shape_ehlo(r);
	assert_memory_equal(r->buf, "250-mx\r\n250 PIPELINING\r\n", r->len);
	/* an error reply stays as it is */
	r = feed("550-no\r\n550 CHUNKING\r\n");
	reply_shape_ehlo(r);
	assert_memory_equal(r->buf, "550-no\r\n550 CHUNKING\r\n", r->len);
}

static void
test_session_limit(void **state)
{
	(void)state;
	/* 6 + 3 per message + 1 per recipient waits, and the bytes at the
	 * floor rate */
	assert_int_equal(pump_session_limit(10, 1, 1, 0), 100);
	assert_int_equal(pump_session_limit(10, 2, 3, 30 << 20),
	    150 + (30 << 20) / PUMP_FLOOR_RATE);
}

/* ---- the pump over socketpairs -------------------------------------- */

#define HELD	"250 2.1.0 postie: sent on with the recipients; the server's " \
		"reply follows\r\n"
#define END_HELD "250 2.0.0 postie: the end of the data went on; the " \
		"server's reply follows\r\n"
#define PIPE_EHLO	"250-mx\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"


struct rig {
	struct pump	p;
	int		up[2];
	int		client;
};

/* the next pump started is told the server is reached through a relay */
static bool rig_relayed;

static void
rig_start_ehlo(struct rig *g, const char *greeting, const char *ehlo)
{
	struct err e;
	struct timeval tv = { .tv_sec = 5 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, g->up), 0);
	assert_int_equal(pump_start(&g->p, g->up[0], NULL, "mx.test",
	    greeting, ehlo, 1, 60, false, rig_relayed, &e), 0);
	g->client = g->p.client;
	setsockopt(g->client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(g->up[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void
rig_start(struct rig *g, const char *greeting)
{
	rig_start_ehlo(g, greeting, NULL);
}

static void
put(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Read exactly what s says, or fail. */
static void
expect(int fd, const char *s)
{
	char buf[4096];
	size_t n = strlen(s), got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_memory_equal(buf, s, n);
}

static void
expect_eof(int fd)
{
	char c;

	assert_true(read(fd, &c, 1) <= 0);
}

static void
rig_finish(struct rig *g)
{
	pump_cut(&g->p);
	pump_finish(&g->p);
	close(g->up[1]);
}

/* The server's last words (ending "221 bye"): libESMTP gets the 221, and
 * the session ends without an error. */
static void
rig_bye(struct rig *g, const char *server)
{
	put(g->up[1], server);
	expect(g->client, "221 bye\r\n");
	rig_finish(g);
	assert_string_equal(g->p.error, "");
}

static void
test_pump_dialogue(void **state)
{
	struct rig g;

	(void)state;
	rig_start(&g, NULL);
	put(g.up[1], "220 hi\r\n");
	expect(g.client, "220 hi\r\n");
	put(g.client, "EHLO me\r\n");
	expect(g.up[1], "EHLO me\r\n");
	put(g.up[1], "250-mx\r\n250-PIPELINING\r\n");
	put(g.up[1], "250 CHUNKING\r\n");
	expect(g.client, "250-mx\r\n250 PIPELINING\r\n");
	/* pipelined commands, replies in two reads; MAIL is answered by
	 * the pump, the server's reply to it taken there */
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g.up[1], "250 ok\r\n250 ok\r\n3");
	put(g.up[1], "54 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n");
	/* the end of the data split across writes; a line "..x" is not it;
	 * the pump answers the end (PIPELINING), the server's reply is kept */
	put(g.client, "a\r\n..x\r\n.\r");
	put(g.client, "\n");
	expect(g.client, END_HELD);
	put(g.client, "QUIT\r\n");
	expect(g.up[1], "a\r\n..x\r\n.\r\nQUIT\r\n");
	rig_bye(&g, "250 queued\r\n221 bye\r\n");
}

/* postie opened the session: libESMTP's EHLO is answered by the pump and
 * never reaches the server, which sees MAIL next; without PIPELINING the
 * MAIL goes alone and its reply is the server's */
static void
test_pump_local_ehlo(void **state)
{
	struct rig g;

	(void)state;
	/* the server reads MAIL first (expect compares every byte) */
	rig_start_ehlo(&g, "220 postie\r\n", "250-mx\r\n250 SIZE 100\r\n");
	expect(g.client, "220 postie\r\n");
	put(g.client, "EHLO ");
	put(g.client, "me\r\n");
	expect(g.client, "250-mx\r\n250 SIZE 100\r\n");
	put(g.client, "MAIL FROM:<a@b>\r\n");
	expect(g.up[1], "MAIL FROM:<a@b>\r\n");
	put(g.up[1], "250 ok\r\n");
	expect(g.client, "250 ok\r\n");
	put(g.client, "QUIT\r\n");
	expect(g.up[1], "QUIT\r\n");
	rig_bye(&g, "221 bye\r\n");
}

static void
rig_pipelining(struct rig *g)
{
	rig_start_ehlo(g, "220 postie\r\n", PIPE_EHLO);
	expect(g->client, "220 postie\r\n");
	put(g->client, "EHLO me\r\n");
	expect(g->client, PIPE_EHLO);
}

/* A pipelining session inside its first message's data: MAIL (answered
 * here) with its RCPT and DATA sent on, the server's 250, 250, 354, and
 * with the 354 the pump's answer to the end of the data to come. mails:
 * pump_expect_mails (with 2 or more the next MAIL is answered too). */
static void
rig_in_data_of(struct rig *g, size_t mails)
{
	rig_pipelining(g);
	pump_expect_mails(&g->p, mails);
	put(g->client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g->client, HELD);
	expect(g->up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g->up[1], "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g->client, mails > 1 ? "250 ok\r\n354 go\r\n" END_HELD HELD :
	    "250 ok\r\n354 go\r\n" END_HELD);
}

static void
rig_in_data(struct rig *g)
{
	rig_in_data_of(g, 0);
}

static void
test_reply_for_rcpt(void **state)
{
	char out[REPLY_BYTES_MAX + REPLY_LINE_MAX + 64];
	size_t n;

	(void)state;
	n = reply_for_rcpt(feed("451 4.3.0 try later\r\n"), out, sizeof(out));
	assert_int_equal(n, strlen("451 4.3.0 (reply to MAIL FROM) try "
	    "later\r\n"));
	assert_memory_equal(out, "451 4.3.0 (reply to MAIL FROM) try "
	    "later\r\n", n);
	/* continuation lines stay as they are */
	n = reply_for_rcpt(feed("550-5.7.1 no\r\n550 5.7.1 see x\r\n"), out,
	    sizeof(out));
	assert_memory_equal(out, "550-5.7.1 (reply to MAIL FROM) no\r\n"
	    "550 5.7.1 see x\r\n", n);
	/* no enhanced code, no text, a code alone */
	n = reply_for_rcpt(feed("452 full\r\n"), out, sizeof(out));
	assert_memory_equal(out, "452 (reply to MAIL FROM) full\r\n", n);
	n = reply_for_rcpt(feed("421 4.4.2\r\n"), out, sizeof(out));
	assert_memory_equal(out, "421 4.4.2 (reply to MAIL FROM)\r\n", n);
	n = reply_for_rcpt(feed("554\r\n"), out, sizeof(out));
	assert_memory_equal(out, "554 (reply to MAIL FROM)\r\n", n);
	/* text that only looks like a code is text */
	n = reply_for_rcpt(feed("451 4.3 later\r\n"), out, sizeof(out));
	assert_memory_equal(out, "451 (reply to MAIL FROM) 4.3 later\r\n", n);
	/* too small a buffer: nothing */
	assert_int_equal(reply_for_rcpt(feed("451 x\r\n"), out, 10), 0);
}

/* A refused MAIL under PIPELINING: libESMTP gets the pump's 250, then
 * the MAIL reply in place of each RCPT reply, then DATA's as it is */
static void
test_pump_mail_refused(void **state)
{
	struct rig g;

	(void)state;
	rig_pipelining(&g);
	put(g.client, "MAIL FROM:<a@b>\r\n");
	expect(g.client, HELD);
	/* the group goes on only with the line that ends it */
	put(g.client, "RCPT TO:<c@d>\r\n");
	put(g.client, "RCPT TO:<e@f>\r\nDATA\r\n");
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
	    "RCPT TO:<e@f>\r\nDATA\r\n");
	put(g.up[1], "451-4.3.0 try\r\n451 4.3.0 later\r\n503 5.5.1 need "
	    "MAIL\r\n250 2.1.5 ok\r\n503 5.5.1 no valid recipients\r\n");
	expect(g.client, "451-4.3.0 (reply to MAIL FROM) try\r\n"
	    "451 4.3.0 later\r\n"
	    "451-4.3.0 (reply to MAIL FROM) try\r\n451 4.3.0 later\r\n"
	    "503 5.5.1 no valid recipients\r\n");
	/* the next group: its MAIL accepted, replies go through */
	put(g.client, "RSET\r\n");
	expect(g.up[1], "RSET\r\n");
	put(g.up[1], "250 2.0.0 ok\r\n");
	expect(g.client, "250 2.0.0 ok\r\n");
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g.up[1], "250 2.1.0 ok\r\n550 5.1.1 no such user\r\n"
	    "554 5.5.1 no valid recipients\r\n");
	expect(g.client, "550 5.1.1 no such user\r\n"
	    "554 5.5.1 no valid recipients\r\n");
	rig_finish(&g);
	assert_string_equal(g.p.error, "");
}

/* A MAIL refused and the connection closed: libESMTP still gets the
 * refusal for each recipient; a MAIL never answered times out by name */
static void
test_pump_mail_refused_closed(void **state)
{
	struct rig g;

	(void)state;
	rig_pipelining(&g);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g.up[1], "421 4.3.2 shutting down\r\n");
	shutdown(g.up[1], SHUT_WR);
	expect(g.client, "421 4.3.2 (reply to MAIL FROM) shutting down\r\n");
	expect_eof(g.client);
	rig_finish(&g);
	assert_string_equal(g.p.error, "mx.test closed the connection while "
	    "waiting for the reply to RCPT");

	/* no reply to MAIL at all: each RCPT gets the pump's "000", which
	 * libESMTP keeps as no status, and then the end (a third failed
	 * read in a row crashes libESMTP 1.1) */
	rig_pipelining(&g);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
	    "RCPT TO:<e@f>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
	    "RCPT TO:<e@f>\r\nDATA\r\n");
	shutdown(g.up[1], SHUT_WR);
	expect(g.client, "000 postie: no reply, the connection is gone\r\n"
	    "000 postie: no reply, the connection is gone\r\n");
	expect_eof(g.client);
	rig_finish(&g);
	assert_string_equal(g.p.error, "mx.test closed the connection while "
	    "waiting for the reply to MAIL");

	rig_pipelining(&g);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	/* a timeout hands on the rest as a drop does */
	expect(g.client, "000 postie: no reply, the connection is gone\r\n");
	expect_eof(g.client);
	rig_finish(&g);
	assert_string_equal(g.p.error, "mx.test timed out waiting for the "
	    "reply to MAIL (1 s)");
}

/* A group whose end never comes goes on after a short hold */
static void
test_pump_hold_bounded(void **state)
{
	struct rig g;

	(void)state;
	rig_pipelining(&g);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
	put(g.up[1], "250 ok\r\n250 ok\r\n");
	expect(g.client, "250 ok\r\n");
	rig_finish(&g);
	assert_string_equal(g.p.error, "");
}

static void
test_reply_status(void **state)
{
	char out[512];

	(void)state;
	/* as libESMTP's status gives it to the journal */
	reply_status(feed("250 2.0.0 queued as X\r\n"), out, sizeof(out));
	assert_string_equal(out, "250 2.0.0 queued as X");
	reply_status(feed("451-4.3.0 mail\r\n451 4.3.0 later\r\n"), out,
	    sizeof(out));
	assert_string_equal(out, "451 4.3.0 mail??4.3.0 later");
	reply_status(feed("554\r\n"), out, sizeof(out));
	assert_string_equal(out, "554");
	reply_status(feed("550-first\r\n550-\r\n550 third\r\n"), out,
	    sizeof(out));
	assert_string_equal(out, "550 first??third");
	/* cut to fit, always terminated */
	reply_status(feed("250-abcdef\r\n250 ghijk\r\n"), out, 8);
	assert_string_equal(out, "250 abc");
	reply_status(feed("250-abc\r\n250 ghijk\r\n"), out, 10);
	assert_string_equal(out, "250 abc??");
}

/* Under PIPELINING the end of the data is answered by the pump: the next
 * MAIL group is held and goes on while the server's real reply to the
 * end is still on its way; that reply never reaches the client and is
 * kept by number; the drain waits for the last one. */
static void
test_pump_end_answered(void **state)
{
	struct rig g;
	int code;
	char *text;

	(void)state;
	rig_in_data(&g);
	/* the end was answered with the 354: its place is taken */
	assert_int_equal(pump_ends(&g.p), 1);
	assert_false(pump_end_reply(&g.p, 0, &code, &text));
	put(g.client, "one\r\n.\r\n");
	expect(g.up[1], "one\r\n.\r\n");
	/* the next MAIL is held although a reply (the end's) is due */
	put(g.client, "MAIL FROM:<e@f>\r\n");
	expect(g.client, HELD);
	put(g.client, "RCPT TO:<g@h>\r\nDATA\r\n");
	expect(g.up[1], "MAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n");
	put(g.up[1], "554-5.7.1 spam\r\n554 5.7.1 go away\r\n250 ok\r\n"
	    "250 ok\r\n354 go\r\n");
	/* the 554 is never passed on; the next end is answered ahead */
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD);
	assert_true(pump_end_reply(&g.p, 0, &code, &text));
	assert_int_equal(code, 554);
	assert_string_equal(text, "554 5.7.1 spam??5.7.1 go away");
	free(text);
	assert_int_equal(pump_ends(&g.p), 2);
	put(g.client, "two\r\n.\r\n");
	put(g.client, "QUIT\r\n");
	expect(g.up[1], "two\r\n.\r\nQUIT\r\n");
	/* the client is done; the pump waits for the end's reply */
	pump_drain(&g.p);
	usleep(100000);
	assert_false(pump_end_reply(&g.p, 1, &code, &text));
	put(g.up[1], "250 2.0.0 queued\r\n221 bye\r\n");
	pump_wait(&g.p);
	assert_true(pump_end_reply(&g.p, 1, &code, &text));
	assert_int_equal(code, 250);
	assert_string_equal(text, "250 2.0.0 queued");
	free(text);
	assert_false(pump_end_reply(&g.p, 2, &code, &text));
	rig_finish(&g);
	assert_string_equal(g.p.error, "");
}

/*
 * With more messages to come (pump_expect_mails), the next MAIL is
 * answered with the 354 too: the client writes the data, its end and the
 * whole next group without waiting, and the server's real replies to the
 * end and to that MAIL are taken here; a refused one still reaches the
 * client as its recipients' refusal. After the last message's 354 only
 * the end is answered.
 */
static void
test_pump_mail_answered_ahead(void **state)
{
	struct rig g;
	int code;
	char *text;

	(void)state;
	rig_in_data_of(&g, 3);
	put(g.client, "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\n"
	    "DATA\r\n");
	expect(g.up[1], "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\n"
	    "DATA\r\n");
	put(g.up[1], "250 2.0.0 one queued\r\n250 ok\r\n250 ok\r\n"
	    "354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD HELD);
	assert_true(pump_end_reply(&g.p, 0, &code, &text));
	assert_int_equal(code, 250);
	assert_string_equal(text, "250 2.0.0 one queued");
	free(text);
	/* the MAIL may come on its own: held until its group is whole */
	put(g.client, "two\r\n.\r\nMAIL FROM:<i@j>\r\n");
	expect(g.up[1], "two\r\n.\r\n");
	put(g.client, "RCPT TO:<k@l>\r\nDATA\r\n");
	expect(g.up[1], "MAIL FROM:<i@j>\r\nRCPT TO:<k@l>\r\nDATA\r\n");
	put(g.up[1], "250 2.0.0 two queued\r\n451 4.3.0 later\r\n"
	    "503 5.5.1 no\r\n503 5.5.1 no\r\n");
	expect(g.client, "451 4.3.0 (reply to MAIL FROM) later\r\n"
	    "503 5.5.1 no\r\n");
	assert_false(pump_mail_refused(&g.p, 1));
	assert_true(pump_mail_refused(&g.p, 2));
	assert_int_equal(pump_ends(&g.p), 2);
	assert_true(pump_end_reply(&g.p, 1, &code, &text));
	assert_string_equal(text, "250 2.0.0 two queued");
	free(text);
	rig_finish(&g);
	assert_string_equal(g.p.error, "");
}

/* Are no bytes readable on fd within ms? */
static bool
nothing_within(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 0;
}

/*
 * A pipelining session in its first message's data (rig_in_data_of, 3
 * messages), relayed or not; the first message's end goes with the next
 * group, the server answers the end at once and the group gap_ms later.
 */
static void
rig_first_end(struct rig *g, bool relayed, int gap_ms)
{
	rig_relayed = relayed;
	rig_in_data_of(g, 3);
	rig_relayed = false;
	put(g->client, "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\n"
	    "DATA\r\n");
	expect(g->up[1], "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\n"
	    "DATA\r\n");
	put(g->up[1], "250 2.0.0 one queued\r\n");
	usleep((useconds_t)gap_ms * 1000);
	put(g->up[1], "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g->client, "250 ok\r\n354 go\r\n" END_HELD HELD);
}

/*
 * Through a relay (the SSH tunnel, a SOCKS proxy) a server's second write
 * can wait for the relay's delayed ACK of its first: the reply to the
 * group then comes long after the reply to the end of the data. Once that
 * gap is longer than the end's reply took, the next groups wait for the
 * reply to their end (one round trip) instead; libESMTP still writes all
 * without waiting.
 */
static void
test_pump_relayed_waits_for_the_end_reply(void **state)
{
	struct rig g;
	int code;
	char *text;

	(void)state;
	rig_first_end(&g, true, 60);
	assert_true(pump_end_reply(&g.p, 0, &code, &text));
	assert_string_equal(text, "250 2.0.0 one queued");
	free(text);
	put(g.client, "two\r\n.\r\nMAIL FROM:<i@j>\r\nRCPT TO:<k@l>\r\n"
	    "DATA\r\n");
	expect(g.up[1], "two\r\n.\r\n");
	assert_true(nothing_within(g.up[1], 150));
	put(g.up[1], "250 2.0.0 two queued\r\n");
	expect(g.up[1], "MAIL FROM:<i@j>\r\nRCPT TO:<k@l>\r\nDATA\r\n");
	put(g.up[1], "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD);
	/* QUIT after the last end waits too; the session ends as before */
	put(g.client, "three\r\n.\r\nQUIT\r\n");
	expect(g.up[1], "three\r\n.\r\n");
	assert_true(nothing_within(g.up[1], 150));
	put(g.up[1], "250 2.0.0 three queued\r\n");
	expect(g.up[1], "QUIT\r\n");
	rig_bye(&g, "221 bye\r\n");
}

/* No gap through a relay (a far server: its reply to the end took longer
 * than the gap), a gap longer than any delayed ACK (the server's own time
 * to check the recipient: waiting would not shorten it), or a gap on a
 * direct connection: pipelined as before */
static void
test_pump_pipelined_without_a_relay_gap(void **state)
{
	struct rig g;

	(void)state;
	rig_first_end(&g, true, 0);
	put(g.client, "two\r\n.\r\nQUIT\r\n");
	expect(g.up[1], "two\r\n.\r\nQUIT\r\n");
	rig_finish(&g);
	rig_first_end(&g, true, 400);
	put(g.client, "two\r\n.\r\nQUIT\r\n");
	expect(g.up[1], "two\r\n.\r\nQUIT\r\n");
	rig_finish(&g);
	rig_first_end(&g, false, 60);
	put(g.client, "two\r\n.\r\nQUIT\r\n");
	expect(g.up[1], "two\r\n.\r\nQUIT\r\n");
	rig_finish(&g);
}

/* libESMTP is done while a MAIL group is held and the end's reply is still
 * due: the group is never sent, the pump ends once the reply came */
static void
test_pump_drain_drops_a_held_group(void **state)
{
	struct rig g;
	int code;
	char *text;
	char c;
	long long t0;

	(void)state;
	rig_in_data(&g);
	put(g.client, "one\r\n.\r\n");
	put(g.client, "MAIL FROM:<e@f>\r\n");
	t0 = util_mono_ms();
	expect(g.client, HELD);
	/* at once, not when the hold runs out (HOLD_MS, 500 ms) */
	assert_true(util_mono_ms() - t0 < 250);
	expect(g.up[1], "one\r\n.\r\n");
	pump_drain(&g.p);
	usleep(700000);		/* past HOLD_MS: a held group went on then */
	put(g.up[1], "250 2.0.0 queued\r\n");
	pump_wait(&g.p);
	assert_true(pump_end_reply(&g.p, 0, &code, &text));
	assert_int_equal(code, 250);
	free(text);
	/* the held MAIL never went on: the server reads the end */
	shutdown(g.up[0], SHUT_WR);
	assert_true(read(g.up[1], &c, 1) <= 0);
	rig_finish(&g);
	assert_string_equal(g.p.error, "");
}

/* The server closes with the end's reply due: no reply is kept, the next
 * group's RCPT lines get the pump's "no reply", the reason names it; a
 * reply that never comes is a timeout, also when the client is done */
static void
test_pump_end_unanswered(void **state)
{
	struct rig g;
	int code;
	char *text;

	(void)state;
	rig_in_data(&g);
	put(g.client, "one\r\n.\r\n");
	put(g.client, "MAIL FROM:<e@f>\r\n");
	expect(g.client, HELD);
	put(g.client, "RCPT TO:<g@h>\r\nDATA\r\n");
	expect(g.up[1], "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\n"
	    "DATA\r\n");
	shutdown(g.up[1], SHUT_WR);
	expect(g.client, "000 postie: no reply, the connection is gone\r\n");
	expect_eof(g.client);
	rig_finish(&g);
	assert_false(pump_end_reply(&g.p, 0, &code, &text));
	assert_string_equal(g.p.error, "mx.test closed the connection while "
	    "waiting for the reply to the message data");

	rig_in_data(&g);
	put(g.client, "one\r\n.\r\n");
	pump_drain(&g.p);
	pump_wait(&g.p);	/* within timeout (1 s) */
	assert_false(pump_end_reply(&g.p, 0, &code, &text));
	rig_finish(&g);
	assert_string_equal(g.p.error, "mx.test timed out waiting for the "
	    "reply to the message data (1 s)");
}

static void
test_pump_early_reply(void **state)
{
	struct rig g;

	(void)state;
	rig_start(&g, "220 postie: the session is open\r\n");
	expect(g.client, "220 postie: the session is open\r\n");
	put(g.client, "DATA\r\n");
	expect(g.up[1], "DATA\r\n");
	put(g.up[1], "354 go\r\n");
	expect(g.client, "354 go\r\n");
	put(g.client, "part of the data\r\n.\r");
	expect(g.up[1], "part of the data\r\n.\r");
	put(g.up[1], "250 2.0.0 queued\r\n");
	expect_eof(g.client);	/* never handed on: the pump cut */
	rig_finish(&g);
	assert_string_equal(g.p.error, "mx.test answered before the end of "
	    "the message data (protocol error): 250 2.0.0 queued");
}

static void
test_pump_deadlines(void **state)
{
	struct rig g;

	(void)state;
	/* a reply that drips too slowly: whole within timeout or cut */
	rig_start(&g, NULL);
	put(g.up[1], "220 hi\r\n");
	expect(g.client, "220 hi\r\n");
	put(g.client, "RCPT TO:<c@d>\r\n");
	expect(g.up[1], "RCPT TO:<c@d>\r\n");
	for (int i = 0; i < 6; i++) {
		if (write(g.up[1], "2", 1) < 0)
			break;
		usleep(250000);
	}
	expect(g.client, "000 postie: no reply, the connection is gone\r\n");
	expect_eof(g.client);
	rig_finish(&g);
	assert_string_equal(g.p.error, "mx.test timed out waiting for the "
	    "reply to RCPT (1 s)");
	/* a reply nobody asked for */
	rig_start(&g, "220 up\r\n");
	expect(g.client, "220 up\r\n");
	put(g.up[1], "421 going away\r\n");
	expect_eof(g.client);
	rig_finish(&g);
	assert_string_equal(g.p.error, "mx.test sent a reply nobody asked for "
	    "(protocol error): 421 going away");
}

/* What the accept hook saw (test_pump_accept_hook). */
struct accepts {
	struct pump	*p;
	size_t		 mail[8];
	size_t		 n;
	int		 gate[2];	/* the hook waits for a byte */
	bool		 reply_seen;	/* pump_end_reply during the hook */
};

static void
accept_hook(void *arg, size_t mail)
{
	struct accepts *a = arg;
	struct pollfd pfd = { .fd = a->gate[0], .events = POLLIN };
	int code;
	char *text, c;

	if (a->n < 8)
		a->mail[a->n] = mail;
	a->n++;
	/* here each message has its data: the nth end is the nth MAIL's */
	if (pump_end_reply(a->p, mail, &code, &text)) {
		a->reply_seen = true;
		free(text);
	}
	a->reply_seen |= pump_end_got(a->p, mail);
	if (a->gate[0] >= 0 && poll(&pfd, 1, 5000) == 1)
		(void)read(a->gate[0], &c, 1);
}

/*
 * The hook runs for each transaction the server accepted whole (MAIL,
 * every RCPT, the end of the data: 2xx) whose end the pump answered:
 * after the client has the replies that came with the end's, before the
 * client's next bytes go on to the server, and before pump_end_reply
 * shows the end's reply. A refused recipient or a refused end: no hook.
 */
static void
test_pump_accept_hook(void **state)
{
	struct rig g;
	struct accepts a = { .n = 0 };
	int code, queued = -1;
	char *text;

	(void)state;
	rig_pipelining(&g);
	assert_int_equal(pipe(a.gate), 0);
	a.p = &g.p;
	pump_expect_mails(&g.p, 4);
	pump_on_accept(&g.p, accept_hook, NULL, &a);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g.up[1], "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD HELD);
	put(g.client, "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\n"
	    "RCPT TO:<x@y>\r\nDATA\r\n");
	expect(g.up[1], "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\n"
	    "RCPT TO:<x@y>\r\nDATA\r\n");
	/* message 0 accepted whole: the client has its replies while the
	 * hook still runs (it waits at the gate) ... */
	put(g.up[1], "250 2.0.0 one queued\r\n250 ok\r\n250 ok\r\n"
	    "550 5.1.1 no\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n550 5.1.1 no\r\n354 go\r\n" END_HELD HELD);
	/* ... and what it writes now does not go on until the hook returns */
	put(g.client, "two\r\n.\r\nMAIL FROM:<i@j>\r\nRCPT TO:<k@l>\r\n"
	    "DATA\r\n");
	usleep(100000);
	assert_int_equal(ioctl(g.up[1], FIONREAD, &queued), 0);
	assert_int_equal(queued, 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.mail[0], 0);
	assert_false(pump_end_reply(&g.p, 0, &code, &text));
	assert_false(pump_end_got(&g.p, 0));
	assert_int_equal(write(a.gate[1], "x", 1), 1);
	expect(g.up[1], "two\r\n.\r\nMAIL FROM:<i@j>\r\nRCPT TO:<k@l>\r\n"
	    "DATA\r\n");
	assert_true(pump_end_got(&g.p, 0));
	assert_true(pump_end_reply(&g.p, 0, &code, &text));
	assert_int_equal(code, 250);
	free(text);
	assert_false(pump_end_got(&g.p, 1));
	/* message 1 had a recipient refused: no hook, its reply at once */
	put(g.up[1], "250 2.0.0 two queued\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD HELD);
	assert_true(pump_end_reply(&g.p, 1, &code, &text));
	free(text);
	put(g.client, "three\r\n.\r\nMAIL FROM:<m@n>\r\nRCPT TO:<o@p>\r\n"
	    "DATA\r\n");
	expect(g.up[1], "three\r\n.\r\nMAIL FROM:<m@n>\r\nRCPT TO:<o@p>\r\n"
	    "DATA\r\n");
	/* message 2's end refused: no hook */
	put(g.up[1], "451 4.3.0 later\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD);
	put(g.client, "four\r\n.\r\nQUIT\r\n");
	expect(g.up[1], "four\r\n.\r\nQUIT\r\n");
	assert_int_equal(write(a.gate[1], "x", 1), 1);	/* for message 3 */
	put(g.up[1], "250 2.0.0 four queued\r\n221 bye\r\n");
	expect(g.client, "221 bye\r\n");
	pump_drain(&g.p);
	pump_wait(&g.p);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.mail[1], 3);
	assert_false(a.reply_seen);
	assert_true(pump_end_reply(&g.p, 2, &code, &text));
	assert_int_equal(code, 451);
	free(text);
	assert_true(pump_end_reply(&g.p, 3, &code, &text));
	assert_int_equal(code, 250);
	free(text);
	rig_finish(&g);
	close(a.gate[0]);
	close(a.gate[1]);
	assert_string_equal(g.p.error, "");
}

static bool
wants_none(void *arg, size_t mail)
{
	(void)arg;
	(void)mail;
	return false;
}

/* A transaction the hook does not act on (wants false): no hook, and the
 * end's reply shows before the client has the replies that came with it,
 * so the caller records it before the client's next data can go on. */
static void
test_pump_accept_unwanted(void **state)
{
	struct rig g;
	struct accepts a = { .n = 0 };
	int code;
	char *text;

	(void)state;
	rig_pipelining(&g);
	a.p = &g.p;
	a.gate[0] = -1;
	pump_expect_mails(&g.p, 2);
	pump_on_accept(&g.p, accept_hook, wants_none, &a);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g.up[1], "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD HELD);
	put(g.client, "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n");
	expect(g.up[1], "one\r\n.\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n");
	put(g.up[1], "250 2.0.0 one queued\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD);
	assert_true(pump_end_got(&g.p, 0));
	assert_true(pump_end_reply(&g.p, 0, &code, &text));
	assert_int_equal(code, 250);
	free(text);
	assert_int_equal(a.n, 0);
	rig_finish(&g);
}

/*
 * The hook is told the MAIL its end belongs to, not the end's number:
 * after a refused DATA (no end) the first end is the second MAIL's. And a
 * refused MAIL spoils its transaction whatever the later replies say.
 */
static void
test_pump_accept_mapping(void **state)
{
	struct rig g;
	struct accepts a = { .n = 0 };
	int code;
	char *text;

	(void)state;
	rig_pipelining(&g);
	a.p = &g.p;
	a.gate[0] = -1;
	pump_expect_mails(&g.p, 2);
	pump_on_accept(&g.p, accept_hook, NULL, &a);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g.up[1], "250 ok\r\n250 ok\r\n554 5.5.1 no\r\n");
	expect(g.client, "250 ok\r\n554 5.5.1 no\r\n");
	put(g.client, "RSET\r\n");
	expect(g.up[1], "RSET\r\n");
	put(g.up[1], "250 ok\r\n");
	expect(g.client, "250 ok\r\n");
	put(g.client, "MAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n");
	put(g.up[1], "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "250 ok\r\n354 go\r\n" END_HELD);
	put(g.client, "two\r\n.\r\nQUIT\r\n");
	expect(g.up[1], "two\r\n.\r\nQUIT\r\n");
	put(g.up[1], "250 2.0.0 two queued\r\n221 bye\r\n");
	expect(g.client, "221 bye\r\n");
	pump_drain(&g.p);
	pump_wait(&g.p);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.mail[0], 1);		/* end 0, MAIL 1 */
	assert_true(pump_end_reply(&g.p, 0, &code, &text));
	free(text);
	rig_finish(&g);
	assert_string_equal(g.p.error, "");

	/* a held MAIL refused, its RCPT and DATA and the end 2xx anyway */
	memset(&a, 0, sizeof(a));
	rig_pipelining(&g);
	a.p = &g.p;
	a.gate[0] = -1;
	pump_expect_mails(&g.p, 1);
	pump_on_accept(&g.p, accept_hook, NULL, &a);
	put(g.client, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	expect(g.client, HELD);
	expect(g.up[1], "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	put(g.up[1], "451 4.3.0 later\r\n250 ok\r\n354 go\r\n");
	expect(g.client, "451 4.3.0 (reply to MAIL FROM) later\r\n354 go\r\n"
	    END_HELD);
	put(g.client, ".\r\nQUIT\r\n");
	expect(g.up[1], ".\r\nQUIT\r\n");
	put(g.up[1], "250 ok\r\n221 bye\r\n");
	expect(g.client, "221 bye\r\n");
	pump_drain(&g.p);
	pump_wait(&g.p);
	assert_int_equal(a.n, 0);
	assert_true(pump_end_got(&g.p, 0));
	rig_finish(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_whole_and_split),
		cmocka_unit_test(test_reply_bounds),
		cmocka_unit_test(test_reply_sanitized),
		cmocka_unit_test(test_ehlo_shaped),
		cmocka_unit_test(test_session_limit),
		cmocka_unit_test(test_pump_dialogue),
		cmocka_unit_test(test_pump_local_ehlo),
		cmocka_unit_test(test_reply_for_rcpt),
		cmocka_unit_test(test_pump_mail_refused),
		cmocka_unit_test(test_pump_mail_refused_closed),
		cmocka_unit_test(test_pump_hold_bounded),
		cmocka_unit_test(test_reply_status),
		cmocka_unit_test(test_pump_end_answered),
		cmocka_unit_test(test_pump_mail_answered_ahead),
		cmocka_unit_test(test_pump_relayed_waits_for_the_end_reply),
		cmocka_unit_test(test_pump_pipelined_without_a_relay_gap),
		cmocka_unit_test(test_pump_end_unanswered),
		cmocka_unit_test(test_pump_drain_drops_a_held_group),
		cmocka_unit_test(test_pump_early_reply),
		cmocka_unit_test(test_pump_deadlines),
		cmocka_unit_test(test_pump_accept_hook),
		cmocka_unit_test(test_pump_accept_unwanted),
		cmocka_unit_test(test_pump_accept_mapping),
	};

	signal(SIGPIPE, SIG_IGN);	/* as in postie's main */
	return cmocka_run_group_tests_name("test_pump", tests, NULL, NULL);
}
