/*
 * config.h - the configuration file grammar and the one immutable
 * struct config built from it.
 *
 * Grammar: one "key value..." per line; '#' starts a comment where a word
 * may start; values may be double-quoted (with \" and \\ inside); a
 * leading "~" expands to the home directory in path values. Global keys
 * come first, then blocks ("identity NAME", "fetch NAME"), each running
 * until the next block keyword. Durations take s m h d, sizes k M G.
 */
#ifndef POSTIE_CONFIG_H
#define POSTIE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "alias.h"
#include "err.h"
#include "util.h"

enum tls_mode { TLS_STARTTLS, TLS_IMPLICIT, TLS_NONE };
enum log_kind { LOGTO_SYSLOG, LOGTO_STDERR, LOGTO_FILE };
enum bounce_kind { BOUNCE_MAILDIR, BOUNCE_MDA, BOUNCE_SENDER, BOUNCE_NONE };
enum fetch_mode { FETCH_MOVE, FETCH_COPY };

/* "user@host[:port]" or "user@[v6]:port" for an SSH server. */
struct ssh_target {
	char	*user;		/* NULL: $USER */
	char	*host;		/* NULL: no SSH */
	int	 port;		/* 22 by default */
	bool	 port_given;	/* written out: wins over ~/.ssh/config */
};

/* How a connection leaves this machine (dial.h): proxy, source-address. */
struct route {
	char		*proxy_host;	/* SOCKS5 proxy; NULL: connect directly */
	int		 proxy_port;
	char		*proxy_user;	/* RFC 1929 login; NULL: none */
	char		*proxy_password;
	char		*source;	/* address literal to bind; NULL: any */
};

struct identity {
	char		*name;
	int		 line;		/* where the block starts */
	struct strvec	 from;		/* envelope-sender globs */
	char		*host;
	int		 host_line;	/* where host was set */
	int		 port;		/* 0 until resolved from tls */
	enum tls_mode	 tls;
	char		*tls_ca;
	char		*tls_fingerprint;	/* "sha256:HEX" normalized */
	char		*tls_cert;
	char		*tls_key;
	char		*user;
	char		*password;
	struct strvec	 password_command;
	bool		 auth_without_tls;
	struct strvec	 auth;		/* the `auth` key: mechanism names */
	int		 auth_mechs[8];	/* the same as enum auth_mech, in order */
	size_t		 nauth_mechs;	/* 0: the default order (auth.h) */
	char		*helo;
	char		*force_sender;
	struct ssh_target ssh;
	char		*ssh_key;
	char		*ssh_known_hosts;
	char		*ssh_fingerprint;
	struct route	 route;
	bool		 is_default;
	long		 connect_timeout;	/* seconds */
	long		 timeout;		/* seconds, per SMTP step */
};

/* A fetch job's `keep [FOLDER-GLOB] AGE': server copies older than age
 * are removed once fetched (copy mode). */
struct keep_rule {
	char		*glob;		/* NULL: the folders no glob matches */
	long		 age;		/* seconds; KEEP_FOREVER: never */
};

#define KEEP_FOREVER	(-1L)

struct fetch_job {
	char		*name;
	int		 line;
	int		 take_line, keep_line, client_line;	/* where
					 * set: their errors name these lines */
	struct ssh_target ssh;
	char		*ssh_key;
	char		*ssh_known_hosts;
	char		*ssh_fingerprint;
	struct route	 route;
	char		*remote;
	char		*local;
	struct strvec	 folders;
	enum fetch_mode	 mode;
	struct strvec	 take;			/* "new", "cur" */
	bool		 take_cur;		/* cur/ too (from take) */
	char		*client;	/* this machine's name in server-side
					 * claims (default: the host name) */
	struct strvec	 mda;		/* argv, %F %N unexpanded; empty:
					 * link into local */
	struct keep_rule *keep;		/* copy mode retention, in order */
	size_t		 nkeep;
	long		 connect_timeout;	/* seconds */
	long		 timeout;		/* seconds, per SSH step */
	struct strvec	 after;		/* run after a run that brought mail */
	char		*mailboxes;	/* mutt's mailboxes line goes here */
};

struct config {
	char		*path;		/* the file read, NULL for defaults */
	char		*queue;
	enum log_kind	 log;
	char		*log_file;
	long		 batch_delay;
	long		*retry;
	size_t		 nretry;
	long		 lifetime;
	enum bounce_kind bounce;
	char		*bounce_dir;
	struct strvec	 mda;		/* argv with %T %F unexpanded */
	uint64_t	 max_size;
	struct identity	*ids;
	size_t		 nids;
	struct fetch_job *jobs;
	size_t		 njobs;
	char		*domain;	/* qualifies bare names; NULL: host */
	struct alias_table aliases;	/* alias lines, then the file's
					 * (config_load_aliases) */
	char		*aliases_file;	/* NULL: none */
	long		 delay_warning;	/* seconds; 0: never */
	struct strvec	 notify_command;	/* argv, empty: none */
};

/* A config file is at most this big, a line at most this long. */
#define CONFIG_SIZE_MAX	(1024 * 1024)
#define CONFIG_LINE_MAX	4096

/*
 * Find the config: explicit (-C) if given, else $POSTIE_CONFIG, else
 * $XDG_CONFIG_HOME/postie/config (~/.config/postie/config), else
 * /etc/postie.conf; none at all gives the defaults. A named file that
 * does not exist is an error.
 */
struct config *config_load(const char *explicit_path, struct err *e);

/*
 * Parse one file (or, with path NULL, return the defaults). The file
 * must be a regular file of at most CONFIG_SIZE_MAX bytes that passes
 * the ownership rule of trust.h; symbolic links are followed.
 *
 * Errors name the file, the line and the word (counted from 1, the key
 * being word 1) and never quote the file's text: "FILE:3: word 2: 'port'
 * must be a number from 1 to 65535".
 */
struct config *config_parse_file(const char *path, struct err *e);

/* Parse text as if read from a file named name (for tests). */
struct config *config_parse_string(const char *text, const char *name,
	    struct err *e);

void	config_free(struct config *cfg);

/*
 * Add the aliases file's entries (if the config names one) to the alias
 * lines' table, then check every chain (alias_check). The alias lines
 * win over the file's entry for the same name. -1 with e set if the file
 * cannot be used at all (unreadable, untrusted, too large); else the
 * number of problems in it (broken entries, loops: each refuses only the
 * mail to its names), e set to the first when there are any; every
 * problem is in errors when it is not NULL. *nfile counts the file's
 * entries (may be NULL).
 */
int	config_load_aliases(struct config *cfg, struct strvec *errors,
	    size_t *nfile, struct err *e);

/* A client name becomes a directory on the server: letters, digits, '.',
 * '_' and '-', not starting with '.', at most 64 bytes. */
bool	config_valid_client(const char *s);

/* The domain that qualifies bare names: `domain`, else the host name. */
const char *config_domain(const struct config *cfg);

/* Durations: "90", "90s", "5m", "1h30m", "5d" -> seconds. */
int	config_parse_duration(const char *s, long *out);

/* Booleans: yes on true / no off false; -1 (out untouched) for others. */
int	config_parse_bool(const char *s, bool *out);

/* Sizes: "1000", "10k", "50M", "1G" (powers of 1024) -> bytes. */
int	config_parse_size(const char *s, uint64_t *out);

/*
 * Split a line into words: blanks separate, "..." groups (with \" \\),
 * '#' at a word start ends the line. Returns -1 with *why set on an
 * unterminated quote.
 */
int	config_split_words(const char *line, struct strvec *out,
	    const char **why);

/* The identity for an envelope sender: first "from" match, else default. */
const struct identity *config_identity_for(const struct config *cfg,
	    const char *sender);

const struct identity *config_identity_by_name(const struct config *cfg,
	    const char *name);

/*
 * The identity a queued message goes out through: the one named at
 * enqueue if the config still has it, else the match for its sender now.
 */
const struct identity *config_resolve_identity(const struct config *cfg,
	    const char *name, const char *sender);

#endif
