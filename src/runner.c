/* runner.c - run the config's commands outside fetch's confinement. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mailboxes.h"
#include "runner.h"

#define REQ_DATA_MAX	(2 * 256)
#define OP_RUN		1
#define OP_MAILBOXES	2

/* A request: one SOCK_SEQPACKET message, the reply socket (and stdin)
 * with it. Bytes from a confined, maybe compromised, process: checked. */
struct req {
	uint32_t	op;
	uint32_t	task;
	int32_t		timeout;
	uint16_t	len[RUN_NEXPAND];	/* 0xffff: not given */
	char		data[REQ_DATA_MAX];
};

struct rep {
	int32_t		ran;		/* 0: refused, why in line */
	int32_t		exited, code, sig, timed_out, changed;
	char		line[RUNNER_LINE_MAX + 1];
};

const char *
runner_value_problem(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 255)
		return "empty or longer than 255 bytes";
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return "\".\" or \"..\"";
	if (s[0] == '-')
		return "starts with '-'";
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c == '/' || *c <= 0x20 || *c == 0x7f)
			return "has a '/', a space or a control character";
	return NULL;
}

int
runner_expand(const struct strvec *argv, const char *const expand[],
    struct strvec *out, const char **why)
{
	sv_init(out);
	for (size_t i = 0; i < argv->n; i++) {
		struct strbuf sb;
		const char *w = argv->v[i];

		sb_init(&sb);
		for (; *w; w++) {
			const char *v;
			int x;

			if (w[0] != '%' || (w[1] != 'F' && w[1] != 'N' &&
			    w[1] != '%')) {
				sb_add(&sb, w, 1);
				continue;
			}
			w++;
			if (*w == '%') {
				sb_add(&sb, "%", 1);
				continue;
			}
			x = *w == 'F' ? RUN_F : RUN_N;
			v = expand != NULL ? expand[x] : NULL;
			if (v == NULL)
				*why = x == RUN_F ? "%F with no folder" :
				    "%N with no message name";
			else
				*why = runner_value_problem(v);
			if (v == NULL || *why != NULL) {
				sb_free(&sb);
				sv_free(out);
				return -1;
			}
			sb_add(&sb, v, strlen(v));
		}
		sv_push_owned(out, sb_steal(&sb));
	}
	return 0;
}

/* --- the runner's side ------------------------------------------------ */

static void rep_why(struct rep *rp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
rep_why(struct rep *rp, const char *fmt, ...)
{
	va_list ap;

	rp->ran = 0;
	va_start(ap, fmt);
	vsnprintf(rp->line, sizeof(rp->line), fmt, ap);
	va_end(ap);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keep the first line of what arrives on fd; -1 at its end. */
static int
take_stderr(int fd, struct rep *rp, size_t *got, bool *line_done)
{
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	for (ssize_t i = 0; i < n && !*line_done; i++) {
		if (buf[i] == '\n' || *got == RUNNER_LINE_MAX) {
			*line_done = true;
			break;
		}
		rp->line[(*got)++] = buf[i];
	}
	return 0;
}

/* Run argv: the child in a group of its own, bounded by timeout. */
static void
run_command(char **argv, int stdin_fd, int timeout, struct rep *rp)
{
	double deadline = now_s() + timeout;
	pid_t handler = getpid();
	size_t got = 0;
	bool line_done = false, done = false;
	int ep[2], status = 0;
	pid_t pid;

	if (pipe2(ep, O_CLOEXEC) < 0) {
		rep_why(rp, "cannot run it: pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		rep_why(rp, "cannot run it: fork: %s", strerror(errno));
		close(ep[0]);
		close(ep[1]);
		return;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		(void)setsid();
		/* a handler killed (^C reaches it) takes its command along */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
		    getppid() != handler)
			_exit(127);
		/* ignored signals stay ignored across exec: not ours to
		 * hand on */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (null < 0 || dup2(stdin_fd >= 0 ? stdin_fd : null, 0) < 0 ||
		    dup2(null, 1) < 0 || dup2(ep[1], 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		execv(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(ep[1]);
	(void)fcntl(ep[0], F_SETFL, O_NONBLOCK);
	rp->ran = 1;
	while (!done) {
		double left = deadline - now_s();
		struct pollfd pfd = { .fd = ep[0], .events = POLLIN };
		pid_t w;

		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			rp->timed_out = 1;
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (ep[0] >= 0) {
			if (poll(&pfd, 1, left > 0.1 ? 100 : 10) > 0 &&
			    take_stderr(ep[0], rp, &got, &line_done) < 0) {
				close(ep[0]);
				ep[0] = -1;
			}
		} else
			(void)poll(NULL, 0, 20);
		w = waitpid(pid, &status, WNOHANG);
		done = w == pid;
	}
	if (ep[0] >= 0) {
		/* what is there already; a grandchild holding stderr open
		 * does not hold the result back */
		(void)take_stderr(ep[0], rp, &got, &line_done);
		close(ep[0]);
	}
	rp->line[got] = '\0';
	util_sanitize(rp->line);
	rp->exited = WIFEXITED(status);
	rp->code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
	rp->sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* One request, in a process of its own: the reply, then exit. */
static void
serve(const struct runner_task *tasks, size_t ntasks, const struct req *rq,
    size_t n, int reply_fd, int stdin_fd)
{
	const char *expand[RUN_NEXPAND] = { NULL, NULL };
	char vals[RUN_NEXPAND][256];
	struct rep rp;
	size_t off = 0;

	memset(&rp, 0, sizeof(rp));
	signal(SIGCHLD, SIG_DFL);
	if (n < offsetof(struct req, data) || rq->task >= ntasks) {
		rep_why(&rp, "a malformed request");
		goto out;
	}
	for (size_t i = 0; i < RUN_NEXPAND; i++) {
		size_t len = rq->len[i];

		if (len == 0xffff)
			continue;
		if (len > 255 || off + len > n - offsetof(struct req, data)) {
			rep_why(&rp, "a malformed request");
			goto out;
		}
		memcpy(vals[i], rq->data + off, len);
		vals[i][len] = '\0';
		off += len;
		if (strlen(vals[i]) != len) {
			rep_why(&rp, "a NUL in a name");
			goto out;
		}
		expand[i] = vals[i];
	}
	if (rq->op == OP_MAILBOXES &&
	    tasks[rq->task].kind == TASK_MAILBOXES) {
		struct err e;
		bool changed = false;

		if (mailboxes_write(tasks[rq->task].file,
		    &tasks[rq->task].locals, &changed, &e) < 0)
			rep_why(&rp, "%s", e.msg);
		else {
			rp.ran = 1;
			rp.changed = changed;
		}
	} else if (rq->op == OP_RUN && tasks[rq->task].kind == TASK_COMMAND) {
		struct strvec argv;
		const char *why = NULL;

		if (runner_expand(tasks[rq->task].argv, expand, &argv,
		    &why) < 0) {
			rep_why(&rp, "refused to run it: %s", why);
			goto out;
		}
		sv_push_owned(&argv, NULL);
		if (tasks[rq->task].finish) {
			/* the job, told to stop, waits for it and records it */
			signal(SIGINT, SIG_IGN);
			signal(SIGTERM, SIG_IGN);
			signal(SIGHUP, SIG_IGN);
		}
		run_command(argv.v, stdin_fd,
		    rq->timeout < 1 || rq->timeout > RUNNER_TIMEOUT_MAX ?
		    RUNNER_TIMEOUT_MAX : rq->timeout, &rp);
		sv_free(&argv);
	} else
		rep_why(&rp, "a request for another kind of task");
out:
	(void)send(reply_fd, &rp, sizeof(rp), MSG_NOSIGNAL);
	_exit(0);
}

static void runner_main(const struct runner_task *tasks, size_t ntasks,
    int fd) __attribute__((noreturn));

static void
runner_main(const struct runner_task *tasks, size_t ntasks, int fd)
{
	struct sigaction sa;

	/* the request handlers reap themselves */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = SA_NOCLDWAIT;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		union {
			struct cmsghdr	h;
			char		b[CMSG_SPACE(2 * sizeof(int))];
		} ctl;
		struct req rq;
		struct iovec iov = { .iov_base = &rq, .iov_len = sizeof(rq) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
		int fds[2] = { -1, -1 };
		size_t nfds = 0;
		ssize_t n;

		memset(&rq, 0, sizeof(rq));
		n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL;
		    c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) /
			    sizeof(int); i++) {
				int got;

				memcpy(&got, CMSG_DATA(c) + i * sizeof(int),
				    sizeof(int));
				if (nfds < 2)
					fds[nfds++] = got;
				else
					close(got);
			}
		}
		if (nfds > 0 && !(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
		    fork() == 0) {
			close(fd);
			serve(tasks, ntasks, &rq, (size_t)n, fds[0], fds[1]);
		}
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

int
runner_start(struct runner *r, const struct runner_task *tasks,
    size_t ntasks, struct err *e)
{
	int sv[2];

	r->pid = 0;
	r->fd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return err_set(e, ERR_OSERR, "cannot start the command "
		    "runner: socketpair: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	r->pid = fork();
	if (r->pid < 0) {
		int errnum = errno;

		r->pid = 0;
		close(sv[0]);
		close(sv[1]);
		return err_set(e, ERR_OSERR, "cannot start the command "
		    "runner: fork: %s", strerror(errnum));
	}
	if (r->pid == 0) {
		int ctl = fcntl(sv[1], F_DUPFD_CLOEXEC, 3);
		int null = open("/dev/null", O_RDWR);

		/* nothing of fetch's but the socket: no lock, no log, and
		 * not the terminal or a pipe someone waits on to end */
		if (ctl < 0 || null < 0 || dup2(null, 0) < 0 ||
		    dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(EXIT_FAILURE);
		if (ctl > 3)
			close_range(3, (unsigned)ctl - 1, 0);
		close_range((unsigned)ctl + 1, ~0U, 0);
		runner_main(tasks, ntasks, ctl);
	}
	close(sv[1]);
	r->fd = sv[0];
	return 0;
}

/* Send a request, wait (bounded) for its reply. */
static int
request(struct runner *r, struct req *rq, size_t len, int stdin_fd,
    int wait_s, struct rep *rp, struct err *e)
{
	union {
		struct cmsghdr	h;
		char		b[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = rq, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.b };
	struct cmsghdr *c;
	struct pollfd pfd;
	int pair[2], fds[2], nfds = 1, pr;
	ssize_t n;

	if (r->fd < 0)
		return err_set(e, ERR_SOFTWARE, "the command runner is not "
		    "running");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return err_set(e, ERR_OSERR, "cannot ask the command runner: "
		    "%s", strerror(errno));
	fds[0] = pair[1];
	if (stdin_fd >= 0)
		fds[nfds++] = stdin_fd;
	memset(&ctl, 0, sizeof(ctl));
	m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	while ((n = sendmsg(r->fd, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	close(pair[1]);
	if (n < 0) {
		int errnum = errno;

		close(pair[0]);
		return err_set(e, ERR_OSERR, "cannot ask the command runner: "
		    "%s", strerror(errnum));
	}
	pfd.fd = pair[0];
	pfd.events = POLLIN;
	while ((pr = poll(&pfd, 1, wait_s * 1000)) < 0 && errno == EINTR)
		;
	n = pr > 0 ? recv(pair[0], rp, sizeof(*rp), 0) : -1;
	close(pair[0]);
	if (n != (ssize_t)sizeof(*rp))
		return err_set(e, ERR_SOFTWARE, "the command runner %s",
		    pr == 0 ? "did not answer in time" : "gave no answer");
	rp->line[sizeof(rp->line) - 1] = '\0';
	if (!rp->ran)
		return err_set(e, ERR_SOFTWARE, "%s", rp->line);
	return 0;
}

int
runner_run(struct runner *r, size_t task, const char *const expand[],
    int stdin_fd, int timeout_s, struct run_result *res, struct err *e)
{
	struct req rq;
	struct rep rp;
	size_t off = 0;

	if (timeout_s < 1 || timeout_s > RUNNER_TIMEOUT_MAX)
		timeout_s = RUNNER_TIMEOUT_MAX;
	memset(&rq, 0, sizeof(rq));
	rq.op = OP_RUN;
	rq.task = (uint32_t)task;
	rq.timeout = timeout_s;
	for (size_t i = 0; i < RUN_NEXPAND; i++) {
		size_t len = expand != NULL && expand[i] != NULL ?
		    strlen(expand[i]) : 0;

		if (expand == NULL || expand[i] == NULL) {
			rq.len[i] = 0xffff;
			continue;
		}
		if (len > 255)
			return err_set(e, ERR_SOFTWARE, "refused to run it: a "
			    "name longer than 255 bytes");
		memcpy(rq.data + off, expand[i], len);
		rq.len[i] = (uint16_t)len;
		off += len;
	}
	if (request(r, &rq, offsetof(struct req, data) + off, stdin_fd,
	    timeout_s + 30, &rp, e) < 0)
		return -1;
	memset(res, 0, sizeof(*res));
	res->exited = rp.exited;
	res->code = rp.code;
	res->sig = rp.sig;
	res->timed_out = rp.timed_out;
	memcpy(res->line, rp.line, sizeof(res->line));
	return 0;
}

int
runner_mailboxes(struct runner *r, size_t task, bool *changed,
    struct err *e)
{
	struct req rq;
	struct rep rp;

	memset(&rq, 0, sizeof(rq));
	rq.op = OP_MAILBOXES;
	rq.task = (uint32_t)task;
	rq.len[0] = rq.len[1] = 0xffff;
	if (request(r, &rq, offsetof(struct req, data), -1, 60, &rp, e) < 0)
		return -1;
	*changed = rp.changed;
	return 0;
}

void
runner_stop(struct runner *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	if (r->pid > 0)
		while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
			;
	r->pid = 0;
}
