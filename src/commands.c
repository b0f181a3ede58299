/* commands.c - sendmail, mailq, deliver, fetch and queue as commands. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alias.h"
#include "cli.h"
#include "commands.h"
#include "config.h"
#include "crash.h"
#include "log.h"
#include "netmod.h"
#include "mailq.h"
#include "qctl.h"
#include "queue.h"
#include "smtpd.h"
#include "spool.h"
#include "util.h"

/* Run the queue through the network module. */
static int
run_deliver(const struct config *cfg, struct deliver_opts *o, bool verbose,
    struct err *e)
{
	const struct netmod *m;
	struct log log;
	int rc;

	if (netmod_load(&m, e) < 0)
		return -1;
	log_open(&log, cfg, "deliver", verbose);
	o->verbose = verbose;
	rc = m->deliver(cfg, o, &log, e);
	log_close(&log);
	return rc;
}

/* sendmail -q, mailq -q: the whole queue, now. */
static int
run_queue_now(const struct config *cfg, bool verbose, struct err *e)
{
	struct deliver_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	sv_init(&o.ids);
	o.now = true;
	rc = run_deliver(cfg, &o, verbose, e);
	sv_free(&o.ids);
	return rc;
}

/* The argv of a deliver run for cfg (its -C path when it has one). */
static void
deliver_argv(const struct config *cfg, struct strvec *av)
{
	sv_push(av, "deliver");
	if (cfg->path != NULL) {
		sv_push(av, "-C");
		sv_push(av, cfg->path);
	}
}

/*
 * Start a detached "deliver --batch": it waits batch-delay so that a
 * burst (git send-email) goes out in one connection. Double fork, new
 * session, no terminal, nothing inherited but the environment.
 */
static void
spawn_deliver(const struct config *cfg, struct log *log)
{
	struct strvec av;
	pid_t pid;

	sv_init(&av);
	deliver_argv(cfg, &av);
	sv_push(&av, "--batch");
	pid = fork();
	if (pid == 0) {
		int fd;

		if (fork() != 0)
			_exit(0);
		setsid();
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			if (fd > STDERR_FILENO)
				close(fd);
		}
		unsetenv("POSTIE_CRASH_AT");
		unsetenv("POSTIE_CRASH_TRACE");
		/* nothing of the caller's: no descriptors (a caller waiting
		 * for EOF on a pipe it gave us), no signal state (the cwd
		 * stays: relative paths in the config mean what they meant) */
		close_range(3, ~0U, 0);
		{
			sigset_t none;

			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
		}
		signal(SIGPIPE, SIG_DFL);
		execv("/proc/self/exe", av.v);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	else
		log_msg(log, LOG_WARNING, "cannot start deliver: %s; the "
		    "message stays queued", strerror(errno));
	sv_free(&av);
}

/* sendmail -odi: deliver this message now, in the foreground. */
static void
deliver_now(const struct config *cfg, const char *id, bool verbose)
{
	struct strvec av;
	pid_t pid;

	sv_init(&av);
	deliver_argv(cfg, &av);
	if (verbose)
		sv_push(&av, "-v");
	sv_push(&av, id);
	pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", av.v);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	sv_free(&av);
}

/* sendmail's failures say what became of the message (postie(1)). */
static void
nothing_queued(struct err *e)
{
	size_t len = strlen(e->msg);

	snprintf(e->msg + len, sizeof(e->msg) - len, "; nothing was queued");
}

static int
sendmail_spool(const struct sendmail_args *a, const struct config *cfg,
    struct queue *q, struct log *log, struct err *e)
{
	struct spool_opts o;
	struct spool_result res;
	struct input *in = xmalloc(sizeof(*in));
	int rc;

	spool_opts_init(&o);
	for (size_t i = 0; i < a->rcpts.n; i++)
		sv_push(&o.rcpts, a->rcpts.v[i]);
	o.sender = a->sender;
	o.fullname = a->fullname;
	o.extract = a->extract;
	o.notify = a->notify;
	o.ret = a->ret;
	o.body = a->body;
	o.envid = a->envid;
	input_init(in, STDIN_FILENO, a->ignore_dots ? INPUT_RAW : INPUT_DOT);
	rc = spool_message(cfg, q, in, &o, &res, e);
	if (rc == 0) {
		log_msg(log, LOG_INFO, "queued %s from=<%s> rcpts=%zu "
		    "size=%llu identity=%s", res.id, res.sender, res.nrcpts,
		    (unsigned long long)res.size,
		    res.identity ? res.identity->name : "none");
		if (a->delivery == SM_DELIVER_NOW)
			deliver_now(cfg, res.id, a->verbose);
		else if (a->delivery == SM_DELIVER_BACKGROUND)
			spawn_deliver(cfg, log);
		spool_result_free(&res);
	} else
		nothing_queued(e);
	free(in);
	spool_opts_free(&o);
	return rc;
}

/*
 * newaliases, sendmail -bi: read the aliases as sendmail would, say what
 * was found on stdout, every error on stderr (FILE:LINE: what).
 */
static int
check_aliases(struct config *cfg, const char *cmd, struct err *e)
{
	struct strvec errors;
	size_t nfile = 0, nlines = cfg->aliases.n, unusable = 0;
	int rc;

	sv_init(&errors);
	if ((rc = config_load_aliases(cfg, &errors, &nfile, e)) < 0) {
		sv_free(&errors);
		return -1;	/* the file could not be read: e says why */
	}
	rc = rc > 0 ? -1 : 0;	/* problems: listed below, exit 78 */
	for (size_t i = 0; i < errors.n; i++)
		fprintf(stderr, "%s: %s\n", cmd, errors.v[i]);
	/* what refuses no mail: a name given again (the first counts) */
	for (size_t i = 0; i < cfg->aliases.notes.n; i++)
		fprintf(stderr, "%s: %s\n", cmd, cfg->aliases.notes.v[i]);
	/* entries for a program, a file or an :include: (another MTA's)
	 * refuse only the mail to them (a broken entry does too, and is
	 * listed among the errors above) */
	for (size_t i = 0; i < cfg->aliases.n; i++) {
		const struct alias *al = &cfg->aliases.v[i];

		if (al->unusable != NULL && !al->broken) {
			fprintf(stderr, "%s: %s: mail to %s is refused: %s\n",
			    cmd, al->where, al->name, al->unusable);
			unusable++;
		}
	}
	if (rc == 0) {
		if (cfg->aliases_file != NULL && unusable > 0)
			printf("%s: %zu aliases, %zu from alias lines; %zu "
			    "refuse%s mail (postie runs no program and writes "
			    "no file for a recipient)\n", cfg->aliases_file,
			    nfile, nlines, unusable, unusable == 1 ? "s" : "");
		else if (cfg->aliases_file != NULL)
			printf("%s: %zu aliases, %zu from alias lines\n",
			    cfg->aliases_file, nfile, nlines);
		else
			printf("no aliases file; %zu aliases from alias "
			    "lines\n", nlines);
	} else
		err_set(e, ERR_CONFIG, "%zu error%s in the aliases: fix %s "
		    "and run newaliases again", errors.n,
		    errors.n == 1 ? "" : "s", errors.n == 1 ? "it" : "them");
	sv_free(&errors);
	return rc;
}

int
cmd_newaliases(int argc, char **argv, struct err *e)
{
	struct cmd_args a;
	struct config *cfg = NULL;
	int rc = -1;

	if (cli_command("newaliases", argc, argv, "", &a, e) < 0)
		goto out;
	if (a.names.n > 0) {
		err_set(e, ERR_USAGE, "usage: newaliases [-C config]");
		goto out;
	}
	if ((cfg = config_load(a.config, e)) != NULL)
		rc = check_aliases(cfg, "newaliases", e);
out:
	config_free(cfg);
	cli_command_free(&a);
	return rc;
}

int
cmd_sendmail(int argc, char **argv, struct err *e)
{
	struct sendmail_args a;
	struct config *cfg = NULL;
	struct queue q = { 0 };
	struct crash crash;
	struct log log;
	struct err ae = { ERR_OK, "" };
	int rc = -1, bad_aliases = 0;

	if (cli_sendmail(argc, argv, &a, e) < 0) {
		size_t len = strlen(e->msg);

		snprintf(e->msg + len, sizeof(e->msg) - len, "\n%s",
		    cli_sendmail_usage);
		goto out;
	}
	if ((cfg = config_load(a.config, e)) == NULL) {
		if (a.mode == SM_SEND || a.mode == SM_SMTP)
			nothing_queued(e);
		goto out;
	}
	if (a.mode == SM_ALIASES) {
		rc = check_aliases(cfg, "sendmail", e);
		goto out;
	}
	if ((a.mode == SM_SEND || a.mode == SM_SMTP) &&
	    (bad_aliases = config_load_aliases(cfg, NULL, NULL, &ae)) < 0) {
		*e = ae;
		nothing_queued(e);
		goto out;
	}
	log_open(&log, cfg, "sendmail", a.verbose);
	if (bad_aliases > 0)
		/* each refuses only the mail to its names (said to whoever
		 * sends that mail); the rest goes */
		log_msg(&log, LOG_WARNING, "the aliases have %d problem%s, "
		    "each refusing only the mail to its names: %s",
		    bad_aliases, bad_aliases == 1 ? "" : "s", ae.msg);
	switch (a.mode) {
	case SM_MAILQ:
		rc = mailq_print(cfg, stdout, a.json, e);
		break;
	case SM_RUNQ:
		rc = run_queue_now(cfg, a.verbose, e);
		break;
	case SM_SMTP:
	case SM_SEND:
		crash_init(&crash);
		if (queue_open(&q, cfg->queue, false, e) < 0) {
			nothing_queued(e);
			break;
		}
		q.crash = &crash;
		/* killed while it writes: nothing half-written is left */
		queue_clean_on_signal(&q);
		if (a.mode == SM_SMTP) {
			size_t queued = 0;

			rc = smtpd_run(cfg, &q, STDIN_FILENO, stdout, &log,
			    &queued, e);
			if (queued > 0 && a.delivery != SM_DELIVER_QUEUE_ONLY)
				spawn_deliver(cfg, &log);
		} else
			rc = sendmail_spool(&a, cfg, &q, &log, e);
		queue_close(&q);
		break;
	case SM_ALIASES:
		break;
	}
	log_close(&log);
out:
	config_free(cfg);
	cli_sendmail_free(&a);
	return rc;
}

int
cmd_mailq(int argc, char **argv, struct err *e)
{
	struct cmd_args a;
	struct config *cfg = NULL;
	int rc = -1;

	if (cli_command("mailq", argc, argv, "jq", &a, e) < 0)
		goto out;
	if (a.names.n > 0) {
		err_set(e, ERR_USAGE, "usage: mailq [-C config] [-v] [--json] [-q]");
		goto out;
	}
	if ((cfg = config_load(a.config, e)) == NULL)
		goto out;
	if (a.runq)
		rc = run_queue_now(cfg, a.verbose, e);
	else
		rc = mailq_print(cfg, stdout, a.json, e);
out:
	config_free(cfg);
	cli_command_free(&a);
	return rc;
}

int
cmd_deliver(int argc, char **argv, struct err *e)
{
	struct cmd_args a;
	struct config *cfg = NULL;
	struct deliver_opts o;
	int rc = -1;

	memset(&o, 0, sizeof(o));
	sv_init(&o.ids);
	if (cli_command("deliver", argc, argv, "Nb", &a, e) < 0)
		goto out;
	if ((cfg = config_load(a.config, e)) == NULL)
		goto out;
	o.now = a.now;
	o.batch = a.batch;
	for (size_t i = 0; i < a.names.n; i++)
		sv_push(&o.ids, a.names.v[i]);
	rc = run_deliver(cfg, &o, a.verbose, e);
out:
	sv_free(&o.ids);
	config_free(cfg);
	cli_command_free(&a);
	return rc;
}

int
cmd_fetch(int argc, char **argv, struct err *e)
{
	struct cmd_args a;
	int rc = -1;

	struct fetch_opts o;
	struct config *cfg = NULL;
	const struct netmod *m;
	struct log log;

	memset(&o, 0, sizeof(o));
	sv_init(&o.jobs);
	if (cli_command("fetch", argc, argv, "nr", &a, e) < 0)
		goto out;
	if (a.release != NULL && !config_valid_client(a.release)) {
		char shown[80];

		snprintf(shown, sizeof(shown), "%s", a.release);
		util_sanitize_ascii(shown);
		err_set(e, ERR_USAGE, "--release '%s': no client has that "
		    "name (a client's name is letters, digits, '.', '_' and "
		    "'-', no '.' first, at most 64); the names with claims "
		    "are the directories in FOLDER/postie-claims/ on the "
		    "server", shown);
		goto out;
	}
	if ((cfg = config_load(a.config, e)) == NULL)
		goto out;
	/* this machine's own claims may be messages it has already taken
	 * (their server removal not done): given back, another client
	 * would take them again; its own runs finish them */
	for (size_t i = 0; a.release != NULL && i < cfg->njobs; i++) {
		const struct fetch_job *j = &cfg->jobs[i];

		if (strcmp(j->client, a.release) == 0) {
			err_set(e, ERR_USAGE, "--release %s: that is the client "
			    "name of job '%s' on this machine; its claims are "
			    "finished by its own runs (fetch %s), not given "
			    "back", a.release, j->name, j->name);
			goto out;
		}
	}
	if (netmod_load(&m, e) < 0)
		goto out;
	o.verbose = a.verbose;
	o.dry_run = a.dry_run;
	o.release = a.release;
	for (size_t i = 0; i < a.names.n; i++)
		sv_push(&o.jobs, a.names.v[i]);
	log_open(&log, cfg, "fetch", a.verbose);
	rc = m->fetch(cfg, &o, &log, e);
	log_close(&log);
out:
	sv_free(&o.jobs);
	config_free(cfg);
	cli_command_free(&a);
	return rc;
}

static const char queue_usage[] = "usage: postie queue "
    "show|hold|release|remove [-C config] [-v] (--all | ID...)";

int
cmd_queue(int argc, char **argv, struct err *e)
{
	struct cmd_args a;
	struct config *cfg = NULL;
	enum qctl_op op;
	struct log log;
	int rc = -1;

	memset(&a, 0, sizeof(a));
	sv_init(&a.names);
	if (argc < 2 || qctl_op_parse(argv[1], &op) < 0) {
		err_set(e, ERR_USAGE, "%s%s%s\n%s", argc < 2 ? "which " :
		    "unknown queue command '", argc < 2 ? "queue command?" :
		    argv[1], argc < 2 ? "" : "'", queue_usage);
		goto out;
	}
	if (cli_command("queue", argc - 1, argv + 1, "a", &a, e) < 0)
		goto out;
	if (a.all == (a.names.n > 0)) {
		err_set(e, ERR_USAGE, "give the message ids or --all, not %s"
		    "\n%s", a.all ? "both" : "neither", queue_usage);
		goto out;
	}
	if ((cfg = config_load(a.config, e)) == NULL)
		goto out;
	log_open(&log, cfg, "queue", a.verbose);
	rc = qctl_run(cfg, op, &a.names, a.all, &log, stdout, stderr, e);
	log_close(&log);
out:
	config_free(cfg);
	cli_command_free(&a);
	return rc;
}
