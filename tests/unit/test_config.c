/* test_config.c - the config grammar, its defaults, search and errors. */
#include "testutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "auth.h"
#include "config.h"
#include "trust.h"

#define HOME	"/home/tester"

#define FP_COLONS "sha256:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:" \
	"01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef"
#define FP_NORM	"sha256:0123456789ABCDEF0123456789ABCDEF" \
	"0123456789ABCDEF0123456789ABCDEF"
#define SSHFP	"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"

/* A known home directory for "~", and no XDG state dir. */
static void
fake_home(void)
{
	assert_int_equal(setenv("HOME", HOME, 1), 0);
	assert_int_equal(unsetenv("XDG_STATE_HOME"), 0);
}

static struct config *
parse_ok(const char *text)
{
	struct err e;
	struct config *c;

	memset(&e, 0, sizeof(e));
	c = config_parse_string(text, "test.conf", &e);
	if (c == NULL)
		fail_msg("config rejected: %s\n--- text:\n%s", e.msg, text);
	return c;
}

/* The exact message for a broken config; false (and says why) if not. */
static bool
error_is(const char *text, const char *want)
{
	struct err e;
	struct config *c;

	memset(&e, 0, sizeof(e));
	c = config_parse_string(text, "test.conf", &e);
	if (c != NULL) {
		config_free(c);
		print_error("config accepted, wanted \"%s\"\n--- text:\n%s\n",
		    want, text);
		return false;
	}
	if (e.code != ERR_CONFIG) {
		print_error("code %d, not ERR_CONFIG, for:\n%s\n", e.code,
		    text);
		return false;
	}
	if (strcmp(e.msg, want) != 0) {
		print_error("wrong message\n got: %s\nwant: %s\n--- text:\n%s\n",
		    e.msg, want, text);
		return false;
	}
	return true;
}

static char *
write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	return path;
}

/* --- defaults ---------------------------------------------------------- */

static void
check_defaults(const struct config *c)
{
	assert_string_equal(c->queue, HOME "/.local/state/postie/queue");
	assert_int_equal(c->log, LOGTO_SYSLOG);
	assert_null(c->log_file);
	assert_int_equal(c->batch_delay, 5);
	assert_int_equal(c->nretry, 5);
	assert_int_equal(c->retry[0], 60);
	assert_int_equal(c->retry[1], 300);
	assert_int_equal(c->retry[2], 900);
	assert_int_equal(c->retry[3], 3600);
	assert_int_equal(c->retry[4], 14400);
	assert_int_equal(c->lifetime, 5 * 86400);
	assert_int_equal(c->bounce, BOUNCE_MAILDIR);
	assert_string_equal(c->bounce_dir, HOME "/Maildir");
	assert_int_equal(c->mda.n, 0);
	assert_true(c->max_size == 50ULL * 1024 * 1024);
	assert_int_equal(c->nids, 0);
	assert_null(c->ids);
	assert_int_equal(c->njobs, 0);
	assert_null(c->jobs);
}

static void
test_defaults_no_file(void **state)
{
	struct err e;
	struct config *c;

	(void)state;
	fake_home();
	memset(&e, 0, sizeof(e));
	c = config_parse_file(NULL, &e);
	assert_non_null(c);
	assert_null(c->path);
	check_defaults(c);
	config_free(c);
}

static void
test_defaults_empty_text(void **state)
{
	struct config *c;

	(void)state;
	fake_home();
	c = parse_ok("");
	assert_string_equal(c->path, "test.conf");
	check_defaults(c);
	config_free(c);

	c = parse_ok("# only a comment\n\n   \t\n  # indented comment\n");
	check_defaults(c);
	config_free(c);
}

static void
test_defaults_xdg_state(void **state)
{
	struct err e;
	struct config *c;

	(void)state;
	fake_home();
	assert_int_equal(setenv("XDG_STATE_HOME", "/var/state", 1), 0);
	c = config_parse_file(NULL, &e);
	assert_non_null(c);
	assert_string_equal(c->queue, "/var/state/postie/queue");
	config_free(c);

	/* A relative XDG_STATE_HOME is ignored, as the spec says. */
	assert_int_equal(setenv("XDG_STATE_HOME", "relative/state", 1), 0);
	c = config_parse_file(NULL, &e);
	assert_non_null(c);
	assert_string_equal(c->queue, HOME "/.local/state/postie/queue");
	config_free(c);
	unsetenv("XDG_STATE_HOME");
}

/* --- global keys ------------------------------------------------------- */

static void
test_global_keys(void **state)
{
	struct config *c;

	(void)state;
	fake_home();
	c = parse_ok(
	    "# a full global section\n"
	    "queue        ~/spool/postie\n"
	    "log          stderr\n"
	    "batch-delay  10s\n"
	    "retry        30s 2m 1h30m 1d\n"
	    "lifetime     3d\n"
	    "bounce       maildir ~/Bounces\n"
	    "mda          \"/usr/bin/procmail -d %T\"\n"
	    "max-size     10M\n");
	assert_string_equal(c->queue, HOME "/spool/postie");
	assert_int_equal(c->log, LOGTO_STDERR);
	assert_null(c->log_file);
	assert_int_equal(c->batch_delay, 10);
	assert_int_equal(c->nretry, 4);
	assert_int_equal(c->retry[0], 30);
	assert_int_equal(c->retry[1], 120);
	assert_int_equal(c->retry[2], 5400);
	assert_int_equal(c->retry[3], 86400);
	assert_int_equal(c->lifetime, 3 * 86400);
	assert_int_equal(c->bounce, BOUNCE_MAILDIR);
	assert_string_equal(c->bounce_dir, HOME "/Bounces");
	assert_int_equal(c->mda.n, 3);
	assert_string_equal(c->mda.v[0], "/usr/bin/procmail");
	assert_string_equal(c->mda.v[1], "-d");
	assert_string_equal(c->mda.v[2], "%T");
	assert_null(c->mda.v[3]);
	assert_true(c->max_size == 10ULL * 1024 * 1024);
	assert_int_equal(c->nids, 0);
	assert_int_equal(c->njobs, 0);
	config_free(c);
}

static void
test_log_values(void **state)
{
	struct config *c;

	(void)state;
	fake_home();
	c = parse_ok("log syslog\n");
	assert_int_equal(c->log, LOGTO_SYSLOG);
	assert_null(c->log_file);
	config_free(c);

	c = parse_ok("log /var/log/postie.log\n");
	assert_int_equal(c->log, LOGTO_FILE);
	assert_string_equal(c->log_file, "/var/log/postie.log");
	config_free(c);

	c = parse_ok("log ~/postie.log\n");
	assert_int_equal(c->log, LOGTO_FILE);
	assert_string_equal(c->log_file, HOME "/postie.log");
	config_free(c);
}

static void
test_bounce_values(void **state)
{
	struct config *c;

	(void)state;
	fake_home();
	c = parse_ok("bounce mda\n");
	assert_int_equal(c->bounce, BOUNCE_MDA);
	config_free(c);

	c = parse_ok("bounce sender\n");
	assert_int_equal(c->bounce, BOUNCE_SENDER);
	config_free(c);

	c = parse_ok("bounce none\n");
	assert_int_equal(c->bounce, BOUNCE_NONE);
	config_free(c);

	c = parse_ok("bounce maildir /srv/mail/bounces\n");
	assert_int_equal(c->bounce, BOUNCE_MAILDIR);
	assert_string_equal(c->bounce_dir, "/srv/mail/bounces");
	config_free(c);
}

static void
test_retry_single_and_zero_durations(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok("retry 10m\nbatch-delay 0\nlifetime 90\n");
	assert_int_equal(c->nretry, 1);
	assert_int_equal(c->retry[0], 600);
	assert_int_equal(c->batch_delay, 0);
	assert_int_equal(c->lifetime, 90);
	config_free(c);
}

/* --- identities -------------------------------------------------------- */

static void
test_identity_all_keys(void **state)
{
	struct config *c;
	const struct identity *id;

	(void)state;
	fake_home();
	c = parse_ok(
	    "queue /q\n"
	    "\n"
	    "identity work                  # the office\n"
	    "  from       *@corp.example.com boss@example.org\n"
	    "  host       smtp.corp.example.com\n"
	    "  port       2525\n"
	    "  tls        tls\n"
	    "  tls-ca     /etc/ssl/certs/ca-certificates.crt\n"
	    "  tls-fingerprint " FP_COLONS "\n"
	    "  tls-cert   ~/.config/postie/client.pem\n"
	    "  tls-key    ~/.config/postie/client.key\n"
	    "  user       me\n"
	    "  password   \"s3cr#t with space\"\n"
	    "  auth-without-tls yes\n"
	    "  helo       laptop.example.org\n"
	    "  force-sender me@corp.example.com\n"
	    "  ssh        me@gateway.example.com:2222\n"
	    "  ssh-key    ~/.ssh/id_ed25519\n"
	    "  ssh-known-hosts ~/.ssh/known_hosts\n"
	    "  ssh-fingerprint " SSHFP "\n"
	    "  default\n"
	    "  connect-timeout 5s\n"
	    "  timeout    2m\n");
	assert_string_equal(c->queue, "/q");
	assert_int_equal(c->nids, 1);
	id = &c->ids[0];
	assert_string_equal(id->name, "work");
	assert_int_equal(id->line, 3);
	assert_int_equal(id->from.n, 2);
	assert_string_equal(id->from.v[0], "*@corp.example.com");
	assert_string_equal(id->from.v[1], "boss@example.org");
	assert_string_equal(id->host, "smtp.corp.example.com");
	assert_int_equal(id->port, 2525);
	assert_int_equal(id->tls, TLS_IMPLICIT);
	assert_string_equal(id->tls_ca, "/etc/ssl/certs/ca-certificates.crt");
	assert_string_equal(id->tls_fingerprint, FP_NORM);
	assert_string_equal(id->tls_cert, HOME "/.config/postie/client.pem");
	assert_string_equal(id->tls_key, HOME "/.config/postie/client.key");
	assert_string_equal(id->user, "me");
	assert_string_equal(id->password, "s3cr#t with space");
	assert_int_equal(id->password_command.n, 0);
	assert_true(id->auth_without_tls);
	assert_string_equal(id->helo, "laptop.example.org");
	assert_string_equal(id->force_sender, "me@corp.example.com");
	assert_string_equal(id->ssh.user, "me");
	assert_string_equal(id->ssh.host, "gateway.example.com");
	assert_int_equal(id->ssh.port, 2222);
	assert_string_equal(id->ssh_key, HOME "/.ssh/id_ed25519");
	assert_string_equal(id->ssh_known_hosts, HOME "/.ssh/known_hosts");
	assert_string_equal(id->ssh_fingerprint, SSHFP);
	assert_true(id->is_default);
	assert_int_equal(id->connect_timeout, 5);
	assert_int_equal(id->timeout, 120);
	config_free(c);
}

static void
test_identity_defaults(void **state)
{
	struct config *c;
	const struct identity *id;

	(void)state;
	c = parse_ok("identity min\n  host mx.example.net\n  from a@b\n");
	assert_int_equal(c->nids, 1);
	id = &c->ids[0];
	assert_string_equal(id->name, "min");
	assert_int_equal(id->line, 1);
	assert_int_equal(id->port, 587);
	assert_int_equal(id->tls, TLS_STARTTLS);
	assert_null(id->tls_ca);
	assert_null(id->tls_fingerprint);
	assert_null(id->tls_cert);
	assert_null(id->tls_key);
	assert_null(id->user);
	assert_null(id->password);
	assert_int_equal(id->password_command.n, 0);
	assert_false(id->auth_without_tls);
	assert_null(id->helo);
	assert_null(id->force_sender);
	assert_null(id->ssh.host);
	assert_null(id->ssh.user);
	assert_null(id->ssh_key);
	assert_null(id->ssh_known_hosts);
	assert_null(id->ssh_fingerprint);
	assert_false(id->is_default);
	assert_int_equal(id->connect_timeout, 10);
	assert_int_equal(id->timeout, 60);
	config_free(c);
}

/* host as ssh and proxy take it: [IPv6], [IPv6]:PORT, NAME:PORT */
static void
test_host_with_brackets_and_port(void **state)
{
	static const struct { const char *host, *want; int port; } ok[] = {
		{ "[::1]", "::1", 587 },
		{ "[::1]:2525", "::1", 2525 },
		{ "::1", "::1", 587 },
		{ "2001:db8::25", "2001:db8::25", 587 },
		{ "mail.example.org:465", "mail.example.org", 465 },
		{ "127.0.0.1:25", "127.0.0.1", 25 },
	};
	char text[200];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config *c;

		snprintf(text, sizeof(text), "identity a\n default\n host %s\n",
		    ok[i].host);
		c = parse_ok(text);
		assert_string_equal(c->ids[0].host, ok[i].want);
		assert_int_equal(c->ids[0].port, ok[i].port);
		config_free(c);
	}
	assert_true(error_is("identity a\n default\n host [::1\n",
	    "test.conf:3: host '[::1': write an IPv6 address as [ADDRESS] or "
	    "[ADDRESS]:PORT"));
	assert_true(error_is("identity a\n default\n host []\n",
	    "test.conf:3: host '[]': write an IPv6 address as [ADDRESS] or "
	    "[ADDRESS]:PORT"));
	assert_true(error_is("identity a\n default\n host h:99999\n",
	    "test.conf:3: host: '99999' is no port (1-65535)"));
	assert_true(error_is("identity a\n default\n host [::1]:x\n",
	    "test.conf:3: host: 'x' is no port (1-65535)"));
	assert_true(error_is("identity a\n default\n host h:25\n port 587\n",
	    "test.conf:3: host gives port 25, port 587: keep one"));
	/* a port after an IPv6 address needs the brackets */
	assert_true(error_is("identity a\n default\n host ::1:26004\n",
	    "test.conf:3: host '::1:26004' is no IPv6 address; with a port, "
	    "write [ADDRESS]:PORT"));
	assert_true(error_is("identity a\n default\n host 127.0.0.1:25:\n",
	    "test.conf:3: host '127.0.0.1:25:' is no IPv6 address; with a "
	    "port, write [ADDRESS]:PORT"));
	assert_true(error_is("identity a\n default\n host ::1]:25\n",
	    "test.conf:3: host '::1]:25': write an IPv6 address as [ADDRESS] "
	    "or [ADDRESS]:PORT"));
}

static void
test_port_defaults_by_tls(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok(
	    "identity a\n host h\n from a@x\n tls starttls\n"
	    "identity b\n host h\n from b@x\n tls tls\n"
	    "identity c\n host h\n from c@x\n tls none\n"
	    "identity d\n host h\n from d@x\n tls tls\n port 2465\n"
	    "identity e\n host h\n from e@x\n port 2587\n tls none\n");
	assert_int_equal(c->nids, 5);
	assert_int_equal(c->ids[0].tls, TLS_STARTTLS);
	assert_int_equal(c->ids[0].port, 587);
	assert_int_equal(c->ids[1].tls, TLS_IMPLICIT);
	assert_int_equal(c->ids[1].port, 465);
	assert_int_equal(c->ids[2].tls, TLS_NONE);
	assert_int_equal(c->ids[2].port, 25);
	assert_int_equal(c->ids[3].port, 2465);
	assert_int_equal(c->ids[4].port, 2587);
	assert_int_equal(c->ids[4].tls, TLS_NONE);
	config_free(c);
}

static void
test_bool_values(void **state)
{
	static const struct {
		const char	*word;
		bool		 val;
	} cases[] = {
		{ "yes", true }, { "on", true }, { "true", true },
		{ "no", false }, { "off", false }, { "false", false },
	};
	static const char *bad[] = { "maybe", "YES", "1", "", "no " };
	struct config *c;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* start from the opposite: a word that sets nothing fails */
		bool b = !cases[i].val;
		char *text = xasprintf("identity a\n host h\n default\n"
		    " auth-without-tls %s\n", cases[i].word);

		assert_int_equal(config_parse_bool(cases[i].word, &b), 0);
		assert_int_equal(b, cases[i].val);
		c = parse_ok(text);
		assert_int_equal(c->ids[0].auth_without_tls, cases[i].val);
		config_free(c);
		free(text);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool b = true;

		assert_int_equal(config_parse_bool(bad[i], &b), -1);
		assert_true(b);
	}
	/* auth: known mechanisms in order, any case, once each, with a user */
	c = parse_ok("identity a\n host h\n default\n user me\n password p\n"
	    " auth xoauth2 PLAIN OAuthBearer\n");
	assert_int_equal(c->ids[0].nauth_mechs, 3);
	assert_int_equal(c->ids[0].auth_mechs[0], AUTH_XOAUTH2);
	assert_int_equal(c->ids[0].auth_mechs[1], AUTH_PLAIN);
	assert_int_equal(c->ids[0].auth_mechs[2], AUTH_OAUTHBEARER);
	config_free(c);
	assert_true(error_is("identity a\n host h\n default\n user me\n"
	    " password p\n auth PLAIN SCRAM-SHA-1\n",
	    "test.conf:1: auth: postie has no mechanism 'SCRAM-SHA-1' (PLAIN, "
	    "LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER)"));
	assert_true(error_is("identity a\n host h\n default\n user me\n"
	    " password p\n auth PLAIN plain\n",
	    "test.conf:1: auth: 'plain' is listed twice"));
	assert_true(error_is("identity a\n host h\n default\n auth LOGIN\n",
	    "test.conf:1: the identity has 'auth' but no 'user'"));
	/* "no" matters: without TLS a password needs auth-without-tls yes */
	assert_true(error_is("identity a\n host h\n default\n user me\n"
	    " password p\n tls none\n auth-without-tls no\n",
	    "test.conf:1: the identity would send its password without TLS: "
	    "use tls starttls or tls, or say auth-without-tls yes"));
}

static void
test_password_command(void **state)
{
	struct config *c;
	const struct identity *id;

	(void)state;
	fake_home();
	c = parse_ok("identity a\n host h\n default\n user me\n"
	    " password-command \"/usr/bin/pass show corp/smtp\"\n");
	id = &c->ids[0];
	assert_null(id->password);
	assert_int_equal(id->password_command.n, 3);
	assert_string_equal(id->password_command.v[0], "/usr/bin/pass");
	assert_string_equal(id->password_command.v[1], "show");
	assert_string_equal(id->password_command.v[2], "corp/smtp");
	assert_null(id->password_command.v[3]);
	config_free(c);
}

static void
test_tls_fingerprint_forms(void **state)
{
	static const char *forms[] = {
		FP_COLONS,
		"sha256:0123456789abcdef0123456789abcdef"
		    "0123456789abcdef0123456789abcdef",
		"SHA256:0123456789ABCDEF0123456789ABCDEF"
		    "0123456789ABCDEF0123456789ABCDEF",
	};
	struct config *c;

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		char *text = xasprintf("identity a\n host h\n default\n"
		    " tls-fingerprint %s\n", forms[i]);

		c = parse_ok(text);
		assert_string_equal(c->ids[0].tls_fingerprint, FP_NORM);
		config_free(c);
		free(text);
	}
}

/* proxy and source-address: in identities and fetch jobs both */
static void
test_routes(void **state)
{
	static const struct {
		const char	*in;
		const char	*user, *password, *host;
		int		 port;
	} cases[] = {
		{ "socks5://127.0.0.1:9050", NULL, NULL, "127.0.0.1", 9050 },
		{ "socks5://proxy.lan", NULL, NULL, "proxy.lan", 1080 },
		{ "socks5://[::1]:1080", NULL, NULL, "::1", 1080 },
		/* the last '@' ends the login, the first ':' the user */
		{ "socks5://me:p@s:s@gw:1", "me", "p@s:s", "gw", 1 },
		{ "socks5://me:s3cret@gw:1", "me", "s3cret", "gw", 1 },
	};
	struct config *c;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = xasprintf("identity a\n host h\n default\n"
		    " proxy %s\n source-address 192.0.2.7\nfetch f\n ssh h\n"
		    " proxy %s\n source-address 2001:db8::7\n", cases[i].in,
		    cases[i].in);
		const struct route *r[2];

		c = parse_ok(text);
		r[0] = &c->ids[0].route;
		r[1] = &c->jobs[0].route;
		for (int k = 0; k < 2; k++) {
			assert_string_equal(r[k]->proxy_host, cases[i].host);
			assert_int_equal(r[k]->proxy_port, cases[i].port);
			if (cases[i].user == NULL) {
				assert_null(r[k]->proxy_user);
				assert_null(r[k]->proxy_password);
			} else {
				assert_string_equal(r[k]->proxy_user,
				    cases[i].user);
				assert_string_equal(r[k]->proxy_password,
				    cases[i].password);
			}
		}
		assert_string_equal(r[0]->source, "192.0.2.7");
		assert_string_equal(r[1]->source, "2001:db8::7");
		config_free(c);
		free(text);
	}
	c = parse_ok("identity a\n host h\n default\n");
	assert_null(c->ids[0].route.proxy_host);
	assert_null(c->ids[0].route.source);
	config_free(c);
	assert_true(error_is("identity a\n host h\n proxy http://p:3128\n",
	    "test.conf:3: word 2: 'proxy' must be socks5://HOST:PORT or "
	    "socks5://USER:PASSWORD@HOST:PORT"));
	assert_true(error_is("identity a\n host h\n proxy socks5://p:0\n",
	    "test.conf:3: word 2: 'proxy' has a port that is not a number "
	    "from 1 to 65535"));
	assert_true(error_is("identity a\n host h\n proxy socks5://:1\n",
	    "test.conf:3: word 2: 'proxy' must be socks5://HOST:PORT or "
	    "socks5://USER:PASSWORD@HOST:PORT"));
	assert_true(error_is("identity a\n host h\n proxy socks5://me@p:1\n",
	    "test.conf:3: word 2: 'proxy' has a login that is not "
	    "USER:PASSWORD (each 1 to 255 bytes)"));
	assert_true(error_is("fetch f\n ssh h\n source-address mx.lan\n",
	    "test.conf:3: word 2: 'source-address' must be an IPv4 or IPv6 "
	    "address of this machine (no host name)"));
}

static void
test_ssh_targets(void **state)
{
	static const struct {
		const char	*in;
		const char	*user;
		const char	*host;
		int		 port;
	} cases[] = {
		{ "gw.example.com", NULL, "gw.example.com", 22 },
		{ "me@gw.example.com", "me", "gw.example.com", 22 },
		{ "me@gw.example.com:2222", "me", "gw.example.com", 2222 },
		{ "gw:65535", NULL, "gw", 65535 },
		{ "me@[::1]:2200", "me", "::1", 2200 },
		{ "[2001:db8::1]", NULL, "2001:db8::1", 22 },
		{ "a.b@host", "a.b", "host", 22 },
	};
	struct config *c;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = xasprintf("identity a\n host h\n default\n"
		    " ssh %s\nfetch f\n ssh %s\n", cases[i].in, cases[i].in);
		const struct ssh_target *t[2];

		c = parse_ok(text);
		t[0] = &c->ids[0].ssh;
		t[1] = &c->jobs[0].ssh;
		for (int k = 0; k < 2; k++) {
			if (cases[i].user == NULL)
				assert_null(t[k]->user);
			else
				assert_string_equal(t[k]->user, cases[i].user);
			assert_string_equal(t[k]->host, cases[i].host);
			assert_int_equal(t[k]->port, cases[i].port);
		}
		config_free(c);
		free(text);
	}
}

static void
test_several_blocks(void **state)
{
	struct config *c;

	(void)state;
	/* Blocks may alternate; a key seen in one block is fresh in the next. */
	c = parse_ok(
	    "identity one\n host a\n from *@a\n"
	    "fetch inbox\n ssh me@a\n"
	    "identity two\n host b\n from *@b\n"
	    "fetch lists\n ssh me@b\n folders .lists.*\n");
	assert_int_equal(c->nids, 2);
	assert_string_equal(c->ids[0].name, "one");
	assert_string_equal(c->ids[0].host, "a");
	assert_int_equal(c->ids[0].line, 1);
	assert_string_equal(c->ids[1].name, "two");
	assert_string_equal(c->ids[1].host, "b");
	assert_int_equal(c->ids[1].line, 6);
	assert_int_equal(c->njobs, 2);
	assert_string_equal(c->jobs[0].name, "inbox");
	assert_int_equal(c->jobs[0].line, 4);
	assert_string_equal(c->jobs[1].name, "lists");
	assert_string_equal(c->jobs[1].ssh.host, "b");
	assert_int_equal(c->jobs[1].folders.n, 1);
	assert_string_equal(c->jobs[1].folders.v[0], ".lists.*");
	config_free(c);
}

/* --- fetch jobs -------------------------------------------------------- */

static void
test_fetch_all_keys(void **state)
{
	struct config *c;
	const struct fetch_job *j;

	(void)state;
	fake_home();
	c = parse_ok(
	    "fetch inbox                    # one receive job\n"
	    "  ssh        me@mail.example.com:2022\n"
	    "  ssh-key    ~/.ssh/id_rsa\n"
	    "  ssh-known-hosts /etc/ssh/ssh_known_hosts\n"
	    "  ssh-fingerprint " SSHFP "\n"
	    "  remote     Mail/Maildir\n"
	    "  local      ~/Mail/inbox\n"
	    "  folders    INBOX .lists.* \".Sent Items\"\n"
	    "  mode       copy\n"
	    "  connect-timeout 30s\n"
	    "  timeout    2m\n");
	assert_int_equal(c->nids, 0);
	assert_int_equal(c->njobs, 1);
	j = &c->jobs[0];
	assert_string_equal(j->name, "inbox");
	assert_int_equal(j->line, 1);
	assert_string_equal(j->ssh.user, "me");
	assert_string_equal(j->ssh.host, "mail.example.com");
	assert_int_equal(j->ssh.port, 2022);
	assert_string_equal(j->ssh_key, HOME "/.ssh/id_rsa");
	assert_string_equal(j->ssh_known_hosts, "/etc/ssh/ssh_known_hosts");
	assert_string_equal(j->ssh_fingerprint, SSHFP);
	assert_string_equal(j->remote, "Mail/Maildir");
	assert_string_equal(j->local, HOME "/Mail/inbox");
	assert_int_equal(j->folders.n, 3);
	assert_string_equal(j->folders.v[0], "INBOX");
	assert_string_equal(j->folders.v[1], ".lists.*");
	assert_string_equal(j->folders.v[2], ".Sent Items");
	assert_int_equal(j->mode, FETCH_COPY);
	assert_int_equal(j->connect_timeout, 30);
	assert_int_equal(j->timeout, 120);
	config_free(c);
}

static void
test_fetch_defaults(void **state)
{
	struct config *c;
	const struct fetch_job *j;

	(void)state;
	fake_home();
	c = parse_ok("fetch inbox\n ssh mail.example.com\n");
	j = &c->jobs[0];
	assert_null(j->ssh.user);
	assert_string_equal(j->ssh.host, "mail.example.com");
	assert_int_equal(j->ssh.port, 22);
	assert_null(j->ssh_key);
	assert_null(j->ssh_known_hosts);
	assert_null(j->ssh_fingerprint);
	assert_string_equal(j->remote, "Maildir");
	assert_string_equal(j->local, HOME "/Maildir");
	assert_int_equal(j->folders.n, 1);
	assert_string_equal(j->folders.v[0], "INBOX");
	assert_int_equal(j->mode, FETCH_MOVE);
	assert_int_equal(j->connect_timeout, 10);
	assert_int_equal(j->timeout, 60);
	config_free(c);

	c = parse_ok("fetch f\n ssh h\n mode move\n");
	assert_int_equal(c->jobs[0].mode, FETCH_MOVE);
	config_free(c);

	/* after: a command (absolute, no shell); mailboxes: a path */
	c = parse_ok("fetch f\n ssh h\n after \"/usr/bin/notmuch new\"\n"
	    " mailboxes ~/.config/mutt/mailboxes\n");
	assert_int_equal(c->jobs[0].after.n, 2);
	assert_string_equal(c->jobs[0].after.v[0], "/usr/bin/notmuch");
	assert_string_equal(c->jobs[0].after.v[1], "new");
	assert_string_equal(c->jobs[0].mailboxes,
	    HOME "/.config/mutt/mailboxes");
	config_free(c);
	c = parse_ok("fetch f\n ssh h\n");
	assert_int_equal(c->jobs[0].after.n, 0);
	assert_null(c->jobs[0].mailboxes);
	config_free(c);

	/* client: given, or the host name up to its first dot */
	c = parse_ok("fetch f\n ssh h\n client desk_top-2.home\n");
	assert_string_equal(c->jobs[0].client, "desk_top-2.home");
	config_free(c);
	{
		char host[256] = "";

		c = parse_ok("fetch f\n ssh h\n");
		assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
		host[strcspn(host, ".")] = '\0';
		host[64] = '\0';
		for (char *p = host; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
				*p = '-';
		assert_string_equal(c->jobs[0].client, host);
		config_free(c);
	}
}

static void
test_fetch_mda_and_keep(void **state)
{
	struct config *c;
	const struct fetch_job *j;

	(void)state;
	fake_home();
	/* "mda" is a global key and a fetch key: each its own */
	c = parse_ok("mda /usr/bin/procmail -d %T\n"
	    "fetch f\n ssh h\n mode copy\n"
	    " mda \"/usr/bin/maildrop ~/.mailfilter %F\"\n"
	    " keep 30d\n keep lists.* 120d\n keep .Archive forever\n");
	j = &c->jobs[0];
	assert_int_equal(c->mda.n, 3);
	assert_string_equal(c->mda.v[0], "/usr/bin/procmail");
	assert_int_equal(j->mda.n, 3);
	assert_string_equal(j->mda.v[0], "/usr/bin/maildrop");
	assert_string_equal(j->mda.v[1], HOME "/.mailfilter");
	assert_string_equal(j->mda.v[2], "%F");
	assert_int_equal(j->nkeep, 3);
	assert_null(j->keep[0].glob);
	assert_int_equal(j->keep[0].age, 30 * 86400);
	assert_string_equal(j->keep[1].glob, "lists.*");
	assert_int_equal(j->keep[1].age, 120 * 86400);
	assert_int_equal(j->keep[2].age, KEEP_FOREVER);
	config_free(c);
	c = parse_ok("fetch f\n ssh h\n");
	assert_int_equal(c->jobs[0].mda.n, 0);
	assert_int_equal(c->jobs[0].nkeep, 0);
	config_free(c);
}

/* --- durations and sizes ----------------------------------------------- */

static void
test_parse_duration(void **state)
{
	static const struct {
		const char	*in;
		long		 out;
	} good[] = {
		{ "90", 90 }, { "0", 0 }, { "30s", 30 }, { "5m", 300 },
		{ "1h", 3600 }, { "1h30m", 5400 }, { "5d", 432000 },
		{ "1d2h3m4s", 93784 }, { "90m", 5400 }, { "2m30", 150 },
	};
	static const char *bad[] = {
		"", "5x", "-1", "m", "5 m", " 5", "5m ", "1.5h", "5M", "s5",
		"1h-5m", "+5", "99999999999999999999", "9999999999s",
	};
	long d;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		d = -42;
		if (config_parse_duration(good[i].in, &d) != 0)
			fail_msg("'%s' rejected", good[i].in);
		if (d != good[i].out)
			fail_msg("'%s' -> %ld, want %ld", good[i].in, d,
			    good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = -42;
		if (config_parse_duration(bad[i], &d) != -1)
			fail_msg("'%s' accepted as %ld", bad[i], d);
		assert_int_equal(d, -42);
	}
}

static void
test_parse_size(void **state)
{
	static const struct {
		const char	*in;
		uint64_t	 out;
	} good[] = {
		{ "1000", 1000 }, { "0", 0 }, { "10k", 10240 },
		{ "10K", 10240 }, { "50M", 50ULL << 20 }, { "1G", 1ULL << 30 },
		{ "16384G", 16384ULL << 30 },
	};
	static const char *bad[] = {
		"", "k", "10x", "-1", "1.5M", "10MB", "10 M", " 10", "10m",
		"10g", "+10", "99999999999999999999",
		"18446744073709551615G",
	};
	uint64_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		n = 42;
		if (config_parse_size(good[i].in, &n) != 0)
			fail_msg("'%s' rejected", good[i].in);
		if (n != good[i].out)
			fail_msg("'%s' -> %llu", good[i].in,
			    (unsigned long long)n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 42;
		if (config_parse_size(bad[i], &n) != -1)
			fail_msg("'%s' accepted as %llu", bad[i],
			    (unsigned long long)n);
		assert_true(n == 42);
	}
}

/* --- words, quotes, comments ------------------------------------------- */

static void
test_split_words(void **state)
{
	static const struct {
		const char	*in;
		int		 n;
		const char	*w[5];
	} cases[] = {
		{ "", 0, { NULL } },
		{ "   \t \n", 0, { NULL } },
		{ "key value", 2, { "key", "value" } },
		{ "  key\t  a  b \r\n", 3, { "key", "a", "b" } },
		{ "mda \"/usr/bin/procmail -d %T\"", 2,
		    { "mda", "/usr/bin/procmail -d %T" } },
		{ "k \"say \\\"hi\\\"\"", 2, { "k", "say \"hi\"" } },
		{ "k \"back\\\\slash\"", 2, { "k", "back\\slash" } },
		{ "k \"a\\nb\"", 2, { "k", "a\\nb" } },
		{ "k a\\b", 2, { "k", "a\\b" } },
		{ "k \"\"", 2, { "k", "" } },
		{ "k \"\" x", 3, { "k", "", "x" } },
		{ "k ab\"c d\"ef", 2, { "k", "abc def" } },
		{ "# whole line", 0, { NULL } },
		{ "   # indented", 0, { NULL } },
		{ "k v # comment \"unterminated", 2, { "k", "v" } },
		{ "k v#notcomment", 2, { "k", "v#notcomment" } },
		{ "k a#b #c", 2, { "k", "a#b" } },
		{ "k \"#quoted\"", 2, { "k", "#quoted" } },
		{ "k \"a # b\" c", 3, { "k", "a # b", "c" } },
	};
	static const char *bad[] = {
		"k \"abc",
		"k \"abc\\\"",
		"k a\"b",
		"\"",
	};
	const char *why;
	struct strvec sv;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sv_init(&sv);
		why = NULL;
		if (config_split_words(cases[i].in, &sv, &why) != 0)
			fail_msg("'%s' rejected: %s", cases[i].in, why);
		if ((int)sv.n != cases[i].n)
			fail_msg("'%s': %zu words, want %d", cases[i].in,
			    sv.n, cases[i].n);
		for (int k = 0; k < cases[i].n; k++)
			if (strcmp(sv.v[k], cases[i].w[k]) != 0)
				fail_msg("'%s': word %d is '%s', want '%s'",
				    cases[i].in, k, sv.v[k], cases[i].w[k]);
		sv_free(&sv);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sv_init(&sv);
		why = NULL;
		if (config_split_words(bad[i], &sv, &why) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(why);
		assert_string_equal(why, "unterminated quote");
		sv_free(&sv);
	}
}

static void
test_comments_in_config(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok(
	    "# comment\n"
	    "queue /q#1   # the queue\n"
	    "identity a # block comment\n"
	    "  host \"#host\"\n"
	    "  helo a#b\n"
	    "  from x@y  # sender\n"
	    "  #from z@y\n");
	assert_string_equal(c->queue, "/q#1");
	assert_string_equal(c->ids[0].host, "#host");
	assert_string_equal(c->ids[0].helo, "a#b");
	assert_int_equal(c->ids[0].from.n, 1);
	assert_string_equal(c->ids[0].from.v[0], "x@y");
	config_free(c);
}

static void
test_crlf_lines(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok("queue /q\r\nidentity a\r\n host h\r\n default\r\n");
	assert_string_equal(c->queue, "/q");
	assert_string_equal(c->ids[0].host, "h");
	assert_true(c->ids[0].is_default);
	config_free(c);
}

static void
test_tilde_expansion(void **state)
{
	struct config *c;

	(void)state;
	fake_home();
	c = parse_ok(
	    "queue \"~/my queue\"\n"
	    "bounce maildir ~\n"
	    "identity a\n host h\n default\n"
	    " tls-ca ~other/ca.pem\n"
	    " tls-cert x~/cert.pem\n"
	    " ssh-key ~/.ssh/id\n");
	assert_string_equal(c->queue, HOME "/my queue");
	assert_string_equal(c->bounce_dir, HOME);
	/* Only a leading "~" or "~/" is the home directory. */
	assert_string_equal(c->ids[0].tls_ca, "~other/ca.pem");
	assert_string_equal(c->ids[0].tls_cert, "x~/cert.pem");
	assert_string_equal(c->ids[0].ssh_key, HOME "/.ssh/id");
	/* Not a path: stays as written. */
	config_free(c);

	c = parse_ok("identity a\n host ~/h\n helo ~\n default\n");
	assert_string_equal(c->ids[0].host, "~/h");
	assert_string_equal(c->ids[0].helo, "~");
	config_free(c);

	assert_int_equal(setenv("HOME", "/other/home", 1), 0);
	c = parse_ok("queue ~/q\n");
	assert_string_equal(c->queue, "/other/home/q");
	config_free(c);
	fake_home();
}

/* --- command keys ------------------------------------------------------ */

static void
test_command_keys(void **state)
{
	struct config *c;

	(void)state;
	fake_home();
	/* One quoted value is split into words. */
	c = parse_ok("mda \"/usr/bin/procmail -d %T\"\n");
	assert_int_equal(c->mda.n, 3);
	assert_string_equal(c->mda.v[2], "%T");
	config_free(c);

	/* Several values are the argv as written. */
	c = parse_ok("mda /usr/bin/procmail -d %T -f %F\n");
	assert_int_equal(c->mda.n, 5);
	assert_string_equal(c->mda.v[0], "/usr/bin/procmail");
	assert_string_equal(c->mda.v[1], "-d");
	assert_string_equal(c->mda.v[2], "%T");
	assert_string_equal(c->mda.v[3], "-f");
	assert_string_equal(c->mda.v[4], "%F");
	assert_null(c->mda.v[5]);
	config_free(c);

	/* With several values, a quoted one stays one argument. */
	c = parse_ok("mda \"/opt/my mda/deliver\" \"--to %T\"\n");
	assert_int_equal(c->mda.n, 2);
	assert_string_equal(c->mda.v[0], "/opt/my mda/deliver");
	assert_string_equal(c->mda.v[1], "--to %T");
	config_free(c);

	/* A single value with inner quotes: split keeps the quoted part. */
	c = parse_ok("mda \"/usr/bin/dm \\\"a b\\\"\"\n");
	assert_int_equal(c->mda.n, 2);
	assert_string_equal(c->mda.v[0], "/usr/bin/dm");
	assert_string_equal(c->mda.v[1], "a b");
	config_free(c);

	/* "~" expands in the command words. */
	c = parse_ok("identity a\n host h\n default\n user u\n"
	    " password-command ~/bin/getpw --smtp\n");
	assert_int_equal(c->ids[0].password_command.n, 2);
	assert_string_equal(c->ids[0].password_command.v[0],
	    HOME "/bin/getpw");
	assert_string_equal(c->ids[0].password_command.v[1], "--smtp");
	config_free(c);

	c = parse_ok("mda \"~/bin/deliver %T\"\n");
	assert_int_equal(c->mda.n, 2);
	assert_string_equal(c->mda.v[0], HOME "/bin/deliver");
	config_free(c);
}

/* --- identity selection ------------------------------------------------ */

static const char ids_conf[] =
    "identity work\n"
    "  host smtp.corp.example.com\n"
    "  from *@corp.example.com boss@example.org\n"
    "identity priv\n"
    "  host smtp.example.org\n"
    "  from *@example.org\n"
    "identity fallback\n"
    "  host smtp.isp.example\n"
    "  from nobody@nowhere.example\n"
    "  default\n";

static void
test_identity_for(void **state)
{
	struct config *c;
	const struct identity *work, *priv, *fb;

	(void)state;
	c = parse_ok(ids_conf);
	work = &c->ids[0];
	priv = &c->ids[1];
	fb = &c->ids[2];
	assert_ptr_equal(config_identity_for(c, "me@corp.example.com"), work);
	assert_ptr_equal(config_identity_for(c, "ME@Corp.Example.COM"), work);
	/* boss@example.org matches both: the first identity wins. */
	assert_ptr_equal(config_identity_for(c, "boss@example.org"), work);
	assert_ptr_equal(config_identity_for(c, "BOSS@EXAMPLE.ORG"), work);
	assert_ptr_equal(config_identity_for(c, "alice@example.org"), priv);
	assert_ptr_equal(config_identity_for(c, "Alice@Example.Org"), priv);
	/* a glob is anchored: a sub-domain is not the domain */
	assert_ptr_equal(config_identity_for(c, "x@sub.corp.example.com.evil"),
	    fb);
	assert_ptr_equal(config_identity_for(c, "x@other.net"), fb);
	assert_ptr_equal(config_identity_for(c, "nobody@nowhere.example"), fb);
	assert_ptr_equal(config_identity_for(c, ""), fb);
	assert_ptr_equal(config_identity_by_name(c, "priv"), priv);
	assert_null(config_identity_by_name(c, "nope"));
	config_free(c);
}

static void
test_identity_for_without_default(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok("identity work\n host h\n from *@corp.example.com\n");
	assert_ptr_equal(config_identity_for(c, "a@corp.example.com"),
	    &c->ids[0]);
	assert_null(config_identity_for(c, "a@example.org"));
	assert_null(config_identity_for(c, ""));
	config_free(c);

	/* No identities at all. */
	c = parse_ok("");
	assert_null(config_identity_for(c, "a@example.org"));
	assert_null(config_resolve_identity(c, "work", "a@example.org"));
	config_free(c);
}

static void
test_identity_match_beats_earlier_default(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok(
	    "identity dflt\n host d\n default\n"
	    "identity x\n host x\n from *@x.example\n"
	    "identity y\n host y\n from *@y.example\n");
	assert_ptr_equal(config_identity_for(c, "a@x.example"), &c->ids[1]);
	assert_ptr_equal(config_identity_for(c, "a@y.example"), &c->ids[2]);
	assert_ptr_equal(config_identity_for(c, "a@z.example"), &c->ids[0]);
	config_free(c);
}

static void
test_resolve_identity(void **state)
{
	struct config *c;

	(void)state;
	c = parse_ok(ids_conf);
	/* The name stored at enqueue wins while the config still has it. */
	assert_ptr_equal(config_resolve_identity(c, "priv",
	    "me@corp.example.com"), &c->ids[1]);
	assert_ptr_equal(config_resolve_identity(c, "fallback",
	    "me@corp.example.com"), &c->ids[2]);
	/* A name that is gone: the match for the sender now. */
	assert_ptr_equal(config_resolve_identity(c, "removed",
	    "me@corp.example.com"), &c->ids[0]);
	assert_ptr_equal(config_resolve_identity(c, "removed",
	    "x@unknown.example"), &c->ids[2]);
	/* No name: the match for the sender. */
	assert_ptr_equal(config_resolve_identity(c, NULL,
	    "a@example.org"), &c->ids[1]);
	config_free(c);

	c = parse_ok("identity w\n host h\n from *@w.example\n");
	assert_null(config_resolve_identity(c, "gone", "a@b.example"));
	assert_null(config_resolve_identity(c, NULL, "a@b.example"));
	assert_ptr_equal(config_resolve_identity(c, NULL, "a@w.example"),
	    &c->ids[0]);
	config_free(c);
}

/* --- finding the config ------------------------------------------------ */

struct loadenv {
	char	*dir;
	char	*home;
	char	*xdg;
};

static void
loadenv_init(struct loadenv *l)
{
	char *d;

	l->dir = tu_tmpdir();
	l->home = xasprintf("%s/home", l->dir);
	l->xdg = xasprintf("%s/xdg", l->dir);
	assert_int_equal(mkdir(l->home, 0700), 0);
	d = xasprintf("%s/.config", l->home);
	assert_int_equal(mkdir(d, 0700), 0);
	free(d);
	d = xasprintf("%s/.config/postie", l->home);
	assert_int_equal(mkdir(d, 0700), 0);
	free(d);
	assert_int_equal(mkdir(l->xdg, 0700), 0);
	d = xasprintf("%s/postie", l->xdg);
	assert_int_equal(mkdir(d, 0700), 0);
	free(d);
	assert_int_equal(setenv("HOME", l->home, 1), 0);
	assert_int_equal(unsetenv("POSTIE_CONFIG"), 0);
	assert_int_equal(unsetenv("XDG_CONFIG_HOME"), 0);
	assert_int_equal(unsetenv("XDG_STATE_HOME"), 0);
}

static void
loadenv_done(struct loadenv *l)
{
	unsetenv("POSTIE_CONFIG");
	unsetenv("XDG_CONFIG_HOME");
	fake_home();
	tu_rmtree(l->dir);
	free(l->dir);
	free(l->home);
	free(l->xdg);
}

/* A config whose queue names where it came from. */
static char *
write_marked(const char *dir, const char *name, const char *mark)
{
	char *text = xasprintf("queue /%s\n", mark);
	char *path = write_file(dir, name, text, 0600);

	free(text);
	return path;
}

static struct config *
load_ok(const char *explicit_path)
{
	struct err e;
	struct config *c;

	memset(&e, 0, sizeof(e));
	c = config_load(explicit_path, &e);
	if (c == NULL)
		fail_msg("config_load failed: %s", e.msg);
	return c;
}

static void
test_load_order(void **state)
{
	struct loadenv l;
	char *explicit, *env, *xdgconf, *homeconf, *d;
	struct config *c;

	(void)state;
	loadenv_init(&l);
	explicit = write_marked(l.dir, "explicit.conf", "explicit");
	env = write_marked(l.dir, "env.conf", "env");
	d = xasprintf("%s/postie", l.xdg);
	xdgconf = write_marked(d, "config", "xdg");
	free(d);
	d = xasprintf("%s/.config/postie", l.home);
	homeconf = write_marked(d, "config", "home");
	free(d);

	assert_int_equal(setenv("POSTIE_CONFIG", env, 1), 0);
	assert_int_equal(setenv("XDG_CONFIG_HOME", l.xdg, 1), 0);

	/* -C beats everything */
	c = load_ok(explicit);
	assert_string_equal(c->queue, "/explicit");
	assert_string_equal(c->path, explicit);
	config_free(c);

	/* then $POSTIE_CONFIG */
	c = load_ok(NULL);
	assert_string_equal(c->queue, "/env");
	assert_string_equal(c->path, env);
	config_free(c);

	/* an empty $POSTIE_CONFIG is as if unset */
	assert_int_equal(setenv("POSTIE_CONFIG", "", 1), 0);
	c = load_ok(NULL);
	assert_string_equal(c->queue, "/xdg");
	assert_string_equal(c->path, xdgconf);
	config_free(c);

	/* then $XDG_CONFIG_HOME/postie/config */
	assert_int_equal(unsetenv("POSTIE_CONFIG"), 0);
	c = load_ok(NULL);
	assert_string_equal(c->queue, "/xdg");
	config_free(c);

	/* a relative XDG_CONFIG_HOME is ignored: ~/.config/postie/config */
	assert_int_equal(setenv("XDG_CONFIG_HOME", "xdg", 1), 0);
	c = load_ok(NULL);
	assert_string_equal(c->queue, "/home");
	assert_string_equal(c->path, homeconf);
	config_free(c);

	/* no XDG_CONFIG_HOME: ~/.config/postie/config */
	assert_int_equal(unsetenv("XDG_CONFIG_HOME"), 0);
	c = load_ok(NULL);
	assert_string_equal(c->queue, "/home");
	config_free(c);

	/* XDG_CONFIG_HOME set but without a config there: not the home one
	 * either; it falls through to the system file or the defaults */
	assert_int_equal(unlink(xdgconf), 0);
	assert_int_equal(setenv("XDG_CONFIG_HOME", l.xdg, 1), 0);
	c = load_ok(NULL);
	assert_string_not_equal(c->queue, "/home");
	if (access("/etc/postie.conf", F_OK) != 0)
		assert_null(c->path);
	config_free(c);

	free(explicit);
	free(env);
	free(xdgconf);
	free(homeconf);
	loadenv_done(&l);
}

static void
test_load_nothing_gives_defaults(void **state)
{
	struct loadenv l;
	struct config *c;
	char *q;

	(void)state;
	loadenv_init(&l);
	c = load_ok(NULL);
	if (access("/etc/postie.conf", F_OK) == 0) {
		config_free(c);
		loadenv_done(&l);
		skip();
	}
	assert_null(c->path);
	q = xasprintf("%s/.local/state/postie/queue", l.home);
	assert_string_equal(c->queue, q);
	assert_int_equal(c->nids, 0);
	free(q);
	config_free(c);
	loadenv_done(&l);
}

static void
test_load_missing_named_file(void **state)
{
	struct loadenv l;
	struct err e;
	struct config *c;
	char *missing, *env, *want;

	(void)state;
	loadenv_init(&l);
	missing = xasprintf("%s/no-such.conf", l.dir);
	env = write_marked(l.dir, "env.conf", "env");

	/* -C naming a missing file is an error, even with a good fallback */
	assert_int_equal(setenv("POSTIE_CONFIG", env, 1), 0);
	memset(&e, 0, sizeof(e));
	c = config_load(missing, &e);
	assert_null(c);
	assert_int_equal(e.code, ERR_CONFIG);
	want = xasprintf("%s: cannot open the config file: %s", missing,
	    strerror(ENOENT));
	assert_string_equal(e.msg, want);

	/* so is $POSTIE_CONFIG naming a missing file */
	assert_int_equal(setenv("POSTIE_CONFIG", missing, 1), 0);
	memset(&e, 0, sizeof(e));
	c = config_load(NULL, &e);
	assert_null(c);
	assert_int_equal(e.code, ERR_CONFIG);
	assert_string_equal(e.msg, want);

	/* and config_parse_file itself */
	memset(&e, 0, sizeof(e));
	assert_null(config_parse_file(missing, &e));
	assert_int_equal(e.code, ERR_CONFIG);
	assert_string_equal(e.msg, want);

	free(want);
	free(missing);
	free(env);
	loadenv_done(&l);
}

static void
test_load_reports_errors_with_path(void **state)
{
	struct loadenv l;
	struct err e;
	struct config *c;
	char *path, *want;

	(void)state;
	loadenv_init(&l);
	path = write_file(l.dir, "bad.conf", "queue /q\nbogus 1\n", 0600);
	memset(&e, 0, sizeof(e));
	c = config_load(path, &e);
	assert_null(c);
	assert_int_equal(e.code, ERR_CONFIG);
	want = xasprintf("%s:2: word 1: unknown key (postie.conf(5) lists "
	    "the keys)", path);
	assert_string_equal(e.msg, want);
	free(want);
	free(path);
	loadenv_done(&l);
}

/* --- secrets and file modes -------------------------------------------- */

static void
test_password_file_mode(void **state)
{
	static const char text[] = "identity a\n host h\n default\n"
	    " user me\n password hunter2\n";
	/* readable by others; writable is refused before (test_ownership) */
	static const mode_t refused[] = { 0644, 0640, 0604, 0440, 0444 };
	char *dir, *path, *want;
	struct err e;
	struct config *c;

	(void)state;
	dir = tu_tmpdir();
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		path = write_file(dir, "pw.conf", text, refused[i]);
		memset(&e, 0, sizeof(e));
		c = config_parse_file(path, &e);
		if (c != NULL) {
			config_free(c);
			fail_msg("mode %04o accepted", (unsigned)refused[i]);
		}
		assert_int_equal(e.code, ERR_CONFIG);
		want = xasprintf("%s: holds a password but other users may "
		    "read it: run chmod 600 %s, or use password-command",
		    path, path);
		assert_string_equal(e.msg, want);
		free(want);
		free(path);
	}

	/* 0600 and 0400 are fine */
	path = write_file(dir, "pw.conf", text, 0600);
	c = config_parse_file(path, &e);
	assert_non_null(c);
	assert_string_equal(c->ids[0].password, "hunter2");
	config_free(c);
	free(path);
	path = write_file(dir, "pw.conf", text, 0400);
	c = config_parse_file(path, &e);
	assert_non_null(c);
	config_free(c);
	free(path);

	/* Without a password in it the file may be world-readable. */
	path = write_file(dir, "nopw.conf", "identity a\n host h\n default\n"
	    " user me\n password-command /usr/bin/pass smtp\n", 0644);
	c = config_parse_file(path, &e);
	assert_non_null(c);
	assert_int_equal(c->ids[0].password_command.n, 2);
	config_free(c);
	free(path);

	tu_rmtree(dir);
	free(dir);
}

static void
test_nul_byte(void **state)
{
	static const char text[] = "queue /q\nlog std\0err\nmax-size 1M\n";
	char *dir, *path, *want;
	struct err e;
	struct config *c;
	int fd;

	(void)state;
	dir = tu_tmpdir();
	path = xasprintf("%s/nul.conf", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1),
	    (ssize_t)(sizeof(text) - 1));
	close(fd);
	memset(&e, 0, sizeof(e));
	c = config_parse_file(path, &e);
	assert_null(c);
	assert_int_equal(e.code, ERR_CONFIG);
	want = xasprintf("%s:2: the line has a NUL byte", path);
	assert_string_equal(e.msg, want);
	free(want);
	free(path);
	tu_rmtree(dir);
	free(dir);
}

#define ID	"identity a\n host h\n default\n"	/* lines 1-3 */

/* --- what may be read: a bounded regular file we trust ----------------- */

/* config_parse_file on path fails with ERR_CONFIG and a message holding
 * want. */
static void
file_refused(const char *path, const char *want)
{
	struct err e;
	struct config *c;

	memset(&e, 0, sizeof(e));
	c = config_parse_file(path, &e);
	if (c != NULL) {
		config_free(c);
		fail_msg("%s accepted, wanted \"%s\"", path, want);
	}
	assert_int_equal(e.code, ERR_CONFIG);
	if (strstr(e.msg, want) == NULL)
		fail_msg("got \"%s\", wanted \"%s\" in it", e.msg, want);
}

static void
file_accepted(const char *path)
{
	struct err e;
	struct config *c;

	memset(&e, 0, sizeof(e));
	c = config_parse_file(path, &e);
	if (c == NULL)
		fail_msg("%s refused: %s", path, e.msg);
	config_free(c);
}

static void
test_only_regular_files(void **state)
{
	char *dir, *fifo;

	(void)state;
	dir = tu_tmpdir();
	file_refused("/dev/zero", "/dev/zero: the config is not a regular "
	    "file (it is a character device): name a plain file");
	file_refused(dir, "the config is not a regular file (it is a "
	    "directory)");
	fifo = xasprintf("%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* with no writer, a blocking open would never return */
	file_refused(fifo, "the config is not a regular file (it is a FIFO)");
	free(fifo);
	tu_rmtree(dir);
	free(dir);
}

/* A file of exactly size bytes: comment lines of at most line bytes. */
static char *
write_sized(const char *dir, size_t size, size_t line)
{
	char *path = xasprintf("%s/sized.conf", dir);
	char *text = xmalloc(size + 1);

	for (size_t i = 0; i < size; i += line + 1) {
		size_t n = size - i < line + 1 ? size - i : line + 1;

		memset(text + i, '#', n);
		text[i + n - 1] = '\n';
	}
	text[size] = '\0';
	free(write_file(dir, "sized.conf", text, 0600));
	free(text);
	return path;
}

static void
test_size_and_line_limits(void **state)
{
	char *dir, *path, *text, *want;
	struct err e;

	(void)state;
	dir = tu_tmpdir();
	path = write_sized(dir, CONFIG_SIZE_MAX, 1000);
	file_accepted(path);
	free(path);
	path = write_sized(dir, CONFIG_SIZE_MAX + 1, 1000);
	want = xasprintf("%s: the config is larger than 1 MiB: is this the "
	    "right file?", path);
	file_refused(path, want);
	free(want);
	free(path);

	/* a line of CONFIG_LINE_MAX bytes (the newline not counted) is
	 * fine, one more is not, in a file or a string */
	path = write_sized(dir, 2 * (CONFIG_LINE_MAX + 1), CONFIG_LINE_MAX);
	file_accepted(path);
	free(path);
	text = xmalloc(CONFIG_LINE_MAX + 3);
	memset(text, '#', CONFIG_LINE_MAX + 1);
	strcpy(text + CONFIG_LINE_MAX + 1, "\n");
	path = write_file(dir, "long.conf", text, 0600);
	want = xasprintf("%s:1: the line is longer than 4096 bytes: is this a "
	    "postie config?", path);
	file_refused(path, want);
	free(want);
	free(path);
	memset(&e, 0, sizeof(e));
	assert_null(config_parse_string(text, "test.conf", &e));
	assert_string_equal(e.msg, "test.conf:1: the line is longer than "
	    "4096 bytes: is this a postie config?");
	text[CONFIG_LINE_MAX] = '\n';
	text[CONFIG_LINE_MAX + 1] = '\0';
	config_free(parse_ok(text));
	free(text);
	tu_rmtree(dir);
	free(dir);
}

/* --- whose file: the OpenSSH rule -------------------------------------- */

#define NOBODY	65534

static void
test_ownership(void **state)
{
	char *dir, *sub, *path, *link, *want;

	(void)state;
	if (geteuid() != 0)
		skip();		/* chown to another user needs root */
	dir = tu_tmpdir();
	path = write_file(dir, "c.conf", "queue /q\n", 0600);
	file_accepted(path);

	/* another user's file, even readable, even root reading it */
	assert_int_equal(chown(path, NOBODY, NOBODY), 0);
	want = xasprintf("%s is owned by another user (uid 65534): postie "
	    "trusts only what you or root own (see postie.conf(5)); chown it "
	    "or use one of your own", path);
	file_refused(path, want);
	free(want);
	assert_int_equal(chown(path, 0, 0), 0);

	/* writable by group or others */
	for (mode_t m = 0620; m != 0; m = m == 0620 ? 0602 : 0) {
		assert_int_equal(chmod(path, m), 0);
		want = xasprintf("%s is writable by other users: run chmod "
		    "go-w %s", path, path);
		file_refused(path, want);
		free(want);
	}
	assert_int_equal(chmod(path, 0644), 0);
	file_accepted(path);		/* readable is fine without a password */

	/* through a symbolic link: what it leads to is checked */
	link = xasprintf("%s/link.conf", dir);
	assert_int_equal(symlink(path, link), 0);
	file_accepted(link);
	assert_int_equal(chown(path, NOBODY, NOBODY), 0);
	want = xasprintf("%s (a link to %s) is owned by another user (uid "
	    "65534)", link, path);
	file_refused(link, want);
	free(want);
	assert_int_equal(chown(path, 0, 0), 0);

	/* its directory: another's, writable by others, or sticky */
	sub = xasprintf("%s/sub", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	free(path);
	path = write_file(sub, "c.conf", "queue /q\n", 0600);
	assert_int_equal(chown(sub, NOBODY, NOBODY), 0);
	want = xasprintf("%s: its directory %s is owned by another user (uid "
	    "65534)", path, sub);
	file_refused(path, want);
	free(want);
	assert_int_equal(chown(sub, 0, 0), 0);
	assert_int_equal(chmod(sub, 0775), 0);
	want = xasprintf("%s: its directory %s is writable by other users: "
	    "run chmod go-w %s", path, sub, sub);
	file_refused(path, want);
	free(want);
	assert_int_equal(chmod(sub, 01777), 0);	/* like /tmp */
	file_accepted(path);
	/* ...but the directory above is checked too */
	assert_int_equal(chmod(sub, 0700), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	want = xasprintf("%s: its directory %s is writable by other users",
	    path, dir);
	file_refused(path, want);
	free(want);
	assert_int_equal(chmod(dir, 0700), 0);

	free(sub);
	free(link);
	free(path);
	tu_rmtree(dir);
	free(dir);
}

static void
test_trust_program(void **state)
{
	char *dir, *prog, *link, *got, *want;
	struct err e;

	(void)state;
	if (geteuid() != 0)
		skip();
	dir = tu_tmpdir();
	prog = write_file(dir, "mda", "#!/bin/sh\n", 0755);
	link = xasprintf("%s/link", dir);
	assert_int_equal(symlink(prog, link), 0);

	/* what runs is the real path of what was checked */
	got = trust_program(link, &e);
	assert_non_null(got);
	assert_string_equal(got, prog);
	free(got);

	assert_int_equal(chown(prog, NOBODY, NOBODY), 0);
	memset(&e, 0, sizeof(e));
	assert_null(trust_program(prog, &e));
	want = xasprintf("%s is owned by another user (uid 65534)", prog);
	assert_non_null(strstr(e.msg, want));
	free(want);
	assert_int_equal(chown(prog, 0, 0), 0);
	assert_int_equal(chmod(prog, 0775), 0);
	assert_null(trust_program(prog, &e));
	assert_non_null(strstr(e.msg, "writable by other users"));

	assert_null(trust_program(dir, &e));
	assert_non_null(strstr(e.msg, "is not a regular file"));
	free(prog);
	prog = xasprintf("%s/none", dir);
	assert_null(trust_program(prog, &e));
	assert_non_null(strstr(e.msg, "cannot run it"));

	/* root's programs are fine for everyone */
	got = trust_program("/bin/sh", &e);
	assert_non_null(got);
	free(got);

	free(prog);
	free(link);
	tu_rmtree(dir);
	free(dir);
}

/* --- errors never quote the file ---------------------------------------- */

#define SECRET	"Zq8xVw4s3cr3t"

static void
test_errors_never_quote_the_file(void **state)
{
	static const char *bad[] = {
		SECRET ":$6$salt$hash:19000:0:99999:7:::\n",
		"queue /q\n" SECRET "\n",
		"lifetime " SECRET "\n", "batch-delay " SECRET "\n",
		"retry 1m " SECRET "\n", "max-size " SECRET "\n",
		"bounce " SECRET "\n", "bounce " SECRET " x\n",
		"log " SECRET "\n", "mda " SECRET "\n",
		"mda \"" SECRET " -x\"\n", "identity " SECRET "/\n",
		"identity " SECRET " x\n", "fetch " SECRET "/\n",
		"identity " SECRET "\n",
		"identity " SECRET "\n host h\n",
		ID "identity " SECRET "\n host h\n default\n",
		ID "identity a\n",
		ID " tls " SECRET "\n", ID " port " SECRET "\n",
		ID " ssh " SECRET "@\n", ID " ssh h:" SECRET "\n",
		ID " force-sender <" SECRET ">\n",
		ID " tls-fingerprint " SECRET "\n",
		ID " ssh-fingerprint " SECRET "\n",
		ID " auth-without-tls " SECRET "\n",
		ID " timeout " SECRET "\n", ID " host \"\"\n",
		"fetch f\n mode " SECRET "\n",
		"queue \"" SECRET "\n",
		ID " user " SECRET "\n",
		"identity " SECRET "\n host h\n from x\n user u\n",
	};
	struct err e;
	struct config *c;

	(void)state;
	fake_home();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		c = config_parse_string(bad[i], "test.conf", &e);
		if (c != NULL) {
			config_free(c);
			fail_msg("accepted:\n%s", bad[i]);
		}
		if (strstr(e.msg, "Zq8x") != NULL)
			fail_msg("the error quotes the file: %s", e.msg);
		if (strncmp(e.msg, "test.conf:", 10) != 0)
			fail_msg("the error names no line: %s", e.msg);
	}
}

/* --- broken configs: the exact messages -------------------------------- */


static const struct {
	const char	*text;
	const char	*msg;
} broken[] = {
	/* unknown keys and keys in the wrong place */
	{ "queue /q\nfrobnicate 1\n",
	  "test.conf:2: word 1: unknown key (postie.conf(5) lists the "
	  "keys)" },
	{ ID " smtp-host x\n",
	  "test.conf:4: word 1: unknown key (postie.conf(5) lists the "
	  "keys)" },
	{ "Queue /q\n",
	  "test.conf:1: word 1: unknown key; did you mean 'queue'? "
	  "(postie.conf(5) lists the keys)" },
	{ ID " pasword_command pass\n",
	  "test.conf:4: word 1: unknown key; did you mean "
	  "'password-command'? (postie.conf(5) lists the keys)" },
	{ ID " tsl-ca /ca.pem\n",
	  "test.conf:4: word 1: unknown key; did you mean 'tls-ca'? "
	  "(postie.conf(5) lists the keys)" },
	{ ID " hsot x\n",
	  "test.conf:4: word 1: unknown key; did you mean 'host'? "
	  "(postie.conf(5) lists the keys)" },
	{ "idenity work\n",
	  "test.conf:1: word 1: unknown key; did you mean 'identity'? "
	  "(postie.conf(5) lists the keys)" },
	{ "quux /q\n",
	  "test.conf:1: word 1: unknown key (postie.conf(5) lists the "
	  "keys)" },
	{ ID "queue /q\n",
	  "test.conf:4: word 1: 'queue' is a global key: put it before "
	  "the first identity or fetch block" },
	{ "fetch f\n ssh h\n max-size 1M\n",
	  "test.conf:3: word 1: 'max-size' is a global key: put it "
	  "before the first identity or fetch block" },
	{ "host smtp.example.com\n",
	  "test.conf:1: word 1: 'host' belongs in an identity block, not "
	  "in the global section" },
	{ ID " remote Maildir\n",
	  "test.conf:4: word 1: 'remote' belongs in a fetch block, not "
	  "in an identity block" },
	{ ID " folders INBOX\n",
	  "test.conf:4: word 1: 'folders' belongs in a fetch block, not "
	  "in an identity block" },
	{ "fetch f\n ssh h\n from a@b\n",
	  "test.conf:3: word 1: 'from' belongs in an identity block, not "
	  "in a fetch block" },
	{ "ssh me@gw\n",
	  "test.conf:1: word 1: 'ssh' belongs in an identity or fetch "
	  "block, not in the global section" },
	{ "remote Maildir\n",
	  "test.conf:1: word 1: 'remote' belongs in a fetch block, not "
	  "in the global section" },

	/* mda and keep in a fetch block */
	{ "fetch f\n ssh h\n mda procmail\n",
	  "test.conf:3: word 2: 'mda' must start with an absolute path (no "
	  "shell, no $PATH search)" },
	{ "fetch f\n ssh h\n keep 30d\n",
	  "test.conf:3: 'keep' is for 'mode copy': in move mode the "
	  "server's copy goes as soon as it is fetched" },
	{ "fetch f\n ssh h\n mode move\n take cur\n",
	  "test.conf:4: 'take' must be new, or new cur" },
	{ "fetch f\n ssh h\n mode copy\n keep\n",
	  "test.conf:4: word 1: 'keep' needs AGE or FOLDER-GLOB AGE (like "
	  "'keep 30d' or 'keep lists.* 120d')" },
	{ "fetch f\n ssh h\n mode copy\n keep a b c\n",
	  "test.conf:4: word 4: 'keep' needs AGE or FOLDER-GLOB AGE (like "
	  "'keep 30d' or 'keep lists.* 120d')" },
	{ "fetch f\n ssh h\n mode copy\n keep lists.* soon\n",
	  "test.conf:4: word 3: 'keep' needs an age like 30d or 120d, or "
	  "forever" },
	{ "fetch f\n ssh h\n mode copy\n keep 1d\n keep forever\n",
	  "test.conf:5: word 1: 'keep' for these folders is given twice in "
	  "the fetch block" },
	{ "fetch f\n ssh h\n mode copy\n keep a* 1d\n keep a* 2d\n",
	  "test.conf:5: word 2: 'keep' for these folders is given twice in "
	  "the fetch block" },

	/* duplicates */
	{ "queue /a\nqueue /b\n",
	  "test.conf:2: word 1: 'queue' is given twice in the global "
	  "section" },
	{ ID " host i\n",
	  "test.conf:4: word 1: 'host' is given twice in an identity "
	  "block" },
	{ ID " default\n",
	  "test.conf:4: word 1: 'default' is given twice in an identity "
	  "block" },
	{ "fetch f\n ssh h\n mode copy\n mode move\n",
	  "test.conf:4: word 1: 'mode' is given twice in a fetch block" },
	{ "fetch f\n ssh h\n client ../up\n",
	  "test.conf:3: the fetch job's client name is not usable "
	  "on the server: use letters, digits, '.', '_' and '-' (not "
	  "starting with '.' or '-'), at most 64" },
	{ "fetch f\n ssh h\n client .hidden\n",
	  "test.conf:3: the fetch job's client name is not usable "
	  "on the server: use letters, digits, '.', '_' and '-' (not "
	  "starting with '.' or '-'), at most 64" },
	{ "fetch f\n ssh h\n timeout 5s\n timeout 6s\n",
	  "test.conf:4: word 1: 'timeout' is given twice in a fetch block" },
	{ "fetch f\n ssh h\n connect-timeout soon\n",
	  "test.conf:3: word 2: 'connect-timeout' is not a duration "
	  "(like 30s, 5m, 1h, 1d)" },
	{ ID "identity b\n host h\n from x@y\nidentity a\n host i\n",
	  "test.conf:7: word 2: this identity name is taken already, at "
	  "line 1" },
	{ "fetch f\n ssh h\n\nfetch f\n ssh h\n",
	  "test.conf:4: word 2: this fetch name is taken already, at "
	  "line 1" },

	/* incomplete identities (reported at the block's line) */
	{ "\n\nidentity a\n from *@x\n",
	  "test.conf:3: the identity has no 'host'" },
	{ "identity a\n host h\n",
	  "test.conf:1: the identity has neither 'from' nor 'default': "
	  "no mail would ever use it" },
	{ ID "identity b\n host h\n from *@x\n default\n",
	  "test.conf:4: the identity is marked 'default', as is the one "
	  "at line 1: keep one" },
	{ ID " tls-key /k.pem\n",
	  "test.conf:1: the identity has 'tls-key' without 'tls-cert'" },
	{ ID " password hunter2\n",
	  "test.conf:1: the identity has a password but no 'user'" },
	{ ID " password-command /usr/bin/pass smtp\n",
	  "test.conf:1: the identity has a password but no 'user'" },
	{ ID " user me\n password p\n tls none\n",
	  "test.conf:1: the identity would send its password without "
	  "TLS: use tls starttls or tls, or say auth-without-tls yes" },
	{ ID " user me\n",
	  "test.conf:1: the identity has a 'user' but no 'password' or "
	  "'password-command'" },
	{ ID " user me\n password p\n password-command /usr/bin/pass x\n",
	  "test.conf:1: the identity has both 'password' and "
	  "'password-command': keep one" },
	{ ID "identity b\n from *@x\n",
	  "test.conf:4: the identity has no 'host'" },

	/* values */
	{ ID " port 0\n",
	  "test.conf:4: word 2: 'port' must be a number from 1 to 65535" },
	{ ID " port 70000\n",
	  "test.conf:4: word 2: 'port' must be a number from 1 to 65535" },
	{ ID " port abc\n",
	  "test.conf:4: word 2: 'port' must be a number from 1 to 65535" },
	{ ID " port 25x\n",
	  "test.conf:4: word 2: 'port' must be a number from 1 to 65535" },
	{ ID " port -25\n",
	  "test.conf:4: word 2: 'port' must be a number from 1 to 65535" },
	{ ID " port \"\"\n",
	  "test.conf:4: word 2: 'port' must be a number from 1 to 65535" },
	{ ID " port\n",
	  "test.conf:4: word 1: 'port' takes exactly one value, got 0" },
	{ ID " port 25 587\n",
	  "test.conf:4: word 3: 'port' takes exactly one value, got 2" },
	{ ID " tls ssl\n",
	  "test.conf:4: word 2: 'tls' must be starttls, tls or none" },
	{ ID " tls STARTTLS\n",
	  "test.conf:4: word 2: 'tls' must be starttls, tls or none" },
	{ "fetch f\n ssh h\n mode sync\n",
	  "test.conf:3: word 2: 'mode' must be move or copy" },
	{ "batch-delay 5x\n",
	  "test.conf:1: word 2: 'batch-delay' is not a duration (like "
	  "30s, 5m, 1h, 1d)" },
	{ "lifetime -1\n",
	  "test.conf:1: word 2: 'lifetime' is not a duration (like 30s, "
	  "5m, 1h, 1d)" },
	{ ID " connect-timeout m\n",
	  "test.conf:4: word 2: 'connect-timeout' is not a duration "
	  "(like 30s, 5m, 1h, 1d)" },
	{ ID " timeout 1.5m\n",
	  "test.conf:4: word 2: 'timeout' is not a duration (like 30s, "
	  "5m, 1h, 1d)" },
	{ ID " timeout 5 minutes\n",
	  "test.conf:4: word 3: 'timeout' takes exactly one value, got 2" },
	{ "retry 1m 5x 1h\n",
	  "test.conf:1: word 3: 'retry' needs durations of at least 1s "
	  "(like 30s, 5m, 1h, 1d)" },
	{ "retry 1m 0\n",
	  "test.conf:1: word 3: 'retry' needs durations of at least 1s "
	  "(like 30s, 5m, 1h, 1d)" },
	{ "retry\n",
	  "test.conf:1: word 1: 'retry' needs at least one duration" },
	{ "max-size 10MB\n",
	  "test.conf:1: word 2: 'max-size' is not a size (like 512k, "
	  "50M, 1G)" },
	{ "max-size 1.5G\n",
	  "test.conf:1: word 2: 'max-size' is not a size (like 512k, "
	  "50M, 1G)" },
	{ "max-size big\n",
	  "test.conf:1: word 2: 'max-size' is not a size (like 512k, "
	  "50M, 1G)" },
	{ "bounce email\n",
	  "test.conf:1: word 2: 'bounce' must be maildir DIR, mda, "
	  "sender or none" },
	{ "bounce\n",
	  "test.conf:1: word 1: 'bounce' needs maildir DIR, mda, sender "
	  "or none" },
	{ "bounce maildir\n",
	  "test.conf:1: word 2: 'bounce maildir' needs one directory" },
	{ "bounce maildir /a /b\n",
	  "test.conf:1: word 4: 'bounce maildir' needs one directory" },
	{ "bounce none please\n",
	  "test.conf:1: word 3: 'bounce none' takes no more values" },
	{ ID " auth-without-tls maybe\n",
	  "test.conf:4: word 2: 'auth-without-tls' must be yes or no" },
	{ ID " tls-fingerprint md5:ab:cd\n",
	  "test.conf:4: word 2: 'tls-fingerprint' must be sha256: "
	  "followed by 64 hex digits (colons allowed)" },
	{ ID " tls-fingerprint sha256:abcd\n",
	  "test.conf:4: word 2: 'tls-fingerprint' must be sha256: "
	  "followed by 64 hex digits (colons allowed)" },
	{ ID " tls-fingerprint " FP_NORM "00\n",
	  "test.conf:4: word 2: 'tls-fingerprint' must be sha256: "
	  "followed by 64 hex digits (colons allowed)" },
	{ ID " tls-fingerprint sha256:0123456789abcdef0123456789abcdef"
	  "0123456789abcdef0123456789abcdeg\n",
	  "test.conf:4: word 2: 'tls-fingerprint' must be sha256: "
	  "followed by 64 hex digits (colons allowed)" },
	{ ID " ssh-fingerprint MD5:aa:bb:cc\n",
	  "test.conf:4: word 2: 'ssh-fingerprint' must look like "
	  "SHA256:<base64> as ssh-keygen -lf prints it" },
	{ "fetch f\n ssh h\n ssh-fingerprint SHA256:short\n",
	  "test.conf:3: word 2: 'ssh-fingerprint' must look like "
	  "SHA256:<base64> as ssh-keygen -lf prints it" },
	{ ID " ssh-fingerprint sha256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\n",
	  "test.conf:4: word 2: 'ssh-fingerprint' must look like "
	  "SHA256:<base64> as ssh-keygen -lf prints it" },
	{ ID " ssh user@\n",
	  "test.conf:4: word 2: 'ssh' must be user@host or user@host:port" },
	{ ID " ssh @host\n",
	  "test.conf:4: word 2: 'ssh' must be user@host or user@host:port" },
	{ ID " ssh host:0\n",
	  "test.conf:4: word 2: 'ssh' has a port that is not a number "
	  "from 1 to 65535" },
	{ ID " ssh host:x\n",
	  "test.conf:4: word 2: 'ssh' has a port that is not a number "
	  "from 1 to 65535" },
	{ ID " ssh host:\n",
	  "test.conf:4: word 2: 'ssh' has a port that is not a number "
	  "from 1 to 65535" },
	{ "fetch f\n ssh u@h:65536\n",
	  "test.conf:2: word 2: 'ssh' has a port that is not a number "
	  "from 1 to 65535" },
	{ ID " ssh u@:22\n",
	  "test.conf:4: word 2: 'ssh' must be user@host or user@host:port" },
	{ ID " ssh u@[::1\n",
	  "test.conf:4: word 2: 'ssh' must be user@host or user@host:port" },
	{ ID " ssh u@[]:22\n",
	  "test.conf:4: word 2: 'ssh' must be user@host or user@host:port" },
	{ ID " ssh u@[::1]x\n",
	  "test.conf:4: word 2: 'ssh' must be user@host or user@host:port" },
	{ "identity a\n host \"\"\n",
	  "test.conf:2: word 2: 'host' must not be empty" },
	{ ID " helo \"\"\n",
	  "test.conf:4: word 2: 'helo' must not be empty" },
	{ "identity a\n host a b\n",
	  "test.conf:2: word 3: 'host' takes exactly one value, got 2" },
	{ "identity a\n host h\n from\n",
	  "test.conf:3: word 1: 'from' needs at least one value" },
	{ ID " force-sender \"a b@c\"\n",
	  "test.conf:4: word 2: 'force-sender' is not a plain ASCII "
	  "address" },
	{ ID " force-sender <me@x>\n",
	  "test.conf:4: word 2: 'force-sender' is not a plain ASCII "
	  "address" },
	{ ID " force-sender j\xc3\xb6rg@x\n",
	  "test.conf:4: word 2: 'force-sender' is not a plain ASCII "
	  "address" },
	{ "identity a\n host h\n default yes\n",
	  "test.conf:3: word 2: 'default' takes no value" },

	/* blocks */
	{ "identity\n",
	  "test.conf:1: word 1: 'identity' needs one name, like "
	  "'identity work'" },
	{ "fetch\n",
	  "test.conf:1: word 1: 'fetch' needs one name, like 'fetch work'" },
	{ "identity a b\n",
	  "test.conf:1: word 3: 'identity' needs one name, like "
	  "'identity work'" },
	{ "identity wo/rk\n",
	  "test.conf:1: word 2: an identity name may only have letters, "
	  "digits, '-', '_' and '.'" },
	{ "fetch \"in box\"\n",
	  "test.conf:1: word 2: a fetch name may only have letters, "
	  "digits, '-', '_' and '.'" },
	{ "identity \"\"\n",
	  "test.conf:1: word 2: an identity name may only have letters, "
	  "digits, '-', '_' and '.'" },
	{ "fetch f\n remote Maildir\n",
	  "test.conf:1: the fetch job has no 'ssh' server" },

	/* syntax */
	{ "queue \"/a b\n",
	  "test.conf:1: word 2: unterminated quote" },
	{ "# ok\nqueue /q\nlog \"/var/log/x\n",
	  "test.conf:3: word 2: unterminated quote" },

	/* paths and commands */
	{ "log postie.log\n",
	  "test.conf:1: word 2: 'log' must be syslog, stderr or an "
	  "absolute file path" },
	{ "log ./postie.log\n",
	  "test.conf:1: word 2: 'log' must be syslog, stderr or an "
	  "absolute file path" },
	{ "log syslog stderr\n",
	  "test.conf:1: word 3: 'log' takes exactly one value, got 2" },
	{ "mda procmail -d %T\n",
	  "test.conf:1: word 2: 'mda' must start with an absolute path "
	  "(no shell, no $PATH search)" },
	{ "mda \"procmail -d %T\"\n",
	  "test.conf:1: word 2: 'mda' must start with an absolute path "
	  "(no shell, no $PATH search)" },
	{ "mda\n",
	  "test.conf:1: word 1: 'mda' needs a command" },
	{ "mda \"\"\n",
	  "test.conf:1: word 2: 'mda' needs a command" },
	{ "mda \"   \"\n",
	  "test.conf:1: word 2: 'mda' needs a command" },
	{ "mda \"/bin/x \\\"a\"\n",
	  "test.conf:1: word 2: 'mda': unterminated quote" },
	{ ID " user me\n password-command \"pass show smtp\"\n",
	  "test.conf:5: word 2: 'password-command' must start with an "
	  "absolute path (no shell, no $PATH search)" },
};

static void
test_broken_configs(void **state)
{
	size_t bad = 0;

	(void)state;
	fake_home();
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
		if (!error_is(broken[i].text, broken[i].msg))
			bad++;
	if (bad > 0)
		fail_msg("%zu of %zu broken configs gave the wrong result", bad,
		    sizeof(broken) / sizeof(broken[0]));
}

static void
test_error_names_the_file(void **state)
{
	struct err e;

	(void)state;
	memset(&e, 0, sizeof(e));
	assert_null(config_parse_string("bogus\n", "/etc/other.conf", &e));
	assert_int_equal(e.code, ERR_CONFIG);
	assert_string_equal(e.msg, "/etc/other.conf:1: word 1: unknown key "
	    "(postie.conf(5) lists the keys)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_no_file),
		cmocka_unit_test(test_defaults_empty_text),
		cmocka_unit_test(test_defaults_xdg_state),
		cmocka_unit_test(test_global_keys),
		cmocka_unit_test(test_log_values),
		cmocka_unit_test(test_bounce_values),
		cmocka_unit_test(test_retry_single_and_zero_durations),
		cmocka_unit_test(test_identity_all_keys),
		cmocka_unit_test(test_identity_defaults),
		cmocka_unit_test(test_host_with_brackets_and_port),
		cmocka_unit_test(test_port_defaults_by_tls),
		cmocka_unit_test(test_bool_values),
		cmocka_unit_test(test_password_command),
		cmocka_unit_test(test_tls_fingerprint_forms),
		cmocka_unit_test(test_ssh_targets),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_several_blocks),
		cmocka_unit_test(test_fetch_all_keys),
		cmocka_unit_test(test_fetch_defaults),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_split_words),
		cmocka_unit_test(test_comments_in_config),
		cmocka_unit_test(test_crlf_lines),
		cmocka_unit_test(test_tilde_expansion),
		cmocka_unit_test(test_command_keys),
		cmocka_unit_test(test_identity_for),
		cmocka_unit_test(test_identity_for_without_default),
		cmocka_unit_test(test_identity_match_beats_earlier_default),
		cmocka_unit_test(test_resolve_identity),
		cmocka_unit_test(test_load_order),
		cmocka_unit_test(test_load_nothing_gives_defaults),
		cmocka_unit_test(test_load_missing_named_file),
		cmocka_unit_test(test_load_reports_errors_with_path),
		cmocka_unit_test(test_password_file_mode),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_only_regular_files),
		cmocka_unit_test(test_size_and_line_limits),
		cmocka_unit_test(test_ownership),
		cmocka_unit_test(test_trust_program),
		cmocka_unit_test(test_errors_never_quote_the_file),
		cmocka_unit_test(test_broken_configs),
		cmocka_unit_test(test_fetch_mda_and_keep),
		cmocka_unit_test(test_error_names_the_file),
	};

	return cmocka_run_group_tests_name("test_config", tests, NULL, NULL);
}
