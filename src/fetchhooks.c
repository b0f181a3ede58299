/* fetchhooks.c - runner, confinement, `after' and `mailboxes'. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "confine.h"
#include "fetchhooks.h"
#include "sshroute.h"

#if defined(__has_feature)
#define SANITIZED_CLANG __has_feature(address_sanitizer)
#else
#define SANITIZED_CLANG 0
#endif

char *
fetch_state_dir(const struct config *cfg)
{
	char *q = xstrdup(cfg->queue);
	char *dir = xasprintf("%s/fetch", dirname(q));

	free(q);
	return dir;
}

/* The runner's tasks: each chosen job's after command and mailboxes
 * file (one task a file, for the Maildirs of every job naming it). */
static void
make_tasks(struct fetch_hooks *h, const struct config *cfg,
    const bool *chosen)
{
	h->tasks = xcalloc(3 * cfg->njobs + 1, sizeof(*h->tasks));
	h->after = xcalloc(cfg->njobs + 1, sizeof(*h->after));
	h->mailboxes = xcalloc(cfg->njobs + 1, sizeof(*h->mailboxes));
	h->mda = xcalloc(cfg->njobs + 1, sizeof(*h->mda));
	for (size_t k = 0; k < cfg->njobs; k++) {
		const struct fetch_job *fj = &cfg->jobs[k];

		h->after[k] = h->mailboxes[k] = h->mda[k] = SIZE_MAX;
		if (!chosen[k])
			continue;
		if (fj->mda.n > 0) {
			h->tasks[h->ntasks].kind = TASK_COMMAND;
			h->tasks[h->ntasks].argv = &fj->mda;
			h->tasks[h->ntasks].finish = true;
			h->mda[k] = h->ntasks++;
		}
		if (fj->after.n > 0) {
			h->tasks[h->ntasks].kind = TASK_COMMAND;
			h->tasks[h->ntasks].argv = &fj->after;
			h->after[k] = h->ntasks++;
		}
		if (fj->mailboxes == NULL)
			continue;
		for (size_t t = 0; t < h->ntasks; t++)
			if (h->tasks[t].kind == TASK_MAILBOXES &&
			    strcmp(h->tasks[t].file, fj->mailboxes) == 0)
				h->mailboxes[k] = t;
		if (h->mailboxes[k] != SIZE_MAX)
			continue;
		h->tasks[h->ntasks].kind = TASK_MAILBOXES;
		h->tasks[h->ntasks].file = fj->mailboxes;
		sv_init(&h->tasks[h->ntasks].locals);
		/* every job naming the file, chosen or not, in order */
		for (size_t i = 0; i < cfg->njobs; i++)
			if (cfg->jobs[i].mailboxes != NULL &&
			    strcmp(cfg->jobs[i].mailboxes, fj->mailboxes) == 0 &&
			    !sv_contains(&h->tasks[h->ntasks].locals,
			    cfg->jobs[i].local))
				sv_push(&h->tasks[h->ntasks].locals,
				    cfg->jobs[i].local);
		h->mailboxes[k] = h->ntasks++;
	}
}

/*
 * The key and known_hosts files ~/.ssh/config names for a job's server
 * and its jump hosts, which may lie outside ~/.ssh: looked up now, as the
 * job will look them up confined. A look-up that fails here fails there
 * too, with its reason, so it is left to the job.
 */
static void
route_paths(const struct fetch_job *fj, struct strvec *rd)
{
	struct sshroute_in in = { &fj->ssh, fj->ssh_key, fj->ssh_known_hosts,
	    NULL, 0 };
	struct ssh_route r;
	struct err e;

	if (fj->ssh.host == NULL || sshroute_resolve(&in, &r, &e) < 0)
		return;
	for (size_t i = 0; i < r.n; i++) {
		const struct ssh_hop *h = &r.hop[i];

		for (size_t j = 0; j < h->keys.n; j++) {
			sv_push(rd, h->keys.v[j]);
			sv_push_owned(rd, xasprintf("%s.pub", h->keys.v[j]));
		}
		for (size_t j = 0; j < h->known_hosts.n; j++)
			sv_push(rd, h->known_hosts.v[j]);
		/* GlobalKnownHostsFile, read for its @revoked lines */
		for (size_t j = 0; j < h->revocations.n; j++)
			sv_push(rd, h->revocations.v[j]);
	}
	sshroute_free(&r);
}

/* What the confined process may read (besides what it may write). */
static void
read_paths(const struct config *cfg, const bool *chosen,
    struct strvec *rd)
{
	static const char *const sys[] = {
		"/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache",
		"/etc/ssl", "/etc/pki", "/etc/ca-certificates", "/etc/ssh",
		"/etc/nsswitch.conf", "/etc/resolv.conf", "/etc/hosts",
		"/etc/host.conf", "/etc/gai.conf", "/etc/services",
		"/etc/protocols", "/etc/passwd", "/etc/group",
		"/etc/localtime", "/dev/urandom", "/dev/random",
	};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		sv_push(rd, sys[i]);
#if defined(__SANITIZE_ADDRESS__) || SANITIZED_CLANG
	/* the leak checker reads /proc/PID/task and maps at exit */
	sv_push(rd, "/proc");
#endif
	if (n > 0) {
		exe[n] = '\0';
		sv_push(rd, exe);
	}
	if (cfg->path != NULL)
		sv_push(rd, cfg->path);
	sv_push_owned(rd, xasprintf("%s/.ssh", util_home()));
	for (size_t k = 0; k < cfg->njobs; k++) {
		const struct fetch_job *fj = &cfg->jobs[k];

		if (!chosen[k])
			continue;
		if (fj->ssh_key != NULL) {
			sv_push(rd, fj->ssh_key);
			sv_push_owned(rd, xasprintf("%s.pub", fj->ssh_key));
		}
		if (fj->ssh_known_hosts != NULL)
			sv_push(rd, fj->ssh_known_hosts);
		route_paths(fj, rd);
		sv_push(rd, fj->local);	/* -n reads what is here */
	}
}

int
fetch_hooks_start(struct fetch_hooks *h, const struct config *cfg,
    const bool *chosen, bool dry_run, bool release, struct log *log,
    struct err *e)
{
	struct strvec wr, rd;
	bool may_bind = false;
	char *state = fetch_state_dir(cfg);
	int rc = 0;

	memset(h, 0, sizeof(*h));
	h->runner.fd = -1;
	make_tasks(h, cfg, chosen);
	if (h->ntasks > 0 && !dry_run && runner_start(&h->runner, h->tasks,
	    h->ntasks, e) < 0) {
		free(state);
		return -1;
	}
	sv_init(&wr);
	sv_init(&rd);
	/*
	 * What it may write must exist to be named: made now (a failure
	 * here is the job's own, said when it tries again, confined).
	 */
	if (util_mkdir_p(state, e) == 0)
		sv_push(&wr, state);
	for (size_t k = 0; k < cfg->njobs; k++)
		if (chosen[k] && !dry_run && !release &&
		    util_mkdir_p(cfg->jobs[k].local, e) == 0)
			sv_push(&wr, cfg->jobs[k].local);
	sv_push(&wr, "/dev/null");
	read_paths(cfg, chosen, &rd);
	for (size_t k = 0; k < cfg->njobs; k++)
		if (chosen[k] && cfg->jobs[k].route.source != NULL)
			may_bind = true;	/* its bind(2) before connect */
	h->abi = confine_apply(&wr, &rd, may_bind, e);
	if (h->abi < 0)
		rc = -1;
	else if (h->abi > 0)
		log_msg(log, LOG_INFO, "confined (Landlock ABI %d)", h->abi);
	else
		log_msg(log, LOG_NOTICE, "not confined: the kernel has no "
		    "Landlock (ABI %d; 2 or later needed)", confine_abi());
	sv_free(&wr);
	sv_free(&rd);
	free(state);
	if (rc == 0)
		confine_probe();
	return rc;
}

static void
hook_fail(struct log *log, const char *job, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
hook_fail(struct log *log, const char *job, const char *fmt, ...)
{
	char line[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(log, LOG_ERR, "%s: %s", job, line);
	/* log_msg itself writes to stderr with -v or "log stderr" */
	if (!log->verbose && log->kind != LOGTO_STDERR) {
		util_sanitize(line);
		fprintf(stderr, "fetch: %s: %s\n", job, line);
	}
}

void
fetch_hooks_job(struct fetch_hooks *h, const struct config *cfg, size_t k,
    unsigned long fetched, struct log *log)
{
	const struct fetch_job *fj = &cfg->jobs[k];
	struct run_result res;
	struct err e;
	bool changed;

	if (h == NULL || h->runner.fd < 0)
		return;
	if (h->mailboxes[k] != SIZE_MAX) {
		if (runner_mailboxes(&h->runner, h->mailboxes[k], &changed,
		    &e) < 0)
			hook_fail(log, fj->name, "mailboxes: %s", e.msg);
		else if (changed)
			log_msg(log, LOG_INFO, "%s: wrote %s", fj->name,
			    fj->mailboxes);
	}
	if (h->after[k] == SIZE_MAX || fetched == 0)
		return;
	if (runner_run(&h->runner, h->after[k], NULL, -1, AFTER_TIMEOUT,
	    &res, &e) < 0)
		hook_fail(log, fj->name, "after: %s: %s", fj->after.v[0],
		    e.msg);
	else if (res.timed_out)
		hook_fail(log, fj->name, "after: %s took over %d seconds and "
		    "was killed%s%s", fj->after.v[0], AFTER_TIMEOUT,
		    res.line[0] ? ": " : "", res.line);
	else if (!res.exited)
		hook_fail(log, fj->name, "after: %s was killed by signal %d%s%s",
		    fj->after.v[0], res.sig, res.line[0] ? ": " : "",
		    res.line);
	else if (res.code != 0)
		hook_fail(log, fj->name, "after: %s exited with %d%s%s",
		    fj->after.v[0], res.code, res.line[0] ? ": " : "",
		    res.line);
	else
		log_msg(log, LOG_INFO, "%s: after: %s ran", fj->name,
		    fj->after.v[0]);
}

int
fetch_hooks_mda(struct fetch_hooks *h, size_t k, const char *folder,
    const char *name, int msg_fd, long timeout, struct mda_result *r,
    struct err *e)
{
	const char *expand[RUN_NEXPAND];
	struct run_result res;
	char path[64];
	int in, rc;

	memset(r, 0, sizeof(*r));
	if (h == NULL || h->mda == NULL || h->mda[k] == SIZE_MAX)
		return err_set(e, ERR_SOFTWARE, "no runner for the mda");
	expand[RUN_F] = folder;
	expand[RUN_N] = name;
	if (timeout > RUNNER_TIMEOUT_MAX)
		timeout = RUNNER_TIMEOUT_MAX;
	/* a descriptor of its own: the mda reads from the start */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", msg_fd);
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_set(e, err_from_errno(errno), "cannot reopen the "
		    "message for the mda: %s", strerror(errno));
	rc = runner_run(&h->runner, h->mda[k], expand, in, (int)timeout, &res,
	    e);
	close(in);
	if (rc < 0)
		return -1;
	r->status = res.exited ? (res.code & 0xff) << 8 : res.sig & 0x7f;
	r->timed_out = res.timed_out;
	snprintf(r->errline, sizeof(r->errline), "%.*s",
	    (int)sizeof(r->errline) - 1, res.line);
	return 0;
}

void
fetch_hooks_end(struct fetch_hooks *h)
{
	runner_stop(&h->runner);
	for (size_t t = 0; t < h->ntasks; t++)
		if (h->tasks[t].kind == TASK_MAILBOXES)
			sv_free(&h->tasks[t].locals);
	free(h->tasks);
	free(h->after);
	free(h->mailboxes);
	free(h->mda);
	memset(h, 0, sizeof(*h));
	h->runner.fd = -1;
}
