/* sshcfg.c - the ssh_config(5) options postie uses, for one host. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sshcfg.h"
#include "trust.h"

#define MAX_WORDS	256

/* One file being parsed. */
struct parse {
	struct sshcfg		*c;
	const struct sshcfg_ctx	*x;
	const char		*file;
	const char		*incdir;	/* NULL: Include not followed */
	int			 line;
	int			 depth;
	bool			 active;	/* the current block applies */
};

static int read_path(struct sshcfg *c, const struct sshcfg_ctx *x,
    const char *path, const char *incdir, int depth, bool *active,
    struct err *e);

void
sshcfg_init(struct sshcfg *c)
{
	memset(c, 0, sizeof(*c));
	sv_init(&c->identity_files);
	sv_init(&c->identity_where);
	sv_init(&c->known_hosts);
	sv_init(&c->global_known_hosts);
	c->identities_only = -1;
}

void
sshcfg_free(struct sshcfg *c)
{
	free(c->hostname);
	free(c->user);
	sv_free(&c->identity_files);
	sv_free(&c->identity_where);
	sv_free(&c->known_hosts);
	sv_free(&c->global_known_hosts);
	free(c->proxy_jump);
	free(c->proxy_command);
	free(c->hostkey_alias);
	sshcfg_init(c);
}

bool
sshcfg_glob(const char *pat, const char *s)
{
	/* iterative, with one backtrack point: linear enough for hostile
	 * patterns (no exponential recursion) */
	const char *star = NULL, *mark = NULL;

	while (*s != '\0') {
		if (*pat == '*') {
			star = pat++;
			mark = s;
		} else if (*pat == '?' || (*pat != '\0' &&
		    tolower((unsigned char)*pat) ==
		    tolower((unsigned char)*s))) {
			pat++;
			s++;
		} else if (star != NULL) {
			pat = star + 1;
			s = ++mark;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

bool
sshcfg_match_list(const char *host, const char *const *pats, size_t n)
{
	bool hit = false;

	for (size_t i = 0; i < n; i++) {
		const char *p = pats[i];
		bool neg = *p == '!';

		if (neg)
			p++;
		if (!sshcfg_glob(p, host))
			continue;
		if (neg)
			return false;	/* a negated match wins */
		hit = true;
	}
	return hit;
}

/* "a,b,!c" matched against host. */
static bool
match_commas(const char *host, const char *list)
{
	struct strvec pats;
	char *copy = xstrdup(list), *save = NULL;
	bool hit;

	sv_init(&pats);
	for (char *p = strtok_r(copy, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save))
		sv_push(&pats, p);
	hit = sshcfg_match_list(host, (const char *const *)pats.v, pats.n);
	sv_free(&pats);
	free(copy);
	return hit;
}

static int
perr(const struct parse *p, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
perr(const struct parse *p, struct err *e, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(e, ERR_CONFIG, "%s:%d: %s", p->file, p->line, msg);
}

static void
where(const struct parse *p, char *out)
{
	snprintf(out, SSHCFG_WHERE_MAX, "%s:%d", p->file, p->line);
}

/* A list of files (the first line that gives the option wins; at most
 * 16 of them) and where it was. */
static int
file_list(const struct parse *p, char *const *w, size_t n,
    const char *option, struct strvec *list, char *at, struct err *e)
{
	if (n == 0)
		return perr(p, e, "%s needs a file", option);
	if (list->n > 0)
		return 0;
	for (size_t i = 0; i < n && i < 16; i++)
		sv_push(list, w[i]);
	where(p, at);
	return 0;
}

/*
 * Split a line (NUL-terminated, no newline) into its keyword and words,
 * in place. 0 with *n == 0 for a blank or comment line.
 */
static int
split(const struct parse *p, char *s, char **words, size_t *n, struct err *e)
{
	*n = 0;
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	/* the keyword ends at white space or '=' */
	words[(*n)++] = s;
	while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '=' &&
	    *s != '\r')
		s++;
	if (*s != '\0') {
		bool eq = *s == '=';

		*s++ = '\0';
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (!eq && *s == '=') {
			s++;
			while (*s == ' ' || *s == '\t' || *s == '\r')
				s++;
		}
	}
	/* the words: white space apart, quotes group, '#' starts a
	 * comment at the start of a word */
	while (*s != '\0') {
		char *out = s, quote = 0;

		if (*s == '#')
			break;
		if (*n >= MAX_WORDS)
			return perr(p, e, "more than %d words on a line",
			    MAX_WORDS);
		words[(*n)++] = out;
		for (; *s != '\0'; s++) {
			if (quote == 0 && (*s == ' ' || *s == '\t' ||
			    *s == '\r'))
				break;
			if (*s == '\\' && (s[1] == '"' || s[1] == '\'' ||
			    s[1] == '\\')) {
				*out++ = *++s;
				continue;
			}
			if (quote == 0 && (*s == '"' || *s == '\'')) {
				quote = *s;
				continue;
			}
			if (quote != 0 && *s == quote) {
				quote = 0;
				continue;
			}
			*out++ = *s;
		}
		if (quote != 0)
			return perr(p, e, "a %c quote is not closed", quote);
		if (*s != '\0')
			s++;
		*out = '\0';
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
	}
	return 0;
}

static bool
criterion_true(const struct parse *p, const char *crit, const char *arg)
{
	const struct sshcfg *c = p->c;
	const char *host = c->hostname != NULL ? c->hostname : p->x->host;
	const char *user = c->user != NULL ? c->user : p->x->user;

	if (strcasecmp(crit, "host") == 0)
		return match_commas(host, arg);
	if (strcasecmp(crit, "originalhost") == 0)
		return match_commas(p->x->host, arg);
	if (strcasecmp(crit, "user") == 0)
		return match_commas(user != NULL ? user : p->x->local_user, arg);
	if (strcasecmp(crit, "localuser") == 0)
		return match_commas(p->x->local_user, arg);
	return false;
}

/* Match CRITERIA: the block applies when every criterion holds. */
static int
do_match(struct parse *p, char **w, size_t n, struct err *e)
{
	bool all = true;

	if (n == 0)
		return perr(p, e, "Match needs criteria (e.g. Match all)");
	for (size_t i = 0; i < n; i++) {
		const char *crit = w[i];
		bool neg = *crit == '!', hit;

		if (neg)
			crit++;
		if (strcasecmp(crit, "all") == 0) {
			hit = true;
		} else if (strcasecmp(crit, "canonical") == 0 ||
		    strcasecmp(crit, "final") == 0) {
			hit = false;	/* postie makes no second pass */
		} else {
			if (i + 1 >= n)
				return perr(p, e, "Match %s needs an argument",
				    crit);
			hit = criterion_true(p, crit, w[++i]);
		}
		if (neg)
			hit = !hit;
		/* criteria postie cannot evaluate (exec, localnetwork,
		 * tagged, ...) fail: the block does not apply */
		if (!hit)
			all = false;
	}
	p->active = all;
	return 0;
}

static int
do_include(struct parse *p, char **w, size_t n, struct err *e)
{
	if (n == 0)
		return perr(p, e, "Include needs a file name");
	if (p->incdir == NULL)
		return 0;
	if (p->depth + 1 > SSHCFG_MAX_DEPTH)
		return perr(p, e, "Include nested more than %d deep",
		    SSHCFG_MAX_DEPTH);
	for (size_t i = 0; i < n; i++) {
		char *pat;
		glob_t g;
		int rc;

		if (w[i][0] == '~' && (w[i][1] == '/' || w[i][1] == '\0'))
			pat = xasprintf("%s%s", p->x->home, w[i] + 1);
		else if (w[i][0] == '/')
			pat = xstrdup(w[i]);
		else
			pat = xasprintf("%s/%s", p->incdir, w[i]);
		rc = glob(pat, 0, NULL, &g);
		free(pat);
		if (rc == GLOB_NOMATCH)
			continue;
		if (rc != 0)
			return perr(p, e, "Include %s: cannot expand it", w[i]);
		for (size_t k = 0; k < g.gl_pathc; k++) {
			bool active = p->active;

			/* the included file's Host lines end at its end */
			if (read_path(p->c, p->x, g.gl_pathv[k], p->incdir,
			    p->depth + 1, &active, e) < 0) {
				globfree(&g);
				return -1;
			}
		}
		globfree(&g);
	}
	return 0;
}

static bool
first_str(char **slot, const char *v)
{
	if (*slot != NULL)
		return false;
	*slot = xstrdup(v);
	return true;
}

/* One keyword with its words; inactive blocks are only checked for
 * structure. */
static int
keyword(struct parse *p, const char *kw, char **w, size_t n, struct err *e)
{
	struct sshcfg *c = p->c;

	if (strcasecmp(kw, "host") == 0) {
		if (n == 0)
			return perr(p, e, "Host needs a pattern");
		p->active = sshcfg_match_list(p->x->host,
		    (const char *const *)w, n);
		return 0;
	}
	if (strcasecmp(kw, "match") == 0)
		return do_match(p, w, n, e);
	if (strcasecmp(kw, "include") == 0)
		return p->active ? do_include(p, w, n, e) : 0;
	if (!p->active)
		return 0;
	if (strcasecmp(kw, "hostname") == 0 || strcasecmp(kw, "user") == 0 ||
	    strcasecmp(kw, "hostkeyalias") == 0) {
		if (n != 1)
			return perr(p, e, "%s needs one value", kw);
		first_str(strcasecmp(kw, "hostname") == 0 ? &c->hostname :
		    strcasecmp(kw, "user") == 0 ? &c->user :
		    &c->hostkey_alias, w[0]);
		return 0;
	}
	if (strcasecmp(kw, "port") == 0) {
		char *end;
		long port;

		if (n != 1)
			return perr(p, e, "Port needs one value");
		errno = 0;
		port = strtol(w[0], &end, 10);
		if (*w[0] == '\0' || *end != '\0' || errno != 0 || port < 1 ||
		    port > 65535)
			return perr(p, e, "Port %.40s is not a number from 1 "
			    "to 65535", w[0]);
		if (c->port == 0)
			c->port = (int)port;
		return 0;
	}
	if (strcasecmp(kw, "identityfile") == 0) {
		char at[SSHCFG_WHERE_MAX];

		if (n != 1)
			return perr(p, e, "IdentityFile needs one value");
		if (c->identity_files.n >= 100)
			return perr(p, e, "more than 100 IdentityFile lines");
		where(p, at);
		sv_push(&c->identity_files, w[0]);
		sv_push(&c->identity_where, at);
		return 0;
	}
	if (strcasecmp(kw, "userknownhostsfile") == 0)
		return file_list(p, w, n, "UserKnownHostsFile", &c->known_hosts,
		    c->known_hosts_where, e);
	/* read for its @revoked lines only (knownmark.h) */
	if (strcasecmp(kw, "globalknownhostsfile") == 0)
		return file_list(p, w, n, "GlobalKnownHostsFile",
		    &c->global_known_hosts, c->global_where, e);
	if (strcasecmp(kw, "identitiesonly") == 0) {
		if (n != 1 || (strcasecmp(w[0], "yes") != 0 &&
		    strcasecmp(w[0], "no") != 0))
			return perr(p, e, "IdentitiesOnly must be yes or no");
		if (c->identities_only < 0)
			c->identities_only = strcasecmp(w[0], "yes") == 0;
		return 0;
	}
	if (strcasecmp(kw, "proxyjump") == 0 ||
	    strcasecmp(kw, "proxycommand") == 0) {
		struct strbuf sb;
		bool jump = strcasecmp(kw, "proxyjump") == 0;

		if (n == 0)
			return perr(p, e, "%s needs a value", kw);
		/* ssh: the first of ProxyJump and ProxyCommand wins */
		if (c->proxy_jump != NULL || c->proxy_command != NULL)
			return 0;
		if (jump && n != 1)
			return perr(p, e, "ProxyJump takes one value: hops "
			    "apart by commas");
		sb_init(&sb);
		for (size_t i = 0; i < n; i++)
			sb_addf(&sb, "%s%s", i ? " " : "", w[i]);
		if (jump)
			c->proxy_jump = sb_steal(&sb);
		else
			c->proxy_command = sb_steal(&sb);
		sb_free(&sb);
		where(p, c->proxy_where);
		return 0;
	}
	if (strcasecmp(kw, "certificatefile") == 0) {
		if (c->cert_where[0] == '\0')
			where(p, c->cert_where);
		return 0;
	}
	return 0;	/* an option postie does not use */
}

static int
parse_text(struct parse *p, const char *text, size_t len, struct err *e)
{
	char *line = xmalloc(SSHCFG_MAX_LINE + 1);
	char **words = xcalloc(MAX_WORDS + 1, sizeof(*words));
	size_t off = 0;
	int rc = 0;

	if (len > SSHCFG_MAX_FILE) {
		p->line = 0;
		rc = perr(p, e, "longer than %d bytes", SSHCFG_MAX_FILE);
		goto out;
	}
	if (memchr(text, '\0', len) != NULL) {
		p->line = 0;
		rc = perr(p, e, "holds a NUL byte: not a text file");
		goto out;
	}
	p->line = 0;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t l = nl ? (size_t)(nl - (text + off)) : len - off;
		size_t n;

		p->line++;
		if (l > SSHCFG_MAX_LINE) {
			rc = perr(p, e, "line longer than %d bytes",
			    SSHCFG_MAX_LINE);
			goto out;
		}
		memcpy(line, text + off, l);
		line[l] = '\0';
		off += l + (nl ? 1 : 0);
		if (split(p, line, words, &n, e) < 0 ||
		    (n > 0 && keyword(p, words[0], words + 1, n - 1, e) < 0)) {
			rc = -1;
			goto out;
		}
	}
out:
	free(words);
	free(line);
	return rc;
}

static int
read_path(struct sshcfg *c, const struct sshcfg_ctx *x, const char *path,
    const char *incdir, int depth, bool *active, struct err *e)
{
	struct parse p = { c, x, path, incdir, 0, depth, *active };
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd, rc;

	if (++c->files > SSHCFG_MAX_FILES)
		return err_set(e, ERR_CONFIG, "%s: more than %d ssh_config "
		    "files through Include", path, SSHCFG_MAX_FILES);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set(e, ERR_CONFIG, "cannot read %s: %s", path,
		    strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ERR_CONFIG, "%s is not a regular file",
		    path);
	}
	if (trust_file(fd, path, e) < 0) {
		close(fd);
		return -1;
	}
	if (st.st_size > SSHCFG_MAX_FILE) {
		close(fd);
		return err_set(e, ERR_CONFIG, "%s is longer than %d bytes: "
		    "not read", path, SSHCFG_MAX_FILE);
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(e, ERR_CONFIG, "cannot read %s: %s", path,
			    strerror(errno));
			free(buf);
			close(fd);
			return rc;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	rc = parse_text(&p, buf, len, e);
	free(buf);
	*active = p.active;
	return rc;
}

int
sshcfg_read_file(struct sshcfg *c, const struct sshcfg_ctx *x,
    const char *path, struct err *e)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	bool active = true;	/* before any Host line, everything applies */
	int rc;

	if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, strlen(dir) + 1, ".");
	rc = read_path(c, x, path, x->no_include ? NULL : dir, 0, &active,
	    e);
	free(dir);
	return rc;
}

int
sshcfg_parse(struct sshcfg *c, const struct sshcfg_ctx *x, const char *text,
    size_t len, const char *file, struct err *e)
{
	struct parse p = { c, x, file, NULL, 0, 0, true };

	return parse_text(&p, text, len, e);
}

char *
sshcfg_expand(const char *s, const struct sshcfg_tokens *t,
    const char *allowed, bool tilde, const char *at, const char *kw,
    struct err *e)
{
	struct strbuf sb;

	sb_init(&sb);
	if (tilde && s[0] == '~') {
		if (s[1] != '\0' && s[1] != '/') {
			err_set(e, ERR_CONFIG, "%s: %s %.100s: ~user is not "
			    "supported; write the path out", at, kw, s);
			sb_free(&sb);
			return NULL;
		}
		sb_adds(&sb, t->home);
		s++;
	}
	for (; *s != '\0'; s++) {
		char tok;

		if (*s != '%') {
			sb_addc(&sb, *s);
			continue;
		}
		tok = s[1];
		if (tok == '%') {
			sb_addc(&sb, '%');
			s++;
			continue;
		}
		if (tok == '\0' || strchr(allowed, tok) == NULL) {
			err_set(e, ERR_CONFIG, "%s: %s: %s%c is not a token "
			    "postie expands there", at, kw, tok ? "%" : "a "
			    "lone %", tok ? tok : ' ');
			sb_free(&sb);
			return NULL;
		}
		switch (tok) {
		case 'd': sb_adds(&sb, t->home); break;
		case 'h': sb_adds(&sb, t->host); break;
		case 'n': sb_adds(&sb, t->alias); break;
		case 'r': sb_adds(&sb, t->user); break;
		case 'u': sb_adds(&sb, t->local_user); break;
		case 'p': sb_addf(&sb, "%d", t->port); break;
		default: break;
		}
		s++;
	}
	return sb_steal(&sb);
}

static int
parse_hop(const char *s, struct sshcfg_hop *h, const char *at,
    struct err *e)
{
	const char *host, *colon = NULL, *atsign;
	char *end;

	memset(h, 0, sizeof(*h));
	if (strncasecmp(s, "ssh://", 6) == 0)
		s += 6;
	atsign = strrchr(s, '@');
	host = atsign ? atsign + 1 : s;
	if (atsign == s)
		goto bad;
	if (*host == '[') {
		const char *close = strchr(host, ']');

		if (close == NULL || close == host + 1 ||
		    (close[1] != '\0' && close[1] != ':'))
			goto bad;
		h->host = xstrndup(host + 1, (size_t)(close - host - 1));
		if (close[1] == ':')
			colon = close + 1;
	} else {
		colon = strchr(host, ':');
		h->host = colon ? xstrndup(host, (size_t)(colon - host)) :
		    xstrdup(host);
	}
	if (*h->host == '\0')
		goto bad;
	for (const char *q = h->host; *q; q++)
		if (!isalnum((unsigned char)*q) && strchr("-._:%", *q) == NULL)
			goto bad;
	if (colon != NULL) {
		long port;

		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end != '\0' || errno != 0 ||
		    port < 1 || port > 65535)
			goto bad;
		h->port = (int)port;
	}
	if (atsign != NULL)
		h->user = xstrndup(s, (size_t)(atsign - s));
	return 0;
bad:
	free(h->host);
	h->host = NULL;
	return err_set(e, ERR_CONFIG, "%s: ProxyJump hop %.100s is not "
	    "[user@]host[:port]", at, s);
}

int
sshcfg_parse_jump(const char *s, struct sshcfg_hop *hops, size_t max,
    size_t *n, const char *at, struct err *e)
{
	char *copy, *save = NULL;
	int rc = 0;

	*n = 0;
	if (strcasecmp(s, "none") == 0)
		return 0;
	if (*s == '\0' || s[strlen(s) - 1] == ',' || *s == ',' ||
	    strstr(s, ",,") != NULL)
		return err_set(e, ERR_CONFIG, "%s: ProxyJump %.100s has an "
		    "empty hop", at, s);
	copy = xstrdup(s);
	for (char *p = strtok_r(copy, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save)) {
		if (*n >= max) {
			rc = err_set(e, ERR_CONFIG, "%s: ProxyJump has more "
			    "than %zu hops", at, max);
			break;
		}
		if (parse_hop(p, &hops[*n], at, e) < 0) {
			rc = -1;
			break;
		}
		(*n)++;
	}
	free(copy);
	if (rc < 0) {
		sshcfg_hops_free(hops, *n);
		*n = 0;
	}
	return rc;
}

void
sshcfg_hops_free(struct sshcfg_hop *hops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(hops[i].user);
		free(hops[i].host);
		hops[i].user = hops[i].host = NULL;
	}
}
