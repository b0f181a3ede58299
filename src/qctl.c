/*
 * qctl.c - queue control: show, hold, release, remove. See qctl.h and
 * queue/README.md ("Queue control").
 *
 * Every operation runs under the message's lock, so it never meets a
 * message half-way through a send: deliver holds the same lock from the
 * moment it reads the journal until the outcome is recorded. A change is
 * one journal line, appended and fsync'd (queue_state_append); a removal
 * journals "removed" first, so that a msg/ID brought back by a power cut
 * before the fsync of msg/ is still known to be removed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qctl.h"
#include "queue.h"
#include "textout.h"

struct qctl {
	const struct config	*cfg;
	enum qctl_op		 op;
	struct queue		 q;
	struct crash		 crash;
	struct log		*log;
	FILE			*out;
	FILE			*errs;
	struct timespec		 deadline;	/* for busy messages, in all */
	bool			 all;		/* --all: a message gone
						 * meanwhile is no error */
	size_t			 failed;
	size_t			 shown;
	struct err		 first;		/* the first failure */
	enum err_code		 worst;
};

static const char *const op_names[] = {
	[QCTL_SHOW] = "show",
	[QCTL_HOLD] = "hold",
	[QCTL_RELEASE] = "release",
	[QCTL_REMOVE] = "remove",
};

static const char *const op_done[] = {
	[QCTL_SHOW] = "shown",
	[QCTL_HOLD] = "held",
	[QCTL_RELEASE] = "released",
	[QCTL_REMOVE] = "removed",
};

int
qctl_op_parse(const char *name, enum qctl_op *op)
{
	for (size_t i = 0; i < sizeof(op_names) / sizeof(*op_names); i++)
		if (strcmp(name, op_names[i]) == 0) {
			*op = (enum qctl_op)i;
			return 0;
		}
	return -1;
}

int
qctl_err_rank(enum err_code code)
{
	switch (code) {
	case ERR_OK:		return 0;
	case ERR_TEMPFAIL:	return 1;	/* busy: try again */
	case ERR_NOUSER:	return 2;	/* unknown: fix the id */
	case ERR_NOINPUT:	return 2;	/* gone meanwhile (sent) */
	default:		return 3;	/* the queue itself */
	}
}

/*
 * One id failed. The first failure is kept: alone, it is the command's
 * error; from the second on, each is printed as it comes.
 */
static void
fail(struct qctl *c, struct err *e)
{
	/* an id from the listing of msg/ is a name someone else may have
	 * chosen: no control character reaches the terminal */
	util_sanitize(e->msg);
	if (c->failed == 0)
		c->first = *e;
	else {
		if (c->failed == 1)
			fprintf(c->errs, "queue: %s\n", c->first.msg);
		fprintf(c->errs, "queue: %s\n", e->msg);
	}
	if (qctl_err_rank(e->code) > qctl_err_rank(c->worst))
		c->worst = e->code;
	c->failed++;
}

/* A queue id names a file in msg/: no '/', no leading '.'. */
static bool
id_ok(const char *id)
{
	return *id != '\0' && *id != '.' && strchr(id, '/') == NULL &&
	    strlen(id) < 256;
}

/* An id that names no queued message: what (a phrase), for the user. */
static void
unknown(struct qctl *c, const char *id, const char *what)
{
	struct err e;

	err_set(&e, ERR_NOUSER, "%s: %s (mailq lists the queue ids)", id,
	    what);
	fail(c, &e);
}

/*
 * "EPOCH EVENT" into state/ID, fsync'd. A line that cannot be written is
 * not in the journal (queue_state_append takes it back): the message is
 * as it was, which the error says.
 */
static int
journal(struct qctl *c, const char *id, const char *event, struct err *e)
{
	char line[64];

	snprintf(line, sizeof(line), "%lld %s", (long long)time(NULL), event);
	if (queue_state_append(&c->q, id, line, e) == 0)
		return 0;
	if (e->code == ERR_TEMPFAIL) {
		struct err w = *e;

		err_set(e, w.code, "%s; the message is as it was (free some "
		    "space, then run it again)", w.msg);
	} else {
		struct err w = *e;

		err_set(e, w.code, "%s; the message is as it was", w.msg);
	}
	return -1;
}

/*
 * Removal: "removed" journaled, then msg/ID unlinked, msg/ fsync'd,
 * state/ID unlinked (queue_remove). Needs no envelope: an entry deliver
 * cannot use (a broken envelope) can be removed too.
 */
static int
do_remove(struct qctl *c, const char *id, struct err *e)
{
	if (journal(c, id, "removed", e) < 0 || queue_remove(&c->q, id, e) < 0)
		return -1;
	log_msg(c->log, LOG_NOTICE, "%s: removed from the queue by hand", id);
	return 0;
}

static void
show_rcpt(struct qctl *c, const struct envelope *env,
    const struct msgstate *st, size_t i)
{
	const struct rcpt_status *r = &st->r[i];
	char t[64];

	fputs("to        ", c->out);
	textout_str(c->out, env->rcpts.v[i]);
	fprintf(c->out, "  %s", rcpt_state_name(r->state));
	if (r->state != RCPT_WAITING) {
		textout_time(r->when, t, sizeof(t));
		fprintf(c->out, " %s", t);
	}
	if (r->reply != NULL && *r->reply != '\0') {
		fputs(": ", c->out);
		textout_str(c->out, r->reply);
	}
	fputc('\n', c->out);
}

static void
show_field(FILE *out, const char *key, const char *v)
{
	if (v == NULL)
		return;
	fprintf(out, "%-9s ", key);
	textout_str(out, v);
	fputc('\n', out);
}

static void
show_envelope(struct qctl *c, const char *id, const struct envelope *env,
    const struct msgstate *st)
{
	const struct identity *ident = config_resolve_identity(c->cfg,
	    env->identity, env->sender);
	char t[64];

	show_field(c->out, "id", id);
	textout_time(env->queued, t, sizeof(t));
	show_field(c->out, "queued", t);
	fprintf(c->out, "size      %llu bytes\n",
	    (unsigned long long)env->size);
	show_field(c->out, "sender", *env->sender ? env->sender : "<>");
	show_field(c->out, "identity", ident ? ident->name : "none");
	show_field(c->out, "notify", env->notify);
	show_field(c->out, "ret", env->ret);
	show_field(c->out, "body", env->body);
	show_field(c->out, "envid", env->envid);
	if (st->held) {
		textout_time(st->held_since, t, sizeof(t));
		fprintf(c->out, "state     held since %s\n", t);
	} else
		fputs("state     queued\n", c->out);
	fprintf(c->out, "attempts  %d", st->attempts);
	if (st->attempts > 0) {
		textout_time(st->last_attempt, t, sizeof(t));
		fprintf(c->out, ", last %s", t);
	}
	if (st->next_try > 0) {
		textout_time(st->next_try, t, sizeof(t));
		fprintf(c->out, ", next try %s", t);
	}
	fputc('\n', c->out);
	for (size_t i = 0; i < env->rcpts.n; i++)
		show_rcpt(c, env, st, i);
}

/* The message after the envelope, line by line, escaped. */
static int
show_message(struct qctl *c, int fd, const struct envelope *env,
    struct err *e)
{
	FILE *in;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t left = env->size;
	int dfd = dup(fd), rc = 0;

	if (dfd < 0 || (in = fdopen(dfd, "r")) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return err_set(e, ERR_OSERR, "cannot read the message: %s",
		    strerror(errno));
	}
	if (fseeko(in, (off_t)env->offset, SEEK_SET) < 0)
		rc = err_set(e, ERR_IOERR, "cannot read the message: %s",
		    strerror(errno));
	while (rc == 0 && left > 0 && (n = getline(&line, &cap, in)) > 0) {
		size_t len = (uint64_t)n > left ? (size_t)left : (size_t)n;

		textout_line(c->out, line, len);
		left -= len;
	}
	if (rc == 0 && ferror(in))
		rc = err_set(e, ERR_IOERR, "cannot read the message: %s",
		    strerror(errno));
	free(line);
	fclose(in);
	return rc;
}

static int
do_show(struct qctl *c, const char *id, int fd, const struct envelope *env,
    const struct msgstate *st, struct err *e)
{
	if (c->shown++ > 0)
		fputc('\n', c->out);
	show_envelope(c, id, env, st);
	fputc('\n', c->out);
	return show_message(c, fd, env, e);
}

/* hold, release or show one locked message. */
static int
with_state(struct qctl *c, const char *id, int fd, struct err *e)
{
	struct envelope env;
	struct msgstate st;
	int rc = 0;

	memset(&env, 0, sizeof(env));
	if (queue_read_envelope_fd(&c->q, id, fd, &env, e) < 0)
		return -1;
	if (queue_state_read(&c->q, id, &env, &st, e) < 0) {
		envelope_free(&env);
		return -1;
	}
	if (st.removed)
		rc = 1;		/* a removal a crash interrupted */
	else if (c->op == QCTL_SHOW)
		rc = do_show(c, id, fd, &env, &st, e);
	else if ((c->op == QCTL_HOLD && !st.held) ||
	    (c->op == QCTL_RELEASE && st.held)) {
		/* holding a held message, or releasing one that is not
		 * held, changes nothing and writes nothing */
		rc = journal(c, id, op_names[c->op], e);
		if (rc == 0)
			log_msg(c->log, LOG_NOTICE, "%s: %s by hand", id,
			    op_done[c->op]);
	}
	msgstate_free(&st);
	envelope_free(&env);
	return rc;
}

static void
one(struct qctl *c, const char *id)
{
	struct err e = { ERR_OK, "" };
	int fd = -1, got, rc;

	if (!id_ok(id)) {
		unknown(c, id, "not a queue id");
		return;
	}
	got = queue_lock_wait(&c->q, id, &c->deadline, &fd, &e);
	if (got == 0 && !c->all) {
		unknown(c, id, "no such message in the queue");
		return;
	}
	if (got == 0 || got == 2) {
		/* it was there (listed, or held by a deliver run we waited
		 * for): sent meanwhile, most likely */
		err_set(&e, ERR_NOINPUT, "%s left the queue %s (its log says "
		    "which); nothing was %s", id, got == 2 ? "while the "
		    "command waited for the deliver run holding it: that run "
		    "sent it, or it was removed" : "since it was listed: a "
		    "deliver run sent it, or it was removed", op_done[c->op]);
		fail(c, &e);
		return;
	}
	if (got < 0) {
		if (e.code != ERR_TEMPFAIL) {
			struct err w = e;

			err_set(&e, w.code, "%s: %s", id, w.msg);
		}
		fail(c, &e);
		return;
	}
	if (c->op == QCTL_REMOVE)
		rc = do_remove(c, id, &e);
	else
		rc = with_state(c, id, fd, &e);
	queue_unlock(fd);
	if (rc == 1 && !c->all)
		unknown(c, id, "no such message in the queue (it was "
		    "removed)");
	else if (rc < 0) {
		struct err w = e;

		err_set(&e, w.code, "%s: %s", id, w.msg);
		fail(c, &e);
	}
}

static void
finish(struct qctl *c, size_t total, struct err *e)
{
	if (c->failed == 1) {
		*e = c->first;
		return;
	}
	err_set(e, c->worst, "%zu of %zu messages not %s (each is named "
	    "above)", c->failed, total, op_done[c->op]);
}

int
qctl_run(const struct config *cfg, enum qctl_op op, const struct strvec *ids,
    bool all, struct log *log, FILE *out, FILE *errs, struct err *e)
{
	struct qctl c;
	struct strvec list;
	const struct strvec *todo = ids;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.op = op;
	c.log = log;
	c.out = out;
	c.errs = errs;
	c.all = all;
	crash_init(&c.crash);
	sv_init(&list);
	if (queue_open(&c.q, cfg->queue, false, e) < 0)
		return -1;
	c.q.crash = &c.crash;
	if (all) {
		if (queue_list(&c.q, &list, e) < 0) {
			queue_close(&c.q);
			return -1;
		}
		todo = &list;
	}
	clock_gettime(CLOCK_MONOTONIC, &c.deadline);
	c.deadline.tv_sec += QUEUE_LOCK_WAIT;
	for (size_t i = 0; i < todo->n; i++)
		one(&c, todo->v[i]);
	if (fflush(out) != 0 || ferror(out))
		rc = err_set(e, ERR_IOERR, "cannot write the message: %s",
		    strerror(errno));
	else if (c.failed > 0) {
		finish(&c, todo->n, e);
		rc = -1;
	}
	sv_free(&list);
	queue_close(&c.q);
	return rc;
}
