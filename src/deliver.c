/*
 * deliver.c - one queue run. See deliver.h and queue/README.md.
 *
 * The order of durable steps is what makes a crash harmless: as soon as
 * the server answered a message's data, the outcome is made durable: a
 * message whose recipients were all accepted is removed (unlink, fsync of
 * msg/: the removal is the record), otherwise each recipient's outcome is
 * journaled (fsync'd) with an "attempt" line before the next message's
 * data goes out (under PIPELINING its MAIL group goes with the end of
 * this one's data, pump.h; smtp.c reports a message when the server's
 * own reply to its data has come). A message is removed only when every
 * recipient is final and the failure notice, if any, is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bounce.h"
#include "deliver.h"
#include "dirsync.h"
#include "input.h"
#include "local.h"
#include "maildir.h"
#include "notify.h"
#include "queue.h"
#include "reach.h"
#include "safefile.h"
#include "smtp.h"
#include "spool.h"
#include "stopsig.h"
#include "tls.h"

/* Transactions after the first for a message whose server takes only so
 * many recipients at a time (100 at Gmail: 5000 recipients in all). */
#define MORE_ROUNDS	49

struct item {
	char			*id;
	int			 fd;		/* locked msg/ID */
	struct envelope		 env;
	struct msgstate		 st;
	const struct identity	*ident;
	bool			 attempted;	/* "attempt" journaled */
	bool			 finished;	/* delivered and removed */
	bool			 no_room;	/* its journal had no room on
						 * the disk: not tried this run */
	bool			 more;		/* the server took some of its
						 * recipients and said "too many
						 * recipients" (452 4.5.3) for
						 * others: another transaction
						 * now (RFC 5321 4.5.3.1.10) */
};

struct runner {
	const struct config	*cfg;
	const struct deliver_opts *o;
	struct queue		 q;
	struct crash		 crash;
	struct log		*log;
	time_t			 now;
	struct item		*items;
	size_t			 nitems;
	int			 unreachable;
	char			 unreachable_why[ERR_MSG_MAX];
	bool			*down;		/* per identity: not reached
						 * this run, not tried again */
	bool			*reached;	/* per identity: dialled */
	char			**down_why;	/* per identity, when down */
	char			**failed_why;	/* per identity: why its session
						 * failed (TLS, AUTH, password) */
	struct reach		 reach;		/* QUEUE/unreachable at start */
	size_t			 done, total;	/* progress */
	bool			 progress;
	struct dirsync		 sync;		/* msg/ removals to disk */
	size_t			 no_room;	/* messages left for want of
						 * room (no_room) */
	bool			 stop;		/* an outcome could not be
						 * recorded: nothing more goes */
	struct tls_warm		 warm;		/* OpenSSL's set-up, begun
						 * while the queue is read */
	struct err		 stuck;		/* the first notice that could
						 * not be written (ERR_OK: none) */
};

/* How long the message has waited: since it was queued, less the time
 * it was held (queue_age); never overflows, never negative. */
static long long
queued_age(const struct runner *r, const struct item *it)
{
	return queue_age(&it->env, &it->st, r->now);
}

time_t
deliver_next_try(const struct config *cfg, int attempts, time_t now)
{
	size_t i = attempts < 1 ? 0 : (size_t)attempts - 1;

	if (cfg->nretry == 0)
		return now + 300;
	if (i >= cfg->nretry)
		i = cfg->nretry - 1;
	return now + cfg->retry[i];
}

/* A journal line is at most this long (a reply is cut to fit). The room
 * held for a message's journal: a block for its file, and ROOM_LINE a
 * line (most are under 200 bytes; the room let go covers a long one). */
#define JOURNAL_LINE_MAX	1024
#define ROOM_FILE		4096
#define ROOM_LINE		512

static int
journal(struct runner *r, struct item *it, struct err *e, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static int
journal(struct runner *r, struct item *it, struct err *e, const char *fmt,
    ...)
{
	char line[JOURNAL_LINE_MAX];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%lld ", (long long)time(NULL));
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	util_sanitize(line);
	if (queue_state_append(&r->q, it->id, line, e) == 0)
		return 0;
	{
		struct err w = *e;

		err_set(e, w.code, "%s; the message stays queued (%s)", w.msg,
		    w.code == ERR_TEMPFAIL ? "free some space, then run "
		    "deliver again" : "the next run tries again");
	}
	return -1;
}

static void
item_free(struct item *it)
{
	queue_unlock(it->fd);
	envelope_free(&it->env);
	msgstate_free(&it->st);
	free(it->id);
}

static bool
is_local(const char *rcpt)
{
	return strchr(rcpt, '@') == NULL;
}

static bool
pending(const struct item *it, size_t i)
{
	return it->st.r[i].state == RCPT_WAITING ||
	    it->st.r[i].state == RCPT_DEFERRED;
}

static bool
all_final(const struct item *it)
{
	for (size_t i = 0; i < it->st.n; i++)
		if (pending(it, i))
			return false;
	return true;
}

static int
refold(struct runner *r, struct item *it, struct err *e)
{
	msgstate_free(&it->st);
	return queue_state_read(&r->q, it->id, &it->env, &it->st, e);
}

static int
mark_attempt(struct runner *r, struct item *it, struct err *e)
{
	if (it->attempted)
		return 0;
	it->attempted = true;
	return journal(r, it, e, "attempt");
}

static void
log_outcome(struct runner *r, struct item *it, size_t i, const char *what,
    const char *via, const char *reply)
{
	log_msg(r->log, strcmp(what, "sent") == 0 ? LOG_INFO : LOG_NOTICE,
	    "%s: to=<%s> via=%s status=%s reply=%s", it->id,
	    it->env.rcpts.v[i], via, what, reply ? reply : "");
}

/* Record one recipient's outcome durably. */
static int
record(struct runner *r, struct item *it, size_t i, enum smtp_outcome out,
    const char *reply, const char *via, struct err *e)
{
	static const char *ev[] = { "ok", "defer", "fail" };
	static const char *what[] = { "sent", "deferred", "failed" };

	if (mark_attempt(r, it, e) < 0 ||
	    journal(r, it, e, "%s %zu %s", ev[out], i, reply ? reply : "") < 0)
		return -1;
	log_outcome(r, it, i, what[out], via, reply);
	return 0;
}

/* --- failure notices ------------------------------------------------- */

static int
memfd_with(const struct strbuf *sb, struct err *e)
{
	int fd = memfd_create("postie-bounce", MFD_CLOEXEC);

	if (fd < 0 || util_write_all(fd, sb->s, sb->len) < 0 ||
	    lseek(fd, 0, SEEK_SET) < 0) {
		if (fd >= 0)
			close(fd);
		return err_set(e, ERR_OSERR, "cannot build the failure notice: "
		    "%s", strerror(errno));
	}
	return fd;
}

/*
 * Write a notice (sb) where `bounce` says, as kind. With once (a name),
 * a Maildir gets it under that name at most once (maildir.h), so a run
 * that crashed after writing it does not write it again.
 */
static int
write_notice(struct runner *r, struct item *it, enum bounce_kind kind,
    const struct strbuf *sb, const char *once, struct err *e)
{
	const struct config *cfg = r->cfg;
	int rc = 0, fd;
	char reason[512];

	if (kind == BOUNCE_MDA && cfg->mda.n == 0)
		kind = BOUNCE_MAILDIR;
	switch (kind) {
	case BOUNCE_NONE:
		break;
	case BOUNCE_MAILDIR:
		if (once != NULL)
			rc = maildir_deliver_once(cfg->bounce_dir, once, sb->s,
			    sb->len, &r->crash, e) < 0 ? -1 : 0;
		else
			rc = maildir_deliver(cfg->bounce_dir, sb->s, sb->len,
			    -1, 0, 0, &r->crash, e);
		break;
	case BOUNCE_MDA:
		if ((fd = memfd_with(sb, e)) < 0) {
			rc = -1;
			break;
		}
		if (local_mda(&cfg->mda, getenv("USER") ? getenv("USER") :
		    "postmaster", "", fd, 0, reason, sizeof(reason)) !=
		    SMTP_OK)
			rc = err_set(e, ERR_TEMPFAIL, "notice: %s", reason);
		close(fd);
		break;
	case BOUNCE_SENDER: {
		struct spool_opts so;
		struct spool_result res;
		struct input *in;

		if ((fd = memfd_with(sb, e)) < 0) {
			rc = -1;
			break;
		}
		in = xmalloc(sizeof(*in));
		spool_opts_init(&so);
		so.sender = "";
		/* the way the message came: the null sender matches no
		 * 'from', and without a default identity the notice would
		 * wait out its lifetime and be dropped */
		so.identity = it->ident;
		sv_push(&so.rcpts, it->env.sender);
		input_init(in, fd, INPUT_RAW);
		rc = spool_message(cfg, &r->q, in, &so, &res, e);
		if (rc == 0) {
			log_msg(r->log, LOG_INFO, "%s: notice queued as %s",
			    it->id, res.id);
			spool_result_free(&res);
		}
		spool_opts_free(&so);
		free(in);
		close(fd);
		break;
	}
	}
	return rc;
}

/* Log where a notice (what: "failure notice", "delay warning") went:
 * written to a Maildir, delivered by the mda, or queued to the sender,
 * not "sent" before it is. */
static void
log_notice(struct runner *r, const struct item *it, enum bounce_kind kind,
    const char *what)
{
	if (kind == BOUNCE_MDA && r->cfg->mda.n == 0)
		kind = BOUNCE_MAILDIR;	/* as write_notice does */
	switch (kind) {
	case BOUNCE_MAILDIR:
		log_msg(r->log, LOG_INFO, "%s: %s for <%s> written to %s",
		    it->id, what, it->env.sender, r->cfg->bounce_dir);
		break;
	case BOUNCE_MDA:
		log_msg(r->log, LOG_INFO, "%s: %s for <%s> delivered by the "
		    "mda", it->id, what, it->env.sender);
		break;
	case BOUNCE_SENDER:
		log_msg(r->log, LOG_INFO, "%s: %s queued to <%s>", it->id,
		    what, it->env.sender);
		break;
	case BOUNCE_NONE:
		break;
	}
}

static int
send_bounce(struct runner *r, struct item *it, enum bounce_kind kind,
    struct err *e)
{
	struct strbuf sb;
	int rc;

	sb_init(&sb);
	bounce_build(it->id, &it->env, &it->st, it->fd, r->now,
	    config_domain(r->cfg), &sb);
	rc = write_notice(r, it, kind, &sb, NULL, e);
	sb_free(&sb);
	return rc;
}

/* Why the message's upstream was not reached (this run or an earlier
 * one, reach.h), or NULL. */
static const char *
unreached(const struct runner *r, const struct item *it)
{
	const struct reach_entry *down;
	size_t idx;

	if (it->ident == NULL)
		return NULL;
	idx = (size_t)(it->ident - r->cfg->ids);
	if (idx < r->cfg->nids && r->down[idx] && r->down_why[idx] != NULL)
		return r->down_why[idx];	/* this run */
	down = reach_find(&r->reach, it->ident->name);
	return down != NULL ? down->reason : NULL;
}

/* notify-command for a notice: the recipients in state, the first's
 * reply. */
static void
notify(struct runner *r, struct item *it, const char *event, bool delayed)
{
	struct strbuf rcpts, down = { 0 };
	const char *reason = NULL;

	if (r->cfg->notify_command.n == 0)
		return;
	sb_init(&rcpts);
	for (size_t i = 0; i < it->st.n; i++) {
		bool want = delayed ? pending(it, i) :
		    it->st.r[i].state == RCPT_FAILED;

		if (!want)
			continue;
		sb_addf(&rcpts, "%s%s", rcpts.len ? ", " : "",
		    it->env.rcpts.v[i]);
		if (reason == NULL && it->st.r[i].reply && *it->st.r[i].reply)
			reason = it->st.r[i].reply;
	}
	if (reason == NULL && delayed && unreached(r, it) != NULL) {
		sb_init(&down);
		sb_addf(&down, "no reply yet: the mail server was not "
		    "reached: %s", unreached(r, it));
		reason = down.s;
	}
	notify_run(&r->cfg->notify_command, event, it->id,
	    rcpts.s ? rcpts.s : "", reason ? reason : "no reply yet", r->log);
	sb_free(&rcpts);
	sb_free(&down);
}

static bool
any_failed(const struct item *it)
{
	for (size_t i = 0; i < it->st.n; i++)
		if (it->st.r[i].state == RCPT_FAILED)
			return true;
	return false;
}

/* A notice goes to a real sender that did not say NOTIFY=NEVER (or a
 * NOTIFY list without FAILURE); never for a bounce (null sender). */
static bool
wants_notice(const struct envelope *env)
{
	if (env->sender[0] == '\0')
		return false;
	if (env->notify == NULL)
		return true;
	return strcasestr(env->notify, "failure") != NULL;
}

/*
 * Room for one more journal line after a notice is written: the run's
 * room, else a little of its own. false (e set): none, and a notice
 * written now could not be recorded (every run would write it again).
 */
static bool
line_room(struct runner *r, struct err *e)
{
	if (r->q.ballast >= 0)
		return true;
	return queue_ballast_take(&r->q, ROOM_FILE + 2 * ROOM_LINE, e) == 0;
}

/* The notice could not be written: the message stays (the next run
 * writes it), and the error says so, with what to do. -1. */
static int
notice_stuck(struct err *e)
{
	struct err why = *e;

	return err_set(e, why.code, "cannot write its failure notice (%s); "
	    "it stays queued until one can be written: see bounce in "
	    "postie.conf(5)", why.msg);
}

/* Every recipient is final: notice (once, never for a bounce), remove. */
static int
finish(struct runner *r, struct item *it, struct err *e)
{
	if (any_failed(it) && !it->st.bounced) {
		if (wants_notice(&it->env) && r->cfg->bounce != BOUNCE_NONE &&
		    !line_room(r, e))
			return -1;	/* keep it; next run */
		if (wants_notice(&it->env)) {
			enum bounce_kind went = r->cfg->bounce;

			if (send_bounce(r, it, r->cfg->bounce, e) < 0) {
				log_msg(r->log, LOG_ERR, "%s: cannot write the "
				    "failure notice: %s", it->id, e->msg);
				/*
				 * An mda that keeps failing does not hold the
				 * message for ever: past lifetime the notice
				 * goes to the Maildir instead.
				 */
				if (r->cfg->bounce != BOUNCE_MDA ||
				    queued_age(r, it) < r->cfg->lifetime ||
				    send_bounce(r, it, BOUNCE_MAILDIR, e) < 0)
					return notice_stuck(e);
				log_msg(r->log, LOG_WARNING, "%s: the mda has "
				    "failed past lifetime: failure notice "
				    "written to %s instead", it->id,
				    r->cfg->bounce_dir);
				went = BOUNCE_MAILDIR;
			}
			log_notice(r, it, went, "failure notice");
		}
		if (journal(r, it, e, "bounced") < 0)
			return -1;
		if (wants_notice(&it->env))
			notify(r, it, "failed", false);
	}
	if (queue_remove(&r->q, it->id, e) < 0)
		return -1;
	log_msg(r->log, LOG_INFO, "%s: removed from the queue", it->id);
	return 0;
}

/* --- delay warnings ---------------------------------------------------- */

/*
 * One warning per message that has waited delay-warning and still has
 * recipients to go, for a real sender that did not say NOTIFY=NEVER or
 * a NOTIFY list without DELAY.
 */
static bool
wants_warning(const struct runner *r, const struct item *it)
{
	const struct envelope *env = &it->env;

	if (r->cfg->delay_warning <= 0 || it->st.warned || all_final(it) ||
	    env->sender[0] == '\0')
		return false;
	if (env->notify != NULL && strcasestr(env->notify, "delay") == NULL)
		return false;
	return queued_age(r, it) >= r->cfg->delay_warning;
}

/*
 * Write the warning, then journal "warned". A crash before the journal
 * line leaves no "warned": the next run writes it again, which a Maildir
 * (the default) takes once only, by its name; an mda or a queued notice
 * (bounce sender) may get a second one in that window.
 */
static int
warn_late(struct runner *r, struct item *it, time_t next, struct err *e)
{
	struct strbuf sb;
	char *once;
	/* held time does not count toward lifetime: give up when the age does */
	time_t until = r->now + (r->cfg->lifetime - queued_age(r, it));
	int rc;

	if (!wants_warning(r, it))
		return 0;
	if (r->cfg->bounce != BOUNCE_NONE && !line_room(r, e)) {
		log_msg(r->log, LOG_ERR, "%s: no delay warning yet: %s", it->id,
		    e->msg);
		return 0;	/* the next run tries again */
	}
	if (next < r->now)
		next = r->now;
	sb_init(&sb);
	bounce_build_delay(it->id, &it->env, &it->st, it->fd, r->now,
	    config_domain(r->cfg), next,
	    until, unreached(r, it), &sb);
	once = xasprintf("%lld.postie-delay-%s", (long long)it->env.queued,
	    it->id);
	rc = write_notice(r, it, r->cfg->bounce, &sb, once, e);
	free(once);
	sb_free(&sb);
	if (rc < 0) {
		log_msg(r->log, LOG_ERR, "%s: cannot write the delay warning: "
		    "%s; the next run tries again", it->id, e->msg);
		return 0;	/* no reason to hold the run up */
	}
	if (journal(r, it, e, "warned") < 0)
		return -1;
	log_notice(r, it, r->cfg->bounce, "delay warning");
	notify(r, it, "delayed", true);
	return 0;
}

/* --- picking messages -------------------------------------------------- */

static bool
wanted(const struct runner *r, const char *id)
{
	return r->o->ids.n == 0 || sv_contains(&r->o->ids, id);
}

/* "6 days", "3 hours", "1 minute": an age in its largest whole unit. */
void
deliver_format_age(long secs, char *buf, size_t len)
{
	static const struct { long s; const char *name; } units[] = {
		{ 86400, "day" }, { 3600, "hour" }, { 60, "minute" },
	};

	for (size_t u = 0; u < sizeof(units) / sizeof(*units); u++) {
		long n = secs / units[u].s;

		if (n >= 1) {
			snprintf(buf, len, "%ld %s%s", n, units[u].name,
			    n == 1 ? "" : "s");
			return;
		}
	}
	snprintf(buf, len, "less than a minute");
}

/* Fail what is left of a message past its lifetime. */
static int
expire(struct runner *r, struct item *it, struct err *e)
{
	const struct reach_entry *down = it->ident != NULL ?
	    reach_find(&r->reach, it->ident->name) : NULL;
	char age[64];

	deliver_format_age((long)queued_age(r, it), age, sizeof(age));
	for (size_t i = 0; i < it->st.n; i++) {
		char reply[600];

		if (!pending(it, i))
			continue;
		if (it->st.r[i].reply && *it->st.r[i].reply)
			snprintf(reply, sizeof(reply), "not delivered in %s "
			    "(lifetime); last reply: %s", age,
			    it->st.r[i].reply);
		else if (down != NULL)
			snprintf(reply, sizeof(reply), "not delivered in %s "
			    "(lifetime); the mail server was never reached: "
			    "%s", age, down->reason);
		else
			snprintf(reply, sizeof(reply), "not delivered in %s "
			    "(lifetime); last reply: none", age);
		if (record(r, it, i, SMTP_FAIL, reply, "lifetime", e) < 0)
			return -1;
	}
	return refold(r, it, e);
}

/*
 * A message held by hand is left alone: not sent, not expired, not
 * finished (1). One whose removal by hand a crash interrupted ("removed"
 * is journaled) is removed now, and nothing of it is sent (1).
 */
static int
held_or_removed(struct runner *r, struct item *it)
{
	struct err le;

	if (it->st.removed) {
		if (queue_remove(&r->q, it->id, &le) < 0)
			log_msg(r->log, LOG_ERR, "%s: %s", it->id, le.msg);
		else
			log_msg(r->log, LOG_NOTICE, "%s: removed from the "
			    "queue by hand", it->id);
		return 1;
	}
	if (it->st.held && r->o->ids.n > 0) {
		log_msg(r->log, LOG_NOTICE, "%s: held, not sent (postie queue "
		    "release %s makes it due again)", it->id, it->id);
		/* named by hand: said on the terminal too (the log line is
		 * there already with -v or log stderr) */
		if (isatty(STDERR_FILENO) && !r->log->verbose &&
		    r->log->kind != LOGTO_STDERR)
			fprintf(stderr, "deliver: %s: held, not sent (postie "
			    "queue release %s makes it due again)\n", it->id,
			    it->id);
	}
	return it->st.held;
}

/*
 * Lock and load the next messages this run works on, from ids[*cursor]
 * on, at most max of them (each holds an open, locked file).
 */
static int
pick(struct runner *r, const struct strvec *ids, size_t *cursor, size_t max)
{
	bool explicit = r->o->now || r->o->ids.n > 0;

	r->nitems = 0;
	for (; *cursor < ids->n && r->nitems < max; (*cursor)++) {
		size_t k = *cursor;
		struct item *it = &r->items[r->nitems];
		struct err le;
		int got;

		if (!wanted(r, ids->v[k]))
			continue;
		memset(it, 0, sizeof(*it));
		it->fd = -1;
		got = queue_lock(&r->q, ids->v[k], &it->fd, &le);
		if (got < 0)
			log_msg(r->log, LOG_ERR, "%s: skipped: %s", ids->v[k],
			    le.msg);	/* a link, a FIFO: for a person */
		if (got <= 0)
			continue;	/* busy in another run, or gone */
		it->id = xstrdup(ids->v[k]);
		if (queue_read_envelope_fd(&r->q, it->id, it->fd, &it->env, &le) < 0 ||
		    queue_state_read(&r->q, it->id, &it->env, &it->st,
		    &le) < 0) {
			log_msg(r->log, LOG_ERR, "%s: skipped: %s", it->id,
			    le.msg);
			item_free(it);
			continue;
		}
		if (held_or_removed(r, it)) {
			item_free(it);
			continue;
		}
		it->ident = config_resolve_identity(r->cfg, it->env.identity,
		    it->env.sender);
		if (!all_final(it) && queued_age(r, it) >= r->cfg->lifetime &&
		    expire(r, it, &le) < 0) {
			item_free(it);
			continue;
		}
		if (all_final(it)) {
			/* a notice a run before could not write: the run
			 * says so again, with the same exit status */
			if (finish(r, it, &le) < 0) {
				log_msg(r->log, LOG_ERR, "%s: %s", it->id,
				    le.msg);
				if (r->stuck.code == ERR_OK)
					err_set(&r->stuck, le.code, "%s: %s",
					    it->id, le.msg);
			}
			item_free(it);
			continue;
		}
		if (!explicit && it->st.next_try > r->now) {
			if (warn_late(r, it, it->st.next_try, &le) < 0)
				log_msg(r->log, LOG_ERR, "%s: %s", it->id,
				    le.msg);
			item_free(it);
			continue;	/* not due yet */
		}
		r->nitems++;
	}
	return 0;
}

/* --- delivering ------------------------------------------------------ */

/*
 * Room on the queue's disk for the journal lines the batch can need (a
 * block for a new state/ID, and a line each for the attempt, every
 * recipient still open and what follows), held before anything goes: a
 * delivery that could not be recorded would be made again by the next
 * run. When the disk has not got it all, the messages it has room for
 * go, in queue order, and the rest wait (no_room). -1 (e set): room for
 * none.
 */
static int
take_room(struct runner *r, struct err *e)
{
	off_t room, used = 0;
	struct statvfs sv;
	size_t fit = 0, files = 0, inodes = SIZE_MAX;

	if (r->nitems == 0)
		return 0;
	/* what the disk has, less a margin for its own bookkeeping; where
	 * it counts inodes, a new journal takes one */
	if (statvfs(r->q.state, &sv) < 0)
		return err_set(e, err_from_errno(errno), "cannot read the free "
		    "space of %s: %s", r->q.state, strerror(errno));
	room = (off_t)sv.f_bavail * (off_t)sv.f_frsize;
	room -= room / 8 < 65536 ? room / 8 : 65536;
	if (sv.f_files > 0)
		inodes = sv.f_favail > 8 ? (size_t)sv.f_favail - 8 : 0;
	for (; fit < r->nitems; fit++) {
		struct item *it = &r->items[fit];
		char *path = xasprintf("%s/%s", r->q.state, it->id);
		struct stat st;
		bool exists = lstat(path, &st) == 0;
		size_t open = 0;
		off_t one;

		free(path);
		for (size_t i = 0; i < it->st.n; i++)
			open += pending(it, i);
		/* a journal that exists needs no new block */
		one = (exists ? 0 : ROOM_FILE) + (off_t)(open + 3) * ROOM_LINE;
		if (used + one > room || (!exists && files + 1 > inodes))
			break;
		used += one;
		files += !exists;
	}
	if (fit == 0 || queue_ballast_take(&r->q, used, e) < 0) {
		struct err w = *e;

		if (fit == 0)
			err_set(&w, ERR_TEMPFAIL, "no room on the disk of %s "
			    "for a journal line (%s)", r->q.state,
			    room <= 0 ? "no free blocks" : "no free inodes");
		for (size_t k = 0; k < r->nitems; k++)
			r->items[k].no_room = true;	/* untouched */
		return err_set(e, w.code, "%s; nothing was sent, the mail "
		    "stays queued (free some space, then run deliver again)",
		    w.msg);
	}
	for (size_t k = fit; k < r->nitems; k++) {
		r->items[k].no_room = true;
		r->no_room++;
	}
	if (fit < r->nitems)
		log_msg(r->log, LOG_WARNING, "room on the queue's disk for "
		    "the journal of %zu of %zu messages: the others wait", fit,
		    r->nitems);
	return 0;
}

static int
deliver_local(struct runner *r, struct item *it, struct err *e)
{
	const struct config *cfg = r->cfg;

	if (it->no_room)
		return 0;
	for (size_t i = 0; i < it->st.n; i++) {
		const char *rcpt = it->env.rcpts.v[i];
		enum smtp_outcome out;
		char reason[512];
		char *dir;

		if (!pending(it, i) || !is_local(rcpt))
			continue;
		if (cfg->mda.n > 0)
			out = local_mda(&cfg->mda, rcpt, it->env.sender, it->fd,
			    (off_t)it->env.offset, reason, sizeof(reason));
		else {
			dir = util_expand_tilde("~/Maildir");
			out = local_maildir(dir, rcpt, it->env.sender, it->fd,
			    (off_t)it->env.offset, (off_t)it->env.size,
			    reason, sizeof(reason));
			free(dir);
		}
		if (record(r, it, i, out, reason, "local", e) < 0)
			return -1;	/* the run stops here (rc) */
	}
	/* the remote part sees what the local part left pending */
	return it->attempted ? refold(r, it, e) : 0;
}

struct group {
	struct runner	*r;
	struct item	**items;	/* parallel to run.msgs */
	struct smtp_run	 run;
	struct err	*e;
	int		 failed_writes;
	struct err	 first;		/* the first line that failed */
};

/*
 * The common case, all recipients accepted and nothing else pending:
 * the removal itself (unlink, fsync of msg/) is the durable record that
 * the message was delivered; no journal line is needed first.
 */
static bool
delivered_whole(struct group *g, size_t k)
{
	struct smtp_msg *m = &g->run.msgs[k];
	struct item *it = g->items[k];
	size_t open = 0;
	struct err le;

	for (size_t i = 0; i < it->st.n; i++)
		if (pending(it, i))
			open++;
	/* removed on the pump's thread the moment the server accepted it
	 * whole (on_accepted): what libESMTP says agrees */
	bool removed = __atomic_load_n(&m->removed, __ATOMIC_ACQUIRE);

	if (!removed && (open != m->nrcpt || any_failed(it)))
		return false;
	for (size_t j = 0; j < m->nrcpt && !removed; j++)
		if (smtp_classify(m->complete[j], m->mail_code, m->code[j],
		    m->msg_code) != SMTP_OK)
			return false;
	if (!removed && queue_remove_nosync(&g->r->q, it->id, &le) < 0)
		return false;	/* journal it instead */
	dirsync_removed(&g->r->sync, it->fd);	/* it closes the file */
	it->fd = -1;
	/* one line per recipient; the message left the queue with them */
	for (size_t j = 0; j < m->nrcpt; j++)
		log_outcome(g->r, it, m->rcpt[j], "sent", g->run.id->name,
		    m->msg_reply ? m->msg_reply : m->reply[j]);
	it->finished = true;
	return true;
}

/*
 * Recipient j of m deferred with "too many recipients" (452, 4.5.3 or its
 * words) in a transaction whose data the server took for the others:
 * the rest go in another transaction at once, not on the next run.
 */
static bool
too_many(const struct smtp_msg *m, size_t j)
{
	const char *t = m->reply[j];

	return m->code[j] == 452 && m->msg_code >= 200 && m->msg_code < 300 &&
	    t != NULL && (strstr(t, "4.5.3") != NULL ||
	    strcasestr(t, "too many recipients") != NULL);
}

static void
record_message(struct group *g, size_t k, const char *fallback)
{
	struct smtp_msg *m = &g->run.msgs[k];
	struct item *it = g->items[k];

	/* not a byte of it went (run.stop): it stays as it was */
	if (m->stopped)
		return;
	if (m->unreached) {
		char why[ERR_MSG_MAX];

		snprintf(why, sizeof(why), "not sent: the session ended before "
		    "it (%s)", fallback != NULL && fallback[0] != '\0' ?
		    fallback : "the connection was lost");
		for (size_t j = 0; j < m->nrcpt; j++)
			if (journal(g->r, it, g->e, "defer %zu %s", m->rcpt[j],
			    why) < 0) {
				if (g->failed_writes++ == 0)
					g->first = *g->e;
				g->r->stop = g->run.stop = true;
			} else
				log_outcome(g->r, it, m->rcpt[j], "deferred",
				    g->run.id->name, why);
		return;
	}
	if (m->read_error)
		fallback = "cannot read the queue file: the message was not "
		    "sent (the connection was dropped before its end)";
	/* a message removed on the pump's thread (on_accepted) is sent,
	 * whatever else ended the session after it */
	if ((fallback == NULL || __atomic_load_n(&m->removed,
	    __ATOMIC_ACQUIRE)) && delivered_whole(g, k)) {
		g->r->done++;
		if (g->r->progress)
			fprintf(stderr, "\rdeliver: %zu/%zu messages",
			    g->r->done, g->r->total);
		return;
	}

	for (size_t j = 0; j < m->nrcpt; j++) {
		enum smtp_outcome out = m->read_error ? SMTP_DEFER :
		    smtp_classify(m->complete[j], m->mail_code, m->code[j],
		    m->msg_code);
		const char *reply;

		if (out == SMTP_DEFER && too_many(m, j))
			it->more = true;

		/* the most specific reply there is, else why the session
		 * ended */
		if (m->mail_code >= 400)
			reply = m->mail_reply;
		else if (m->code[j] >= 300)
			reply = m->reply[j];
		else if (m->msg_code != 0)
			reply = m->msg_reply;
		else if (fallback != NULL && fallback[0] != '\0')
			reply = fallback;
		else
			reply = m->reply[j];
		if (record(g->r, it, m->rcpt[j], out, reply,
		    g->run.id->name, g->e) < 0) {
			/* the next run would send it again: no more goes
			 * (the session ends before the next data); the first
			 * failure is the one to tell */
			if (g->failed_writes == 0) {
				g->first = *g->e;
				if (out == SMTP_OK)
					err_set(&g->first, g->e->code, "%s; "
					    "the server took %s for <%s>, so "
					    "the next run sends it again",
					    g->e->msg, it->id,
					    it->env.rcpts.v[m->rcpt[j]]);
			}
			g->failed_writes++;
			g->r->stop = true;
			g->run.stop = true;
		}
	}
	g->r->done++;
	if (g->r->progress)
		fprintf(stderr, "\rdeliver: %zu/%zu messages", g->r->done,
		    g->r->total);
}

/*
 * On the pump's thread (smtp.h): the server accepted m whole, and m is
 * removable (every recipient still open is in it, none failed before).
 * Its removal is its record, made before the next message's data goes
 * out while libESMTP already reads that message; the rest of the record
 * (the log, the fsync of msg/) follows in on_done as for any message.
 * Nothing else on this thread touches the item.
 */
static bool
on_accepted(struct smtp_msg *m, void *arg)
{
	struct group *g = arg;
	struct err le;

	return queue_remove_nosync(&g->r->q, m->id, &le) == 0;
}

static void
on_done(struct smtp_msg *m, void *arg)
{
	struct group *g = arg;

	record_message(g, (size_t)(m - g->run.msgs), NULL);
	crash_step(&g->r->crash, "outcome recorded");
}

/*
 * The upstream could not be reached (DNS, connect, the SSH server or its
 * channel): that is no attempt at any message. Nothing is journaled, the
 * retry schedule is untouched, and the identity is not dialled again in
 * this run (a queue larger than one batch would otherwise try it once per
 * batch); the next run that reaches it sends what waits.
 */
static void
mark_down(struct runner *r, size_t idx, const char *why)
{
	size_t used = strlen(r->unreachable_why);

	r->down[idx] = true;
	free(r->down_why[idx]);
	r->down_why[idx] = xstrdup(why);
	r->unreachable++;
	/* every unreachable identity is named in the end */
	if (used < sizeof(r->unreachable_why))
		snprintf(r->unreachable_why + used,
		    sizeof(r->unreachable_why) - used, "%sidentity %s: %.400s",
		    used ? "; " : "", r->cfg->ids[idx].name, why);
}

/*
 * The identity was reached but its session failed as a whole (TLS, AUTH,
 * the password): a deferral, as the policy says, but one a person at a
 * terminal wants to hear of (see tell_failures).
 */
static void
note_failure(struct runner *r, size_t idx, const char *why)
{
	free(r->failed_why[idx]);
	r->failed_why[idx] = xstrdup(why);
}

/* Did the server answer anything of m's (a MAIL refusal, a RCPT, the
 * data)? A MAIL the pump answered itself reads 250 until the server's
 * own reply: only a refusal of it is the server's for sure. */
static bool
answered(const struct smtp_msg *m)
{
	if (m->msg_code != 0 || m->mail_code >= 400)
		return true;
	for (size_t j = 0; j < m->nrcpt; j++)
		if (m->code[j] != 0)
			return true;
	return false;
}

/*
 * A session that broke after the server had answered some of it: the
 * messages it never answered anything of were not tried, and the
 * session's reason ("closed the connection while waiting for the reply
 * to the message data") is another message's. They are deferred with a
 * reason that says so, and no attempt is counted, so the next run sends
 * them without waiting out the retry schedule. A session that never
 * opened (a TLS or login failure, a drop at the greeting) records its
 * reason for each, as an attempt.
 */
static void
leave_unreached(struct smtp_run *run)
{
	bool any = false, first = true;

	for (size_t k = 0; k < run->nmsgs && !any; k++)
		any = answered(&run->msgs[k]);
	/* opened, then broken before any answer: the first message was the
	 * one under way (a message a server drops the session over, every
	 * time); it takes the attempt, the others are not held behind it */
	if (!any && !run->opened)
		return;
	for (size_t k = 0; k < run->nmsgs; k++) {
		if (run->msgs[k].skip)
			continue;
		if (!any && first) {
			first = false;
			continue;
		}
		if (!answered(&run->msgs[k]))
			run->msgs[k].unreached = true;
	}
}

/*
 * One session for identity idx: its messages with recipients still open
 * (more: only those a "too many recipients" left some of, re-read from
 * their journals first).
 */
static int
deliver_identity(struct runner *r, size_t idx, bool more, struct err *e)
{
	const struct identity *id = &r->cfg->ids[idx];
	struct group g;
	char *password = NULL;
	size_t n = 0;
	int rc = 0, sent;

	if (r->down[idx] || r->stop || stopsig_caught())
		return 0;
	memset(&g, 0, sizeof(g));
	g.r = r;
	g.e = e;
	g.items = xcalloc(r->nitems, sizeof(*g.items));
	g.run.msgs = xcalloc(r->nitems, sizeof(*g.run.msgs));
	/* messages never tried first, then the retries (each pass in queue
	 * order): one a server always drops the session over is not ahead
	 * of the new ones every run */
	for (size_t k = 0; k < 2 * r->nitems; k++) {
		struct item *it = &r->items[k % r->nitems];
		struct smtp_msg *m = &g.run.msgs[n];

		if ((it->st.attempts == 0) != (k < r->nitems))
			continue;
		if (it->ident != id || it->no_room || (more && !it->more))
			continue;
		if (more) {
			it->more = false;
			/* what the last session took is in its journal */
			if (refold(r, it, e) < 0) {
				rc = -1;
				goto out;
			}
		}
		smtp_msg_init(m, it->id, &it->env, it->fd);
		for (size_t i = 0; i < it->st.n; i++)
			if (pending(it, i) && !is_local(it->env.rcpts.v[i]))
				m->rcpt[m->nrcpt++] = i;
		if (m->nrcpt == 0) {
			smtp_msg_free(m);
			continue;
		}
		/* as delivered_whole asks: then its removal is its record */
		{
			size_t open = 0;

			for (size_t i = 0; i < it->st.n; i++)
				open += pending(it, i);
			m->removable = open == m->nrcpt && !any_failed(it);
		}
		g.items[n++] = it;
	}
	if (n == 0)
		goto out;
	g.run.cfg = r->cfg;
	g.run.id = id;
	g.run.log = r->log;
	g.run.nmsgs = n;
	g.run.verbose = r->o->verbose;
	g.run.done = on_done;
	g.run.accepted = on_accepted;
	g.run.done_arg = &g;
	if (id->user != NULL) {
		struct err pe;

		password = smtp_password(id, &pe);
		if (password == NULL && stopsig_caught())
			goto out;	/* cut short by the stop: not its fault */
		if (password == NULL) {
			log_msg(r->log, LOG_WARNING, "identity %s: %s",
			    id->name, pe.msg);
			note_failure(r, idx, pe.msg);
			snprintf(g.run.reason, sizeof(g.run.reason), "%s",
			    pe.msg);
			for (size_t k = 0; k < n; k++)
				record_message(&g, k, g.run.reason);
			goto out;
		}
	}
	g.run.password = password;
	if (stopsig_caught())
		goto out;	/* told to stop meanwhile: nothing starts */
	g.run.warm = &r->warm;
	crash_step(&r->crash, "session starting");
	sent = smtp_send(&g.run, e);
	if (sent < 0 && stopsig_caught())
		/* cut before a message's data: not this identity's fault */
		log_msg(r->log, LOG_NOTICE, "identity %s: session cut: the "
		    "run was told to stop (%s)", id->name,
		    strsignal(stopsig_caught()));
	else if (sent < 0) {
		log_msg(r->log, LOG_WARNING, "identity %s: %s", id->name,
		    g.run.reason);
		if (g.run.unreachable)
			mark_down(r, idx, g.run.reason);
		else if (g.run.auth_failed || g.run.session_failed)
			note_failure(r, idx, g.run.reason);
	}
	if (!g.run.unreachable)
		r->reached[idx] = true;
	leave_unreached(&g.run);
	for (size_t k = 0; k < n; k++) {
		struct smtp_msg *m = &g.run.msgs[k];
		char why[ERR_MSG_MAX];

		/* held back from the session (libESMTP cannot downgrade):
		 * deferred, the others went */
		if (!m->no_8bitmime || m->reported)
			continue;
		snprintf(why, sizeof(why), "%s does not offer 8BITMIME for an "
		    "8-bit message", id->host);
		record_message(&g, k, why);
		m->reported = true;
	}
	for (size_t k = 0; k < n; k++)
		if (!g.run.msgs[k].reported && !g.run.unreachable)
			record_message(&g, k, g.run.reason);
	if (g.failed_writes > 0) {
		*e = g.first;
		rc = -1;
	}
out:
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	for (size_t k = 0; k < n; k++)
		smtp_msg_free(&g.run.msgs[k]);
	free(g.run.msgs);
	free(g.items);
	return rc;
}

/*
 * Tell mailq which upstreams this run could not reach (and forget those
 * it reached): QUEUE/unreachable, advisory (reach.h).
 */
static void
note_reach(struct runner *r)
{
	struct reach rs;
	bool changed = false;
	struct err e;

	reach_read(r->q.dir, &rs);
	for (size_t i = 0; i < r->cfg->nids; i++) {
		if (r->down[i]) {
			reach_set(&rs, r->cfg->ids[i].name, r->now,
			    r->down_why[i]);
			changed = true;
		} else if (r->reached[i])
			changed |= reach_clear(&rs, r->cfg->ids[i].name);
	}
	if (changed && reach_write(r->q.dir, &rs, &e) < 0)
		log_msg(r->log, LOG_WARNING, "%s", e.msg);
	reach_free(&rs);
}

/*
 * On a terminal, say which identities failed as a whole: a wrong
 * password or certificate is a deferral (exit 0, as the policy says),
 * and would otherwise be silent until lifetime. From cron (no terminal)
 * the log and mailq carry it, and the run stays quiet.
 */
static void
tell_failures(const struct runner *r)
{
	if (!isatty(STDERR_FILENO))
		return;
	for (size_t i = 0; i < r->cfg->nids; i++)
		if (r->failed_why[i] != NULL)
			fprintf(stderr, "deliver: identity %s: %s; its mail stays "
			    "queued (mailq shows it)\n", r->cfg->ids[i].name,
			    r->failed_why[i]);
}

/*
 * After the attempts: finish what is final, schedule the rest; warn of
 * what has waited delay-warning (tried now or not: an upstream that was
 * not reached).
 */
static int
settle(struct runner *r, struct item *it, struct err *e)
{
	time_t next = it->st.next_try;

	if (it->finished || it->no_room)
		return 0;
	if (it->attempted) {
		if (refold(r, it, e) < 0)
			return -1;
		if (all_final(it))
			return finish(r, it, e);
		next = deliver_next_try(r->cfg, it->st.attempts, r->now);
		if (journal(r, it, e, "next %lld", (long long)next) < 0)
			return -1;
	}
	return warn_late(r, it, next, e);
}

/* Does a message of identity idx have recipients a "too many
 * recipients" left for another transaction? */
static bool
wants_more(const struct runner *r, size_t idx)
{
	for (size_t k = 0; k < r->nitems; k++)
		if (r->items[k].more && r->items[k].ident == &r->cfg->ids[idx])
			return true;
	return false;
}

/*
 * How many messages one batch may hold open: a run locks each message
 * file it works on. The soft descriptor limit is raised to the hard one;
 * a queue larger than that goes out in several batches.
 */
static size_t
batch_limit(void)
{
	struct rlimit rl;
	size_t max = 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur == RLIM_INFINITY)
			max = 100000;
		else if (rl.rlim_cur > 128)
			max = (size_t)rl.rlim_cur - 64;	/* room for the rest */
		else
			max = (size_t)rl.rlim_cur / 2;
	}
	return max > 100000 ? 100000 : max;
}

/* Hold queue/batch.lock for batch-delay so a burst goes out together. */
static int
batch_wait(struct runner *r)
{
	char *path = xasprintf("%s/batch.lock", r->q.dir);
	struct err le;
	int fd = safefile_open(path, O_RDWR | O_CREAT, 0600, NULL, &le);

	free(path);
	if (fd < 0) {
		if (le.code == ERR_DATA)	/* a link, a FIFO: say so */
			log_msg(r->log, LOG_WARNING, "%s", le.msg);
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return 1;	/* another one is waiting: it will take ours */
	}
	if (r->cfg->batch_delay > 0)
		sleep((unsigned int)r->cfg->batch_delay);
	close(fd);		/* release before listing the queue */
	return 0;
}

int
deliver_run(const struct config *cfg, const struct deliver_opts *o,
    struct log *log, struct err *e)
{
	struct runner r;
	struct strvec ids;
	size_t cursor = 0, max;
	int removed, rc = 0;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.o = o;
	r.log = log;
	crash_init(&r.crash);
	/* a signal now stops the run once what is under way is recorded */
	stopsig_catch("\ndeliver: stopping once the message being sent is "
	    "recorded (again to stop at once)\n");
	{
		/* nothing was ever queued: no queue directory, or one made
		 * by hand (or emptied) without its msg/ */
		char *msg = xasprintf("%s/msg", cfg->queue);
		bool none = access(cfg->queue, F_OK) != 0 ||
		    (access(msg, F_OK) != 0 && errno == ENOENT);

		free(msg);
		if (none)
			return 0;
	}
	if (queue_open(&r.q, cfg->queue, false, e) < 0)
		return -1;
	r.q.crash = &r.crash;
	if (o->batch && batch_wait(&r) == 1) {
		queue_close(&r.q);
		return 0;
	}
	r.now = time(NULL);
	if (queue_clean_tmp(&r.q, r.now, QUEUE_TMP_MAX_AGE, &removed, e) == 0 &&
	    removed > 0)
		log_msg(log, LOG_NOTICE, "removed %d stale file%s from %s",
		    removed, removed == 1 ? "" : "s", r.q.tmp);
	queue_clean_orphans(&r.q, &removed, e);
	sv_init(&ids);
	if (queue_list(&r.q, &ids, e) < 0) {
		queue_close(&r.q);
		return -1;
	}
	if (dirsync_start(&r.sync, r.q.msg, e) < 0) {
		sv_free(&ids);
		queue_close(&r.q);
		return -1;
	}
	{
		bool tls = false, system = false;

		for (size_t i = 0; i < cfg->nids && ids.n > 0; i++) {
			tls |= cfg->ids[i].tls != TLS_NONE;
			system |= tls_wants_system(&cfg->ids[i]);
		}
		if (tls)
			tls_warm_start(&r.warm, system);
	}
	max = batch_limit();
	r.items = xcalloc(max, sizeof(*r.items));
	r.down = xcalloc(cfg->nids + 1, sizeof(*r.down));
	r.reached = xcalloc(cfg->nids + 1, sizeof(*r.reached));
	r.down_why = xcalloc(cfg->nids + 1, sizeof(*r.down_why));
	r.failed_why = xcalloc(cfg->nids + 1, sizeof(*r.failed_why));
	reach_read(r.q.dir, &r.reach);
	r.progress = isatty(STDERR_FILENO) && ids.n >= 20;
	while (rc == 0 && cursor < ids.n && !stopsig_caught()) {
		/* normally one batch: one connection per identity per run */
		pick(&r, &ids, &cursor, max);
		r.total += r.nitems;
		if ((rc = take_room(&r, e)) < 0)
			log_msg(log, LOG_WARNING, "%s", e->msg);
		for (size_t k = 0; k < r.nitems && rc == 0 &&
		    !stopsig_caught(); k++)
			rc = deliver_local(&r, &r.items[k], e);
		for (size_t i = 0; i < cfg->nids && rc == 0; i++) {
			rc = deliver_identity(&r, i, false, e);
			for (int round = 0; rc == 0 && round < MORE_ROUNDS &&
			    wants_more(&r, i); round++)
				rc = deliver_identity(&r, i, true, e);
		}
		for (size_t k = 0; k < r.nitems; k++) {
			struct err le;

			if (settle(&r, &r.items[k], &le) < 0) {
				log_msg(log, LOG_ERR, "%s: %s", r.items[k].id,
				    le.msg);
				if (rc == 0) {
					/* which message, on stderr too */
					err_set(e, le.code, "%s: %s",
					    r.items[k].id, le.msg);
					rc = -1;
				}
			}
			item_free(&r.items[k]);
		}
		queue_ballast_drop(&r.q);
		if (r.stop && rc == 0)
			rc = -1;	/* e says which line failed */
	}
	sv_free(&ids);
	tls_warm_free(&r.warm);
	{
		struct err se;

		/* every delivered message's removal is on disk before exit */
		if (dirsync_finish(&r.sync, &se) < 0 && rc == 0) {
			*e = se;
			rc = -1;
		}
	}
	if (r.progress)
		fputc('\n', stderr);
	free(r.items);
	note_reach(&r);
	tell_failures(&r);
	for (size_t i = 0; i < cfg->nids; i++) {
		free(r.down_why[i]);
		free(r.failed_why[i]);
	}
	free(r.failed_why);
	reach_free(&r.reach);
	free(r.down_why);
	free(r.reached);
	free(r.down);
	queue_close(&r.q);
	if (rc == 0 && r.stuck.code != ERR_OK) {
		*e = r.stuck;
		rc = -1;
	}
	if (rc == 0 && stopsig_caught())
		return err_set(e, ERR_TEMPFAIL, "stopped (%s): every message "
		    "sent is recorded; the rest stays queued for a later run",
		    strsignal(stopsig_caught()));
	if (rc == 0 && r.no_room > 0)
		return err_set(e, ERR_TEMPFAIL, "%zu message%s wait%s for room "
		    "on the queue's disk for their journal (free some space, "
		    "then run deliver again)", r.no_room, r.no_room == 1 ?
		    "" : "s", r.no_room == 1 ? "s" : "");
	if (rc == 0 && r.unreachable > 0)
		return err_set(e, ERR_TEMPFAIL, "%s; mail stays queued and "
		    "goes out on a later run", r.unreachable_why);
	return rc;
}
