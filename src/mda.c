/* mda.c - one message through an MDA: execv, stdin the message, stderr's
 * first line kept, bounded in time. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mda.h"
#include "trust.h"

int
mda_open(struct mda *m, const struct strvec *argv, struct err *e)
{
	struct err te;

	memset(m, 0, sizeof(*m));
	if (argv->n == 0)
		return err_set(e, ERR_CONFIG, "no mda command");
	if ((m->prog = trust_program(argv->v[0], &te)) == NULL)
		return err_set(e, ERR_CONFIG, "the mda %s", te.msg);
	m->shown = xstrdup(argv->v[0]);
	return 0;
}

void
mda_close(struct mda *m)
{
	free(m->prog);
	free(m->shown);
	m->prog = m->shown = NULL;
}

void
mda_expand(const struct strvec *tmpl, const char *folder, const char *name,
    struct strvec *out)
{
	const char *const vals[] = { folder, name };

	for (size_t i = 0; i < tmpl->n; i++)
		sv_push_owned(out, util_expand(tmpl->v[i], "FN", vals));
}

/* The keeper's signal: its caller is gone. The whole group goes, the
 * MDA and what it started (a child it left running would finish a
 * delivery the next run hands again). */
static void
keeper_orphaned(int sig)
{
	(void)sig;
	kill(0, SIGKILL);	/* the group, the keeper with it */
	_exit(127);
}

/*
 * The child: a keeper of a process group of its own, which runs the MDA
 * (stdin the message, stdout /dev/null, stderr the pipe) and ends as it
 * ends. A timeout kills the group; a caller killed outright (nothing of
 * its can run then) sends the keeper SIGTERM (PR_SET_PDEATHSIG), and the
 * keeper kills the group: the kernel would end only its own process.
 */
static void __attribute__((noreturn))
child(const struct mda *m, char *const argv[], int in, int errw,
    pid_t parent)
{
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC), status;
	pid_t pid;

	setpgid(0, 0);
	signal(SIGTERM, keeper_orphaned);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(127);
	if (dup2(in, STDIN_FILENO) < 0 || devnull < 0 ||
	    dup2(devnull, STDOUT_FILENO) < 0 ||
	    dup2(errw, STDERR_FILENO) < 0)
		_exit(127);
	if ((pid = fork()) == 0) {
		/* ignored or caught signals: not ours to pass on */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv(m->prog, argv);
		dprintf(STDERR_FILENO, "cannot run %s: %s\n", m->prog,
		    strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		_exit(127);
	close(STDIN_FILENO);
	close(STDERR_FILENO);	/* the caller sees the MDA's end of it */
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(127);
	if (WIFSIGNALED(status)) {
		/* as the MDA ended: killed by that signal (no core of the
		 * keeper's for the MDA's crash) */
		struct rlimit none = { 0, 0 };

		(void)setrlimit(RLIMIT_CORE, &none);
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

/* Keep the first line of what came (up to the buffer), drop the rest. */
static void
keep_line(struct mda_result *r, size_t *have, bool *full, const char *buf,
    size_t n)
{
	for (size_t i = 0; i < n && !*full; i++) {
		if (buf[i] == '\n' || *have + 1 >= sizeof(r->errline))
			*full = true;
		else {
			r->errline[(*have)++] = buf[i];
			r->errline[*have] = '\0';
		}
	}
}

/* Read its stderr and wait for it, until deadline_ms; 1 when it exited,
 * 0 when time ran out. A pidfd (Linux 5.3) wakes the wait the moment it
 * exits; without one, short sleeps once stderr has ended. */
static int
collect(pid_t pid, int errr, long long deadline_ms, struct mda_result *r)
{
#ifdef SYS_pidfd_open
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#else
	int pidfd = -1;
#endif
	size_t have = 0;
	bool full = false, eof = false;
	int rc = 0;

	for (;;) {
		long long left = deadline_ms - util_mono_ms();
		struct pollfd pfd[2] = {
			{ .fd = eof ? -1 : errr, .events = POLLIN },
			{ .fd = pidfd, .events = POLLIN },
		};
		int n;

		if (waitpid(pid, &r->status, WNOHANG) == pid) {
			rc = 1;
			break;
		}
		if (left <= 0)
			break;
		n = poll(pfd, 2, (int)(left < 1000 ? left :
		    pidfd >= 0 ? 1000 : eof ? 2 : 20));
		if (n > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[4096];
			ssize_t got = read(errr, buf, sizeof(buf));

			if (got > 0)
				keep_line(r, &have, &full, buf, (size_t)got);
			else if (got == 0 || errno != EINTR)
				eof = true;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	util_sanitize(r->errline);
	return rc;
}

int
mda_run(const struct mda *m, char *const argv[], int msg_fd, off_t offset,
    long timeout, struct mda_result *r, struct err *e)
{
	int pipefd[2], in;
	pid_t pid, parent = getpid();
	char path[64];

	memset(r, 0, sizeof(*r));
	/* a descriptor of its own: the MDA reads from offset */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", msg_fd);
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    lseek(in, offset, SEEK_SET) < 0) {
		int saved = errno;

		if (in >= 0)
			close(in);
		return err_set(e, err_from_errno(saved), "cannot reopen the "
		    "message for the mda: %s", strerror(saved));
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		close(in);
		return err_set(e, ERR_OSERR, "cannot start the mda: pipe: %s",
		    strerror(errno));
	}
	if ((pid = fork()) == 0)
		child(m, argv, in, pipefd[1], parent);
	close(in);
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		return err_set(e, ERR_OSERR, "cannot start the mda: fork: %s",
		    strerror(errno));
	}
	if (collect(pid, pipefd[0], util_mono_ms() + timeout * 1000LL, r) ==
	    0) {
		r->timed_out = true;
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
			;
	}
	close(pipefd[0]);
	return 0;
}

enum mda_outcome
mda_outcome(const struct mda_result *r)
{
	if (r->timed_out || !WIFEXITED(r->status))
		return MDA_FAILED;
	if (WEXITSTATUS(r->status) == 0)
		return MDA_DELIVERED;
	return WEXITSTATUS(r->status) == MDA_EX_TEMPFAIL ? MDA_DEFERRED :
	    MDA_FAILED;
}

void
mda_describe(const struct mda_result *r, long timeout, char *out, size_t len)
{
	char head[64];

	if (r->timed_out)
		snprintf(head, sizeof(head), "no exit within %ld s (killed)",
		    timeout);
	else if (WIFSIGNALED(r->status))
		snprintf(head, sizeof(head), "killed by signal %d (%s)",
		    WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
	else
		snprintf(head, sizeof(head), "exit %d",
		    WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1);
	if (r->errline[0] != '\0')
		snprintf(out, len, "%s: %s", head, r->errline);
	else
		snprintf(out, len, "%s", head);
}
