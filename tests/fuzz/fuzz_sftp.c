/*
 * fuzz_sftp.c - libFuzzer target over the SFTP reply parser and engine:
 * whatever a server sends must end in a reply or a refusal, never in a
 * crash, a read out of bounds or an allocation the server sized.
 *
 * The input is the server's byte stream. It is parsed as one packet body
 * (sftp_parse, walking every NAME entry), and fed in pieces to an engine
 * with requests of every kind in flight (sftp_in: framing, ids, types).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sftp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
on_reply(void *arg, const struct sftp_reply *r, struct err *e)
{
	size_t off = 0;
	struct sftp_name n;

	(void)arg;
	(void)e;
	if (r->type == SFTP_NAME)
		while (sftp_name_next(r, &off, &n) == 1)
			;
	return r->type == SFTP_STATUS && r->status == 77 ?
	    err_set(e, ERR_IOERR, "a callback's own error") : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sftp_reply r;
	const char *why;
	struct sftp *s;
	struct err e;
	const unsigned char h[] = "H";
	const unsigned char *out;

	if (sftp_parse(data, size, &r, &why) == 0 && r.type == SFTP_NAME) {
		size_t off = 0;
		struct sftp_name n;

		while (sftp_name_next(&r, &off, &n) == 1)
			;
	}
	s = sftp_new(4, 1 << 16);
	sftp_opendir(s, "/d", on_reply, NULL);
	sftp_readdir(s, h, 1, on_reply, NULL);
	sftp_open(s, "/f", SFTP_FXF_READ, on_reply, NULL);
	sftp_fstat(s, h, 1, on_reply, NULL);
	sftp_read(s, h, 1, 0, 4096, on_reply, NULL);
	sftp_close(s, h, 1, NULL, NULL);
	sftp_remove(s, "/f", on_reply, NULL);
	sftp_rename(s, "/f", "/g", on_reply, NULL);
	/* the ids are 1024, 2049, 3074, 4099 ... (sequence << 10 | slot):
	 * send in steps, so slots are reused while the input plays */
	for (size_t off = 0; off < size;) {
		size_t chunk = 1 + (data[off] % 97);

		sftp_sent(s, sftp_out(s, &out));
		if (chunk > size - off)
			chunk = size - off;
		if (sftp_in(s, data + off, chunk, &e) < 0 &&
		    e.code == ERR_PROTOCOL)
			break;
		off += chunk;
	}
	sftp_free(s);
	return 0;
}
