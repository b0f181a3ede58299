/*
 * fuzz_auth.c - what postie reads of a server during AUTH (auth.h): the
 * mechanisms of an EHLO reply, a 334 challenge's base64, and the status
 * of an OAuth2 error challenge's JSON. The first byte picks the parser;
 * the rest is the server's bytes.
 *
 * Checked: the offer only names mechanisms postie knows in its mask and
 * its names[] stays terminated and bounded; the choice is one of the
 * offered ones; base64 decoding yields at most 3/4 of its input and its
 * bytes round-trip through the encoder; the status is printable ASCII,
 * terminated, within its buffer; a CRAM-MD5 answer to any challenge is
 * base64 of "user 32-hex".
 */
#include "fuzz.h"
#include "auth.h"
#include "reply.h"

static void
offer(const uint8_t *data, size_t size)
{
	struct reply *r = xmalloc(sizeof(*r));
	struct auth_offer o;

	reply_init(r);
	if (reply_feed(r, (const char *)data, size) >= 0 && r->done) {
		int m;

		auth_parse_offer(r, &o);
		FUZZ_CHECK(o.mask < (1u << AUTH_NMECH));
		FUZZ_CHECK(strlen(o.names) < sizeof(o.names));
		m = auth_choose(NULL, 0, &o);
		FUZZ_CHECK(m == -1 || (o.mask & (1u << m)));
		FUZZ_CHECK(m != AUTH_XOAUTH2 && m != AUTH_OAUTHBEARER);
	}
	free(r);
}

static void
challenge(const uint8_t *data, size_t size)
{
	size_t n = 0;
	unsigned char *d = auth_b64_decode((const char *)data, size, &n);
	char st[32];

	if (d == NULL)
		return;
	FUZZ_CHECK(n <= size / 4 * 3);
	{
		/* re-encoded, the same length and the same bytes back (the
		 * text itself may differ: unused low bits before '=' are
		 * ignored, as most decoders do) */
		char *again = auth_b64_encode(d, n);
		size_t n2 = 0;
		unsigned char *d2;

		FUZZ_CHECK(strlen(again) == size);
		d2 = auth_b64_decode(again, size, &n2);
		FUZZ_CHECK(d2 != NULL && n2 == n && memcmp(d2, d, n) == 0);
		free(d2);
		free(again);
	}
	if (auth_oauth_status(d, n, st, sizeof(st))) {
		FUZZ_CHECK(strlen(st) < sizeof(st));
		for (size_t i = 0; st[i] != '\0'; i++)
			FUZZ_CHECK(st[i] >= 0x20 && st[i] < 0x7f);
	}
	{
		char *resp = auth_response(AUTH_CRAM_MD5, 0, "u", "secret",
		    "mx", 25, d, n);
		size_t rl = 0;
		unsigned char *plain;

		FUZZ_CHECK(resp != NULL);
		plain = auth_b64_decode(resp, strlen(resp), &rl);
		FUZZ_CHECK(plain != NULL && rl == 2 + 32 &&
		    memcmp(plain, "u ", 2) == 0);
		free(plain);
		auth_wipe(resp);
	}
	free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		offer(data + 1, size - 1);
	else
		challenge(data + 1, size - 1);
	return 0;
}
