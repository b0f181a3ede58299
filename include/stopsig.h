/*
 * stopsig.h - SIGTERM, SIGINT and SIGHUP as "stop soon": a deliver run
 * killed between sending a message's end and recording the server's
 * reply sends it again next time, and a fetch killed while its mda
 * delivers a message hands it again, so the first such signal is only
 * noted, and the run stops at its next safe point (deliver: the session
 * cut before the next message's data; fetch: after the message at the
 * mda is recorded, at the next wait for the server). A second signal
 * ends the process at once, as without this.
 */
#ifndef POSTIE_STOPSIG_H
#define POSTIE_STOPSIG_H

/* Catch the three from now on (SA_RESTART); on a terminal the first
 * writes say (a string that lives as long as the process) to standard
 * error. Forked children inherit it. */
void	stopsig_catch(const char *say);

/* The first signal caught, or 0. */
int	stopsig_caught(void);

#endif
