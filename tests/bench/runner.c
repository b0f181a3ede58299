/*
 * runner -- time spool commands, interleaved, one process per message.
 *
 * Usage:
 *   runner -i MSGFILE [-n N] [-w WARMUP] [-t TIMEOUT_S] \
 *       -- NAME [VAR=VALUE ...] /abs/path/prog [ARG ...] \
 *       -- NAME ...
 *
 * Runs WARMUP untimed rounds, then N timed rounds.  In each round every
 * command runs once, one at a time, starting at a different command each
 * round (round r starts at command r mod K) so that no tool always follows
 * the same other tool.  Each run is a new process (posix_spawn, no shell)
 * with stdin opened fresh on MSGFILE, stdout on /dev/null, stderr
 * inherited, and the VAR=VALUE pairs added to the environment.
 *
 * The time of one run is CLOCK_MONOTONIC from just before posix_spawn to
 * just after waitpid: the spool process's own wall time, start to exit.
 * A run that exits non-zero, is killed by a signal or outlives TIMEOUT_S
 * (its process group is then killed) aborts the whole benchmark with
 * exit 1: timing failing commands is worthless.
 *
 * Output, one line per command, in the order given:
 *   NAME RUNS TOTAL_NS MIN_NS MEDIAN_NS MAX_NS
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PROG "runner"
#include "benchutil.h"

struct cmd {
	const char	*name;
	char		**argv;		/* argv[0] is the program path */
	char		**envp;
	uint64_t	*ns;		/* one entry per timed run */
};

static void
usage(void)
{
	fprintf(stderr, "usage: runner -i MSGFILE [-n N] [-w WARMUP] "
	    "[-t TIMEOUT_S] -- NAME [VAR=VAL ...] PROG [ARG ...] "
	    "[-- NAME ...]\n");
	exit(2);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Run one command once; return its wall time in ns.  Exits the runner on
 * any failure.  SIGCHLD is blocked in the runner, so sigtimedwait() wakes
 * up the moment the child exits, or after the timeout.
 */
static uint64_t
run_once(const struct cmd *c, const char *msgfile, int devnull,
    long timeout_s, const char *phase, long round)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t chld, empty;
	struct timespec deadline, left;
	uint64_t t0, t1, end;
	pid_t pid;
	int msgfd, st, rc;

	msgfd = open(msgfile, O_RDONLY | O_CLOEXEC);
	if (msgfd < 0) {
		fprintf(stderr, "runner: open %s: %s\n", msgfile,
		    strerror(errno));
		exit(1);
	}
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigemptyset(&empty);
	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, msgfd, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, devnull, 1) != 0 ||
	    posix_spawnattr_init(&attr) != 0 ||
	    posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK) != 0 ||
	    posix_spawnattr_setpgroup(&attr, 0) != 0 ||
	    posix_spawnattr_setsigmask(&attr, &empty) != 0) {
		fprintf(stderr, "runner: posix_spawn setup failed\n");
		exit(1);
	}

	t0 = now_ns();
	rc = posix_spawn(&pid, c->argv[0], &fa, &attr, c->argv, c->envp);
	if (rc != 0) {
		fprintf(stderr, "runner: %s: cannot run %s: %s\n", c->name,
		    c->argv[0], strerror(rc));
		exit(1);
	}
	end = t0 + (uint64_t)timeout_s * 1000000000u;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		if (w < 0) {
			fprintf(stderr, "runner: waitpid: %s\n",
			    strerror(errno));
			exit(1);
		}
		uint64_t n = now_ns();
		if (n >= end) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fprintf(stderr, "runner: FAILED: %s (%s %ld) timed "
			    "out after %ld s; killed\n", c->name, phase, round,
			    timeout_s);
			exit(1);
		}
		left.tv_sec = (time_t)((end - n) / 1000000000u);
		left.tv_nsec = (long)((end - n) % 1000000000u);
		deadline = left;
		if (sigtimedwait(&chld, NULL, &deadline) < 0 &&
		    errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "runner: sigtimedwait: %s\n",
			    strerror(errno));
			exit(1);
		}
	}
	t1 = now_ns();

	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(msgfd);

	if (WIFSIGNALED(st)) {
		fprintf(stderr, "runner: FAILED: %s (%s %ld) killed by "
		    "signal %d\n", c->name, phase, round, WTERMSIG(st));
		exit(1);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "runner: FAILED: %s (%s %ld) exited with "
		    "status %d:", c->name, phase, round,
		    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		for (char **a = c->argv; *a != NULL; a++)
			fprintf(stderr, " %s", *a);
		fprintf(stderr, "\n");
		exit(1);
	}
	return t1 - t0;
}

int
main(int argc, char **argv)
{
	const char *msgfile = NULL;
	long n = 100, warmup = 0, timeout_s = 30;
	struct cmd *cmds;
	size_t ncmds = 0;
	sigset_t chld;
	int ch, devnull;

	while ((ch = getopt(argc, argv, "i:n:w:t:")) != -1) {
		switch (ch) {
		case 'i':
			msgfile = optarg;
			break;
		case 'n':
			n = parse_num(optarg, 1, "N");
			break;
		case 'w':
			warmup = parse_num(optarg, 0, "warmup");
			break;
		case 't':
			timeout_s = parse_num(optarg, 1, "timeout");
			break;
		default:
			usage();
		}
	}
	/* getopt stops at, and skips, the first "--". */
	if (msgfile == NULL || optind >= argc ||
	    strcmp(argv[optind - 1], "--") != 0)
		usage();

	cmds = xcalloc((size_t)argc, sizeof(*cmds));
	for (int i = optind; i < argc;) {
		struct cmd *c = &cmds[ncmds++];
		int start = i, j;

		c->name = argv[i++];
		start = i;
		while (i < argc && strchr(argv[i], '=') != NULL &&
		    argv[i][0] != '/')
			i++;
		c->envp = make_env(&argv[start], &argv[i]);
		j = i;
		while (i < argc && strcmp(argv[i], "--") != 0)
			i++;
		if (i == j) {
			fprintf(stderr, "runner: %s: no program\n", c->name);
			usage();
		}
		if (argv[j][0] != '/') {
			fprintf(stderr, "runner: %s: program must be an "
			    "absolute path: %s\n", c->name, argv[j]);
			exit(2);
		}
		c->argv = xcalloc((size_t)(i - j + 1), sizeof(char *));
		for (int k = j; k < i; k++)
			c->argv[k - j] = argv[k];
		c->ns = xcalloc((size_t)n, sizeof(uint64_t));
		if (i < argc)
			i++;	/* skip "--" */
	}

	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull < 0) {
		perror("runner: /dev/null");
		return 1;
	}
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) != 0) {
		perror("runner: sigprocmask");
		return 1;
	}

	for (long r = -warmup; r < n; r++) {
		size_t first = (size_t)((r + warmup) % (long)ncmds);

		for (size_t k = 0; k < ncmds; k++) {
			struct cmd *c = &cmds[(first + k) % ncmds];
			uint64_t t = run_once(c, msgfile, devnull, timeout_s,
			    r < 0 ? "warm-up round" : "round",
			    r < 0 ? r + warmup + 1 : r + 1);

			if (r >= 0)
				c->ns[r] = t;
		}
	}

	for (size_t k = 0; k < ncmds; k++) {
		struct cmd *c = &cmds[k];
		uint64_t total = 0, med;

		for (long r = 0; r < n; r++)
			total += c->ns[r];
		qsort(c->ns, (size_t)n, sizeof(uint64_t), cmp_u64);
		med = (n % 2) ? c->ns[n / 2] :
		    (c->ns[n / 2 - 1] + c->ns[n / 2]) / 2;
		printf("%s %ld %llu %llu %llu %llu\n", c->name, n,
		    (unsigned long long)total, (unsigned long long)c->ns[0],
		    (unsigned long long)med,
		    (unsigned long long)c->ns[n - 1]);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
