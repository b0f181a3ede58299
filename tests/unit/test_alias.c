/* test_alias.c - the aliases file parser, chains, loops and bounds. */
#include "testutil.h"

#include <sys/stat.h>

#include "alias.h"
#include "config.h"
#include "message.h"

static int
parse(struct alias_table *t, const char *text, struct strvec *errors)
{
	alias_table_init(t);
	sv_init(errors);
	return alias_parse_text(t, text, strlen(text), "al", errors);
}

/* The expansion of rcpt, joined with ' ', or "ERR: msg". */
static char *
expand(const struct alias_table *t, const char *domain, const char *rcpt)
{
	struct strvec out;
	struct addr_set seen;
	struct err e = { 0 };
	struct strbuf sb;

	sv_init(&out);
	addr_set_init(&seen);
	sb_init(&sb);
	if (alias_expand(t, domain, rcpt, &out, &seen, &e) < 0)
		sb_addf(&sb, "ERR: %s", e.msg);
	else
		for (size_t i = 0; i < out.n; i++)
			sb_addf(&sb, "%s%s", i ? " " : "", out.v[i]);
	addr_set_free(&seen);
	sv_free(&out);
	return sb.s != NULL ? sb_steal(&sb) : xstrdup("");
}

static void
assert_expands(const struct alias_table *t, const char *domain,
    const char *rcpt, const char *want)
{
	char *got = expand(t, domain, rcpt);

	assert_string_equal(got, want);
	free(got);
}

static void
test_sendmail_format(void **state)
{
	struct alias_table t;
	struct strvec errors;

	(void)state;
	assert_int_equal(parse(&t,
	    "# Debian's /etc/aliases\n"
	    "mailer-daemon: postmaster\n"
	    "\n"
	    "postmaster:\troot\n"
	    "Root: me@example.org,\n"
	    "  you@example.org ,\n"
	    "\t<them@example.org>\n"
	    "  # a comment amid an entry\n"
	    "  , \"quoted local\"@example.org\n"
	    "last: x@y.example", &errors), 0);
	assert_int_equal(t.n, 4);
	assert_string_equal(t.v[2].name, "root");	/* lower case */
	assert_string_equal(t.v[2].where, "al:5");
	assert_int_equal(t.v[2].targets.n, 4);
	assert_string_equal(t.v[2].targets.v[2], "them@example.org");
	assert_string_equal(t.v[2].targets.v[3], "\"quoted local\"@example.org");
	assert_string_equal(t.v[3].where, "al:10");
	assert_non_null(alias_find(&t, "ROOT"));
	assert_null(alias_find(&t, "nobody"));
	assert_int_equal(alias_check(&t, &errors), 0);
	assert_expands(&t, NULL, "mailer-daemon",
	    "me@example.org you@example.org them@example.org "
	    "\"quoted local\"@example.org");
	alias_table_free(&t);
	sv_free(&errors);
}

/* What sendmail would run, write or include: that name refuses mail,
 * the rest of the file works (mailman's "|command" entries live in
 * /etc/aliases too). */
static void
test_unusable_targets(void **state)
{
	static const struct {
		const char *text, *name, *err;
	} cases[] = {
		{ "a: :include:/etc/list\n", "a",
		    "al:1: mail to a is refused: ':include:' is not" },
		{ "a: x\nb: \"|/usr/bin/cmd\"\n", "b",
		    "al:2: mail to b is refused: a program target" },
		{ "a: |/usr/bin/cmd\n", "a",
		    "al:1: mail to a is refused: a program target" },
		{ "a: x@y, /var/mail/a\n", "a",
		    "al:1: mail to a is refused: a file target" },
		{ "list: me@x, Prog\nprog: |cmd\n", "list",
		    "al:2: mail to prog is refused: a program target" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct alias_table t;
		struct strvec errors, out;
		struct addr_set seen;
		struct err e = { 0 };

		alias_table_init(&t);
		sv_init(&errors);
		sv_init(&out);
		addr_set_init(&seen);
		if (alias_parse_text(&t, cases[i].text, strlen(cases[i].text),
		    "al", &errors) != 0 || alias_check(&t, &errors) != 0)
			fail_msg("case %zu: an error: %s", i, errors.v[0]);
		if (alias_expand(&t, "d", cases[i].name, &out, &seen, &e) !=
		    -1 || e.code != ERR_CONFIG)
			fail_msg("case %zu: expanded", i);
		if (strncmp(e.msg, cases[i].err, strlen(cases[i].err)) != 0)
			fail_msg("case %zu: %s", i, e.msg);
		/* every other name works (seen points into out: both
		 * start again) */
		addr_set_free(&seen);
		addr_set_init(&seen);
		sv_free(&out);
		sv_init(&out);
		assert_int_equal(alias_expand(&t, "d", "other", &out, &seen,
		    &e), 0);
		assert_string_equal(out.v[0], "other");
		addr_set_free(&seen);
		alias_table_free(&t);
		sv_free(&errors);
		sv_free(&out);
	}
}

/* A name given again: the first counts, noted, no error (Postfix and
 * sendmail warn and go on); sendmail's \name is a leaf. */
static void
test_repeated_names_and_backslash(void **state)
{
	static const char text[] = "a: b@x\nA: c@x\nroot: \\root, me@x\n"
	    "a: |cmd\n";
	struct alias_table t;
	struct strvec errors, out;
	struct addr_set seen;
	struct err e = { 0 };

	(void)state;
	alias_table_init(&t);
	sv_init(&errors);
	sv_init(&out);
	addr_set_init(&seen);
	assert_int_equal(alias_parse_text(&t, text, strlen(text), "al",
	    &errors), 0);
	assert_int_equal(alias_check(&t, &errors), 0);
	assert_int_equal(t.notes.n, 2);
	assert_string_equal(t.notes.v[0], "al:2: this name has an alias "
	    "already (the first one counts)");
	assert_string_equal(t.notes.v[1], "al:4: this name has an alias "
	    "already (the first one counts)");
	assert_int_equal(alias_expand(&t, "d", "a", &out, &seen, &e), 0);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.v[0], "b@x");
	/* seen points into out: both start again */
	addr_set_free(&seen);
	addr_set_init(&seen);
	sv_free(&out);
	sv_init(&out);
	assert_int_equal(alias_expand(&t, "d", "root", &out, &seen, &e), 0);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0], "root");	/* the local copy */
	assert_string_equal(out.v[1], "me@x");
	addr_set_free(&seen);
	alias_table_free(&t);
	sv_free(&errors);
	sv_free(&out);
}

static void
test_refused_targets(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{ "a b: x\n", "al:1: an alias name may only" },
		{ "a b: |cmd\n", "al:1: an alias name may only" },
		{ "a: \\b c\n", "al:1: a local name may only" },
		{ ": x\n", "al:1: an alias name may only" },
		{ "a:\n", "al:1: the alias has no address" },
		{ "a x\n", "al:1: no ':' after the name" },
		{ " x@y\n", "al:1: a continuation line" },
		{ "a: $6$hash\n", "al:1: a local name may only" },
		{ "a: x@y@z<\n", "al:1: a target is not a usable address" },
		{ "a: b\x01@c\n", "al:1: a target is not a usable" },
		{ "a: b\n\0: c\n", "al:2: the line has a NUL byte" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct alias_table t;
		struct strvec errors;
		size_t len = strlen(cases[i].text);

		if (i == sizeof(cases) / sizeof(cases[0]) - 1)
			len = 10;	/* past the NUL */
		alias_table_init(&t);
		sv_init(&errors);
		if (alias_parse_text(&t, cases[i].text, len, "al", &errors) !=
		    1)
			fail_msg("case %zu: not one error", i);
		if (strncmp(errors.v[0], cases[i].err,
		    strlen(cases[i].err)) != 0)
			fail_msg("case %zu: %s", i, errors.v[0]);
		alias_table_free(&t);
		sv_free(&errors);
	}
}

/* Parse errors never quote the file: a password hash stays unseen. */
static void
test_errors_never_quote_the_file(void **state)
{
	struct alias_table t;
	struct strvec errors;
	const char *shadow = "root:$6$SECRETHASH:19000:0:99999:7:::\n"
	    "daemon:*:19000:0:99999:7:::\n"
	    "  SECRETCONT\n";

	(void)state;
	assert_true(parse(&t, shadow, &errors) > 0);
	/* each broken entry refuses the mail to its name, with no text of
	 * the file in the reason either */
	assert_int_equal(t.n, 2);
	for (size_t i = 0; i < t.n; i++) {
		assert_non_null(t.v[i].unusable);
		assert_true(t.v[i].broken);
		assert_null(strstr(t.v[i].unusable, "SECRET"));
		assert_null(strstr(t.v[i].where, "SECRET"));
	}
	for (size_t i = 0; i < errors.n; i++)
		assert_null(strstr(errors.v[i], "SECRET"));
	alias_table_free(&t);
	sv_free(&errors);
}

static void
test_long_lines_and_entries(void **state)
{
	struct alias_table t;
	struct strvec errors;
	struct strbuf sb;

	(void)state;
	sb_init(&sb);
	sb_adds(&sb, "a: ");
	for (int i = 0; i < 5000; i++)
		sb_addc(&sb, 'x');
	sb_adds(&sb, "\nb: c\n");
	assert_int_equal(parse(&t, sb.s, &errors), 1);
	assert_string_equal(errors.v[0], "al:1: the line is longer than 4096 "
	    "bytes: is this an aliases file?");
	assert_int_equal(t.n, 1);	/* b still counts */
	alias_table_free(&t);
	sv_free(&errors);

	sb_reset(&sb);
	sb_adds(&sb, "a: x@y\n");
	for (int i = 0; i < 20; i++) {
		sb_adds(&sb, "  ");
		for (int j = 0; j < 4000; j++)
			sb_addc(&sb, 'x');
		sb_adds(&sb, "\n");
	}
	assert_int_equal(parse(&t, sb.s, &errors), 1);
	assert_string_equal(errors.v[0], "al:1: the entry is longer than "
	    "64 KiB");
	alias_table_free(&t);
	sv_free(&errors);
	sb_free(&sb);
}

static void
test_chains_and_domain(void **state)
{
	struct alias_table t;
	struct strvec errors;

	(void)state;
	assert_int_equal(parse(&t,
	    "postmaster: root\n"
	    "root: root, admin, me@example.org\n"
	    "admin: ops, me@example.org\n", &errors), 0);
	/* root -> root is a leaf (a local copy); ops has no alias */
	assert_expands(&t, NULL, "postmaster", "root ops me@example.org");
	/* with a domain too: the local copy stays local (cron's mail to
	 * root went out as root@domain); ops, a bare target, is qualified */
	assert_expands(&t, "example.net", "postmaster",
	    "root ops@example.net me@example.org");
	/* a name without an alias stays local, domain or not */
	assert_expands(&t, "example.net", "nobody", "nobody");
	assert_expands(&t, "example.net", "ROOT",
	    "root ops@example.net me@example.org");
	/* an address is never looked up */
	assert_expands(&t, "example.net", "root@example.com",
	    "root@example.com");
	alias_table_free(&t);
	sv_free(&errors);
}

static void
test_loops(void **state)
{
	struct alias_table t;
	struct strvec errors;

	(void)state;
	assert_int_equal(parse(&t,
	    "a: b\n"
	    "b: c, x@y\n"
	    "c: a\n"
	    "fine: x@y\n", &errors), 0);
	assert_expands(&t, NULL, "a", "ERR: al:3: alias loop: a -> b -> c -> a");
	assert_expands(&t, NULL, "fine", "x@y");
	/* the check says the loop once, from its first member, at its line
	 * (not each rotation, at the line that closes it) */
	assert_int_equal(alias_check(&t, &errors), 1);
	assert_int_equal(errors.n, 1);
	assert_string_equal(errors.v[0], "al:1: alias loop: a -> b -> c -> a");
	alias_table_free(&t);
	sv_free(&errors);
	/* led into from before it, and a second loop: each once */
	assert_int_equal(parse(&t,
	    "d: c\n"
	    "x: y\n"
	    "a: b\n"
	    "b: c\n"
	    "c: a\n"
	    "y: x\n", &errors), 0);
	assert_int_equal(alias_check(&t, &errors), 2);
	assert_int_equal(errors.n, 2);
	assert_string_equal(errors.v[0], "al:3: alias loop: a -> b -> c -> a");
	assert_string_equal(errors.v[1], "al:2: alias loop: x -> y -> x");
	/* mail to one of them still names the line that closes it */
	assert_expands(&t, NULL, "b", "ERR: al:3: alias loop: b -> c -> a -> b");
	alias_table_free(&t);
	sv_free(&errors);
}

static void
test_bounds(void **state)
{
	struct alias_table t;
	struct strvec errors;
	struct strbuf sb;
	char *got;

	(void)state;
	/* a chain of 12: deeper than 10 */
	sb_init(&sb);
	for (int i = 0; i < 12; i++)
		sb_addf(&sb, "n%d: n%d\n", i, i + 1);
	assert_int_equal(parse(&t, sb.s, &errors), 0);
	got = expand(&t, NULL, "n0");
	assert_string_equal(got, "ERR: al:11: aliases chained more than 10 "
	    "deep: n0 -> n1 -> n2 -> n3 -> n4 -> n5 -> n6 -> n7 -> n8 -> "
	    "n9 -> n10");
	free(got);
	assert_expands(&t, NULL, "n3", "n12");	/* 9 deep: fine */
	alias_table_free(&t);
	sv_free(&errors);

	/* 4 levels of 8 each: 4096 addresses, over 1000 */
	sb_reset(&sb);
	for (int lvl = 0; lvl < 4; lvl++) {
		sb_addf(&sb, "l%d:", lvl);
		for (int j = 0; j < 8; j++)
			sb_addf(&sb, "%s l%d", j ? "," : "", lvl + 1);
		sb_adds(&sb, "\n");
	}
	assert_int_equal(parse(&t, sb.s, &errors), 0);
	got = expand(&t, NULL, "l0");
	assert_string_equal(got, "ERR: al:1: the alias l0 expands to more "
	    "than 1000 addresses");
	free(got);
	alias_table_free(&t);
	sv_free(&errors);
	sb_free(&sb);
}

static void
test_config_alias_lines(void **state)
{
	struct err e = { 0 };
	struct config *c;
	char *got;

	(void)state;
	c = config_parse_string("domain example.org\n"
	    "alias root me@example.org, admin\n"
	    "alias postmaster root\n", "t.conf", &e);
	if (c == NULL)
		fail_msg("%s", e.msg);
	assert_string_equal(c->domain, "example.org");
	assert_string_equal(config_domain(c), "example.org");
	assert_int_equal(c->aliases.n, 2);
	assert_string_equal(c->aliases.v[0].where, "t.conf:2");
	got = expand(&c->aliases, c->domain, "postmaster");
	assert_string_equal(got, "me@example.org admin@example.org");
	free(got);
	assert_int_equal(c->delay_warning, 4 * 3600);
	config_free(c);

	c = config_parse_string("alias a b\nalias b a\n", "t.conf", &e);
	assert_null(c);
	assert_string_equal(e.msg, "t.conf:1: alias loop: a -> b -> a");
	c = config_parse_string("alias a\n", "t.conf", &e);
	assert_null(c);
	assert_string_equal(e.msg, "t.conf:1: word 2: 'alias' needs a name "
	    "and at least one address");
	c = config_parse_string("alias a |/bin/sh\n", "t.conf", &e);
	assert_null(c);
	assert_string_equal(e.msg, "t.conf:1: 'alias': a program target "
	    "('|command') is not supported: postie runs no program for a "
	    "recipient (use mda)");
	c = config_parse_string("domain exa_mple.org\n", "t.conf", &e);
	assert_null(c);
	assert_string_equal(e.msg, "t.conf:1: word 2: 'domain' must be a "
	    "domain name (letters, digits, '-' and '.')");
	c = config_parse_string("domain a\ndomain b\n", "t.conf", &e);
	assert_null(c);
}

/* Fill the stack below the caller with non-zero bytes, so that a
 * local read before it is set sees garbage, not a lucky zero. */
static __attribute__((noinline)) void
dirty_stack(void)
{
	volatile unsigned char junk[16384];

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = 0x7f;
}

/* Without an error list (sendmail's call), the first error is still the
 * one reported: the list it keeps for itself starts empty. */
static void
test_load_aliases_first_error_without_list(void **state)
{
	char *dir = tu_tmpdir();
	char *path = xasprintf("%s/aliases", dir);
	char *conf = xasprintf("aliases %s\n", path);
	struct err e = { 0 };
	struct config *c;
	FILE *f;

	(void)state;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("a: b\nroot: |x\nb c: d\ne f: g\n", f);
	fclose(f);
	c = config_parse_string(conf, "t.conf", &e);
	assert_non_null(c);
	dirty_stack();
	/* problems are counted, not fatal: each refuses only its mail */
	assert_int_equal(config_load_aliases(c, NULL, NULL, &e), 2);
	assert_non_null(strstr(e.msg, "aliases:3: an alias name may only"));
	assert_non_null(strstr(e.msg, "(and more: run newaliases"));
	config_free(c);
	tu_rmtree(dir);
	free(dir);
	free(path);
	free(conf);
}

/* The alias lines win over the file's entry of the same name. */
static void
test_load_aliases_file(void **state)
{
	char *dir = tu_tmpdir();
	char *path = xasprintf("%s/aliases", dir);
	char *conf = xasprintf("alias root me@example.org\naliases %s\n", path);
	struct strvec errors;
	struct err e = { 0 };
	struct config *c;
	size_t nfile;
	FILE *f;

	(void)state;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("root: other@example.org\npostmaster: root\n", f);
	fclose(f);
	c = config_parse_string(conf, "t.conf", &e);
	assert_non_null(c);
	sv_init(&errors);
	assert_int_equal(config_load_aliases(c, &errors, &nfile, &e), 0);
	assert_int_equal(nfile, 2);
	assert_int_equal(c->aliases.n, 2);
	assert_string_equal(alias_find(&c->aliases, "root")->targets.v[0],
	    "me@example.org");
	config_free(c);

	/* a file others may write is refused, as the config would be */
	assert_int_equal(chmod(path, 0622), 0);
	c = config_parse_string(conf, "t.conf", &e);
	assert_int_equal(config_load_aliases(c, &errors, &nfile, &e), -1);
	assert_non_null(strstr(e.msg, "is writable by other users"));
	config_free(c);
	assert_int_equal(chmod(path, 0600), 0);

	/* an error: the first one in e, all of them in errors */
	f = fopen(path, "w");
	fputs("a x\nb c: d\n", f);
	fclose(f);
	c = config_parse_string(conf, "t.conf", &e);
	assert_int_equal(config_load_aliases(c, &errors, &nfile, &e), 2);
	assert_int_equal(errors.n, 2);
	assert_non_null(strstr(e.msg, "aliases:1: no ':' after the name"));
	assert_non_null(strstr(e.msg, "(and more: run newaliases"));
	config_free(c);

	/* an entry for a program: kept as unusable, the file loads, the
	 * alias lines still win over the file's entry of the same name */
	sv_free(&errors);
	sv_init(&errors);
	f = fopen(path, "w");
	fputs("mailman: \"|/usr/lib/mailman post\"\nroot: |x\n"
	    "postmaster: root\n", f);
	fclose(f);
	c = config_parse_string(conf, "t.conf", &e);
	assert_int_equal(config_load_aliases(c, &errors, &nfile, &e), 0);
	assert_int_equal(errors.n, 0);
	assert_int_equal(nfile, 3);
	assert_non_null(alias_find(&c->aliases, "mailman")->unusable);
	assert_null(alias_find(&c->aliases, "root")->unusable);
	assert_string_equal(alias_find(&c->aliases, "root")->targets.v[0],
	    "me@example.org");
	config_free(c);
	sv_free(&errors);
	tu_rmtree(dir);
	free(dir);
	free(path);
	free(conf);
}

/* A large file: every name found (the index grows), in any case. */
static void
test_many_aliases(void **state)
{
	struct alias_table t;
	struct strvec errors;
	struct strbuf sb;
	char name[32];

	(void)state;
	sb_init(&sb);
	for (int i = 0; i < 5000; i++)
		sb_addf(&sb, "User%d: u%d@example.org\n", i, i);
	sb_adds(&sb, "user77: dup@example.org\n");
	assert_int_equal(parse(&t, sb.s, &errors), 0);
	assert_int_equal(t.notes.n, 1);
	assert_string_equal(t.notes.v[0], "al:5001: this name has an alias "
	    "already (the first one counts)");
	assert_int_equal(t.n, 5000);
	for (int i = 0; i < 5000; i++) {
		const struct alias *a;

		snprintf(name, sizeof(name), "USER%d", i);
		a = alias_find(&t, name);
		assert_non_null(a);
		assert_ptr_equal(a, &t.v[i]);
	}
	assert_null(alias_find(&t, "user5000"));
	alias_table_free(&t);
	sv_free(&errors);
	sb_free(&sb);
}

static void
test_qualify_from(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "From: root (Cron Daemon)\n",
		  "From: root@ex.org (Cron Daemon)\n" },
		{ "From: root\r\n", "From: root@ex.org\r\n" },
		{ "From: Cron Daemon <root>\n", "From: Cron Daemon <root@ex.org>\n" },
		{ "From: \"a, b\" <x>, y@z, w\n",
		  "From: \"a, b\" <x@ex.org>, y@z, w@ex.org\n" },
		{ "FROM:\n root (a (nested) c)\n",
		  "FROM:\n root@ex.org (a (nested) c)\n" },
		{ "From: x@y.org\n", NULL },
		{ "From: list: a@b;\n", NULL },
		{ "From: two words\n", NULL },
		{ "From: \"quoted\"\n", NULL },
		{ "From: <>\n", NULL },
		{ "From: (only a comment)\n", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf sb;
		bool changed;

		sb_init(&sb);
		changed = msg_qualify_field(cases[i].in, strlen(cases[i].in),
		    "ex.org", &sb);
		if (cases[i].out == NULL) {
			if (changed)
				fail_msg("case %zu changed: %s", i, sb.s);
		} else if (!changed || strcmp(sb.s, cases[i].out) != 0)
			fail_msg("case %zu: %s", i, changed ? sb.s : "unchanged");
		sb_free(&sb);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sendmail_format),
		cmocka_unit_test(test_refused_targets),
		cmocka_unit_test(test_unusable_targets),
		cmocka_unit_test(test_repeated_names_and_backslash),
		cmocka_unit_test(test_errors_never_quote_the_file),
		cmocka_unit_test(test_long_lines_and_entries),
		cmocka_unit_test(test_chains_and_domain),
		cmocka_unit_test(test_loops),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_config_alias_lines),
		cmocka_unit_test(test_load_aliases_file),
		cmocka_unit_test(test_load_aliases_first_error_without_list),
		cmocka_unit_test(test_many_aliases),
		cmocka_unit_test(test_qualify_from),
	};

	return cmocka_run_group_tests_name("test_alias", tests, NULL, NULL);
}
