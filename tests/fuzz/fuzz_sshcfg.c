/*
 * fuzz_sshcfg.c - ssh_config text (sshcfg.h), read from ~/.ssh/config
 * and the files it includes: text anyone who could write there chose.
 *
 * Checked: the parse ends (with an error naming "cfg:LINE: ") or gives
 * values without control characters that the bounds allow; a port in
 * range; ProxyJump values split into hops with a host each; the values
 * expand (or fail cleanly). Include lines are parsed, never followed.
 */
#include "fuzz.h"
#include "sshcfg.h"

static void
check_hops(const char *s)
{
	struct sshcfg_hop h[8];
	size_t n;
	struct err e;

	if (sshcfg_parse_jump(s, h, 8, &n, "cfg:1", &e) < 0) {
		FUZZ_CHECK(n == 0);
		FUZZ_CHECK(e.code == ERR_CONFIG);
		return;
	}
	FUZZ_CHECK(n <= 8);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(h[i].host != NULL && h[i].host[0] != '\0');
		FUZZ_CHECK(h[i].port >= 0 && h[i].port <= 65535);
	}
	sshcfg_hops_free(h, n);
}

static void
check_expand(const char *s)
{
	struct sshcfg_tokens t = { "/home/me", "h.example", "alias", "ruser",
	    "me", 22 };
	struct err e;
	char *v = sshcfg_expand(s, &t, "dhnpru", true, "cfg:1",
	    "IdentityFile", &e);

	if (v == NULL) {
		FUZZ_CHECK(e.code == ERR_CONFIG);
		return;
	}
	free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sshcfg_ctx x = { "mail", NULL, "me", "/home/me",
	    true };
	struct sshcfg c;
	struct err e;

	sshcfg_init(&c);
	if (sshcfg_parse(&c, &x, (const char *)data, size, "cfg", &e) < 0) {
		FUZZ_CHECK(e.code == ERR_CONFIG);
		FUZZ_CHECK(strncmp(e.msg, "cfg:", 4) == 0);
		sshcfg_free(&c);
		return 0;
	}
	FUZZ_CHECK(c.port >= 0 && c.port <= 65535);
	FUZZ_CHECK(c.identity_files.n == c.identity_where.n);
	FUZZ_CHECK(c.identities_only >= -1 && c.identities_only <= 1);
	FUZZ_CHECK(c.proxy_jump == NULL || c.proxy_command == NULL);
	if (c.hostname != NULL) {
		FUZZ_CHECK(strlen(c.hostname) <= SSHCFG_MAX_LINE);
		check_expand(c.hostname);
	}
	for (size_t i = 0; i < c.identity_files.n; i++)
		check_expand(c.identity_files.v[i]);
	if (c.proxy_jump != NULL)
		check_hops(c.proxy_jump);
	sshcfg_free(&c);
	return 0;
}
