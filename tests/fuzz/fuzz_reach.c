/*
 * fuzz_reach.c - QUEUE/unreachable (reach.h), read by mailq and deliver
 * as a file anyone who got at the queue could have written.
 *
 * Checked: at most REACH_MAX entries, each with a name of 1 to 255
 * bytes without control characters, times in range with since <= last,
 * a reason without control characters; names are unique; setting and
 * clearing an entry keeps all of that.
 */
#include "fuzz.h"
#include "reach.h"

static void
check(const struct reach *r)
{
	FUZZ_CHECK(r->n <= REACH_MAX);
	for (size_t i = 0; i < r->n; i++) {
		const struct reach_entry *en = &r->v[i];
		size_t len = strlen(en->name);

		FUZZ_CHECK(len >= 1 && len <= 255);
		for (const char *p = en->name; *p; p++)
			FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
		for (const char *p = en->reason; *p; p++)
			FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
		FUZZ_CHECK(en->since >= 1 && en->since <= en->last);
		FUZZ_CHECK(reach_find(r, en->name) == en);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reach r;

	reach_parse((const char *)data, size, &r);
	check(&r);
	if (r.n > 0) {
		char *name = xstrdup(r.v[0].name);

		reach_set(&r, name, r.v[0].last + 1, "again\tand \x1b again");
		check(&r);
		FUZZ_CHECK(reach_clear(&r, name));
		FUZZ_CHECK(reach_find(&r, name) == NULL);
		check(&r);
		free(name);
	}
	reach_free(&r);
	return 0;
}
