/*
 * util.h - small helpers every module uses: allocation, growable strings
 * and string lists, paths, durable file-system steps.
 *
 * Allocation failure aborts the process (abort(3)): every on-disk step is
 * crash-safe, so an abort loses nothing, and callers stay simple.
 */
#ifndef POSTIE_UTIL_H
#define POSTIE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

void	*xmalloc(size_t n);
void	*xcalloc(size_t n, size_t size);
void	*xrealloc(void *p, size_t n);
char	*xstrdup(const char *s);
char	*xstrndup(const char *s, size_t n);
char	*xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte string, always NUL-terminated. */
struct strbuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

void	 sb_init(struct strbuf *sb);
void	 sb_free(struct strbuf *sb);
void	 sb_add(struct strbuf *sb, const void *p, size_t n);
void	 sb_adds(struct strbuf *sb, const char *s);
void	 sb_addc(struct strbuf *sb, char c);
void	 sb_addf(struct strbuf *sb, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 sb_reset(struct strbuf *sb);
char	*sb_steal(struct strbuf *sb);
/*
 * arg with "%C" replaced by vals[i] for the C at keys[i], and "%%" by "%";
 * any other byte (and a '%' before anything else) kept. Allocated.
 */
char	*util_expand(const char *arg, const char *keys,
	    const char *const vals[]);

/* A growable list of owned strings. */
struct strvec {
	char	**v;
	size_t	  n;
	size_t	  cap;
};

void	 sv_init(struct strvec *sv);
void	 sv_free(struct strvec *sv);
void	 sv_push(struct strvec *sv, const char *s);	/* copies s */
void	 sv_push_owned(struct strvec *sv, char *s);	/* takes s */
bool	 sv_contains(const struct strvec *sv, const char *s);

/* The user's home directory ($HOME, else the password database). */
const char *util_home(void);

/* "~" or "~/x" at the start of path becomes the home directory. */
char	*util_expand_tilde(const char *path);

/* Create dir and missing parents with mode 0700; fsyncs what it creates. */
int	 util_mkdir_p(const char *dir, struct err *e);

/* fsync(2) a directory so that a rename or unlink in it is durable. */
int	 util_fsync_dir(const char *dir, struct err *e);

/* Write all of buf to fd, retrying on EINTR and short writes. */
ssize_t	 util_write_all(int fd, const void *buf, size_t n);

/* The host name for Message-ID and the default sender. */
const char *util_hostname(void);

/*
 * The length (1 to 4) of the well-formed UTF-8 character at s, its code
 * point in *cp; 0 if s does not start with one (a stray byte, an overlong
 * form, a surrogate, beyond U+10FFFF, cut short by the NUL).
 */
size_t	 util_utf8_char(const char *s, unsigned long *cp);

/* Replace control characters (and DEL) by '?', in place. */
void	 util_sanitize(char *s);
/* The same, and every byte >= 0x80 too (text from a server). */
void	 util_sanitize_ascii(char *s);

/*
 * The signals that ask a run to stop (SIGTERM, SIGINT, SIGHUP) go to
 * handler from now on, with these sigaction flags; one that whoever
 * started us ignores stays ignored (nohup, a background job).
 */
void	util_catch_stop_signals(void (*handler)(int), int flags);

/* Milliseconds on CLOCK_MONOTONIC: deadlines that a clock step cannot
 * stretch. */
long long util_mono_ms(void);

/* Send the pending TCP ACK now, not up to 40 ms later (TCP_QUICKACK,
 * which the kernel clears again as it goes: call it before each wait for
 * a reply). not_tcp, if not NULL, remembers a fd that is not TCP (a
 * socketpair): set once the option fails, and then no more calls. */
void	 util_quickack(int fd, bool *not_tcp);

#endif
