/* sshconn.c - one verified, authenticated SSH session (libssh2). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dial.h"
#include "auth.h"
#include "knownmark.h"
#include "sshconn.h"
#include "sshjump.h"
#include "sshroute.h"
#include "util.h"

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

static void
ssh_init(void)
{
	ssh_init_rc = libssh2_init(0);
}

/* A server's host key types, as libssh2 and known_hosts name them. */
static const struct keytype {
	int		 hostkey;	/* LIBSSH2_HOSTKEY_TYPE_* */
	int		 known;		/* LIBSSH2_KNOWNHOST_KEY_* */
	const char	*name;		/* the method name */
} keytypes[] = {
	/* OpenSSH's own order of preference */
	{ LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519,
	    "ssh-ed25519" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256,
	    "ecdsa-sha2-nistp256" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384,
	    "ecdsa-sha2-nistp384" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521,
	    "ecdsa-sha2-nistp521" },
	{ LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa" },
};
#define NKEYTYPES (sizeof(keytypes) / sizeof(keytypes[0]))
#define DEFAULT_PREFS	"ssh-ed25519,ecdsa-sha2-nistp256," \
			"ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,ssh-rsa"

static void
trace(const struct ssh_params *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
trace(const struct ssh_params *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ssh: ", p->prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

const char *
sshconn_errmsg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;

	if (s == NULL || libssh2_session_last_error(s, &msg, NULL, 0) == 0 ||
	    msg == NULL || *msg == '\0')
		return "the connection failed";
	return msg;
}

bool
sshconn_link_failed(LIBSSH2_SESSION *s)
{
	switch (s != NULL ? libssh2_session_last_errno(s) : 0) {
	case LIBSSH2_ERROR_SOCKET_NONE:
	case LIBSSH2_ERROR_BANNER_RECV:
	case LIBSSH2_ERROR_BANNER_SEND:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_TIMEOUT:
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
	case LIBSSH2_ERROR_SOCKET_TIMEOUT:
	case LIBSSH2_ERROR_SOCKET_RECV:
	case LIBSSH2_ERROR_EAGAIN:
		return true;
	default:
		return false;
	}
}

enum err_code
sshconn_class(LIBSSH2_SESSION *s, enum err_code refusal)
{
	return sshconn_link_failed(s) ? ERR_TEMPFAIL : refusal;
}

void
sshconn_fp_format(const unsigned char hash[32], char *out, size_t len)
{
	unsigned char b64[64];
	int n = EVP_EncodeBlock(b64, hash, 32);

	while (n > 0 && b64[n - 1] == '=')
		n--;
	snprintf(out, len, "SHA256:%.*s", n, (const char *)b64);
}

static const char *
user_of(const struct ssh_target *t)
{
	const char *u = t->user;
	struct passwd *pw;

	if (u != NULL)
		return u;
	if ((u = getenv("USER")) != NULL && *u != '\0')
		return u;
	pw = getpwuid(getuid());
	return pw != NULL ? pw->pw_name : "root";
}

/*
 * The host key types known_hosts holds for this host, in OpenSSH's order,
 * as a method preference list ("" when none). libssh2 prefers ECDSA by
 * default, so a host recorded with its Ed25519 key only would otherwise
 * never match. A dummy key of each type reads MISMATCH exactly when the
 * file has an entry of that type for the host (hashed names included).
 */
static void
known_types(LIBSSH2_KNOWNHOSTS *kh, const char *host, int port, char *out,
    size_t len)
{
	static const char dummy[] = "postie";
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NKEYTYPES; i++) {
		struct libssh2_knownhost *ent;
		int rc = libssh2_knownhost_checkp(kh, host, port, dummy,
		    sizeof(dummy) - 1, LIBSSH2_KNOWNHOST_TYPE_PLAIN |
		    LIBSSH2_KNOWNHOST_KEYENC_RAW | keytypes[i].known, &ent);

		if (rc != LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
			continue;
		n += (size_t)snprintf(out + n, len - n, "%s%s", n ? "," : "",
		    keytypes[i].name);
		if (n >= len) {
			out[len - 1] = '\0';
			return;
		}
	}
}

/* The known_hosts files, for messages: "a" or "a and b". */
static char *
known_hosts_path(const struct ssh_hop *h)
{
	struct strbuf sb;

	sb_init(&sb);
	for (size_t i = 0; i < h->known_hosts.n; i++)
		sb_addf(&sb, "%s%s", i ? " and " : "", h->known_hosts.v[i]);
	return sb_steal(&sb);
}

/* Load the known_hosts files together; *kh NULL when none exists. */
static int
load_known(LIBSSH2_SESSION *s, const struct ssh_hop *h,
    LIBSSH2_KNOWNHOSTS **kh, struct err *e)
{
	*kh = NULL;
	for (size_t i = 0; i < h->known_hosts.n; i++) {
		const char *path = h->known_hosts.v[i];

		if (access(path, F_OK) != 0)
			continue;
		if (*kh == NULL && (*kh = libssh2_knownhost_init(s)) == NULL)
			return err_set(e, ERR_SOFTWARE, "cannot set up known "
			    "hosts");
		if (libssh2_knownhost_readfile(*kh, path,
		    LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
			libssh2_knownhost_free(*kh);
			*kh = NULL;
			return err_set(e, ERR_CONFIG, "cannot read %s: %s",
			    path, access(path, R_OK) != 0 ? strerror(errno) :
			    "not a known_hosts file");
		}
	}
	return 0;
}

/* The key against ssh-fingerprint or the known_hosts files. */
static int
check_listed(const struct ssh_params *p, const struct ssh_hop *h,
    struct sshconn *c, LIBSSH2_KNOWNHOSTS *kh, const char *khpath,
    const char *key, size_t klen, int known, const struct known_marks *marks,
    const char *pin, struct err *e)
{
	const struct ssh_target *t = p->target;
	struct libssh2_knownhost *ent;
	char note[200] = "";

	if (marks->cert_authority > 0)
		snprintf(note, sizeof(note), " (its @cert-authority line%s "
		    "trust%s host certificates, which postie does not check: "
		    "list the host's own key)", marks->cert_authority > 1 ?
		    "s" : "", marks->cert_authority > 1 ? "" : "s");
	if (p->fingerprint != NULL) {
		if (strcmp(p->fingerprint, c->fp) != 0)
			return err_set(e, ERR_PROTOCOL, "the SSH host key of %s "
			    "(%s %s) does not match ssh-fingerprint %s: "
			    "refusing it", t->host, c->keytype, c->fp,
			    p->fingerprint);
		trace(p, "host key %s %s matches ssh-fingerprint",
		    c->keytype, c->fp);
		return 0;
	}
	if (kh == NULL)
		return err_set(e, ERR_PROTOCOL, "the SSH host key of %s (%s "
		    "%s) cannot be checked: there is no %s; add the server's "
		    "key to it (ssh-keyscan -p %d %s) after checking it%s",
		    t->host, c->keytype, c->fp, khpath, t->port, t->host, pin);
	switch (known == 0 ? LIBSSH2_KNOWNHOST_CHECK_NOTFOUND :
	    libssh2_knownhost_checkp(kh, h->kh_host, h->kh_port, key, klen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    known, &ent)) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		trace(p, "host key %s %s found in %s", c->keytype, c->fp,
		    khpath);
		return 0;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		return err_set(e, ERR_PROTOCOL, "the SSH host key of %s has "
		    "CHANGED: the server sent %s %s, which is not the key "
		    "%s holds for it; refusing it (someone may be "
		    "intercepting the connection; if the key really changed, "
		    "fix %s)", t->host, c->keytype, c->fp, khpath, khpath);
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		return err_set(e, ERR_PROTOCOL, "the SSH host key of %s (%s "
		    "%s) is not in %s%s; refusing it: check the fingerprint "
		    "and add the key (ssh-keyscan -p %d %s)%s", t->host,
		    c->keytype, c->fp, khpath, note, t->port, t->host, pin);
	default:
		return err_set(e, ERR_SOFTWARE, "cannot check the SSH host key "
		    "of %s against %s", t->host, khpath);
	}
}

static int
check_host_key(const struct ssh_params *p, const struct ssh_hop *h,
    bool last, struct sshconn *c, LIBSSH2_KNOWNHOSTS *kh, const char *khpath,
    struct err *e)
{
	/* ssh-fingerprint pins the server, not a jump host */
	const char *pin = last ? ", or set ssh-fingerprint" : "";
	const struct ssh_target *t = p->target;
	size_t klen;
	int ktype;
	const char *key = libssh2_session_hostkey(c->s, &klen, &ktype);
	const char *hash = libssh2_hostkey_hash(c->s,
	    LIBSSH2_HOSTKEY_HASH_SHA256);
	int known = 0, rc;
	struct known_marks marks = { .revoked = false };

	if (key == NULL || hash == NULL)
		return err_set(e, ERR_PROTOCOL, "SSH server %s sent no host "
		    "key", t->host);
	sshconn_fp_format((const unsigned char *)hash, c->fp, sizeof(c->fp));
	snprintf(c->keytype, sizeof(c->keytype), "unknown key type");
	for (size_t i = 0; i < NKEYTYPES; i++)
		if (keytypes[i].hostkey == ktype) {
			known = keytypes[i].known;
			snprintf(c->keytype, sizeof(c->keytype), "%s",
			    keytypes[i].name);
		}
	/* @revoked lines (libssh2 skips them): a revoked key is never
	 * taken, pinned or listed for the host on another line */
	for (size_t i = 0; i < h->known_hosts.n + h->revocations.n &&
	    !marks.revoked; i++) {
		/* then the machine's files (an administrator's revocation):
		 * their @revoked lines alone, not their keys */
		bool global = i >= h->known_hosts.n;
		const char *path = global ? h->revocations.v[i -
		    h->known_hosts.n] : h->known_hosts.v[i];
		struct known_marks got = { .revoked = false };

		if (knownmark_file(path, (const unsigned char *)key, klen,
		    global ? &got : &marks) < 0) {
			int saved = errno;

			knownmark_free(&marks);
			knownmark_free(&got);
			/* a revocation there would be missed (a confined
			 * fetch may read only where it keeps its files) */
			return err_set(e, ERR_CONFIG, "cannot read %s for its "
			    "@revoked lines: %s; refusing the SSH host key of "
			    "%s (make it readable, or move it under /etc/ssh "
			    "or ~/.ssh)", path, strerror(saved), t->host);
		}
		if (got.revoked) {
			knownmark_free(&marks);
			marks = got;
		} else
			knownmark_free(&got);
	}
	if (marks.revoked) {
		rc = err_set(e, ERR_PROTOCOL, "the SSH host key of %s (%s %s) "
		    "is marked @revoked in %s line %zu: refusing it (the "
		    "server must get a new key; ask its administrator)",
		    t->host, c->keytype, c->fp, marks.revoked_file,
		    marks.revoked_line);
		knownmark_free(&marks);
		return rc;
	}
	rc = check_listed(p, h, c, kh, khpath, key, klen, known, &marks,
	    pin, e);
	knownmark_free(&marks);
	return rc;
}

long
sshconn_left_ms(const struct sshconn *c)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(c->end.tv_sec - now.tv_sec) * 1000 +
	    (c->end.tv_nsec - now.tv_nsec) / 1000000;
}

/* The next blocking call gets what is left of the opening (libssh2
 * bounds a call from its own start); false when nothing is left. */
static bool
budget(struct sshconn *c)
{
	long ms = sshconn_left_ms(c);

	if (ms <= 0)
		return false;
	libssh2_session_set_timeout(c->s, ms);
	return true;
}

/* Did the call that just failed run out of the opening's time? */
static bool
timed_out(const struct sshconn *c)
{
	return libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_TIMEOUT ||
	    sshconn_left_ms(c) <= 0;
}

int
sshconn_wait(const struct sshconn *c, long left_ms)
{
	struct pollfd pfd;
	int dirs = libssh2_session_block_directions(c->s);

	pfd.fd = c->fd;
	pfd.events = 0;
	if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
		pfd.events |= POLLIN;
	if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		pfd.events |= POLLOUT;
	if (pfd.events == 0)
		pfd.events = POLLIN;
	util_quickack(c->fd, NULL);	/* (a jump hop's pair: no TCP) */
	if (poll(&pfd, 1, left_ms > 1000 ? 1000 : (int)left_ms) < 0 &&
	    errno != EINTR)
		return -1;
	return 0;
}

int
sshconn_late(const struct sshconn *c, const char *host, const char *what,
    struct err *e)
{
	return err_set(e, ERR_TEMPFAIL, "SSH server %s: nothing came within "
	    "%ld s of the connection (timeout) while waiting for %s; try "
	    "again later", host, c->timeout, what);
}

/* The key blob of an OpenSSH public key file ("TYPE BASE64 comment"),
 * malloc'd; NULL if there is none to read. */
static unsigned char *
pub_blob(const char *path, size_t *len)
{
	char *pub = xasprintf("%s.pub", path), line[16384], *b64, *end;
	FILE *f = fopen(pub, "re");
	unsigned char *blob = NULL;

	free(pub);
	if (f == NULL)
		return NULL;
	if (fgets(line, sizeof(line), f) != NULL &&
	    (b64 = strpbrk(line, " \t")) != NULL) {
		b64 += strspn(b64, " \t");
		end = b64 + strcspn(b64, " \t\r\n");
		blob = auth_b64_decode(b64, (size_t)(end - b64), len);
	}
	fclose(f);
	return blob;
}

/*
 * Log in with the agent's keys: first those whose public key is beside
 * a key file of the hop (KEY.pub: an ssh-key, IdentityFile or the
 * defaults), as OpenSSH does, so a server's MaxAuthTries is not spent on
 * the agent's other keys and an encrypted key file works through the
 * agent holding it; then, unless only, the others.
 */
static bool
auth_agent(const struct ssh_params *p, struct sshconn *c, const char *user,
    const struct strvec *files, bool only)
{
	LIBSSH2_AGENT *agent;
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	unsigned char **blobs;
	size_t *lens, nblobs = 0;
	bool ok = false;

	if (getenv("SSH_AUTH_SOCK") == NULL)
		return false;
	agent = libssh2_agent_init(c->s);
	if (agent == NULL)
		return false;
	blobs = xcalloc(files->n + 1, sizeof(*blobs));
	lens = xcalloc(files->n + 1, sizeof(*lens));
	for (size_t i = 0; i < files->n; i++)
		if ((blobs[nblobs] = pub_blob(files->v[i], &lens[nblobs])) !=
		    NULL)
			nblobs++;
	if (libssh2_agent_connect(agent) == 0 &&
	    libssh2_agent_list_identities(agent) == 0) {
		/* pass 0: the keys beside key files; pass 1: the rest */
		for (int pass = 0; pass < (only ? 1 : 2) && !ok; pass++) {
			prev = NULL;
			while (!ok && budget(c) && libssh2_agent_get_identity(
			    agent, &id, prev) == 0) {
				bool mine = false;

				for (size_t i = 0; i < nblobs && !mine; i++)
					mine = id->blob_len == lens[i] &&
					    memcmp(id->blob, blobs[i],
					    lens[i]) == 0;
				if (mine == (pass == 0) &&
				    libssh2_agent_userauth(agent, user,
				    id) == 0) {
					ok = true;
					trace(p, "authenticated as %s with the "
					    "agent's key %s", user, id->comment ?
					    id->comment : "");
				}
				prev = id;
			}
		}
	}
	libssh2_agent_disconnect(agent);
	libssh2_agent_free(agent);
	for (size_t i = 0; i < nblobs; i++)
		free(blobs[i]);
	free(blobs);
	free(lens);
	return ok;
}

static bool
auth_file(const struct ssh_params *p, struct sshconn *c, const char *user,
    const char *path)
{
	if (!budget(c) || libssh2_userauth_publickey_fromfile_ex(c->s, user,
	    (unsigned int)strlen(user), NULL, path, NULL) != 0)
		return false;
	trace(p, "authenticated as %s with %s", user, path);
	return true;
}

/* What the hop's configuration adds to a refusal. */
static const char *
cert_note(const struct ssh_hop *h, char *buf, size_t len)
{
	if (h->cert_where[0] == '\0')
		return "";
	snprintf(buf, len, "; %s gives a CertificateFile, which postie "
	    "does not offer (it offers plain keys)", h->cert_where);
	return buf;
}

static int
authenticate(const struct ssh_params *p, const struct ssh_hop *h,
    struct sshconn *c, struct err *e)
{
	char note[SSHCFG_WHERE_MAX + 100], refused[300] = "";
	const char *user = user_of(p->target);
	const char *methods;
	enum err_code refused_code = ERR_NOPERM;
	bool unreadable = false;
	struct strbuf tried;
	int rc;

	/*
	 * With ssh-key the key is offered at once, without asking for the
	 * methods first (the "none" request: a round trip); the methods are
	 * asked only to say why the key was refused.
	 */
	if (h->key_given) {
		/* the agent holding this key first: it may be encrypted */
		if (auth_agent(p, c, user, &h->keys, true))
			return 0;
		if (auth_file(p, c, user, h->keys.v[0]))
			return 0;
		if (timed_out(c))
			return sshconn_late(c, p->target->host, "the answer to "
			    "the login with ssh-key", e);
		if (sshconn_link_failed(c->s))
			return err_set(e, ERR_TEMPFAIL, "SSH server %s: %s",
			    p->target->host, sshconn_errmsg(c->s));
		refused_code = sshconn_class(c->s, ERR_NOPERM);
		snprintf(refused, sizeof(refused), "%s", sshconn_errmsg(c->s));
		/* the key file itself could not be used (encrypted, say) */
		unreadable = libssh2_session_last_errno(c->s) ==
		    LIBSSH2_ERROR_FILE;
	}
	methods = !budget(c) ? NULL : libssh2_userauth_list(c->s, user,
	    (unsigned int)strlen(user));
	if (methods == NULL && libssh2_userauth_authenticated(c->s))
		return 0;	/* "none" was enough */
	if (methods == NULL && timed_out(c))
		return sshconn_late(c, p->target->host, "the login methods "
		    "(after the key exchange)", e);
	if (methods == NULL && sshconn_link_failed(c->s))
		return err_set(e, ERR_TEMPFAIL, "SSH server %s: %s",
		    p->target->host, sshconn_errmsg(c->s));
	if (methods == NULL || strstr(methods, "publickey") == NULL) {
		/* the server's words: printable ASCII only */
		char *offer = xstrdup(methods ? methods : sshconn_errmsg(c->s));

		util_sanitize_ascii(offer);
		rc = err_set(e, ERR_NOPERM, "SSH server %s does not let %s "
		    "in with a public key (it offers: %.200s)",
		    p->target->host, user, offer);
		free(offer);
		return rc;
	}
	if (h->key_given) {
		char *pub = xasprintf("%s.pub", h->keys.v[0]);
		bool no_pub = access(pub, F_OK) != 0;

		free(pub);
		if (no_pub && unreadable)	/* its agent copy unfound */
			return err_set(e, refused_code, "cannot log in to %s "
			    "as %s with ssh-key %s: %s (an encrypted key is "
			    "used through ssh-agent, which postie finds by "
			    "%s.pub beside it, and there is none: make it with "
			    "ssh-keygen -y -f %s > %s.pub)", p->target->host,
			    user, h->keys.v[0], refused, h->keys.v[0],
			    h->keys.v[0], h->keys.v[0]);
		return err_set(e, refused_code, "SSH server "
		    "%s refused %s with ssh-key %s: %s (is %s.pub in %s's "
		    "~/.ssh/authorized_keys on the server? an encrypted key "
		    "needs ssh-agent; RSA keys do not work with this libssh2, "
		    "use Ed25519 or ECDSA)", p->target->host, user,
		    h->keys.v[0], refused, h->keys.v[0], user);
	}
	sb_init(&tried);
	/* the key files this hop would use: IdentityFile, else the
	 * defaults; the agent's copies of them go first */
	{
		static const char *const names[] = { "id_ed25519", "id_ecdsa",
		    "id_rsa" };
		struct strvec files;
		bool ok;

		sv_init(&files);
		for (size_t i = 0; i < h->keys.n; i++)
			sv_push(&files, h->keys.v[i]);
		for (size_t i = 0; h->keys.n == 0 &&
		    i < sizeof(names) / sizeof(names[0]); i++)
			sv_push_owned(&files, xasprintf("%s/.ssh/%s",
			    util_home(), names[i]));
		ok = auth_agent(p, c, user, &files, h->keys_only);
		sv_free(&files);
		if (ok) {
			sb_free(&tried);
			return 0;
		}
	}
	if (timed_out(c)) {
		sb_free(&tried);
		return sshconn_late(c, p->target->host, "the answer to the "
		    "login with the agent's keys", e);
	}
	sb_adds(&tried, getenv("SSH_AUTH_SOCK") == NULL ? (h->keys_only ?
	    "no ssh-agent (IdentitiesOnly)" : "no ssh-agent") : h->keys_only ?
	    "ssh-agent's copies of these keys (IdentitiesOnly)" :
	    "ssh-agent");
	/* IdentityFile from ssh_config, in order; else the defaults */
	for (size_t i = 0; i < h->keys.n; i++) {
		const char *path = h->keys.v[i];

		if (access(path, R_OK) != 0) {
			sb_addf(&tried, ", not %s (%s)", path, strerror(errno));
			continue;
		}
		sb_addf(&tried, ", %s", path);
		if (auth_file(p, c, user, path)) {
			sb_free(&tried);
			return 0;
		}
		if (timed_out(c)) {
			sb_free(&tried);
			return sshconn_late(c, p->target->host, "the answer "
			    "to the login with a key file", e);
		}
	}
	if (h->keys.n == 0) {
		static const char *const names[] = { "id_ed25519", "id_ecdsa",
		    "id_rsa" };

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			char *path = xasprintf("%s/.ssh/%s", util_home(),
			    names[i]);
			bool ok = access(path, R_OK) == 0 &&
			    (sb_addf(&tried, ", %s", path),
			    auth_file(p, c, user, path));

			free(path);
			if (ok) {
				sb_free(&tried);
				return 0;
			}
			if (timed_out(c)) {
				sb_free(&tried);
				return sshconn_late(c, p->target->host, "the "
				    "answer to the login with a key file", e);
			}
		}
	}
	rc = err_set(e, sshconn_class(c->s, ERR_NOPERM), "SSH server %s "
	    "refused %s (tried %s); "
	    "set ssh-key or load a key into ssh-agent, its public key in "
	    "%s's ~/.ssh/authorized_keys on the server (Ed25519 or ECDSA: "
	    "RSA keys do not work with this libssh2)%s", p->target->host, user,
	    tried.s, user, cert_note(h, note, sizeof(note)));
	sb_free(&tried);
	return rc;
}

/* The opening's deadline: timeout from now (the TCP connection), or the
 * caller's own deadline when that comes first. */
static void
opening_end(const struct ssh_params *p, struct sshconn *c)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	c->end = now;
	c->end.tv_sec += p->timeout;
	if (p->end.tv_sec != 0 && (p->end.tv_sec < c->end.tv_sec ||
	    (p->end.tv_sec == c->end.tv_sec &&
	    p->end.tv_nsec < c->end.tv_nsec)))
		c->end = p->end;
	c->timeout = (long)(c->end.tv_sec - now.tv_sec) +
	    (c->end.tv_nsec > now.tv_nsec);
	if (c->timeout < 1)
		c->timeout = 1;
}

int
sshconn_open(const struct ssh_params *p, struct sshconn *c, struct err *e)
{
	struct sshroute_in in = { p->target, p->key, p->known_hosts,
	    p->ssh_config, p->ssh_config_n };
	struct ssh_route r;
	const struct ssh_hop *h;
	struct sshjump *jump = NULL;
	int fd = -1, rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (sshroute_resolve(&in, &r, e) < 0)
		return -1;
	h = &r.hop[r.n - 1];
	if (p->verbose) {
		struct strbuf via;

		sb_init(&via);
		for (size_t i = 0; i + 1 < r.n; i++)
			sb_addf(&via, "%s%s", i ? ", " : " through ",
			    r.hop[i].name);
		trace(p, "%s is %s@%s port %d%s", p->target->host, h->user,
		    h->host, h->port, via.s != NULL ? via.s : "");
		sb_free(&via);
	}
	if (r.n > 1) {
		if (sshjump_open(p, &r, &jump, &fd, &c->unreachable, e) < 0) {
			sshroute_free(&r);
			return -1;
		}
	} else if (dial_tcp(h->host, h->port, p->route, p->connect_timeout,
	    &fd, e) < 0) {
		c->unreachable = true;
		sshroute_free(&r);
		return -1;
	}
	rc = sshconn_start(p, h, true, r.n > 1 ? &r.hop[r.n - 2] : NULL, fd,
	    c, e);
	if (rc == 0)
		c->jump = jump;
	else
		sshjump_close(jump);
	sshroute_free(&r);
	return rc;
}

int
sshconn_start(const struct ssh_params *p, const struct ssh_hop *h, bool last,
    const struct ssh_hop *jump, int fd, struct sshconn *c, struct err *e)
{
	struct ssh_target ht = { h->user, h->host, h->port, true };
	struct ssh_params hp = *p;
	const struct ssh_target *t = &ht;
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	char *khpath = NULL;
	char prefs[200];

	hp.target = &ht;
	if (!last)
		hp.fingerprint = NULL;	/* the pin is the server's */
	p = &hp;
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	pthread_once(&ssh_once, ssh_init);
	if (ssh_init_rc != 0) {
		err_set(e, ERR_SOFTWARE, "cannot initialise libssh2");
		goto fail;
	}
	dial_set_timeout(c->fd, p->timeout);
	opening_end(p, c);
	if (jump != NULL)
		trace(p, "connected to %s port %d through the jump host %s",
		    t->host, t->port, jump->name);
	else if (p->route != NULL && p->route->proxy_host != NULL)
		trace(p, "connected to %s port %d through the proxy %s port %d",
		    t->host, t->port, p->route->proxy_host,
		    p->route->proxy_port);
	else
		trace(p, "connected to %s port %d", t->host, t->port);
	c->s = libssh2_session_init();
	if (c->s == NULL) {
		err_set(e, ERR_SOFTWARE, "cannot create an SSH session");
		goto fail;
	}
	libssh2_session_set_blocking(c->s, 1);
	libssh2_session_set_timeout(c->s, p->timeout * 1000);
	/* OpenSSH's order, not libssh2's (which puts ECDSA first) */
	snprintf(prefs, sizeof(prefs), "%s", DEFAULT_PREFS);
	if (p->fingerprint == NULL) {
		khpath = known_hosts_path(h);
		if (load_known(c->s, h, &kh, e) < 0)
			goto fail;
		/* ask for the types recorded for the host, so a recorded key
		 * is what the server shows */
		if (kh != NULL)
			known_types(kh, h->kh_host, h->kh_port, prefs,
			    sizeof(prefs));
		if (prefs[0] == '\0')
			snprintf(prefs, sizeof(prefs), "%s", DEFAULT_PREFS);
	}
	libssh2_session_method_pref(c->s, LIBSSH2_METHOD_HOSTKEY, prefs);
	if (!budget(c) || libssh2_session_handshake(c->s, c->fd) != 0) {
		if (timed_out(c))
			err_set(e, ERR_TEMPFAIL, "SSH handshake with %s failed: "
			    "nothing came within %ld s of the connection "
			    "(timeout) while waiting for %s; try again later",
			    t->host, c->timeout,
			    libssh2_session_banner_get(c->s) == NULL ?
			    "the server's SSH banner" : "the key exchange "
			    "(the server sent its SSH banner, then stalled)");
		else if (libssh2_session_banner_get(c->s) == NULL)
			/* closed before a word: sshd's MaxStartups (too many
			 * connections being opened at once), or no sshd */
			err_set(e, ERR_TEMPFAIL, "SSH handshake with %s failed: "
			    "it closed the connection before its SSH banner "
			    "(too many connections at once, its MaxStartups? "
			    "or no SSH server on that port); try again later",
			    t->host);
		else
			err_set(e, ERR_TEMPFAIL, "SSH handshake with %s failed: "
			    "%s; try again later", t->host, sshconn_errmsg(c->s));
		goto fail;
	}
	if (check_host_key(p, h, last, c, kh, khpath, e) < 0)
		goto fail;
	if (authenticate(p, h, c, e) < 0)
		goto fail;
	/* later blocking steps: each one timeout */
	libssh2_session_set_timeout(c->s, p->timeout * 1000);
	if (kh != NULL)
		libssh2_knownhost_free(kh);
	free(khpath);
	return 0;
fail:
	if (kh != NULL)
		libssh2_knownhost_free(kh);
	free(khpath);
	sshconn_close(c);
	return -1;
}

void
sshconn_close(struct sshconn *c)
{
	if (c->s != NULL) {
		libssh2_session_set_blocking(c->s, 1);
		if (!c->no_goodbye)
			libssh2_session_disconnect(c->s, "postie: done");
		/* what was sent still goes; a channel left open is freed
		 * without waiting a round trip for the server's close */
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
		libssh2_session_free(c->s);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->s = NULL;
	c->fd = -1;
	/* the hops go after the session that ran over them */
	sshjump_close(c->jump);
	c->jump = NULL;
}
