/*
 * mailboxes.h - mutt's `mailboxes' line for the local Maildirs of fetch
 * jobs: each Maildir (when it has cur/) and its Maildir++ folders
 * (".NAME" directories with cur/), sorted, as absolute paths in double
 * quotes, so the line means the same whatever mutt's $folder is:
 *
 *	mailboxes "/home/me/Maildir" "/home/me/Maildir/.lists.dev"
 *
 * Inside the quotes '\', '"', '`' and '$' are escaped (mutt would run a
 * backquoted command or expand a variable); a name with a control
 * character is left out. The file is replaced atomically (a temporary
 * file beside it, fsync, rename, fsync the directory) and only when its
 * bytes change: unchanged, it is not touched (its mtime stays).
 */
#ifndef POSTIE_MAILBOXES_H
#define POSTIE_MAILBOXES_H

#include <stdbool.h>

#include "err.h"
#include "util.h"

/* The line (with its '\n'), malloc'd. */
char	*mailboxes_line(const struct strvec *locals);

/* s in mutt's double quotes, appended to sb; -1 (nothing added) when s
 * has a control character. */
int	mailboxes_quote(struct strbuf *sb, const char *s);

/* Write file if it changed: 0 and *changed, or -1 and *e. */
int	mailboxes_write(const char *file, const struct strvec *locals,
	    bool *changed, struct err *e);

#endif
