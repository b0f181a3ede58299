/* mailq.c - list the queue as text or JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mailq.h"
#include "queue.h"

struct entry {
	char		*id;
	char		*error;		/* unreadable: why */
	struct envelope	 env;
	struct msgstate	 st;
	const struct identity *identity;
	bool		 has_remote;
};

static void
fmt_local(time_t t, char *buf, size_t len)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
fmt_utc(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
json_str(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Did msg/ID vanish (delivered while we looked)? */
static bool
access_gone(struct queue *q, const char *id)
{
	char *p = xasprintf("%s/%s", q->msg, id);
	bool gone = access(p, F_OK) != 0 && errno == ENOENT;

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
print_text(FILE *out, struct entry *ents, size_t n)
{
	char t[64];

	for (size_t k = 0; k < n; k++) {
		struct entry *en = &ents[k];

		if (en->error != NULL) {
			fprintf(out, "%s  unreadable: %s\n\n", en->id,
			    en->error);
			continue;
		}
		fmt_local(en->env.queued, t, sizeof(t));
		fprintf(out, "%s  %llu bytes  queued %s\n", en->id,
		    (unsigned long long)en->env.size, t);
		fprintf(out, "  sender    %s\n", *en->env.sender ?
		    en->env.sender : "<>");
		if (en->identity != NULL)
			fprintf(out, "  identity  %s\n", en->identity->name);
		else if (en->has_remote)
			fprintf(out, "  identity  none\n");
		else
			fprintf(out, "  identity  local delivery\n");
		fprintf(out, "  attempts  %d", en->st.attempts);
		if (en->st.next_try > 0) {
			fmt_local(en->st.next_try, t, sizeof(t));
			fprintf(out, ", next try %s", t);
		}
		fputc('\n', out);
		for (size_t i = 0; i < en->env.rcpts.n; i++) {
			const char *note = rcpt_note(en, i);

			fprintf(out, "  to        %s  %s%s%s\n",
			    en->env.rcpts.v[i],
			    rcpt_state_name(en->st.r[i].state),
			    note && *note ? ": " : "", note ? note : "");
		}
		fputc('\n', out);
	}
	fprintf(out, "%zu message%s in the queue\n", n, n == 1 ? "" : "s");
}

static void
print_json(FILE *out, const char *dir, struct entry *ents, size_t n)
{
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
			fputc('}', out);
			continue;
		}
		fmt_utc(en->env.queued, t, sizeof(t));
		fprintf(out, ",\"size\":%llu,\"queued\":\"%s\","
		    "\"queued_epoch\":%lld,\"sender\":",
		    (unsigned long long)en->env.size, t,
		    (long long)en->env.queued);
		json_str(out, en->env.sender);
		fputs(",\"identity\":", out);
		json_str(out, en->identity ? en->identity->name : NULL);
		fprintf(out, ",\"attempts\":%d,\"next_try\":",
		    en->st.attempts);
		if (en->st.next_try > 0) {
			fmt_utc(en->st.next_try, t, sizeof(t));
			json_str(out, t);
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
}

int
mailq_print(const struct config *cfg, FILE *out, bool json, struct err *e)
{
	struct queue q;
	struct strvec ids;
	struct entry *ents;
	size_t n = 0;

	if (queue_open(&q, cfg->queue, false, e) < 0)
		return -1;
	sv_init(&ids);
	if (queue_list(&q, &ids, e) < 0) {
		queue_close(&q);
		return -1;
	}
	ents = xcalloc(ids.n, sizeof(*ents));
	for (size_t i = 0; i < ids.n; i++) {
		struct entry *en = &ents[n];

		en->id = ids.v[i];
		load_entry(cfg, &q, en);
		if (en->error != NULL && access_gone(&q, en->id)) {
			free(en->error);
			en->error = NULL;
			continue;	/* delivered while we looked */
		}
		n++;
	}
	if (json)
		print_json(out, cfg->queue, ents, n);
	else
		print_text(out, ents, n);
	for (size_t i = 0; i < n; i++) {
		free(ents[i].error);
		envelope_free(&ents[i].env);
		msgstate_free(&ents[i].st);
	}
	free(ents);
	sv_free(&ids);
	queue_close(&q);
	if (fflush(out) != 0 || ferror(out))
		return err_set(e, ERR_IOERR, "cannot write the listing: %s",
		    strerror(errno));
	return 0;
}
