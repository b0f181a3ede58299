/*
 * fuzz_config.c - the configuration parser (config_parse_string, the
 * grammar of config.h). The input is a config file; after a first NUL
 * byte, an envelope sender to pick an identity for.
 *
 * A config either parses into a struct config whose promised defaults
 * are filled in (every identity has a host and a port, every fetch job an
 * SSH server, a remote, a local folder and a folder list), or fails with
 * one "FILE:LINE: what" error line.
 */
#include "config.h"
#include "fuzz.h"

#define NAME "fuzz.conf"

static void
check_identity(const struct config *cfg, const struct identity *id)
{
	FUZZ_CHECK(id->name != NULL && id->host != NULL);
	FUZZ_CHECK(id->port > 0 && id->port <= 65535);
	FUZZ_CHECK(id->from.n > 0 || id->is_default);
	FUZZ_CHECK(id->password == NULL || id->password_command.n == 0);
	FUZZ_CHECK(config_identity_by_name(cfg, id->name) != NULL);
}

static void
check_job(const struct fetch_job *j)
{
	FUZZ_CHECK(j->name != NULL && j->ssh.host != NULL);
	FUZZ_CHECK(j->remote != NULL && j->local != NULL && j->folders.n > 0);
}

static void
check_config(const struct config *cfg, const char *sender)
{
	const struct identity *id;

	FUZZ_CHECK(cfg->path != NULL && strcmp(cfg->path, NAME) == 0);
	FUZZ_CHECK(cfg->queue != NULL && cfg->nretry > 0);
	FUZZ_CHECK(cfg->log != LOGTO_FILE || cfg->log_file != NULL);
	for (size_t i = 0; i < cfg->nretry; i++)
		FUZZ_CHECK(cfg->retry[i] >= 0);
	for (size_t i = 0; i < cfg->nids; i++)
		check_identity(cfg, &cfg->ids[i]);
	for (size_t i = 0; i < cfg->njobs; i++)
		check_job(&cfg->jobs[i]);
	id = config_identity_for(cfg, sender);
	FUZZ_CHECK(id == NULL || (id >= cfg->ids && id < cfg->ids + cfg->nids));
	FUZZ_CHECK(config_resolve_identity(cfg, "no such identity", sender) ==
	    id);
	if (cfg->nids > 0)
		FUZZ_CHECK(config_resolve_identity(cfg, cfg->ids[0].name,
		    sender) == &cfg->ids[0]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	size_t tlen = strlen(text);
	const char *sender = tlen < size ? text + tlen + 1 :
	    "me@corp.example.com";
	struct err e = { 0 };
	struct config *cfg = config_parse_string(text, NAME, &e);

	if (cfg != NULL) {
		check_config(cfg, sender);
		config_free(cfg);
	} else {
		FUZZ_CHECK(e.code != ERR_OK && e.msg[0] != '\0');
		FUZZ_CHECK(strchr(e.msg, '\n') == NULL);
	}
	free(text);
	return 0;
}
