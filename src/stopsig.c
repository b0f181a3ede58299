/* stopsig.c - the first SIGTERM, SIGINT or SIGHUP noted, not obeyed. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "stopsig.h"

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
	struct sigaction sa;

	tty = isatty(STDERR_FILENO);
	said = say;
	said_len = say != NULL ? strlen(say) : 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;

		/* a signal ignored by whoever started us stays ignored */
		if (sigaction(sigs[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		(void)sigaction(sigs[i], &sa, NULL);
	}
}

int
stopsig_caught(void)
{
	return caught;
}
