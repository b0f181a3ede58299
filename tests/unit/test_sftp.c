/* test_sftp.c - SFTP v3 packets and the request window, against a
 * scripted (and hostile) server: bytes in, replies or reasons out. */
#include "testutil.h"

#include "sftp.h"
#include "util.h"

/* --- building what a server sends --- */

struct pk {
	unsigned char	b[80000];
	size_t		len;
};

static void
pk_u32(struct pk *p, uint32_t v)
{
	p->b[p->len++] = (unsigned char)(v >> 24);
	p->b[p->len++] = (unsigned char)(v >> 16);
	p->b[p->len++] = (unsigned char)(v >> 8);
	p->b[p->len++] = (unsigned char)v;
}

static void
pk_u64(struct pk *p, uint64_t v)
{
	pk_u32(p, (uint32_t)(v >> 32));
	pk_u32(p, (uint32_t)v);
}

static void
pk_str(struct pk *p, const void *s, size_t n)
{
	pk_u32(p, (uint32_t)n);
	memcpy(p->b + p->len, s, n);
	p->len += n;
}

/* Start a packet: the length is filled by pk_end. */
static void
pk_begin(struct pk *p, uint8_t type, uint32_t id)
{
	p->len = 0;
	pk_u32(p, 0);
	p->b[p->len++] = type;
	if (type != SFTP_VERSION)
		pk_u32(p, id);
}

static void
pk_end(struct pk *p)
{
	uint32_t n = (uint32_t)(p->len - 4);

	p->b[0] = (unsigned char)(n >> 24);
	p->b[1] = (unsigned char)(n >> 16);
	p->b[2] = (unsigned char)(n >> 8);
	p->b[3] = (unsigned char)n;
}

/* An entry: name, longname, attrs with size and mode. */
static void
pk_entry(struct pk *p, const void *name, size_t len, uint64_t size,
    uint32_t mode)
{
	pk_str(p, name, len);
	pk_str(p, "ls -l line", 10);
	pk_u32(p, SFTP_ATTR_SIZE | SFTP_ATTR_PERMISSIONS);
	pk_u64(p, size);
	pk_u32(p, mode);
}

/* Parse a built packet's body. */
static int
parse(struct pk *p, struct sftp_reply *r, const char **why)
{
	*why = NULL;
	return sftp_parse(p->b + 4, p->len - 4, r, why);
}

/* --- the codec --- */

static void
test_frame_refuses_huge_and_tiny(void **state)
{
	unsigned char b[8] = { 0xff, 0xff, 0xff, 0xff, 2 };
	size_t plen = 0;
	const char *why = NULL;

	(void)state;
	/* 4 GiB announced: refused from the 4 length bytes alone */
	assert_int_equal(sftp_frame(b, 4, &plen, &why), -1);
	assert_string_equal(why, "a packet longer than 256 KiB announced");
	b[0] = 0; b[1] = 0x04; b[2] = 0; b[3] = 1;	/* 256 KiB + 1 */
	assert_int_equal(sftp_frame(b, 5, &plen, &why), -1);
	b[0] = 0; b[1] = 0; b[2] = 0; b[3] = 4;
	assert_int_equal(sftp_frame(b, 8, &plen, &why), -1);
	assert_string_equal(why,
	    "a packet too short to hold a type and an id");
	/* a whole packet, and one still coming */
	b[3] = 5;
	assert_int_equal(sftp_frame(b, 3, &plen, &why), 0);
	assert_int_equal(sftp_frame(b, 8, &plen, &why), 0);
	assert_int_equal(sftp_frame(b, 9, &plen, &why), 1);
	assert_int_equal(plen, 9);
}

static void
test_status_and_unknown_codes(void **state)
{
	struct pk p;
	struct sftp_reply r;
	const char *why;

	(void)state;
	pk_begin(&p, SFTP_STATUS, 7);
	pk_u32(&p, SFTP_FX_NO_SUCH_FILE);
	pk_str(&p, "No such file", 12);
	pk_str(&p, "en", 2);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), 0);
	assert_int_equal(r.id, 7);
	assert_int_equal(r.status, SFTP_FX_NO_SUCH_FILE);
	assert_int_equal(r.msglen, 12);
	assert_memory_equal(r.msg, "No such file", 12);
	/* a code past version 3 is kept as sent, and named as unknown */
	pk_begin(&p, SFTP_STATUS, 8);
	pk_u32(&p, 0xdeadbeef);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), 0);
	assert_int_equal(r.status, 0xdeadbeef);
	assert_string_equal(sftp_status_text(r.status), "an unknown status");
	assert_string_equal(sftp_status_text(9), "an unknown status");
	assert_string_equal(sftp_status_text(SFTP_FX_EOF), "end of file");
	/* a message longer than its packet */
	pk_begin(&p, SFTP_STATUS, 9);
	pk_u32(&p, SFTP_FX_FAILURE);
	pk_u32(&p, 1000);
	p.b[p.len++] = 'x';
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "a STATUS message runs past its packet");
}

static void
test_lengths_past_the_packet(void **state)
{
	struct pk p;
	struct sftp_reply r;
	const char *why;

	(void)state;
	pk_begin(&p, SFTP_DATA, 1);
	pk_u32(&p, 100);	/* 100 bytes said, 3 sent */
	memcpy(p.b + p.len, "abc", 3);
	p.len += 3;
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "DATA runs past its packet");
	pk_begin(&p, SFTP_HANDLE, 1);
	pk_u32(&p, 0xffffffff);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "a HANDLE runs past its packet");
	/* a handle longer than the draft allows */
	{
		unsigned char h[300];

		memset(h, 'h', sizeof(h));
		pk_begin(&p, SFTP_HANDLE, 1);
		pk_str(&p, h, sizeof(h));
		pk_end(&p);
		assert_int_equal(parse(&p, &r, &why), -1);
		assert_string_equal(why, "a HANDLE empty or over 256 bytes");
	}
	/* attributes that announce a size but stop */
	pk_begin(&p, SFTP_ATTRS, 1);
	pk_u32(&p, SFTP_ATTR_SIZE | SFTP_ATTR_PERMISSIONS);
	pk_u32(&p, 0);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "attributes cut short");
	/* extended attributes whose count lies */
	pk_begin(&p, SFTP_ATTRS, 1);
	pk_u32(&p, SFTP_ATTR_EXTENDED);
	pk_u32(&p, 0x7fffffff);
	pk_str(&p, "a", 1);
	pk_str(&p, "b", 1);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "attributes cut short");
	/* bytes after the end of what the type holds */
	pk_begin(&p, SFTP_STATUS, 1);
	pk_u32(&p, 0);
	pk_str(&p, "", 0);
	pk_str(&p, "", 0);
	p.b[p.len++] = 0;
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "bytes left over at the end of a packet");
	/* no id at all; an unknown type */
	pk_begin(&p, SFTP_DATA, 0);
	p.len = 5;
	pk_end(&p);
	assert_int_equal(sftp_parse(p.b + 4, 1, &r, &why), -1);
	assert_string_equal(why, "a packet without a request id");
	pk_begin(&p, 77, 1);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "a packet of a type no client is sent");
	assert_int_equal(sftp_parse(p.b, 0, &r, &why), -1);
	assert_string_equal(why, "an empty packet");
}

static void
test_name_entries(void **state)
{
	struct pk p;
	struct sftp_reply r;
	struct sftp_name n;
	const char *why;
	size_t off = 0;
	static char huge[SFTP_NAME_MAX + 1];

	(void)state;
	memset(huge, 'n', sizeof(huge));
	pk_begin(&p, SFTP_NAME, 3);
	pk_u32(&p, 4);
	pk_entry(&p, "1700000000.a", 12, 4096, SFTP_S_IFREG | 0600);
	pk_entry(&p, "a\0b", 3, 1, SFTP_S_IFREG | 0600);	/* a NUL */
	pk_entry(&p, huge, sizeof(huge), 1, SFTP_S_IFREG | 0600);
	/* no size, no mode */
	pk_str(&p, "nosize", 6);
	pk_str(&p, "", 0);
	pk_u32(&p, 0);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), 0);
	assert_int_equal(r.count, 4);
	assert_int_equal(sftp_name_next(&r, &off, &n), 1);
	assert_int_equal(n.len, 12);
	assert_memory_equal(n.name, "1700000000.a", 12);
	assert_false(n.too_long);
	assert_int_equal(n.a.size, 4096);
	assert_int_equal(n.a.perm & SFTP_S_IFMT, SFTP_S_IFREG);
	assert_int_equal(sftp_name_next(&r, &off, &n), 1);
	assert_int_equal(n.len, 3);	/* the NUL is kept, with the length */
	assert_memory_equal(n.name, "a\0b", 3);
	/* the huge one: refused, the rest still read */
	assert_int_equal(sftp_name_next(&r, &off, &n), 1);
	assert_true(n.too_long);
	assert_null(n.name);
	assert_int_equal(sftp_name_next(&r, &off, &n), 1);
	assert_memory_equal(n.name, "nosize", 6);
	assert_int_equal(n.a.flags, 0);
	assert_int_equal(sftp_name_next(&r, &off, &n), 0);
}

static void
test_name_count_lies(void **state)
{
	struct pk p;
	struct sftp_reply r;
	const char *why;

	(void)state;
	/* count 3, two entries */
	pk_begin(&p, SFTP_NAME, 3);
	pk_u32(&p, 3);
	pk_entry(&p, "a", 1, 1, SFTP_S_IFREG);
	pk_entry(&p, "b", 1, 1, SFTP_S_IFREG);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "a NAME with fewer entries than its count");
	/* count 1, two entries */
	pk_begin(&p, SFTP_NAME, 3);
	pk_u32(&p, 1);
	pk_entry(&p, "a", 1, 1, SFTP_S_IFREG);
	pk_entry(&p, "b", 1, 1, SFTP_S_IFREG);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "bytes left over at the end of a packet");
	/* an entry whose name runs past the packet */
	pk_begin(&p, SFTP_NAME, 3);
	pk_u32(&p, 1);
	pk_u32(&p, 50);
	pk_str(&p, "short", 5);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "a NAME entry runs past its packet");
}

static void
test_version_extensions(void **state)
{
	struct pk p;
	struct sftp_reply r;
	const char *why;

	(void)state;
	pk_begin(&p, SFTP_VERSION, 0);
	pk_u32(&p, 3);
	pk_str(&p, "posix-rename@openssh.com", 24);
	pk_str(&p, "1", 1);
	pk_str(&p, "fsync@openssh.com", 17);
	pk_str(&p, "1", 1);
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), 0);
	assert_int_equal(r.version, 3);
	assert_int_equal(r.exts, SFTP_EXT_FSYNC | SFTP_EXT_POSIX_RENAME);
	p.len -= 2;	/* an extension cut short */
	pk_end(&p);
	assert_int_equal(parse(&p, &r, &why), -1);
	assert_string_equal(why, "a VERSION extension cut short");
}

/* --- the engine --- */

struct seen {
	int		calls;
	uint8_t		type;
	uint32_t	status;
	size_t		len;
	int		fail;	/* return -1 from the callback */
};

static int
on_reply(void *arg, const struct sftp_reply *r, struct err *e)
{
	struct seen *s = arg;

	s->calls++;
	s->type = r->type;
	s->status = r->status;
	s->len = r->len;
	if (s->fail)
		return err_set(e, ERR_IOERR, "the callback failed");
	return 0;
}

/* Take what the engine sends; return it whole. */
static size_t
drain(struct sftp *s, unsigned char *to, size_t cap)
{
	const unsigned char *p;
	size_t n = sftp_out(s, &p);

	assert_true(n <= cap);
	memcpy(to, p, n);
	sftp_sent(s, n);
	return n;
}

static uint32_t
get32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | b[3];
}

/* The ids of the requests in a run of sent bytes, after INIT. */
static size_t
ids_of(const unsigned char *b, size_t n, uint32_t *ids, uint8_t *types)
{
	size_t k = 0;

	for (size_t off = 0; off < n; off += 4 + get32(b + off)) {
		if (b[off + 4] == SFTP_INIT)
			continue;
		types[k] = b[off + 4];
		ids[k++] = get32(b + off + 5);
	}
	return k;
}

static void
feed_version(struct sftp *s)
{
	struct pk p;
	struct err e = { 0 };

	pk_begin(&p, SFTP_VERSION, 0);
	pk_u32(&p, 3);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), 0);
}

static void
test_engine_matches_by_id_byte_by_byte(void **state)
{
	struct sftp *s = sftp_new(8, 1 << 20);
	unsigned char out[4096];
	uint32_t ids[8];
	uint8_t types[8];
	struct seen a = { 0 }, b = { 0 };
	struct pk p;
	struct err e = { 0 };
	size_t n, k;

	(void)state;
	sftp_open(s, "/m/new/x", SFTP_FXF_READ, on_reply, &a);
	sftp_read(s, (const unsigned char *)"H1", 2, 0, 100, on_reply, &b);
	n = drain(s, out, sizeof(out));
	assert_int_equal(out[4], SFTP_INIT);	/* INIT first, version 3 */
	assert_int_equal(get32(out + 5), 3);
	k = ids_of(out, n, ids, types);
	assert_int_equal(k, 2);
	assert_int_equal(types[0], SFTP_OPEN);
	assert_int_equal(types[1], SFTP_READ);
	assert_int_not_equal(ids[0], ids[1]);
	assert_int_equal(sftp_busy(s), 2);
	feed_version(s);
	assert_int_equal(sftp_version(s), 3);
	/* replies out of order, fed one byte at a time */
	pk_begin(&p, SFTP_DATA, ids[1]);
	pk_str(&p, "hello", 5);
	pk_end(&p);
	for (size_t i = 0; i < p.len; i++)
		assert_int_equal(sftp_in(s, p.b + i, 1, &e), 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.type, SFTP_DATA);
	assert_int_equal(b.len, 5);
	assert_int_equal(a.calls, 0);
	pk_begin(&p, SFTP_HANDLE, ids[0]);
	pk_str(&p, "H1", 2);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.type, SFTP_HANDLE);
	assert_int_equal(sftp_busy(s), 0);
	/* the same id again: answered already */
	assert_int_equal(sftp_in(s, p.b, p.len, &e), -1);
	assert_int_equal(e.code, ERR_PROTOCOL);
	assert_non_null(strstr(e.msg, "which was never sent or was answered "
	    "already"));
	/* and the session takes nothing more */
	assert_int_equal(sftp_in(s, p.b, 1, &e), -1);
	sftp_free(s);
}

static void
test_engine_refuses_hostile_replies(void **state)
{
	unsigned char out[4096];
	uint32_t ids[8];
	uint8_t types[8];
	struct seen a = { 0 };
	struct pk p;
	struct err e = { 0 };
	struct sftp *s;

	(void)state;
	/* a reply to an id never sent */
	s = sftp_new(8, 1 << 20);
	sftp_remove(s, "/m/new/x", on_reply, &a);
	ids_of(out, drain(s, out, sizeof(out)), ids, types);
	feed_version(s);
	pk_begin(&p, SFTP_STATUS, ids[0] + 1);
	pk_u32(&p, 0);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), -1);
	assert_int_equal(e.code, ERR_PROTOCOL);
	assert_non_null(strstr(e.msg, "a reply to request"));
	assert_int_equal(a.calls, 0);
	sftp_free(s);
	/* a reply of a type the request cannot get */
	s = sftp_new(8, 1 << 20);
	sftp_remove(s, "/m/new/x", on_reply, &a);
	ids_of(out, drain(s, out, sizeof(out)), ids, types);
	feed_version(s);
	pk_begin(&p, SFTP_DATA, ids[0]);
	pk_str(&p, "x", 1);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), -1);
	assert_non_null(strstr(e.msg, "a reply of type 103 to a request of "
	    "type 13"));
	sftp_free(s);
	/* more data than the READ asked */
	s = sftp_new(8, 1 << 20);
	sftp_read(s, (const unsigned char *)"H", 1, 0, 4, on_reply, &a);
	ids_of(out, drain(s, out, sizeof(out)), ids, types);
	feed_version(s);
	pk_begin(&p, SFTP_DATA, ids[0]);
	pk_str(&p, "12345", 5);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), -1);
	assert_non_null(strstr(e.msg, "5 bytes of DATA for a READ of 4"));
	sftp_free(s);
	/* a reply before VERSION; a version too old; a 4 GiB packet */
	s = sftp_new(8, 1 << 20);
	sftp_remove(s, "/m/new/x", on_reply, &a);
	ids_of(out, drain(s, out, sizeof(out)), ids, types);
	pk_begin(&p, SFTP_STATUS, ids[0]);
	pk_u32(&p, 0);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), -1);
	assert_non_null(strstr(e.msg, "a reply before VERSION"));
	sftp_free(s);
	s = sftp_new(8, 1 << 20);
	pk_begin(&p, SFTP_VERSION, 0);
	pk_u32(&p, 2);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), -1);
	assert_non_null(strstr(e.msg, "it speaks version 2 (3 is needed)"));
	sftp_free(s);
	s = sftp_new(8, 1 << 20);
	feed_version(s);
	assert_int_equal(sftp_in(s, "\xff\xff\xff\xff\x65", 5, &e), -1);
	assert_non_null(strstr(e.msg, "a packet longer than 256 KiB"));
	sftp_free(s);
}

static void
test_engine_window(void **state)
{
	struct sftp *s = sftp_new(2, 100);
	unsigned char out[4096];
	uint32_t ids[8];
	uint8_t types[8];
	struct seen a = { 0 };
	struct pk p;
	struct err e = { 0 };
	size_t k;

	(void)state;
	/* at most 2 requests in flight */
	for (int i = 0; i < 4; i++)
		sftp_remove(s, "/m/new/x", on_reply, &a);
	k = ids_of(out, drain(s, out, sizeof(out)), ids, types);
	assert_int_equal(k, 2);
	assert_int_equal(sftp_busy(s), 4);
	assert_int_equal(drain(s, out, sizeof(out)), 0);
	feed_version(s);
	pk_begin(&p, SFTP_STATUS, ids[0]);
	pk_u32(&p, 0);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), 0);
	k = ids_of(out, drain(s, out, sizeof(out)), ids + 2, types);
	assert_int_equal(k, 1);	/* one answered, one more goes */
	assert_int_not_equal(ids[2], ids[0]);	/* a slot reused, a new id */
	/* the old id of a reused slot is refused */
	assert_int_equal(sftp_in(s, p.b, p.len, &e), -1);
	sftp_free(s);
	/* READ bytes: 60 + 60 > 100, so the second waits */
	s = sftp_new(8, 100);
	sftp_read(s, (const unsigned char *)"H", 1, 0, 60, on_reply, &a);
	sftp_read(s, (const unsigned char *)"H", 1, 60, 60, on_reply, &a);
	k = ids_of(out, drain(s, out, sizeof(out)), ids, types);
	assert_int_equal(k, 1);
	feed_version(s);
	pk_begin(&p, SFTP_STATUS, ids[0]);
	pk_u32(&p, SFTP_FX_EOF);
	pk_end(&p);
	assert_int_equal(sftp_in(s, p.b, p.len, &e), 0);
	k = ids_of(out, drain(s, out, sizeof(out)), ids, types);
	assert_int_equal(k, 1);
	sftp_free(s);
}

static void
test_engine_out_buffer_stays_put(void **state)
{
	struct sftp *s = sftp_new(64, 1 << 20);
	const unsigned char *p1, *p2;
	size_t n1, n2;

	(void)state;
	sftp_remove(s, "/m/new/x", NULL, NULL);
	n1 = sftp_out(s, &p1);
	sftp_sent(s, 3);	/* a part went out */
	sftp_remove(s, "/m/new/y", NULL, NULL);	/* more behind it */
	n2 = sftp_out(s, &p2);
	assert_ptr_equal(p2, p1 + 3);
	assert_true(n2 > n1 - 3);
	sftp_free(s);
}

static void
test_engine_callback_error_keeps_going(void **state)
{
	struct sftp *s = sftp_new(8, 1 << 20);
	unsigned char out[4096], in[256];
	uint32_t ids[8];
	uint8_t types[8];
	struct seen a = { .fail = 1 }, b = { 0 };
	struct pk p;
	struct err e = { 0 };
	size_t n = 0;

	(void)state;
	sftp_remove(s, "/m/new/x", on_reply, &a);
	sftp_remove(s, "/m/new/y", on_reply, &b);
	ids_of(out, drain(s, out, sizeof(out)), ids, types);
	feed_version(s);
	for (int i = 0; i < 2; i++) {
		pk_begin(&p, SFTP_STATUS, ids[i]);
		pk_u32(&p, 0);
		pk_end(&p);
		memcpy(in + n, p.b, p.len);
		n += p.len;
	}
	/* both replies in one read: the second is still handed over */
	assert_int_equal(sftp_in(s, in, n, &e), -1);
	assert_string_equal(e.msg, "the callback failed");
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(sftp_busy(s), 0);
	sftp_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_refuses_huge_and_tiny),
		cmocka_unit_test(test_status_and_unknown_codes),
		cmocka_unit_test(test_lengths_past_the_packet),
		cmocka_unit_test(test_name_entries),
		cmocka_unit_test(test_name_count_lies),
		cmocka_unit_test(test_version_extensions),
		cmocka_unit_test(test_engine_matches_by_id_byte_by_byte),
		cmocka_unit_test(test_engine_refuses_hostile_replies),
		cmocka_unit_test(test_engine_window),
		cmocka_unit_test(test_engine_out_buffer_stays_put),
		cmocka_unit_test(test_engine_callback_error_keeps_going),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
