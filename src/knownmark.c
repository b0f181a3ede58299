/* knownmark.c - @revoked and @cert-authority lines of known_hosts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "knownmark.h"
#include "util.h"

/* The next blank-separated field of line[*pos..len): its start and
 * length; 0 at the end. */
static size_t
field(const char *line, size_t len, size_t *pos, const char **start)
{
	size_t i = *pos, from;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	from = i;
	while (i < len && line[i] != ' ' && line[i] != '\t')
		i++;
	*start = line + from;
	*pos = i;
	return i - from;
}

bool
knownmark_line(const char *line, size_t len, const unsigned char *key,
    size_t klen, struct known_marks *m)
{
	const char *f;
	size_t pos = 0, n = field(line, len, &pos, &f);
	unsigned char *blob;
	size_t blen;
	bool same;

	if (n == 15 && memcmp(f, "@cert-authority", 15) == 0) {
		m->cert_authority++;
		return false;
	}
	if (n != 8 || memcmp(f, "@revoked", 8) != 0)
		return false;
	if (field(line, len, &pos, &f) == 0 ||	/* the host patterns */
	    field(line, len, &pos, &f) == 0 ||	/* the key type */
	    (n = field(line, len, &pos, &f)) == 0)	/* the key */
		return false;
	if ((blob = auth_b64_decode(f, n, &blen)) == NULL)
		return false;
	same = blen == klen && memcmp(blob, key, klen) == 0;
	free(blob);
	if (same)
		m->revoked = true;
	return same;
}

int
knownmark_file(const char *path, const unsigned char *key, size_t klen,
    struct known_marks *m)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0, no = 0;
	ssize_t n;

	if (f == NULL)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	while ((n = getline(&line, &cap, f)) >= 0) {
		no++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (knownmark_line(line, (size_t)n, key, klen, m) &&
		    m->revoked_file == NULL) {
			m->revoked_file = xstrdup(path);
			m->revoked_line = no;
		}
	}
	free(line);
	fclose(f);
	return 0;
}

void
knownmark_free(struct known_marks *m)
{
	free(m->revoked_file);
	memset(m, 0, sizeof(*m));
}
