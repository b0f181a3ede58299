/* notify.c - run notify-command, bounded, never in the way (notify.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "trust.h"

static pid_t
spawn(const char *prog, char **argv)
{
	pid_t pid = fork();

	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		setpgid(0, 0);
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
		}
		close_range(3, ~0U, 0);
		signal(SIGPIPE, SIG_DFL);
		execv(prog, argv);
		_exit(127);
	}
	if (pid > 0)
		setpgid(pid, pid);	/* either side may win the race */
	return pid;
}

/* Wait up to NOTIFY_TIMEOUT s; then kill its group. 1 if killed. */
static int
reap(pid_t pid, int *status)
{
	long long deadline = util_mono_ms() + NOTIFY_TIMEOUT * 1000LL;
	struct timespec tick = { 0, 20 * 1000 * 1000 };

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return 0;
		if (util_mono_ms() >= deadline)
			break;
		nanosleep(&tick, NULL);
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return 1;
}

void
notify_run(const struct strvec *cmd, const char *event, const char *id,
    const char *rcpts, const char *reason, struct log *log)
{
	struct strvec av;
	struct err e;
	char *prog, *why;
	int status = 0;
	pid_t pid;

	if (cmd->n == 0)
		return;
	/* what runs is what was checked: the real path trust_program gave */
	if ((prog = trust_program(cmd->v[0], &e)) == NULL) {
		log_msg(log, LOG_WARNING, "%s: notify-command %s", id, e.msg);
		return;
	}
	sv_init(&av);
	for (size_t i = 0; i < cmd->n; i++)
		sv_push(&av, cmd->v[i]);
	sv_push(&av, event);
	sv_push(&av, id);
	sv_push(&av, rcpts);
	why = xstrdup(reason);
	util_sanitize(why);
	sv_push_owned(&av, why);
	pid = spawn(prog, av.v);
	if (pid < 0)
		log_msg(log, LOG_WARNING, "%s: cannot run notify-command %s: %s",
		    id, cmd->v[0], strerror(errno));
	else if (reap(pid, &status))
		log_msg(log, LOG_WARNING, "%s: notify-command %s did not finish "
		    "in %d s: killed", id, cmd->v[0], NOTIFY_TIMEOUT);
	else if (WIFSIGNALED(status))
		log_msg(log, LOG_WARNING, "%s: notify-command %s was killed by "
		    "signal %d", id, cmd->v[0], WTERMSIG(status));
	else if (WEXITSTATUS(status) != 0)
		log_msg(log, LOG_WARNING, "%s: notify-command %s exited %d%s", id,
		    cmd->v[0], WEXITSTATUS(status), WEXITSTATUS(status) == 127 ?
		    " (it could not be run)" : "");
	free(prog);
	sv_free(&av);
}
