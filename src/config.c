/*
 * config.c - the config grammar -> one immutable struct config.
 *
 * A parser is a table plus small functions: every key is a row naming
 * the blocks it may appear in, how its value is read and where it goes.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alias.h"
#include "auth.h"
#include "config.h"
#include "trust.h"

enum scope { SC_GLOBAL = 1, SC_IDENTITY = 2, SC_FETCH = 4 };

enum kind {
	K_PATH, K_STR, K_ADDR, K_DURATION, K_SIZE, K_DURLIST, K_COMMAND,
	K_PORT, K_LIST, K_FLAG, K_BOOL, K_TLS, K_LOG, K_BOUNCE, K_SSH,
	K_MODE, K_TLSFP, K_SSHFP, K_PATH_OR_MORE, K_DOMAIN, K_ALIAS, K_PROXY,
	K_SOURCE, K_KEEP
};

struct key {
	const char	*name;
	unsigned	 scope;
	enum kind	 kind;
	size_t		 off;	/* offset in the struct of its scope */
};

#define G(f)	offsetof(struct config, f)
#define I(f)	offsetof(struct identity, f)
#define F(f)	offsetof(struct fetch_job, f)

static const struct key keys[] = {
	{ "queue",		SC_GLOBAL,	K_PATH,		G(queue) },
	{ "log",		SC_GLOBAL,	K_LOG,		0 },
	{ "batch-delay",	SC_GLOBAL,	K_DURATION,	G(batch_delay) },
	{ "retry",		SC_GLOBAL,	K_DURLIST,	0 },
	{ "lifetime",		SC_GLOBAL,	K_DURATION,	G(lifetime) },
	{ "bounce",		SC_GLOBAL,	K_BOUNCE,	0 },
	{ "mda",		SC_GLOBAL,	K_COMMAND,	G(mda) },
	{ "max-size",		SC_GLOBAL,	K_SIZE,		G(max_size) },
	{ "domain",		SC_GLOBAL,	K_DOMAIN,	G(domain) },
	{ "alias",		SC_GLOBAL,	K_ALIAS,	0 },	/* repeats */
	{ "aliases",		SC_GLOBAL,	K_PATH,		G(aliases_file) },
	{ "delay-warning",	SC_GLOBAL,	K_DURATION,	G(delay_warning) },
	{ "notify-command",	SC_GLOBAL,	K_COMMAND,	G(notify_command) },

	{ "from",		SC_IDENTITY,	K_LIST,		I(from) },
	{ "host",		SC_IDENTITY,	K_STR,		I(host) },
	{ "port",		SC_IDENTITY,	K_PORT,		I(port) },
	{ "tls",		SC_IDENTITY,	K_TLS,		I(tls) },
	{ "tls-ca",		SC_IDENTITY,	K_PATH,		I(tls_ca) },
	{ "tls-fingerprint",	SC_IDENTITY,	K_TLSFP,	I(tls_fingerprint) },
	{ "tls-cert",		SC_IDENTITY,	K_PATH,		I(tls_cert) },
	{ "tls-key",		SC_IDENTITY,	K_PATH,		I(tls_key) },
	{ "user",		SC_IDENTITY,	K_STR,		I(user) },
	{ "password",		SC_IDENTITY,	K_STR,		I(password) },
	{ "password-command",	SC_IDENTITY,	K_COMMAND,	I(password_command) },
	{ "auth-without-tls",	SC_IDENTITY,	K_BOOL,		I(auth_without_tls) },
	{ "auth",		SC_IDENTITY,	K_LIST,		I(auth) },
	{ "helo",		SC_IDENTITY,	K_STR,		I(helo) },
	{ "force-sender",	SC_IDENTITY,	K_ADDR,		I(force_sender) },
	{ "default",		SC_IDENTITY,	K_FLAG,		I(is_default) },

	{ "remote",		SC_FETCH,	K_STR,		F(remote) },
	{ "local",		SC_FETCH,	K_PATH,		F(local) },
	{ "folders",		SC_FETCH,	K_LIST,		F(folders) },
	{ "mode",		SC_FETCH,	K_MODE,		F(mode) },
	{ "take",		SC_FETCH,	K_LIST,		F(take) },
	{ "client",		SC_FETCH,	K_STR,		F(client) },
	{ "after",		SC_FETCH,	K_COMMAND,	F(after) },
	{ "mailboxes",		SC_FETCH,	K_PATH,		F(mailboxes) },
	{ "mda",		SC_FETCH,	K_COMMAND,	F(mda) },
	{ "keep",		SC_FETCH,	K_KEEP,		0 },	/* repeatable */

	/* In both kinds of block: same kind, offsets differ (shared_off). */
	{ "ssh",		SC_IDENTITY | SC_FETCH, K_SSH,	0 },
	{ "ssh-key",		SC_IDENTITY | SC_FETCH, K_PATH,	0 },
	{ "ssh-known-hosts",	SC_IDENTITY | SC_FETCH, K_PATH,	0 },
	{ "ssh-fingerprint",	SC_IDENTITY | SC_FETCH, K_SSHFP, 0 },
	{ "connect-timeout",	SC_IDENTITY | SC_FETCH, K_DURATION, 0 },
	{ "timeout",		SC_IDENTITY | SC_FETCH, K_DURATION, 0 },
	{ "proxy",		SC_IDENTITY | SC_FETCH, K_PROXY, 0 },
	{ "source-address",	SC_IDENTITY | SC_FETCH, K_SOURCE, 0 },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct parser {
	const char	*file;
	int		 line;
	struct config	*cfg;
	unsigned	 scope;		/* where we are now */
	void		*block;		/* struct config/identity/fetch_job */
	bool		 seen[NKEYS];
	struct err	*e;
};

/*
 * An error at word (1 the key, 0 the whole line) of the current line.
 * Never with text from the file: it may be a file the user cannot read
 * (a config pointed at /etc/shadow must not print it), so the line and
 * the word's number say where, the key's name from the table says what.
 */
static int
perr(struct parser *p, size_t word, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
perr(struct parser *p, size_t word, const char *fmt, ...)
{
	char buf[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (word == 0)
		return err_set(p->e, ERR_CONFIG, "%s:%d: %s", p->file, p->line,
		    buf);
	return err_set(p->e, ERR_CONFIG, "%s:%d: word %zu: %s", p->file,
	    p->line, word, buf);
}

/* Has k's name another row, for scope? */
static bool
other_row(const struct key *k, unsigned scope)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (&keys[i] != k && strcmp(keys[i].name, k->name) == 0 &&
		    (keys[i].scope & scope))
			return true;
	return false;
}

/* Offsets of the keys that exist in identities and fetch jobs both. */
static size_t
shared_off(const char *name, unsigned scope)
{
	bool id = scope == SC_IDENTITY;

	if (strcmp(name, "connect-timeout") == 0)
		return id ? I(connect_timeout) : F(connect_timeout);
	if (strcmp(name, "timeout") == 0)
		return id ? I(timeout) : F(timeout);
	if (strcmp(name, "ssh") == 0)
		return id ? I(ssh) : F(ssh);
	if (strcmp(name, "proxy") == 0 || strcmp(name, "source-address") == 0)
		return id ? I(route) : F(route);
	if (strcmp(name, "ssh-key") == 0)
		return id ? I(ssh_key) : F(ssh_key);
	if (strcmp(name, "ssh-known-hosts") == 0)
		return id ? I(ssh_known_hosts) : F(ssh_known_hosts);
	return id ? I(ssh_fingerprint) : F(ssh_fingerprint);
}

int
config_parse_duration(const char *s, long *out)
{
	long total = 0;
	const char *p = s;

	if (*p == '\0')
		return -1;
	while (*p != '\0') {
		char *end;
		long n, mult;

		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		n = strtol(p, &end, 10);
		if (errno != 0 || n < 0)
			return -1;
		switch (*end) {
		case '\0':
			mult = 1;
			break;
		case 's': mult = 1; end++; break;
		case 'm': mult = 60; end++; break;
		case 'h': mult = 3600; end++; break;
		case 'd': mult = 86400; end++; break;
		default:
			return -1;
		}
		if (n > (0x7fffffffL - total) / mult)
			return -1;
		total += n * mult;
		p = end;
	}
	*out = total;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long n;
	uint64_t mult = 1;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1024ULL; end++; break;
	case 'M': mult = 1024ULL * 1024; end++; break;
	case 'G': mult = 1024ULL * 1024 * 1024; end++; break;
	default:
		return -1;
	}
	if (*end != '\0' || (n != 0 && mult > UINT64_MAX / n))
		return -1;
	*out = n * mult;
	return 0;
}

int
config_split_words(const char *line, struct strvec *out, const char **why)
{
	const char *p = line;
	struct strbuf w;

	sb_init(&w);
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p == '\0' || *p == '#')
			break;
		sb_reset(&w);
		sb_add(&w, "", 0);
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' &&
		    *p != '\n') {
			if (*p == '"') {
				p++;
				while (*p != '"') {
					if (*p == '\0') {
						sb_free(&w);
						*why = "unterminated quote";
						return -1;
					}
					if (*p == '\\' && (p[1] == '"' ||
					    p[1] == '\\'))
						p++;
					sb_addc(&w, *p++);
				}
				p++;
			} else
				sb_addc(&w, *p++);
		}
		sv_push(out, w.s);
	}
	sb_free(&w);
	return 0;
}

/* "user@host", "user@host:port", "host", "user@[::1]:22". */
static int
parse_ssh_target(const char *s, struct ssh_target *t, const char **why)
{
	const char *at = strrchr(s, '@');
	const char *h = at ? at + 1 : s;
	const char *colon = NULL;
	char *host;

	*why = "must be user@host or user@host:port";
	if (at == s)
		return -1;
	if (*h == '[') {
		const char *close = strchr(h, ']');

		if (close == NULL || close == h + 1)
			return -1;
		host = xstrndup(h + 1, (size_t)(close - h - 1));
		if (close[1] == ':')
			colon = close + 1;
		else if (close[1] != '\0') {
			free(host);
			return -1;
		}
	} else {
		colon = strchr(h, ':');
		host = colon ? xstrndup(h, (size_t)(colon - h)) : xstrdup(h);
	}
	if (*host == '\0') {
		free(host);
		return -1;
	}
	t->port = 22;
	if (colon != NULL) {
		char *end;
		long port = strtol(colon + 1, &end, 10);

		if (colon[1] == '\0' || *end != '\0' || port < 1 ||
		    port > 65535) {
			free(host);
			*why = "has a port that is not a number from 1 to 65535";
			return -1;
		}
		t->port = (int)port;
	}
	t->port_given = colon != NULL;
	free(t->user);
	free(t->host);
	t->user = at ? xstrndup(s, (size_t)(at - s)) : NULL;
	t->host = host;
	return 0;
}

/* "socks5://[USER:PASSWORD@]HOST[:PORT]", HOST a name, IPv4 or [IPv6]. */
static int
parse_proxy(const char *s, struct route *r, const char **why)
{
	const char *prefix = "socks5://", *hp, *at, *colon = NULL;
	char *user = NULL, *pass = NULL, *host;
	long port = 1080;

	*why = "must be socks5://HOST:PORT or socks5://USER:PASSWORD@HOST:PORT";
	if (strncmp(s, prefix, strlen(prefix)) != 0)
		return -1;
	s += strlen(prefix);
	if ((at = strrchr(s, '@')) != NULL) {
		const char *sep = memchr(s, ':', (size_t)(at - s));

		if (sep == NULL || sep == s || sep + 1 == at ||
		    sep - s > 255 || at - sep - 1 > 255) {
			*why = "has a login that is not USER:PASSWORD (each 1 "
			    "to 255 bytes)";
			return -1;
		}
		user = xstrndup(s, (size_t)(sep - s));
		pass = xstrndup(sep + 1, (size_t)(at - sep - 1));
		s = at + 1;
	}
	hp = s;
	if (*hp == '[') {
		const char *close = strchr(hp, ']');

		if (close == NULL || close == hp + 1 ||
		    (close[1] != '\0' && close[1] != ':'))
			goto bad;
		host = xstrndup(hp + 1, (size_t)(close - hp - 1));
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strchr(hp, ':');
		host = colon ? xstrndup(hp, (size_t)(colon - hp)) : xstrdup(hp);
	}
	if (*host == '\0' || strpbrk(host, "/?# ") != NULL) {
		free(host);
		goto bad;
	}
	if (colon != NULL) {
		char *end;

		port = strtol(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end != '\0' || port < 1 ||
		    port > 65535) {
			free(host);
			*why = "has a port that is not a number from 1 to 65535";
			goto fail;
		}
	}
	free(r->proxy_host);
	free(r->proxy_user);
	if (r->proxy_password != NULL)
		explicit_bzero(r->proxy_password, strlen(r->proxy_password));
	free(r->proxy_password);
	r->proxy_host = host;
	r->proxy_port = (int)port;
	r->proxy_user = user;
	r->proxy_password = pass;
	return 0;
bad:
	*why = "must be socks5://HOST:PORT or socks5://USER:PASSWORD@HOST:PORT";
fail:
	free(user);
	if (pass != NULL)
		explicit_bzero(pass, strlen(pass));
	free(pass);
	return -1;
}

/* "sha256:AB:CD:..." or "sha256:abcd..." -> "sha256:ABCD..." (64 hex). */
static char *
normalize_tls_fp(const char *s)
{
	struct strbuf sb;

	if (strncasecmp(s, "sha256:", 7) != 0)
		return NULL;
	sb_init(&sb);
	sb_adds(&sb, "sha256:");
	for (s += 7; *s; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s)) {
			sb_free(&sb);
			return NULL;
		}
		sb_addc(&sb, (char)toupper((unsigned char)*s));
	}
	if (sb.len != 7 + 64) {
		sb_free(&sb);
		return NULL;
	}
	return sb_steal(&sb);
}

static bool
valid_ssh_fp(const char *s)
{
	size_t n;

	if (strncmp(s, "SHA256:", 7) != 0)
		return false;
	s += 7;
	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/=");
	return s[n] == '\0' && n >= 43 && n <= 44;
}

static bool
valid_address(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '<' || *p == '>')
			return false;
	return *s != '\0';
}

static int
need_one(struct parser *p, const struct key *k, struct strvec *vals)
{
	if (vals->n != 2)
		return perr(p, vals->n < 2 ? 1 : 3, "'%s' takes exactly one "
		    "value, got %zu", k->name, vals->n - 1);
	return 0;
}

int
config_parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "on") == 0 ||
	    strcmp(s, "true") == 0)
		*out = true;
	else if (strcmp(s, "no") == 0 || strcmp(s, "off") == 0 ||
	    strcmp(s, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int
set_command(struct parser *p, const struct key *k, struct strvec *argv,
    struct strvec *vals)
{
	const char *why;

	if (vals->n < 2)
		return perr(p, 1, "'%s' needs a command", k->name);
	if (vals->n == 2) {
		/* One (quoted) value: split it into words. */
		if (config_split_words(vals->v[1], argv, &why) < 0)
			return perr(p, 2, "'%s': %s", k->name, why);
		if (argv->n == 0)
			return perr(p, 2, "'%s' needs a command", k->name);
	} else
		for (size_t i = 1; i < vals->n; i++)
			sv_push(argv, vals->v[i]);
	for (size_t i = 0; i < argv->n; i++) {
		char *x = util_expand_tilde(argv->v[i]);

		free(argv->v[i]);
		argv->v[i] = x;
	}
	if (argv->v[0][0] != '/')
		return perr(p, 2, "'%s' must start with an absolute path (no "
		    "shell, no $PATH search)", k->name);
	return 0;
}

static int
set_retry(struct parser *p, struct strvec *vals)
{
	struct config *c = p->cfg;
	long d;

	if (vals->n < 2)
		return perr(p, 1, "'retry' needs at least one duration");
	free(c->retry);
	c->nretry = vals->n - 1;
	c->retry = xcalloc(c->nretry, sizeof(long));
	for (size_t i = 1; i < vals->n; i++) {
		if (config_parse_duration(vals->v[i], &d) < 0 || d < 1)
			return perr(p, i + 1, "'retry' needs durations of at "
			    "least 1s (like 30s, 5m, 1h, 1d)");
		c->retry[i - 1] = d;
	}
	return 0;
}

static int
set_bounce(struct parser *p, struct strvec *vals)
{
	static const struct {
		const char		*word;
		enum bounce_kind	 kind;
	} kinds[] = {
		{ "mda", BOUNCE_MDA }, { "sender", BOUNCE_SENDER },
		{ "none", BOUNCE_NONE },
	};
	struct config *c = p->cfg;
	const char *v = vals->n > 1 ? vals->v[1] : NULL;

	if (v == NULL)
		return perr(p, 1, "'bounce' needs maildir DIR, mda, sender or "
		    "none");
	if (strcmp(v, "maildir") == 0) {
		if (vals->n != 3)
			return perr(p, vals->n < 3 ? 2 : 4, "'bounce maildir' "
			    "needs one directory");
		c->bounce = BOUNCE_MAILDIR;
		free(c->bounce_dir);
		c->bounce_dir = util_expand_tilde(vals->v[2]);
		return 0;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(v, kinds[i].word) != 0)
			continue;
		if (vals->n != 2)
			return perr(p, 3, "'bounce %s' takes no more values",
			    kinds[i].word);
		c->bounce = kinds[i].kind;
		return 0;
	}
	return perr(p, 2, "'bounce' must be maildir DIR, mda, sender or none");
}

/* A domain name: letters, digits, '-' and '.', no empty label. */
static bool
valid_domain(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.' ||
	    strstr(s, "..") != NULL)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.')
			return false;
	return true;
}

/* "alias NAME ADDRESS..." (commas between addresses allowed). */
static int
set_alias(struct parser *p, struct strvec *vals)
{
	struct strvec targets;
	const char *why;
	char *where;
	int rc = 0;

	if (vals->n < 3)
		return perr(p, vals->n < 2 ? 1 : 2, "'alias' needs a name and "
		    "at least one address");
	sv_init(&targets);
	for (size_t i = 2; i < vals->n; i++) {
		char *save = NULL, *w = xstrdup(vals->v[i]);

		for (char *tok = strtok_r(w, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save))
			sv_push(&targets, tok);
		free(w);
	}
	where = xasprintf("%s:%d", p->file, p->line);
	if (alias_add(&p->cfg->aliases, vals->v[1], &targets, where,
	    &why) < 0)
		rc = perr(p, 0, "'alias': %s", why);
	free(where);
	sv_free(&targets);
	return rc;
}

/*
 * keep AGE | keep FOLDER-GLOB AGE, AGE a duration or "forever". A glob's
 * rule wins over the plain one whatever the order; among globs the first
 * that matches wins.
 */
static int
set_keep(struct parser *p, struct strvec *vals)
{
	struct fetch_job *j = p->block;
	const char *age = vals->n > 1 ? vals->v[vals->n - 1] : NULL;
	const char *glob = vals->n == 3 ? vals->v[1] : NULL;
	long d = KEEP_FOREVER;

	if (vals->n < 2 || vals->n > 3)
		return perr(p, vals->n < 2 ? 1 : 4, "'keep' needs AGE or "
		    "FOLDER-GLOB AGE (like 'keep 30d' or 'keep lists.* 120d')");
	if (strcmp(age, "forever") != 0 &&
	    config_parse_duration(age, &d) < 0)
		return perr(p, vals->n, "'keep' needs an age like 30d or 120d, "
		    "or forever");
	for (size_t i = 0; i < j->nkeep; i++)
		if ((glob == NULL) == (j->keep[i].glob == NULL) &&
		    (glob == NULL || strcmp(glob, j->keep[i].glob) == 0))
			return perr(p, vals->n - 1, "'keep' for these folders is "
			    "given twice in the fetch block");
	j->keep = xrealloc(j->keep, (j->nkeep + 1) * sizeof(*j->keep));
	j->keep[j->nkeep].glob = glob != NULL ? xstrdup(glob) : NULL;
	j->keep[j->nkeep].age = d;
	j->nkeep++;
	return 0;
}

static int
set_value(struct parser *p, const struct key *k, size_t off,
    struct strvec *vals)
{
	char *base = p->block;
	const char *v = vals->n > 1 ? vals->v[1] : NULL;
	const char *why;
	long d;

	switch (k->kind) {
	case K_FLAG:
		if (vals->n != 1)
			return perr(p, 2, "'%s' takes no value", k->name);
		*(bool *)(base + off) = true;
		return 0;
	case K_LIST:
		if (vals->n < 2)
			return perr(p, 1, "'%s' needs at least one value",
			    k->name);
		for (size_t i = 1; i < vals->n; i++)
			sv_push((struct strvec *)(base + off), vals->v[i]);
		return 0;
	case K_COMMAND:
		return set_command(p, k, (struct strvec *)(base + off), vals);
	case K_DURLIST:
		return set_retry(p, vals);
	case K_BOUNCE:
		return set_bounce(p, vals);
	case K_ALIAS:
		return set_alias(p, vals);
	case K_KEEP:
		return set_keep(p, vals);
	default:
		break;
	}

	if (need_one(p, k, vals) < 0)
		return -1;

	switch (k->kind) {
	case K_PATH:
	case K_PATH_OR_MORE: {
		char **dst = (char **)(base + off);

		free(*dst);
		*dst = util_expand_tilde(v);
		return 0;
	}
	case K_STR: {
		char **dst = (char **)(base + off);

		if (*v == '\0')
			return perr(p, 2, "'%s' must not be empty", k->name);
		free(*dst);
		*dst = xstrdup(v);
		if (k->scope == SC_IDENTITY && strcmp(k->name, "host") == 0)
			/* its errors (host_port) name its line */
			((struct identity *)base)->host_line = p->line;
		return 0;
	}
	case K_DOMAIN: {
		char **dst = (char **)(base + off);

		if (!valid_domain(v))
			return perr(p, 2, "'%s' must be a domain name (letters, "
			    "digits, '-' and '.')", k->name);
		free(*dst);
		*dst = xstrdup(v);
		return 0;
	}
	case K_ADDR: {
		char **dst = (char **)(base + off);

		if (!valid_address(v))
			return perr(p, 2, "'%s' is not a plain ASCII address",
			    k->name);
		free(*dst);
		*dst = xstrdup(v);
		return 0;
	}
	case K_DURATION:
		if (config_parse_duration(v, &d) < 0)
			return perr(p, 2, "'%s' is not a duration (like 30s, "
			    "5m, 1h, 1d)", k->name);
		*(long *)(base + off) = d;
		return 0;
	case K_SIZE:
		if (config_parse_size(v, (uint64_t *)(base + off)) < 0)
			return perr(p, 2, "'%s' is not a size (like 512k, 50M, "
			    "1G)", k->name);
		return 0;
	case K_PORT: {
		char *end;
		long port = strtol(v, &end, 10);

		if (*v == '\0' || *end != '\0' || port < 1 || port > 65535)
			return perr(p, 2, "'port' must be a number from 1 to "
			    "65535");
		*(int *)(base + off) = (int)port;
		return 0;
	}
	case K_BOOL:
		if (config_parse_bool(v, (bool *)(base + off)) < 0)
			return perr(p, 2, "'%s' must be yes or no", k->name);
		return 0;
	case K_TLS: {
		enum tls_mode *m = (enum tls_mode *)(base + off);

		if (strcmp(v, "starttls") == 0)
			*m = TLS_STARTTLS;
		else if (strcmp(v, "tls") == 0)
			*m = TLS_IMPLICIT;
		else if (strcmp(v, "none") == 0)
			*m = TLS_NONE;
		else
			return perr(p, 2, "'tls' must be starttls, tls or "
			    "none");
		return 0;
	}
	case K_MODE: {
		enum fetch_mode *m = (enum fetch_mode *)(base + off);

		if (strcmp(v, "move") == 0)
			*m = FETCH_MOVE;
		else if (strcmp(v, "copy") == 0)
			*m = FETCH_COPY;
		else
			return perr(p, 2, "'mode' must be move or copy");
		return 0;
	}
	case K_LOG: {
		struct config *c = p->cfg;

		free(c->log_file);
		c->log_file = NULL;
		if (strcmp(v, "syslog") == 0)
			c->log = LOGTO_SYSLOG;
		else if (strcmp(v, "stderr") == 0)
			c->log = LOGTO_STDERR;
		else {
			c->log = LOGTO_FILE;
			c->log_file = util_expand_tilde(v);
			if (c->log_file[0] != '/')
				return perr(p, 2, "'log' must be syslog, "
				    "stderr or an absolute file path");
		}
		return 0;
	}
	case K_SSH:
		if (parse_ssh_target(v, (struct ssh_target *)(base + off),
		    &why) < 0)
			return perr(p, 2, "'ssh' %s", why);
		return 0;
	case K_TLSFP: {
		char **dst = (char **)(base + off);
		char *fp = normalize_tls_fp(v);

		if (fp == NULL)
			return perr(p, 2, "'tls-fingerprint' must be sha256: "
			    "followed by 64 hex digits (colons allowed)");
		free(*dst);
		*dst = fp;
		return 0;
	}
	case K_PROXY:
		if (parse_proxy(v, (struct route *)(base + off), &why) < 0)
			return perr(p, 2, "'proxy' %s", why);
		return 0;
	case K_SOURCE: {
		struct route *r = (struct route *)(base + off);
		unsigned char a[16];

		if (inet_pton(AF_INET, v, a) != 1 &&
		    inet_pton(AF_INET6, v, a) != 1)
			return perr(p, 2, "'source-address' must be an IPv4 or "
			    "IPv6 address of this machine (no host name)");
		free(r->source);
		r->source = xstrdup(v);
		return 0;
	}
	case K_SSHFP: {
		char **dst = (char **)(base + off);

		if (!valid_ssh_fp(v))
			return perr(p, 2, "'ssh-fingerprint' must look like "
			    "SHA256:<base64> as ssh-keygen -lf prints it");
		free(*dst);
		*dst = xstrdup(v);
		return 0;
	}
	default:
		return perr(p, 1, "internal error: key '%s'", k->name);
	}
}

static void
identity_init(struct identity *id, const char *name, int line)
{
	memset(id, 0, sizeof(*id));
	id->name = xstrdup(name);
	id->line = line;
	id->tls = TLS_STARTTLS;
	id->connect_timeout = 10;
	id->timeout = 60;
	sv_init(&id->from);
	sv_init(&id->password_command);
	sv_init(&id->auth);
}

static void
fetch_init(struct fetch_job *j, const char *name, int line)
{
	memset(j, 0, sizeof(*j));
	j->name = xstrdup(name);
	j->line = line;
	j->mode = FETCH_MOVE;
	j->connect_timeout = 10;
	j->timeout = 60;
	sv_init(&j->folders);
	sv_init(&j->take);
	sv_init(&j->after);
	sv_init(&j->mda);
}

static bool
valid_block_name(const char *s)
{
	for (const char *c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' &&
		    *c != '.')
			return false;
	return *s != '\0';
}

static int
open_block(struct parser *p, struct strvec *w)
{
	bool is_id = strcmp(w->v[0], "identity") == 0;

	if (w->n != 2)
		return perr(p, w->n < 2 ? 1 : 3, "'%s' needs one name, like "
		    "'%s work'", is_id ? "identity" : "fetch",
		    is_id ? "identity" : "fetch");
	if (!valid_block_name(w->v[1]))
		return perr(p, 2, "%s name may only have letters, digits, "
		    "'-', '_' and '.'", is_id ? "an identity" : "a fetch");
	if (is_id) {
		struct config *c = p->cfg;

		for (size_t i = 0; i < c->nids; i++)
			if (strcmp(c->ids[i].name, w->v[1]) == 0)
				return perr(p, 2, "this identity name is "
				    "taken already, at line %d",
				    c->ids[i].line);
		c->ids = xrealloc(c->ids, (c->nids + 1) * sizeof(*c->ids));
		identity_init(&c->ids[c->nids], w->v[1], p->line);
		p->block = &c->ids[c->nids++];
		p->scope = SC_IDENTITY;
	} else {
		struct config *c = p->cfg;

		for (size_t i = 0; i < c->njobs; i++)
			if (strcmp(c->jobs[i].name, w->v[1]) == 0)
				return perr(p, 2, "this fetch name is taken "
				    "already, at line %d", c->jobs[i].line);
		c->jobs = xrealloc(c->jobs, (c->njobs + 1) * sizeof(*c->jobs));
		fetch_init(&c->jobs[c->njobs], w->v[1], p->line);
		p->block = &c->jobs[c->njobs++];
		p->scope = SC_FETCH;
	}
	memset(p->seen, 0, sizeof(p->seen));
	return 0;
}

static const char *
scope_name(unsigned scope)
{
	return scope == SC_GLOBAL ? "the global section" :
	    scope == SC_IDENTITY ? "an identity block" : "a fetch block";
}

/*
 * Optimal string alignment distance of a and b (case-insensitive, "_" as
 * "-"), or max + 1 when it must exceed max. Key names are short: words
 * longer than KEY_NAME_MAX bytes are not compared.
 */
#define KEY_NAME_MAX 32

static unsigned char
key_char(char c)
{
	return c == '_' ? '-' : (unsigned char)tolower((unsigned char)c);
}

static size_t
key_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[KEY_NAME_MAX + 1][KEY_NAME_MAX + 1];

	if (la > KEY_NAME_MAX || lb > KEY_NAME_MAX ||
	    (la > lb ? la - lb : lb - la) > max)
		return max + 1;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = key_char(a[i - 1]) != key_char(b[j - 1]);
			size_t v = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 &&
			    key_char(a[i - 1]) == key_char(b[j - 2]) &&
			    key_char(a[i - 2]) == key_char(b[j - 1]) &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb];
}

/*
 * The known key an unknown word was most likely meant to be: within two
 * edits (one for words of four letters or less), else NULL. What is
 * printed is the table's name, never the file's text.
 */
static const char *
near_key(const char *word)
{
	static const char *const blocks[] = { "identity", "fetch" };
	size_t max = strlen(word) <= 4 ? 1 : 2, best = max + 1;
	const char *name = NULL;

	for (size_t i = 0; i < NKEYS + 2; i++) {
		const char *k = i < NKEYS ? keys[i].name : blocks[i - NKEYS];
		size_t dist = key_distance(word, k, max);

		if (dist < best) {
			best = dist;
			name = k;
		}
	}
	return name;
}

static int
parse_line(struct parser *p, const char *line)
{
	struct strvec w;
	const char *why, *near;
	int rc = 0;

	sv_init(&w);
	if (config_split_words(line, &w, &why) < 0) {
		rc = perr(p, w.n + 1, "%s", why);
		goto out;
	}
	if (w.n == 0)
		goto out;
	if (strcmp(w.v[0], "identity") == 0 || strcmp(w.v[0], "fetch") == 0) {
		rc = open_block(p, &w);
		goto out;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		size_t off = k->off;

		if (strcmp(k->name, w.v[0]) != 0)
			continue;
		if (!(k->scope & p->scope) && other_row(k, p->scope))
			continue;	/* "mda": global, and in fetch blocks */
		if (!(k->scope & p->scope)) {
			if (k->scope == SC_GLOBAL)
				rc = perr(p, 1, "'%s' is a global key: put it "
				    "before the first identity or fetch block",
				    k->name);
			else
				rc = perr(p, 1, "'%s' belongs in %s, not in %s",
				    k->name,
				    k->scope == (SC_IDENTITY | SC_FETCH) ?
				    "an identity or fetch block" :
				    k->scope & SC_IDENTITY ? "an identity block"
				    : "a fetch block", scope_name(p->scope));
			goto out;
		}
		if (p->seen[i] && k->kind != K_ALIAS && k->kind != K_KEEP) {
			rc = perr(p, 1, "'%s' is given twice in %s", k->name,
			    scope_name(p->scope));
			goto out;
		}
		p->seen[i] = true;
		if ((k->scope & SC_IDENTITY) && (k->scope & SC_FETCH))
			off = shared_off(k->name, p->scope);
		rc = set_value(p, k, off, &w);
		if (rc == 0 && p->scope == SC_FETCH) {
			struct fetch_job *fj = (struct fetch_job *)p->block;

			if (strcmp(k->name, "take") == 0)
				fj->take_line = p->line;
			else if (strcmp(k->name, "keep") == 0 &&
			    fj->keep_line == 0)
				fj->keep_line = p->line;
			else if (strcmp(k->name, "client") == 0)
				fj->client_line = p->line;
		}
		goto out;
	}
	if ((near = near_key(w.v[0])) != NULL)
		rc = perr(p, 1, "unknown key; did you mean '%s'? "
		    "(postie.conf(5) lists the keys)", near);
	else
		rc = perr(p, 1, "unknown key (postie.conf(5) lists the keys)");
out:
	sv_free(&w);
	return rc;
}

/*
 * host written as ssh and proxy are: "[::1]", "[::1]:2525",
 * "mail.example.org:587" (an unbracketed IPv6 address stays whole). The
 * port in it is the identity's port; with a port line too, they must
 * agree.
 */
static int
host_port(struct parser *p, struct identity *id)
{
	char *h = id->host, *close, *colon = NULL, *end;
	unsigned long port;

	if (h[0] == '[') {
		if ((close = strchr(h, ']')) == NULL || close == h + 1 ||
		    (close[1] != '\0' && close[1] != ':'))
			return perr(p, 0, "host '%s': write an IPv6 address as "
			    "[ADDRESS] or [ADDRESS]:PORT", h);
		colon = close[1] == ':' ? close + 1 : NULL;	/* stays put */
		*close = '\0';
		memmove(h, h + 1, strlen(h + 1) + 1);
	} else if (strchr(h, ']') != NULL) {
		return perr(p, 0, "host '%s': write an IPv6 address as "
		    "[ADDRESS] or [ADDRESS]:PORT", h);
	} else if ((colon = strchr(h, ':')) != NULL &&
	    strchr(colon + 1, ':') != NULL) {
		/* two colons: an IPv6 address without brackets, whole (a
		 * port after one needs them: "::1:25" is ambiguous) */
		struct in6_addr a6;

		if (inet_pton(AF_INET6, h, &a6) != 1)
			return perr(p, 0, "host '%s' is no IPv6 address; with a "
			    "port, write [ADDRESS]:PORT", h);
		return 0;
	}
	if (colon == NULL)
		return 0;
	*colon = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port == 0 ||
	    port > 65535)
		return perr(p, 0, "host: '%s' is no port (1-65535)",
		    colon + 1);
	if (id->port != 0 && id->port != (int)port)
		return perr(p, 0, "host gives port %lu, port %d: keep one",
		    port, id->port);
	id->port = (int)port;
	return 0;
}

/* Reported at the block's line: the name is the file's text. */
static int
check_identity(struct parser *p, struct identity *id, int *default_line)
{
	p->line = id->line;
	if (id->host == NULL)
		return perr(p, 0, "the identity has no 'host'");
	p->line = id->host_line;
	if (host_port(p, id) < 0)
		return -1;
	p->line = id->line;
	if (id->port == 0)
		id->port = id->tls == TLS_IMPLICIT ? 465 :
		    id->tls == TLS_NONE ? 25 : 587;
	if (id->tls_key != NULL && id->tls_cert == NULL)
		return perr(p, 0, "the identity has 'tls-key' without "
		    "'tls-cert'");
	if (id->password != NULL && id->password_command.n > 0)
		return perr(p, 0, "the identity has both 'password' and "
		    "'password-command': keep one");
	if (id->user != NULL && id->password == NULL &&
	    id->password_command.n == 0)
		return perr(p, 0, "the identity has a 'user' but no "
		    "'password' or 'password-command'");
	if ((id->password != NULL || id->password_command.n > 0) &&
	    id->user == NULL)
		return perr(p, 0, "the identity has a password but no 'user'");
	if (id->auth.n > 0 && id->user == NULL)
		return perr(p, 0, "the identity has 'auth' but no 'user'");
	for (size_t i = 0; i < id->auth.n; i++) {
		int m = auth_mech_parse(id->auth.v[i]);

		if (m < 0)
			return perr(p, 0, "auth: postie has no mechanism '%s' "
			    "(PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER)",
			    id->auth.v[i]);
		for (size_t j = 0; j < id->nauth_mechs; j++)
			if (id->auth_mechs[j] == m)
				return perr(p, 0, "auth: '%s' is listed twice",
				    id->auth.v[i]);
		id->auth_mechs[id->nauth_mechs++] = m;
	}
	if (id->user != NULL && id->tls == TLS_NONE && !id->auth_without_tls)
		return perr(p, 0, "the identity would send its password "
		    "without TLS: use tls starttls or tls, or say "
		    "auth-without-tls yes");
	if (id->from.n == 0 && !id->is_default)
		return perr(p, 0, "the identity has neither 'from' nor "
		    "'default': no mail would ever use it");
	if (id->is_default) {
		if (*default_line > 0)
			return perr(p, 0, "the identity is marked 'default', "
			    "as is the one at line %d: keep one",
			    *default_line);
		*default_line = id->line;
	}
	return 0;
}

bool
config_valid_client(const char *s)
{
	size_t n = strlen(s);

	/* no leading '-': "fetch --release -n X" is no release of "-n" */
	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("._-", *s) == NULL)
			return false;
	return true;
}

/* The default client name: the host name up to its first dot, any other
 * byte made '-'. */
static char *
default_client(void)
{
	char host[256] = "";

	if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0' ||
	    host[0] == '.')
		return xstrdup("localhost");
	host[strcspn(host, ".")] = '\0';
	host[64] = '\0';
	for (char *c = host; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
			*c = '-';
	return xstrdup(host);
}

static int
check_fetch(struct parser *p, struct fetch_job *j)
{
	p->line = j->line;
	if (j->ssh.host == NULL)
		return perr(p, 0, "the fetch job has no 'ssh' server");
	if (j->remote == NULL)
		j->remote = xstrdup("Maildir");
	if (j->local == NULL)
		j->local = util_expand_tilde("~/Maildir");
	if (j->folders.n == 0)
		sv_push(&j->folders, "INBOX");
	/* copy mode takes cur/ too unless told; move mode new/ only */
	j->take_cur = j->take.n == 0 && j->mode == FETCH_COPY;
	p->line = j->take_line ? j->take_line : j->line;
	for (size_t i = 0; i < j->take.n; i++) {
		if (strcmp(j->take.v[i], "cur") == 0)
			j->take_cur = true;
		else if (strcmp(j->take.v[i], "new") != 0)
			return perr(p, 0, "'take' must be new, or new cur");
	}
	if (j->take.n > 0 && !sv_contains(&j->take, "new"))
		return perr(p, 0, "'take' must be new, or new cur");
	p->line = j->keep_line ? j->keep_line : j->line;
	if (j->nkeep > 0 && j->mode != FETCH_COPY)
		return perr(p, 0, "'keep' is for 'mode copy': in move mode "
		    "the server's copy goes as soon as it is fetched");
	p->line = j->client_line ? j->client_line : j->line;
	if (j->client == NULL)
		j->client = default_client();
	else if (!config_valid_client(j->client))
		return perr(p, 0, "the fetch job's client name is not "
		    "usable on the server: use letters, digits, '.', '_' and "
		    "'-' (not starting with '.' or '-'), at most 64");
	p->line = j->line;
	return 0;
}

/* The alias lines' chains: a loop is an error at its line. */
static int
check_aliases(struct parser *p)
{
	struct strvec errors;
	int rc = 0;

	sv_init(&errors);
	if (alias_check(&p->cfg->aliases, &errors) > 0)
		rc = err_set(p->e, ERR_CONFIG, "%s", errors.v[0]);
	sv_free(&errors);
	return rc;
}

static struct config *
config_defaults(void)
{
	static const long retry[] = { 60, 300, 900, 3600, 14400 };
	struct config *c = xcalloc(1, sizeof(*c));
	const char *state = getenv("XDG_STATE_HOME");

	if (state != NULL && state[0] == '/')
		c->queue = xasprintf("%s/postie/queue", state);
	else
		c->queue = util_expand_tilde("~/.local/state/postie/queue");
	c->log = LOGTO_SYSLOG;
	c->batch_delay = 5;
	c->nretry = sizeof(retry) / sizeof(retry[0]);
	c->retry = xmalloc(sizeof(retry));
	memcpy(c->retry, retry, sizeof(retry));
	c->lifetime = 5 * 86400;
	c->bounce = BOUNCE_MAILDIR;
	c->bounce_dir = util_expand_tilde("~/Maildir");
	sv_init(&c->mda);
	c->max_size = 50ULL * 1024 * 1024;
	alias_table_init(&c->aliases);
	c->delay_warning = 4 * 3600;
	sv_init(&c->notify_command);
	return c;
}

/* text[0..len) (bytes read from a file: NULs possible) -> a config. */
static struct config *
parse_text(const char *text, size_t len, const char *name, struct err *e)
{
	struct parser p = { .file = name, .e = e, .scope = SC_GLOBAL };
	const char *end = text + len;
	int default_line = 0;
	char *line;

	p.cfg = config_defaults();
	p.cfg->path = xstrdup(name);
	p.block = p.cfg;
	for (const char *s = text; s < end;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);

		p.line++;
		if (n > CONFIG_LINE_MAX) {
			perr(&p, 0, "the line is longer than %d bytes: is this "
			    "a postie config?", CONFIG_LINE_MAX);
			goto fail;
		}
		if (memchr(s, '\0', n) != NULL) {
			perr(&p, 0, "the line has a NUL byte");
			goto fail;
		}
		line = xstrndup(s, n);
		if (parse_line(&p, line) < 0) {
			free(line);
			goto fail;
		}
		free(line);
		s += n + 1;
	}
	for (size_t i = 0; i < p.cfg->nids; i++)
		if (check_identity(&p, &p.cfg->ids[i], &default_line) < 0)
			goto fail;
	for (size_t i = 0; i < p.cfg->njobs; i++)
		if (check_fetch(&p, &p.cfg->jobs[i]) < 0)
			goto fail;
	if (check_aliases(&p) < 0)
		goto fail;
	return p.cfg;
fail:
	config_free(p.cfg);
	return NULL;
}

struct config *
config_parse_string(const char *text, const char *name, struct err *e)
{
	return parse_text(text, strlen(text), name, e);
}

static bool
has_password(const struct config *c)
{
	for (size_t i = 0; i < c->nids; i++)
		if (c->ids[i].password != NULL ||
		    c->ids[i].route.proxy_password != NULL)
			return true;
	for (size_t i = 0; i < c->njobs; i++)
		if (c->jobs[i].route.proxy_password != NULL)
			return true;
	return false;
}

static const char *
file_kind(mode_t mode)
{
	return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" :
	    S_ISCHR(mode) ? "a character device" : S_ISBLK(mode) ?
	    "a block device" : S_ISSOCK(mode) ? "a socket" : "not a file";
}

static int
too_large(const char *path, struct err *e)
{
	return err_set(e, ERR_CONFIG, "%s: the config is larger than 1 MiB: "
	    "is this the right file?", path);
}

/*
 * The whole of the config open on fd into *buf: a regular file that
 * passes the ownership rule (trust.h), at most CONFIG_SIZE_MAX bytes.
 */
static int
read_config(int fd, const char *path, struct strbuf *buf, struct err *e)
{
	struct stat st;
	char chunk[8192];
	ssize_t r;

	if (fstat(fd, &st) < 0)
		return err_set(e, ERR_CONFIG, "%s: cannot check the config "
		    "file: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(e, ERR_CONFIG, "%s: the config is not a regular "
		    "file (it is %s): name a plain file", path,
		    file_kind(st.st_mode));
	if (trust_file(fd, path, e) < 0)
		return -1;
	if (st.st_size > CONFIG_SIZE_MAX)
		return too_large(path, e);
	if (fcntl(fd, F_SETFL, 0) < 0)	/* blocking reads from here */
		return err_set(e, ERR_CONFIG, "%s: %s", path, strerror(errno));
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(e, ERR_CONFIG, "%s: cannot read: %s",
			    path, strerror(errno));
		if (buf->len + (size_t)r > CONFIG_SIZE_MAX)
			break;
		sb_add(buf, chunk, (size_t)r);
	}
	return r != 0 ? too_large(path, e) : 0;	/* r != 0: it grew */
}

struct config *
config_parse_file(const char *path, struct err *e)
{
	struct config *c = NULL;
	struct strbuf buf;
	int fd;

	if (path == NULL)
		return config_defaults();
	/* O_NONBLOCK: a FIFO must not hang the open; read_config refuses it */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		err_set(e, ERR_CONFIG, "%s: cannot open the config file: %s",
		    path, strerror(errno));
		return NULL;
	}
	sb_init(&buf);
	if (read_config(fd, path, &buf, e) == 0)
		c = parse_text(buf.s != NULL ? buf.s : "", buf.len, path, e);
	if (c != NULL && has_password(c)) {
		struct stat st;

		if (fstat(fd, &st) < 0 || (st.st_mode & 077) != 0) {
			err_set(e, ERR_CONFIG, "%s: holds a password but other "
			    "users may read it: run chmod 600 %s, or use "
			    "password-command", path, path);
			config_free(c);
			c = NULL;
		}
	}
	if (buf.s != NULL)
		explicit_bzero(buf.s, buf.cap);	/* may hold a password */
	sb_free(&buf);
	close(fd);
	return c;
}

struct config *
config_load(const char *explicit_path, struct err *e)
{
	const char *env = getenv("POSTIE_CONFIG");
	const char *xdg = getenv("XDG_CONFIG_HOME");
	struct config *c;
	char *path;

	if (explicit_path != NULL)
		return config_parse_file(explicit_path, e);
	if (env != NULL && *env != '\0')
		return config_parse_file(env, e);
	if (xdg != NULL && xdg[0] == '/')
		path = xasprintf("%s/postie/config", xdg);
	else
		path = xasprintf("%s/.config/postie/config", util_home());
	if (access(path, F_OK) == 0) {
		c = config_parse_file(path, e);
		free(path);
		return c;
	}
	free(path);
	if (access("/etc/postie.conf", F_OK) == 0)
		return config_parse_file("/etc/postie.conf", e);
	return config_parse_file(NULL, e);
}

static void
ssh_target_free(struct ssh_target *t)
{
	free(t->user);
	free(t->host);
}

static void
route_free(struct route *r)
{
	free(r->proxy_host);
	free(r->proxy_user);
	if (r->proxy_password != NULL) {
		explicit_bzero(r->proxy_password, strlen(r->proxy_password));
		free(r->proxy_password);
	}
	free(r->source);
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nids; i++) {
		struct identity *id = &c->ids[i];

		free(id->name);
		sv_free(&id->from);
		free(id->host);
		free(id->tls_ca);
		free(id->tls_fingerprint);
		free(id->tls_cert);
		free(id->tls_key);
		free(id->user);
		if (id->password != NULL) {
			explicit_bzero(id->password, strlen(id->password));
			free(id->password);
		}
		sv_free(&id->password_command);
		sv_free(&id->auth);
		free(id->helo);
		free(id->force_sender);
		ssh_target_free(&id->ssh);
		free(id->ssh_key);
		free(id->ssh_known_hosts);
		free(id->ssh_fingerprint);
		route_free(&id->route);
	}
	free(c->ids);
	for (size_t i = 0; i < c->njobs; i++) {
		struct fetch_job *j = &c->jobs[i];

		free(j->name);
		ssh_target_free(&j->ssh);
		free(j->ssh_key);
		free(j->ssh_known_hosts);
		free(j->ssh_fingerprint);
		route_free(&j->route);
		free(j->remote);
		free(j->local);
		free(j->client);
		sv_free(&j->folders);
		sv_free(&j->take);
		sv_free(&j->after);
		free(j->mailboxes);
		sv_free(&j->mda);
		for (size_t k = 0; k < j->nkeep; k++)
			free(j->keep[k].glob);
		free(j->keep);
	}
	free(c->jobs);
	free(c->path);
	free(c->queue);
	free(c->log_file);
	free(c->retry);
	free(c->bounce_dir);
	sv_free(&c->mda);
	free(c->domain);
	alias_table_free(&c->aliases);
	free(c->aliases_file);
	sv_free(&c->notify_command);
	free(c);
}

const struct identity *
config_identity_for(const struct config *cfg, const char *sender)
{
	const struct identity *def = NULL;

	for (size_t i = 0; i < cfg->nids; i++) {
		const struct identity *id = &cfg->ids[i];

		for (size_t j = 0; j < id->from.n; j++)
			if (fnmatch(id->from.v[j], sender, FNM_CASEFOLD) == 0)
				return id;
		if (id->is_default && def == NULL)
			def = id;
	}
	return def;
}

const struct identity *
config_identity_by_name(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nids; i++)
		if (strcmp(cfg->ids[i].name, name) == 0)
			return &cfg->ids[i];
	return NULL;
}

const struct identity *
config_resolve_identity(const struct config *cfg, const char *name,
    const char *sender)
{
	const struct identity *id = NULL;

	if (name != NULL)
		id = config_identity_by_name(cfg, name);
	return id != NULL ? id : config_identity_for(cfg, sender);
}

int
config_load_aliases(struct config *cfg, struct strvec *errors, size_t *nfile,
    struct err *e)
{
	struct alias_table file;
	struct strvec mine;
	struct strvec *errs = errors != NULL ? errors : &mine;
	size_t first;
	int nerr = 0;

	sv_init(&mine);
	first = errs->n;
	alias_table_init(&file);
	if (nfile != NULL)
		*nfile = 0;
	if (cfg->aliases_file != NULL) {
		nerr = alias_load_file(&file, cfg->aliases_file, errs, e);
		if (nerr < 0) {
			alias_table_free(&file);
			sv_free(&mine);
			return -1;
		}
		if (nfile != NULL)
			*nfile = file.n;
	}
	for (size_t i = 0; i < file.notes.n; i++)
		if (cfg->aliases.notes.n < ALIAS_ERRORS_MAX)
			sv_push(&cfg->aliases.notes, file.notes.v[i]);
	for (size_t i = 0; i < file.n; i++) {
		const struct alias *a = &file.v[i];
		const char *why;

		if (alias_find(&cfg->aliases, a->name) != NULL)
			continue;
		if (a->unusable != NULL) {
			if (alias_add_unusable(&cfg->aliases, a->name,
			    a->where, a->unusable, &why) == 0)
				cfg->aliases.v[cfg->aliases.n - 1].broken =
				    a->broken;
		} else
			alias_add(&cfg->aliases, a->name, &a->targets,
			    a->where, &why);
	}
	alias_table_free(&file);
	nerr += alias_check(&cfg->aliases, errs);
	if (nerr > 0)
		err_set(e, ERR_CONFIG, "%s%s", errs->n > first ?
		    errs->v[first] : "the aliases have errors",
		    nerr > 1 ? " (and more: run newaliases to see them)" : "");
	sv_free(&mine);
	return nerr;
}

const char *
config_domain(const struct config *cfg)
{
	return cfg->domain != NULL ? cfg->domain : util_hostname();
}
