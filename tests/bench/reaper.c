/*
 * reaper -- time a command until it and every process it started are gone.
 *
 * Usage:
 *   reaper [-t TIMEOUT_S] [-o RESULTFILE] -- [VAR=VALUE ...] /abs/prog [ARG ...]
 *
 * A queue flush is not over when the program that was started exits: dma -q
 * forks one process per message and exits without waiting for them, and
 * shell-script queue runners start a process per message too.  reaper makes
 * itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every descendant
 * that is orphaned is re-parented to it, and measures CLOCK_MONOTONIC from
 * just before posix_spawn to the moment the last descendant has been
 * reaped (waitpid(-1) says ECHILD: as long as any descendant lives, some
 * ancestor of it is a child of ours).
 *
 * The command runs in a process group of its own, stdin on /dev/null,
 * stdout and stderr inherited, the VAR=VALUE pairs added to the
 * environment.  When TIMEOUT_S runs out, or reaper gets SIGINT, SIGTERM or
 * SIGHUP, the whole tree is killed (the group, then every child of ours
 * found in /proc, until none is left) and reaper exits non-zero.
 *
 * Output, to RESULTFILE (default stdout), one line:
 *   ELAPSED_NS REAPED FAILED
 * REAPED counts the processes reaper waited for (the command itself and
 * orphans); FAILED those of them that exited non-zero or by a signal.
 * Descendants reaped by their own parent are not seen (their parent judges
 * them).
 *
 * Exit: 0 when the command and every descendant reaper saw exited 0;
 * 1 when one did not; 3 on timeout; 128+N when killed by signal N;
 * 2 on usage errors.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PROG "reaper"
#include "benchutil.h"

static void
usage(void)
{
	fprintf(stderr, "usage: reaper [-t TIMEOUT_S] [-o RESULTFILE] -- "
	    "[VAR=VALUE ...] /abs/prog [ARG ...]\n");
	exit(2);
}

/* SIGKILL every process whose parent is us; return how many were found. */
static int
kill_our_children(void)
{
	pid_t self = getpid();
	struct dirent *d;
	DIR *proc;
	int found = 0;

	proc = opendir("/proc");
	if (proc == NULL)
		return 0;
	while ((d = readdir(proc)) != NULL) {
		char path[300], buf[512], *rp;
		long ppid;
		ssize_t len;
		int fd;

		if (d->d_name[0] < '1' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* pid (comm) state ppid ...; comm may hold spaces and ')' */
		rp = strrchr(buf, ')');
		if (rp == NULL || sscanf(rp + 1, " %*c %ld", &ppid) != 1)
			continue;
		if ((pid_t)ppid == self) {
			kill((pid_t)atol(d->d_name), SIGKILL);
			found++;
		}
	}
	closedir(proc);
	return found;
}

/* Kill the command's group and every descendant; reap them all. */
static void
kill_tree(pid_t pgid)
{
	for (int tries = 0; tries < 100; tries++) {
		struct timespec pause = { 0, 50 * 1000 * 1000 };
		int st;
		pid_t w;

		kill(-pgid, SIGKILL);
		kill_our_children();
		while ((w = waitpid(-1, &st, WNOHANG)) > 0)
			;
		if (w < 0 && errno == ECHILD)
			return;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "reaper: descendants survived SIGKILL for 5 s\n");
}

int
main(int argc, char **argv)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	const char *resultfile = NULL;
	sigset_t set, empty;
	long timeout_s = 300;
	uint64_t t0, t_last, end;
	unsigned long reaped = 0, failed = 0;
	char **envp;
	pid_t pid;
	int ch, i, j, rc;
	FILE *out;

	while ((ch = getopt(argc, argv, "t:o:")) != -1) {
		switch (ch) {
		case 't':
			timeout_s = parse_num(optarg, 1, "timeout");
			break;
		case 'o':
			resultfile = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || strcmp(argv[optind - 1], "--") != 0)
		usage();
	i = optind;
	while (i < argc && argv[i][0] != '/' && strchr(argv[i], '=') != NULL)
		i++;
	if (i >= argc || argv[i][0] != '/') {
		fprintf(stderr, "reaper: the program must be an absolute "
		    "path\n");
		usage();
	}
	envp = make_env(&argv[optind], &argv[i]);
	j = i;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L) != 0) {
		perror("reaper: PR_SET_CHILD_SUBREAPER");
		return 1;
	}
	sigemptyset(&empty);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
		perror("reaper: sigprocmask");
		return 1;
	}

	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0) {
		perror("reaper: /dev/null");
		return 1;
	}
	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, devnull, 0) != 0 ||
	    posix_spawnattr_init(&attr) != 0 ||
	    posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK) != 0 ||
	    posix_spawnattr_setpgroup(&attr, 0) != 0 ||
	    posix_spawnattr_setsigmask(&attr, &empty) != 0) {
		fprintf(stderr, "reaper: posix_spawn setup failed\n");
		return 1;
	}

	t0 = now_ns();
	rc = posix_spawn(&pid, argv[j], &fa, &attr, &argv[j], envp);
	if (rc != 0) {
		fprintf(stderr, "reaper: cannot run %s: %s\n", argv[j],
		    strerror(rc));
		return 1;
	}
	t_last = t0;
	end = t0 + (uint64_t)timeout_s * 1000000000u;

	for (;;) {
		struct timespec left;
		uint64_t n;
		pid_t w;
		int st, sig;

		while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
			t_last = now_ns();
			reaped++;
			if (WIFSIGNALED(st)) {
				failed++;
				fprintf(stderr, "reaper: %s process %ld "
				    "killed by signal %d\n",
				    w == pid ? "the command's" : "a",
				    (long)w, WTERMSIG(st));
			} else if (WEXITSTATUS(st) != 0) {
				failed++;
				fprintf(stderr, "reaper: %s process %ld "
				    "exited with status %d\n",
				    w == pid ? "the command's" : "a",
				    (long)w, WEXITSTATUS(st));
			}
		}
		if (w < 0) {
			if (errno == ECHILD)
				break;
			if (errno == EINTR)
				continue;
			perror("reaper: waitpid");
			kill_tree(pid);
			return 1;
		}
		n = now_ns();
		if (n >= end) {
			fprintf(stderr, "reaper: timed out after %ld s: "
			    "killing %s and what it started\n", timeout_s,
			    argv[j]);
			kill_tree(pid);
			return 3;
		}
		left.tv_sec = (time_t)((end - n) / 1000000000u);
		left.tv_nsec = (long)((end - n) % 1000000000u);
		sig = sigtimedwait(&set, NULL, &left);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			fprintf(stderr, "reaper: got signal %d: killing %s "
			    "and what it started\n", sig, argv[j]);
			kill_tree(pid);
			return 128 + sig;
		}
		if (sig < 0 && errno != EAGAIN && errno != EINTR) {
			perror("reaper: sigtimedwait");
			kill_tree(pid);
			return 1;
		}
	}

	out = resultfile ? fopen(resultfile, "w") : stdout;
	if (out == NULL) {
		fprintf(stderr, "reaper: %s: %s\n", resultfile,
		    strerror(errno));
		return 1;
	}
	fprintf(out, "%llu %lu %lu\n", (unsigned long long)(t_last - t0),
	    reaped, failed);
	if (fclose(out) != 0) {
		perror("reaper: write result");
		return 1;
	}
	return failed ? 1 : 0;
}
