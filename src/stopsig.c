/* stopsig.c - the first SIGTERM, SIGINT or SIGHUP noted, not obeyed. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "stopsig.h"
#include "util.h"

/* Process-wide by nature: a signal handler reaches nothing else. */
static volatile sig_atomic_t caught;
static int tty;
static const char *said;
static size_t said_len;

static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

static void
on_signal(int sig)
{
	struct sigaction dfl;
	int saved = errno;

	if (caught == 0)
		caught = sig;
	/* the next one is obeyed */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &dfl, NULL);
	if (tty && said != NULL)
		(void)!write(STDERR_FILENO, said, said_len);
	errno = saved;
}

void
stopsig_catch(const char *say)
{
	tty = isatty(STDERR_FILENO);
	said = say;
	said_len = say != NULL ? strlen(say) : 0;
	util_catch_stop_signals(on_signal, SA_RESTART);
}

int
stopsig_caught(void)
{
	return caught;
}
