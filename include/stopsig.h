/*
 * stopsig.h - SIGTERM, SIGINT and SIGHUP as "stop soon" for a deliver
 * run: a run killed between sending a message's end and recording the
 * server's reply sends it again next time, so the first such signal is
 * only noted, and the run stops at its next safe point (the session is
 * cut before the next message's data; what was sent is recorded). A
 * second signal ends the process at once, as without this.
 */
#ifndef POSTIE_STOPSIG_H
#define POSTIE_STOPSIG_H

/* Catch the three from now on (SA_RESTART); on a terminal the first says
 * what happens on standard error. */
void	stopsig_catch(void);

/* The first signal caught, or 0. */
int	stopsig_caught(void);

#endif
