/*
 * mailq.h - what waits in the queue, as text for people or JSON for
 * scripts. Reads the queue only; never locks or changes it.
 */
#ifndef POSTIE_MAILQ_H
#define POSTIE_MAILQ_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

int	mailq_print(const struct config *cfg, FILE *out, bool json,
	    struct err *e);

#endif
