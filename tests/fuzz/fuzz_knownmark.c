/*
 * fuzz_knownmark.c - a known_hosts line against a host key
 * (knownmark.h). The first byte splits the input: that many bytes (mod
 * 64) are the server's key blob, the rest is the line.
 *
 * Checked: the line says "revoked" only for an "@revoked" line whose
 * decoded key is exactly the blob; an "@cert-authority" line is counted
 * once and never revokes; nothing is read past the line or the key.
 */
#include "fuzz.h"
#include "knownmark.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct known_marks m = { .revoked = false };
	unsigned char *key;
	char *line;
	size_t klen, llen;
	bool hit;

	if (size == 0)
		return 0;
	klen = (size_t)data[0] % 64;
	if (klen > size - 1)
		klen = size - 1;
	llen = size - 1 - klen;
	/* exact-size copies: ASan catches a read past either end */
	key = xmalloc(klen > 0 ? klen : 1);
	memcpy(key, data + 1, klen);
	line = xmalloc(llen > 0 ? llen : 1);
	memcpy(line, data + 1 + klen, llen);
	hit = knownmark_line(line, llen, key, klen, &m);
	FUZZ_CHECK(hit == m.revoked);
	if (hit)
		FUZZ_CHECK(memmem(line, llen, "@revoked", 8) != NULL &&
		    m.cert_authority == 0);
	FUZZ_CHECK(m.cert_authority <= 1);
	if (m.cert_authority == 1)
		FUZZ_CHECK(!hit && memmem(line, llen, "@cert-authority", 15) !=
		    NULL);
	knownmark_free(&m);
	free(line);
	free(key);
	return 0;
}
