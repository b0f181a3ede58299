/*
 * netmod.h - the network half of postie (deliver and fetch),
 * built as a shared object that is embedded in the postie binary and
 * loaded only by the commands that need it.
 *
 * Why: libESMTP, OpenSSL and libssh2 cost ~1.6 ms to load per exec, more
 * than a whole durable spool; sendmail runs once per message and never
 * needs them. The module is written to a memfd and dlopen'ed from there,
 * so postie stays one file. It resolves the core's functions (queue,
 * config, spool...) from the executable, which exports just those (the
 * build's dynamic list). Where no memfd can be mapped, a copy of this
 * build's module on disk (netload.c).
 */
#ifndef POSTIE_NETMOD_H
#define POSTIE_NETMOD_H

#include "config.h"
#include "deliver.h"
#include "err.h"
#include "fetch.h"
#include "log.h"

#define NETMOD_VERSION 2

struct netmod {
	int	version;
	int	(*deliver)(const struct config *cfg,
		    const struct deliver_opts *o, struct log *log,
		    struct err *e);
	int	(*fetch)(const struct config *cfg,
		    const struct fetch_opts *o, struct log *log,
		    struct err *e);
};

/* Load the embedded module (once per process). */
int	netmod_load(const struct netmod **m, struct err *e);

#endif
