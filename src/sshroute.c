/* sshroute.c - postie's ssh settings joined with ssh_config, and the hops. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sshroute.h"

#define SYSTEM_CONFIG	"/etc/ssh/ssh_config"

const char *
sshroute_local_user(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;

	if (u != NULL && *u != '\0')
		return u;
	pw = getpwuid(getuid());
	return pw != NULL ? pw->pw_name : "root";
}

static int
read_config(const struct sshroute_in *in, const char *host, const char *user,
    struct sshcfg *c, struct err *e)
{
	struct sshcfg_ctx x = { host, user, sshroute_local_user(), util_home(),
	    false };
	char *user_file = xasprintf("%s/.ssh/config", util_home());
	const char *defaults[] = { user_file, SYSTEM_CONFIG };
	const char *const *files = in->files != NULL ? in->files : defaults;
	size_t n = in->files != NULL ? in->nfiles : 2;
	int rc = 0;

	sshcfg_init(c);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = sshcfg_read_file(c, &x, files[i], e);
	free(user_file);
	return rc;
}

static void
hop_free(struct ssh_hop *h)
{
	free(h->name);
	free(h->host);
	free(h->user);
	free(h->kh_host);
	sv_free(&h->keys);
	sv_free(&h->known_hosts);
	sv_free(&h->revocations);
	memset(h, 0, sizeof(*h));
}

/*
 * One hop from what was written (name, user or NULL, port or 0) and its
 * ssh_config. jump: a hop before the server (postie's keys are the
 * server's, not the hop's).
 */
/* A file list of ssh_config (UserKnownHostsFile, GlobalKnownHostsFile)
 * with its tokens expanded onto out; "none" names no file. */
static int
expand_files(const struct strvec *files, const struct sshcfg_tokens *t,
    const char *where, const char *option, struct strvec *out,
    struct err *e)
{
	for (size_t i = 0; i < files->n; i++) {
		char *v = sshcfg_expand(files->v[i], t, "dhnpru", true, where,
		    option, e);

		if (v == NULL)
			return -1;
		if (strcasecmp(v, "none") == 0)
			free(v);
		else
			sv_push_owned(out, v);
	}
	return 0;
}

static int
hop_fill(const struct sshroute_in *in, struct ssh_hop *h, const char *name,
    const char *user, int port, bool jump, struct sshcfg *c, struct err *e)
{
	struct sshcfg_tokens t;
	const char *kh = jump ? NULL : in->key;
	char *v;

	memset(h, 0, sizeof(*h));
	sv_init(&h->keys);
	sv_init(&h->known_hosts);
	sv_init(&h->revocations);
	h->name = xstrdup(name);
	if (read_config(in, name, user, c, e) < 0)
		return -1;
	memset(&t, 0, sizeof(t));
	t.home = util_home();
	t.alias = name;
	t.host = name;
	t.local_user = sshroute_local_user();
	h->port = port > 0 ? port : c->port > 0 ? c->port : 22;
	t.port = h->port;
	if (c->hostname != NULL) {
		h->host = sshcfg_expand(c->hostname, &t, "h", false,
		    "ssh_config", "HostName", e);
		if (h->host == NULL)
			return -1;
		if (*h->host == '\0')
			return err_set(e, ERR_CONFIG, "ssh_config gives %s an "
			    "empty HostName", name);
	} else {
		h->host = xstrdup(name);
	}
	t.host = h->host;
	h->user = xstrdup(user != NULL ? user : c->user != NULL ? c->user :
	    t.local_user);
	t.user = h->user;
	if (c->hostkey_alias != NULL) {
		h->kh_host = xstrdup(c->hostkey_alias);
		h->kh_port = 22;	/* ssh looks the alias up bare */
	} else {
		h->kh_host = xstrdup(h->host);
		h->kh_port = h->port;
	}
	if (kh != NULL) {
		h->key_given = h->keys_only = true;
		sv_push(&h->keys, kh);
	} else {
		for (size_t i = 0; i < c->identity_files.n; i++) {
			v = sshcfg_expand(c->identity_files.v[i], &t,
			    "dhnpru", true, c->identity_where.v[i],
			    "IdentityFile", e);
			if (v == NULL)
				return -1;
			sv_push_owned(&h->keys, v);
		}
		h->keys_only = c->identities_only == 1;
	}
	if (in->known_hosts != NULL && (!jump || c->known_hosts.n == 0)) {
		sv_push(&h->known_hosts, in->known_hosts);
	} else if (expand_files(&c->known_hosts, &t, c->known_hosts_where,
	    "UserKnownHostsFile", &h->known_hosts, e) < 0)
		return -1;
	if (h->known_hosts.n == 0)
		sv_push_owned(&h->known_hosts, xasprintf("%s/.ssh/known_hosts",
		    util_home()));
	if (expand_files(&c->global_known_hosts, &t, c->global_where,
	    "GlobalKnownHostsFile", &h->revocations, e) < 0)
		return -1;
	if (c->global_known_hosts.n == 0) {
		sv_push(&h->revocations, "/etc/ssh/ssh_known_hosts");
		sv_push(&h->revocations, "/etc/ssh/ssh_known_hosts2");
	}
	snprintf(h->cert_where, sizeof(h->cert_where), "%s", c->cert_where);
	return 0;
}

static bool
is_none(const char *s)
{
	return s == NULL || strcasecmp(s, "none") == 0;
}

/*
 * Append the hops of a ProxyJump value (written at where) to r. As ssh
 * (which runs "ssh -J REST -W next FIRST"-style children), the first
 * hop's own ProxyJump is followed (its hops go before it), the later
 * hops' own ProxyJump or ProxyCommand are not; a first hop reached only
 * by a ProxyCommand is refused. A loop ends at SSHROUTE_MAX_JUMPS.
 */
static int
add_jumps(const struct sshroute_in *in, struct ssh_route *r,
    const char *spec, const char *where, int depth, struct err *e)
{
	struct sshcfg_hop hops[SSHROUTE_MAX_JUMPS];
	struct ssh_hop first;
	struct sshcfg c;
	char at[SSHCFG_WHERE_MAX];
	size_t nj;
	int rc = -1;

	if (sshcfg_parse_jump(spec, hops, SSHROUTE_MAX_JUMPS, &nj, where,
	    e) < 0)
		return -1;
	if (nj == 0)
		return 0;
	if (hop_fill(in, &first, hops[0].host, hops[0].user, hops[0].port,
	    true, &c, e) < 0)
		goto out;
	if (!is_none(c.proxy_command)) {
		err_set(e, ERR_CONFIG, "%s: ProxyCommand is how ssh reaches "
		    "the jump host %s, and postie runs no command from "
		    "ssh_config: use ProxyJump there", c.proxy_where,
		    hops[0].host);
		goto out;
	}
	if (!is_none(c.proxy_jump)) {
		snprintf(at, sizeof(at), "%s", c.proxy_where);
		if (depth >= SSHROUTE_MAX_JUMPS) {
			err_set(e, ERR_CONFIG, "%s: more than %d jump hosts "
			    "through ProxyJump (a loop?)", at,
			    SSHROUTE_MAX_JUMPS);
			goto out;
		}
		if (add_jumps(in, r, c.proxy_jump, at, depth + 1, e) < 0)
			goto out;
	}
	for (size_t i = 0; i < nj; i++) {
		if (r->n >= SSHROUTE_MAX_JUMPS) {
			err_set(e, ERR_CONFIG, "%s: more than %d jump hosts "
			    "through ProxyJump", where, SSHROUTE_MAX_JUMPS);
			goto out;
		}
		if (i == 0) {
			r->hop[r->n++] = first;
			memset(&first, 0, sizeof(first));
			continue;
		}
		sshcfg_free(&c);
		r->n++;
		if (hop_fill(in, &r->hop[r->n - 1], hops[i].host,
		    hops[i].user, hops[i].port, true, &c, e) < 0)
			goto out;
	}
	rc = 0;
out:
	sshcfg_free(&c);
	hop_free(&first);
	sshcfg_hops_free(hops, nj);
	return rc;
}

int
sshroute_resolve(const struct sshroute_in *in, struct ssh_route *r,
    struct err *e)
{
	const struct ssh_target *tg = in->target;
	struct sshcfg c;
	struct ssh_hop server;
	char at[SSHCFG_WHERE_MAX];
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (hop_fill(in, &server, tg->host, tg->user, tg->port_given ?
	    tg->port : 0, false, &c, e) < 0)
		goto out;
	if (!is_none(c.proxy_command)) {
		err_set(e, ERR_CONFIG, "%s: ProxyCommand is how ssh reaches %s, "
		    "and postie runs no command from ssh_config: use "
		    "ProxyJump there, or a host postie can reach in `ssh`",
		    c.proxy_where, tg->host);
		goto out;
	}
	snprintf(at, sizeof(at), "%s", c.proxy_where);
	if (!is_none(c.proxy_jump) && add_jumps(in, r, c.proxy_jump, at, 0,
	    e) < 0)
		goto out;
	r->hop[r->n++] = server;
	memset(&server, 0, sizeof(server));
	rc = 0;
out:
	sshcfg_free(&c);
	hop_free(&server);	/* zeroed once it is in r */
	if (rc < 0)
		sshroute_free(r);
	return rc;
}

void
sshroute_free(struct ssh_route *r)
{
	for (size_t i = 0; i < r->n; i++)
		hop_free(&r->hop[i]);
	r->n = 0;
}
