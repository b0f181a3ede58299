/*
 * maxrss -- run a command and say its peak resident set size.
 *
 * Usage: maxrss RESULTFILE PROG [ARG ...]
 *
 * Runs PROG (PATH searched) with the arguments, waits for it and writes
 * "MAXRSS_KIB" to RESULTFILE: the largest peak RSS of the command and of
 * the descendants it waited for (wait4's ru_maxrss). Exits as the command
 * did (128+N when killed by signal N).
 *
 * Why a program of its own: a process's peak RSS survives exec, so a
 * command started straight from a big parent (a Python benchmark)
 * reports the parent's size. This program is small, and the command is
 * a fork of it.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct rusage ru;
	int status;
	pid_t pid;
	FILE *f;

	if (argc < 3) {
		fprintf(stderr, "usage: maxrss RESULTFILE PROG [ARG ...]\n");
		return 2;
	}
	if ((pid = fork()) < 0) {
		perror("maxrss: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror("maxrss: exec");
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("maxrss: wait4");
		return 2;
	}
	if ((f = fopen(argv[1], "w")) == NULL ||
	    fprintf(f, "%ld\n", ru.ru_maxrss) < 0 || fclose(f) != 0) {
		perror("maxrss: result file");
		return 2;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
