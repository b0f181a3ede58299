/*
 * benchutil.h -- what runner.c and reaper.c share: allocation that exits,
 * number parsing, the monotonic clock, and the environment of a spawned
 * command. Each includes it once after setting bench_prog's value with
 * BENCH_PROG (for messages).
 */
#ifndef POSTIE_BENCHUTIL_H
#define POSTIE_BENCHUTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_PROG
#error "define BENCH_PROG (the program's name) before including benchutil.h"
#endif

extern char **environ;

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL) {
		perror(BENCH_PROG ": calloc");
		exit(1);
	}
	return p;
}

/* A decimal number of at least min, or exit 2 naming what it was for. */
static long
parse_num(const char *s, long min, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min) {
		fprintf(stderr, BENCH_PROG ": bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* environ plus the VAR=VALUE words in [first, last), later ones winning. */
static char **
make_env(char **first, char **last)
{
	size_t nenv = 0, nextra = (size_t)(last - first), k = 0;
	char **envp;

	while (environ[nenv] != NULL)
		nenv++;
	envp = xcalloc(nenv + nextra + 1, sizeof(*envp));
	for (size_t i = 0; i < nenv; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int overridden = 0;

		for (char **x = first; x < last; x++)
			if (strncmp(*x, environ[i], klen) == 0 &&
			    (*x)[klen] == '=')
				overridden = 1;
		if (!overridden)
			envp[k++] = environ[i];
	}
	for (char **x = first; x < last; x++)
		envp[k++] = *x;
	envp[k] = NULL;
	return envp;
}

#endif
