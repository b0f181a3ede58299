/* netmod.c - the entry point of the network module. */
#include "netmod.h"

const struct netmod postie_netmod = {
	.version = NETMOD_VERSION,
	.deliver = deliver_run,
	.fetch = fetch_run,
};
