/*
 * fuzz_queue.c - the readers of the on-disk queue (queue/README.md): the
 * envelope at the top of msg/ID (envelope_parse) and the delivery journal
 * state/ID (msgstate_fold). The input is msg/ID, then a NUL byte, then
 * state/ID; without a NUL both readers get the whole input.
 *
 * Checked: an envelope that parses has a sender and a recipient, ends
 * with its "end" line, and reads back the same after envelope_format; a
 * journal's replies are sanitized, a torn last line counts for nothing,
 * a final recipient state (ok, fail) stays final whatever follows, and the
 * held time (hold, release) stays in range, so the age never goes below 0.
 */
#include "fuzz.h"
#include "queue.h"

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
check_round_trip(const struct envelope *env)
{
	struct envelope again;
	struct strbuf sb;
	char why[256] = "";
	size_t used = 0;

	sb_init(&sb);
	envelope_format(env, &sb);
	FUZZ_CHECK(envelope_parse(sb.s, sb.len, &again, &used, why,
	    sizeof(why)) == 0);
	FUZZ_CHECK(used == sb.len);
	FUZZ_CHECK(again.queued == env->queued);
	FUZZ_CHECK(same(again.sender, env->sender));
	FUZZ_CHECK(same(again.identity, env->identity));
	FUZZ_CHECK(same(again.notify, env->notify));
	FUZZ_CHECK(same(again.ret, env->ret));
	FUZZ_CHECK(same(again.body, env->body));
	FUZZ_CHECK(same(again.envid, env->envid));
	FUZZ_CHECK(again.rcpts.n == env->rcpts.n);
	for (size_t i = 0; i < env->rcpts.n; i++)
		FUZZ_CHECK(strcmp(again.rcpts.v[i], env->rcpts.v[i]) == 0);
	envelope_free(&again);
	sb_free(&sb);
}

/* The number of recipients the journal speaks of. */
static size_t
check_envelope(const char *buf, size_t len)
{
	struct envelope env;
	char why[256] = "";
	size_t used = 0, n = 3;

	if (envelope_parse(buf, len, &env, &used, why, sizeof(why)) < 0) {
		FUZZ_CHECK(why[0] != '\0');
		FUZZ_CHECK(env.sender == NULL && env.rcpts.n == 0);
		return n;
	}
	FUZZ_CHECK(used >= 4 && used <= len);
	FUZZ_CHECK(memcmp(buf + used - 4, "end\n", 4) == 0);
	FUZZ_CHECK(env.sender != NULL && env.rcpts.n > 0);
	check_round_trip(&env);
	n = env.rcpts.n;
	envelope_free(&env);
	return n;
}

static bool
is_final(enum rcpt_state s)
{
	return s == RCPT_SENT || s == RCPT_FAILED;
}

static bool
same_state(const struct msgstate *a, const struct msgstate *b)
{
	if (a->n != b->n || a->attempts != b->attempts ||
	    a->last_attempt != b->last_attempt ||
	    a->next_try != b->next_try || a->bounced != b->bounced ||
	    a->held != b->held || a->held_since != b->held_since ||
	    a->held_secs != b->held_secs || a->removed != b->removed)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->r[i].state != b->r[i].state ||
		    a->r[i].when != b->r[i].when ||
		    !same(a->r[i].reply, b->r[i].reply))
			return false;
	return true;
}

static void
check_journal(const char *text, size_t len, size_t nrcpts)
{
	static const char later[] = "1 defer * later\n1 fail * later\n";
	struct msgstate st, more;
	struct strbuf sb;
	const char *lf;

	msgstate_fold(&st, nrcpts, text, len);
	FUZZ_CHECK(st.n == nrcpts && st.attempts >= 0);
	FUZZ_CHECK(st.held_secs >= 0 && st.held_secs <= QUEUE_TIME_MAX);
	{
		struct envelope env = { .queued = 1 };

		FUZZ_CHECK(queue_age(&env, &st, (time_t)QUEUE_TIME_MAX) >= 0);
		FUZZ_CHECK(queue_age(&env, &st, 0) == 0);
	}
	for (size_t i = 0; i < st.n; i++) {
		const char *r = st.r[i].reply;

		FUZZ_CHECK(st.r[i].state >= RCPT_WAITING &&
		    st.r[i].state <= RCPT_FAILED);
		FUZZ_CHECK((r == NULL) == (st.r[i].state == RCPT_WAITING));
		for (; r != NULL && *r != '\0'; r++)
			FUZZ_CHECK((unsigned char)*r >= 0x20 && *r != 0x7f);
	}
	/* a torn last line (no LF) counts for nothing */
	lf = len > 0 ? memrchr(text, '\n', len) : NULL;
	msgstate_fold(&more, nrcpts, text, lf != NULL ? (size_t)(lf - text) +
	    1 : 0);
	FUZZ_CHECK(same_state(&st, &more));
	msgstate_free(&more);
	/* what follows never undoes a final state */
	sb_init(&sb);
	sb_add(&sb, text, lf != NULL ? (size_t)(lf - text) + 1 : 0);
	sb_adds(&sb, later);
	msgstate_fold(&more, nrcpts, sb.s, sb.len);
	for (size_t i = 0; i < st.n; i++) {
		FUZZ_CHECK(is_final(more.r[i].state));
		FUZZ_CHECK(!is_final(st.r[i].state) ||
		    more.r[i].state == st.r[i].state);
	}
	msgstate_free(&more);
	sb_free(&sb);
	msgstate_free(&st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_strndup(data, size);
	const char *nul = memchr(buf, '\0', size);
	size_t elen = nul != NULL ? (size_t)(nul - buf) : size;
	const char *journal = nul != NULL ? nul + 1 : buf;
	size_t jlen = nul != NULL ? size - elen - 1 : size;
	size_t nrcpts = check_envelope(buf, elen);

	check_journal(journal, jlen, nrcpts);
	free(buf);
	return 0;
}
