/*
 * sshroute.h - the way to an SSH server: postie's ssh settings with what
 * ~/.ssh/config and /etc/ssh/ssh_config say about the host (sshcfg.h),
 * and the ProxyJump hops before it.
 *
 * postie's own keys win: a port or user written in `ssh`, `ssh-key`
 * (then only that key is offered), `ssh-known-hosts`. From ssh_config:
 * HostName (%h), Port, User, IdentityFile (%d %h %n %p %r %u, ~),
 * UserKnownHostsFile (the same tokens), IdentitiesOnly (no agent),
 * HostKeyAlias (the name looked up in known_hosts), ProxyJump. Each hop
 * is looked up in ssh_config too (its HostName, Port, User, keys, known
 * hosts); as in ssh, the first hop's own ProxyJump is followed (its hops
 * go first; at most SSHROUTE_MAX_JUMPS in all, which ends a loop), the
 * later hops' own ProxyJump and ProxyCommand are not. A host that
 * only a ProxyCommand reaches is refused with the line that says so:
 * postie runs no command from ssh_config.
 */
#ifndef POSTIE_SSHROUTE_H
#define POSTIE_SSHROUTE_H

#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "sshcfg.h"
#include "util.h"

#define SSHROUTE_MAX_JUMPS	8

/* One SSH server on the way: a jump host or the server itself. */
struct ssh_hop {
	char		*name;		/* as named (the alias), for messages */
	char		*host;		/* to connect to */
	int		 port;
	char		*user;
	char		*kh_host;	/* looked up in known_hosts */
	int		 kh_port;
	struct strvec	 keys;		/* key files, in order; empty: the
					 * defaults ~/.ssh/id_* */
	bool		 keys_only;	/* no agent (ssh-key, IdentitiesOnly) */
	bool		 key_given;	/* postie's ssh-key: that key alone */
	struct strvec	 known_hosts;	/* files read together */
	struct strvec	 revocations;	/* more files read for @revoked
					 * lines alone: GlobalKnownHostsFile,
					 * else /etc/ssh/ssh_known_hosts{,2} */
	char		 cert_where[SSHCFG_WHERE_MAX];	/* CertificateFile */
};

struct ssh_route {
	struct ssh_hop	 hop[SSHROUTE_MAX_JUMPS + 1];	/* jumps, then the server */
	size_t		 n;
};

/* Inputs: the job's or identity's settings. */
struct sshroute_in {
	const struct ssh_target	*target;
	const char		*key;		/* ssh-key, or NULL */
	const char		*known_hosts;	/* ssh-known-hosts, or NULL */
	const char *const	*files;		/* ssh_config files, in order;
						 * NULL: the user's, the system's */
	size_t			 nfiles;
};

int	sshroute_resolve(const struct sshroute_in *in, struct ssh_route *r,
	    struct err *e);
void	sshroute_free(struct ssh_route *r);

/* The local user's name ($USER, else the password database). */
const char *sshroute_local_user(void);

#endif
