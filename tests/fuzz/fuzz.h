/*
 * fuzz.h - what the libFuzzer targets share: the entry point's prototype,
 * a check that aborts (a broken invariant is then a crash libFuzzer keeps
 * and minimizes, like any sanitizer report), and input helpers.
 *
 * Each target takes the bytes libFuzzer gives, runs one parser on them,
 * checks what the parser promises, and frees everything (leaks count).
 */
#ifndef POSTIE_FUZZ_H
#define POSTIE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: check failed: %s\n",	\
			    __FILE__, __LINE__, #cond);			\
			abort();					\
		}							\
	} while (0)

/* The bytes as a string: NUL-terminated after size bytes (a NUL inside
 * stays, as it would in a file read with a length). */
static inline char *
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);

	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
