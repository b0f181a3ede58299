/*
 * fuzz_smtpd.c - sendmail -bs (smtpd.h): the input is what the client
 * writes to the pipe, the dialogue runs to its end, and what it spooled
 * is checked and removed.
 *
 * No side effect leaves the process's own temporary directory: the
 * queue lives in a directory made once per process (LLVMFuzzerInitialize)
 * under $TMPDIR and removed at exit, the log goes to /dev/null, and no
 * process is started (smtpd_run only spools; starting deliver afterwards
 * is its caller's job).
 *
 * Checked: every reply is one well-formed SMTP line (hostile text never
 * splits one), each "queued as" reply is one committed msg/ID whose
 * envelope reads back with a valid sender and recipients, and a refused
 * or broken-off message leaves nothing in tmp/.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "message.h"
#include "smtpd.h"

int	LLVMFuzzerInitialize(int *argc, char ***argv);

/* max-size is small enough for the fuzzer to reach */
static const char config_text[] =
    "log /dev/null\n"
    "max-size 4k\n"
    "identity work\n"
    "  from *@corp.example.com\n"
    "  host smtp.corp.example.com\n"
    "  force-sender me@corp.example.com\n"
    "identity home\n"
    "  default\n"
    "  host smtp.example.org\n";

static char queue_dir[4096];

static void
remove_queue(void)
{
	static const char *const subs[] = { "tmp", "msg", "state" };

	for (size_t i = 0; i < 3; i++) {
		char *d = xasprintf("%s/%s", queue_dir, subs[i]);

		rmdir(d);
		free(d);
	}
	rmdir(queue_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	struct queue q;
	struct err e = { 0 };

	(void)argc;
	(void)argv;
	snprintf(queue_dir, sizeof(queue_dir), "%s/postie-fuzz-smtpd-XXXXXX",
	    tmp != NULL && *tmp == '/' ? tmp : "/tmp");
	FUZZ_CHECK(mkdtemp(queue_dir) != NULL);
	FUZZ_CHECK(queue_open(&q, queue_dir, true, &e) == 0);
	queue_close(&q);
	atexit(remove_queue);
	return 0;
}

/* "NNN text" or "NNN-text" lines, each ending in CRLF. */
static size_t
check_replies(const char *out, size_t len)
{
	static const char queued_as[] = "250 2.0.0 Ok: queued as ";
	size_t queued = 0;

	for (size_t pos = 0; pos < len; ) {
		const char *line = out + pos;
		const char *crlf = memmem(line, len - pos, "\r\n", 2);
		size_t n;

		FUZZ_CHECK(crlf != NULL);
		n = (size_t)(crlf - line);
		FUZZ_CHECK(n >= 4 && line[0] >= '2' && line[0] <= '5' &&
		    line[1] >= '0' && line[1] <= '9' && line[2] >= '0' &&
		    line[2] <= '9' && (line[3] == ' ' || line[3] == '-'));
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(line[i] != '\r' && line[i] != '\n' &&
			    line[i] != '\0');
		if (n > sizeof(queued_as) - 1 &&
		    memcmp(line, queued_as, sizeof(queued_as) - 1) == 0)
			queued++;
		pos += n + 2;
	}
	return queued;
}

static void
check_message(struct queue *q, const char *id)
{
	struct envelope env;
	struct err e = { 0 };
	const char *why = NULL;
	char *path;

	FUZZ_CHECK(queue_read_envelope(q, id, &env, &e) == 0);
	FUZZ_CHECK(env.rcpts.n > 0);
	FUZZ_CHECK(*env.sender == '\0' ||
	    addr_valid_envelope(env.sender, &why));
	for (size_t i = 0; i < env.rcpts.n; i++)
		FUZZ_CHECK(addr_valid_envelope(env.rcpts.v[i], &why));
	envelope_free(&env);
	path = xasprintf("%s/%s", q->msg, id);
	FUZZ_CHECK(unlink(path) == 0);
	free(path);
}

static bool
dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool empty = true;

	FUZZ_CHECK(d != NULL);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			empty = false;
	closedir(d);
	return empty;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = { 0 };
	struct config *cfg = config_parse_string(config_text, "fuzz", &e);
	struct queue q;
	struct log log;
	struct strvec ids;
	char *out = NULL;
	size_t outlen = 0, queued = 0;
	FILE *fp = open_memstream(&out, &outlen);
	int fd = memfd_create("fuzz_smtpd", MFD_CLOEXEC);

	FUZZ_CHECK(cfg != NULL && fp != NULL && fd >= 0);
	FUZZ_CHECK(size == 0 || util_write_all(fd, data, size) ==
	    (ssize_t)size);
	FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	FUZZ_CHECK(queue_open(&q, queue_dir, false, &e) == 0);
	log_open(&log, cfg, "sendmail", false);
	(void)smtpd_run(cfg, &q, fd, fp, &log, &queued, &e);
	log_close(&log);
	FUZZ_CHECK(fclose(fp) == 0);
	FUZZ_CHECK(check_replies(out, outlen) == queued);
	sv_init(&ids);
	FUZZ_CHECK(queue_list(&q, &ids, &e) == 0);
	FUZZ_CHECK(ids.n == queued);
	for (size_t i = 0; i < ids.n; i++)
		check_message(&q, ids.v[i]);
	FUZZ_CHECK(dir_empty(q.tmp) && dir_empty(q.state));
	sv_free(&ids);
	queue_close(&q);
	close(fd);
	free(out);
	config_free(cfg);
	return 0;
}
