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
#include "mda.h"
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
	struct mda m;
	struct mda_result r;
	struct err e;
	char what[MDA_ERRLINE_MAX + 64];
	int rc;

	sv_init(&av);
	for (size_t i = 0; i < argv->n; i++)
		sv_push_owned(&av, expand(argv->v[i], rcpt, sender));
	/* what runs is what was checked: the real path trust_program gave */
	if (mda_open(&m, &av, &e) < 0) {
		snprintf(reason, rlen, "%s", e.msg);
		sv_free(&av);
		return SMTP_DEFER;
	}
	/* bounded (a hung mda held every message of the run, and a run
	 * told to stop waited for it), and killed with deliver */
	rc = mda_run(&m, av.v, fd, offset, LOCAL_MDA_TIMEOUT, &r, &e);
	mda_close(&m);
	sv_free(&av);
	if (rc < 0) {
		snprintf(reason, rlen, "%s", e.msg);
		return SMTP_DEFER;
	}
	if (!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) {
		snprintf(reason, rlen, "delivered by %s", argv->v[0]);
		return SMTP_OK;
	}
	mda_describe(&r, LOCAL_MDA_TIMEOUT, what, sizeof(what));
	snprintf(reason, rlen, "the mda %s failed: %s", argv->v[0], what);
	if (r.timed_out || !WIFEXITED(r.status))
		return SMTP_DEFER;	/* hung or killed: try again later */
	switch (WEXITSTATUS(r.status)) {
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
