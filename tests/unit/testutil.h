/* testutil.h - what every cmocka unit test includes. */
#ifndef POSTIE_TESTUTIL_H
#define POSTIE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh private directory under $TMPDIR (or /tmp); caller frees. */
static inline char *
tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p = NULL;

	if (asprintf(&p, "%s/postie-unit.XXXXXX", base ? base : "/tmp") < 0)
		abort();
	if (mkdtemp(p) == NULL)
		abort();
	return p;
}

/* rm -r dir (no shell: nftw). */
#include <ftw.h>
static inline int
tu_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(path);
}

static inline void
tu_rmtree(const char *dir)
{
	nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
