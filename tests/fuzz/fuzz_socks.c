/*
 * fuzz_socks.c - what a SOCKS5 proxy answers (socks.h): the method
 * choice, the RFC 1929 login answer and the CONNECT reply, each from the
 * input. The first byte picks how the CONNECT reply arrives (a proxy may
 * split it anywhere); the rest is the proxy's bytes.
 *
 * Checked: a reply is taken whole only when its length is exactly what
 * its address type says (never more than 4 + 256 + 2 bytes) and it
 * grants the connection; "need more" asks for more than it has, and no
 * more than the longest reply; a refusal names a reason; the parsers
 * never read past what they are given.
 */
#include "fuzz.h"
#include "socks.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e;
	size_t step, have = 0, need = 0;
	unsigned char *b;
	int rc = 1;

	if (size == 0)
		return 0;
	step = (size_t)data[0] % 7 + 1;
	data++;
	size--;
	/* exact-size copies: ASan catches a read past the end */
	b = xmalloc(size > 0 ? size : 1);
	if (size > 0)
		memcpy(b, data, size);
	(void)socks_parse_choice(b, size < 2 ? size : 2, step & 1, &e);
	(void)socks_parse_auth(b, size < 2 ? size : 2, &e);
	while (rc == 1) {
		size_t more = have + step <= size ? step : size - have;

		rc = socks_parse_reply(b, have, &need, &e);
		if (rc == 1) {
			FUZZ_CHECK(need > have && need <= 4 + 256 + 2);
			if (more == 0)
				break;
			/* feed up to need, as socks_connect does */
			have += more < need - have ? more : need - have;
		}
	}
	if (rc == 0) {
		FUZZ_CHECK(need == have && need >= 4 + 2 + 2);
		FUZZ_CHECK(b[0] == 5 && b[1] == 0 && b[2] == 0);
		FUZZ_CHECK(need == 4 + (b[3] == 1 ? 4u : b[3] == 4 ? 16u :
		    1u + b[4]) + 2);
	} else if (rc < 0)
		FUZZ_CHECK(e.msg[0] != '\0');
	free(b);
	return 0;
}
