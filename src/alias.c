/*
 * alias.c - the alias table: the aliases file's parser, the chain check
 * and the expansion of one recipient (see alias.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alias.h"
#include "config.h"
#include "message.h"
#include "trust.h"

void
alias_table_init(struct alias_table *t)
{
	memset(t, 0, sizeof(*t));
	sv_init(&t->notes);
}

void
alias_table_free(struct alias_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].name);
		sv_free(&t->v[i].targets);
		free(t->v[i].where);
		free(t->v[i].unusable);
	}
	free(t->v);
	free(t->slot);
	sv_free(&t->notes);
	memset(t, 0, sizeof(*t));
}

/* FNV-1a of the lower-cased name. */
static size_t
hash(const char *s)
{
	size_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)tolower((unsigned char)*s)) * 16777619u;
	return h;
}

/* The slot of name: where it is, or the empty one where it would go. */
static size_t *
find_slot(const struct alias_table *t, const char *name)
{
	size_t i = hash(name) & (t->cap - 1);

	while (t->slot[i] != 0 &&
	    strcasecmp(t->v[t->slot[i] - 1].name, name) != 0)
		i = (i + 1) & (t->cap - 1);
	return &t->slot[i];
}

/* Keep the index at most half full (t->n entries and one more). */
static void
grow_index(struct alias_table *t)
{
	if (2 * (t->n + 1) <= t->cap)
		return;
	free(t->slot);
	t->cap = t->cap == 0 ? 16 : 2 * t->cap;
	t->slot = xcalloc(t->cap, sizeof(*t->slot));
	for (size_t i = 0; i < t->n; i++)
		*find_slot(t, t->v[i].name) = i + 1;
}

const struct alias *
alias_find(const struct alias_table *t, const char *name)
{
	size_t *slot;

	if (t->cap == 0)
		return NULL;
	slot = find_slot(t, name);
	return *slot != 0 ? &t->v[*slot - 1] : NULL;
}

/*
 * A local name: letters, digits and ". _ + -", at most ALIAS_NAME_MAX
 * bytes. Narrower than a local part may be, so that a file that is not
 * an aliases file (a password database named by mistake) never yields a
 * recipient made of its text.
 */
static bool
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ALIAS_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("._+-", *s) == NULL)
			return false;
	return true;
}

/* What sendmail would run, write or read for a target that postie does
 * not: why, else NULL. */
static const char *
unsupported(const char *tg)
{
	if (strncasecmp(tg, ":include:", 9) == 0 ||
	    strncasecmp(tg, "\":include:", 10) == 0)
		return "':include:' is not supported: list the addresses in "
		    "the entry itself";
	if (tg[0] == '|' || strncmp(tg, "\"|", 2) == 0)
		return "a program target ('|command') is not supported: postie "
		    "runs no program for a recipient (use mda)";
	if (tg[0] == '/' || strncmp(tg, "\"/", 2) == 0)
		return "a file target ('/path') is not supported: postie "
		    "writes no file for a recipient";
	return NULL;
}

/* NULL if target (trimmed, brackets taken off) can be added, else why. */
static const char *
target_problem(const char *tg)
{
	const char *why;

	if ((why = unsupported(tg)) != NULL)
		return why;
	/* sendmail's \name: that local name, looked up no further */
	if (tg[0] == '\\')
		return valid_name(tg + 1) ? NULL : "a local name may only "
		    "have letters, digits, '.', '_', '+' and '-' (at most 64)";
	if (strchr(tg, '@') == NULL)
		return valid_name(tg) ? NULL : "a local name may only have "
		    "letters, digits, '.', '_', '+' and '-' (at most 64)";
	if (!addr_valid_envelope(tg, &why))
		return "a target is not a usable address";
	return NULL;
}

static int	add(struct alias_table *, const char *, const struct strvec *,
		    const char *, const char *);

int
alias_add(struct alias_table *t, const char *name,
    const struct strvec *targets, const char *where, const char **why)
{

	if (!valid_name(name)) {
		*why = "an alias name may only have letters, digits, '.', '_', "
		    "'+' and '-' (at most 64)";
		return -1;
	}
	if (targets->n == 0) {
		*why = "the alias has no address";
		return -1;
	}
	for (size_t i = 0; i < targets->n; i++)
		if ((*why = target_problem(targets->v[i])) != NULL)
			return unsupported(targets->v[i]) != NULL ? -2 : -1;
	if (alias_find(t, name) != NULL) {
		*why = "this name has an alias already (the first one counts)";
		return -3;
	}
	return add(t, name, targets, where, NULL);
}

int
alias_add_unusable(struct alias_table *t, const char *name,
    const char *where, const char *unusable, const char **why)
{
	struct strvec none;
	int rc;

	if (!valid_name(name)) {
		*why = "an alias name may only have letters, digits, '.', '_', "
		    "'+' and '-' (at most 64)";
		return -1;
	}
	if (alias_find(t, name) != NULL) {
		*why = "this name has an alias already (the first one counts)";
		return -3;
	}
	sv_init(&none);
	rc = add(t, name, &none, where, unusable);
	sv_free(&none);
	return rc;
}

static int
add(struct alias_table *t, const char *name, const struct strvec *targets,
    const char *where, const char *unusable)
{
	struct alias *a;

	grow_index(t);
	t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
	a = &t->v[t->n++];
	a->name = xstrdup(name);
	for (char *c = a->name; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	sv_init(&a->targets);
	for (size_t i = 0; i < targets->n; i++)
		sv_push(&a->targets, targets->v[i]);
	a->where = xstrdup(where);
	a->unusable = unusable != NULL ? xstrdup(unusable) : NULL;
	a->broken = false;	/* alias_add_unusable's caller sets it */
	*find_slot(t, a->name) = t->n;
	return 0;
}

static void
report(struct strvec *errors, int *count, const char *file, int line,
    const char *what)
{
	(*count)++;
	if (errors != NULL && errors->n < ALIAS_ERRORS_MAX)
		sv_push_owned(errors, xasprintf("%s:%d: %s", file, line, what));
}

static char *
trimmed(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	return xstrndup(s, n);
}

/* "a, b, c" -> targets; commas inside double quotes do not split. */
static void
split_targets(const char *s, struct strvec *out)
{
	bool quoted = false;
	const char *start = s;

	for (const char *p = s;; p++) {
		if (*p == '"')
			quoted = !quoted;
		if (*p == '\0' || (*p == ',' && !quoted)) {
			char *tg = trimmed(start, (size_t)(p - start));

			if (*tg != '\0')
				sv_push_owned(out, tg);
			else
				free(tg);
			if (*p == '\0')
				break;
			start = p + 1;
		}
	}
}

/* One whole entry (continuations joined) that started at line. */
static void
parse_entry(struct alias_table *t, const char *entry, const char *file,
    int line, struct strvec *errors, int *count)
{
	const char *colon = strchr(entry, ':');
	struct strvec targets;
	const char *why;
	char *name, *where;
	int rc;

	if (colon == NULL) {
		report(errors, count, file, line, "no ':' after the name: "
		    "an entry is 'name: address, address'");
		return;
	}
	name = trimmed(entry, (size_t)(colon - entry));
	sv_init(&targets);
	split_targets(colon + 1, &targets);
	where = xasprintf("%s:%d", file, line);
	/* an entry for a program, a file or an :include: (mailman's, say)
	 * stays in the table as unusable: mail to it is refused, not all
	 * mail (alias_expand) */
	rc = alias_add(t, name, &targets, where, &why);
	if (rc == -2)
		rc = alias_add_unusable(t, name, where, why, &why);
	else if (rc == -1) {
		/* a broken entry is an error of the file (newaliases lists
		 * it), and refuses the mail to its name, not all mail: cron's
		 * mail to root must not hang on a line for someone else. A
		 * name postie cannot read ('"john doe"') names no recipient
		 * postie takes: nothing to refuse */
		const char *dummy;
		char *unusable = xasprintf("its entry is broken (%s)", why);

		report(errors, count, file, line, why);
		if (alias_add_unusable(t, name, where, unusable, &dummy) == 0)
			t->v[t->n - 1].broken = true;
		free(unusable);
		rc = 0;
	}
	/* a name given again (Postfix and sendmail warn, keep the first):
	 * no reason to refuse all mail */
	if (rc == -3 && t->notes.n < ALIAS_ERRORS_MAX)
		sv_push_owned(&t->notes, xasprintf("%s:%d: %s", file, line,
		    why));
	else if (rc < 0 && rc != -3)
		report(errors, count, file, line, why);
	free(where);
	free(name);
	sv_free(&targets);
}

int
alias_parse_text(struct alias_table *t, const char *text, size_t len,
    const char *file, struct strvec *errors)
{
	const char *end = text + len;
	struct strbuf entry;
	int line = 0, entry_line = 0, count = 0;
	bool in_entry = false, too_long = false;

	sb_init(&entry);
	for (const char *s = text; s < end;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
		size_t blanks = 0;
		bool cont = n > 0 && (s[0] == ' ' || s[0] == '\t');

		line++;
		while (blanks < n && (s[blanks] == ' ' || s[blanks] == '\t' ||
		    s[blanks] == '\r'))
			blanks++;
		if (n > CONFIG_LINE_MAX) {
			report(errors, &count, file, line, "the line is longer "
			    "than 4096 bytes: is this an aliases file?");
		} else if (memchr(s, '\0', n) != NULL) {
			report(errors, &count, file, line, "the line has a NUL "
			    "byte");
		} else if (blanks < n && s[blanks] == '#') {
			/* a comment: skipped, even amid an entry */
		} else if (blanks == n || !cont) {
			if (in_entry && !too_long)
				parse_entry(t, entry.s, file, entry_line,
				    errors, &count);
			in_entry = blanks < n;
			too_long = false;
			entry_line = line;
			sb_reset(&entry);
			sb_add(&entry, s, n);
		} else if (!in_entry) {
			report(errors, &count, file, line, "a continuation "
			    "line (it starts with a blank) with no entry "
			    "above it");
		} else if (entry.len + n + 1 > ALIAS_ENTRY_MAX) {
			if (!too_long)
				report(errors, &count, file, entry_line, "the "
				    "entry is longer than 64 KiB");
			too_long = true;
		} else {
			sb_addc(&entry, ' ');
			sb_add(&entry, s, n);
		}
		s += n + 1;
	}
	if (in_entry && !too_long)
		parse_entry(t, entry.s, file, entry_line, errors, &count);
	sb_free(&entry);
	return count;
}

/* The file at path into buf: regular, trusted, at most CONFIG_SIZE_MAX. */
static int
read_file(const char *path, struct strbuf *buf, struct err *e)
{
	struct stat st;
	char chunk[8192];
	ssize_t r = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, "%s: cannot open the aliases "
		    "file: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		err_set(e, ERR_CONFIG, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		err_set(e, ERR_CONFIG, "%s: the aliases file is not a regular "
		    "file: name a plain file", path);
	else if (trust_file(fd, path, e) < 0)
		;
	else if (st.st_size > CONFIG_SIZE_MAX)
		err_set(e, ERR_CONFIG, "%s: the aliases file is larger than "
		    "1 MiB: is this the right file?", path);
	else if (fcntl(fd, F_SETFL, 0) < 0)
		err_set(e, ERR_CONFIG, "%s: %s", path, strerror(errno));
	else {
		while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 || buf->len + (size_t)r > CONFIG_SIZE_MAX)
				break;
			sb_add(buf, chunk, (size_t)r);
		}
		if (r < 0)
			err_set(e, ERR_CONFIG, "%s: cannot read: %s", path,
			    strerror(errno));
		else if (r > 0)
			err_set(e, ERR_CONFIG, "%s: the aliases file is larger "
			    "than 1 MiB: is this the right file?", path);
		else
			rc = 0;
	}
	close(fd);
	return rc;
}

int
alias_load_file(struct alias_table *t, const char *path,
    struct strvec *errors, struct err *e)
{
	struct strbuf buf;
	int n;

	sb_init(&buf);
	if (read_file(path, &buf, e) < 0) {
		sb_free(&buf);
		return -1;
	}
	n = alias_parse_text(t, buf.s != NULL ? buf.s : "", buf.len, path,
	    errors);
	sb_free(&buf);
	return n;
}

struct walk {
	const struct alias_table *t;
	const char	*domain;
	const char	*chain[ALIAS_DEPTH_MAX + 1];
	size_t		 depth;
	size_t		 leaves;
	struct strvec	*out;
	struct addr_set	*seen;
	struct err	*e;
	bool		 unusable;	/* the error: an unusable alias */
	char		*loop;		/* the error: a loop, as "a -> b -> a"
					 * from its member first in the file
					 * (the same text whichever alias led
					 * into it); alias_check's to free */
	const char	*loop_where;	/* that member's FILE:LINE */
	bool		 note_loops;	/* set loop (alias_check) */
};

/* The loop chain[from..depth) as note_loop describes it. */
static void
note_loop(struct walk *w, size_t from)
{
	size_t first = from, n = w->depth - from;
	struct strbuf sb;

	if (!w->note_loops || w->loop != NULL)
		return;
	for (size_t i = from; i < w->depth; i++)
		if (alias_find(w->t, w->chain[i]) < alias_find(w->t,
		    w->chain[first]))
			first = i;
	sb_init(&sb);
	for (size_t k = 0; k <= n; k++)
		sb_addf(&sb, "%s%s", k ? " -> " : "",
		    w->chain[from + (first - from + k) % n]);
	w->loop = sb.s;		/* the strbuf's text, kept */
	w->loop_where = alias_find(w->t, w->chain[first])->where;
}

static int
walk_error(struct walk *w, const struct alias *a, const char *what,
    const char *last)
{
	struct strbuf sb;

	sb_init(&sb);
	for (size_t i = 0; i < w->depth; i++)
		sb_addf(&sb, "%s -> ", w->chain[i]);
	sb_adds(&sb, last);
	err_set(w->e, ERR_CONFIG, "%s: %s: %s", a->where, what, sb.s);
	sb_free(&sb);
	return -1;
}

static int
walk_leaf(struct walk *w, const char *addr, bool via_alias)
{
	char *q = NULL;

	if (++w->leaves > ALIAS_FANOUT_MAX)
		return err_set(w->e, ERR_CONFIG, "%s: the alias %s expands to "
		    "more than %d addresses",
		    alias_find(w->t, w->chain[0])->where, w->chain[0],
		    ALIAS_FANOUT_MAX);
	if (via_alias && w->domain != NULL && strchr(addr, '@') == NULL)
		addr = q = xasprintf("%s@%s", addr, w->domain);
	addr_list_add(w->out, w->seen, addr);	/* copies addr */
	free(q);
	return 0;
}

static int
walk(struct walk *w, const char *rcpt, const char *parent)
{
	const struct alias *a = NULL;
	int rc = 0;

	/* \name and a name among its own addresses: that local copy,
	 * looked up no further and never qualified (it stays here) */
	if (rcpt[0] == '\\' && parent != NULL)
		return walk_leaf(w, rcpt + 1, false);
	if (parent != NULL && strcasecmp(rcpt, parent) == 0)
		return walk_leaf(w, rcpt, false);
	if (strchr(rcpt, '@') == NULL)
		a = alias_find(w->t, rcpt);
	if (a == NULL)
		return walk_leaf(w, rcpt, parent != NULL);
	if (a->unusable != NULL) {
		w->unusable = true;
		return err_set(w->e, ERR_CONFIG, "%s: mail to %s is refused: "
		    "%s", a->where, a->name, a->unusable);
	}
	for (size_t i = 0; i < w->depth; i++)
		if (strcasecmp(w->chain[i], a->name) == 0) {
			note_loop(w, i);
			return walk_error(w, alias_find(w->t, parent),
			    "alias loop", a->name);
		}
	if (w->depth == ALIAS_DEPTH_MAX)
		return walk_error(w, a, "aliases chained more than 10 deep",
		    a->name);
	w->chain[w->depth++] = a->name;
	for (size_t i = 0; i < a->targets.n && rc == 0; i++)
		rc = walk(w, a->targets.v[i], a->name);
	w->depth--;
	return rc;
}

int
alias_expand(const struct alias_table *t, const char *domain,
    const char *rcpt, struct strvec *out, struct addr_set *seen,
    struct err *e)
{
	struct walk w = { .t = t, .domain = domain, .out = out, .seen = seen,
	    .e = e };

	return walk(&w, rcpt, NULL);
}

/*
 * Every problem of the file, each once: a loop is said once, from its
 * member first in the file and at that member's line, whichever alias
 * led into it ("a -> b -> c -> a", not that and its two rotations).
 */
int
alias_check(const struct alias_table *t, struct strvec *errors)
{
	int count = 0;
	struct strvec loops;

	sv_init(&loops);
	for (size_t i = 0; i < t->n; i++) {
		struct strvec out;
		struct addr_set seen;
		struct err e = { 0 };
		struct walk w = { .t = t, .out = &out, .seen = &seen,
		    .e = &e, .note_loops = true };

		sv_init(&out);
		addr_set_init(&seen);
		/* an unusable alias, or a chain to one, is no error of the
		 * file: only mail to it is refused */
		if (walk(&w, t->v[i].name, NULL) < 0 && !w.unusable) {
			char *msg = w.loop == NULL ? xstrdup(e.msg) :
			    xasprintf("%s: alias loop: %s", w.loop_where,
			    w.loop);

			if (!sv_contains(errors, msg) && (w.loop == NULL ||
			    !sv_contains(&loops, w.loop))) {
				count++;
				if (w.loop != NULL)
					sv_push(&loops, w.loop);
				if (errors->n < ALIAS_ERRORS_MAX)
					sv_push(errors, msg);
			}
			free(msg);
		}
		free(w.loop);
		addr_set_free(&seen);
		sv_free(&out);
	}
	sv_free(&loops);
	return count;
}
