/* mailq.c - list the queue as text or JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailq.h"
#include "queue.h"
#include "reach.h"
#include "textout.h"

struct entry {
	char		*id;
	char		*error;		/* unreadable: why */
	struct envelope	 env;
	struct msgstate	 st;
	const struct identity *identity;
	bool		 has_remote;
	const struct reach_entry *down;	/* its upstream, not reached */
};

/* s as a JSON string: always valid JSON, whatever the bytes; control
 * characters as \u00XX, a byte that is not UTF-8 as \ufffd. */
static void
json_str(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	while (*s != '\0') {
		unsigned long c;
		size_t n = util_utf8_char(s, &c);

		if (n == 0) {
			fputs("\\ufffd", out);
			s++;
			continue;
		}
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", (char)c);
		else if (textout_is_control(c))
			fprintf(out, "\\u%04lx", c);
		else
			fwrite(s, 1, n, out);
		s += n;
	}
	fputc('"', out);
}

/* What to do with an entry that cannot be used (postie(1)). */
static char *
unusable_action(const char *dir)
{
	return xasprintf("check it, then move it out of %s/msg/ (and its "
	    "journal out of %s/state/) by hand; see postie(1), UNUSABLE "
	    "ENTRIES", dir, dir);
}

/* Did msg/ID vanish (delivered while we looked)? A link is not gone. */
static bool
access_gone(struct queue *q, const char *id)
{
	char *p = xasprintf("%s/%s", q->msg, id);
	struct stat st;
	bool gone = lstat(p, &st) != 0 && errno == ENOENT;

	free(p);
	return gone;
}

static void
load_entry(const struct config *cfg, struct queue *q, struct entry *en)
{
	struct err e;

	if (queue_read_envelope(q, en->id, &en->env, &e) < 0) {
		en->error = xstrdup(e.msg);
		return;
	}
	if (queue_state_read(q, en->id, &en->env, &en->st, &e) < 0) {
		en->error = xstrdup(e.msg);
		return;
	}
	en->identity = config_resolve_identity(cfg, en->env.identity,
	    en->env.sender);
	for (size_t i = 0; i < en->env.rcpts.n; i++)
		if (strchr(en->env.rcpts.v[i], '@') != NULL)
			en->has_remote = true;
}

/* Does a remote recipient still wait? */
static bool
pending_remote(const struct entry *en)
{
	for (size_t i = 0; i < en->env.rcpts.n; i++)
		if (strchr(en->env.rcpts.v[i], '@') != NULL &&
		    (en->st.r[i].state == RCPT_WAITING ||
		    en->st.r[i].state == RCPT_DEFERRED))
			return true;
	return false;
}

static const char *
rcpt_note(const struct entry *en, size_t i)
{
	const struct rcpt_status *r = &en->st.r[i];

	if (r->state == RCPT_WAITING && en->identity == NULL &&
	    strchr(en->env.rcpts.v[i], '@') != NULL)
		return "no identity: no 'from' in the config matches the "
		    "sender and no identity is 'default'";
	return r->reply;
}

static void
print_text(FILE *out, const char *dir, struct entry *ents, size_t n)
{
	char *action = unusable_action(dir);
	char t[64];

	for (size_t k = 0; k < n; k++) {
		struct entry *en = &ents[k];

		textout_str(out, en->id);
		if (en->error != NULL) {
			fputs("  unreadable: ", out);
			textout_str(out, en->error);
			fputs("\n  action    ", out);
			textout_str(out, action);
			fputs("\n\n", out);
			continue;
		}
		textout_time(en->env.queued, t, sizeof(t));
		fprintf(out, "  %llu bytes  queued %s\n",
		    (unsigned long long)en->env.size, t);
		fputs("  sender    ", out);
		textout_str(out, *en->env.sender ? en->env.sender : "<>");
		fputc('\n', out);
		if (en->identity != NULL) {
			fputs("  identity  ", out);
			textout_str(out, en->identity->name);
			fputc('\n', out);
		} else if (en->has_remote)
			fprintf(out, "  identity  none\n");
		else
			fprintf(out, "  identity  local delivery\n");
		fprintf(out, "  attempts  %d", en->st.attempts);
		if (en->st.next_try > 0) {
			textout_time(en->st.next_try, t, sizeof(t));
			fprintf(out, ", next try %s", t);
		}
		fputc('\n', out);
		if (en->st.held) {
			textout_time(en->st.held_since, t, sizeof(t));
			fprintf(out, "  held      since %s: not sent until "
			    "released (postie queue release ", t);
			textout_str(out, en->id);
			fputs(")\n", out);
		}
		if (en->down != NULL) {
			textout_time(en->down->since, t, sizeof(t));
			fprintf(out, "  upstream  not reached since %s: ", t);
			textout_str(out, en->down->reason);
			fputc('\n', out);
		}
		for (size_t i = 0; i < en->env.rcpts.n; i++) {
			const char *note = rcpt_note(en, i);

			fputs("  to        ", out);
			textout_str(out, en->env.rcpts.v[i]);
			fprintf(out, "  %s%s", rcpt_state_name(en->st.r[i].state),
			    note && *note ? ": " : "");
			textout_str(out, note ? note : "");
			fputc('\n', out);
		}
		fputc('\n', out);
	}
	fprintf(out, "%zu message%s in the queue\n", n, n == 1 ? "" : "s");
	free(action);
}

static void
print_json(FILE *out, const char *dir, struct entry *ents, size_t n)
{
	char *action = unusable_action(dir);
	char t[64];

	fputs("{\"queue\":", out);
	json_str(out, dir);
	fprintf(out, ",\"count\":%zu,\"messages\":[", n);
	for (size_t k = 0; k < n; k++) {
		struct entry *en = &ents[k];

		fputs(k ? ",\n{" : "\n{", out);
		fputs("\"id\":", out);
		json_str(out, en->id);
		if (en->error != NULL) {
			fputs(",\"error\":", out);
			json_str(out, en->error);
			fputs(",\"action\":", out);
			json_str(out, action);
			fputc('}', out);
			continue;
		}
		textout_time_utc(en->env.queued, t, sizeof(t));
		fprintf(out, ",\"size\":%llu,\"queued\":",
		    (unsigned long long)en->env.size);
		json_str(out, t);
		fprintf(out, ",\"queued_epoch\":%lld,\"sender\":",
		    (long long)en->env.queued);
		json_str(out, en->env.sender);
		fputs(",\"identity\":", out);
		json_str(out, en->identity ? en->identity->name : NULL);
		fprintf(out, ",\"attempts\":%d,\"next_try\":",
		    en->st.attempts);
		if (en->st.next_try > 0) {
			textout_time_utc(en->st.next_try, t, sizeof(t));
			json_str(out, t);
		} else
			fputs("null", out);
		fprintf(out, ",\"held\":%s,\"held_since\":",
		    en->st.held ? "true" : "false");
		if (en->st.held) {
			textout_time_utc(en->st.held_since, t, sizeof(t));
			json_str(out, t);
		} else
			fputs("null", out);
		fputs(",\"unreachable\":", out);
		if (en->down != NULL) {
			textout_time_utc(en->down->since, t, sizeof(t));
			fputs("{\"since\":", out);
			json_str(out, t);
			textout_time_utc(en->down->last, t, sizeof(t));
			fputs(",\"last\":", out);
			json_str(out, t);
			fputs(",\"reason\":", out);
			json_str(out, en->down->reason);
			fputc('}', out);
		} else
			fputs("null", out);
		fputs(",\"recipients\":[", out);
		for (size_t i = 0; i < en->env.rcpts.n; i++) {
			fputs(i ? ",{\"address\":" : "{\"address\":", out);
			json_str(out, en->env.rcpts.v[i]);
			fputs(",\"state\":", out);
			json_str(out, rcpt_state_name(en->st.r[i].state));
			fputs(",\"reply\":", out);
			json_str(out, rcpt_note(en, i));
			fputc('}', out);
		}
		fputs("]}", out);
	}
	fputs(n ? "\n]}\n" : "]}\n", out);
	free(action);
}

int
mailq_print(const struct config *cfg, FILE *out, bool json, struct err *e)
{
	struct queue q;
	struct strvec ids;
	struct entry *ents;
	struct reach down;
	size_t n = 0;

	if (queue_open(&q, cfg->queue, false, e) < 0)
		return -1;
	sv_init(&ids);
	if (queue_list(&q, &ids, e) < 0) {
		queue_close(&q);
		return -1;
	}
	ents = xcalloc(ids.n, sizeof(*ents));
	reach_read(cfg->queue, &down);
	for (size_t i = 0; i < ids.n; i++) {
		struct entry *en = &ents[n];

		en->id = ids.v[i];
		load_entry(cfg, &q, en);
		if (en->error != NULL && access_gone(&q, en->id)) {
			free(en->error);
			en->error = NULL;
			continue;	/* delivered while we looked */
		}
		if (en->error == NULL && en->st.removed) {
			/* removed by hand; a crash left the rest to do */
			envelope_free(&en->env);
			msgstate_free(&en->st);
			memset(en, 0, sizeof(*en));
			continue;
		}
		if (en->error == NULL && en->identity != NULL &&
		    pending_remote(en))
			en->down = reach_find(&down, en->identity->name);
		n++;
	}
	if (json)
		print_json(out, cfg->queue, ents, n);
	else
		print_text(out, cfg->queue, ents, n);
	for (size_t i = 0; i < n; i++) {
		free(ents[i].error);
		envelope_free(&ents[i].env);
		msgstate_free(&ents[i].st);
	}
	free(ents);
	reach_free(&down);
	sv_free(&ids);
	queue_close(&q);
	if (fflush(out) != 0 || ferror(out))
		return err_set(e, ERR_IOERR, "cannot write the listing: %s",
		    strerror(errno));
	return 0;
}
