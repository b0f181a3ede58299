/*
 * err.h - one error type for every module.
 *
 * A failing function returns -1 (or NULL) and fills a struct err with a
 * category and one line of text: what went wrong, why, what to do.
 * The categories are the sysexits(3) classes; main() maps them to exit
 * codes in one place (err_exit_code), nothing else calls exit().
 */
#ifndef POSTIE_ERR_H
#define POSTIE_ERR_H

#include <stdarg.h>

enum err_code {
	ERR_OK = 0,
	ERR_USAGE,		/* bad command line                 -> 64 */
	ERR_DATA,		/* bad message or address           -> 65 */
	ERR_NOINPUT,		/* a named input does not exist      -> 66 */
	ERR_NOUSER,		/* a named queue id does not exist   -> 67 */
	ERR_UNAVAILABLE,	/* a service or feature is missing  -> 69 */
	ERR_SOFTWARE,		/* internal error                   -> 70 */
	ERR_OSERR,		/* fork, exec, memory               -> 71 */
	ERR_CANTCREAT,		/* cannot create a queue file       -> 73 */
	ERR_IOERR,		/* I/O error on the queue           -> 74 */
	ERR_TEMPFAIL,		/* try again later (disk full, lock) -> 75 */
	ERR_PROTOCOL,		/* remote protocol error            -> 76 */
	ERR_NOPERM,		/* permission denied                -> 77 */
	ERR_CONFIG		/* configuration error              -> 78 */
};

#define ERR_MSG_MAX 1024

struct err {
	enum err_code	code;
	char		msg[ERR_MSG_MAX];
};

/* Fill e (if not NULL) and return -1. */
int	err_set(struct err *e, enum err_code code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Map an error category to its sysexits(3) exit code. */
int	err_exit_code(enum err_code code);

/* The category an errno value from a queue write falls in. */
enum err_code err_from_errno(int errnum);

#endif
