/*
 * alias.h - local names that stand for addresses: the config's `alias`
 * lines and an `aliases` file in the sendmail format.
 *
 * The file: one "name: target, target ..." per entry; a line starting
 * with '#' (after blanks or not) is a comment, an empty line ends
 * nothing; a line starting with a blank continues the entry above.
 * Names match without regard to case. A target is an address
 * (user@domain, "<user@domain>") or a local name, which may itself be an
 * alias. Targets sendmail would run or write (":include:FILE", "|cmd",
 * "/file") postie does not take: it runs no program and writes no file
 * for a recipient. In the file (shared with other mail software: a
 * mailing-list manager puts "|command" entries there) such an entry is
 * kept as unusable, and mail to that name is refused when it is queued;
 * every other name works. In the config's alias lines it is an error.
 * The file is read as the config is: a regular file of at
 * most CONFIG_SIZE_MAX bytes that passes trust.h, lines of at most
 * CONFIG_LINE_MAX bytes; errors name FILE:LINE and never quote its text.
 *
 * Expansion happens when a message is queued (sendmail, sendmail -bs):
 * the envelope holds the final addresses, so the queue, mailq and
 * deliver never need the aliases again.
 */
#ifndef POSTIE_ALIAS_H
#define POSTIE_ALIAS_H

#include <stddef.h>

#include "err.h"
#include "util.h"

/* A chain of aliases is at most this deep (sendmail's bound). */
#define ALIAS_DEPTH_MAX		10
/* One recipient expands to at most this many addresses. */
#define ALIAS_FANOUT_MAX	1000
/* A name, and an entry with its continuation lines, at most this long. */
#define ALIAS_NAME_MAX		64
#define ALIAS_ENTRY_MAX		(64 * 1024)
/* An error report (newaliases) lists at most this many errors. */
#define ALIAS_ERRORS_MAX	20

struct alias {
	char		*name;		/* lower case */
	struct strvec	 targets;
	char		*where;		/* "FILE:LINE" of its definition */
	char		*unusable;	/* why mail to it is refused (a
					 * target postie does not take, or
					 * a broken entry; no targets then),
					 * or NULL */
	bool		 broken;	/* unusable as an error of the file
					 * (listed among its errors) */
};

struct alias_table {
	struct alias	*v;
	size_t		 n;
	size_t		*slot;		/* hash index: 1 + index in v, 0 empty */
	size_t		 cap;		/* a power of two, or 0 */
	struct strvec	 notes;		/* "FILE:LINE: what" of the file's
					 * problems that refuse no mail (a
					 * name given again: the first
					 * counts), at most ALIAS_ERRORS_MAX */
};

void	alias_table_init(struct alias_table *t);
void	alias_table_free(struct alias_table *t);

/* The alias called name (any case), or NULL. */
const struct alias *alias_find(const struct alias_table *t, const char *name);

/*
 * Add one alias defined at where ("FILE:LINE"). Each target must be an
 * address or a local name (see above). -1 with why set (a static
 * string) if a target is not, -2 if it is one postie does not take (a
 * program, a file, an :include:), -3 for a name given before (the first
 * one counts: the file's parser notes it, the config's lines refuse it).
 */
int	alias_add(struct alias_table *t, const char *name,
	    const struct strvec *targets, const char *where,
	    const char **why);

/* Add name as unusable (why mail to it is refused: unusable); -1 with
 * why set as alias_add's for a bad or repeated name. */
int	alias_add_unusable(struct alias_table *t, const char *name,
	    const char *where, const char *unusable, const char **why);

/*
 * Parse aliases-file text read from file into t. Every error found (up
 * to ALIAS_ERRORS_MAX) is appended to errors as "FILE:LINE: what";
 * returns the number of errors (0: every entry was added, or kept as
 * unusable, or noted in t->notes as a name given again).
 */
int	alias_parse_text(struct alias_table *t, const char *text, size_t len,
	    const char *file, struct strvec *errors);

/*
 * Read the aliases file at path (see above) into t. ERR_CONFIG when it
 * cannot be read or trusted; parse errors are appended to errors and
 * counted in the return value, as for alias_parse_text.
 */
int	alias_load_file(struct alias_table *t, const char *path,
	    struct strvec *errors, struct err *e);

/*
 * Check every chain of t: no loops, no chain deeper than
 * ALIAS_DEPTH_MAX, no name expanding to more than ALIAS_FANOUT_MAX
 * addresses. Each problem is appended to errors ("FILE:LINE: alias loop:
 * root -> admin -> root"); returns their number. An unusable alias, and
 * a chain that reaches one, is no problem here (alias_expand refuses
 * mail to it).
 */
int	alias_check(const struct alias_table *t, struct strvec *errors);

/*
 * Expand one recipient into out (appended, duplicates dropped through
 * seen as addr_list_add does). A local name (no '@') with an alias is
 * replaced by its targets, recursively; a name reached again down its
 * own chain (root: root, me@x), or written \name (sendmail's "no further
 * aliasing": root: \root, me@x), is a leaf that stays local (never
 * qualified: the local copy). A leaf that is a local name
 * reached through an alias is qualified with domain when domain is not
 * NULL; a recipient that has no alias is kept as it is. -1 with e set
 * (ERR_CONFIG) on a loop, when a bound is passed, or when the chain
 * reaches an unusable alias ("FILE:LINE: mail to NAME is refused: why").
 */
struct addr_set;
int	alias_expand(const struct alias_table *t, const char *domain,
	    const char *rcpt, struct strvec *out, struct addr_set *seen,
	    struct err *e);

#endif
