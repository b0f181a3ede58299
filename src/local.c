/* local.c - mda and Maildir delivery for local recipients. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "local.h"
#include "maildir.h"
#include "trust.h"

/* "%T" -> rcpt, "%F" -> sender, "%%" -> "%", anywhere in an argument. */
static char *
expand(const char *arg, const char *rcpt, const char *sender)
{
	const char *const vals[] = { rcpt, sender };

	return util_expand(arg, "TF", vals);
}

enum smtp_outcome
local_mda(const struct strvec *argv, const char *rcpt, const char *sender,
    int fd, off_t offset, char *reason, size_t rlen)
{
	struct strvec av;
	struct err e;
	char *prog;
	pid_t pid;
	int status, in;
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	in = open(path, O_RDONLY | O_CLOEXEC);	/* own file offset */
	if (in < 0 || lseek(in, offset, SEEK_SET) < 0) {
		snprintf(reason, rlen, "cannot reopen the message: %s",
		    strerror(errno));
		if (in >= 0)
			close(in);
		return SMTP_DEFER;
	}
	sv_init(&av);
	for (size_t i = 0; i < argv->n; i++)
		sv_push_owned(&av, expand(argv->v[i], rcpt, sender));
	/* what runs is what was checked: the real path trust_program gave */
	if ((prog = trust_program(av.v[0], &e)) == NULL) {
		snprintf(reason, rlen, "the mda %s", e.msg);
		close(in);
		sv_free(&av);
		return SMTP_DEFER;
	}
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		dup2(in, STDIN_FILENO);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);	/* dup2 clears CLOEXEC */
		signal(SIGPIPE, SIG_DFL);
		execv(prog, av.v);
		_exit(127);
	}
	close(in);
	free(prog);
	sv_free(&av);
	if (pid < 0) {
		snprintf(reason, rlen, "cannot fork the mda: %s",
		    strerror(errno));
		return SMTP_DEFER;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		snprintf(reason, rlen, "delivered by %s", argv->v[0]);
		return SMTP_OK;
	}
	if (WIFSIGNALED(status)) {
		snprintf(reason, rlen, "the mda %s was killed by signal %d",
		    argv->v[0], WTERMSIG(status));
		return SMTP_DEFER;
	}
	snprintf(reason, rlen, "the mda %s exited %d", argv->v[0],
	    WEXITSTATUS(status));
	switch (WEXITSTATUS(status)) {
	case 75:
	case 126:
	case 127:
		return SMTP_DEFER;
	default:
		return SMTP_FAIL;
	}
}

enum smtp_outcome
local_maildir(const char *dir, const char *rcpt, const char *sender, int fd,
    off_t offset, off_t len, char *reason, size_t rlen)
{
	struct err e;
	char *top = xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", sender,
	    rcpt);
	int rc = maildir_deliver(dir, top, strlen(top), fd, offset, len, NULL,
	    &e);

	free(top);
	if (rc < 0) {
		snprintf(reason, rlen, "%s", e.msg);
		return SMTP_DEFER;
	}
	snprintf(reason, rlen, "delivered to %s", dir);
	return SMTP_OK;
}
