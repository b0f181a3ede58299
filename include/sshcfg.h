/*
 * sshcfg.h - what OpenSSH's client configuration says about one host.
 *
 * Reads ssh_config(5) files (~/.ssh/config, then /etc/ssh/ssh_config) the
 * way ssh does for the options postie uses: for each option the first
 * value obtained wins; Host lines take several patterns with `*`, `?` and
 * `!` (negation), matched case-insensitively against the name as given;
 * Match takes `all`, `host`, `originalhost`, `user` and `localuser`
 * (each may be negated with `!`), and a Match with a criterion postie
 * cannot evaluate (exec, canonical, final, localnetwork, tagged, ...)
 * does not match, as a failed criterion does not in ssh; Include takes
 * globs, relative paths from the including top-level file's directory
 * (~/.ssh, /etc/ssh), at most SSHCFG_MAX_DEPTH deep. Keywords are
 * case-insensitive, a value may follow `=`, and double or single quotes
 * group words. Options postie does not use are ignored.
 *
 * The files are hostile input: at most SSHCFG_MAX_FILE bytes and lines of
 * at most SSHCFG_MAX_LINE bytes, no NUL; a file must pass the trust rule
 * (trust.h), as ssh requires of ~/.ssh/config. Errors are ERR_CONFIG and
 * start with "FILE:LINE: ".
 */
#ifndef POSTIE_SSHCFG_H
#define POSTIE_SSHCFG_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "util.h"

#define SSHCFG_MAX_FILE		(256 * 1024)
#define SSHCFG_MAX_LINE		4096
#define SSHCFG_MAX_DEPTH	16	/* Include nesting, as ssh */
#define SSHCFG_MAX_FILES	128	/* files read for one look-up */

/* Where a value came from: "FILE:LINE". */
#define SSHCFG_WHERE_MAX	300

/* The options obtained for one host; raw values, tokens not expanded. */
struct sshcfg {
	char		*hostname;	/* HostName, or NULL */
	char		*user;		/* User, or NULL */
	int		 port;		/* Port, 0 when not given */
	struct strvec	 identity_files;	/* every IdentityFile, in order */
	struct strvec	 identity_where;	/* ... and where each was */
	struct strvec	 known_hosts;	/* UserKnownHostsFile (one line) */
	char		 known_hosts_where[SSHCFG_WHERE_MAX];
	struct strvec	 global_known_hosts;	/* GlobalKnownHostsFile */
	char		 global_where[SSHCFG_WHERE_MAX];
	int		 identities_only;	/* -1 not given, 0 no, 1 yes */
	char		*proxy_jump;	/* ProxyJump as written, or NULL */
	char		*proxy_command;	/* ProxyCommand as written, or NULL */
	char		 proxy_where[SSHCFG_WHERE_MAX];
	char		*hostkey_alias;	/* HostKeyAlias, or NULL */
	char		 cert_where[SSHCFG_WHERE_MAX];	/* first CertificateFile */
	int		 files;		/* files read, Includes counted */
};

/* What a look-up matches against and expands tokens with. */
struct sshcfg_ctx {
	const char	*host;		/* the name as given (Host, %n) */
	const char	*user;		/* the remote user known so far, or NULL */
	const char	*local_user;	/* %u, Match localuser */
	const char	*home;		/* %d, ~ */
	bool		 no_include;	/* parse Include lines, follow none */
};

void	sshcfg_init(struct sshcfg *c);
void	sshcfg_free(struct sshcfg *c);

/*
 * Read one top-level file into c (a file that does not exist adds
 * nothing). Include paths that are relative are taken from the file's
 * directory.
 */
int	sshcfg_read_file(struct sshcfg *c, const struct sshcfg_ctx *x,
	    const char *path, struct err *e);

/* Parse text as the file named file (for the tests and the fuzzer). */
int	sshcfg_parse(struct sshcfg *c, const struct sshcfg_ctx *x,
	    const char *text, size_t len, const char *file, struct err *e);

/* Does host match a Host or Match pattern list "a,b,!c" (or the words of
 * a Host line, given as a list)? Negation wins, as in ssh. */
bool	sshcfg_match_list(const char *host, const char *const *pats,
	    size_t n);

/* One shell-like glob ('*', '?'), ASCII case-insensitive. */
bool	sshcfg_glob(const char *pat, const char *s);

/* The values for %-tokens and ~. */
struct sshcfg_tokens {
	const char	*home;		/* %d, ~ */
	const char	*host;		/* %h: the host name connected to */
	const char	*alias;		/* %n: the name as given */
	const char	*user;		/* %r: the remote user */
	const char	*local_user;	/* %u */
	int		 port;		/* %p */
};

/*
 * Expand %%, and those of %d %h %n %p %r %u that allowed lists (e.g.
 * "dhnpru", or "h" for HostName), and a leading ~/ when tilde is set.
 * NULL with e set ("WHERE: KEYWORD: ...") on an unknown or unfinished
 * token.
 */
char	*sshcfg_expand(const char *s, const struct sshcfg_tokens *t,
	    const char *allowed, bool tilde, const char *where,
	    const char *keyword, struct err *e);

/* One ProxyJump hop: "[user@]host[:port]", "[user@][v6]:port" or
 * "ssh://[user@]host[:port]". */
struct sshcfg_hop {
	char	*user;		/* NULL: not given */
	char	*host;
	int	 port;		/* 0: not given */
};

/*
 * Split a ProxyJump value into its hops (at most max). *n is 0 for
 * "none". Errors name where.
 */
int	sshcfg_parse_jump(const char *s, struct sshcfg_hop *hops, size_t max,
	    size_t *n, const char *where, struct err *e);
void	sshcfg_hops_free(struct sshcfg_hop *hops, size_t n);

#endif
