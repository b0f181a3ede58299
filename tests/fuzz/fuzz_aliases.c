/*
 * fuzz_aliases.c - the aliases file parser (alias_parse_text), the chain
 * check and the expansion (alias.h). The input is an aliases file.
 *
 * Every entry added has a valid name and at least one target; every
 * error names the file and a line; alias_check and alias_expand of every
 * name end (bounded depth and fan-out) and either succeed with at most
 * ALIAS_FANOUT_MAX addresses, none of them empty, or fail with one line.
 */
#include "alias.h"
#include "fuzz.h"
#include "message.h"

#define NAME "fuzz.aliases"

static void
check_expand(const struct alias_table *t, const char *name)
{
	struct strvec out;
	struct addr_set seen;
	struct err e = { 0 };

	sv_init(&out);
	addr_set_init(&seen);
	if (alias_expand(t, "example.org", name, &out, &seen, &e) == 0) {
		FUZZ_CHECK(out.n >= 1 && out.n <= ALIAS_FANOUT_MAX);
		for (size_t i = 0; i < out.n; i++)
			FUZZ_CHECK(out.v[i][0] != '\0');
	} else {
		FUZZ_CHECK(e.code == ERR_CONFIG && e.msg[0] != '\0');
		FUZZ_CHECK(strchr(e.msg, '\n') == NULL);
	}
	addr_set_free(&seen);
	sv_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct alias_table t;
	struct strvec errors;
	int n;

	alias_table_init(&t);
	sv_init(&errors);
	n = alias_parse_text(&t, (const char *)data, size, NAME, &errors);
	FUZZ_CHECK(n >= 0 && errors.n == (size_t)(n < ALIAS_ERRORS_MAX ? n :
	    ALIAS_ERRORS_MAX));
	for (size_t i = 0; i < errors.n; i++) {
		FUZZ_CHECK(strncmp(errors.v[i], NAME ":", strlen(NAME) + 1) ==
		    0);
		FUZZ_CHECK(strchr(errors.v[i], '\n') == NULL);
	}
	FUZZ_CHECK(t.notes.n <= ALIAS_ERRORS_MAX);
	for (size_t i = 0; i < t.notes.n; i++) {
		FUZZ_CHECK(strncmp(t.notes.v[i], NAME ":", strlen(NAME) + 1) ==
		    0);
		FUZZ_CHECK(strchr(t.notes.v[i], '\n') == NULL);
	}
	for (size_t i = 0; i < t.n; i++) {
		FUZZ_CHECK((t.v[i].targets.n > 0) != (t.v[i].unusable != NULL));
		FUZZ_CHECK(alias_find(&t, t.v[i].name) == &t.v[i]);
		if (i < 50)
			check_expand(&t, t.v[i].name);
	}
	sv_free(&errors);
	sv_init(&errors);
	alias_check(&t, &errors);
	FUZZ_CHECK(errors.n <= ALIAS_ERRORS_MAX);
	sv_free(&errors);
	alias_table_free(&t);
	return 0;
}
