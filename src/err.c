/* err.c - the one error type and its mapping to sysexits(3). */
#include <errno.h>
#include <stdio.h>
#include <sysexits.h>

#include "err.h"

int
err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int
err_exit_code(enum err_code code)
{
	switch (code) {
	case ERR_OK:		return EX_OK;
	case ERR_USAGE:		return EX_USAGE;
	case ERR_DATA:		return EX_DATAERR;
	case ERR_NOINPUT:	return EX_NOINPUT;
	case ERR_NOUSER:	return EX_NOUSER;
	case ERR_UNAVAILABLE:	return EX_UNAVAILABLE;
	case ERR_SOFTWARE:	return EX_SOFTWARE;
	case ERR_OSERR:		return EX_OSERR;
	case ERR_CANTCREAT:	return EX_CANTCREAT;
	case ERR_IOERR:		return EX_IOERR;
	case ERR_TEMPFAIL:	return EX_TEMPFAIL;
	case ERR_PROTOCOL:	return EX_PROTOCOL;
	case ERR_NOPERM:	return EX_NOPERM;
	case ERR_CONFIG:	return EX_CONFIG;
	}
	return EX_SOFTWARE;
}

enum err_code
err_from_errno(int errnum)
{
	switch (errnum) {
	case ENOSPC:
	case EDQUOT:
	case EAGAIN:
	case EINTR:
	case ENOMEM:
		return ERR_TEMPFAIL;
	case EACCES:
	case EPERM:
	case EROFS:
		return ERR_CANTCREAT;
	default:
		return ERR_IOERR;
	}
}
