/* sftp.c - SFTP version 3: packets and the request window, no I/O
 * (see sftp.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftp.h"
#include "util.h"

#define OUTBUF		65536	/* bytes queued for the channel, at most */
#define SLOT_BITS	10	/* an id's low bits: its slot */
#define SLOTS_MAX	(1u << SLOT_BITS)

/* --- reading the server's bytes ----------------------------------------- */

struct rd {
	const unsigned char	*p;
	size_t			 len, off;
	const char		*why;	/* the first problem */
};

static int
rd_fail(struct rd *r, const char *why)
{
	if (r->why == NULL)
		r->why = why;
	return -1;
}

static int
rd_u32(struct rd *r, uint32_t *v, const char *what)
{
	const unsigned char *p;

	if (r->len - r->off < 4)
		return rd_fail(r, what);
	p = r->p + r->off;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
	r->off += 4;
	return 0;
}

static int
rd_u64(struct rd *r, uint64_t *v, const char *what)
{
	uint32_t hi, lo;

	if (rd_u32(r, &hi, what) < 0 || rd_u32(r, &lo, what) < 0)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

/* A string: its length must fit in what is left of the packet. */
static int
rd_str(struct rd *r, const unsigned char **s, size_t *len, const char *what)
{
	uint32_t n;

	if (rd_u32(r, &n, what) < 0)
		return -1;
	if (n > r->len - r->off)
		return rd_fail(r, what);
	*s = r->p + r->off;
	*len = n;
	r->off += n;
	return 0;
}

static int
rd_attrs(struct rd *r, struct sftp_attrs *a)
{
	memset(a, 0, sizeof(*a));
	if (rd_u32(r, &a->flags, "attributes cut short") < 0)
		return -1;
	if ((a->flags & SFTP_ATTR_SIZE) &&
	    rd_u64(r, &a->size, "attributes cut short") < 0)
		return -1;
	if ((a->flags & SFTP_ATTR_UIDGID) &&
	    (rd_u32(r, &a->uid, "attributes cut short") < 0 ||
	    rd_u32(r, &a->gid, "attributes cut short") < 0))
		return -1;
	if ((a->flags & SFTP_ATTR_PERMISSIONS) &&
	    rd_u32(r, &a->perm, "attributes cut short") < 0)
		return -1;
	if ((a->flags & SFTP_ATTR_ACMODTIME) &&
	    (rd_u32(r, &a->atime, "attributes cut short") < 0 ||
	    rd_u32(r, &a->mtime, "attributes cut short") < 0))
		return -1;
	if (a->flags & SFTP_ATTR_EXTENDED) {
		uint32_t n;

		if (rd_u32(r, &n, "attributes cut short") < 0)
			return -1;
		/* each pair takes 8 bytes at least: a lying count ends in
		 * the packet's end, checked pair by pair */
		for (uint32_t i = 0; i < n; i++) {
			const unsigned char *s;
			size_t l;

			if (rd_str(r, &s, &l, "attributes cut short") < 0 ||
			    rd_str(r, &s, &l, "attributes cut short") < 0)
				return -1;
		}
	}
	return 0;
}

/* --- the codec ------------------------------------------------------------ */

int
sftp_frame(const unsigned char *buf, size_t have, size_t *plen,
    const char **why)
{
	uint32_t n;

	if (have < 4)
		return 0;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	if (n < 5) {
		*why = "a packet too short to hold a type and an id";
		return -1;
	}
	if (n > SFTP_PACKET_MAX) {
		*why = "a packet longer than 256 KiB announced";
		return -1;
	}
	if (have - 4 < n)
		return 0;
	*plen = (size_t)n + 4;
	return 1;
}

bool
sftp_reply_not_dir(const struct sftp_reply *r)
{
	return r->type == SFTP_ATTRS &&
	    (r->attrs.flags & SFTP_ATTR_PERMISSIONS) &&
	    (r->attrs.perm & SFTP_S_IFMT) != SFTP_S_IFDIR;
}

const char *
sftp_status_text(uint32_t status)
{
	static const char *const names[] = {
		"ok", "end of file", "no such file", "permission denied",
		"failure", "bad message", "no connection", "connection lost",
		"operation unsupported",
	};

	return status < sizeof(names) / sizeof(names[0]) ? names[status] :
	    "an unknown status";
}

static int
parse_version(struct rd *r, struct sftp_reply *out)
{
	if (rd_u32(r, &out->version, "VERSION cut short") < 0)
		return -1;
	while (r->off < r->len) {
		const unsigned char *name, *data;
		size_t nlen, dlen;

		if (rd_str(r, &name, &nlen, "a VERSION extension cut short")
		    < 0 || rd_str(r, &data, &dlen,
		    "a VERSION extension cut short") < 0)
			return -1;
		if (nlen == 17 && memcmp(name, "fsync@openssh.com", 17) == 0)
			out->exts |= SFTP_EXT_FSYNC;
		if (nlen == 24 &&
		    memcmp(name, "posix-rename@openssh.com", 24) == 0)
			out->exts |= SFTP_EXT_POSIX_RENAME;
	}
	return 0;
}

/* One NAME entry; 0, or -1 when it does not fit its packet. */
static int
parse_name(struct rd *r, struct sftp_name *n)
{
	const unsigned char *s, *lname;
	size_t len, llen;

	if (rd_str(r, &s, &len, "a NAME entry runs past its packet") < 0 ||
	    rd_str(r, &lname, &llen, "a NAME entry runs past its packet") < 0 ||
	    rd_attrs(r, &n->a) < 0)
		return rd_fail(r, "a NAME entry runs past its packet");
	n->too_long = len > SFTP_NAME_MAX;
	n->name = n->too_long ? NULL : (const char *)s;
	n->len = len;
	return 0;
}

static int
parse_names(struct rd *r, struct sftp_reply *out)
{
	size_t start;

	if (rd_u32(r, &out->count, "NAME cut short") < 0)
		return -1;
	start = r->off;
	for (uint32_t i = 0; i < out->count; i++) {
		struct sftp_name n;

		if (r->off == r->len)
			return rd_fail(r, "a NAME with fewer entries than its "
			    "count");
		if (parse_name(r, &n) < 0)
			return -1;
	}
	out->names = r->p + start;
	out->names_len = r->off - start;
	return 0;
}

int
sftp_parse(const unsigned char *p, size_t len, struct sftp_reply *out,
    const char **why)
{
	struct rd r = { .p = p, .len = len };
	const unsigned char *s;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len < 1) {
		*why = "an empty packet";
		return -1;
	}
	out->type = p[0];
	r.off = 1;
	if (out->type == SFTP_VERSION)
		rc = parse_version(&r, out);
	else if (rd_u32(&r, &out->id, "a packet without a request id") < 0)
		rc = -1;
	else
		switch (out->type) {
		case SFTP_STATUS:
			rc = rd_u32(&r, &out->status, "STATUS cut short");
			/* version 3 servers may leave out message and
			 * language; when there, they must fit */
			if (rc == 0 && r.off < r.len) {
				rc = rd_str(&r, &s, &out->msglen,
				    "a STATUS message runs past its packet");
				out->msg = (const char *)s;
				if (rc == 0 && r.off < r.len)
					rc = rd_str(&r, &s, &(size_t){ 0 },
					    "a STATUS language runs past its "
					    "packet");
			}
			break;
		case SFTP_HANDLE:
			rc = rd_str(&r, &out->data, &out->len,
			    "a HANDLE runs past its packet");
			if (rc == 0 && (out->len == 0 ||
			    out->len > SFTP_HANDLE_MAX))
				rc = rd_fail(&r, "a HANDLE empty or over 256 "
				    "bytes");
			break;
		case SFTP_DATA:
			rc = rd_str(&r, &out->data, &out->len,
			    "DATA runs past its packet");
			break;
		case SFTP_NAME:
			rc = parse_names(&r, out);
			break;
		case SFTP_ATTRS:
			rc = rd_attrs(&r, &out->attrs);
			break;
		case SFTP_EXTENDED_REPLY:
			out->data = p + r.off;
			out->len = len - r.off;
			r.off = len;
			break;
		default:
			rc = rd_fail(&r, "a packet of a type no client is "
			    "sent");
		}
	if (rc == 0 && r.off != r.len)
		rc = rd_fail(&r, "bytes left over at the end of a packet");
	if (rc < 0)
		*why = r.why;
	return rc;
}

int
sftp_name_next(const struct sftp_reply *r, size_t *off,
    struct sftp_name *n)
{
	struct rd rd = { .p = r->names, .len = r->names_len, .off = *off };

	if (*off >= r->names_len || parse_name(&rd, n) < 0)
		return 0;	/* the entries were checked: only the end */
	*off = rd.off;
	return 1;
}

/* --- the engine ----------------------------------------------------------- */

/* A request: queued with its packet, then in flight in a slot. */
struct req {
	struct req	*next;
	uint8_t		 type;
	sftp_cb		 cb;
	void		*arg;
	uint32_t	 readlen;	/* READ: bytes asked */
	uint32_t	 id;
	bool		 used;		/* a slot in flight */
	size_t		 plen;
	unsigned char	*pkt;		/* queued: the packet (id patched
					 * in when it goes) */
};

struct sftp {
	unsigned	 max_reqs;
	size_t		 max_bytes;
	struct req	*slots;		/* max_reqs of them */
	unsigned	 inflight;
	size_t		 bytes;		/* READ lengths in flight */
	uint32_t	 seq;
	struct req	*qhead, *qtail;	/* waiting to go */
	size_t		 nqueued;
	unsigned char	*out;		/* OUTBUF */
	size_t		 out_off, out_len;
	unsigned char	*in;		/* one packet at most */
	size_t		 in_len;
	uint32_t	 version, exts;
	bool		 init_sent;
	bool		 dead;		/* a protocol error: no more input */
};

struct sftp *
sftp_new(unsigned max_reqs, size_t max_bytes)
{
	struct sftp *s = xcalloc(1, sizeof(*s));
	static const unsigned char init[] = { 0, 0, 0, 5, SFTP_INIT, 0, 0, 0,
	    3 };

	if (max_reqs == 0)
		max_reqs = 1;
	if (max_reqs > SLOTS_MAX)
		max_reqs = SLOTS_MAX;
	s->max_reqs = max_reqs;
	s->max_bytes = max_bytes;
	s->slots = xcalloc(max_reqs, sizeof(*s->slots));
	s->out = xmalloc(OUTBUF);
	s->in = xmalloc(SFTP_PACKET_MAX + 4);
	memcpy(s->out, init, sizeof(init));
	s->out_len = sizeof(init);
	s->init_sent = true;
	return s;
}

void
sftp_free(struct sftp *s)
{
	struct req *q, *next;

	if (s == NULL)
		return;
	for (q = s->qhead; q != NULL; q = next) {
		next = q->next;
		free(q->pkt);
		free(q);
	}
	free(s->slots);
	free(s->out);
	free(s->in);
	free(s);
}

/* --- building requests --- */

static void
put32(struct strbuf *b, uint32_t v)
{
	unsigned char x[4] = { (unsigned char)(v >> 24),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	    (unsigned char)v };

	sb_add(b, x, 4);
}

static void
put_str(struct strbuf *b, const void *p, size_t n)
{
	put32(b, (uint32_t)n);
	sb_add(b, p, n);
}

/* Start a packet: length (patched at the end), type, id (patched when it
 * goes). */
static void
pkt_begin(struct strbuf *b, uint8_t type)
{
	sb_init(b);
	put32(b, 0);
	sb_addc(b, (char)type);
	put32(b, 0);
}

static void
enqueue(struct sftp *s, struct strbuf *b, uint8_t type, uint32_t readlen,
    sftp_cb cb, void *arg)
{
	struct req *q = xcalloc(1, sizeof(*q));
	uint32_t n = (uint32_t)(b->len - 4);

	b->s[0] = (char)(n >> 24);
	b->s[1] = (char)(n >> 16);
	b->s[2] = (char)(n >> 8);
	b->s[3] = (char)n;
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->readlen = readlen;
	q->plen = b->len;
	q->pkt = (unsigned char *)sb_steal(b);
	if (s->qtail != NULL)
		s->qtail->next = q;
	else
		s->qhead = q;
	s->qtail = q;
	s->nqueued++;
}

static void
req_path(struct sftp *s, uint8_t type, const char *path, sftp_cb cb,
    void *arg)
{
	struct strbuf b;

	pkt_begin(&b, type);
	put_str(&b, path, strlen(path));
	enqueue(s, &b, type, 0, cb, arg);
}

static void
req_handle(struct sftp *s, uint8_t type, const unsigned char *h,
    size_t hlen, sftp_cb cb, void *arg)
{
	struct strbuf b;

	pkt_begin(&b, type);
	put_str(&b, h, hlen);
	enqueue(s, &b, type, 0, cb, arg);
}

void
sftp_opendir(struct sftp *s, const char *path, sftp_cb cb, void *arg)
{
	req_path(s, SFTP_OPENDIR, path, cb, arg);
}

void
sftp_readdir(struct sftp *s, const unsigned char *h, size_t hlen,
    sftp_cb cb, void *arg)
{
	req_handle(s, SFTP_READDIR, h, hlen, cb, arg);
}

void
sftp_open(struct sftp *s, const char *path, uint32_t pflags, sftp_cb cb,
    void *arg)
{
	struct strbuf b;

	pkt_begin(&b, SFTP_OPEN);
	put_str(&b, path, strlen(path));
	put32(&b, pflags);
	put32(&b, 0);		/* no attributes */
	enqueue(s, &b, SFTP_OPEN, 0, cb, arg);
}

void
sftp_fstat(struct sftp *s, const unsigned char *h, size_t hlen, sftp_cb cb,
    void *arg)
{
	req_handle(s, SFTP_FSTAT, h, hlen, cb, arg);
}

void
sftp_lstat(struct sftp *s, const char *path, sftp_cb cb, void *arg)
{
	req_path(s, SFTP_LSTAT, path, cb, arg);
}

void
sftp_read(struct sftp *s, const unsigned char *h, size_t hlen, uint64_t off,
    uint32_t len, sftp_cb cb, void *arg)
{
	struct strbuf b;

	pkt_begin(&b, SFTP_READ);
	put_str(&b, h, hlen);
	put32(&b, (uint32_t)(off >> 32));
	put32(&b, (uint32_t)off);
	put32(&b, len);
	enqueue(s, &b, SFTP_READ, len, cb, arg);
}

void
sftp_close(struct sftp *s, const unsigned char *h, size_t hlen, sftp_cb cb,
    void *arg)
{
	req_handle(s, SFTP_CLOSE, h, hlen, cb, arg);
}

void
sftp_remove(struct sftp *s, const char *path, sftp_cb cb, void *arg)
{
	req_path(s, SFTP_REMOVE, path, cb, arg);
}

void
sftp_rename(struct sftp *s, const char *from, const char *to, sftp_cb cb,
    void *arg)
{
	struct strbuf b;

	pkt_begin(&b, SFTP_RENAME);
	put_str(&b, from, strlen(from));
	put_str(&b, to, strlen(to));
	enqueue(s, &b, SFTP_RENAME, 0, cb, arg);
}

void
sftp_mkdir(struct sftp *s, const char *path, uint32_t perm, sftp_cb cb,
    void *arg)
{
	struct strbuf b;

	pkt_begin(&b, SFTP_MKDIR);
	put_str(&b, path, strlen(path));
	put32(&b, SFTP_ATTR_PERMISSIONS);
	put32(&b, perm);
	enqueue(s, &b, SFTP_MKDIR, 0, cb, arg);
}

void
sftp_fsync(struct sftp *s, const unsigned char *h, size_t hlen, sftp_cb cb,
    void *arg)
{
	struct strbuf b;

	pkt_begin(&b, SFTP_EXTENDED);
	put_str(&b, "fsync@openssh.com", 17);
	put_str(&b, h, hlen);
	enqueue(s, &b, SFTP_EXTENDED, 0, cb, arg);
}

/* --- the window --- */

/* Move queued requests into the out buffer while the window allows. */
static void
admit(struct sftp *s)
{
	while (s->qhead != NULL) {
		struct req *q = s->qhead, *slot = NULL;
		unsigned i;

		if (s->inflight == s->max_reqs)
			return;
		if (q->readlen > 0 && s->bytes > 0 &&
		    s->bytes + q->readlen > s->max_bytes)
			return;
		if (s->out_off == s->out_len)
			s->out_off = s->out_len = 0;	/* nothing pending */
		if (q->plen > OUTBUF - s->out_len &&
		    !(s->out_len == 0 && q->plen > OUTBUF))
			return;		/* after what is there goes out */
		for (i = 0; i < s->max_reqs && s->slots[i].used; i++)
			;
		slot = &s->slots[i];
		s->seq++;
		q->id = (s->seq << SLOT_BITS) | i;
		q->pkt[5] = (unsigned char)(q->id >> 24);
		q->pkt[6] = (unsigned char)(q->id >> 16);
		q->pkt[7] = (unsigned char)(q->id >> 8);
		q->pkt[8] = (unsigned char)q->id;
		if (q->plen > OUTBUF) {
			/* a request larger than the buffer: the buffer grows
			 * for it alone (it is empty: no pointer is held) */
			s->out = xrealloc(s->out, q->plen);
		}
		memcpy(s->out + s->out_len, q->pkt, q->plen);
		s->out_len += q->plen;
		s->qhead = q->next;
		if (s->qhead == NULL)
			s->qtail = NULL;
		s->nqueued--;
		free(q->pkt);
		q->pkt = NULL;
		*slot = *q;
		slot->used = true;
		slot->next = NULL;
		free(q);
		s->inflight++;
		s->bytes += slot->readlen;
	}
}

size_t
sftp_out(struct sftp *s, const unsigned char **p)
{
	admit(s);
	*p = s->out + s->out_off;
	return s->out_len - s->out_off;
}

void
sftp_sent(struct sftp *s, size_t n)
{
	if (n > s->out_len - s->out_off)
		n = s->out_len - s->out_off;
	s->out_off += n;
}

size_t
sftp_busy(const struct sftp *s)
{
	return s->nqueued + s->inflight;
}

uint32_t
sftp_version(const struct sftp *s)
{
	return s->version;
}

uint32_t
sftp_exts(const struct sftp *s)
{
	return s->exts;
}

/* --- replies --- */

static bool
type_fits(uint8_t req, uint8_t reply)
{
	if (reply == SFTP_STATUS)
		return true;
	switch (req) {
	case SFTP_OPEN:
	case SFTP_OPENDIR:
		return reply == SFTP_HANDLE;
	case SFTP_READ:
		return reply == SFTP_DATA;
	case SFTP_READDIR:
		return reply == SFTP_NAME;
	case SFTP_FSTAT:
	case SFTP_LSTAT:
	case SFTP_STAT:
		return reply == SFTP_ATTRS;
	case SFTP_EXTENDED:
		return reply == SFTP_EXTENDED_REPLY;
	default:
		return false;
	}
}

static int
proto_fail(struct sftp *s, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
proto_fail(struct sftp *s, struct err *e, const char *fmt, ...)
{
	char what[300];
	va_list ap;

	s->dead = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_set(e, ERR_PROTOCOL, "the SFTP server broke the protocol: "
	    "%s", what);
}

/* One whole packet. 0, 1 when a callback failed (e filled), -1 dead. */
static int
dispatch(struct sftp *s, const unsigned char *p, size_t len, struct err *e)
{
	struct sftp_reply r;
	struct req q, *slot;
	const char *why = NULL;

	if (sftp_parse(p, len, &r, &why) < 0)
		return proto_fail(s, e, "%s (type %u)", why, p[0]);
	if (r.type == SFTP_VERSION) {
		if (s->version != 0)
			return proto_fail(s, e, "a second VERSION");
		if (r.version < 3)
			return proto_fail(s, e, "it speaks version %u (3 is "
			    "needed)", (unsigned)r.version);
		s->version = 3;
		s->exts = r.exts;
		return 0;
	}
	if (s->version == 0)
		return proto_fail(s, e, "a reply before VERSION (type %u)",
		    r.type);
	slot = &s->slots[r.id & (SLOTS_MAX - 1)];
	if ((r.id & (SLOTS_MAX - 1)) >= s->max_reqs || !slot->used ||
	    slot->id != r.id)
		return proto_fail(s, e, "a reply to request %u, which was "
		    "never sent or was answered already", (unsigned)r.id);
	if (!type_fits(slot->type, r.type))
		return proto_fail(s, e, "a reply of type %u to a request of "
		    "type %u", r.type, slot->type);
	if (r.type == SFTP_DATA && r.len > slot->readlen)
		return proto_fail(s, e, "%zu bytes of DATA for a READ of %u",
		    r.len, (unsigned)slot->readlen);
	/* the slot is free before the callback, which may queue more */
	q = *slot;
	slot->used = false;
	s->inflight--;
	s->bytes -= q.readlen;
	if (q.cb != NULL && q.cb(q.arg, &r, e) < 0)
		return 1;
	return 0;
}

int
sftp_in(struct sftp *s, const void *buf, size_t n, struct err *e)
{
	const unsigned char *b = buf;
	struct err first = { 0 };
	bool failed = false;

	if (s->dead)
		return err_set(e, ERR_PROTOCOL, "the SFTP session is broken");
	while (n > 0) {
		size_t take = SFTP_PACKET_MAX + 4 - s->in_len, off = 0, plen;
		const char *why = NULL;
		int f;

		if (take > n)
			take = n;
		memcpy(s->in + s->in_len, b, take);
		s->in_len += take;
		b += take;
		n -= take;
		while ((f = sftp_frame(s->in + off, s->in_len - off, &plen,
		    &why)) == 1) {
			int rc = dispatch(s, s->in + off + 4, plen - 4,
			    failed ? &(struct err){ 0 } : &first);

			if (rc < 0) {
				*e = first;
				return -1;
			}
			failed = failed || rc > 0;
			off += plen;
		}
		if (f < 0) {
			s->dead = true;
			return err_set(e, ERR_PROTOCOL, "the SFTP server "
			    "broke the protocol: %s", why);
		}
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
	}
	if (failed) {
		*e = first;
		return -1;
	}
	return 0;
}
