/*
 * fuzz_fetch.c - fetch's rules for names a server sends (fetch.h): may a
 * listed name become a local file name (fetch_name_problem), its ",S="
 * size hint, its unique part, and which folders a job takes. The input
 * is one name as a listing gives it: any bytes, NULs too, with a NUL
 * after the last one.
 *
 * Checked against the rule stated plainly: a name is accepted only if it
 * is 1 to 255 printable ASCII bytes with no '/' and is not "." or "..",
 * so that it names a file inside the local folder and nothing else.
 */
#include "fetch.h"
#include "fuzz.h"

static bool
safe_name(const char *name, size_t len)
{
	if (len == 0 || len > 255 || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] == '/' || name[i] < 0x20 || name[i] > 0x7e)
			return false;
	return true;
}

static void
check_accepted(const char *name, size_t len)
{
	static const char *const globs[] = { "INBOX", ".lists.*", ".[A-Z]*" };
	struct strvec folders;
	uint64_t size = 0;
	size_t ulen = fetch_unique_len(name);

	FUZZ_CHECK(ulen <= len);
	FUZZ_CHECK(ulen == len || name[ulen] == ':');
	FUZZ_CHECK(memchr(name, ':', ulen) == NULL);
	if (fetch_name_size(name, &size) == 1) {
		const char *s = strstr(name, ",S=");

		FUZZ_CHECK(s != NULL && (size_t)(s - name) < ulen);
	}
	sv_init(&folders);
	for (size_t i = 0; i < sizeof(globs) / sizeof(globs[0]); i++)
		sv_push(&folders, globs[i]);
	/* "INBOX" is the top level, matched by that name only */
	FUZZ_CHECK(!fetch_folder_wanted(&folders, name) ||
	    strcmp(name, "INBOX") == 0 || name[0] == '.');
	sv_free(&folders);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *name = fuzz_strndup(data, size);
	const char *why = fetch_name_problem(name, size);

	if (why == NULL) {
		FUZZ_CHECK(safe_name(name, size));
		check_accepted(name, size);
	} else
		FUZZ_CHECK(!safe_name(name, size));
	free(name);
	return 0;
}
