/* test_sshcfg.c - ssh_config: patterns, first value wins, Match, Include,
 * tokens, ProxyJump hops, hostile text; the route built from it. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sshcfg.h"
#include "sshroute.h"
#include "util.h"

#define S(x) x, sizeof(x) - 1

static const struct sshcfg_ctx ctx_mail = { "mail", NULL, "me", "/home/me",
    true };

static void
test_glob(void **state)
{
	(void)state;
	assert_true(sshcfg_glob("*", "anything"));
	assert_true(sshcfg_glob("*.example.org", "mail.EXAMPLE.org"));
	assert_false(sshcfg_glob("*.example.org", "example.org"));
	assert_true(sshcfg_glob("ma?l", "mail"));
	assert_false(sshcfg_glob("ma?l", "mal"));
	assert_true(sshcfg_glob("a*b*c", "aXXbYYbc"));
	assert_false(sshcfg_glob("a*b*c", "aXXbYYb"));
	assert_true(sshcfg_glob("", ""));
	assert_false(sshcfg_glob("", "x"));
}

static void
test_match_list_negation(void **state)
{
	const char *pats[] = { "*.example.org", "!secret.example.org" };
	const char *neg_only[] = { "!other" };

	(void)state;
	assert_true(sshcfg_match_list("mail.example.org", pats, 2));
	assert_false(sshcfg_match_list("secret.example.org", pats, 2));
	assert_false(sshcfg_match_list("mail.example.com", pats, 2));
	/* a line of negations alone matches nothing, as in ssh */
	assert_false(sshcfg_match_list("mail", neg_only, 1));
}

static void
test_first_value_wins(void **state)
{
	static const char text[] =
	    "# a comment\n"
	    "Host other\n"
	    "  HostName wrong.example.org\n"
	    "Host mail mx !nope\n"
	    "  HOSTNAME=real.example.org\n"
	    "  Port = 2222\n"
	    "  user \"me too\"\n"
	    "  IdentityFile ~/.ssh/id_mail\n"
	    "  UserKnownHostsFile ~/.ssh/kh_a '/k h/b'  # trailing comment\n"
	    "  IdentitiesOnly yes\n"
	    "Host *\n"
	    "  HostName second.example.org\n"
	    "  Port 22\n"
	    "  User nobody\n"
	    "  IdentityFile %d/.ssh/id_%h\n"
	    "  UserKnownHostsFile /other\n"
	    "  GlobalKnownHostsFile /etc/kh1 /etc/kh2\n"
	    "  IdentitiesOnly no\n"
	    "  ProxyJump jump1,me@jump2:2200\n"
	    "  ProxyCommand nc %h %p\n"
	    "  SomethingElse ignored\n";
	struct sshcfg c;
	struct err e;

	(void)state;
	sshcfg_init(&c);
	assert_int_equal(sshcfg_parse(&c, &ctx_mail, S(text), "cfg", &e), 0);
	assert_string_equal(c.hostname, "real.example.org");
	assert_int_equal(c.port, 2222);
	assert_string_equal(c.user, "me too");
	assert_int_equal(c.identity_files.n, 2);	/* they add up */
	assert_string_equal(c.identity_files.v[0], "~/.ssh/id_mail");
	assert_string_equal(c.identity_files.v[1], "%d/.ssh/id_%h");
	assert_string_equal(c.identity_where.v[1], "cfg:15");
	assert_int_equal(c.known_hosts.n, 2);
	assert_string_equal(c.known_hosts.v[1], "/k h/b");
	assert_int_equal(c.global_known_hosts.n, 2);	/* @revoked only */
	assert_string_equal(c.global_known_hosts.v[1], "/etc/kh2");
	assert_string_equal(c.global_where, "cfg:17");
	assert_int_equal(c.identities_only, 1);
	assert_string_equal(c.proxy_jump, "jump1,me@jump2:2200");
	assert_null(c.proxy_command);	/* the first of the two wins */
	assert_string_equal(c.proxy_where, "cfg:19");
	sshcfg_free(&c);
}

static void
test_negated_host_skips(void **state)
{
	static const char text[] =
	    "Host * !mail\n"
	    "  Port 1\n"
	    "Host mail\n"
	    "  Port 2\n";
	struct sshcfg c;
	struct err e;

	(void)state;
	sshcfg_init(&c);
	assert_int_equal(sshcfg_parse(&c, &ctx_mail, S(text), "f", &e), 0);
	assert_int_equal(c.port, 2);
	sshcfg_free(&c);
}

static void
test_match(void **state)
{
	static const char text[] =
	    "Match exec \"true\"\n"		/* not evaluated: no match */
	    "  Port 1\n"
	    "Match host other\n"
	    "  Port 2\n"
	    "Match originalhost mail !localuser root\n"
	    "  User fromMatch\n"
	    "Match final\n"
	    "  HostName never\n"
	    "Match all\n"
	    "  Port 3\n";
	struct sshcfg c;
	struct err e;

	(void)state;
	sshcfg_init(&c);
	assert_int_equal(sshcfg_parse(&c, &ctx_mail, S(text), "f", &e), 0);
	assert_int_equal(c.port, 3);
	assert_string_equal(c.user, "fromMatch");
	assert_null(c.hostname);
	sshcfg_free(&c);
	sshcfg_init(&c);
	assert_int_equal(sshcfg_parse(&c, &ctx_mail, S("Match host\n"), "f",
	    &e), -1);
	assert_string_equal(e.msg, "f:1: Match host needs an argument");
	sshcfg_free(&c);
}

static void
test_errors_name_file_and_line(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "Host mail\n  Port 70000\n",
		    "f:2: Port 70000 is not a number from 1 to 65535" },
		{ "\n\nHost mail\n User \"open\n",
		    "f:4: a \" quote is not closed" },
		{ "IdentitiesOnly maybe\n",
		    "f:1: IdentitiesOnly must be yes or no" },
		{ "Host\n", "f:1: Host needs a pattern" },
		{ "HostName a b\n", "f:1: HostName needs one value" },
	};
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sshcfg c;

		sshcfg_init(&c);
		assert_int_equal(sshcfg_parse(&c, &ctx_mail, cases[i].text,
		    strlen(cases[i].text), "f", &e), -1);
		assert_int_equal(e.code, ERR_CONFIG);
		assert_string_equal(e.msg, cases[i].msg);
		sshcfg_free(&c);
	}
}

static void
test_hostile_bounds(void **state)
{
	struct sshcfg c;
	struct err e;
	size_t n = SSHCFG_MAX_LINE + 10;
	char *big = xmalloc(n + 1);

	(void)state;
	memset(big, 'x', n);
	big[n] = '\0';
	sshcfg_init(&c);
	assert_int_equal(sshcfg_parse(&c, &ctx_mail, big, n, "f", &e), -1);
	assert_string_equal(e.msg, "f:1: line longer than 4096 bytes");
	assert_int_equal(sshcfg_parse(&c, &ctx_mail, S("Port 1\0\n"), "f",
	    &e), -1);
	assert_non_null(strstr(e.msg, "NUL"));
	free(big);
	/* an inactive block's bad values do not matter */
	assert_int_equal(sshcfg_parse(&c, &ctx_mail,
	    S("Host x\n Port nope\n"), "f", &e), 0);
	sshcfg_free(&c);
}

static void
test_expand_tokens(void **state)
{
	struct sshcfg_tokens t = { "/home/me", "real.example.org", "mail",
	    "remote", "me", 2222 };
	struct err e;
	char *s;

	(void)state;
	s = sshcfg_expand("~/.ssh/%h_%r@%n:%p_%u_%%_%d", &t, "dhnpru", true,
	    "f:1", "IdentityFile", &e);
	assert_string_equal(s, "/home/me/.ssh/real.example.org_remote@mail:"
	    "2222_me_%_/home/me");
	free(s);
	s = sshcfg_expand("%h.internal", &t, "h", false, "f:1", "HostName", &e);
	assert_string_equal(s, "real.example.org.internal");
	free(s);
	assert_null(sshcfg_expand("%r.x", &t, "h", false, "f:3", "HostName",
	    &e));
	assert_string_equal(e.msg, "f:3: HostName: %r is not a token postie "
	    "expands there");
	assert_null(sshcfg_expand("a%", &t, "dh", false, "f:3", "HostName",
	    &e));
	assert_null(sshcfg_expand("~bob/x", &t, "dh", true, "f:2",
	    "IdentityFile", &e));
	/* no tilde expansion unless asked */
	s = sshcfg_expand("~/x", &t, "", false, "f", "k", &e);
	assert_string_equal(s, "~/x");
	free(s);
}

static void
test_jump_hops(void **state)
{
	struct sshcfg_hop h[4];
	size_t n;
	struct err e;

	(void)state;
	assert_int_equal(sshcfg_parse_jump("a,me@b:2200,ssh://u@[::1]:22",
	    h, 4, &n, "f:1", &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(h[0].host, "a");
	assert_null(h[0].user);
	assert_int_equal(h[0].port, 0);
	assert_string_equal(h[1].user, "me");
	assert_string_equal(h[1].host, "b");
	assert_int_equal(h[1].port, 2200);
	assert_string_equal(h[2].host, "::1");
	assert_int_equal(h[2].port, 22);
	sshcfg_hops_free(h, n);
	assert_int_equal(sshcfg_parse_jump("none", h, 4, &n, "f", &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sshcfg_parse_jump("a,,b", h, 4, &n, "f:2", &e), -1);
	assert_int_equal(sshcfg_parse_jump("a:0", h, 4, &n, "f:2", &e), -1);
	assert_string_equal(e.msg, "f:2: ProxyJump hop a:0 is not "
	    "[user@]host[:port]");
	assert_int_equal(sshcfg_parse_jump("a b", h, 4, &n, "f", &e), -1);
	assert_int_equal(sshcfg_parse_jump("a,b,c,d,e", h, 4, &n, "f", &e),
	    -1);
	assert_int_equal(n, 0);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void
test_include_and_trust(void **state)
{
	char *dir = tu_tmpdir();
	char *top = xasprintf("%s/config", dir);
	char *sub = xasprintf("%s/conf.d", dir);
	char *a = xasprintf("%s/conf.d/10-a.conf", dir);
	char *b = xasprintf("%s/conf.d/20-b.conf", dir);
	char *loop = xasprintf("%s/loop", dir);
	char *looptext = xasprintf("Include %s\n", loop);
	struct sshcfg_ctx x = { "mail", NULL, "me", dir, false };
	struct sshcfg c;
	struct err e;

	(void)state;
	mkdir(sub, 0700);
	/* relative to the top file's directory; the included file's Host
	 * ends with it; the outer block goes on after it */
	write_file(top, "Host mail\n Include conf.d/*.conf\n Port 7\n", 0600);
	write_file(a, "User fromA\nHost other\n IdentityFile nope\n", 0600);
	write_file(b, "HostName fromB\n", 0600);
	sshcfg_init(&c);
	assert_int_equal(sshcfg_read_file(&c, &x, top, &e), 0);
	assert_string_equal(c.user, "fromA");
	assert_string_equal(c.hostname, "fromB");
	assert_int_equal(c.port, 7);
	assert_int_equal(c.identity_files.n, 0);
	assert_int_equal(c.files, 3);
	sshcfg_free(&c);
	/* an Include loop ends at the depth bound */
	write_file(loop, looptext, 0600);
	sshcfg_init(&c);
	assert_int_equal(sshcfg_read_file(&c, &x, loop, &e), -1);
	assert_non_null(strstr(e.msg, "nested more than 16 deep"));
	sshcfg_free(&c);
	/* others may write it: refused, as ssh refuses */
	chmod(b, 0666);
	sshcfg_init(&c);
	assert_int_equal(sshcfg_read_file(&c, &x, top, &e), -1);
	assert_non_null(strstr(e.msg, "writable by other users"));
	sshcfg_free(&c);
	/* a file that does not exist adds nothing */
	sshcfg_init(&c);
	assert_int_equal(sshcfg_read_file(&c, &x, "/nonexistent/cfg", &e), 0);
	sshcfg_free(&c);
	tu_rmtree(dir);
	free(dir);
	free(top);
	free(sub);
	free(a);
	free(b);
	free(loop);
	free(looptext);
}

static void
test_route(void **state)
{
	char *dir = tu_tmpdir();
	char *cfg = xasprintf("%s/config", dir);
	const char *files[] = { cfg };
	struct ssh_target tg = { NULL, (char *)"mail", 22, false };
	struct sshroute_in in = { &tg, NULL, NULL, files, 1 };
	struct ssh_route r;
	struct err e;

	(void)state;
	write_file(cfg,
	    "Host mail\n HostName 127.0.0.1\n Port 2022\n User box\n"
	    " IdentityFile /k/%r_%h\n UserKnownHostsFile /kh/%n\n"
	    " ProxyJump j1,root@j2:2200\n"
	    "Host j1\n HostName 10.0.0.1\n Port 2201\n HostKeyAlias jumpy\n"
	    "Host pc\n ProxyCommand ssh -W %h:%p gw\n"
	    "Host loop\n ProxyJump pc\n"
	    "Host *\n CertificateFile /c\n", 0600);
	assert_int_equal(sshroute_resolve(&in, &r, &e), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.hop[0].host, "10.0.0.1");
	assert_int_equal(r.hop[0].port, 2201);
	assert_string_equal(r.hop[0].kh_host, "jumpy");
	assert_int_equal(r.hop[0].kh_port, 22);
	assert_string_equal(r.hop[1].host, "j2");
	assert_string_equal(r.hop[1].user, "root");
	assert_int_equal(r.hop[1].port, 2200);
	assert_string_equal(r.hop[2].name, "mail");
	assert_string_equal(r.hop[2].host, "127.0.0.1");
	assert_int_equal(r.hop[2].port, 2022);
	assert_string_equal(r.hop[2].user, "box");
	assert_string_equal(r.hop[2].keys.v[0], "/k/box_127.0.0.1");
	assert_false(r.hop[2].keys_only);
	assert_string_equal(r.hop[2].known_hosts.v[0], "/kh/mail");
	assert_non_null(strstr(r.hop[2].cert_where, "config:"));
	sshroute_free(&r);
	/* postie's own keys win */
	tg.user = (char *)"mine";
	tg.port = 22;
	tg.port_given = true;
	in.key = "/my/key";
	in.known_hosts = "/my/kh";
	assert_int_equal(sshroute_resolve(&in, &r, &e), 0);
	assert_string_equal(r.hop[2].user, "mine");
	assert_int_equal(r.hop[2].port, 22);
	assert_int_equal(r.hop[2].keys.n, 1);
	assert_string_equal(r.hop[2].keys.v[0], "/my/key");
	assert_true(r.hop[2].keys_only);
	assert_string_equal(r.hop[2].known_hosts.v[0], "/my/kh");
	/* ... for the server, not for a jump host */
	assert_false(r.hop[0].key_given);
	sshroute_free(&r);
	/* ProxyCommand alone: refused, naming the line */
	tg.host = (char *)"pc";
	assert_int_equal(sshroute_resolve(&in, &r, &e), -1);
	assert_int_equal(e.code, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "config:13: ProxyCommand is how ssh "
	    "reaches pc"));
	/* a jump host only a ProxyCommand reaches: refused */
	tg.host = (char *)"loop";
	assert_int_equal(sshroute_resolve(&in, &r, &e), -1);
	assert_non_null(strstr(e.msg, "config:13: ProxyCommand is how ssh "
	    "reaches the jump host pc"));
	tu_rmtree(dir);
	free(dir);
	free(cfg);
}

/* As ssh: the first hop's own ProxyJump goes before it, the later
 * hops' own are not followed; a loop ends at the bound. */
static void
test_route_first_hop_chain(void **state)
{
	char *dir = tu_tmpdir();
	char *cfg = xasprintf("%s/config", dir);
	const char *files[] = { cfg };
	struct ssh_target tg = { NULL, (char *)"mail", 22, false };
	struct sshroute_in in = { &tg, NULL, NULL, files, 1 };
	struct ssh_route r;
	struct err e;

	(void)state;
	write_file(cfg,
	    "Host mail\n ProxyJump inner,late\n"
	    "Host inner\n ProxyJump outer\n"
	    "Host outer\n Port 2201\n"
	    "Host late\n ProxyJump ignored\n"
	    "Host x\n ProxyJump y\n"
	    "Host y\n ProxyJump x\n", 0600);
	assert_int_equal(sshroute_resolve(&in, &r, &e), 0);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.hop[0].name, "outer");
	assert_int_equal(r.hop[0].port, 2201);
	assert_string_equal(r.hop[1].name, "inner");
	assert_string_equal(r.hop[2].name, "late");
	assert_string_equal(r.hop[3].name, "mail");
	sshroute_free(&r);
	tg.host = (char *)"x";
	assert_int_equal(sshroute_resolve(&in, &r, &e), -1);
	assert_non_null(strstr(e.msg, "more than 8 jump hosts through "
	    "ProxyJump (a loop?)"));
	assert_int_equal(r.n, 0);
	tu_rmtree(dir);
	free(dir);
	free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_match_list_negation),
		cmocka_unit_test(test_first_value_wins),
		cmocka_unit_test(test_negated_host_skips),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_hostile_bounds),
		cmocka_unit_test(test_expand_tokens),
		cmocka_unit_test(test_jump_hops),
		cmocka_unit_test(test_include_and_trust),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_route_first_hop_chain),
	};

	return cmocka_run_group_tests_name("test_sshcfg", tests, NULL, NULL);
}
